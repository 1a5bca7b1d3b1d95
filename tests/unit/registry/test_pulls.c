/* Last pull times (registry/pulls.c) on the in-memory driver: what memory and the store say,
 * what a flush writes and forgets, and records other writers left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "registry/pulls.h"
#include "storage/driver.h"
#include "storage/storage.h"

#define D256 "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define TAG_RECORD "/berth/pulls/team/app/_tags/v1"
#define DIGEST_RECORD \
	"/berth/pulls/team/app/_digests/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

struct fixture {
	struct berth_storage_driver *d;
	struct berth_pulls *p;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || berth_inmem_driver_new(&f->d) < 0)
		return -1;
	f->p = berth_pulls_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	berth_pulls_free(f->p);
	berth_storage_free(f->d);
	free(f);
	return 0;
}

static void put(struct berth_storage_driver *d, const char *path, const char *text)
{
	assert_int_equal(berth_storage_put_content(d, path, text, strlen(text)), 0);
}

static void assert_stored(struct berth_storage_driver *d, const char *path, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(berth_storage_get_content(&text, &len, d, path, 64), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(text, want, len);
	free(text);
}

static void test_memory_until_flushed_then_the_store(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(berth_pulls_last(f->p, f->d, "team/app", "v1"), -1);
	berth_pulls_record(f->p, "team/app", "v1", 1000);
	berth_pulls_record(f->p, "team/app", "v1", 900); /* an older clock: the newest stays */
	berth_pulls_record(f->p, "team/app", D256, 1200);
	assert_int_equal(berth_pulls_last(f->p, f->d, "team/app", "v1"), 1000);
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app", "v1"), -1); /* nothing stored yet */
	struct berth_stat st;
	assert_int_equal(berth_storage_stat(&st, f->d, TAG_RECORD), BERTH_ENOTFOUND);

	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	assert_stored(f->d, TAG_RECORD, "1000");
	assert_stored(f->d, DIGEST_RECORD, "1200");
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app", "v1"), 1000);
	/* flushed entries are forgotten: memory alone knows nothing more */
	assert_int_equal(berth_pulls_last(f->p, NULL, "team/app", "v1"), -1);
	assert_int_equal(berth_pulls_last(f->p, f->d, "team/app", D256), 1200);
}

static void test_a_newer_stored_record_is_kept(void **state)
{
	struct fixture *f = *state;
	put(f->d, TAG_RECORD, "5000"); /* another instance's later pull */
	berth_pulls_record(f->p, "team/app", "v1", 4000);
	assert_int_equal(berth_pulls_last(f->p, f->d, "team/app", "v1"), 5000);
	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	assert_stored(f->d, TAG_RECORD, "5000");
	berth_pulls_record(f->p, "team/app", "v1", 6000);
	assert_int_equal(berth_pulls_last(f->p, f->d, "team/app", "v1"), 6000);
	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	assert_stored(f->d, TAG_RECORD, "6000");
}

static void test_unreadable_records_count_as_never_and_are_rewritten(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = { "", "yesterday", "12x", "-5", "123456789012345678901234567890123" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(f->d, TAG_RECORD, bad[i]);
		assert_int_equal(berth_pulls_last(NULL, f->d, "team/app", "v1"), -1);
	}
	berth_pulls_record(f->p, "team/app", "v1", 700);
	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	assert_stored(f->d, TAG_RECORD, "700");
}

static void test_forget_a_tag_and_a_repository(void **state)
{
	struct fixture *f = *state;
	put(f->d, TAG_RECORD, "10");
	put(f->d, DIGEST_RECORD, "20");
	put(f->d, "/berth/pulls/team/app/nested/_tags/v1", "30"); /* the repository team/app/nested */
	assert_int_equal(berth_pulls_forget(NULL, f->d, "team/app", "v1"), 0);
	assert_int_equal(berth_pulls_forget(NULL, f->d, "team/app", "v1"), 0); /* gone already: fine */
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app", "v1"), -1);
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app", D256), 20);
	assert_int_equal(berth_pulls_has_digests(f->d, "team/app"), 1);
	assert_int_equal(berth_pulls_has_digests(f->d, "team/app/nested"), 0);
	berth_pulls_forget_repo(NULL, f->d, "team/app");
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app", D256), -1);
	assert_int_equal(berth_pulls_has_digests(f->d, "team/app"), 0);
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app/nested", "v1"), 30);
}

/* A deleted manifest's record goes from the store and from memory: the next flush must not
 * write it back. */
static void test_forget_a_digest_in_memory_and_stored(void **state)
{
	struct fixture *f = *state;
	berth_pulls_record(f->p, "team/app", D256, 100);
	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	berth_pulls_record(f->p, "team/app", D256, 200); /* pulled again, not flushed yet */
	assert_int_equal(berth_pulls_forget(f->p, f->d, "team/app", D256), 0);
	assert_int_equal(berth_pulls_last(f->p, f->d, "team/app", D256), -1);
	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	struct berth_stat st;
	assert_int_equal(berth_storage_stat(&st, f->d, DIGEST_RECORD), BERTH_ENOTFOUND);
}

/* A repository deleted: its pulls in memory go too (not those of a nested repository). */
static void test_forget_a_repository_in_memory(void **state)
{
	struct fixture *f = *state;
	berth_pulls_record(f->p, "team/app", "v1", 100);
	berth_pulls_record(f->p, "team/app", D256, 100);
	berth_pulls_record(f->p, "team/app/nested", "v1", 100);
	berth_pulls_record(f->p, "team/apps", "v1", 100);
	berth_pulls_forget_repo(f->p, f->d, "team/app");
	assert_int_equal(berth_pulls_flush(f->p, f->d), 0);
	struct berth_stat st;
	assert_int_equal(berth_storage_stat(&st, f->d, TAG_RECORD), BERTH_ENOTFOUND);
	assert_int_equal(berth_storage_stat(&st, f->d, DIGEST_RECORD), BERTH_ENOTFOUND);
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/app/nested", "v1"), 100);
	assert_int_equal(berth_pulls_last(NULL, f->d, "team/apps", "v1"), 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_memory_until_flushed_then_the_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_newer_stored_record_is_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_records_count_as_never_and_are_rewritten, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forget_a_tag_and_a_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_a_digest_in_memory_and_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_a_repository_in_memory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

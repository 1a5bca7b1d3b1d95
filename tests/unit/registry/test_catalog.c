/*
 * The catalog across instances (registry/catalog.c): two registries on one filesystem root,
 * as two berth processes behind a load balancer, each with its own driver wrapped to count
 * the storage calls it makes. The directories are never looked at for foreign writers (the
 * interval is made endless) unless a test says so, so only the store's generation can tell
 * one instance what the other changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/vec.h"
#include "helpers/counting.h"
#include "helpers/tmproot.h"
#include "helpers/upload.h"
#include "registry/paths.h"
#include "registry/registry.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

#define REPOS 24

static int setup(void **state)
{
	struct berth_counting_pair *f = berth_counting_pair_new("test-catalog", 0);
	if (!f)
		return -1;
	/* no look unless a test says so */
	berth_catalog_set_foreign_interval(f->a, UINT64_MAX);
	berth_catalog_set_foreign_interval(f->b, UINT64_MAX);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	berth_counting_pair_free(*state);
	return 0;
}

static void push(struct berth_registry *r, const char *repo, const char *content)
{
	char digest[BERTH_DIGEST_STR_MAX];
	assert_int_equal(berth_test_upload(digest, r, repo, content, strlen(content)), 0);
}

/* 1 if the registry's catalog lists name. */
static int listed(struct berth_registry *r, const char *name)
{
	struct berth_strvec v = { 0 };
	assert_int_equal(berth_catalog(&v, r), 0);
	int found = 0;
	for (size_t i = 0; i < v.n; i++)
		found |= strcmp(v.items[i], name) == 0;
	berth_strvec_release(&v);
	return found;
}

static size_t catalog_size(struct berth_registry *r)
{
	struct berth_strvec v = { 0 };
	assert_int_equal(berth_catalog(&v, r), 0);
	size_t n = v.n;
	berth_strvec_release(&v);
	return n;
}

/* An unchanged catalog costs one stat of the generation, never one per repository. */
static void test_unchanged_catalog_is_one_stat(void **state)
{
	struct berth_counting_pair *f = *state;
	char name[64];
	for (int i = 0; i < REPOS; i++) {
		snprintf(name, sizeof(name), "team/repo%02d", i);
		push(f->a, name, "layer");
	}
	assert_int_equal(catalog_size(f->b), REPOS);
	berth_counting_reset(f->db);
	for (int i = 0; i < 3; i++)
		assert_int_equal(catalog_size(f->b), REPOS);
	assert_int_equal(f->db->lists, 0);
	assert_int_equal(f->db->stats, 3);
}

/* A repository made through one instance is in the other's next catalog. */
static void test_repository_made_through_the_other_is_listed_at_once(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "first", "one");
	assert_true(listed(f->b, "first"));
	assert_false(listed(f->b, "second"));
	push(f->a, "second", "two");
	assert_true(listed(f->b, "second"));
	assert_true(listed(f->a, "second"));
}

/* Pushing into a repository the instance knows exists writes no generation. */
static void test_push_into_a_known_repository_bumps_nothing(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "known", "one");
	unsigned bumps = f->da->catalog_generation_puts;
	assert_true(bumps >= 1);
	push(f->a, "known", "two");
	push(f->a, "known", "three");
	assert_int_equal(f->da->catalog_generation_puts, bumps);
	push(f->a, "other", "four"); /* a new one does */
	assert_int_equal(f->da->catalog_generation_puts, bumps + 1);
}

/* a knows the repository; b deletes it; a pushes it again: a sees the delete and tells b. */
static void test_repository_deleted_then_pushed_again_through_the_other(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "again", "one");
	push(f->a, "again", "two");
	assert_true(listed(f->b, "again"));
	assert_int_equal(berth_repo_delete(f->b, "again"), 0);
	assert_false(listed(f->a, "again"));
	assert_false(listed(f->b, "again"));
	push(f->a, "again", "three");
	assert_true(listed(f->b, "again"));
	assert_true(listed(f->a, "again"));
	/* It is known again once a push found no delete since the last one (the push that saw
	 * the delete cannot tell whether another came after its write): then pushes bump nothing. */
	push(f->a, "again", "four");
	unsigned bumps = f->da->catalog_generation_puts;
	push(f->a, "again", "five");
	assert_int_equal(f->da->catalog_generation_puts, bumps);
}

/* Writes a repository (a layer link) as a writer that bumps no generation (Distribution). */
static void foreign_repository(struct berth_counting_pair *f, const char *name)
{
	static const char *const dirs[] = { "", "/_layers", "/_layers/sha256", "/_layers/sha256/ab" };
	char path[512];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s" BERTH_REPOS_ROOT "/%s%s", f->dir, name, dirs[i]);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	snprintf(path, sizeof(path), "%s" BERTH_REPOS_ROOT "/%s/_layers/sha256/ab/link", f->dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("sha256:ab", fp);
	fclose(fp);
}

/*
 * A writer that bumps no generation (Distribution) is seen by the look at the directories,
 * which runs in the background: the requests that find it due, or come while it runs, answer
 * from the snapshot at once (one stat of the generation) rather than wait on it.
 */
static void test_foreign_writer_seen_by_a_look_no_request_waits_on(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "mine", "one");
	assert_false(listed(f->b, "foreign"));
	foreign_repository(f, "foreign");
	berth_counting_gate_close(f->db);
	berth_catalog_set_foreign_interval(f->b, 0);
	berth_counting_reset(f->db);
	assert_false(listed(f->b, "foreign")); /* the look is due: queued */
	assert_int_equal(f->db->stats, 1);
	assert_int_equal(f->db->lists, 0);
	assert_true(berth_counting_gate_wait(f->db, 1)); /* the look is walking */
	berth_counting_reset(f->db);
	assert_false(listed(f->b, "foreign"));
	assert_false(listed(f->b, "foreign"));
	assert_int_equal(f->db->stats, 2);
	assert_int_equal(f->db->lists, 0);
	berth_catalog_set_foreign_interval(f->b, UINT64_MAX);
	berth_counting_gate_open(f->db);
	berth_looks_wait(f->b);
	assert_true(listed(f->b, "foreign"));
	assert_true(atomic_load(&f->db->background) > 0);
}

/* On an object store (no directory versions) the look is a new walk; a generation bump (a
 * berth instance) is still seen at once, while a look runs too. */
static void test_object_store_look_walks_and_bumps_are_seen_at_once(void **state)
{
	struct berth_counting_pair *f = *state;
	struct berth_counting_driver *dc;
	struct berth_registry *c = berth_counting_registry_new(&dc, f->dir, 1);
	assert_non_null(c);
	berth_catalog_set_foreign_interval(c, UINT64_MAX);
	push(f->a, "mine", "one");
	assert_true(listed(c, "mine"));
	foreign_repository(f, "foreign");
	berth_counting_gate_close(dc);
	berth_catalog_set_foreign_interval(c, 0);
	assert_false(listed(c, "foreign"));
	assert_true(berth_counting_gate_wait(dc, 1));
	push(f->a, "bumped", "two"); /* through another berth: the generation says */
	assert_true(listed(c, "bumped"));
	berth_catalog_set_foreign_interval(c, UINT64_MAX);
	berth_counting_gate_open(dc);
	berth_looks_wait(c);
	assert_true(listed(c, "foreign"));
	assert_true(listed(c, "bumped")); /* the look's older walk did not replace the newer */
	berth_registry_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unchanged_catalog_is_one_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repository_made_through_the_other_is_listed_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_into_a_known_repository_bumps_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_repository_deleted_then_pushed_again_through_the_other,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_writer_seen_by_a_look_no_request_waits_on,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_object_store_look_walks_and_bumps_are_seen_at_once,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

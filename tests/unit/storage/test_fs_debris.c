/* The filesystem driver's optional fsck slots: find_debris, remove_debris, quarantine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "helpers/tmproot.h"
#include "storage/driver.h"
#include "storage/storage.h"

struct seen {
	int temp, unexpressible, symlink, unreadable;
	char temp_path[256];
};

static void collect(const struct berth_debris *e, void *payload)
{
	struct seen *s = payload;
	switch (e->kind) {
	case BERTH_DEBRIS_TEMP_FILE:
		s->temp++;
		snprintf(s->temp_path, sizeof(s->temp_path), "%s", e->path);
		break;
	case BERTH_DEBRIS_UNEXPRESSIBLE: s->unexpressible++; break;
	case BERTH_DEBRIS_SYMLINK: s->symlink++; break;
	case BERTH_DEBRIS_UNREADABLE: s->unreadable++; break;
	}
}

static void host_file(const char *root, const char *rel, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int exists(const char *root, const char *rel)
{
	char path[1024];
	struct stat st;
	snprintf(path, sizeof(path), "%s%s", root, rel);
	return lstat(path, &st) == 0;
}

static void test_debris_found_removed_and_quarantined(void **state)
{
	(void)state;
	char root[512], path[1024];
	struct berth_storage_driver *d = NULL;
	assert_int_equal(berth_test_root_new(root, sizeof(root), "debris"), 0);
	assert_int_equal(berth_fs_driver_new(&d, root), 0);
	assert_int_equal(berth_storage_put_content(d, "/v2/a/data", "corrupt", 7), 0);
	host_file(root, "/v2/a/.tmp~abcdef", "half");
	host_file(root, "/v2/a/bad name", "x");
	snprintf(path, sizeof(path), "%s/v2/a/link", root);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	snprintf(path, sizeof(path), "%s/v2/skipped", root);
	assert_int_equal(mkdir(path, 0755), 0);
	host_file(root, "/v2/skipped/.tmp~zzzzzz", "not looked at");

	struct seen s = { 0 };
	assert_int_equal(berth_storage_find_debris(d, "/v2", "skipped", collect, &s), 0);
	assert_int_equal(s.temp, 1);
	assert_string_equal(s.temp_path, "/v2/a/.tmp~abcdef");
	assert_int_equal(s.unexpressible, 1);
	assert_int_equal(s.symlink, 1);
	assert_int_equal(s.unreadable, 0);

	/* Only a temp file can be removed this way: never an object, never a path that climbs. */
	assert_int_equal(berth_storage_remove_debris(d, "/v2/a/data"), BERTH_EINVALID);
	assert_int_equal(berth_storage_remove_debris(d, "/v2/../v2/a/.tmp~abcdef"), BERTH_EINVALID);
	assert_true(exists(root, "/v2/a/data"));
	assert_int_equal(berth_storage_remove_debris(d, s.temp_path), 0);
	assert_false(exists(root, "/v2/a/.tmp~abcdef"));
	assert_int_equal(berth_storage_remove_debris(d, s.temp_path), BERTH_ENOTFOUND);

	/* Quarantine moves aside, never over what is there. */
	char *where = NULL;
	assert_true(berth_storage_can_quarantine(d));
	assert_int_equal(berth_storage_quarantine(&where, d, "/v2/a/data", "/v2/lost+found/x", "a"), 0);
	assert_string_equal(where, "/v2/lost+found/x/a");
	free(where);
	assert_false(exists(root, "/v2/a/data"));
	assert_int_equal(berth_storage_put_content(d, "/v2/b/data", "again", 5), 0);
	assert_int_equal(berth_storage_quarantine(&where, d, "/v2/b/data", "/v2/lost+found/x", "a"), 0);
	assert_string_equal(where, "/v2/lost+found/x/a.1");
	free(where);
	assert_true(exists(root, "/v2/lost+found/x/a"));

	berth_storage_free(d);
	assert_int_equal(berth_test_root_remove(root), 0);
}

/* A driver without the slots: the wrappers say so, nothing happens. */
static void test_inmemory_has_no_debris(void **state)
{
	(void)state;
	struct berth_storage_driver *d = NULL;
	struct seen s = { 0 };
	char *where = NULL;
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_storage_find_debris(d, "/", NULL, collect, &s), BERTH_EUNSUPPORTED);
	assert_int_equal(berth_storage_remove_debris(d, "/.tmp~x"), BERTH_EUNSUPPORTED);
	assert_false(berth_storage_can_quarantine(d));
	assert_int_equal(berth_storage_quarantine(&where, d, "/a", "/b", "c"), BERTH_EUNSUPPORTED);
	assert_null(where);
	berth_storage_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debris_found_removed_and_quarantined),
		cmocka_unit_test(test_inmemory_has_no_debris),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The start-up check of a filesystem storage root: a missing root is created, a file in its
 * place is "not a directory", the probe file leaves nothing behind, a read-only registry is not
 * asked to write; and the OS reason behind a driver failure reaches berth_err_reason once. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "storage/fs_check.h"

struct tmp {
	char dir[64];
};

static int setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s", "/tmp/berth-test-fs-check.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tmp *t = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	int rc = system(cmd);
	free(t);
	return rc == 0 ? 0 : -1;
}

static int entries(const char *dir)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", dir);
	return system(cmd) == 0 ? 0 : 1;
}

static void test_creates_missing_root_and_leaves_nothing(void **state)
{
	struct tmp *t = *state;
	char root[128];
	struct stat st;
	snprintf(root, sizeof(root), "%s/a/b/root", t->dir);
	assert_int_equal(berth_fs_check_root(root, 0), 0);
	assert_int_equal(stat(root, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(entries(root), 0); /* the probe file is gone */
	/* and again, on the existing root */
	assert_int_equal(berth_fs_check_root(root, 0), 0);
	assert_int_equal(entries(root), 0);
}

static void test_file_in_place_of_root(void **state)
{
	struct tmp *t = *state;
	char file[128], below[160];
	snprintf(file, sizeof(file), "%s/plain", t->dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(berth_fs_check_root(file, 0), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "not a directory");
	assert_int_equal(berth_fs_check_root(file, 1), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "not a directory");
	snprintf(below, sizeof(below), "%s/below", file);
	assert_int_equal(berth_fs_check_root(below, 0), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "cannot create it: not a directory");
	assert_int_equal(berth_fs_check_root("", 0), -1);
}

static void test_unwritable_root(void **state)
{
	struct tmp *t = *state;
	char root[128];
	if (geteuid() == 0)
		skip(); /* root writes through any mode; tests/api/test_ops_cli.py mounts a ro tmpfs */
	snprintf(root, sizeof(root), "%s/ro", t->dir);
	assert_int_equal(mkdir(root, 0555), 0);
	assert_int_equal(berth_fs_check_root(root, 0), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "cannot create a file in it: permission denied");
	/* a read-only registry does not need to write */
	assert_int_equal(berth_fs_check_root(root, 1), 0);
	chmod(root, 0755);
}

static void test_err_reason(void **state)
{
	(void)state;
	berth_err_clear(); /* the failures of the tests before */
	assert_string_equal(berth_err_reason(BERTH_ERROR), "error");
	berth_err_set_os(BERTH_ERROR, EACCES);
	assert_string_equal(berth_err_reason(BERTH_ERROR), "permission denied");
	/* told once: a later failure without a noted cause is not given an old one */
	assert_string_equal(berth_err_reason(BERTH_ERROR), "error");
	berth_err_set_os(BERTH_ENOSPC, ENOSPC);
	berth_err_clear();
	assert_string_equal(berth_err_reason(BERTH_ENOSPC), "no space left on storage");
	assert_string_equal(berth_err_os_text(EISDIR), "is a directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_creates_missing_root_and_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_in_place_of_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_root, setup, teardown),
		cmocka_unit_test(test_err_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

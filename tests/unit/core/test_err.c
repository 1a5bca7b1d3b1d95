/* The failure kept per thread (core/err.h): set, overwrite, clear, read by code, long messages
 * cut, OS reasons, save and restore, and one thread's failure never seen by another. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

static int setup(void **state)
{
	(void)state;
	berth_err_clear();
	return 0;
}

static void test_set_returns_code_and_keeps_message(void **state)
{
	(void)state;
	assert_null(berth_err_last());
	assert_int_equal(berth_err_set(BERTH_EDENIED, "tag %s is immutable", "v1"), BERTH_EDENIED);
	const struct berth_failure *f = berth_err_last();
	assert_non_null(f);
	assert_int_equal(f->code, BERTH_EDENIED);
	assert_int_equal(f->os_errno, 0);
	assert_string_equal(f->message, "tag v1 is immutable");
	assert_string_equal(berth_err_message(BERTH_EDENIED), "tag v1 is immutable");
	/* reading does not forget */
	assert_string_equal(berth_err_message(BERTH_EDENIED), "tag v1 is immutable");
}

static void test_overwrite(void **state)
{
	(void)state;
	berth_err_set(BERTH_EINVALID, "first");
	berth_err_set(BERTH_EDIGEST, "second %d", 2);
	assert_int_equal(berth_err_last()->code, BERTH_EDIGEST);
	assert_string_equal(berth_err_message(BERTH_EDIGEST), "second 2");
	/* an OS reason replaces a message, and a message an OS reason */
	berth_err_set_os(BERTH_ERROR, EACCES);
	assert_int_equal(berth_err_last()->os_errno, EACCES);
	assert_string_equal(berth_err_message(BERTH_ERROR), "permission denied");
	berth_err_set(BERTH_ERROR, "plain");
	assert_int_equal(berth_err_last()->os_errno, 0);
	assert_string_equal(berth_err_message(BERTH_ERROR), "plain");
	/* the current message may be an argument of the next */
	berth_err_set(BERTH_EINVALID, "again: %s", berth_err_last()->message);
	assert_string_equal(berth_err_message(BERTH_EINVALID), "again: plain");
}

static void test_clear(void **state)
{
	(void)state;
	berth_err_set(BERTH_ENOTFOUND, "blob %s not found", "sha256:x");
	berth_err_clear();
	assert_null(berth_err_last());
	assert_string_equal(berth_err_message(BERTH_ENOTFOUND), "not found");
	/* berth_err_reason tells a failure once */
	berth_err_set(BERTH_EBUSY, "upload in use");
	assert_string_equal(berth_err_reason(BERTH_EBUSY), "upload in use");
	assert_null(berth_err_last());
	assert_string_equal(berth_err_reason(BERTH_EBUSY), "busy");
}

/* Another code's failure is not told as this one's; in a log line, an OS reason stays the
 * reason whatever code the layers above return for it. */
static void test_message_by_code(void **state)
{
	(void)state;
	berth_err_set(BERTH_EINVALID, "manifest is not valid json");
	assert_string_equal(berth_err_message(BERTH_ERROR), "error");
	assert_string_equal(berth_err_message(BERTH_ENOSPC), "no space left on storage");
	assert_string_equal(berth_err_reason(BERTH_ERROR), "error");
	berth_err_set_os(BERTH_ENOSPC, ENOSPC);
	assert_string_equal(berth_err_message(BERTH_ERROR), "error");
	assert_string_equal(berth_err_message(BERTH_ENOSPC), "no space left on device");
	assert_string_equal(berth_err_reason(BERTH_ERROR), "no space left on device");
	assert_null(berth_err_last());
}

static void test_long_message_cut(void **state)
{
	(void)state;
	char long_text[3 * BERTH_ERR_MESSAGE_MAX];
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	assert_int_equal(berth_err_set(BERTH_EINVALID, "x%sy", long_text), BERTH_EINVALID);
	const char *m = berth_err_message(BERTH_EINVALID);
	assert_int_equal(strlen(m), BERTH_ERR_MESSAGE_MAX - 1);
	assert_int_equal(m[0], 'x');
	assert_int_equal(m[BERTH_ERR_MESSAGE_MAX - 2], 'a');
	/* berth_err_reason's copy is whole too */
	assert_int_equal(strlen(berth_err_reason(BERTH_EINVALID)), BERTH_ERR_MESSAGE_MAX - 1);
}

static void test_save_restore(void **state)
{
	(void)state;
	struct berth_failure saved;
	berth_err_set_os(BERTH_ENOSPC, ENOSPC);
	berth_err_save(&saved);
	assert_null(berth_err_last());
	berth_err_set(BERTH_EINVALID, "meanwhile");
	assert_int_equal(berth_err_restore(&saved), BERTH_ENOSPC);
	assert_int_equal(berth_err_last()->os_errno, ENOSPC);
	assert_string_equal(berth_err_message(BERTH_ENOSPC), "no space left on device");
	/* saving nothing restores nothing */
	berth_err_clear();
	berth_err_save(&saved);
	assert_int_equal(saved.code, BERTH_OK);
	berth_err_set(BERTH_EINVALID, "later");
	assert_int_equal(berth_err_restore(&saved), BERTH_OK);
	assert_null(berth_err_last());
}

static void test_os_text(void **state)
{
	(void)state;
	assert_string_equal(berth_err_os_text(EISDIR), "is a directory");
	assert_string_equal(berth_err_os_text(EROFS), "read-only file system");
}

/* Each thread sets its own failure many times while the others do the same, and reads back
 * exactly its own. */
struct worker {
	int code;
	char name[16];
	int mismatches;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	if (berth_err_last())
		w->mismatches++;
	for (int i = 0; i < 20000; i++) {
		berth_err_set(w->code, "%s %d", w->name, i);
		char want[48];
		snprintf(want, sizeof(want), "%s %d", w->name, i);
		const struct berth_failure *f = berth_err_last();
		if (!f || f->code != w->code || strcmp(f->message, want) != 0)
			w->mismatches++;
	}
	return NULL;
}

static void test_thread_isolation(void **state)
{
	(void)state;
	struct worker w[4] = {
		{ BERTH_EINVALID, "alpha", 0 },
		{ BERTH_EDIGEST, "beta", 0 },
		{ BERTH_ENOSPC, "gamma", 0 },
		{ BERTH_EDENIED, "delta", 0 },
	};
	pthread_t t[4];
	berth_err_set(BERTH_EBUSY, "main's own");
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].mismatches, 0);
	}
	assert_int_equal(berth_err_last()->code, BERTH_EBUSY);
	assert_string_equal(berth_err_message(BERTH_EBUSY), "main's own");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_set_returns_code_and_keeps_message, setup),
		cmocka_unit_test_setup(test_overwrite, setup),
		cmocka_unit_test_setup(test_clear, setup),
		cmocka_unit_test_setup(test_message_by_code, setup),
		cmocka_unit_test_setup(test_long_message_cut, setup),
		cmocka_unit_test_setup(test_save_restore, setup),
		cmocka_unit_test_setup(test_os_text, setup),
		cmocka_unit_test_setup(test_thread_isolation, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

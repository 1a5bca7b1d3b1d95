/*
 * The notification queue: records come out in order and once acknowledged are gone; on disk
 * they survive a reopen (unacknowledged ones come back, acknowledged ones do not); a torn tail
 * record is cut off and what precedes it kept; the bound drops the oldest; compaction keeps
 * the undelivered records; in memory the same contract holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>

#include "core/err.h"
#include "notify/queue.h"

static char dir[] = "/tmp/berth-queue-XXXXXX";

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/berth-queue-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct berth_notify_queue *open_q(const char *d, uint64_t max)
{
	struct berth_notify_queue *q = NULL;
	assert_int_equal(berth_notify_queue_open(&q, d, "hook", max), 0);
	return q;
}

static void append_str(struct berth_notify_queue *q, const char *s)
{
	assert_int_equal(berth_notify_queue_append(q, s, strlen(s)), 0);
}

static void expect_head(struct berth_notify_queue *q, const char *s)
{
	char *p = NULL;
	size_t n = 0;
	assert_int_equal(berth_notify_queue_peek(q, &p, &n), 0);
	assert_int_equal(n, strlen(s));
	assert_string_equal(p, s);
	free(p);
}

static void expect_empty(struct berth_notify_queue *q)
{
	char *p = NULL;
	size_t n = 0;
	assert_int_equal(berth_notify_queue_peek(q, &p, &n), BERTH_ENOTFOUND);
	assert_null(p);
	assert_int_equal(berth_notify_queue_pending(q), 0);
}

static void in_order_then_gone(const char *d)
{
	struct berth_notify_queue *q = open_q(d, 0);
	expect_empty(q);
	append_str(q, "one");
	append_str(q, "two");
	append_str(q, "three");
	assert_int_equal(berth_notify_queue_pending(q), 3);
	assert_int_equal(berth_notify_queue_wait(q, 10), 1);
	expect_head(q, "one");
	expect_head(q, "one"); /* peek does not consume */
	assert_int_equal(berth_notify_queue_ack(q), 0);
	expect_head(q, "two");
	assert_int_equal(berth_notify_queue_ack(q), 0);
	expect_head(q, "three");
	assert_int_equal(berth_notify_queue_ack(q), 0);
	expect_empty(q);
	assert_int_equal(berth_notify_queue_wait(q, 10), 0);
	berth_notify_queue_free(q);
}

static void test_queue__disk_in_order(void **state)
{
	(void)state;
	in_order_then_gone(dir);
}

static void test_queue__memory_in_order(void **state)
{
	(void)state;
	in_order_then_gone(NULL);
}

static void test_queue__reopen_keeps_unacknowledged(void **state)
{
	(void)state;
	struct berth_notify_queue *q = open_q(dir, 0);
	append_str(q, "a");
	append_str(q, "b");
	append_str(q, "c");
	assert_int_equal(berth_notify_queue_ack(q), 0);
	berth_notify_queue_free(q); /* as a SIGKILL would: nothing flushed at close */
	q = open_q(dir, 0);
	assert_int_equal(berth_notify_queue_pending(q), 2);
	expect_head(q, "b");
	assert_int_equal(berth_notify_queue_ack(q), 0);
	append_str(q, "d");
	berth_notify_queue_free(q);
	q = open_q(dir, 0);
	expect_head(q, "c");
	assert_int_equal(berth_notify_queue_ack(q), 0);
	expect_head(q, "d");
	assert_int_equal(berth_notify_queue_ack(q), 0);
	expect_empty(q);
	berth_notify_queue_free(q);
	q = open_q(dir, 0); /* everything delivered: nothing comes back */
	expect_empty(q);
	berth_notify_queue_free(q);
}

static void test_queue__torn_tail_is_cut(void **state)
{
	(void)state;
	struct berth_notify_queue *q = open_q(dir, 0);
	append_str(q, "whole");
	append_str(q, "torn record");
	berth_notify_queue_free(q);
	char path[256];
	snprintf(path, sizeof(path), "%s/hook.0.log", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 3), 0); /* a crash in the middle of an append */
	q = open_q(dir, 0);
	assert_int_equal(berth_notify_queue_pending(q), 1);
	expect_head(q, "whole");
	append_str(q, "after"); /* lands where the torn record was */
	assert_int_equal(berth_notify_queue_ack(q), 0);
	expect_head(q, "after");
	berth_notify_queue_free(q);

	/* a corrupt payload (bad CRC) is cut the same way */
	q = open_q(dir, 0);
	append_str(q, "zzzz");
	berth_notify_queue_free(q);
	assert_int_equal(stat(path, &st), 0);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "y", 1, st.st_size - 1), 1);
	close(fd);
	q = open_q(dir, 0);
	assert_int_equal(berth_notify_queue_pending(q), 1);
	expect_head(q, "after");
	berth_notify_queue_free(q);
}

static void bound_drops_oldest(const char *d)
{
	char rec[100];
	/* on disk each record is 8 + 99 bytes: 10 fit in 1070 */
	struct berth_notify_queue *q = open_q(d, 1070);
	for (int i = 0; i < 25; i++) {
		snprintf(rec, sizeof(rec), "%099d", i);
		assert_int_equal(berth_notify_queue_append(q, rec, 99), 0);
	}
	uint64_t pending = berth_notify_queue_pending(q);
	assert_int_equal(pending + berth_notify_queue_dropped(q), 25);
	assert_true(pending >= 9 && pending <= 10);
	snprintf(rec, sizeof(rec), "%099d", (int)(25 - pending));
	expect_head(q, rec);
	berth_notify_queue_free(q);
	if (!d)
		return;
	q = open_q(d, 1070);
	assert_int_equal(berth_notify_queue_pending(q), pending);
	/* the dropped prefix (over 1070 bytes) goes; the undelivered records stay, in order */
	char old_log[256], new_log[256];
	snprintf(old_log, sizeof(old_log), "%s/hook.0.log", d);
	snprintf(new_log, sizeof(new_log), "%s/hook.1.log", d);
	assert_int_equal(berth_notify_queue_compact(q), 0);
	assert_int_equal(access(old_log, F_OK), -1);
	assert_int_equal(access(new_log, F_OK), 0);
	assert_int_equal(berth_notify_queue_pending(q), pending);
	snprintf(rec, sizeof(rec), "%099d", (int)(25 - pending));
	expect_head(q, rec);
	assert_int_equal(berth_notify_queue_compact(q), 0); /* nothing dead: a no-op */
	assert_int_equal(access(new_log, F_OK), 0);
	berth_notify_queue_free(q);
	/* a compaction that crashed left its old log (after the ack) or its next one (before) */
	char next_log[256];
	snprintf(next_log, sizeof(next_log), "%s/hook.2.log", d);
	FILE *f = fopen(old_log, "w");
	assert_non_null(f);
	fclose(f);
	f = fopen(next_log, "w");
	assert_non_null(f);
	fputs("half a copy", f);
	fclose(f);
	q = open_q(d, 1070); /* the compacted queue reopens with the same records */
	assert_int_equal(access(old_log, F_OK), -1);
	assert_int_equal(access(next_log, F_OK), -1);
	assert_int_equal(berth_notify_queue_pending(q), pending);
	for (uint64_t i = 25 - pending; i < 25; i++) {
		snprintf(rec, sizeof(rec), "%099d", (int)i);
		expect_head(q, rec);
		assert_int_equal(berth_notify_queue_ack(q), 0);
	}
	expect_empty(q);
	berth_notify_queue_free(q);
}

static void test_queue__bound_drops_oldest_disk(void **state)
{
	(void)state;
	bound_drops_oldest(dir);
}

static void test_queue__bound_drops_oldest_memory(void **state)
{
	(void)state;
	bound_drops_oldest(NULL);
}

static void test_queue__too_large_refused(void **state)
{
	(void)state;
	struct berth_notify_queue *q = open_q(dir, 0);
	char *big = calloc(1, BERTH_NOTIFY_RECORD_MAX + 1);
	assert_non_null(big);
	assert_int_equal(berth_notify_queue_append(q, big, BERTH_NOTIFY_RECORD_MAX + 1), BERTH_ETOOLARGE);
	free(big);
	expect_empty(q);
	berth_notify_queue_free(q);
}

static void test_queue__unusable_dir(void **state)
{
	(void)state;
	struct berth_notify_queue *q = NULL;
	assert_int_equal(berth_notify_queue_open(&q, "/nonexistent/berth/queue", "hook", 0),
			 BERTH_ERROR);
	assert_null(q);
	assert_non_null(strstr(berth_err_message(BERTH_ERROR), "cannot open queue 'hook'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue__disk_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__memory_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__reopen_keeps_unacknowledged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__torn_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__bound_drops_oldest_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__bound_drops_oldest_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__too_large_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue__unusable_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

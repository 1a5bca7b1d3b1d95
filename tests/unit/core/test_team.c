/* core/team.c: every item of every batch runs once, on the same few threads throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/team.h"

#define ITEMS 64
#define MAX_TIDS 64

struct counts {
	_Atomic int runs[ITEMS];
	_Atomic pid_t tids[MAX_TIDS]; /* every thread seen, once */
};

static void note_thread(struct counts *c)
{
	pid_t me = gettid();
	for (size_t i = 0; i < MAX_TIDS; i++) {
		pid_t seen = 0;
		if (atomic_load(&c->tids[i]) == me ||
		    atomic_compare_exchange_strong(&c->tids[i], &seen, me) || seen == me)
			return;
	}
}

static void count_item(void *arg, size_t i)
{
	struct counts *c = arg;
	atomic_fetch_add(&c->runs[i], 1);
	note_thread(c);
}

static size_t threads_seen(struct counts *c)
{
	size_t n = 0;
	while (n < MAX_TIDS && atomic_load(&c->tids[n]))
		n++;
	return n;
}

static void test_team_runs_every_item_once_on_the_same_threads(void **state)
{
	(void)state;
	static struct counts c;
	struct berth_team *t = berth_team_new(3);
	const size_t sizes[] = { 0, 1, 2, 7, ITEMS };
	for (int round = 0; round < 500; round++) {
		size_t n = sizes[round % 5];
		memset(&c.runs, 0, sizeof(c.runs));
		berth_team_run(t, count_item, &c, n);
		for (size_t i = 0; i < ITEMS; i++)
			assert_int_equal(atomic_load(&c.runs[i]), i < n ? 1 : 0);
	}
	/* the caller and at most 3 helpers, over 500 batches */
	assert_true(threads_seen(&c) <= 4);
	assert_true(threads_seen(&c) >= 1);
	berth_team_free(t);
	berth_team_free(NULL);
}

static void test_team_without_helpers_runs_on_the_caller(void **state)
{
	(void)state;
	static struct counts c;
	struct berth_team *t = berth_team_new(0);
	berth_team_run(t, count_item, &c, ITEMS);
	for (size_t i = 0; i < ITEMS; i++)
		assert_int_equal(atomic_load(&c.runs[i]), 1);
	assert_int_equal(threads_seen(&c), 1);
	assert_int_equal(atomic_load(&c.tids[0]), gettid());
	berth_team_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_team_runs_every_item_once_on_the_same_threads),
		cmocka_unit_test(test_team_without_helpers_runs_on_the_caller),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

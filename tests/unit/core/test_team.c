/*
 * core/team.c: every item of every batch runs once, on the same few threads throughout; the
 * ordered pipeline steps items as threads come free, passes them on in order, and holds back
 * items while too much waits for its turn. Nothing here depends on the machine's speed: a slow
 * item is made slow by waiting for the other items, not for time.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
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

/* ---- the ordered pipeline ---- */

#define ORDERED_ITEMS 40

struct pipeline {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	size_t stepped;              /* steps returned */
	size_t max_started;          /* the highest item whose step started */
	uint8_t done[ORDERED_ITEMS]; /* per item: its step returned */
	size_t thens;                /* thens run, in order */
	int then_inside;             /* a then is running */
	int overlapped;              /* two thens ran at once */
	int out_of_order;            /* a then ran before its turn */
	size_t hold_until;           /* step(0) waits until items 1..hold_until have stepped */
	size_t started_when_held;    /* max_started when step(0) stopped waiting */
	int waited_out;              /* step(0) saw items 1..hold_until stepped (not a timeout) */
	size_t fail_at;              /* then fails on this item (ORDERED_ITEMS: never) */
};

static void pipeline_init(struct pipeline *p, size_t hold_until, size_t fail_at)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	p->hold_until = hold_until;
	p->fail_at = fail_at;
}

static void pipeline_release(struct pipeline *p)
{
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
}

/* 1 once items 1..p->hold_until have all stepped (p->lock held). */
static int others_stepped(const struct pipeline *p)
{
	for (size_t i = 1; i <= p->hold_until; i++)
		if (!p->done[i])
			return 0;
	return 1;
}

/* Item 0 is the slow one: it waits for the others (60 s at most: the test then fails). */
static size_t pipeline_step(void *arg, size_t i)
{
	struct pipeline *p = arg;
	pthread_mutex_lock(&p->lock);
	if (i > p->max_started)
		p->max_started = i;
	if (i == 0 && p->hold_until) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 60;
		int rc = 0;
		while (!others_stepped(p) && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&p->changed, &p->lock, &until);
		p->started_when_held = p->max_started;
		p->waited_out = others_stepped(p);
	}
	p->done[i] = 1;
	p->stepped++;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return 1;
}

static int pipeline_then(void *arg, size_t i)
{
	struct pipeline *p = arg;
	pthread_mutex_lock(&p->lock);
	p->overlapped |= p->then_inside;
	p->then_inside = 1;
	p->out_of_order |= i != p->thens || !p->done[i];
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&p->lock);
	p->then_inside = 0;
	p->thens++;
	pthread_mutex_unlock(&p->lock);
	return i == p->fail_at ? -5 : 0;
}

/* One slow item holds up only its own thread: the others go on stepping the items after it
 * (items 1..30 while item 0 waits for them; windows of the team's size would never get there),
 * and every item still goes through then once, in order, one at a time. */
static void test_ordered_slides_past_a_slow_item(void **state)
{
	(void)state;
	struct pipeline p;
	pipeline_init(&p, 30, ORDERED_ITEMS);
	struct berth_team *t = berth_team_new(3);
	assert_int_equal(
	    berth_team_run_ordered(t, pipeline_step, pipeline_then, &p, ORDERED_ITEMS, SIZE_MAX),
	    0);
	assert_true(p.waited_out);
	assert_int_equal(p.stepped, ORDERED_ITEMS);
	assert_int_equal(p.thens, ORDERED_ITEMS);
	assert_false(p.overlapped);
	assert_false(p.out_of_order);
	berth_team_free(t);
	pipeline_release(&p);
}

/* What waits for its turn stays under max_held: with item 0 slow and max_held 5, items 1..5
 * step, and the only later items that may have started are those the two other helpers took
 * while item 5 was under way (held was 4 then): none past item 7 before item 0 is through. */
static void test_ordered_holds_back_past_max_held(void **state)
{
	(void)state;
	struct pipeline p;
	pipeline_init(&p, 5, ORDERED_ITEMS);
	struct berth_team *t = berth_team_new(3);
	assert_int_equal(
	    berth_team_run_ordered(t, pipeline_step, pipeline_then, &p, ORDERED_ITEMS, 5), 0);
	assert_true(p.waited_out);
	assert_true(p.started_when_held >= 5 && p.started_when_held <= 7);
	assert_int_equal(p.thens, ORDERED_ITEMS);
	assert_false(p.overlapped);
	assert_false(p.out_of_order);
	berth_team_free(t);
	pipeline_release(&p);
}

/* A failing then stops the run: its code comes back and no later then runs. */
static void test_ordered_stops_at_a_failing_then(void **state)
{
	(void)state;
	struct pipeline p;
	pipeline_init(&p, 0, 10);
	struct berth_team *t = berth_team_new(3);
	assert_int_equal(
	    berth_team_run_ordered(t, pipeline_step, pipeline_then, &p, ORDERED_ITEMS, 4), -5);
	assert_int_equal(p.thens, 11);
	assert_false(p.out_of_order);
	/* no step starts once it failed: at most the items within max_held of it, and those
	 * under way on the three helpers and the caller */
	assert_true(p.max_started <= 10 + 4 + 4);
	berth_team_free(t);
	pipeline_release(&p);
}

/* Without helpers, the caller steps and passes on every item itself, in order. */
static void test_ordered_without_helpers(void **state)
{
	(void)state;
	struct pipeline p;
	pipeline_init(&p, 0, ORDERED_ITEMS);
	struct berth_team *t = berth_team_new(0);
	assert_int_equal(
	    berth_team_run_ordered(t, pipeline_step, pipeline_then, &p, ORDERED_ITEMS, 0), 0);
	assert_int_equal(p.thens, ORDERED_ITEMS);
	assert_false(p.out_of_order);
	assert_int_equal(berth_team_run_ordered(t, pipeline_step, pipeline_then, &p, 0, 0), 0);
	berth_team_free(t);
	pipeline_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_team_runs_every_item_once_on_the_same_threads),
		cmocka_unit_test(test_team_without_helpers_runs_on_the_caller),
		cmocka_unit_test(test_ordered_slides_past_a_slow_item),
		cmocka_unit_test(test_ordered_holds_back_past_max_held),
		cmocka_unit_test(test_ordered_stops_at_a_failing_then),
		cmocka_unit_test(test_ordered_without_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

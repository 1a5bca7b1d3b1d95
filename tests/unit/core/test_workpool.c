/* The worker pool (core/workpool.h): jobs run in order on a bounded number of threads, the
 * queue and busy counts are what the metrics show, and freeing runs what is queued. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/metrics.h"
#include "core/util.h"
#include "core/workpool.h"

/* A job that waits at a gate until the test opens it, counting how many run at once. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
	int running, most_running, done, started;
	int start_order[64];
};

struct job {
	struct gate *g;
	int id;
};

static void gated(void *arg)
{
	struct job *j = arg;
	struct gate *g = j->g;
	pthread_mutex_lock(&g->lock);
	if (++g->running > g->most_running)
		g->most_running = g->running;
	g->start_order[g->started++] = j->id;
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	g->running--;
	g->done++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void gate_init(struct gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static int gate_running(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	int n = g->running;
	pthread_mutex_unlock(&g->lock);
	return n;
}

/* The metrics show queued jobs and busy workers (over every pool counted). */
static void assert_metrics(long queued, long busy)
{
	struct berth_buf out = BERTH_BUF_INIT(1 << 20);
	char want[64];
	berth_workpool_metrics_register();
	berth_metrics_render(&out);
	snprintf(want, sizeof(want), "berth_workers_queued %ld\n", queued);
	assert_non_null(strstr(out.data, want));
	snprintf(want, sizeof(want), "berth_workers_busy %ld\n", busy);
	assert_non_null(strstr(out.data, want));
	berth_buf_release(&out);
}

static void test_bounded_and_counted(void **state)
{
	struct berth_workpool *p = NULL;
	struct gate g;
	struct job jobs[10];
	gate_init(&g);
	assert_int_equal(berth_workpool_new(&p, 3), 0);
	for (int i = 0; i < 10; i++) {
		jobs[i] = (struct job){ &g, i };
		berth_workpool_submit(p, gated, &jobs[i]);
	}
	for (int i = 0; i < 500 && gate_running(&g) < 3; i++)
		usleep(2000);
	/* three run (the pool's bound), seven wait */
	assert_int_equal(gate_running(&g), 3);
	assert_int_equal(berth_workpool_busy(p), 3);
	assert_int_equal(berth_workpool_queued(p), 7);
	assert_metrics(7, 3);
	gate_open(&g);
	berth_workpool_free(p); /* waits for every job */
	assert_int_equal(g.done, 10);
	assert_int_equal(g.most_running, 3);
	/* first in, first out: the three that ran first are the first three submitted */
	for (int i = 0; i < 3; i++)
		assert_true(g.start_order[i] < 3);
	pthread_cond_destroy(&g.cond);
	pthread_mutex_destroy(&g.lock);
}

static _Atomic int ran;

static void count(void *arg)
{
	(void)arg;
	usleep(1000);
	atomic_fetch_add(&ran, 1);
}

static void test_free_runs_what_is_queued(void **state)
{
	struct berth_workpool *p = NULL;
	atomic_store(&ran, 0);
	assert_int_equal(berth_workpool_new(&p, 1), 0);
	for (int i = 0; i < 20; i++)
		berth_workpool_submit(p, count, NULL);
	berth_workpool_free(p);
	assert_int_equal(atomic_load(&ran), 20);
	berth_workpool_free(NULL);
}

static void test_zero_threads_refused(void **state)
{
	struct berth_workpool *p = NULL;
	assert_int_equal(berth_workpool_new(&p, 0), BERTH_EINVALID);
	assert_null(p);
}

/* The threads of this process now. */
static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* 1 once the process has n threads (a worker ends just after its last job), 0 if not in 30 s. */
static int threads_become(int n)
{
	for (int i = 0; i < 15000 && threads_now() != n; i++)
		usleep(2000);
	return threads_now() == n;
}

/*
 * On demand: no thread until a job comes; the worker runs the jobs queued one at a time, in
 * order, uncounted by the metrics (no request waits on them), and ends when the queue runs
 * empty; the next job starts another.
 */
static void test_on_demand_worker_ends_when_idle(void **state)
{
	struct berth_workpool *p = NULL;
	struct gate g;
	struct job jobs[5];
	int before = threads_now();
	gate_init(&g);
	assert_int_equal(berth_workpool_new_on_demand(&p, 1), 0);
	assert_int_equal(threads_now(), before);
	for (int i = 0; i < 5; i++) {
		jobs[i] = (struct job){ &g, i };
		assert_int_equal(berth_workpool_submit(p, gated, &jobs[i]), 0);
	}
	for (int i = 0; i < 15000 && gate_running(&g) < 1; i++)
		usleep(2000);
	assert_int_equal(gate_running(&g), 1);
	assert_int_equal(threads_now(), before + 1);
	assert_int_equal(berth_workpool_busy(p), 1);
	assert_int_equal(berth_workpool_queued(p), 4);
	assert_metrics(0, 0);
	gate_open(&g);
	berth_workpool_wait_idle(p);
	assert_int_equal(g.done, 5);
	assert_int_equal(g.most_running, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(g.start_order[i], i);
	assert_true(threads_become(before));

	atomic_store(&ran, 0);
	assert_int_equal(berth_workpool_submit(p, count, NULL), 0); /* another worker */
	berth_workpool_wait_idle(p);
	assert_int_equal(atomic_load(&ran), 1);
	assert_true(threads_become(before));
	berth_workpool_free(p);
	pthread_cond_destroy(&g.cond);
	pthread_mutex_destroy(&g.lock);
}

/* Freeing an on-demand pool runs what is queued and joins its worker. */
static void test_on_demand_free_runs_what_is_queued(void **state)
{
	struct berth_workpool *p = NULL;
	atomic_store(&ran, 0);
	assert_int_equal(berth_workpool_new_on_demand(&p, 1), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(berth_workpool_submit(p, count, NULL), 0);
	berth_workpool_free(p);
	assert_int_equal(atomic_load(&ran), 20);
	assert_int_equal(berth_workpool_new_on_demand(&p, 0), BERTH_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded_and_counted),
		cmocka_unit_test(test_free_runs_what_is_queued),
		cmocka_unit_test(test_zero_threads_refused),
		cmocka_unit_test(test_on_demand_worker_ends_when_idle),
		cmocka_unit_test(test_on_demand_free_runs_what_is_queued),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

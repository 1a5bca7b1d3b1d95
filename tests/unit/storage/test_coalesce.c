/* Coalesced stats (storage/coalesce.h), driven by a stat held at a gate: callers arriving while
 * a stat is in flight share the next one, never the one in flight, so a write completed before
 * a caller arrived is always seen; errors are shared with their message; the table keeps only
 * paths with callers, and freeing it wakes the waiters. Conditions are made to happen (a stat
 * held until the test lets it go, callers counted as they wait), never waited for by time. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/err.h"
#include "storage/coalesce.h"

#define PATIENCE_S 30 /* how long a condition the test made may take to show (a stuck test fails) */

/* The stat of a store holding one object whose version is `value`: each call reads the value as
 * it is sent, then waits at the gate until the test releases it (calls numbered from 1). */
struct gated_store {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t value;     /* the object's version now (a write changes it) */
	unsigned sent;      /* calls that read the value */
	unsigned released;  /* calls 1..released may answer */
	unsigned fail_call; /* this call answers BERTH_EUNAVAILABLE with a message (0: none) */
};

static void store_init(struct gated_store *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->value = 1;
}

static void store_release(struct gated_store *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static int gated_stat(struct berth_stat *out, const char *path, void *payload)
{
	struct gated_store *g = payload;
	(void)path;
	pthread_mutex_lock(&g->lock);
	unsigned call = ++g->sent;
	uint64_t seen = g->value;
	pthread_cond_broadcast(&g->cond);
	while (g->released < call)
		pthread_cond_wait(&g->cond, &g->lock);
	int fail = call == g->fail_call;
	pthread_mutex_unlock(&g->lock);
	if (fail)
		return berth_err_set(BERTH_EUNAVAILABLE, "s3: HEAD %s: server busy", path);
	out->size = seen;
	out->version = seen;
	return 0;
}

/* A write to the object: later calls read the new value. */
static void store_write(struct gated_store *g, uint64_t value)
{
	pthread_mutex_lock(&g->lock);
	g->value = value;
	pthread_mutex_unlock(&g->lock);
}

static void store_release_call(struct gated_store *g, unsigned call)
{
	pthread_mutex_lock(&g->lock);
	g->released = call;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Waits until n calls were sent (fails the test past PATIENCE_S). */
static void store_wait_sent(struct gated_store *g, unsigned n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PATIENCE_S;
	pthread_mutex_lock(&g->lock);
	int rc = 0;
	while (g->sent < n && rc == 0)
		rc = pthread_cond_timedwait(&g->cond, &g->lock, &until);
	unsigned sent = g->sent;
	pthread_mutex_unlock(&g->lock);
	assert_int_equal(sent, n);
}

static unsigned store_sent(struct gated_store *g)
{
	pthread_mutex_lock(&g->lock);
	unsigned n = g->sent;
	pthread_mutex_unlock(&g->lock);
	return n;
}

/* Waits until n callers of path wait for a round not sent yet. */
static void wait_waiting(struct berth_coalesce *c, const char *path, size_t n)
{
	time_t until = time(NULL) + PATIENCE_S;
	const struct timespec tick = { 0, 1000000 };
	while (berth_coalesce_waiting(c, path) != n && time(NULL) < until)
		nanosleep(&tick, NULL);
	assert_int_equal(berth_coalesce_waiting(c, path), n);
}

/* One caller on a thread of its own. */
struct caller {
	pthread_t thread;
	struct berth_coalesce *c;
	const char *path;
	struct gated_store *g;
	int rc, shared;
	struct berth_stat st;
	char message[128];
};

static void *caller_run(void *arg)
{
	struct caller *k = arg;
	k->rc = berth_coalesce_stat(&k->st, &k->shared, k->c, k->path, gated_stat, k->g);
	if (k->rc < 0)
		snprintf(k->message, sizeof(k->message), "%s", berth_err_message(k->rc));
	return NULL;
}

static void caller_start(struct caller *k, struct berth_coalesce *c, const char *path, struct gated_store *g)
{
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->path = path;
	k->g = g;
	assert_int_equal(pthread_create(&k->thread, NULL, caller_run, k), 0);
}

static void caller_join(struct caller *k)
{
	assert_int_equal(pthread_join(k->thread, NULL), 0);
}

#define N 8

/* `first` sends a stat of path, held at the gate; then the object is written (to version
 * `write`, unless 0) and N `late` callers arrive: returns once all N wait. */
static void start_behind_a_held_stat(struct caller *first, struct caller late[N], struct berth_coalesce *c,
				     const char *path, struct gated_store *g, uint64_t write)
{
	caller_start(first, c, path, g);
	store_wait_sent(g, 1);
	if (write)
		store_write(g, write);
	for (int i = 0; i < N; i++)
		caller_start(&late[i], c, path, g);
	wait_waiting(c, path, N);
}

/* A stat in flight read version 1; the object is written (version 2); N callers arrive. They
 * must not take the answer in flight (it predates them): they wait, and share one new stat. */
static void test_waiters_share_the_next_round(void **state)
{
	(void)state;
	struct gated_store g;
	store_init(&g);
	struct berth_coalesce *c = berth_coalesce_new(16);
	struct caller first, late[N];
	start_behind_a_held_stat(&first, late, c, "/tag/current/link", &g, 2);
	assert_int_equal(store_sent(&g), 1); /* they wait: nothing more is sent meanwhile */

	store_release_call(&g, 1);
	caller_join(&first);
	assert_int_equal(first.rc, 0);
	assert_int_equal(first.st.version, 1);
	assert_int_equal(first.shared, 0);
	store_wait_sent(&g, 2); /* the next round, for all N */
	assert_int_equal(berth_coalesce_waiting(c, "/tag/current/link"), 0);
	store_release_call(&g, 2);
	int senders = 0;
	for (int i = 0; i < N; i++) {
		caller_join(&late[i]);
		assert_int_equal(late[i].rc, 0);
		assert_int_equal(late[i].st.version, 2);
		assert_int_equal(late[i].st.size, 2);
		senders += !late[i].shared;
	}
	assert_int_equal(senders, 1);
	assert_int_equal(store_sent(&g), 2);
	struct berth_coalesce_counts counts;
	berth_coalesce_counts(&counts, c);
	assert_int_equal(counts.rounds, 2);
	assert_int_equal(counts.shared, N - 1);
	assert_int_equal(counts.direct, 0);
	assert_int_equal(berth_coalesce_paths(c), 0); /* the entry went with its last caller */
	berth_coalesce_free(c);
	store_release(&g);
}

/* A caller that arrives while the round sent for earlier waiters is in flight, after a write,
 * waits for the round after it and sees the write; the earlier waiter gets its own round's. */
static void test_a_caller_after_a_write_never_sees_the_old_answer(void **state)
{
	(void)state;
	struct gated_store g;
	store_init(&g);
	struct berth_coalesce *c = berth_coalesce_new(16);
	struct caller first, second, third;
	caller_start(&first, c, "/p", &g);
	store_wait_sent(&g, 1);
	caller_start(&second, c, "/p", &g);
	wait_waiting(c, "/p", 1);
	store_release_call(&g, 1);
	store_wait_sent(&g, 2); /* second's round, reading version 1 */
	store_write(&g, 3);
	caller_start(&third, c, "/p", &g);
	wait_waiting(c, "/p", 1);
	store_release_call(&g, 2);
	caller_join(&first);
	caller_join(&second);
	assert_int_equal(second.st.version, 1);
	store_wait_sent(&g, 3);
	store_release_call(&g, 3);
	caller_join(&third);
	assert_int_equal(third.rc, 0);
	assert_int_equal(third.st.version, 3);
	assert_int_equal(store_sent(&g), 3);
	berth_coalesce_free(c);
	store_release(&g);
}

/* The round's failure reaches every caller sharing it, with its message. */
static void test_errors_are_shared(void **state)
{
	(void)state;
	struct gated_store g;
	store_init(&g);
	g.fail_call = 2;
	struct berth_coalesce *c = berth_coalesce_new(16);
	struct caller first, late[N];
	start_behind_a_held_stat(&first, late, c, "/p", &g, 0);
	store_release_call(&g, 2);
	caller_join(&first);
	assert_int_equal(first.rc, 0);
	for (int i = 0; i < N; i++) {
		caller_join(&late[i]);
		assert_int_equal(late[i].rc, BERTH_EUNAVAILABLE);
		assert_string_equal(late[i].message, "s3: HEAD /p: server busy");
	}
	assert_int_equal(store_sent(&g), 2);
	/* The next caller sends its own stat: a failure is not kept. */
	store_release_call(&g, 3);
	struct berth_stat st;
	int shared = 1;
	assert_int_equal(berth_coalesce_stat(&st, &shared, c, "/p", gated_stat, &g), 0);
	assert_int_equal(shared, 0);
	assert_int_equal(store_sent(&g), 3);
	berth_coalesce_free(c);
	store_release(&g);
}

/* Other paths do not wait; past max_paths a caller sends its own stat; entries go when done. */
static void test_paths_apart_and_bounded(void **state)
{
	(void)state;
	struct gated_store g;
	store_init(&g);
	struct berth_coalesce *c = berth_coalesce_new(2);
	struct caller a, b, x;
	caller_start(&a, c, "/a", &g);
	store_wait_sent(&g, 1);
	caller_start(&b, c, "/b", &g); /* not behind /a's stat */
	store_wait_sent(&g, 2);
	assert_int_equal(berth_coalesce_paths(c), 2);
	caller_start(&x, c, "/x", &g); /* a third path: the table is full */
	store_wait_sent(&g, 3);
	assert_int_equal(berth_coalesce_paths(c), 2);
	store_release_call(&g, 3);
	caller_join(&a);
	caller_join(&b);
	caller_join(&x);
	assert_int_equal(a.rc | b.rc | x.rc, 0);
	struct berth_coalesce_counts counts;
	berth_coalesce_counts(&counts, c);
	assert_int_equal(counts.rounds, 2);
	assert_int_equal(counts.direct, 1);
	assert_int_equal(counts.shared, 0);
	assert_int_equal(berth_coalesce_paths(c), 0);
	berth_coalesce_free(c);
	store_release(&g);
}

struct freeing {
	pthread_t thread;
	struct berth_coalesce *c;
};

static void *free_run(void *arg)
{
	berth_coalesce_free(((struct freeing *)arg)->c);
	return NULL;
}

/* Freeing the table wakes its waiters at once (BERTH_EUNAVAILABLE), waits for the stat in
 * flight, whose sender keeps its answer, and only then frees. */
static void test_free_wakes_the_waiters(void **state)
{
	(void)state;
	struct gated_store g;
	store_init(&g);
	struct freeing f = { .c = berth_coalesce_new(16) };
	struct caller first, late[N];
	start_behind_a_held_stat(&first, late, f.c, "/p", &g, 0);
	assert_int_equal(pthread_create(&f.thread, NULL, free_run, &f), 0);
	for (int i = 0; i < N; i++) { /* while the stat in flight is still held */
		caller_join(&late[i]);
		assert_int_equal(late[i].rc, BERTH_EUNAVAILABLE);
	}
	store_release_call(&g, 1);
	caller_join(&first);
	assert_int_equal(first.rc, 0);
	assert_int_equal(first.st.version, 1);
	assert_int_equal(pthread_join(f.thread, NULL), 0);
	assert_int_equal(store_sent(&g), 1);
	store_release(&g);
}

/* Many callers on a few paths while a writer bumps each path's version: every answer is at
 * least the version its caller saw before asking (never an answer from before it arrived). */
#define PATHS 3
#define THREADS 8
#define CALLS 400

static _Atomic uint64_t versions[PATHS];
static const char *const load_paths[PATHS] = { "/l/0", "/l/1", "/l/2" };

static int versioned_stat(struct berth_stat *out, const char *path, void *payload)
{
	(void)payload;
	int i = path[3] - '0';
	uint64_t v = atomic_load(&versions[i]);
	sched_yield(); /* a request's round trip: others arrive meanwhile */
	out->version = v;
	return 0;
}

struct loader {
	pthread_t thread;
	struct berth_coalesce *c;
	int seed;
	int stale; /* answers older than the caller */
	int shared;
};

static void *loader_run(void *arg)
{
	struct loader *l = arg;
	for (int k = 0; k < CALLS; k++) {
		int i = (l->seed + k) % PATHS;
		uint64_t before = atomic_load(&versions[i]);
		struct berth_stat st;
		int shared = 0;
		if (berth_coalesce_stat(&st, &shared, l->c, load_paths[i], versioned_stat, NULL) == 0 &&
		    st.version < before)
			l->stale++;
		l->shared += shared;
	}
	return NULL;
}

static _Atomic int writing;

static void *writer_run(void *arg)
{
	(void)arg;
	for (uint64_t n = 0; atomic_load(&writing); n++) {
		atomic_fetch_add(&versions[n % PATHS], 1);
		sched_yield();
	}
	return NULL;
}

static void test_linearizable_under_load(void **state)
{
	(void)state;
	struct berth_coalesce *c = berth_coalesce_new(64);
	struct loader l[THREADS];
	pthread_t writer;
	atomic_store(&writing, 1);
	assert_int_equal(pthread_create(&writer, NULL, writer_run, NULL), 0);
	for (int t = 0; t < THREADS; t++) {
		l[t] = (struct loader){ .c = c, .seed = t };
		assert_int_equal(pthread_create(&l[t].thread, NULL, loader_run, &l[t]), 0);
	}
	int stale = 0, shared = 0;
	for (int t = 0; t < THREADS; t++) {
		assert_int_equal(pthread_join(l[t].thread, NULL), 0);
		stale += l[t].stale;
		shared += l[t].shared;
	}
	atomic_store(&writing, 0);
	assert_int_equal(pthread_join(writer, NULL), 0);
	assert_int_equal(stale, 0);
	struct berth_coalesce_counts counts;
	berth_coalesce_counts(&counts, c);
	assert_int_equal(counts.rounds + counts.shared + counts.direct, THREADS * CALLS);
	assert_int_equal(counts.shared, (uint64_t)shared);
	assert_int_equal(berth_coalesce_paths(c), 0);
	berth_coalesce_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waiters_share_the_next_round),
		cmocka_unit_test(test_a_caller_after_a_write_never_sees_the_old_answer),
		cmocka_unit_test(test_errors_are_shared),
		cmocka_unit_test(test_paths_apart_and_bounded),
		cmocka_unit_test(test_free_wakes_the_waiters),
		cmocka_unit_test(test_linearizable_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The worker pool (core/workpool.h). */
#include "core/workpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

struct job {
	struct job *next;
	berth_work_fn fn;
	void *arg;
};

/* A worker's place in the pool: on demand, a thread left in it is joined before it is reused. */
struct worker {
	struct berth_workpool *pool;
	pthread_t thread;
	int started; /* a thread was created in it and is not joined yet */
	int active;  /* that thread takes jobs (on demand: not yet leaving) */
};

struct berth_workpool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	pthread_cond_t idle; /* nothing queued or running (berth_workpool_wait_idle) */
	struct job *head, *tail;
	size_t queued;
	unsigned busy;
	int stopping;
	int on_demand; /* workers start with jobs and end when the queue runs empty */
	unsigned n_threads;
	unsigned active;  /* on demand: workers taking jobs */
	struct worker *workers;
	atomic_uint submitting; /* submits not returned yet (they signal after the unlock) */
};

/* Over every pool but those on demand, for the metrics (one such pool per process in practice). */
static _Atomic long queued_total, busy_total;

/* Adds d to a counter of the metrics, unless p is on demand. */
static void count(struct berth_workpool *p, _Atomic long *total, long d)
{
	if (!p->on_demand)
		atomic_fetch_add(total, d);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct berth_workpool *p = w->pool;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stopping && !p->on_demand)
			pthread_cond_wait(&p->work, &p->lock);
		struct job *j = p->head;
		if (!j)
			break; /* stopping (or on demand), and nothing left to run */
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		p->busy++;
		count(p, &queued_total, -1);
		count(p, &busy_total, 1);
		pthread_mutex_unlock(&p->lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&p->lock);
		p->busy--;
		count(p, &busy_total, -1);
		if (!p->head && !p->busy)
			pthread_cond_broadcast(&p->idle);
	}
	/* cleared under the lock, with the queue empty: a job queued later starts a worker */
	w->active = 0;
	if (p->on_demand)
		p->active--;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Starts a worker in w (p->lock held, or p not yet shared); a thread that left w is joined
 * first. 0, or BERTH_ERROR when no thread can be created. */
static int start(struct berth_workpool *p, struct worker *w, const pthread_attr_t *attr)
{
	if (w->started)
		pthread_join(w->thread, NULL); /* it left its loop: it is ending or gone */
	w->started = 0;
	if (pthread_create(&w->thread, attr, worker_main, w) != 0)
		return BERTH_ERROR;
	w->started = w->active = 1;
	if (p->on_demand)
		p->active++;
	return 0;
}

/* Stops the workers (the queue is empty or gets run) and frees p. */
static void stop(struct berth_workpool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		if (p->workers[i].started)
			pthread_join(p->workers[i].thread, NULL);
	while (atomic_load(&p->submitting)) /* one whose job ran already: a few instructions left */
		sched_yield();
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->workers);
	free(p);
}

static struct berth_workpool *pool_new(unsigned threads, int on_demand)
{
	struct berth_workpool *p = berth_calloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->on_demand = on_demand;
	p->n_threads = threads;
	p->workers = berth_calloc(threads, sizeof(*p->workers));
	for (unsigned i = 0; i < threads; i++)
		p->workers[i].pool = p;
	return p;
}

int berth_workpool_new(struct berth_workpool **out, unsigned threads)
{
	if (threads == 0)
		return BERTH_EINVALID;
	struct berth_workpool *p = pool_new(threads, 0);
	pthread_attr_t attr;
	/* Workers run handlers and drivers (curl): 256 KiB of stack is plenty and keeps a few
	 * hundred workers cheap. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (unsigned i = 0; i < threads; i++) {
		if (start(p, &p->workers[i], &attr) < 0) {
			berth_error("cannot start worker thread %u of %u", i + 1, threads);
			pthread_attr_destroy(&attr);
			stop(p);
			return BERTH_ERROR;
		}
	}
	pthread_attr_destroy(&attr);
	*out = p;
	return 0;
}

int berth_workpool_new_on_demand(struct berth_workpool **out, unsigned threads)
{
	if (threads == 0)
		return BERTH_EINVALID;
	*out = pool_new(threads, 1);
	return 0;
}

/* On demand (p->lock held): starts a worker when the jobs queued outnumber the workers taking
 * them, in a place no worker takes jobs in. 0, or BERTH_ERROR when none runs and none starts. */
static int start_on_demand(struct berth_workpool *p)
{
	if (p->queued <= p->active - p->busy || p->active == p->n_threads)
		return 0;
	for (unsigned i = 0; i < p->n_threads; i++) {
		if (p->workers[i].active)
			continue;
		if (start(p, &p->workers[i], NULL) == 0)
			return 0;
		berth_warn("cannot start a background worker thread");
		break;
	}
	return p->active ? 0 : BERTH_ERROR;
}

int berth_workpool_submit(struct berth_workpool *p, berth_work_fn fn, void *arg)
{
	struct job *j = berth_malloc(sizeof(*j));
	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	atomic_fetch_add(&p->submitting, 1);
	pthread_mutex_lock(&p->lock);
	if (p->on_demand && p->stopping) {
		/* under the lock stop() sets it with: no thread starts after stop() joins them */
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_sub(&p->submitting, 1);
		free(j);
		return BERTH_ERROR;
	}
	struct job *prev_tail = p->tail;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	count(p, &queued_total, 1);
	if (p->on_demand && start_on_demand(p) < 0) {
		/* no worker would ever take it: handed back (it is the queue's last job) */
		p->tail = prev_tail;
		if (prev_tail)
			prev_tail->next = NULL;
		else
			p->head = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_sub(&p->submitting, 1);
		free(j);
		return BERTH_ERROR;
	}
	pthread_mutex_unlock(&p->lock);
	/* after the unlock: the worker woken does not wake only to wait for the lock (under load on
	 * S3, a third of the lock's waits); `submitting` keeps p until then. Workers on demand
	 * never wait for work (they end when the queue is empty, and start_on_demand started one
	 * for this job if needed): no signal. on_demand is set before p is shared. */
	if (!p->on_demand)
		pthread_cond_signal(&p->work);
	atomic_fetch_sub(&p->submitting, 1);
	return 0;
}

void berth_workpool_wait_idle(struct berth_workpool *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->head || p->busy)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

size_t berth_workpool_queued(struct berth_workpool *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = p->queued;
	pthread_mutex_unlock(&p->lock);
	return n;
}

unsigned berth_workpool_busy(struct berth_workpool *p)
{
	pthread_mutex_lock(&p->lock);
	unsigned n = p->busy;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void berth_workpool_free(struct berth_workpool *p)
{
	if (p)
		stop(p);
}

static void render_metrics(struct berth_buf *out)
{
	berth_buf_printf(out, "# HELP berth_workers_queued Requests waiting for a storage worker.\n"
			      "# TYPE berth_workers_queued gauge\n"
			      "berth_workers_queued %ld\n"
			      "# HELP berth_workers_busy Storage workers running a request's storage work.\n"
			      "# TYPE berth_workers_busy gauge\n"
			      "berth_workers_busy %ld\n",
			 atomic_load(&queued_total), atomic_load(&busy_total));
}

void berth_workpool_metrics_register(void)
{
	berth_metrics_register(render_metrics);
}

/* The worker pool (core/workpool.h). */
#include "core/workpool.h"

#include <pthread.h>
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

struct berth_workpool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct job *head, *tail;
	size_t queued;
	unsigned busy;
	int stopping;
	unsigned n_threads;
	pthread_t *threads;
};

/* Over every pool, for the metrics (one pool per process in practice). */
static _Atomic long queued_total, busy_total;

static void *worker_main(void *arg)
{
	struct berth_workpool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->work, &p->lock);
		struct job *j = p->head;
		if (!j)
			break; /* stopping, and nothing left to run */
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		p->busy++;
		atomic_fetch_sub(&queued_total, 1);
		atomic_fetch_add(&busy_total, 1);
		pthread_mutex_unlock(&p->lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&p->lock);
		p->busy--;
		atomic_fetch_sub(&busy_total, 1);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Stops the first n threads of p (the queue is empty or gets run) and frees p. */
static void stop(struct berth_workpool *p, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

int berth_workpool_new(struct berth_workpool **out, unsigned threads)
{
	if (threads == 0)
		return BERTH_EINVALID;
	struct berth_workpool *p = berth_calloc(1, sizeof(*p));
	pthread_attr_t attr;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	p->threads = berth_calloc(threads, sizeof(*p->threads));
	/* Workers run handlers and drivers (curl): 256 KiB of stack is plenty and keeps a few
	 * hundred workers cheap. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], &attr, worker_main, p) != 0) {
			berth_error("cannot start worker thread %u of %u", i + 1, threads);
			pthread_attr_destroy(&attr);
			stop(p, i);
			return BERTH_ERROR;
		}
		p->n_threads++;
	}
	pthread_attr_destroy(&attr);
	*out = p;
	return 0;
}

void berth_workpool_submit(struct berth_workpool *p, berth_work_fn fn, void *arg)
{
	struct job *j = berth_malloc(sizeof(*j));
	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	atomic_fetch_add(&queued_total, 1);
	pthread_cond_signal(&p->work);
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
		stop(p, p->n_threads);
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

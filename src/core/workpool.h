/*
 * A bounded pool of worker threads running jobs from one FIFO queue: slow work (a remote
 * storage call) leaves the threads that must not wait (libmicrohttpd's polling threads). The
 * number of threads is fixed at creation; the queue holds whatever is submitted (its callers
 * bound it: one job per request in flight). Queue depth and busy workers are metrics
 * (berth_workpool_metrics_register).
 */
#ifndef BERTH_CORE_WORKPOOL_H
#define BERTH_CORE_WORKPOOL_H

#include <stddef.h>

struct berth_workpool;

typedef void (*berth_work_fn)(void *arg);

/* Starts threads workers. 0, BERTH_EINVALID for 0 threads, or BERTH_ERROR when a thread cannot
 * be started. */
int berth_workpool_new(struct berth_workpool **out, unsigned threads);
/* Queues fn(arg) to run on a worker. Never blocks on the work; arg belongs to fn. */
void berth_workpool_submit(struct berth_workpool *p, berth_work_fn fn, void *arg);
/* Jobs waiting for a worker, and workers running one, now. */
size_t berth_workpool_queued(struct berth_workpool *p);
unsigned berth_workpool_busy(struct berth_workpool *p);
/* Runs every job already queued, joins the workers and frees. Blocks for as long as the jobs
 * take (each is bounded by its own timeouts). Accepts NULL. */
void berth_workpool_free(struct berth_workpool *p);

/* Registers berth_workers_queued and berth_workers_busy (summed over the pools alive). */
void berth_workpool_metrics_register(void);

#endif

/*
 * A bounded pool of worker threads running jobs from one FIFO queue: slow work (a remote
 * storage call) leaves the threads that must not wait (libmicrohttpd's polling threads). The
 * number of threads is fixed at creation; the queue holds whatever is submitted (its callers
 * bound it: one job per request in flight). Queue depth and busy workers are metrics
 * (berth_workpool_metrics_register).
 *
 * A pool made on demand (berth_workpool_new_on_demand) is for occasional background work: its
 * workers start when jobs are queued and end when the queue runs empty, so that an idle process
 * keeps no thread for it, and its jobs are not counted in the metrics (they are no requests).
 */
#ifndef BERTH_CORE_WORKPOOL_H
#define BERTH_CORE_WORKPOOL_H

#include <stddef.h>

struct berth_workpool;

typedef void (*berth_work_fn)(void *arg);

/* Starts threads workers. 0, BERTH_EINVALID for 0 threads, or BERTH_ERROR when a thread cannot
 * be started. */
int berth_workpool_new(struct berth_workpool **out, unsigned threads);
/* A pool of at most threads workers, none started yet. 0, or BERTH_EINVALID for 0 threads. */
int berth_workpool_new_on_demand(struct berth_workpool **out, unsigned threads);
/* Queues fn(arg) to run on a worker; arg belongs to fn. Never blocks on the work; on demand it
 * may start a worker. 0, or (on demand only) BERTH_ERROR when no worker runs and none can be
 * started, or once the pool is stopping: then fn is not called and arg stays the caller's. */
int berth_workpool_submit(struct berth_workpool *p, berth_work_fn fn, void *arg);
/* Waits until no job is queued or running (tests: make a job's outcome happen). */
void berth_workpool_wait_idle(struct berth_workpool *p);
/* Jobs waiting for a worker, and workers running one, now. */
size_t berth_workpool_queued(struct berth_workpool *p);
unsigned berth_workpool_busy(struct berth_workpool *p);
/* Runs every job already queued, joins the workers and frees. Blocks for as long as the jobs
 * take (each is bounded by its own timeouts). Accepts NULL. */
void berth_workpool_free(struct berth_workpool *p);

/* Registers berth_workers_queued and berth_workers_busy (summed over the pools alive). */
void berth_workpool_metrics_register(void);

#endif

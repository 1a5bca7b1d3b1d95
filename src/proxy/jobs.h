/*
 * The proxy's own threads: a fixed pool running jobs (blocking upstream calls and the storage
 * work that goes with them) off the HTTP polling threads. Self-contained so that it can later
 * move onto a general worker pool.
 */
#ifndef BERTH_PROXY_JOBS_H
#define BERTH_PROXY_JOBS_H

#include <stddef.h>

struct berth_jobs;
typedef void (*berth_job_fn)(void *arg);

/* Starts n threads. 0 or BERTH_ERROR (no thread could start). */
int berth_jobs_start(struct berth_jobs **out, size_t n, const char *name);
/* Queues fn(arg); it runs on one of the threads. 0, or BERTH_EBUSY when max_queued jobs already
 * wait (the caller answers 503 rather than let the queue grow without bound). */
int berth_jobs_submit(struct berth_jobs *j, berth_job_fn fn, void *arg);
/* Runs every job queued, then stops the threads and frees. Accepts NULL. */
void berth_jobs_stop(struct berth_jobs *j);

#endif

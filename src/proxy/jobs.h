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
/* The same, with threads that run nice_delta nicer than the thread starting them (work that must
 * not take the CPU from serving on a busy machine; a thread that cannot lower its priority runs
 * as it is, which berth_debug says). */
int berth_jobs_start_nice(struct berth_jobs **out, size_t n, const char *name, int nice_delta);
/* Queues fn(arg); it runs on one of the threads. 0, or BERTH_EBUSY when max_queued jobs already
 * wait (the caller answers 503 rather than let the queue grow without bound). */
int berth_jobs_submit(struct berth_jobs *j, berth_job_fn fn, void *arg);
/* Runs fn(arg) on one of the threads and waits for it to return; on the calling thread instead
 * when it cannot be queued (full, or stopping). Blocks. */
void berth_jobs_run(struct berth_jobs *j, berth_job_fn fn, void *arg);
/* Runs every job queued, then stops the threads and frees. Accepts NULL. */
void berth_jobs_stop(struct berth_jobs *j);

#endif

/*
 * A task run on a thread of its own: first after first_ms, then every interval_ms, until
 * stopped. Stopping wakes the thread at once (it does not wait for the next turn) and waits
 * for a run in progress to finish. Used by upload purging, the health check and the HTTP
 * connection watchdog.
 */
#ifndef BERTH_CORE_PERIODIC_H
#define BERTH_CORE_PERIODIC_H

#include <stdint.h>

struct berth_periodic;

/* 0, or BERTH_ERROR when no thread can be started. */
int berth_periodic_start(struct berth_periodic **out, int64_t first_ms, int64_t interval_ms,
			 void (*run)(void *arg), void *arg);
/* Stops, joins and frees. Accepts NULL. */
void berth_periodic_stop(struct berth_periodic *p);

#endif

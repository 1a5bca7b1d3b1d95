/*
 * One notification endpoint's queue of events (opaque byte records), first in first out.
 *
 * On disk (a directory given): records are appended to "<name>.<seq>.log" and fsynced before
 * berth_notify_queue_append returns, so an event is durable once the request that caused it
 * is answered. "<name>.ack" holds the log's sequence number and the offset of the first record
 * not yet delivered; berth_notify_queue_ack moves it forward (written, not fsynced: after a
 * machine crash an event may be delivered twice, never lost). A record is a 4-byte length, a
 * 4-byte CRC-32 of the payload, then the payload; at open a torn or corrupt tail (a crash in
 * the middle of an append) is cut off. When everything is delivered the log is truncated;
 * berth_notify_queue_compact copies what is left to the next sequence's log once the delivered
 * (or dropped) prefix outgrows the bound, and removes the old one.
 *
 * In memory (dir NULL): the same contract, lost with the process (as Distribution).
 *
 * Both are bounded: when an append would take the undelivered records past max_bytes, the
 * oldest are dropped (logged and counted) until it fits. Thread-safe: any number of appenders,
 * one consumer (peek/ack/wait).
 */
#ifndef BERTH_NOTIFY_QUEUE_H
#define BERTH_NOTIFY_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* The largest record; a bigger event is refused (BERTH_ETOOLARGE). */
#define BERTH_NOTIFY_RECORD_MAX (4u << 20)

struct berth_notify_queue;

/*
 * Opens (creating as needed) the queue called name (a file name part: [A-Za-z0-9._-]) under
 * dir, or an in-memory one when dir is NULL. max_bytes bounds the undelivered records
 * (0 = unbounded). 0, or BERTH_ERROR with its message (core/err.h). Blocks on disk I/O.
 */
int berth_notify_queue_open(struct berth_notify_queue **out, const char *dir, const char *name,
			    uint64_t max_bytes);
/* Wakes waiters, then frees; NULL is fine. Undelivered records stay on disk. */
void berth_notify_queue_free(struct berth_notify_queue *q);

/* Appends a record, durable on return with a directory. 0, BERTH_ETOOLARGE or BERTH_ERROR. */
int berth_notify_queue_append(struct berth_notify_queue *q, const void *p, size_t n);
/* Copies the oldest undelivered record into a new heap buffer (*out, caller frees).
 * 0, BERTH_ENOTFOUND when empty, or BERTH_ERROR. */
int berth_notify_queue_peek(struct berth_notify_queue *q, char **out, size_t *n);
/* Marks the oldest record delivered. 0 or BERTH_ERROR. */
int berth_notify_queue_ack(struct berth_notify_queue *q);
/* With a directory, when the dead prefix of the log is at least max_bytes (64 MiB when
 * unbounded): copies the undelivered records to a new log and removes the old one. Appenders
 * wait only for the records appended during the copy. Consumer's thread only. 0 or BERTH_ERROR. */
int berth_notify_queue_compact(struct berth_notify_queue *q);
/* Waits up to timeout_ms for a record or berth_notify_queue_wake. 1 if one is pending. */
int berth_notify_queue_wait(struct berth_notify_queue *q, int64_t timeout_ms);
/* Makes every waiter return now and later ones at once (shutdown). */
void berth_notify_queue_wake(struct berth_notify_queue *q);

/* Undelivered records and records dropped by the bound since open. */
uint64_t berth_notify_queue_pending(struct berth_notify_queue *q);
uint64_t berth_notify_queue_dropped(struct berth_notify_queue *q);

#endif

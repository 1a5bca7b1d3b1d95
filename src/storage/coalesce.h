/*
 * Coalesced stats: concurrent stats of one path share the driver's requests, without ever
 * answering from a request older than the caller.
 *
 * The rule: a caller uses the answer of a stat only if that stat was sent after the caller
 * arrived. So when no stat of the path is in flight, the caller sends one; when one is, the
 * caller waits for the next round: once the one in flight ends, one new stat is sent on behalf
 * of every caller that arrived meanwhile, and all of them get its answer, or its error (code
 * and message). A write that completed before a caller arrived is therefore always seen by it,
 * as if it had sent its own stat (linearizable), while N callers of one path cost at most one
 * stat in flight and one waiting, not N.
 *
 * For stats that wait on a network (S3: a HEAD; the Redis blob descriptor lookups of
 * registry/blob_descriptors.c, keyed by repository and digest), where the store is shared with
 * other processes and an answer may not be kept. A table holds only the paths that have callers
 * in it (an entry goes with its last caller), at most max_paths of them: a caller of another
 * path past that sends its own stat. Each waiter sleeps on a semaphore of its own and is woken
 * once, with its answer or to send its round; a caller allocates nothing but the path's entry
 * when it is the first.
 */
#ifndef BERTH_STORAGE_COALESCE_H
#define BERTH_STORAGE_COALESCE_H

#include <stddef.h>
#include <stdint.h>

#include "storage/driver.h"

struct berth_coalesce;

/* The stat to share: 0 with *out filled, or a BERTH_E* code (its message set with
 * berth_err_set, if any, reaches every caller sharing it). May block. */
typedef int (*berth_coalesce_stat_fn)(struct berth_stat *out, const char *path, void *payload);

/* What a table did, for tests and metrics. */
struct berth_coalesce_counts {
	uint64_t rounds;  /* stats sent by the table for callers (one per round) */
	uint64_t shared;  /* callers answered by a stat another caller sent */
	uint64_t direct;  /* callers past max_paths, that sent their own stat */
};

/* A new table of at most max_paths paths at once (at least 1). Owned by the caller. */
struct berth_coalesce *berth_coalesce_new(size_t max_paths);
/* Stops the table and frees it: callers waiting for a round are woken and get
 * BERTH_EUNAVAILABLE (as do callers arriving meanwhile); a stat in flight is waited for (its
 * sender keeps its answer). Blocks until no caller is left. Accepts NULL. */
void berth_coalesce_free(struct berth_coalesce *c);

/*
 * fn(out, path, payload), shared with the concurrent callers of path under the rule above:
 * its return value (BERTH_EUNAVAILABLE when the table stops while waiting). *shared is 1 when
 * the answer came from a stat another caller sent, else 0. Blocks while a stat of path is in
 * flight and then for the one sent next. Thread-safe; path is borrowed for the call.
 */
int berth_coalesce_stat(struct berth_stat *out, int *shared, struct berth_coalesce *c, const char *path,
			berth_coalesce_stat_fn fn, void *payload);

/* Callers of path waiting for a round not sent yet (tests: to know that they arrived). */
size_t berth_coalesce_waiting(struct berth_coalesce *c, const char *path);
/* Paths with callers in the table now. */
size_t berth_coalesce_paths(struct berth_coalesce *c);
/* The table's counts so far. */
void berth_coalesce_counts(struct berth_coalesce_counts *out, struct berth_coalesce *c);

#endif

/*
 * When each tag and manifest of a repository was last pulled (registry/pulls.c), for the
 * retention criterion keeppulledwithin (registry/retention.h).
 *
 * A pull is recorded in memory only (a mutex and a hash map: no storage call on the request's
 * path), by reference: "<name>:<tag>" for a GET by tag, "<name>@<digest>" for a GET by digest.
 * A background flush writes what changed since the last one to the store, through the storage
 * driver, at most once per flush per reference, then forgets it. Stored records live outside
 * Distribution's tree, where neither Distribution nor berth's catalog, tag list, gc or fsck
 * look:
 *     /berth/pulls/<name>/_tags/<tag>             (repository components never start with '_')
 *     /berth/pulls/<name>/_digests/<alg>/<hex>
 * each holding the last pull time in decimal seconds since the epoch (no newline). A flush
 * writes a record only when its time is newer than the stored one, so instances sharing a
 * store keep the newest pull any of them flushed; a crash loses at most one flush period.
 */
#ifndef BERTH_REGISTRY_PULLS_H
#define BERTH_REGISTRY_PULLS_H

#include <stdint.h>

struct berth_storage_driver;
struct berth_pulls;

/* An empty record set. Never fails (allocations abort). */
struct berth_pulls *berth_pulls_new(void);
/* Frees without flushing (see berth_pulls_flush). Accepts NULL. */
void berth_pulls_free(struct berth_pulls *p);

/* Records a pull of name's reference (a tag or "<alg>:<hex>") at now (seconds). Takes a mutex,
 * no I/O: for the request's path. Inputs already validated. */
void berth_pulls_record(struct berth_pulls *p, const char *name, const char *reference, int64_t now);

/* Writes every reference pulled since its last flush whose stored record is older, then
 * forgets it. 0, or the first storage error (those references are kept for the next flush).
 * Blocks (storage I/O); one flush at a time. */
int berth_pulls_flush(struct berth_pulls *p, struct berth_storage_driver *driver);

/* The last pull of name's reference: the newer of the stored record (when driver is not NULL)
 * and what p (when not NULL) holds in memory. -1 when it was never pulled (or the record
 * cannot be read: a record that cannot be read keeps no tag). Blocks (storage I/O) unless
 * driver is NULL. */
int64_t berth_pulls_last(struct berth_pulls *p, struct berth_storage_driver *driver, const char *name,
			 const char *reference);

/* Forgets name's reference (a tag or "<alg>:<hex>"): what p (when not NULL) holds in memory, and
 * the stored record, so that a tag removed or a manifest deleted leaves no record behind (a
 * flush running meanwhile removes the record it wrote again). 0 or a storage error
 * (BERTH_ENOTFOUND is 0). Blocks. */
int berth_pulls_forget(struct berth_pulls *p, struct berth_storage_driver *driver, const char *name,
		       const char *reference);

/* 1 if name has stored digest records, 0 if not (or that cannot be told): one storage call, to
 * spare a caller forgetting many digests a call for each when there are none. Blocks. */
int berth_pulls_has_digests(struct berth_storage_driver *driver, const char *name);

/* Removes every record of name (a repository deleted), in p (when not NULL) and stored, not of
 * the repositories nested under it. Storage errors are ignored: a record left is harmless (it
 * keeps a tag of that name at most keeppulledwithin longer). Blocks. */
void berth_pulls_forget_repo(struct berth_pulls *p, struct berth_storage_driver *driver, const char *name);

#endif

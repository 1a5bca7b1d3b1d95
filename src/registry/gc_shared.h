/*
 * Online garbage collection across instances (several `berth serve` on one filesystem root or
 * one S3 bucket): what replaces, between processes, the sweep lock each process has inside
 * (registry_int.h, gc_lock). Only shared state is used: the store itself, read and written
 * through the driver, so that it works on the filesystem and on S3 alike, with or without Redis.
 *
 * Sweep notices. Before a batch of deletions, the collecting instance writes a notice,
 * /berth/gc/sweeping/<instance>, naming every digest of the batch and an expiry (now + 30 s);
 * it then reads each item's age again, deletes what is still old, and removes the notice. An
 * instance that links or references a blob first refreshes the blob's age (touch), then reads
 * the notices of the other instances: if one names the blob, it waits until that notice no
 * longer does (the batch is over), and starts again (touch, read). Two steps each, in
 * opposite order, on linearizable storage (a POSIX filesystem; S3 and RGW are strongly
 * consistent for PUT, HEAD, LIST and copy): if the pusher's read missed the notice, the
 * notice was written after it, so the collector's age check, which follows its notice, comes
 * after the pusher's touch and finds the blob young, and keeps it; if the read found it, the
 * pusher relies on the blob only after the batch, touching it again (absent: it was deleted,
 * and the push stores it again or answers MANIFEST_BLOB_UNKNOWN). Either way no blob a push
 * relies on is deleted in that window. What the notices do not cover is the age rule's own
 * premise: in one process the sweep lock makes every push that touched a blob before a run
 * began visible to the run's mark; between processes only the delay does, so each push step
 * (a manifest PUT from its reference checks to its revision link, an upload's commit) must end
 * within `delay` of its touches (hours by default; a PUT takes milliseconds, seconds under
 * heavy load). A collector deletes nothing later than 20 s after writing its notice
 * (the rest of the batch is kept, for the next run), so a notice left by a collector that died
 * delays a push at most 30 s; the hosts' clocks must agree to well within those 10 s (NTP).
 * A notice has to be visible, not durable, and is written without fsync on a filesystem
 * (berth_storage_put_content_as with BERTH_SYNC_NONE; on S3 a PUT is visible once answered, as
 * any PUT): the argument above needs only that the pusher's read, and the collector's age
 * check, see what
 * the other completed before them. It matters only while its collector may still delete; a
 * collector that dies, process or host, deletes nothing more, so a notice a crash then loses,
 * or leaves torn or empty (read as lapsed), leaves no deletion uncovered.
 *
 * The lease. /berth/gc/lease names the instance that collects and until when; another
 * instance skips its runs while the lease is held, and takes it over once it has lapsed (the
 * holder died or stopped collecting). The lease only saves the other instances the work:
 * safety rests on the notices alone, so two instances collecting at once (a lapse raced for)
 * are still safe.
 *
 * The generation. /berth/gc/generation changes with every run that removed links; the other
 * instances, which count the stored-bytes quotas in memory (registry/quota.h), count them
 * again from the store when they see it change (a generation of registry/generation.c, at
 * BERTH_GC_GENERATION_PATH).
 *
 * All three live at the driver's root, outside docker/registry/v2: Distribution and its tools never
 * look there.
 */
#ifndef BERTH_REGISTRY_GC_SHARED_H
#define BERTH_REGISTRY_GC_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "core/oid.h"

struct berth_registry;

#define BERTH_GC_SHARED_DIR "/berth/gc"
#define BERTH_GC_NOTICES_DIR BERTH_GC_SHARED_DIR "/sweeping"
#define BERTH_GC_LEASE_PATH BERTH_GC_SHARED_DIR "/lease"
#define BERTH_GC_GENERATION_PATH BERTH_GC_SHARED_DIR "/generation"

/* How long a notice holds (its expiry), and how long before it its writer stops deleting. */
#define BERTH_GC_NOTICE_TTL_MS 30000
#define BERTH_GC_NOTICE_MARGIN_MS 10000

/* Wall-clock milliseconds (CLOCK_REALTIME): notices and leases are compared across hosts. */
int64_t berth_gc_wall_ms(void);

/*
 * Writes this instance's notice naming the n digests; *deadline_ms: the time after which none
 * of them may be deleted any more. Blocks (one write to storage). A storage error: nothing of
 * the batch may be deleted.
 */
int berth_gc_notice_post(int64_t *deadline_ms, struct berth_registry *r, const struct berth_oid *d,
			 size_t n);
/* Removes this instance's notice (a failure is logged: the notice then lapses by itself). */
void berth_gc_notice_clear(struct berth_registry *r);
/*
 * Called after digest's blob was touched: 0 when no other instance's live notice names it,
 * 1 when one did (this call returned only once none did: the caller touches again and calls
 * again), or a storage error. Blocks: one listing, and one read per notice found.
 */
int berth_gc_notice_wait(struct berth_registry *r, const char *digest);
/* Removes notices that lapsed over a minute ago (left by instances that died). */
void berth_gc_notice_prune(struct berth_registry *r);

/*
 * 1 if this instance holds the lease now (taken, or renewed) until now + hold_ms; 0 if
 * another instance holds it (*holder gets its id, *until_ms its expiry); or a storage error.
 */
int berth_gc_lease_take(struct berth_registry *r, int64_t hold_ms, char holder[64], int64_t *until_ms);


#endif

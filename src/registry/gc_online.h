/*
 * Online garbage collection (storage.maintenance.gc): registry/gc.c's mark and sweep, run
 * inside `berth serve` on a thread of its own every `interval` while it serves pushes and
 * pulls, with no read-only window.
 *
 * Why a concurrent push never loses what it needs:
 *  - Age. Whatever links or references a blob refreshes the blob data's mtime (the driver's
 *    `touch`): an upload's commit (new or already stored blob), a cross-repository mount, a
 *    HEAD or stat of a blob in a repository (a client that finds a layer so skips pushing it),
 *    and a manifest PUT, for its own blob, its config, its layers and its index children with
 *    their own configs and layers (a run that found a child untagged keeps it once it is
 *    young again, but did not mark what it names). A
 *    blob or an untagged manifest whose blob data is younger than `delay` is never collected:
 *    that is the grace a push in progress has between its layers and its manifest.
 *  - The sweep lock (registry_int.h, gc_lock). Those refreshes happen with the lock held
 *    shared, together with the link or the manifest they serve (a PUT holds it from the check
 *    of its references until its tag is written). The collection reads its start time with
 *    the lock held exclusively: every refresh before that start belongs to a push that has
 *    finished, whose links the mark phase sees; every refresh after it is newer than the
 *    start. It deletes a blob, a revision or a layer link only with the lock held exclusively,
 *    after reading the blob's mtime again: older than start - delay and unmarked, nothing can
 *    reference it. A push that checks a blob after its deletion finds it gone (404, or 400
 *    MANIFEST_BLOB_UNKNOWN for the manifest) and pushes it again: never a manifest stored
 *    without its blobs. A blob re-pushed after its deletion is stored again whole, and its
 *    link stays (only links to blobs that are gone are removed).
 *  - Across processes (several berth on one filesystem root or S3 bucket, each with the same
 *    gc section) the sweep lock is replaced by state in the store (registry/gc_shared.h): each
 *    batch's sweep notice, written before its age checks and read by every refresh after its
 *    touch, so that a refresh through another instance either sees the batch (and waits it
 *    out) or is seen young by it; and a lease, so that one instance collects at a time.
 *    Drivers without `touch` are refused (S3's is a copy of the object onto itself).
 *
 * Deletions are done in batches of 64 items (8 threads) under the lock, so a push waits for
 * at most one batch; one sweep notice covers up to 8 batches (512 items). Reads (pulls) never
 * take the lock. The collection's threads run at nice 10: serving gets the CPU first.
 */
#ifndef BERTH_REGISTRY_GC_ONLINE_H
#define BERTH_REGISTRY_GC_ONLINE_H

#include <stddef.h>
#include <stdint.h>

struct berth_registry;
struct berth_gc_online;

/*
 * A step of each cycle run before the mark phase (retention rules, registry/retention.h):
 * it may delete tags and manifests, which the same cycle then collects. dry_run is the
 * collection's. A negative return is logged; the cycle goes on.
 */
typedef int (*berth_gc_cycle_step)(struct berth_registry *r, int dry_run, void *payload);

#define BERTH_GC_MAX_STEPS 4

struct berth_gc_online_options {
	int64_t interval_ms;  /* storage.maintenance.gc.interval: between the end of a run and
			       * the start of the next; the first run is one interval after start */
	int64_t delay_ms;     /* storage.maintenance.gc.delay */
	int delete_untagged;  /* storage.maintenance.gc.deleteuntagged */
	int dry_run;          /* storage.maintenance.gc.dryrun: log what would go, change nothing */
	/* run in this order before each mark phase */
	berth_gc_cycle_step before_mark[BERTH_GC_MAX_STEPS];
	void *before_mark_payload[BERTH_GC_MAX_STEPS];
	size_t n_before_mark;
};

/*
 * Starts the collection thread on r, whose registry was created with gc_online set (ages are
 * refreshed). BERTH_EUNSUPPORTED if r's driver cannot refresh ages (no `touch`);
 * BERTH_ERROR if no thread can be started.
 */
int berth_gc_online_start(struct berth_gc_online **out, struct berth_registry *r,
			  const struct berth_gc_online_options *o);
/* Stops the thread, waiting for a run in progress to finish. Accepts NULL. */
void berth_gc_online_stop(struct berth_gc_online *g);

/* Registers berth_gc_runs_total, berth_gc_duration_seconds, ... with the metrics. */
void berth_gc_metrics_register(void);

#endif

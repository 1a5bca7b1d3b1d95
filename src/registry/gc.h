/*
 * Garbage collection: Distribution's mark and sweep (registry/storage/garbagecollect.go) over
 * the same storage layout (registry/paths.h), run offline against a storage driver.
 *
 * Mark: every repository (found as the catalog finds them) and every manifest revision in it
 * (_manifests/revisions/<alg>/<hex>/link). Without delete_untagged every revision is kept; with
 * it, only the revisions some tag's current/link names, plus, transitively, every revision a kept
 * manifest references (the children of an index) and every revision whose "subject" is a kept
 * manifest (OCI 1.1 referrers: signatures, SBOMs). A kept manifest marks its own blob, its
 * config, its layers (foreign ones too, like Distribution: harmless when absent) and its
 * children.
 * Sweep: with delete_untagged, each revision that was not kept is removed (its revision link
 * dir and the tags/<tag>/index/<alg>/<hex> entries naming it); then every blob under blobs/
 * that is not marked is removed (its whole blobs/<alg>/<xx>/<hex> dir); then every
 * _layers/<alg>/<hex> link whose blob is not marked is removed from every repository.
 *
 * Safety: anything the mark phase cannot read for certain (a listing or read failing with an
 * I/O error) aborts the run before anything is deleted. A manifest whose blob is missing is
 * reported and skipped; one that no longer validates is reported and the digests its JSON names
 * (config, layers, manifests, schema1 fsLayers) are still marked, so nothing it may need goes.
 * A repository whose tag links cannot be read keeps all its revisions. Only sha256 and sha512
 * digests are understood; paths under other algorithms are never touched.
 * Memory: the marked set holds fixed-size binary digests (32 or 64 bytes each, hashed); blobs
 * other than manifests are never read.
 *
 * Offline (options.registry NULL) it is not safe against concurrent pushes: run it with the
 * registry stopped or read-only, as with Distribution. Online, inside `berth serve`, see
 * registry/gc_online.h for what makes it safe.
 */
#ifndef BERTH_REGISTRY_GC_H
#define BERTH_REGISTRY_GC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "storage/driver.h"

struct berth_registry;

struct berth_gc_options {
	int dry_run;         /* report what would be deleted, change nothing */
	int delete_untagged; /* also delete manifests no tag reaches (Distribution's -m) */
	int quiet;           /* no per-item lines and no progress: only errors and the summary */
	/* Per-item lines in Distribution's words ("<repo>: marking manifest <d>", "blob eligible
	 * for deletion: <d>", ...) and the final summary. NULL: none. */
	FILE *out;
	/* Progress for large stores (each repository, every 1000 blobs). NULL: none. */
	FILE *progress;
	/* Online collection (registry/gc_online.h), NULL offline: the serving registry, whose
	 * sweep lock and caches the run takes. Then blobs and manifests younger than delay_ms
	 * (by their blob data's mtime) stay, each deletion re-checks its item's age with the lock
	 * held exclusively, problems go to the log, and each item eligible for deletion is logged
	 * (info in a dry run, debug otherwise) instead of written to out. */
	struct berth_registry *registry;
	int64_t delay_ms;
};

struct berth_gc_stats {
	uint64_t repositories;        /* repositories visited */
	uint64_t manifests_marked;    /* revisions kept (per repository) */
	uint64_t blobs_marked;        /* distinct digests marked */
	uint64_t blobs_scanned;       /* blobs found under blobs/ */
	uint64_t blobs_deleted;       /* blobs deleted (or, in a dry run, eligible for deletion) */
	uint64_t bytes_freed;         /* their total size */
	uint64_t manifests_deleted;   /* revisions deleted / eligible (delete_untagged) */
	uint64_t layer_links_deleted; /* _layers links deleted / eligible */
	uint64_t warnings;            /* problems reported on stderr that did not stop the run */
	uint64_t young_kept;          /* online: unreferenced blobs and manifests kept for their age */
	/* Wall-clock time of each phase, in nanoseconds (berth_gc_times_fmt writes them out). */
	uint64_t mark_ns;      /* repositories found, manifests read, what they reference marked */
	uint64_t manifests_ns; /* untagged manifests deleted (delete_untagged) */
	uint64_t scan_ns;      /* blobs/ enumerated */
	uint64_t blobs_ns;     /* unmarked blobs deleted */
	uint64_t links_ns;     /* stale layer links found and deleted */
	uint64_t notices_ns;   /* online: sweep notices written and removed (within the three sweeps) */
};

/* "mark 1.20s, manifests 0.01s, scan 0.30s, blobs 1.50s, layer links 0.90s, notices 0.01s"
 * into out (cap bytes; 128 are plenty). */
void berth_gc_times_fmt(char *out, size_t cap, const struct berth_gc_stats *st);

/*
 * Runs one collection. Returns 0, or a negative BERTH_E* code: if it fails during the mark
 * phase nothing has been deleted; a failure while deleting is reported, the sweep goes on with
 * the rest, and the first error is returned at the end. *out (may be NULL) is filled either way.
 */
int berth_gc_run(struct berth_storage_driver *d, const struct berth_gc_options *o,
		 struct berth_gc_stats *out);

#endif

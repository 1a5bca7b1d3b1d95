/*
 * Storage consistency check (`berth fsck`): verifies a store in Distribution's layout
 * (registry/paths.h) and optionally repairs what can be repaired without losing data.
 *
 * Checks, in order:
 *   1. blobs/: every <alg>/<xx>/<hex>/data is stream-hashed; bytes that do not hash to the
 *      name are a corrupt blob. A file that is not part of the layout is reported.
 *   2. repositories/: every link file (_layers/<alg>/<hex>/link,
 *      _manifests/revisions/<alg>/<hex>/link, _manifests/tags/<tag>/current/link,
 *      _manifests/tags/<tag>/index/<alg>/<hex>/link) must hold a valid digest, equal to the
 *      digest its path encodes (current/link encodes none), naming a blob that exists and is not
 *      corrupt (else it is dangling). A link's content is read as serving reads it
 *      (registry/link.h: whitespace around the digest is tolerated). A _layers link whose blob
 *      is missing is dangling only if a manifest of its repository references the blob; else
 *      it is what Distribution's garbage-collect leaves behind (it deletes the blob, not the
 *      link): counted in collected_layer_links, not a problem. A tag's current link must also
 *      name a revision of the repository; a tag directory without current/link (a tag write
 *      cut short: listed, but it resolves to nothing) is incomplete. Upload sessions
 *      (_uploads/<id>) are counted; one without its startedat file can never be resumed nor
 *      purged and is reported as stale.
 *   3. manifests: every revision's blob must be a JSON object; a manifest berth can parse has its
 *      config and layers (unless foreign) linked in the repository and its children (index)
 *      present as revisions, else a reference is missing.
 *   4. orphans: exactly the blobs `berth garbage-collect` (default mode) deletes: no revision
 *      link names it and no revision's manifest references it (config, layers, manifests,
 *      blobs, schema1 fsLayers, read from the JSON as gc reads them). A layer or tag link alone
 *      keeps nothing. Orphans are garbage collection's business, never repaired here.
 *   5. what only the storage medium shows, through the driver's optional find_debris slot
 *      (storage/driver.h; the filesystem driver has it): temp files (".tmp~*", left by an
 *      interrupted atomic write) anywhere under docker/registry/v2, names the storage layout
 *      cannot express, symbolic links.
 *
 * Repair (o->repair), done only after the whole scan succeeded:
 *   - a corrupt blob is moved aside (the driver's quarantine slot) to
 *     docker/registry/v2/lost+found/<alg>/<hex> (".1", ".2"... when taken), never deleted; its links are then dangling, and removed;
 *   - a dangling link is removed with its <hex> directory (a tag: its whole tags/<tag>
 *     directory, as untagging does);
 *   - a link whose content is wrong but whose path names a good blob is rewritten;
 *   - temp files, stale upload directories and incomplete tags are removed.
 *   Never touched: orphan blobs, corrupt manifests, missing references, unknown files, current
 *   links holding garbage. Corrupt blobs are only moved aside by a driver with a quarantine slot.
 *
 * The store must not be written while fsck runs (stop the registry or make it read-only): a
 * push in progress has temp files and half-linked content that a repair would remove.
 */
#ifndef BERTH_REGISTRY_FSCK_H
#define BERTH_REGISTRY_FSCK_H

#include <stdint.h>
#include <stdio.h>

#include "storage/driver.h"

enum berth_fsck_kind {
	BERTH_FSCK_CORRUPT_BLOB,      /* blob bytes do not hash to the blob's name */
	BERTH_FSCK_BAD_LINK,          /* link content is not a valid digest / not its path's digest */
	BERTH_FSCK_DANGLING_LINK,     /* link names a blob (or, for a tag, a revision) that is gone */
	BERTH_FSCK_CORRUPT_MANIFEST,  /* revision blob is not a JSON object */
	BERTH_FSCK_MISSING_REFERENCE, /* a manifest names a blob / child the repository lacks */
	BERTH_FSCK_ORPHAN_BLOB,       /* blob named by no link */
	BERTH_FSCK_TEMP_FILE,         /* leftover temp file of an interrupted write */
	BERTH_FSCK_STALE_UPLOAD,      /* upload directory without startedat */
	BERTH_FSCK_INCOMPLETE_TAG,    /* tag directory without current/link */
	BERTH_FSCK_UNKNOWN_FILE,      /* a file that is not part of the layout */
	BERTH_FSCK_UNREADABLE,        /* an I/O error reading something (checked no further) */
	BERTH_FSCK_KIND_COUNT,
};

/* What happened to a problem. */
enum berth_fsck_action {
	BERTH_FSCK_REPORTED = 0, /* reported only (no --repair, or nothing fsck may do) */
	BERTH_FSCK_REPAIRED,     /* repaired (how: berth_fsck_problem.repair) */
	BERTH_FSCK_REPAIR_FAILED,/* a repair was attempted and failed */
};

struct berth_fsck_problem {
	enum berth_fsck_kind kind;
	const char *path;   /* storage path (or, for host-only findings, path below the root) */
	const char *digest; /* the digest concerned, or NULL */
	const char *detail; /* human-readable detail, never NULL */
	enum berth_fsck_action action;
	const char *repair; /* what the repair did or why it failed, or NULL */
};

typedef void (*berth_fsck_report_cb)(const struct berth_fsck_problem *p, void *payload);

struct berth_fsck_options {
	int repair;
	/* Called once per problem, after the repair phase (so the action is known). May be NULL. */
	berth_fsck_report_cb report;
	void *payload;
	/* Progress lines for large stores (every 1000 blobs, with the total, counted by a first
	 * walk of blobs/ that only runs when this is set), or NULL. */
	FILE *progress;
};

struct berth_fsck_stats {
	uint64_t blobs;           /* blob data files hashed */
	uint64_t blob_bytes;      /* their total size */
	uint64_t repositories;
	uint64_t links;           /* link files checked */
	uint64_t manifests;       /* revisions whose manifest was read */
	uint64_t tags;
	uint64_t uploads;         /* upload sessions found (stale ones included) */
	uint64_t upload_bytes;
	uint64_t collected_layer_links; /* _layers links to blobs garbage collection removed */
	uint64_t problems[BERTH_FSCK_KIND_COUNT];
	uint64_t total_problems;
	uint64_t repaired;
	uint64_t repair_failed;
};

/*
 * Runs one check. Returns 0 when the scan completed (problems or not; see *out), or a negative
 * BERTH_E* code when the store could not be scanned at all (then nothing was repaired).
 * *out (may be NULL) is filled either way.
 */
int berth_fsck_run(struct berth_storage_driver *d, const struct berth_fsck_options *o,
		   struct berth_fsck_stats *out);

/* "corrupt-blob", "bad-link", ... as printed by `berth fsck`. Never NULL. */
const char *berth_fsck_kind_name(enum berth_fsck_kind k);

#endif

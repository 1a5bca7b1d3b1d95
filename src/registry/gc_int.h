/*
 * Internals of garbage collection (registry/gc.h), shared by its two files: gc.c runs a
 * collection (the run's state, its reports, the sweep) and gc_mark.c is its mark phase. Not
 * for other files.
 */
#ifndef BERTH_REGISTRY_GC_INT_H
#define BERTH_REGISTRY_GC_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/map.h"
#include "core/oid.h"
#include "core/vec.h"
#include "registry/gc.h"

struct berth_team;

/* The run's team has this many threads (the caller's included): it reads repositories in the
 * mark phase, then deletes (why 8: gc.c, at GC_BATCH). */
#define GC_DELETERS 8
/* A progress line every this many manifests of a repository, or blobs scanned. */
#define GC_PROGRESS_EVERY 1000

/* A revision to delete (the mark phase finds them, the sweep deletes them). */
struct doomed {
	size_t repo; /* into gc.repos */
	struct berth_oid d;
};

/* Unmarked blobs found by the sweep, one flat array per algorithm: key then u64 size. */
struct sweeplist {
	size_t esz;
	uint8_t *data;
	size_t n, alloc;
};

/* One collection run (berth_gc_run). */
struct gc {
	struct berth_storage_driver *d;
	const struct berth_gc_options *o;
	struct berth_gc_stats st;
	struct berth_map mark256, mark512; /* struct berth_oid id bytes, 32 or 64 */
	struct berth_strvec repos;         /* the repositories, sorted (mark phase) */
	struct doomed *doomed;             /* by repository, then digest (mark phase) */
	size_t ndoomed, doomed_alloc;
	struct sweeplist sweep256, sweep512;
	int first_err; /* first sweep failure */
	/* online (o->registry): only what is older than this (blob data mtime, seconds) goes */
	int64_t cutoff;
	int held; /* the sweep lock is held exclusively */
	/* online: this instance's sweep notice for the batch (gc_shared.h) is up; nothing of the
	 * batch is deleted from deadline_ms on (wall clock) */
	int noticed;
	int64_t deadline_ms;
	struct berth_team *team;     /* reads repositories, then deletes */
	pthread_mutex_t report_lock; /* problems and progress come from the team's threads too */
};

/*
 * Reports (gc.c), from any thread of the run. say: a per-item line to o->out, unless quiet.
 * progress: to o->progress, unless quiet. warn: a problem that does not stop the run, fail:
 * one that does (online to the log, offline to stderr). item: something eligible for deletion
 * (a line to o->out offline, a log line online).
 */
void berth_gc__say(struct gc *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void berth_gc__progress(struct gc *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void berth_gc__warn(struct gc *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void berth_gc__fail(struct gc *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void berth_gc__item(struct gc *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Marks d: 1 if it was not marked yet. One thread at a time. */
int berth_gc__mark(struct gc *g, const struct berth_oid *d);
/* "sha256" or "sha512". */
const char *berth_gc__alg_str(uint8_t alg);
/* The last component of path. */
const char *berth_gc__base_name(const char *path);
/* A path into out (BERTH_PATH_MAX bytes): 0, or BERTH_EINVALID if it does not fit. */
int berth_gc__fmt_path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The mark phase (gc_mark.c): finds the repositories (g->repos, sorted), reads them on g->team
 * and marks every blob their kept manifests need; the revisions that are not kept go to
 * g->doomed. Sets g->st's repositories, manifests_marked and blobs_marked. <0: a storage error
 * (reported): the run must delete nothing.
 */
int berth_gc__mark_phase(struct gc *g);

#endif

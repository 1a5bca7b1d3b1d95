/*
 * Online garbage collection (gc_online.h): the sweep lock and age refresh the push paths use,
 * the collection thread, its metrics and its one summary line per run.
 */
#include "registry/gc_online.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/periodic.h"
#include "core/util.h"
#include "registry/gc.h"
#include "registry/gc_shared.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

/* ---- the sweep lock and ages (registry_int.h) ---- */

void berth_gc_lock_init(struct berth_registry *r)
{
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* A collection waiting must not starve behind a stream of pushes. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->gc_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	berth_uuid4(r->gc_instance);
}

void berth_gc_lock_destroy(struct berth_registry *r)
{
	pthread_rwlock_destroy(&r->gc_lock);
}

void berth_gc_lock_shared(struct berth_registry *r)
{
	if (r->gc_refresh)
		pthread_rwlock_rdlock(&r->gc_lock);
}

void berth_gc_lock_exclusive(struct berth_registry *r)
{
	if (r->gc_refresh)
		pthread_rwlock_wrlock(&r->gc_lock);
}

void berth_gc_unlock(struct berth_registry *r)
{
	if (r->gc_refresh)
		pthread_rwlock_unlock(&r->gc_lock);
}

int berth_blob_refresh(struct berth_registry *r, const char *digest)
{
	char path[BERTH_PATH_MAX];
	if (!r->gc_refresh) /* storage, not a cache: callers skip writing data that is there */
		return berth_blob_data_present(NULL, r, digest);
	int rc = berth_path_blob_data(path, digest);
	if (rc < 0)
		return rc;
	/* touch, then look for another instance's batch naming the blob (gc_shared.h); after
	 * waiting one out, the same again: a blob can be in a batch of each of the sweep's phases */
	for (int round = 0; round < 8; round++) {
		rc = berth_storage_touch(r->driver, path);
		if (rc == BERTH_ENOTFOUND) {
			/* collected (by this process or another): the cached size must not say otherwise */
			char key[BERTH_DIGEST_STR_MAX + 8];
			berth_reg_cache_key(key, sizeof(key), 'b', NULL, digest);
			berth_reg_cache_remove(r->descriptors, key);
		}
		if (rc < 0 || (rc = berth_gc_notice_wait(r, digest)) <= 0)
			return rc;
	}
	return berth_err_set(BERTH_EUNAVAILABLE, "blob %s stays in another instance's garbage collection",
			     digest);
}

/* ---- metrics ---- */

static _Atomic uint64_t running, runs_ok, runs_failed, runs_skipped, blobs_deleted, bytes_freed, manifests_deleted,
	layer_links_deleted, duration_ns_total, last_duration_ns, last_end_s;

static void render_metrics(struct berth_buf *out)
{
	berth_buf_printf(out,
			 "# HELP berth_gc_runs_total Online garbage collection runs, by result.\n"
			 "# TYPE berth_gc_runs_total counter\n"
			 "berth_gc_runs_total{result=\"ok\"} %" PRIu64 "\n"
			 "berth_gc_runs_total{result=\"failed\"} %" PRIu64 "\n"
			 "berth_gc_runs_total{result=\"skipped\"} %" PRIu64 "\n"
			 "# HELP berth_gc_running 1 while an online garbage collection run is in progress.\n"
			 "# TYPE berth_gc_running gauge\n"
			 "berth_gc_running %" PRIu64 "\n",
			 atomic_load(&runs_ok), atomic_load(&runs_failed), atomic_load(&runs_skipped),
			 atomic_load(&running));
	berth_buf_printf(out,
			 "# HELP berth_gc_duration_seconds_total Time spent in online garbage collection runs.\n"
			 "# TYPE berth_gc_duration_seconds_total counter\n"
			 "berth_gc_duration_seconds_total %.6f\n"
			 "# HELP berth_gc_last_duration_seconds Duration of the last online garbage collection run.\n"
			 "# TYPE berth_gc_last_duration_seconds gauge\n"
			 "berth_gc_last_duration_seconds %.6f\n"
			 "# HELP berth_gc_last_run_timestamp_seconds When the last run ended (Unix time; 0: none yet).\n"
			 "# TYPE berth_gc_last_run_timestamp_seconds gauge\n"
			 "berth_gc_last_run_timestamp_seconds %" PRIu64 "\n",
			 (double)atomic_load(&duration_ns_total) / 1e9,
			 (double)atomic_load(&last_duration_ns) / 1e9, atomic_load(&last_end_s));
	berth_buf_printf(out,
			 "# HELP berth_gc_blobs_deleted_total Blobs deleted by online garbage collection.\n"
			 "# TYPE berth_gc_blobs_deleted_total counter\n"
			 "berth_gc_blobs_deleted_total %" PRIu64 "\n"
			 "# HELP berth_gc_bytes_freed_total Bytes of the blobs deleted by online garbage collection.\n"
			 "# TYPE berth_gc_bytes_freed_total counter\n"
			 "berth_gc_bytes_freed_total %" PRIu64 "\n"
			 "# HELP berth_gc_manifests_deleted_total Untagged manifests deleted (deleteuntagged).\n"
			 "# TYPE berth_gc_manifests_deleted_total counter\n"
			 "berth_gc_manifests_deleted_total %" PRIu64 "\n"
			 "# HELP berth_gc_layer_links_deleted_total Repository links to deleted blobs removed.\n"
			 "# TYPE berth_gc_layer_links_deleted_total counter\n"
			 "berth_gc_layer_links_deleted_total %" PRIu64 "\n",
			 atomic_load(&blobs_deleted), atomic_load(&bytes_freed), atomic_load(&manifests_deleted),
			 atomic_load(&layer_links_deleted));
}

void berth_gc_metrics_register(void)
{
	berth_metrics_register(render_metrics);
}

/* ---- the thread ---- */

struct berth_gc_online {
	struct berth_registry *reg;
	struct berth_gc_online_options o;
	struct berth_periodic *task;
	struct berth_generation generation; /* the store's collection generation last seen (gc_shared.h) */
};

static void run_steps(struct berth_gc_online *g)
{
	for (size_t i = 0; i < g->o.n_before_mark; i++) {
		int rc = g->o.before_mark[i](g->reg, g->o.dry_run, g->o.before_mark_payload[i]);
		if (rc < 0)
			berth_warn("garbage collection: step %zu before marking failed: %s", i + 1,
				   berth_strerror(rc));
	}
}

/*
 * 1 if this instance collects this time: it holds the store's lease (gc_shared.h), for two
 * intervals and a minute, so that it keeps it from run to run while it lives. 0: another
 * instance does (a skipped run). A lease that cannot be read or written: this instance
 * collects (safety does not rest on the lease).
 */
static int take_lease(struct berth_gc_online *g)
{
	char holder[64] = "";
	int64_t until = 0;
	int rc = berth_gc_lease_take(g->reg, 2 * g->o.interval_ms + 60000, holder, &until);
	if (rc < 0)
		berth_warn("garbage collection: cannot take the lease %s: %s; collecting anyway",
			   BERTH_GC_LEASE_PATH, berth_strerror(rc));
	else if (rc == 0)
		berth_debug("garbage collection: skipped: instance %s collects (lease until %" PRId64 ")",
			    holder, until);
	return rc != 0;
}

/*
 * Another instance's collection removed links since the last cycle (the store's generation
 * changed): the stored-bytes quotas counted in memory (quota.h) are counted again from the
 * store, as at start-up (covered pushes wait for the count).
 */
static void follow_generation(struct berth_gc_online *g)
{
	struct berth_generation now;
	if (!berth_quota_bytes_has_rules(g->reg) ||
	    berth_generation_read(&now, g->reg->driver, BERTH_GC_GENERATION_PATH) < 0 ||
	    berth_generation_equal(&now, &g->generation))
		return;
	int rc = berth_quota_bytes_build(g->reg);
	if (rc < 0) {
		berth_warn("garbage collection: cannot count the stored bytes of policies.quotas again "
			   "after another instance's collection: %s", berth_strerror(rc));
		return; /* tried again next cycle */
	}
	g->generation = now;
}

/*
 * Collection yields the CPU to serving: this thread (and the deleter threads it starts, which
 * inherit it) runs GC_NICE nicer than the process, so the polling threads' requests go first
 * on a busy machine. Not SCHED_IDLE: a run holds the sweep lock for a batch, and a thread that
 * never gets the CPU would keep pushes waiting on it.
 */
#define GC_NICE 10

static void lower_priority(void)
{
	static _Thread_local int done;
	if (done)
		return;
	done = 1;
	if (berth_thread_lower_priority(GC_NICE) != 0)
		berth_debug("garbage collection: cannot lower the thread's priority: %s", strerror(errno));
}

static void cycle(void *arg)
{
	struct berth_gc_online *g = arg;
	lower_priority();
	follow_generation(g);
	if (!take_lease(g)) {
		atomic_fetch_add(&runs_skipped, 1);
		return;
	}
	struct berth_gc_options o = {
		.dry_run = g->o.dry_run,
		.delete_untagged = g->o.delete_untagged,
		.quiet = 1,
		.registry = g->reg,
		.delay_ms = g->o.delay_ms,
	};
	struct berth_gc_stats st = { 0 };
	uint64_t t0 = berth_now_ns();

	atomic_store(&running, 1);
	berth_gc_notice_prune(g->reg);
	run_steps(g);
	int rc = berth_gc_run(g->reg->driver, &o, &st);
	uint64_t ns = berth_now_ns() - t0;
	atomic_store(&running, 0);
	take_lease(g); /* renewed from the run's end */
	/* the other instances' byte counts follow (this one's followed each removal) */
	if (!g->o.dry_run && (st.manifests_deleted || st.layer_links_deleted)) {
		int grc = berth_generation_write(&g->generation, g->reg->driver, BERTH_GC_GENERATION_PATH);
		if (grc < 0)
			berth_warn("garbage collection: cannot write %s: %s", BERTH_GC_GENERATION_PATH,
				   berth_strerror(grc));
	}

	atomic_fetch_add(rc < 0 ? &runs_failed : &runs_ok, 1);
	atomic_fetch_add(&duration_ns_total, ns);
	atomic_store(&last_duration_ns, ns);
	atomic_store(&last_end_s, (uint64_t)time(NULL));
	if (!g->o.dry_run) {
		atomic_fetch_add(&blobs_deleted, st.blobs_deleted);
		atomic_fetch_add(&bytes_freed, st.bytes_freed);
		atomic_fetch_add(&manifests_deleted, st.manifests_deleted);
		atomic_fetch_add(&layer_links_deleted, st.layer_links_deleted);
	}
	const char *verb = g->o.dry_run ? "would delete" : "deleted";
	char times[160];
	if (rc < 0) /* the phases after the failure never ran: their zeros would mislead */
		snprintf(times, sizeof(times), "phases cut short");
	else
		berth_gc_times_fmt(times, sizeof(times), &st);
	berth_log(rc < 0 ? BERTH_LOG_ERROR : BERTH_LOG_INFO,
		  "garbage collection%s: %s in %.3fs (%s): %" PRIu64 " repositories, %" PRIu64
		  " manifests kept, %" PRIu64 " blobs scanned, %" PRIu64 " marked; %s %" PRIu64
		  " blobs (%" PRIu64 " bytes), %" PRIu64 " manifests, %" PRIu64
		  " layer links; kept %" PRIu64 " younger than the delay; %" PRIu64 " warnings",
		  g->o.dry_run ? " (dry run)" : "", rc < 0 ? "failed" : "done", (double)ns / 1e9, times,
		  st.repositories, st.manifests_marked, st.blobs_scanned, st.blobs_marked, verb,
		  st.blobs_deleted, st.bytes_freed, st.manifests_deleted, st.layer_links_deleted,
		  st.young_kept, st.warnings);
}

int berth_gc_online_start(struct berth_gc_online **out, struct berth_registry *r,
			  const struct berth_gc_online_options *o)
{
	if (!berth_storage_can_touch(r->driver) || !r->gc_refresh)
		return BERTH_EUNSUPPORTED;
	if (o->n_before_mark > BERTH_GC_MAX_STEPS)
		return BERTH_EINVALID;
	struct berth_gc_online *g = berth_calloc(1, sizeof(*g));
	g->reg = r;
	g->o = *o;
	/* what the start-up count of the quotas saw already */
	if (berth_generation_read(&g->generation, r->driver, BERTH_GC_GENERATION_PATH) < 0)
		g->generation = (struct berth_generation){ 0 };
	if (berth_periodic_start(&g->task, o->interval_ms, o->interval_ms, cycle, g) < 0) {
		free(g);
		return BERTH_ERROR;
	}
	*out = g;
	return 0;
}

void berth_gc_online_stop(struct berth_gc_online *g)
{
	if (!g)
		return;
	berth_periodic_stop(g->task);
	free(g);
}

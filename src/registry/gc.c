/*
 * Garbage collection (see gc.h): mark every blob a kept manifest needs, then sweep the rest.
 *
 * Phases, in the order Distribution's MarkAndSweep runs them:
 *   1. mark (gc_mark.c), repository by repository: which revisions are kept, and every blob
 *      they reference. Any storage error here aborts the run before anything is deleted.
 *   2. (delete_untagged) remove the revisions that were not kept, with their tag index entries.
 *   3. enumerate blobs/ (a walk where the driver lists a tree at once, else listings of
 *      blobs/<alg>/<xx>/, stat'ing only unmarked blobs), remove every blob dir not marked.
 *   4. remove _layers links to unmarked digests in every repository.
 * A failure in phases 2-4 is reported and the sweep goes on; the first error is returned.
 */
#include "registry/gc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/map.h"
#include "core/oid.h"
#include "core/team.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/gc_int.h"
#include "registry/gc_shared.h"
#include "registry/link.h"
#include "registry/paths.h"
#include "registry/pulls.h"
#include "registry/reference.h"
#include "registry/registry.h"
#include "registry/registry_int.h"
#include "registry/retention.h"
#include "storage/storage.h"

#include <pthread.h>
#include <time.h>

/* ---- the run: its reports and the marked set (gc_int.h) ---- */

const char *berth_gc__alg_str(uint8_t alg)
{
	return alg == BERTH_ALG_SHA512 ? "sha512" : "sha256";
}

/* say and item lock o->out for their line: the mark phase writes it while its other threads
 * read repositories and report problems (gc_mark.c). */
void berth_gc__say(struct gc *g, const char *fmt, ...)
{
	if (g->o->quiet || !g->o->out)
		return;
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&g->report_lock);
	vfprintf(g->o->out, fmt, ap);
	fputc('\n', g->o->out);
	pthread_mutex_unlock(&g->report_lock);
	va_end(ap);
}

void berth_gc__progress(struct gc *g, const char *fmt, ...)
{
	if (g->o->quiet || !g->o->progress)
		return;
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&g->report_lock);
	fputs("garbage-collect: ", g->o->progress);
	vfprintf(g->o->progress, fmt, ap);
	fputc('\n', g->o->progress);
	fflush(g->o->progress);
	pthread_mutex_unlock(&g->report_lock);
	va_end(ap);
}

/* Online, a report goes to the log, as one line. */
static void log_line(enum berth_log_level level, const char *what, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	berth_log(level, "garbage collection: %s%s", what, line);
}

/* A problem: to the log online, to stderr offline (any thread). */
static void problem(struct gc *g, int is_error, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&g->report_lock);
	if (g->o->registry) {
		log_line(is_error ? BERTH_LOG_ERROR : BERTH_LOG_WARN, "", fmt, ap);
	} else {
		fputs(is_error ? "garbage-collect: error: " : "garbage-collect: warning: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	g->st.warnings += !is_error;
	pthread_mutex_unlock(&g->report_lock);
}

/* A problem that does not stop the run. */
void berth_gc__warn(struct gc *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	problem(g, 0, fmt, ap);
	va_end(ap);
}

void berth_gc__fail(struct gc *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	problem(g, 1, fmt, ap);
	va_end(ap);
}

/* An item eligible for deletion: a report line offline, a log line online. */
void berth_gc__item(struct gc *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!g->o->registry) {
		va_end(ap);
		if (g->o->quiet || !g->o->out)
			return;
		va_start(ap, fmt);
		pthread_mutex_lock(&g->report_lock);
		vfprintf(g->o->out, fmt, ap);
		fputc('\n', g->o->out);
		pthread_mutex_unlock(&g->report_lock);
	} else if (g->o->dry_run) {
		log_line(BERTH_LOG_INFO, "(dry run) ", fmt, ap);
	} else if (berth_log_enabled(BERTH_LOG_DEBUG)) {
		log_line(BERTH_LOG_DEBUG, "", fmt, ap);
	}
	va_end(ap);
}

static void sweep_failed(struct gc *g, int rc)
{
	if (!g->first_err)
		g->first_err = rc;
}

int berth_gc__mark(struct gc *g, const struct berth_oid *d)
{
	int added;
	berth_map_add(d->alg == BERTH_ALG_SHA512 ? &g->mark512 : &g->mark256, d->id, &added);
	return added;
}

static int marked(const struct gc *g, const struct berth_oid *d)
{
	const struct berth_map *m = d->alg == BERTH_ALG_SHA512 ? &g->mark512 : &g->mark256;
	return berth_map_find(m, d->id) != NULL;
}

const char *berth_gc__base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int berth_gc__fmt_path(char *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, BERTH_PATH_MAX, fmt, ap);
	va_end(ap);
	return n < 0 || n >= BERTH_PATH_MAX ? BERTH_EINVALID : 0;
}

/* ---- online: ages and the sweep lock ---- */

/*
 * Deletions run GC_DELETERS at a time, in batches of GC_BATCH: an unlink waits on the
 * filesystem's journal far more than on the CPU, and concurrent ones share its commits (8
 * threads delete about 6 times faster than one on ext4; on ext4 mounted with `discard` and no
 * journal, each freed block is a discard the unlink waits for, and they overlap too). Online,
 * the sweep lock is held exclusively for one batch: a push waits for at most one batch.
 */
#define GC_BATCH 64

/*
 * The tag index entries (_manifests/tags/<tag>/index/<alg>/<hex>) of one repository that name
 * revisions to delete (phase 2), listed once per repository: a revision's deletion removes the
 * entries that exist, rather than trying every tag of the repository for each revision (a
 * remove of an absent path per tag and revision, most of them). Distribution's RemoveManifest
 * stats each tag's entry and deletes those there: the same entries go.
 */
struct tag_entry {
	struct berth_oid d; /* first: ordered by berth_oid_cmp */
	size_t tag;         /* into tags */
};

struct tag_index {
	struct berth_strvec tags;
	uint8_t *unlisted; /* per tag: its index could not be listed, so every revision is tried */
	struct tag_entry *e;
	size_t n, alloc;
};

/* What became of one item of a batch. */
enum {
	GONE_DELETED = 0,     /* deleted (or found deleted by someone else meanwhile) */
	GONE_KEPT_YOUNG = 1,  /* online: younger than the cutoff now */
	GONE_KEPT_THERE = 2,  /* online: the blob is there again (a layer link stays) */
	GONE_ABSENT = 3,      /* online: the blob was gone before: nothing to do */
	GONE_KEPT_LATE = 4,   /* online: the batch's notice nears its expiry: kept for next run */
};

struct batch {
	struct gc *g;
	void (*one)(struct batch *b, size_t k);
	const char *repo; /* layer links: the repository */
	size_t n;
	struct berth_oid d[GC_BATCH];
	uint64_t size[GC_BATCH];
	int rc[GC_BATCH];       /* GONE_*, or a BERTH_E* code */
	int extra_rc[GC_BATCH]; /* revisions: the first tag index link that could not be removed */
	const struct tag_index *index; /* revisions: the repository's tag index entries */
	uint8_t checking[GC_BATCH]; /* the error came from the age check, not the delete */
};

static void batch_item(void *arg, size_t k)
{
	struct batch *b = arg;
	b->one(b, k);
}

/* Runs b->one on every item, on up to GC_DELETERS threads (this one included): the run's team. */
static void run_batch(struct batch *b)
{
	berth_team_run(b->g->team, batch_item, b, b->n);
}

/*
 * Online only: posts this instance's sweep notice (gc_shared.h) naming the next n items, before
 * any of their age checks (other instances' pushes that touch one of their blobs then wait). It
 * replaces the previous one, whose items are done, and stays up over the batches of up to
 * GC_NOTICE_GROUP items: one write for 8 batches (on S3, a PUT request each). A notice need not
 * be durable (gc_shared.h): on the filesystem it costs a temporary file and a rename, no fsync.
 * If it cannot be written, nothing of those items goes (too_late).
 */
#define GC_NOTICE_GROUP (8 * GC_BATCH)

static void notice_up(struct gc *g, const struct berth_oid *d, size_t n)
{
	if (!g->o->registry || g->o->dry_run)
		return;
	int was = g->noticed;
	uint64_t t0 = berth_now_ns();
	int rc = berth_gc_notice_post(&g->deadline_ms, g->o->registry, d, n);
	g->st.notices_ns += berth_now_ns() - t0;
	g->noticed = rc == 0;
	if (rc < 0) {
		if (was) /* the last one, whose items are done, would stay up until it expires */
			berth_gc_notice_clear(g->o->registry);
		g->deadline_ms = 0;
		berth_gc__warn(g, "cannot write the sweep notice: %s; keeping %zu items",
			       berth_strerror(rc), n);
	}
}

/* Online: 1 when the notice up leaves too little time for another batch (a group of batches can
 * outlast it, on S3 above all): the next batch posts a new one rather than keep its items late. */
static int notice_expiring(const struct gc *g)
{
	return g->o->registry && !g->o->dry_run &&
	       berth_gc_wall_ms() + (BERTH_GC_NOTICE_TTL_MS - BERTH_GC_NOTICE_MARGIN_MS) / 2 >= g->deadline_ms;
}

/* Removes the notice once a phase's deletions are over. */
static void notice_down(struct gc *g)
{
	if (g->noticed) {
		uint64_t t0 = berth_now_ns();
		berth_gc_notice_clear(g->o->registry);
		g->st.notices_ns += berth_now_ns() - t0;
	}
	g->noticed = 0;
	g->deadline_ms = 0;
}

/*
 * Online: before the batch that starts at item i of list (n items, deleted in this order), a
 * notice covering its items: a new one for the next GC_NOTICE_GROUP items when the one up
 * covers less (*covered: the end of what it names).
 */
static void cover(struct gc *g, const struct doomed *list, size_t n, size_t i, size_t *covered)
{
	size_t need = n - i < GC_BATCH ? n : i + GC_BATCH;
	if (!g->o->registry || g->o->dry_run || (*covered > i && *covered >= need && !notice_expiring(g)))
		return;
	size_t end = n - i < GC_NOTICE_GROUP ? n : i + GC_NOTICE_GROUP;
	struct berth_oid *d = berth_malloc((end - i) * sizeof(*d));
	for (size_t k = i; k < end; k++)
		d[k - i] = list[k].d;
	notice_up(g, d, end - i);
	free(d);
	*covered = end;
}

/* Online only: takes the sweep lock exclusively for one batch of deletions (this process's
 * pushes wait for at most one batch). */
static void hold(struct gc *g)
{
	if (!g->o->registry || g->held)
		return;
	berth_gc_lock_exclusive(g->o->registry);
	g->held = 1;
}

static void release(struct gc *g)
{
	if (!g->held)
		return;
	berth_gc_unlock(g->o->registry);
	g->held = 0;
}

/* Deletes a batch, with the lock held online; a dry run deletes nothing (every item would go). */
static void delete_batch(struct gc *g, struct batch *b)
{
	if (g->o->dry_run) {
		memset(b->rc, 0, sizeof(b->rc));
		return;
	}
	hold(g);
	run_batch(b);
	release(g);
}

/* Online, in a batch, after the item's age check: 1 if its deletion would come too late for
 * the batch's notice (or there is none); the item is kept. */
static int too_late(struct gc *g)
{
	return g->o->registry && berth_gc_wall_ms() >= g->deadline_ms;
}

/*
 * Online, with the sweep lock held: the blob data of d is GONE_ABSENT, GONE_KEPT_YOUNG
 * (pushed or referenced since the run began, or within the delay before), or 0: it may go.
 * A storage error (<0) keeps it too.
 */
static int age_check(struct gc *g, const struct berth_oid *d)
{
	char ds[BERTH_DIGEST_STR_MAX], path[BERTH_PATH_MAX];
	struct berth_stat st;
	berth_oid_fmt(ds, d);
	int rc = berth_path_blob_data(path, ds);
	if (rc == 0)
		rc = berth_storage_stat(&st, g->d, path);
	if (rc == BERTH_ENOTFOUND)
		return GONE_ABSENT;
	if (rc < 0)
		return rc;
	return st.mtime >= g->cutoff ? GONE_KEPT_YOUNG : 0;
}

/* Online: the registry's cached knowledge that blob d exists goes with it. */
static void forget_blob(struct gc *g, const char *ds)
{
	if (!g->o->registry)
		return;
	char key[BERTH_DIGEST_STR_MAX + 8];
	berth_reg_cache_key(key, sizeof(key), 'b', NULL, ds);
	berth_reg_cache_remove(g->o->registry->descriptors, key);
}

/* ---- phase 2: untagged manifests ---- */

static int push_tag(const char *path, void *payload)
{
	berth_strvec_push(payload, berth_gc__base_name(path));
	return 0;
}

/* Listing one tag's index for tag_index_load. */
struct index_ctx {
	struct gc *g;
	struct tag_index *x;
	size_t tag;
	const struct doomed *doomed; /* the repository's revisions to delete, ordered by digest */
	size_t ndoomed;
	uint8_t alg;
};

static int doomed_cmp(const void *key, const void *elem)
{
	return berth_oid_cmp(key, &((const struct doomed *)elem)->d);
}

/* index/<alg>/<hex>: kept if it names a revision to delete. */
static int index_entry(const char *path, void *payload)
{
	struct index_ctx *c = payload;
	struct tag_entry e = { .tag = c->tag };
	const char *alg = berth_gc__alg_str(c->alg);
	if (berth_oid_from_parts(&e.d, alg, strlen(alg), berth_gc__base_name(path)) < 0 ||
	    !bsearch(&e.d, c->doomed, c->ndoomed, sizeof(*c->doomed), doomed_cmp))
		return 0;
	BERTH_VEC_GROW(c->x->e, c->x->n + 1, c->x->alloc);
	c->x->e[c->x->n++] = e;
	return 0;
}

/*
 * Lists repo's tags and each tag's index, keeping the entries that name one of doomed[0..n)
 * (the repository's revisions to delete, ordered by digest). A tag whose index cannot be listed
 * is marked unlisted (its entry is then tried for every revision, as if it existed).
 */
static void tag_index_load(struct gc *g, struct tag_index *x, const char *repo, const struct doomed *doomed,
			   size_t n)
{
	char path[BERTH_PATH_MAX];
	berth_strvec_release(&x->tags);
	x->n = 0;
	if (berth_gc__fmt_path(path, BERTH_REPOS_ROOT "/%s/_manifests/tags", repo) == 0) {
		int rc = berth_storage_list(g->d, path, push_tag, &x->tags);
		if (rc < 0 && rc != BERTH_ENOTFOUND) {
			berth_gc__fail(g, "%s: cannot list tags: %s", repo, berth_strerror(rc));
			sweep_failed(g, rc);
		}
	}
	free(x->unlisted);
	x->unlisted = berth_calloc(x->tags.n ? x->tags.n : 1, 1);
	/* an entry names a revision of its own algorithm: only the algorithms of the revisions
	 * to delete are listed (sha512 ones are rare: one listing per tag, not two) */
	uint8_t algs[BERTH_ALG_SHA512 + 1] = { 0 };
	for (size_t i = 0; i < n; i++)
		algs[doomed[i].d.alg == BERTH_ALG_SHA512 ? BERTH_ALG_SHA512 : BERTH_ALG_SHA256] = 1;
	for (size_t t = 0; t < x->tags.n; t++) {
		size_t before = x->n;
		/* index/<alg> of the algorithms gc understands (others are never touched), listed
		 * directly: fewer calls than listing index/ first, on a filesystem and on S3 */
		for (uint8_t alg = BERTH_ALG_SHA256; alg <= BERTH_ALG_SHA512 && !x->unlisted[t]; alg++) {
			if (!algs[alg])
				continue;
			struct index_ctx c = { g, x, t, doomed, n, alg };
			int rc = berth_gc__fmt_path(
			    path, BERTH_REPOS_ROOT "/%s/_manifests/tags/%s/index/%s", repo,
			    x->tags.items[t], berth_gc__alg_str(alg));
			if (rc == 0)
				rc = berth_storage_list(g->d, path, index_entry, &c);
			if (rc < 0 && rc != BERTH_ENOTFOUND) {
				x->n = before;
				x->unlisted[t] = 1;
			}
		}
	}
	if (x->n > 1)
		qsort(x->e, x->n, sizeof(*x->e), berth_oid_cmp);
}

static void tag_index_release(struct tag_index *x)
{
	berth_strvec_release(&x->tags);
	free(x->unlisted);
	free(x->e);
}

/* The first entry naming d (x->n if none). */
static size_t tag_index_first(const struct tag_index *x, const struct berth_oid *d)
{
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (berth_oid_cmp(&x->e[mid].d, d) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Removes tag's index entry for d: 0 (also when absent) or a BERTH_E* code. */
static int remove_tag_entry(struct gc *g, const char *repo, const char *tag, const struct berth_oid *d)
{
	char path[BERTH_PATH_MAX], hex[129];
	berth_oid_hex(hex, d);
	int rc = berth_gc__fmt_path(path, BERTH_REPOS_ROOT "/%s/_manifests/tags/%s/index/%s/%s",
				    repo, tag, berth_gc__alg_str(d->alg), hex);
	if (rc == 0)
		rc = berth_storage_remove(g->d, path);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* Removes repositories/<repo>/<part>/<alg>/<hex> of d: GONE_DELETED (also when someone else
 * did first), or a BERTH_E* code. */
static int remove_repo_entry(struct gc *g, const char *repo, const char *part, const struct berth_oid *d)
{
	char path[BERTH_PATH_MAX], hex[129];
	berth_oid_hex(hex, d);
	int rc = berth_gc__fmt_path(path, BERTH_REPOS_ROOT "/%s/%s/%s/%s", repo, part,
				    berth_gc__alg_str(d->alg), hex);
	if (rc == 0)
		rc = berth_storage_remove(g->d, path);
	return rc == BERTH_ENOTFOUND ? GONE_DELETED : rc;
}

/*
 * remove_repo_entry of a link, online with the stored-bytes quotas following it (quota.h): the
 * usage counted in memory drops with the link, as it does for a DELETE through the API.
 * Offline nothing counts in memory: `berth usage` and the next start count from the store.
 */
static int remove_link_counted(struct gc *g, const char *repo, const char *part, enum berth_link_kind kind,
			       const struct berth_oid *d)
{
	if (!g->o->registry)
		return remove_repo_entry(g, repo, part, d);
	char ds[BERTH_DIGEST_STR_MAX];
	struct berth_bytes_guard quota;
	berth_oid_fmt(ds, d);
	int rc = berth_bytes_unlink_enter(&quota, g->o->registry, repo, kind, ds);
	if (rc < 0)
		return rc;
	rc = remove_repo_entry(g, repo, part, d);
	berth_bytes_unlink_leave(&quota, rc == GONE_DELETED);
	return rc;
}

/* One untagged revision of a batch (any thread): its tag index entries, then its revision
 * link; online, only if its blob is still old, with the lock held. */
static void delete_revision(struct batch *b, size_t k)
{
	struct gc *g = b->g;
	const struct tag_index *x = b->index;
	const struct berth_oid *d = &b->d[k];
	int rc;
	b->checking[k] = 0;
	b->extra_rc[k] = 0;
	if (g->o->registry && (rc = age_check(g, d)) != 0) {
		b->rc[k] = rc;
		b->checking[k] = rc < 0;
		return;
	}
	if (too_late(g)) {
		b->rc[k] = GONE_KEPT_LATE;
		return;
	}
	for (size_t t = 0; t < x->tags.n; t++) {
		if (x->unlisted[t] && (rc = remove_tag_entry(g, b->repo, x->tags.items[t], d)) < 0 &&
		    !b->extra_rc[k])
			b->extra_rc[k] = rc;
	}
	for (size_t e = tag_index_first(x, d); e < x->n && berth_oid_cmp(&x->e[e].d, d) == 0; e++) {
		if ((rc = remove_tag_entry(g, b->repo, x->tags.items[x->e[e].tag], d)) < 0 && !b->extra_rc[k])
			b->extra_rc[k] = rc;
	}
	b->rc[k] = remove_link_counted(g, b->repo, "_manifests/revisions", BERTH_LINK_REVISION, d);
}

static void manifests_done(struct gc *g, const struct batch *b)
{
	char ds[BERTH_DIGEST_STR_MAX];
	/* pull records (retention's keeppulledwithin) of deleted manifests go too: only looked
	 * for where there are some, a storage call per batch; not at all online when no rule
	 * records pulls (a record an earlier configuration left is harmless, pulls.h) */
	int pull_records = g->o->registry && !berth_retention_pulls(g->o->registry) ? 0 : -1;
	for (size_t k = 0; k < b->n; k++) {
		berth_oid_fmt(ds, &b->d[k]);
		if (b->rc[k] == GONE_KEPT_YOUNG || b->rc[k] == GONE_ABSENT || b->rc[k] == GONE_KEPT_LATE) {
			/* pushed again, tagged, or referenced by an index since the run began */
			g->st.young_kept += b->rc[k] == GONE_KEPT_YOUNG;
			continue;
		}
		if (b->rc[k] < 0 && b->checking[k]) {
			berth_gc__warn(g, "%s: cannot stat manifest %s: %s; keeping it", b->repo,
				       ds, berth_strerror(b->rc[k]));
			continue;
		}
		if (g->o->registry)
			berth_gc__item(g, "%s: manifest eligible for deletion: %s", b->repo, ds);
		if (b->extra_rc[k] < 0) {
			berth_gc__fail(g, "%s: cannot delete a tag index link of %s: %s", b->repo,
				       ds, berth_strerror(b->extra_rc[k]));
			sweep_failed(g, b->extra_rc[k]);
		}
		if (b->rc[k] < 0) {
			berth_gc__fail(g, "%s: cannot delete manifest %s: %s", b->repo, ds,
				       berth_strerror(b->rc[k]));
			sweep_failed(g, b->rc[k]);
			continue;
		}
		g->st.manifests_deleted++;
		if (pull_records < 0)
			pull_records = berth_pulls_has_digests(g->d, b->repo);
		if (pull_records)
			(void)berth_pulls_forget(g->o->registry ? berth_retention_pulls(g->o->registry) : NULL,
						 g->d, b->repo, ds);
		if (g->o->registry) {
			char key[BERTH_PATH_MAX];
			berth_reg_cache_key(key, sizeof(key), 'r', b->repo, ds);
			berth_reg_cache_remove(g->o->registry->descriptors, key);
			berth_tags_changed(g->o->registry, b->repo);
		}
	}
}

static void delete_manifests(struct gc *g)
{
	struct tag_index index = { 0 };
	char ds[BERTH_DIGEST_STR_MAX];
	struct batch *b = berth_calloc(1, sizeof(*b));
	b->g = g;
	b->one = delete_revision;
	b->index = &index;
	size_t covered = 0, repo_end = 0;

	for (size_t i = 0; i < g->ndoomed; i++) {
		const struct doomed *m = &g->doomed[i];
		const char *name = g->repos.items[m->repo];
		if (g->o->dry_run) {
			if (g->o->registry) {
				berth_oid_fmt(ds, &m->d);
				berth_gc__item(g, "%s: manifest eligible for deletion: %s",
					       name, ds);
			}
			g->st.manifests_deleted++;
			continue;
		}
		if (i == repo_end) {
			/* the repository's revisions to delete are next to each other, by digest; the
			 * entries are listed before the age checks (an entry written since comes from a
			 * PUT that refreshed the manifest's age first: that check keeps it) */
			while (repo_end < g->ndoomed && g->doomed[repo_end].repo == m->repo)
				repo_end++;
			tag_index_load(g, &index, name, g->doomed + i, repo_end - i);
		}
		if (b->n == 0) {
			/* a batch holds revisions of one repository */
			cover(g, g->doomed, g->ndoomed, i, &covered);
			b->repo = name;
		}
		b->d[b->n++] = m->d;
		if (b->n == GC_BATCH || i + 1 == g->ndoomed || g->doomed[i + 1].repo != m->repo) {
			delete_batch(g, b);
			manifests_done(g, b);
			b->n = 0;
		}
	}
	notice_down(g);
	tag_index_release(&index);
	free(b);
}

/* ---- phase 3: blobs ---- */

static void sweep_push(struct sweeplist *l, const struct berth_oid *d, uint64_t size)
{
	void *data = l->data;
	berth_vec_grow(&data, &l->alloc, l->n + 1, l->esz);
	l->data = data;
	uint8_t *e = l->data + l->n * l->esz;
	size_t k = l->esz - sizeof(uint64_t);
	memcpy(e, d->id, k);
	memcpy(e + k, &size, sizeof(size));
	l->n++;
}

static void sweep_get(const struct sweeplist *l, size_t i, uint8_t alg, struct berth_oid *d,
		      uint64_t *size)
{
	const uint8_t *e = l->data + i * l->esz;
	size_t k = l->esz - sizeof(uint64_t);
	memset(d, 0, sizeof(*d));
	d->alg = alg;
	memcpy(d->id, e, k);
	memcpy(size, e + k, sizeof(*size));
}

/* blobs/<alg>/<xx>/<hex>/data -> digest; anything else (other algorithms, strays) -> -1. */
static int blob_path_digest(const char *path, struct berth_oid *d)
{
	static const char root[] = BERTH_BLOBS_ROOT "/";
	if (strncmp(path, root, sizeof(root) - 1) != 0)
		return BERTH_ERROR;
	const char *alg = path + sizeof(root) - 1;
	const char *s1 = strchr(alg, '/');
	if (!s1 || s1[1] == '\0' || s1[2] == '\0' || s1[3] != '/')
		return BERTH_ERROR;
	const char *hex = s1 + 4;
	const char *s3 = strchr(hex, '/');
	if (!s3 || strcmp(s3, "/data") != 0 || (size_t)(s3 - hex) > 128 || memcmp(s1 + 1, hex, 2) != 0)
		return BERTH_ERROR;
	char hexbuf[129];
	memcpy(hexbuf, hex, (size_t)(s3 - hex));
	hexbuf[s3 - hex] = '\0';
	return berth_oid_from_parts(d, alg, (size_t)(s1 - alg), hexbuf);
}

/* A blob found by the scan: st is its data's stat, NULL when it is marked (not needed). */
static void scanned(struct gc *g, const struct berth_oid *d, const struct berth_stat *st)
{
	g->st.blobs_scanned++;
	if (!st || marked(g, d)) {
		/* referenced */
	} else if (g->o->registry && st->mtime >= g->cutoff) {
		berth_gc__mark(g, d); /* young: it stays, and so do its layer links */
		g->st.young_kept++;
	} else {
		sweep_push(d->alg == BERTH_ALG_SHA512 ? &g->sweep512 : &g->sweep256, d, st->size);
	}
	if (g->st.blobs_scanned % GC_PROGRESS_EVERY == 0)
		berth_gc__progress(g, "sweep: scanned %" PRIu64 " blobs, %zu unreferenced",
				   g->st.blobs_scanned, g->sweep256.n + g->sweep512.n);
}

/* Walk (a driver that lists a whole tree at once, S3): every object comes with its stat. */
static int visit_blob(const char *path, const struct berth_stat *st, void *payload)
{
	struct gc *g = payload;
	struct berth_oid d;
	if (st->is_dir || blob_path_digest(path, &d) < 0)
		return 0;
	scanned(g, &d, st);
	return 0;
}

/*
 * Listing (the filesystem): blobs/<alg>/<xx>/ is listed, and only the data of a blob that is
 * not marked is stat'ed (for its age and size): a walk would open every blob's directory and
 * stat its data, 9 times in 10 for nothing on a store that mostly stays.
 */
static int list_blob_dir(const char *path, void *payload)
{
	struct gc *g = payload;
	char data[BERTH_PATH_MAX];
	struct berth_oid d;
	struct berth_stat st;
	if (berth_gc__fmt_path(data, "%s/data", path) < 0 || blob_path_digest(data, &d) < 0)
		return 0; /* not a blob directory */
	if (marked(g, &d)) {
		scanned(g, &d, NULL);
		return 0;
	}
	int rc = berth_storage_stat(&st, g->d, data);
	if (rc == BERTH_ENOTFOUND || (rc == 0 && st.is_dir))
		return 0; /* no data: not a blob (as a walk finds none) */
	if (rc < 0) {
		berth_gc__warn(g, "cannot stat %s: %s; keeping it", data, berth_strerror(rc));
		return 0;
	}
	scanned(g, &d, &st);
	return 0;
}

/* Lists the directory at path, calling cb for each child; a vanished directory is empty. */
static int list_below(struct gc *g, const char *path, berth_list_cb cb)
{
	int rc = berth_storage_list(g->d, path, cb, g);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

static int list_blob_prefix(const char *path, void *payload)
{
	return list_below(payload, path, list_blob_dir);
}

static int list_blob_alg(const char *path, void *payload)
{
	return list_below(payload, path, list_blob_prefix);
}

static int scan_blobs(struct gc *g)
{
	if (berth_storage_can_list_tree(g->d))
		return berth_storage_walk(g->d, BERTH_BLOBS_ROOT, visit_blob, g);
	return berth_storage_list(g->d, BERTH_BLOBS_ROOT, list_blob_alg, g);
}

/* One blob of a batch (any thread): online, only if still old, with the lock held. */
static void delete_blob(struct batch *b, size_t k)
{
	char path[BERTH_PATH_MAX], ds[BERTH_DIGEST_STR_MAX];
	struct gc *g = b->g;
	int rc;
	b->checking[k] = 0;
	if (g->o->registry && (rc = age_check(g, &b->d[k])) != 0) {
		b->rc[k] = rc;
		b->checking[k] = rc < 0;
		return;
	}
	if (too_late(g)) {
		b->rc[k] = GONE_KEPT_LATE;
		return;
	}
	berth_oid_fmt(ds, &b->d[k]);
	if ((rc = berth_path_blob_dir(path, ds)) == 0)
		rc = berth_storage_remove(g->d, path);
	forget_blob(g, ds);
	b->rc[k] = rc == BERTH_ENOTFOUND ? GONE_DELETED : rc;
}

/* Reports and counts what a batch of blobs became, in order (this thread only). */
static void blobs_done(struct gc *g, const struct batch *b)
{
	char ds[BERTH_DIGEST_STR_MAX];
	for (size_t k = 0; k < b->n; k++) {
		berth_oid_fmt(ds, &b->d[k]);
		if (b->rc[k] == GONE_KEPT_YOUNG) {
			/* linked, re-pushed or referenced since the walk: stays */
			berth_gc__mark(g, &b->d[k]);
			g->st.young_kept++;
		} else if (b->rc[k] == GONE_KEPT_LATE) {
			/* left for the next run, with its layer links */
			berth_gc__mark(g, &b->d[k]);
		} else if (b->rc[k] < 0 && b->checking[k]) {
			berth_gc__warn(g, "cannot stat blob %s: %s; keeping it", ds,
				       berth_strerror(b->rc[k]));
		} else if (b->rc[k] < 0) {
			berth_gc__item(g, "blob eligible for deletion: %s", ds);
			berth_gc__fail(g, "cannot delete blob %s: %s", ds,
				       berth_strerror(b->rc[k]));
			sweep_failed(g, b->rc[k]);
		} else if (b->rc[k] == GONE_DELETED) {
			berth_gc__item(g, "blob eligible for deletion: %s", ds);
			g->st.blobs_deleted++;
			g->st.bytes_freed += b->size[k];
		}
	}
}

static uint64_t sweep_blobs(struct gc *g)
{
	uint64_t t0 = berth_now_ns();
	int rc = scan_blobs(g);
	g->st.scan_ns = berth_now_ns() - t0;
	if (rc < 0 && rc != BERTH_ENOTFOUND) {
		/* What was found so far is unmarked all the same: still swept. */
		berth_gc__fail(g, "cannot enumerate blobs: %s", berth_strerror(rc));
		sweep_failed(g, rc);
	}
	uint64_t eligible = g->sweep256.n + g->sweep512.n;
	berth_gc__progress(g, "sweep: %" PRIu64 " blobs, %" PRIu64 " unreferenced",
			   g->st.blobs_scanned, eligible);
	struct batch *b = berth_calloc(1, sizeof(*b));
	int noticing = g->o->registry && !g->o->dry_run;
	struct doomed *group = noticing ? berth_calloc(GC_NOTICE_GROUP, sizeof(*group)) : NULL;
	b->g = g;
	b->one = delete_blob;
	for (int which = 0; which < 2; which++) {
		const struct sweeplist *l = which ? &g->sweep512 : &g->sweep256;
		uint8_t alg = which ? BERTH_ALG_SHA512 : BERTH_ALG_SHA256;
		uint64_t size;
		for (size_t i = 0; i < l->n; i += b->n) {
			if (noticing && (i % GC_NOTICE_GROUP == 0 || notice_expiring(g))) {
				/* batches start at multiples of GC_BATCH: a group covers whole ones */
				size_t m = l->n - i < GC_NOTICE_GROUP ? l->n - i : GC_NOTICE_GROUP, covered = 0;
				for (size_t k = 0; k < m; k++)
					sweep_get(l, i + k, alg, &group[k].d, &size);
				cover(g, group, m, 0, &covered);
			}
			b->n = l->n - i < GC_BATCH ? l->n - i : GC_BATCH;
			for (size_t k = 0; k < b->n; k++)
				sweep_get(l, i + k, alg, &b->d[k], &b->size[k]);
			delete_batch(g, b);
			blobs_done(g, b);
		}
	}
	notice_down(g);
	free(group);
	free(b);
	return eligible;
}

/* ---- phase 4: layer links ---- */

struct layer_ctx {
	uint8_t alg;
	struct berth_oid *found;
	size_t n, alloc;
};

static int add_layer(const char *path, void *payload)
{
	struct layer_ctx *c = payload;
	struct berth_oid d;
	const char *alg = berth_gc__alg_str(c->alg);
	if (berth_oid_from_parts(&d, alg, strlen(alg), berth_gc__base_name(path)) < 0)
		return 0;
	BERTH_VEC_GROW(c->found, c->n + 1, c->alloc);
	c->found[c->n++] = d;
	return 0;
}

/* 1 if the blob data of d is absent (a storage error: 0, keep the link). */
static int blob_absent(struct gc *g, const struct berth_oid *d)
{
	char ds[BERTH_DIGEST_STR_MAX], path[BERTH_PATH_MAX];
	struct berth_stat st;
	berth_oid_fmt(ds, d);
	return berth_path_blob_data(path, ds) == 0 && berth_storage_stat(&st, g->d, path) == BERTH_ENOTFOUND;
}

/* One layer link of a batch (any thread): online, only if its blob is gone (a blob still
 * there was kept, or pushed again since it was deleted), with the lock held. */
static void delete_link(struct batch *b, size_t k)
{
	struct gc *g = b->g;
	const struct berth_oid *d = &b->d[k];
	if (g->o->registry && !blob_absent(g, d)) {
		b->rc[k] = GONE_KEPT_THERE;
		return;
	}
	if (too_late(g)) {
		b->rc[k] = GONE_KEPT_LATE;
		return;
	}
	b->rc[k] = remove_link_counted(g, b->repo, "_layers", BERTH_LINK_LAYER, d);
}

static void links_done(struct gc *g, const struct batch *b)
{
	char ds[BERTH_DIGEST_STR_MAX];
	for (size_t k = 0; k < b->n; k++) {
		if (b->rc[k] == GONE_KEPT_THERE || b->rc[k] == GONE_KEPT_LATE)
			continue;
		berth_oid_fmt(ds, &b->d[k]);
		berth_gc__item(g, "%s: layer link eligible for deletion: %s", b->repo, ds);
		if (b->rc[k] < 0) {
			berth_gc__fail(g, "%s: cannot delete layer link %s: %s", b->repo, ds,
				       berth_strerror(b->rc[k]));
			sweep_failed(g, b->rc[k]);
			continue;
		}
		g->st.layer_links_deleted++;
	}
}

/* The layer links of the repositories to unmarked digests, in repository order. */
static void find_stale_links(struct gc *g, struct doomed **out, size_t *n)
{
	char path[BERTH_PATH_MAX];
	size_t alloc = 0;
	for (size_t ri = 0; ri < g->repos.n; ri++) {
		const char *name = g->repos.items[ri];
		for (uint8_t alg = BERTH_ALG_SHA256; alg <= BERTH_ALG_SHA512; alg++) {
			struct layer_ctx c = { alg, NULL, 0, 0 };
			if (berth_gc__fmt_path(path, BERTH_REPOS_ROOT "/%s/_layers/%s", name,
					       berth_gc__alg_str(alg)) < 0)
				continue;
			int rc = berth_storage_list(g->d, path, add_layer, &c);
			if (rc < 0 && rc != BERTH_ENOTFOUND) {
				berth_gc__fail(g, "%s: cannot list %s: %s", name, path,
					       berth_strerror(rc));
				sweep_failed(g, rc);
			}
			if (c.n > 1)
				qsort(c.found, c.n, sizeof(*c.found), berth_oid_cmp);
			for (size_t i = 0; i < c.n; i++) {
				if (marked(g, &c.found[i]))
					continue;
				BERTH_VEC_GROW(*out, *n + 1, alloc);
				(*out)[*n].repo = ri;
				(*out)[(*n)++].d = c.found[i];
			}
			free(c.found);
		}
	}
}

static void sweep_layer_links(struct gc *g)
{
	struct doomed *links = NULL;
	size_t n = 0, covered = 0;
	find_stale_links(g, &links, &n);
	struct batch *b = berth_calloc(1, sizeof(*b));
	b->g = g;
	b->one = delete_link;
	for (size_t i = 0; i < n; i++) {
		if (b->n == 0) {
			/* a batch holds links of one repository */
			cover(g, links, n, i, &covered);
			b->repo = g->repos.items[links[i].repo];
		}
		b->d[b->n++] = links[i].d;
		if (b->n == GC_BATCH || i + 1 == n || links[i + 1].repo != links[i].repo) {
			delete_batch(g, b);
			links_done(g, b);
			b->n = 0;
		}
	}
	notice_down(g);
	free(links);
	free(b);
}

/* ---- entry point ---- */

void berth_gc_times_fmt(char *out, size_t cap, const struct berth_gc_stats *st)
{
	int n = snprintf(out, cap, "mark %.2fs, manifests %.2fs, scan %.2fs, blobs %.2fs, layer links %.2fs",
			 (double)st->mark_ns / 1e9, (double)st->manifests_ns / 1e9, (double)st->scan_ns / 1e9,
			 (double)st->blobs_ns / 1e9, (double)st->links_ns / 1e9);
	if (st->notices_ns && n > 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, ", notices %.2fs", (double)st->notices_ns / 1e9);
}

int berth_gc_run(struct berth_storage_driver *d, const struct berth_gc_options *o,
		 struct berth_gc_stats *out)
{
	struct gc g;
	int rc;

	memset(&g, 0, sizeof(g));
	g.d = d;
	g.o = o;
	g.mark256 = (struct berth_map)BERTH_MAP_INIT(32, 32);
	g.mark512 = (struct berth_map)BERTH_MAP_INIT(64, 64);
	g.sweep256.esz = 32 + sizeof(uint64_t);
	g.sweep512.esz = 64 + sizeof(uint64_t);
	pthread_mutex_init(&g.report_lock, NULL);
	g.team = berth_team_new(GC_DELETERS - 1); /* reads repositories, then deletes: one set of threads per run */

	/* ---- mark ---- */
	if (o->registry) {
		/*
		 * The run's start, read with the sweep lock held exclusively: every push that
		 * refreshed a blob's age before it has finished (its links are on storage, for the
		 * mark to find), and every refresh after it gives an mtime no earlier than it
		 * (storage/driver.h, touch). So what is older than start - delay and unmarked is
		 * referenced by nothing the mark did not see.
		 */
		struct timespec start;
		berth_gc_lock_exclusive(o->registry);
		clock_gettime(CLOCK_REALTIME_COARSE, &start);
		berth_gc_unlock(o->registry);
		g.cutoff = (int64_t)start.tv_sec - (o->delay_ms + 999) / 1000;
	}
	uint64_t t0 = berth_now_ns();
	if ((rc = berth_gc__mark_phase(&g)) < 0)
		goto aborted;
	berth_gc__progress(&g,
			   "mark: %zu repositories, %" PRIu64 " manifests kept, %" PRIu64
			   " blobs marked, %zu manifests eligible for deletion",
			   g.repos.n, g.st.manifests_marked, g.st.blobs_marked, g.ndoomed);

	/* ---- sweep ---- */
	uint64_t t1 = berth_now_ns();
	g.st.mark_ns = t1 - t0;
	delete_manifests(&g);
	uint64_t t2 = berth_now_ns();
	g.st.manifests_ns = t2 - t1;
	uint64_t eligible = sweep_blobs(&g);
	uint64_t t3 = berth_now_ns();
	g.st.blobs_ns = t3 - t2 - g.st.scan_ns;
	sweep_layer_links(&g);
	g.st.links_ns = berth_now_ns() - t3;

	if (o->out) {
		const char *would = o->dry_run ? "would free" : "freed";
		if (!o->quiet)
			fputc('\n', o->out);
		fprintf(o->out, "%" PRIu64 " manifests and %" PRIu64
			" layer links eligible for deletion\n",
			g.st.manifests_deleted, g.st.layer_links_deleted);
		fprintf(o->out, "%" PRIu64 " blobs marked, %" PRIu64
			" blobs eligible for deletion, %s %" PRIu64 " bytes\n",
			g.st.blobs_marked, eligible, would, g.st.bytes_freed);
		char times[160];
		berth_gc_times_fmt(times, sizeof(times), &g.st);
		fprintf(o->out, "took %s\n", times);
		fflush(o->out);
	}
	rc = g.first_err;
	goto out;

aborted:
	berth_gc__fail(&g, "mark phase failed; nothing was deleted");
out:
	if (out)
		*out = g.st;
	berth_team_free(g.team);
	pthread_mutex_destroy(&g.report_lock);
	berth_map_release(&g.mark256);
	berth_map_release(&g.mark512);
	berth_strvec_release(&g.repos);
	free(g.doomed);
	free(g.sweep256.data);
	free(g.sweep512.data);
	return rc;
}

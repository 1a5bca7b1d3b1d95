/*
 * Stored-bytes quotas (registry/quota.h): per rule with a `bytes` limit, a map from each blob
 * linked into a covered repository to its size and the number of covered links naming it; the
 * usage is the sum of the sizes of the blobs with at least one link. A push adds a link only
 * when it did not exist (a stat under the mutex first), a delete removes one only when it
 * existed, so the refcounts stay equal to the link files of this process's view of the store.
 *
 * Where the check is: at each link, as Harbor does: a blob upload's commit (after its digest
 * is verified, before its data becomes a blob), a cross-repository mount, a manifest PUT (the
 * manifest's own bytes, before they are stored). A manifest PUT links no layers (they must be
 * linked already), so checking at the layer links refuses a push as early as it can be known.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/link.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

struct linked_blob {
	struct berth_oid oid; /* the key */
	uint64_t size;
	uint64_t links; /* covered link files naming it */
};

struct bytes_rule {
	size_t index; /* in policies.quotas */
	regex_t repository;
	char *pattern;
	int64_t limit;
	int64_t usage;
	struct berth_map blobs; /* struct linked_blob */
};

struct berth_quota_bytes {
	struct bytes_rule *rules;
	size_t n;
	int built;
	pthread_mutex_t lock; /* held from a covered link's check to its write, and by a build */
};

int berth_quota_bytes_new(struct berth_quota_bytes **out, const struct berth_quota_rule *rules, size_t n)
{
	struct berth_quota_bytes *b = berth_calloc(1, sizeof(*b));
	b->rules = berth_calloc(n ? n : 1, sizeof(*b->rules));
	pthread_mutex_init(&b->lock, NULL);
	for (size_t i = 0; i < n; i++) {
		if (rules[i].bytes <= 0)
			continue;
		struct bytes_rule *c = &b->rules[b->n];
		if (berth_regex_compile_whole(&c->repository, rules[i].repository) < 0) {
			berth_quota_bytes_free(b);
			return BERTH_EINVALID;
		}
		c->index = i;
		c->pattern = berth_strdup(rules[i].repository ? rules[i].repository : "");
		c->limit = rules[i].bytes;
		c->blobs = (struct berth_map)BERTH_MAP_INIT(sizeof(struct linked_blob), sizeof(struct berth_oid));
		b->n++;
	}
	*out = b;
	return 0;
}

void berth_quota_bytes_free(struct berth_quota_bytes *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		regfree(&b->rules[i].repository);
		free(b->rules[i].pattern);
		berth_map_release(&b->rules[i].blobs);
	}
	free(b->rules);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int covers(const struct bytes_rule *c, const char *name)
{
	return regexec(&c->repository, name, 0, NULL, 0) == 0;
}

static int any_covers(const struct berth_quota_bytes *b, const char *name)
{
	for (size_t i = 0; b && i < b->n; i++)
		if (covers(&b->rules[i], name))
			return 1;
	return 0;
}

/* One more covered link names oid (of size bytes) in rule c. */
static void count_link(struct bytes_rule *c, const struct berth_oid *oid, uint64_t size)
{
	int added = 0;
	struct linked_blob *e = berth_map_add(&c->blobs, oid, &added);
	if (added) {
		e->size = size;
		c->usage += (int64_t)size;
	}
	e->links++;
}

/* One covered link naming oid went in rule c. */
static void uncount_link(struct bytes_rule *c, const struct berth_oid *oid)
{
	struct linked_blob *e = berth_map_find(&c->blobs, oid);
	if (!e)
		return;
	if (--e->links == 0) {
		c->usage -= (int64_t)e->size;
		berth_map_remove(&c->blobs, oid);
	}
}

/* ---- the count from the store ---- */

struct walk_ctx {
	struct berth_registry *reg;
	const char *name;
	struct berth_oid *oids; /* the links found */
	size_t n, alloc;
};

/* berth_walk_cb below _layers or _manifests/revisions: ".../<alg>/<hex>/link" files. */
static int found_link(const char *path, const struct berth_stat *st, void *payload)
{
	struct walk_ctx *ctx = payload;
	struct berth_oid oid;
	if (st->is_dir || berth_link_path_oid(&oid, path) < 0)
		return 0;
	BERTH_VEC_GROW(ctx->oids, ctx->n + 1, ctx->alloc);
	ctx->oids[ctx->n++] = oid;
	return 0;
}

/* Every layer and revision link of repository name into ctx->oids. */
static int list_links(struct walk_ctx *ctx, struct berth_registry *r, const char *name)
{
	static const char *const parts[] = { "_layers", "_manifests/revisions" };
	char repo[BERTH_PATH_MAX], path[BERTH_PATH_MAX + 32];
	int rc = berth_path_repo(repo, name);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", repo, parts[i]);
		rc = berth_storage_walk(r->driver, path, found_link, ctx);
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			return rc;
	}
	return 0;
}

/* The size of a linked blob; 0 when its data is missing (a dangling link stores nothing). */
static int blob_size(uint64_t *size, struct berth_registry *r, const struct berth_oid *oid)
{
	char digest[BERTH_DIGEST_STR_MAX];
	berth_oid_fmt(digest, oid);
	int rc = berth_blob_data_stat(size, r, digest);
	if (rc == BERTH_ENOTFOUND) {
		*size = 0;
		rc = 0;
	}
	return rc;
}

/* Adds repository name's links to every rule covering it. */
static int count_repo(struct berth_registry *r, struct berth_quota_bytes *b, const char *name)
{
	struct walk_ctx ctx = { r, name, NULL, 0, 0 };
	int rc = list_links(&ctx, r, name);
	for (size_t i = 0; rc == 0 && i < ctx.n; i++) {
		uint64_t size = 0;
		int sized = 0;
		for (size_t k = 0; rc == 0 && k < b->n; k++) {
			struct bytes_rule *c = &b->rules[k];
			if (!covers(c, name))
				continue;
			if (!sized && !berth_map_find(&c->blobs, &ctx.oids[i])) {
				rc = blob_size(&size, r, &ctx.oids[i]);
				sized = 1;
			}
			if (rc == 0)
				count_link(c, &ctx.oids[i], size);
		}
	}
	free(ctx.oids);
	return rc;
}

int berth_quota_bytes_build(struct berth_registry *r)
{
	struct berth_quota_bytes *b = r->quota_bytes;
	struct berth_strvec repos = { 0 };
	uint64_t t0 = berth_now_ns();
	int rc;
	if (!b || b->n == 0)
		return 0;
	/* The previous counts stay if this one fails: nothing changed them meanwhile (the lock). */
	struct bytes_rule *previous = berth_calloc(b->n, sizeof(*previous));
	pthread_mutex_lock(&b->lock);
	for (size_t k = 0; k < b->n; k++) {
		previous[k] = b->rules[k];
		b->rules[k].blobs = (struct berth_map)BERTH_MAP_INIT(sizeof(struct linked_blob),
								     sizeof(struct berth_oid));
		b->rules[k].usage = 0;
	}
	rc = berth_catalog(&repos, r);
	for (size_t i = 0; rc == 0 && i < repos.n; i++)
		if (any_covers(b, repos.items[i]))
			rc = count_repo(r, b, repos.items[i]);
	for (size_t k = 0; k < b->n; k++) {
		struct bytes_rule *dropped = rc == 0 ? &previous[k] : &b->rules[k];
		berth_map_release(&dropped->blobs);
		if (rc < 0)
			b->rules[k] = previous[k];
	}
	b->built |= rc == 0;
	for (size_t k = 0; rc == 0 && k < b->n; k++)
		berth_info("quota: %lld bytes stored in %zu blobs for repositories matching '%s' (counted in %llu ms)",
			   (long long)b->rules[k].usage, b->rules[k].blobs.n, b->rules[k].pattern,
			   (unsigned long long)((berth_now_ns() - t0) / 1000000));
	pthread_mutex_unlock(&b->lock);
	free(previous);
	berth_strvec_release(&repos);
	return rc;
}

int berth_quota_bytes_has_rules(const struct berth_registry *r)
{
	return r->quota_bytes && r->quota_bytes->n > 0;
}

int berth_quota_bytes_usage(int64_t *usage, int64_t *limit, struct berth_registry *r, size_t i)
{
	struct berth_quota_bytes *b = r->quota_bytes;
	for (size_t k = 0; b && k < b->n; k++) {
		if (b->rules[k].index != i)
			continue;
		pthread_mutex_lock(&b->lock);
		*usage = b->rules[k].usage;
		*limit = b->rules[k].limit;
		pthread_mutex_unlock(&b->lock);
		return 1;
	}
	return 0;
}

/* ---- the guards ---- */

static int link_path(char *out, const char *name, enum berth_link_kind kind, const char *digest)
{
	return kind == BERTH_LINK_LAYER ? berth_path_layer_link(out, name, digest)
					: berth_path_revision_link(out, name, digest);
}

/* 1 if the link file exists, 0 if not, or a storage error. */
static int link_exists(struct berth_registry *r, const char *name, enum berth_link_kind kind,
		       const char *digest)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc = link_path(path, name, kind, digest);
	if (rc < 0)
		return rc;
	rc = berth_storage_stat(&st, r->driver, path);
	return rc == 0 ? !st.is_dir : rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* Takes the lock when name is covered and counting is on; 0 (nothing held) otherwise. */
static int take(struct berth_bytes_guard *g, struct berth_registry *r, const char *name)
{
	struct berth_quota_bytes *b = r->quota_bytes;
	memset(g, 0, sizeof(*g));
	if (!b || !any_covers(b, name))
		return 0;
	pthread_mutex_lock(&b->lock);
	if (!b->built) {
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	g->held = b;
	g->name = name;
	return 1;
}

static void release(struct berth_bytes_guard *g)
{
	if (g->held)
		pthread_mutex_unlock(&g->held->lock);
	if (g->oids != &g->one)
		free(g->oids);
	memset(g, 0, sizeof(*g));
}

/* BERTH_EDENIED (message filled) if adding oid of size bytes passes a rule covering name. */
static int check_limits(const struct berth_quota_bytes *b, const char *name, const struct berth_oid *oid,
			uint64_t size)
{
	for (size_t k = 0; k < b->n; k++) {
		const struct bytes_rule *c = &b->rules[k];
		if (!covers(c, name) || berth_map_find(&c->blobs, oid))
			continue;
		if ((uint64_t)c->usage + size > (uint64_t)c->limit) {
			return berth_err_set(BERTH_EDENIED,
					     "quota exceeded: bytes (%lld of %lld stored, this blob adds %llu) for "
					     "repositories matching '%s'",
					     (long long)c->usage, (long long)c->limit, (unsigned long long)size,
					     c->pattern);
		}
	}
	return 0;
}

/* Takes the lock for one link of name to digest, noting whether the link exists now: 1 held,
 * 0 nothing to do (not covered, or a digest the map cannot hold), or a storage error. */
static int enter_one(struct berth_bytes_guard *g, struct berth_registry *r, const char *name,
		     enum berth_link_kind kind, const char *digest)
{
	if (!take(g, r, name))
		return 0;
	int rc = berth_oid_parse(&g->one, digest);
	if (rc == 0)
		rc = link_exists(r, name, kind, digest);
	if (rc < 0) {
		release(g);
		return rc == BERTH_EINVALID ? 0 : rc;
	}
	g->was_linked = rc;
	g->oids = &g->one;
	g->n = 1;
	return 1;
}

int berth_bytes_link_enter(struct berth_bytes_guard *g, struct berth_registry *r, const char *name,
			   enum berth_link_kind kind, const char *digest, uint64_t size)
{
	int rc = enter_one(g, r, name, kind, digest);
	if (rc <= 0)
		return rc;
	g->size = size;
	if (!g->was_linked && (rc = check_limits(g->held, name, &g->one, size)) < 0) {
		release(g);
		return rc;
	}
	return 0;
}

void berth_bytes_link_leave(struct berth_bytes_guard *g, int linked)
{
	struct berth_quota_bytes *b = g->held;
	if (b && linked && !g->was_linked)
		for (size_t k = 0; k < b->n; k++)
			if (covers(&b->rules[k], g->name))
				count_link(&b->rules[k], &g->one, g->size);
	release(g);
}

int berth_bytes_unlink_enter(struct berth_bytes_guard *g, struct berth_registry *r, const char *name,
			     enum berth_link_kind kind, const char *digest)
{
	int rc = enter_one(g, r, name, kind, digest);
	if (rc <= 0)
		return rc;
	g->n = (size_t)g->was_linked; /* a link that is not there uncounts nothing */
	return 0;
}

static void uncount_all(struct berth_bytes_guard *g)
{
	struct berth_quota_bytes *b = g->held;
	for (size_t i = 0; b && i < g->n; i++)
		for (size_t k = 0; k < b->n; k++)
			if (covers(&b->rules[k], g->name))
				uncount_link(&b->rules[k], &g->oids[i]);
}

void berth_bytes_unlink_leave(struct berth_bytes_guard *g, int removed)
{
	if (removed)
		uncount_all(g);
	release(g);
}

int berth_bytes_repo_enter(struct berth_bytes_guard *g, struct berth_registry *r, const char *name)
{
	if (!take(g, r, name))
		return 0;
	struct walk_ctx ctx = { r, name, NULL, 0, 0 };
	int rc = list_links(&ctx, r, name);
	g->oids = ctx.oids;
	g->n = ctx.n;
	if (rc < 0)
		release(g);
	return rc;
}

/* A delete that failed part-way removed some links only: the ones still listed stay counted. */
void berth_bytes_repo_leave(struct berth_bytes_guard *g, struct berth_registry *r)
{
	struct walk_ctx left = { r, g->name, NULL, 0, 0 };
	if (g->held && list_links(&left, r, g->name) == 0 && left.n) {
		struct berth_map still = BERTH_MAP_INIT(sizeof(struct berth_oid), sizeof(struct berth_oid));
		for (size_t i = 0; i < left.n; i++)
			berth_map_add(&still, &left.oids[i], NULL);
		size_t kept = 0;
		for (size_t i = 0; i < g->n; i++)
			if (!berth_map_find(&still, &g->oids[i]))
				g->oids[kept++] = g->oids[i];
		g->n = kept;
		berth_map_release(&still);
	}
	free(left.oids);
	uncount_all(g);
	release(g);
}

/* The registry's catalog of repositories (tag lists: taglist.c). */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

struct catalog_ctx {
	struct berth_registry *reg;
	struct berth_strvec *out;
	struct berth_strvec children;
	int is_repo;
};

static int collect_child(const char *path, void *payload)
{
	struct catalog_ctx *ctx = payload;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (base[0] == '_') {
		/* A directory holding _layers or _manifests is a repository (Distribution's catalog). */
		if (strcmp(base, "_layers") == 0 || strcmp(base, "_manifests") == 0)
			ctx->is_repo = 1;
		return 0;
	}
	berth_strvec_push(&ctx->children, path);
	return 0;
}

/* The directories a walk listed and their versions (storage/driver.h) before listing. */
struct berth_catalog_walk {
	struct berth_strvec dirs;
	uint64_t *versions;
	size_t alloc;
	int unversioned; /* some directory had none: the walk cannot be checked later */
};

static void walked_release(struct berth_catalog_walk *w)
{
	berth_strvec_release(&w->dirs);
	free(w->versions);
	memset(w, 0, sizeof(*w));
}

/* Records dir's version, taken before it is listed: a child added after the stat changes it. */
static int note_dir(struct berth_catalog_walk *w, struct berth_registry *r, const char *dir)
{
	struct berth_stat st;
	int rc = berth_storage_stat(&st, r->driver, dir);
	if (rc < 0)
		return rc;
	BERTH_VEC_GROW(w->versions, w->dirs.n + 1, w->alloc);
	w->versions[w->dirs.n] = st.version;
	berth_strvec_push(&w->dirs, dir);
	w->unversioned |= st.version == 0;
	return 0;
}

/* Depth-first over the repositories tree; never descends into _layers/_manifests/_uploads. */
static int catalog_dir(struct berth_registry *r, const char *dir, struct berth_strvec *out, struct berth_catalog_walk *w)
{
	struct catalog_ctx ctx = { r, out, { 0 }, 0 };
	int rc = note_dir(w, r, dir);
	if (rc == 0)
		rc = berth_storage_list(r->driver, dir, collect_child, &ctx);
	if (rc < 0)
		goto out;
	if (ctx.is_repo && strlen(dir) > strlen(BERTH_REPOS_ROOT "/"))
		berth_strvec_push(out, dir + strlen(BERTH_REPOS_ROOT "/"));
	for (size_t i = 0; i < ctx.children.n; i++) {
		rc = catalog_dir(r, ctx.children.items[i], out, w);
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			goto out;
	}
	rc = 0;
out:
	berth_strvec_release(&ctx.children);
	return rc;
}

static int catalog_walk(struct berth_strvec *out, struct berth_catalog_walk *w, struct berth_registry *r)
{
	int rc = catalog_dir(r, BERTH_REPOS_ROOT, out, w);
	if (rc == BERTH_ENOTFOUND) {
		/* No repositories yet: the root's appearance is what will change. */
		walked_release(w);
		w->unversioned = 1;
		rc = 0;
	}
	if (rc < 0)
		return rc;
	berth_strvec_sort(out);
	return 0;
}

/*
 * Whether the directories the walk listed all keep their versions. A repository appearing or
 * going, through this process or another on the same store (a second berth, Distribution), adds
 * or removes an entry in one of them; a stat per directory costs less than listing it. Drivers
 * without versions (S3) walk every time.
 */
static int dirs_unchanged(struct berth_registry *r, const struct berth_catalog_walk *w)
{
	struct berth_stat st;
	if (w->unversioned)
		return 0;
	for (size_t i = 0; i < w->dirs.n; i++)
		if (berth_storage_stat(&st, r->driver, w->dirs.items[i]) < 0 || st.version != w->versions[i])
			return 0;
	return 1;
}

/* With Redis, the shared generation tells at once what any berth instance changed, and the
 * directories are looked at only every CATALOG_FOREIGN_NS, for writers that do not bump it
 * (Distribution on the same store). */
#define CATALOG_FOREIGN_NS (2ull * 1000000000ull)

/* Whether the snapshot still holds; gen/has_gen: the shared generation read now (before any
 * walk, so that a change during the walk is seen next time). */
static int snapshot_holds(struct berth_registry *r, uint64_t writes, int has_gen, uint64_t gen, uint64_t now)
{
	if (!r->catalog_valid || writes != r->catalog_link_writes)
		return 0;
	if (has_gen && r->catalog_has_generation) {
		if (gen != r->catalog_generation)
			return 0;
		if (now - r->catalog_checked_ns < CATALOG_FOREIGN_NS)
			return 1;
	}
	if (!dirs_unchanged(r, r->catalog_walked))
		return 0;
	r->catalog_checked_ns = now;
	return 1;
}

int berth_catalog(struct berth_strvec *out, struct berth_registry *r)
{
	int rc = 0;
	uint64_t writes = atomic_load_explicit(&r->link_writes, memory_order_relaxed);
	uint64_t gen = 0, now = berth_now_ns();
	int has_gen = berth_reg_redis_catalog_generation(r, &gen);

	pthread_mutex_lock(&r->catalog_lock);
	if (!snapshot_holds(r, writes, has_gen, gen, now)) {
		struct berth_strvec fresh = { 0 };
		struct berth_catalog_walk *w = berth_calloc(1, sizeof(*w));
		if ((rc = catalog_walk(&fresh, w, r)) < 0) {
			berth_strvec_release(&fresh);
			walked_release(w);
			free(w);
			goto out;
		}
		berth_strvec_release(&r->catalog);
		berth_catalog_walked_free(r->catalog_walked);
		r->catalog = fresh;
		r->catalog_walked = w;
		r->catalog_link_writes = writes;
		r->catalog_generation = gen;
		r->catalog_has_generation = has_gen;
		r->catalog_checked_ns = now;
		r->catalog_valid = 1;
	}
	for (size_t i = 0; i < r->catalog.n; i++)
		berth_strvec_push(out, r->catalog.items[i]);
out:
	pthread_mutex_unlock(&r->catalog_lock);
	return rc;
}

void berth_catalog_walked_free(struct berth_catalog_walk *w)
{
	if (!w)
		return;
	walked_release(w);
	free(w);
}

int berth_tag_pushed(int64_t *mtime_out, struct berth_registry *r, const char *name, const char *tag)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc = berth_path_tag_current(path, name, tag);
	if (rc < 0)
		return rc;
	/* The link is rewritten on every push of the tag, never otherwise. */
	rc = berth_storage_stat(&st, r->driver, path);
	if (rc < 0)
		return rc;
	*mtime_out = st.mtime;
	return 0;
}

/* The registry's catalog of repositories (tag lists: taglist.c). */
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

/* Depth-first over the repositories tree; never descends into _layers/_manifests/_uploads. */
static int catalog_dir(struct berth_registry *r, const char *dir, struct berth_strvec *out)
{
	struct catalog_ctx ctx = { r, out, { 0 }, 0 };
	int rc = berth_storage_list(r->driver, dir, collect_child, &ctx);
	if (rc < 0)
		goto out;
	if (ctx.is_repo && strlen(dir) > strlen(BERTH_REPOS_ROOT "/"))
		berth_strvec_push(out, dir + strlen(BERTH_REPOS_ROOT "/"));
	for (size_t i = 0; i < ctx.children.n; i++) {
		rc = catalog_dir(r, ctx.children.items[i], out);
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			goto out;
	}
	rc = 0;
out:
	berth_strvec_release(&ctx.children);
	return rc;
}

/* How long a catalog snapshot may be served when this process has written nothing since;
 * repositories created by another process (Distribution, a second berth) appear within it.
 * Distribution's catalog gives no stronger promise: it walks storage with no lock either. */
#define CATALOG_TTL_NS (2ull * 1000000000ull)

static int catalog_walk(struct berth_strvec *out, struct berth_registry *r)
{
	int rc = catalog_dir(r, BERTH_REPOS_ROOT, out);
	if (rc == BERTH_ENOTFOUND)
		rc = 0;
	if (rc < 0)
		return rc;
	berth_strvec_sort(out);
	return 0;
}

int berth_catalog(struct berth_strvec *out, struct berth_registry *r)
{
	int rc = 0;
	uint64_t now = berth_now_ns();
	uint64_t writes = atomic_load_explicit(&r->link_writes, memory_order_relaxed);

	pthread_mutex_lock(&r->catalog_lock);
	if (!r->catalog_valid || now - r->catalog_taken_ns > CATALOG_TTL_NS ||
	    writes != r->catalog_link_writes) {
		struct berth_strvec fresh = { 0 };
		if ((rc = catalog_walk(&fresh, r)) < 0) {
			berth_strvec_release(&fresh);
			goto out;
		}
		berth_strvec_release(&r->catalog);
		r->catalog = fresh;
		r->catalog_taken_ns = now;
		r->catalog_link_writes = writes;
		r->catalog_valid = 1;
	}
	for (size_t i = 0; i < r->catalog.n; i++)
		berth_strvec_push(out, r->catalog.items[i]);
out:
	pthread_mutex_unlock(&r->catalog_lock);
	return rc;
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

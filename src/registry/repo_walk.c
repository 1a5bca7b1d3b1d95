/* The repositories tree, walked as Distribution's catalog walks it (registry/repo_walk.h). */
#include "registry/repo_walk.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/vec.h"
#include "storage/storage.h"

/* One directory's listing: the subdirectories to walk, and whether it is a repository. */
struct listed_dir {
	struct berth_strvec children;
	int is_repo;
};

static int list_child(const char *path, void *payload)
{
	struct listed_dir *l = payload;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (base[0] == '_') {
		/* A directory holding _layers or _manifests is a repository (Distribution's catalog). */
		if (strcmp(base, "_layers") == 0 || strcmp(base, "_manifests") == 0)
			l->is_repo = 1;
		return 0;
	}
	berth_strvec_push(&l->children, path);
	return 0;
}

static int walk_dir(struct berth_storage_driver *d, const char *dir, struct berth_repo_walk *w)
{
	static const char root[] = BERTH_REPOS_ROOT "/";
	struct listed_dir l = { { 0 }, 0 };
	int rc = w->entering ? w->entering(dir, w->payload) : 0;
	if (rc == 0)
		rc = berth_storage_list(d, dir, list_child, &l);
	if (rc < 0) {
		snprintf(w->failed, sizeof(w->failed), "%s", dir);
		goto out;
	}
	if (l.is_repo && strlen(dir) > sizeof(root) - 1)
		w->found(dir + sizeof(root) - 1, w->payload);
	for (size_t i = 0; i < l.children.n; i++) {
		rc = walk_dir(d, l.children.items[i], w);
		if (rc == BERTH_ENOTFOUND)
			rc = 0; /* vanished, or a plain file: nothing below */
		if (rc < 0)
			goto out;
	}
out:
	berth_strvec_release(&l.children);
	return rc;
}

int berth_repo_walk(struct berth_storage_driver *d, struct berth_repo_walk *w)
{
	w->failed[0] = '\0';
	return walk_dir(d, BERTH_REPOS_ROOT, w);
}

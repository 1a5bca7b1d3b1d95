/*
 * The walk of the repositories tree (BERTH_REPOS_ROOT) that finds the repositories as
 * Distribution's catalog does: a directory holding _layers or _manifests is a repository,
 * named by its path below BERTH_REPOS_ROOT; directories whose names start with '_' are never
 * entered, and a repository's other subdirectories are walked too (nested names: "a" and
 * "a/b"). One listing per directory, depth first. The catalog (catalog.c) and garbage
 * collection's mark phase (gc_mark.c) both find the repositories with it.
 */
#ifndef BERTH_REGISTRY_REPO_WALK_H
#define BERTH_REGISTRY_REPO_WALK_H

#include "registry/paths.h"
#include "storage/driver.h"

struct berth_repo_walk {
	/* Called before dir is listed (BERTH_REPOS_ROOT first); NULL for none. <0 stops the
	 * walk with that code, except BERTH_ENOTFOUND below the root: dir is skipped. */
	int (*entering)(const char *dir, void *payload);
	/* A repository found (in no particular order): its name, borrowed for the call. */
	void (*found)(const char *name, void *payload);
	void *payload;
	/* When the walk returns an error: the directory it stopped at. */
	char failed[BERTH_PATH_MAX];
};

/*
 * Walks the repositories tree of d. Returns 0, or the first error of a listing or of
 * w->entering: BERTH_ENOTFOUND only when BERTH_REPOS_ROOT itself is missing (no repository
 * yet); a directory below it that vanishes meanwhile, or is a plain file, is skipped. Blocks
 * on storage (one list call per directory).
 */
int berth_repo_walk(struct berth_storage_driver *d, struct berth_repo_walk *w);

#endif

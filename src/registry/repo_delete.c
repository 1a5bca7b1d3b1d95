/*
 * Repository delete (registry.h berth_repo_delete) and the per-repository locks that make it
 * consistent with concurrent manifest pushes in this process.
 *
 * A repository is its three directories under repositories/<name>: _manifests (tags and
 * revisions), _layers (blob links) and _uploads. Deleting it removes them in that order, so that
 * its tags stop resolving first; a crash part-way leaves a repository with fewer parts, and
 * deleting again finishes the job. Blob data stays in the store, for the garbage collection.
 * Nested repositories (<name>/sub) are separate and stay.
 *
 * A manifest PUT holds its repository's lock shared from the check of its references to the
 * tag write; the delete holds it exclusively. So a PUT either completes before the delete
 * (and goes with it) or starts after and finds its layers unlinked (MANIFEST_BLOB_UNKNOWN):
 * never a manifest left without its layer links. A blob upload or mount racing with the delete
 * either fails or leaves a layer link, as a push starting afresh would.
 */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "registry/paths.h"
#include "registry/pulls.h"
#include "registry/registry_int.h"
#include "registry/retention.h"
#include "storage/storage.h"

/* FNV-1a of the name, folded onto the stripes. */
static pthread_rwlock_t *repo_lock(struct berth_registry *r, const char *name)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &r->repo_locks[h % BERTH_REPO_LOCK_STRIPES];
}

void berth_repo_locks_init(struct berth_registry *r)
{
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* A delete waiting must not starve behind a stream of pushes. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (size_t i = 0; i < BERTH_REPO_LOCK_STRIPES; i++)
		pthread_rwlock_init(&r->repo_locks[i], &attr);
	pthread_rwlockattr_destroy(&attr);
}

void berth_repo_locks_destroy(struct berth_registry *r)
{
	for (size_t i = 0; i < BERTH_REPO_LOCK_STRIPES; i++)
		pthread_rwlock_destroy(&r->repo_locks[i]);
}

void berth_repo_lock_shared(struct berth_registry *r, const char *name)
{
	pthread_rwlock_rdlock(repo_lock(r, name));
}

void berth_repo_lock_exclusive(struct berth_registry *r, const char *name)
{
	pthread_rwlock_wrlock(repo_lock(r, name));
}

void berth_repo_unlock(struct berth_registry *r, const char *name)
{
	pthread_rwlock_unlock(repo_lock(r, name));
}

/* Removes repositories/<name>/<part>: 1 if it was there, 0 if not, or a storage error. */
static int remove_part(struct berth_registry *r, const char *name, const char *part)
{
	char repo[BERTH_PATH_MAX], path[BERTH_PATH_MAX + 16];
	int rc = berth_path_repo(repo, name);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", repo, part);
	rc = berth_storage_remove(r->driver, path);
	return rc == 0 ? 1 : rc == BERTH_ENOTFOUND ? 0 : rc;
}

int berth_repo_delete(struct berth_registry *r, const char *name)
{
	static const char *const parts[] = { "_manifests", "_layers", "_uploads" };
	int rc = 0, found = 0;

	if (!r->delete_enabled)
		return BERTH_EUNSUPPORTED;
	pthread_rwlock_wrlock(repo_lock(r, name));
	if (berth_policy_has_immutable_tag(r, name)) {
		rc = BERTH_EDENIED;
		goto out_unlock;
	}
	struct berth_bytes_guard bytes; /* its links leave the bytes quotas' usage */
	if ((rc = berth_bytes_repo_enter(&bytes, r, name)) < 0)
		goto out_unlock;
	/* Redis forgets its blobs before and after their links go (as berth_blob_delete). */
	berth_reg_redis_repo_forget(r, name);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc >= 0; i++) {
		rc = remove_part(r, name, parts[i]);
		found |= rc > 0;
	}
	berth_bytes_repo_leave(&bytes, r);
	if (rc >= 0 && found)
		berth_pulls_forget_repo(berth_retention_pulls(r), r->driver, name);
	berth_reg_redis_repo_forget(r, name);
	berth_tags_changed(r, name);
	if (found)
		berth_tags_repo_deleted(r, name);
	berth_catalog_repo_deleted(r); /* every instance's catalog is rebuilt without it */
	if (rc >= 0)
		rc = found ? 0 : BERTH_ENOTFOUND;
out_unlock:
	pthread_rwlock_unlock(repo_lock(r, name));
	return rc;
}

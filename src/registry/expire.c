/*
 * Expiry of content the pull-through cache stored (registry/registry.h): what Distribution's
 * proxy scheduler does when an entry's TTL runs out, so that either server leaves the store in
 * the same state.
 */
#include <string.h>

#include "core/err.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

/* Removes the <hex> directory of a link path ("<...>/<hex>/link"), as berth_blob_delete does. */
static int remove_link_dir(struct berth_registry *r, char *link_path)
{
	char *slash = strrchr(link_path, '/');
	if (slash)
		*slash = '\0';
	return berth_storage_remove(r->driver, link_path);
}

int berth_blob_expire(struct berth_registry *r, const char *name, const char *digest)
{
	char path[BERTH_PATH_MAX], key[BERTH_PATH_MAX];
	int rc, unlinked, removed;

	if ((rc = berth_path_layer_link(path, name, digest)) < 0)
		return rc;
	berth_reg_cache_key(key, sizeof(key), 'l', name, digest);
	berth_reg_cache_remove(r->descriptors, key);
	/* The shared cache too (Distribution's blobs.Delete clears it), before the link goes and
	 * after, as berth_blob_delete: no instance may find the expired blob there. */
	berth_reg_redis_repo_clear(r, name, digest);
	unlinked = remove_link_dir(r, path);
	berth_reg_redis_repo_clear(r, name, digest);
	if (unlinked < 0 && unlinked != BERTH_ENOTFOUND)
		return unlinked;
	/* Distribution's Vacuum.RemoveBlob: the blob's whole directory goes. */
	if ((rc = berth_path_blob_dir(path, digest)) < 0)
		return rc;
	berth_reg_cache_key(key, sizeof(key), 'b', NULL, digest);
	berth_reg_cache_remove(r->descriptors, key);
	removed = berth_storage_remove(r->driver, path);
	if (removed < 0 && removed != BERTH_ENOTFOUND)
		return removed;
	return unlinked == BERTH_ENOTFOUND && removed == BERTH_ENOTFOUND ? BERTH_ENOTFOUND : 0;
}

int berth_manifest_expire(struct berth_registry *r, const char *name, const char *digest)
{
	char path[BERTH_PATH_MAX], key[BERTH_PATH_MAX];
	int rc;

	if ((rc = berth_path_revision_link(path, name, digest)) < 0)
		return rc;
	berth_reg_cache_key(key, sizeof(key), 'r', name, digest);
	berth_reg_cache_remove(r->descriptors, key);
	rc = remove_link_dir(r, path);
	berth_tags_changed(r, name);
	return rc;
}

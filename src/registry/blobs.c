/*
 * Blobs as a repository sees them: a blob is global and content-addressed under blobs/, and a
 * repository may read it only through its _layers/<alg>/<hex>/link (Distribution's
 * linkedBlobStore). Deleting unlinks; the bytes stay until garbage collection.
 */
#include <string.h>

#include "core/err.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

/* Checks that `name` links `digest` and that the link names that digest. */
static int check_linked(struct berth_registry *r, const char *name, const char *digest)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_layer_link(path, name, digest);
	if (rc < 0)
		return rc;
	return berth_link_check(r, path, 'l', name, digest);
}

/* The size of a blob name links. The shared Redis cache first (Distribution's order): a hit
 * there saves storage calls on every instance; a blob unlinked through any of them is cleared
 * from it first (berth_blob_delete). With refresh (online collection), the blob's age restarts,
 * on a Redis hit too, and one collected meanwhile is not found. */
static int stat_linked(uint64_t *size, struct berth_registry *r, const char *name, const char *digest,
		       int refresh)
{
	uint64_t found;
	int rc;
	if (berth_reg_redis_repo_stat(r, name, digest, &found)) {
		if (refresh && (rc = berth_blob_refresh(r, digest)) < 0)
			return rc;
		if (size)
			*size = found;
		return 0;
	}
	rc = check_linked(r, name, digest);
	if (rc < 0)
		return rc;
	if (refresh && (rc = berth_blob_refresh(r, digest)) < 0)
		return rc;
	if ((rc = berth_blob_data_stat(&found, r, digest)) < 0)
		return rc;
	berth_reg_redis_repo_set(r, name, digest, found);
	if (size)
		*size = found;
	return 0;
}

int berth_blob_stat_locked(uint64_t *size, struct berth_registry *r, const char *name,
			   const char *digest)
{
	return stat_linked(size, r, name, digest, r->gc_refresh);
}

int berth_blob_stat_refresh(uint64_t *size, struct berth_registry *r, const char *name, const char *digest)
{
	berth_gc_lock_shared(r);
	int rc = berth_blob_stat_locked(size, r, name, digest);
	berth_gc_unlock(r);
	return rc;
}

int berth_blob_stat(uint64_t *size, struct berth_registry *r, const char *name, const char *digest)
{
	return stat_linked(size, r, name, digest, 0);
}

int berth_blob_open(struct berth_reader **out, struct berth_registry *r, const char *name,
		    const char *digest, uint64_t offset)
{
	char path[BERTH_PATH_MAX];
	uint64_t size;
	int rc = berth_reg_redis_repo_stat(r, name, digest, &size) ? 0 : check_linked(r, name, digest);
	if (rc < 0)
		return rc;
	rc = berth_path_blob_data(path, digest);
	if (rc < 0)
		return rc;
	return berth_storage_reader(out, r->driver, path, offset);
}

int berth_blob_url(char **out, struct berth_registry *r, const char *name, const char *digest,
		   const char *client_ip)
{
	char path[BERTH_PATH_MAX];
	if (!r->redirect || !berth_storage_has_urls(r->driver))
		return BERTH_EUNSUPPORTED; /* before any storage call: the filesystem's GETs pay nothing */
	int rc = check_linked(r, name, digest);
	if (rc < 0)
		return rc;
	if ((rc = berth_path_blob_data(path, digest)) < 0)
		return rc;
	return berth_storage_url_for_client(out, r->driver, path, client_ip);
}

int berth_blob_delete(struct berth_registry *r, const char *name, const char *digest)
{
	char path[BERTH_PATH_MAX];
	int rc = check_linked(r, name, digest);
	if (rc < 0)
		return rc;
	rc = berth_path_layer_link(path, name, digest);
	if (rc < 0)
		return rc;
	char key[BERTH_PATH_MAX];
	berth_reg_cache_key(key, sizeof(key), 'l', name, digest);
	berth_reg_cache_remove(r->descriptors, key);
	/* Redis forgets it before the link goes (as Distribution), and again after, in case another
	 * instance cached the link it had just read in between. */
	berth_reg_redis_repo_clear(r, name, digest);
	/* Remove the <hex> directory holding the link, as Distribution does. */
	char *slash = strrchr(path, '/');
	*slash = '\0';
	struct berth_bytes_guard quota;
	if ((rc = berth_bytes_unlink_enter(&quota, r, name, BERTH_LINK_LAYER, digest)) < 0)
		return rc;
	rc = berth_storage_remove(r->driver, path);
	berth_bytes_unlink_leave(&quota, rc == 0);
	berth_reg_redis_repo_clear(r, name, digest);
	return rc;
}

int berth_blob_mount(uint64_t *size_out, struct berth_registry *r, const char *name, const char *digest,
		     const char *from)
{
	char path[BERTH_PATH_MAX];
	uint64_t size = 0;
	/* The check (which refreshes the blob's age) and the link are one step for the online
	 * garbage collection: it cannot delete the blob between them. Without a source repository,
	 * storage itself says whether the data is there: a link must never be written to data a
	 * collection removed behind the caches. */
	berth_gc_lock_shared(r);
	int rc = from ? berth_blob_stat_locked(&size, r, from, digest) : berth_blob_data_present(&size, r, digest);
	if (rc == 0 && !from && r->gc_refresh)
		rc = berth_blob_refresh(r, digest);
	if (rc == 0)
		rc = berth_path_layer_link(path, name, digest);
	struct berth_bytes_guard quota;
	if (rc == 0 && (rc = berth_bytes_link_enter(&quota, r, name, BERTH_LINK_LAYER, digest, size)) == 0) {
		rc = berth_link_write(r, path, digest);
		berth_bytes_link_leave(&quota, rc == 0);
	}
	berth_gc_unlock(r);
	if (rc == 0 && size_out)
		*size_out = size;
	return rc;
}

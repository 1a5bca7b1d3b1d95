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

int berth_blob_stat_locked(uint64_t *size, struct berth_registry *r, const char *name,
			   const char *digest)
{
	int rc = check_linked(r, name, digest);
	if (rc < 0)
		return rc;
	if (r->gc_refresh && (rc = berth_blob_refresh(r, digest)) < 0)
		return rc;
	return berth_blob_data_stat(size, r, digest);
}

int berth_blob_stat(uint64_t *size, struct berth_registry *r, const char *name, const char *digest)
{
	berth_gc_lock_shared(r);
	int rc = berth_blob_stat_locked(size, r, name, digest);
	berth_gc_unlock(r);
	return rc;
}

int berth_blob_open(struct berth_reader **out, struct berth_registry *r, const char *name,
		    const char *digest, uint64_t offset)
{
	char path[BERTH_PATH_MAX];
	int rc = check_linked(r, name, digest);
	if (rc < 0)
		return rc;
	rc = berth_path_blob_data(path, digest);
	if (rc < 0)
		return rc;
	return berth_storage_reader(out, r->driver, path, offset);
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
	/* Remove the <hex> directory holding the link, as Distribution does. */
	char *slash = strrchr(path, '/');
	*slash = '\0';
	return berth_storage_remove(r->driver, path);
}

int berth_blob_mount(struct berth_registry *r, const char *name, const char *digest, const char *from)
{
	char path[BERTH_PATH_MAX];
	/* The check (which refreshes the blob's age) and the link are one step for the online
	 * garbage collection: it cannot delete the blob between them. */
	berth_gc_lock_shared(r);
	int rc = from ? berth_blob_stat_locked(NULL, r, from, digest) : berth_blob_refresh(r, digest);
	if (rc == 0 && (rc = berth_path_layer_link(path, name, digest)) == 0)
		rc = berth_link_write(r, path, digest);
	berth_gc_unlock(r);
	return rc;
}

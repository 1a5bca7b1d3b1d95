/*
 * What the registry core calls to reach storage: thin wrappers over the driver vtable
 * (storage/driver.h), so optional slots and version checks live in one place.
 */
#ifndef BERTH_STORAGE_STORAGE_H
#define BERTH_STORAGE_STORAGE_H

#include "core/err.h"
#include "storage/driver.h"

static inline int berth_storage_get_content(struct berth_storage_driver *d, const char *path,
					    size_t max, char **out, size_t *out_len)
{
	return d->get_content(d, path, max, out, out_len);
}

static inline int berth_storage_put_content(struct berth_storage_driver *d, const char *path,
					    const void *buf, size_t n)
{
	return d->put_content(d, path, buf, n);
}

static inline int berth_storage_reader(struct berth_storage_driver *d, const char *path,
				       uint64_t offset, struct berth_reader **out)
{
	return d->reader(d, path, offset, out);
}

static inline int berth_storage_writer(struct berth_storage_driver *d, const char *path, int append,
				       struct berth_writer **out)
{
	return d->writer(d, path, append, out);
}

static inline int berth_storage_stat(struct berth_storage_driver *d, const char *path,
				     struct berth_stat *out)
{
	return d->stat(d, path, out);
}

static inline int berth_storage_list(struct berth_storage_driver *d, const char *path,
				     berth_list_cb cb, void *payload)
{
	return d->list(d, path, cb, payload);
}

static inline int berth_storage_move(struct berth_storage_driver *d, const char *from, const char *to)
{
	return d->move(d, from, to);
}

static inline int berth_storage_remove(struct berth_storage_driver *d, const char *path)
{
	return d->remove(d, path);
}

static inline int berth_storage_walk(struct berth_storage_driver *d, const char *path,
				     berth_walk_cb cb, void *payload)
{
	return d->walk(d, path, cb, payload);
}

static inline int berth_storage_url_for(struct berth_storage_driver *d, const char *path, char **out)
{
	return d->url_for ? d->url_for(d, path, out) : BERTH_EUNSUPPORTED;
}

static inline void berth_storage_free(struct berth_storage_driver *d)
{
	if (d)
		d->free(d);
}

#endif

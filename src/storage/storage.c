/*
 * The table of storage drivers, looked up by the name of the storage.<name> section: each entry
 * reads its own storage.<name>.* options and builds its driver. What every driver gets checked
 * (the interface version and the slots it must fill) is checked here, once. Adding a driver is
 * its file plus one row below.
 *
 * Also the generic walk, for drivers that only have list and stat.
 */
#include "storage/storage.h"

#include "config/config.h"
#include "storage/storage_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int open_filesystem(struct berth_storage_driver **out, const struct berth_config *cfg)
{
	int rc = berth_fs_driver_new(out, cfg->rootdirectory);
	if (rc < 0)
		berth_err_set(rc, "cannot open storage at '%s': %s", cfg->rootdirectory, berth_err_reason(rc));
	return rc;
}

static int open_inmemory(struct berth_storage_driver **out, const struct berth_config *cfg)
{
	(void)cfg;
	int rc = berth_inmem_driver_new(out);
	if (rc < 0)
		berth_err_set(rc, "cannot create the in-memory storage: %s", berth_strerror(rc));
	return rc;
}

static const struct storage_entry {
	const char *name;
	enum berth_storage_kind kind;
	int (*open)(struct berth_storage_driver **out, const struct berth_config *cfg);
} drivers[] = {
	{ "filesystem", BERTH_STORAGE_FILESYSTEM, open_filesystem },
	{ "inmemory", BERTH_STORAGE_INMEMORY, open_inmemory },
	{ "s3", BERTH_STORAGE_S3, berth_storage__open_s3 },
};

static const struct storage_entry *entry_of(int kind)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
		if ((int)drivers[i].kind == kind)
			return &drivers[i];
	}
	return NULL;
}

const char *berth_storage_driver_name(int kind)
{
	const struct storage_entry *e = entry_of(kind);
	return e ? e->name : "unknown";
}

/* 1 if d speaks this interface version and fills every required slot. */
static int driver_complete(const struct berth_storage_driver *d)
{
	return d->version == BERTH_STORAGE_DRIVER_VERSION && d->name && d->get_content && d->put_content &&
	       d->reader && d->writer && d->stat && d->list && d->move && d->remove && d->walk && d->free;
}

int berth_storage_open(struct berth_storage_driver **out, const struct berth_config *cfg)
{
	const struct storage_entry *e = entry_of((int)cfg->storage);
	*out = NULL;
	if (e == NULL)
		return berth_err_set(BERTH_EUNSUPPORTED, "unknown storage driver");
	int rc = e->open(out, cfg);
	if (rc < 0)
		return rc;
	if (!driver_complete(*out)) {
		berth_storage_free(*out);
		*out = NULL;
		return berth_err_set(BERTH_EUNSUPPORTED,
				     "storage driver '%s' does not implement interface version %d", e->name,
				     BERTH_STORAGE_DRIVER_VERSION);
	}
	return 0;
}

/* ---- generic walk ---- */

struct children {
	char **v;
	size_t n, cap;
};

static int collect_child(const char *path, void *payload)
{
	struct children *c = payload;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 32;
		c->v = berth_realloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = berth_strdup(path);
	return 0;
}

/* Visits the children of path (listed in name order), each followed by its own subtree. */
static int walk_below(struct berth_storage_driver *d, const char *path, berth_walk_cb cb, void *payload)
{
	struct children c = { 0 };
	int rc = d->list(d, path, collect_child, &c);
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		struct berth_stat st;
		int src = d->stat(&st, d, c.v[i]);
		if (src == BERTH_ENOTFOUND)
			continue; /* removed since the listing */
		if (src < 0)
			rc = src;
		else if ((rc = cb(c.v[i], &st, payload)) == 0 && st.is_dir)
			rc = walk_below(d, c.v[i], cb, payload);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i]);
	free(c.v);
	return rc;
}

int berth_storage_walk_generic(struct berth_storage_driver *d, const char *path, berth_walk_cb cb,
			       void *payload)
{
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	return walk_below(d, path, cb, payload);
}

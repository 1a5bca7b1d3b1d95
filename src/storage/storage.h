/*
 * What the registry core calls to reach storage: thin wrappers over the driver vtable
 * (storage/driver.h), so optional slots and version checks live in one place.
 */
#ifndef BERTH_STORAGE_STORAGE_H
#define BERTH_STORAGE_STORAGE_H

#include "core/err.h"
#include "core/util.h"
#include "storage/driver.h"

struct berth_config;

/* Opens the driver the configuration names (storage.filesystem, storage.inmemory or storage.s3)
 * with its storage.<name>.* options. On success *out belongs to the caller (berth_storage_free).
 * Otherwise a BERTH_E* code with a one-line reason as its message (core/err.h; BERTH_EINVALID: an
 * option refused; for s3, the bucket is contacted once: missing bucket, refused credentials).
 * Blocks. */
int berth_storage_open(struct berth_storage_driver **out, const struct berth_config *cfg);
/* The name of a storage kind (enum berth_storage_kind): "filesystem", "inmemory", "s3". */
const char *berth_storage_driver_name(int kind);

/* Storage operations, for the storage_operation_duration_seconds metric. */
enum berth_storage_op {
	BERTH_SOP_GET_CONTENT,
	BERTH_SOP_PUT_CONTENT,
	BERTH_SOP_READER,
	BERTH_SOP_WRITER,
	BERTH_SOP_STAT,
	BERTH_SOP_LIST,
	BERTH_SOP_MOVE,
	BERTH_SOP_REMOVE,
	BERTH_SOP_WALK,
	BERTH_SOP_COUNT,
};

/* Records one operation's latency (storage/metrics.c). */
void berth_storage_observe(enum berth_storage_op op, uint64_t ns);
/* Counts one stat answered by a request another caller sent (storage/coalesce.h):
 * berth_storage_coalesced_total. */
void berth_storage_count_coalesced(void);
/* Registers the storage metrics with the metrics registry. */
void berth_storage_metrics_register(void);

/* Times one driver call. */
#define BERTH_STORAGE_TIMED(op, call)                                  \
	do {                                                           \
		uint64_t t0_ = berth_now_ns();                         \
		int rc_ = (call);                                      \
		berth_storage_observe((op), berth_now_ns() - t0_);     \
		return rc_;                                            \
	} while (0)

static inline int berth_storage_get_content(char **out, size_t *out_len,
					    struct berth_storage_driver *d, const char *path,
					    size_t max)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_GET_CONTENT, d->get_content(out, out_len, d, path, max));
}

static inline int berth_storage_put_content(struct berth_storage_driver *d, const char *path,
					    const void *buf, size_t n)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_PUT_CONTENT, d->put_content(d, path, buf, n));
}

/* put_content making durable on return only what sync says (driver.h's put_content_as;
 * put_content for drivers without it: S3, whose PUT is durable once answered, and inmemory). */
static inline int berth_storage_put_content_as(struct berth_storage_driver *d, const char *path,
					       const void *buf, size_t n, enum berth_sync sync)
{
	if (!d->put_content_as)
		return berth_storage_put_content(d, path, buf, n);
	BERTH_STORAGE_TIMED(BERTH_SOP_PUT_CONTENT, d->put_content_as(d, path, buf, n, sync));
}

static inline int berth_storage_reader(struct berth_reader **out, struct berth_storage_driver *d,
				       const char *path, uint64_t offset)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_READER, d->reader(out, d, path, offset));
}

static inline int berth_storage_writer(struct berth_writer **out, struct berth_storage_driver *d,
				       const char *path, int append)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_WRITER, d->writer(out, d, path, append));
}

static inline int berth_storage_stat(struct berth_stat *out, struct berth_storage_driver *d,
				     const char *path)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_STAT, d->stat(out, d, path));
}

static inline int berth_storage_list(struct berth_storage_driver *d, const char *path,
				     berth_list_cb cb, void *payload)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_LIST, d->list(d, path, cb, payload));
}

static inline int berth_storage_move(struct berth_storage_driver *d, const char *from, const char *to)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_MOVE, d->move(d, from, to));
}

/* move making durable on return only what sync says (driver.h's move_as; move without it). */
static inline int berth_storage_move_as(struct berth_storage_driver *d, const char *from,
					const char *to, enum berth_sync sync)
{
	if (!d->move_as)
		return berth_storage_move(d, from, to);
	BERTH_STORAGE_TIMED(BERTH_SOP_MOVE, d->move_as(d, from, to, sync));
}

static inline int berth_storage_remove(struct berth_storage_driver *d, const char *path)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_REMOVE, d->remove(d, path));
}

static inline int berth_storage_walk(struct berth_storage_driver *d, const char *path,
				     berth_walk_cb cb, void *payload)
{
	BERTH_STORAGE_TIMED(BERTH_SOP_WALK, d->walk(d, path, cb, payload));
}

/* 1 if the driver gives URLs clients can fetch objects from (berth_storage_url_for). */
static inline int berth_storage_has_urls(const struct berth_storage_driver *d)
{
	return d->url_for != NULL;
}

static inline int berth_storage_url_for(char **out, struct berth_storage_driver *d,
					const char *path)
{
	return d->url_for ? d->url_for(out, d, path) : BERTH_EUNSUPPORTED;
}

/* The URL for one client (client_ip may be NULL): the url_for_client slot, or url_for. */
static inline int berth_storage_url_for_client(char **out, struct berth_storage_driver *d,
					       const char *path, const char *client_ip)
{
	if (d->url_for_client)
		return d->url_for_client(out, d, path, client_ip);
	return berth_storage_url_for(out, d, path);
}

/* The size an append-open writer on path would start at (the driver's append_size slot, or
 * the object's size). BERTH_ENOTFOUND if nothing is stored there. */
static inline int berth_storage_append_size(uint64_t *out, struct berth_storage_driver *d,
					    const char *path)
{
	if (d->append_size)
		return d->append_size(out, d, path);
	struct berth_stat st;
	int rc = berth_storage_stat(&st, d, path);
	if (rc == 0)
		*out = st.size;
	return rc;
}

/* Ends a writer's writing, keeping its bytes for a later append-open (struct berth_writer's
 * suspend; flush for drivers without it). */
static inline int berth_writer_suspend(struct berth_writer *w)
{
	return w->suspend ? w->suspend(w) : w->flush(w);
}

/* Announces n more bytes to come (struct berth_writer's expect; nothing for drivers without). */
static inline void berth_writer_expect(struct berth_writer *w, uint64_t n)
{
	if (w->expect)
		w->expect(w, n);
}

static inline int berth_storage_find_debris(struct berth_storage_driver *d, const char *path,
					    const char *skip, berth_debris_cb cb, void *payload)
{
	return d->find_debris ? d->find_debris(d, path, skip, cb, payload) : BERTH_EUNSUPPORTED;
}

static inline int berth_storage_remove_debris(struct berth_storage_driver *d, const char *path)
{
	return d->remove_debris ? d->remove_debris(d, path) : BERTH_EUNSUPPORTED;
}

/* 1 if the driver can move objects aside (berth_storage_quarantine). */
static inline int berth_storage_can_quarantine(const struct berth_storage_driver *d)
{
	return d->quarantine != NULL;
}

static inline int berth_storage_quarantine(char **where_out, struct berth_storage_driver *d,
					   const char *path, const char *path_aside, const char *name)
{
	return d->quarantine ? d->quarantine(where_out, d, path, path_aside, name) : BERTH_EUNSUPPORTED;
}

/* 1 if the driver's calls wait on a network (driver.h's remote): they must not run on the
 * HTTP polling threads. */
static inline int berth_storage_is_remote(const struct berth_storage_driver *d)
{
	return d->remote;
}

/* 1 if the driver can refresh an object's mtime (berth_storage_touch). */
static inline int berth_storage_can_touch(const struct berth_storage_driver *d)
{
	return d->touch != NULL;
}

static inline int berth_storage_touch(struct berth_storage_driver *d, const char *path)
{
	return d->touch ? d->touch(d, path) : BERTH_EUNSUPPORTED;
}

/* 1 if the driver lists every object below a directory at once (berth_storage_list_tree). */
static inline int berth_storage_can_list_tree(const struct berth_storage_driver *d)
{
	return d->list_tree != NULL;
}

/* Every object below path, with its stat, in no particular order (driver.h's list_tree). */
static inline int berth_storage_list_tree(struct berth_storage_driver *d, const char *path,
					  berth_walk_cb cb, void *payload)
{
	if (!d->list_tree)
		return BERTH_EUNSUPPORTED;
	BERTH_STORAGE_TIMED(BERTH_SOP_LIST, d->list_tree(d, path, cb, payload));
}

/* 1 if the driver has staged writers (berth_storage_staged_writer). */
static inline int berth_storage_can_stage(const struct berth_storage_driver *d)
{
	return d->staged_writer != NULL;
}

/* A writer whose object appears at path only on its commit (driver.h's staged_writer). */
static inline int berth_storage_staged_writer(struct berth_writer **out, struct berth_storage_driver *d,
					      const char *path)
{
	if (!d->staged_writer)
		return BERTH_EUNSUPPORTED;
	BERTH_STORAGE_TIMED(BERTH_SOP_WRITER, d->staged_writer(out, d, path));
}

/* 1 if the driver can vouch for what a suspend left (berth_storage_resume_writer). */
static inline int berth_storage_can_resume(const struct berth_storage_driver *d)
{
	return d->resume_writer != NULL;
}

/* driver.h's resume_writer: 0 with *out NULL when the driver cannot vouch for what this
 * process's last suspend of path left (or has no such slot). */
static inline int berth_storage_resume_writer(struct berth_writer **out, struct berth_storage_driver *d,
					      const char *path)
{
	*out = NULL;
	if (!d->resume_writer)
		return 0;
	BERTH_STORAGE_TIMED(BERTH_SOP_WRITER, d->resume_writer(out, d, path));
}

/* Discards what crashed staged writers below path left, if started before `before`; 0 with
 * *purged = 0 for drivers without staged writers. */
static inline int berth_storage_purge_staged(struct berth_storage_driver *d, const char *path,
					     int64_t before, size_t *purged)
{
	*purged = 0;
	return d->purge_staged ? d->purge_staged(d, path, before, purged) : 0;
}

static inline void berth_storage_free(struct berth_storage_driver *d)
{
	if (d)
		d->free(d);
}

#endif

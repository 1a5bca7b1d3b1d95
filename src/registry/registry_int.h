/* Internals shared by the registry's .c files; not for other layers. */
#ifndef BERTH_REGISTRY_INT_H
#define BERTH_REGISTRY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <regex.h>

#include "core/lru.h"
#include "core/map.h"
#include "registry/cache.h"
#include "registry/policy.h"
#include "registry/quota.h"
#include "registry/retention.h"
#include "registry/registry.h"

struct upload_claim {
	struct upload_claim *next;
	char uuid[37];
};

/* The hash state a PATCH of this process left its session at (registry/uploads.c). */
struct upload_resume;

/* Stripes of per-repository locks (registry/repo_delete.c). */
#define BERTH_REPO_LOCK_STRIPES 64

struct berth_coalesce;

struct berth_registry {
	struct berth_storage_driver *driver;
	int delete_enabled;
	int readonly;
	int redirect;
	size_t manifest_max;
	size_t catalog_max;
	size_t tags_max;
	regex_t *urls_allow;  /* compiled validation.manifests.urls.allow */
	size_t n_urls_allow;
	regex_t *urls_deny;
	size_t n_urls_deny;
	int index_children;   /* enum berth_index_children */
	char **platform_os;   /* BERTH_INDEX_CHILDREN_LIST: the platforms whose children must exist */
	char **platform_arch;
	size_t n_platforms;
	struct berth_policy *policy;     /* immutable tags (registry/policy.c) */
	struct berth_quotas *quotas;     /* tag and repository quotas (registry/quota.c) */
	struct berth_quota_bytes *quota_bytes; /* stored-bytes quotas (registry/quota_bytes.c) */
	struct berth_retention *retention;     /* retention rules (registry/retention.c) */
	struct berth_cache *descriptors; /* links and blob sizes; NULL when disabled */
	struct berth_cache *manifests;   /* manifest bytes by digest (immutable) */
	struct berth_redis_cache *redis; /* storage.cache.blobdescriptor: redis; NULL otherwise */
	struct berth_coalesce *redis_lookups; /* with redis: concurrent lookups of one key shared */
	/* The catalog snapshot and what tells whether it still holds (registry/catalog.c). */
	struct berth_catalog_cache *catalog;
	struct berth_taglist_cache *tag_lists; /* registry/taglist.c */
	pthread_mutex_t claims_lock; /* guards claims */
	struct upload_claim *claims; /* uploads held open by a request */
	struct berth_lru resumes; /* guarded by claims_lock too; newest first */
	struct berth_map resume_index; /* a session's entry of resumes; claims_lock too */
	/* Held shared by a manifest PUT, exclusively by a repository delete (repo_delete.c). */
	pthread_rwlock_t repo_locks[BERTH_REPO_LOCK_STRIPES];
	/* Online garbage collection (registry/gc_online.c): when gc_refresh is set, whatever links
	 * or references a blob refreshes the blob data's mtime (its age) under gc_lock held
	 * shared; the collection deletes under gc_lock held exclusively, after checking the age
	 * again. Both are unused (no lock taken, nothing touched) when gc_refresh is 0. */
	int gc_refresh;
	pthread_rwlock_t gc_lock;
	/* This process among the instances sharing the store (registry/gc_shared.h): a UUID. */
	char gc_instance[37];
	/* The listings' looks for writers that bump no generation (registry/looks.c). */
	struct berth_looks *looks;
};

/* registry/repo_delete.c: the per-repository locks, by name (striped: names may share one). */
void berth_repo_locks_init(struct berth_registry *r);
void berth_repo_locks_destroy(struct berth_registry *r);
void berth_repo_lock_shared(struct berth_registry *r, const char *name);
/* As a repository delete holds it: manifest PUTs to name wait (retention's removals). */
void berth_repo_lock_exclusive(struct berth_registry *r, const char *name);
void berth_repo_unlock(struct berth_registry *r, const char *name);

/*
 * A generation kept in the store (registry/generation.c): an object holding a random token,
 * rewritten by every bump, so that all processes sharing the store see a bump by one stat
 * (its version), or a read of the token where the driver gives no version yet.
 */
struct berth_generation {
	int present;      /* 0: never bumped (no object) */
	uint64_t version; /* the object's version when read; 0: none */
	char token[40];
};
/* Reads the generation at path (absent is a generation too). 0 or a BERTH_E* code. */
int berth_generation_read(struct berth_generation *out, struct berth_storage_driver *d, const char *path);
/* 1 if nothing bumped the generation since g was read (g's version is refreshed), 0 if something
 * did or storage failed. */
int berth_generation_unchanged(struct berth_generation *g, struct berth_storage_driver *d,
			       const char *path);
/* 1 if a and b were read from the same bump. */
int berth_generation_equal(const struct berth_generation *a, const struct berth_generation *b);
/* Writes a fresh token (one durable write); a failure is logged, not returned. */
void berth_generation_bump(struct berth_storage_driver *d, const char *path);
/* berth_generation_bump returning the storage error, and on success the generation it wrote
 * into *out (when not NULL), as this writer has seen it. */
int berth_generation_write(struct berth_generation *out, struct berth_storage_driver *d, const char *path);

/* registry/catalog.c: the snapshot (created with the registry, freed with it). */
struct berth_catalog_cache *berth_catalog_cache_new(void);
void berth_catalog_cache_free(struct berth_catalog_cache *c);
/* A link was written at path: when it may have made a repository appear (its first link in
 * this process, or since a repository delete anywhere), every instance's catalog is told. */
void berth_catalog_link_written(struct berth_registry *r, const char *path);
/* A repository was deleted (its directories are gone): every instance's catalog is told. */
void berth_catalog_repo_deleted(struct berth_registry *r);
/* How often the catalog looks at the directories for writers that do not bump the generation
 * (default 2 s; tests make it 0 or very long to make either case happen). */
void berth_catalog_set_foreign_interval(struct berth_registry *r, uint64_t ns);

struct berth_taglist_cache *berth_taglist_cache_new(void);
void berth_taglist_cache_free(struct berth_taglist_cache *c);
/* This process has changed name's tags (a tag written, moved or removed): its cached list goes. */
void berth_tags_changed(struct berth_registry *r, const char *name);
/* A tag of name appeared or was deleted (not moved: the list is the same), after the write:
 * where the driver's directories have no version (S3), the repository's tag generation in the
 * store is bumped (one write), which every instance checks its list of name against. */
void berth_tags_added_or_removed(struct berth_registry *r, const char *name);
/* A repository was deleted: its stored tag generation goes too. */
void berth_tags_repo_deleted(struct berth_registry *r, const char *name);
/* The stat of tag's current link: 0, BERTH_ENOTFOUND (no such tag: absent, or a directory),
 * BERTH_EINVALID (too long a path) or a storage error. Blocks on storage. */
struct berth_stat;
int berth_tag_current_stat(struct berth_stat *out, struct berth_registry *r, const char *name,
			   const char *tag);
/* How often a kept tag list is looked at again for writers that bump no generation, where the
 * driver's directories have no version (default 2 s; tests make it 0 or endless). */
void berth_tags_set_foreign_interval(struct berth_registry *r, uint64_t ns);

/*
 * registry/looks.c: one worker, started when a look is queued and ending when none is left,
 * running the listings' looks at the store for writers that bump no generation, one at a time,
 * so that no request waits on them.
 */
struct berth_looks;
typedef void (*berth_look_fn)(void *arg);
struct berth_looks *berth_looks_new(void);
/* Stops: looks still queued run at once and must give up (berth_looks_stopping), releasing
 * their arg; joins the worker and frees. Called before the caches the looks use are freed, once
 * nothing submits any more (the registry's users are stopped). Accepts NULL. */
void berth_looks_free(struct berth_looks *l);
/* Queues fn(arg). 0, or BERTH_ERROR when stopping or no thread can be started: then fn is not
 * called and arg stays the caller's. Never waits on a look, but may start the thread: called
 * with no listing lock held (a request waiting on that lock would wait on the start too). */
int berth_looks_submit(struct berth_registry *r, berth_look_fn fn, void *arg);
/* 1 once the registry is being freed: a look (and its walk) gives up. */
int berth_looks_stopping(struct berth_registry *r);
/* Waits until no look is queued or running (tests: make a look's outcome happen). */
void berth_looks_wait(struct berth_registry *r);

/* registry/gc_online.c: the sweep lock (no-ops unless r->gc_refresh). Lock order: a
 * repository's lock, then this one. Never taken twice by one thread (writers are preferred). */
void berth_gc_lock_init(struct berth_registry *r);
void berth_gc_lock_destroy(struct berth_registry *r);
void berth_gc_lock_shared(struct berth_registry *r);
void berth_gc_lock_exclusive(struct berth_registry *r);
void berth_gc_unlock(struct berth_registry *r);
/*
 * The blob's data exists, and (with r->gc_refresh) its age starts again: its mtime is set to
 * now. Called with gc_lock held shared by whatever links or references the blob, so that a
 * collection running now either deleted it before (BERTH_ENOTFOUND here) or sees it young;
 * a collection by another instance too (registry/gc_shared.h: this may wait for its batch).
 */
int berth_blob_refresh(struct berth_registry *r, const char *digest);
/* berth_blob_stat for a caller already holding gc_lock shared (a manifest PUT). */
int berth_blob_stat_locked(uint64_t *size, struct berth_registry *r, const char *name,
			   const char *digest);

/* Reads a link file and checks it holds a valid digest; copies it into out. */
int berth_link_read(struct berth_registry *r, const char *path, char out[BERTH_DIGEST_STR_MAX]);
/* berth_link_read for links that move (a tag's current link): the digest read last time is
 * used while the link's version (storage/driver.h) is unchanged, one stat instead of a read. */
int berth_link_read_versioned(struct berth_registry *r, const char *path,
			      char out[BERTH_DIGEST_STR_MAX]);
/* Writes a link file: the digest string, no newline (as Distribution does). */
int berth_link_write(struct berth_registry *r, const char *path, const char *digest);
/* berth_link_write making durable on return only what sync says (storage.h's
 * berth_storage_put_content_as): BERTH_SYNC_FILE for a repository's link to content the
 * pull-through cache can fetch again (a crash may lose the link, never leave it torn). */
int berth_link_write_as(struct berth_registry *r, const char *path, const char *digest,
			enum berth_sync sync);
/* 1 if a foreign layer URL passes validation.manifests.urls (allow, then deny). */
int berth_registry_url_allowed(const struct berth_registry *r, const char *url);

/* Cache access that counts hits and misses; a NULL cache always misses (uncounted). */
int berth_reg_cache_get(struct berth_cache *c, const char *key, uint64_t *num, char **data, size_t *len);
int berth_reg_cache_get_into(struct berth_cache *c, const char *key, uint64_t *num, char *buf, size_t cap,
			     size_t *len);
void berth_reg_cache_put(struct berth_cache *c, const char *key, uint64_t num, const void *data, size_t len);
void berth_reg_cache_remove(struct berth_cache *c, const char *key);
/* Cache keys: kind letter, repository, digest ("l:<name>@<digest>"). */
void berth_reg_cache_key(char *out, size_t cap, char kind, const char *name, const char *digest);

/*
 * Checks that the link file at path names digest. A cached positive answer is re-validated with
 * a stat of the link (one system call instead of open, read and parse), so links removed by
 * another process (Distribution, a second berth, GC) are noticed at once.
 */
int berth_link_check(struct berth_registry *r, const char *path, char kind, const char *name,
		     const char *digest);

/*
 * The Redis blob descriptor cache (registry/blob_descriptors.c), in Distribution's key layout.
 * Each call does nothing (or misses) without Redis, and a Redis failure is a miss: the caller
 * goes to storage. The stats return 1 on a hit (with *size), 0 otherwise.
 */
struct berth_redis_cache;
void berth_reg_redis_attach(struct berth_registry *r, struct berth_redis_cache *c);
void berth_reg_redis_detach(struct berth_registry *r);
int berth_reg_redis_stat(struct berth_registry *r, const char *digest, uint64_t *size);
void berth_reg_redis_set(struct berth_registry *r, const char *digest, uint64_t size);
int berth_reg_redis_repo_stat(struct berth_registry *r, const char *name, const char *digest, uint64_t *size);
void berth_reg_redis_repo_set(struct berth_registry *r, const char *name, const char *digest, uint64_t size);
/* Forgets the blob's descriptor (Distribution's repository-scoped Clear: the global one goes). */
void berth_reg_redis_repo_clear(struct berth_registry *r, const char *name, const char *digest);
/* Forgets every blob of the repository (a repository delete). */
void berth_reg_redis_repo_forget(struct berth_registry *r, const char *name);
/* One repository's tags generation all instances share (registry/taglist.c): 1 with *out, 0
 * without Redis or when it fails. Bumped after every tag change. */
int berth_reg_redis_tags_generation(struct berth_registry *r, const char *name, uint64_t *out);
void berth_reg_redis_tags_changed(struct berth_registry *r, const char *name);

/* 0 if the blob's data exists in the global store, asked of storage itself, never of a cache
 * (which garbage collection by another process would leave stale): for the writes that skip
 * the data when it is there already, as Distribution's blob writer stats the driver. Sets
 * *size when not NULL. */
int berth_blob_data_present(uint64_t *size, struct berth_registry *r, const char *digest);

/* Readies, and frees, the hash states kept for sessions this process suspended
 * (registry/uploads.c). */
void berth_upload_resumes_init(struct berth_registry *r);
void berth_upload_resumes_free(struct berth_registry *r);

/* 0 if the blob's data exists in the global store (sets *size when not NULL). */
int berth_blob_data_stat(uint64_t *size, struct berth_registry *r, const char *digest);

#endif

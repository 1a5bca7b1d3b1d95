/*
 * Distribution's Redis blob descriptor cache (storage.cache.blobdescriptor: redis), through
 * hiredis, with Distribution's key layout so that berth and Distribution can share one Redis:
 *
 *   blobs::<digest>                      hash: digest, size, mediatype (set only if absent)
 *   repository::<name>::blobs            set of the digests the repository holds
 *   repository::<name>::blobs::<digest>  hash: mediatype (the repository's override)
 *
 * A cache, never the truth: every failure to reach Redis (down, timing out, refusing) returns
 * BERTH_ERROR at once, is logged (once per outage) and counted, and the caller looks storage up
 * instead; after a failure Redis is not tried again for a second, then berth reconnects by
 * itself. Connections are pooled (at most pool_size idle ones are kept); every call is safe
 * from any thread, and blocks for at most the dial or read timeout.
 *
 * Not wired into `berth serve` yet: its calls block, and must not run on the HTTP polling threads.
 */
#ifndef BERTH_REGISTRY_CACHE_REDIS_H
#define BERTH_REGISTRY_CACHE_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct berth_redis_cache;

struct berth_redis_cache_options {
	const char *host;      /* IP address or name */
	int port;
	const char *username;  /* "" or NULL: AUTH with the password alone (or no AUTH) */
	const char *password;  /* "" or NULL: no AUTH */
	int db;                /* SELECTed after connecting when not 0 */
	long dial_timeout_ms;  /* 0: 5 s */
	long io_timeout_ms;    /* read and write; 0: 5 s */
	size_t pool_size;      /* idle connections kept; 0: 8 */
};

/* A blob descriptor as Distribution caches it. */
struct berth_blob_descriptor {
	char digest[160];
	uint64_t size;
	char mediatype[256]; /* "" when unknown */
};

/* Creates the cache; connects lazily (nothing is contacted here). */
struct berth_redis_cache *berth_redis_cache_new(const struct berth_redis_cache_options *o);
void berth_redis_cache_free(struct berth_redis_cache *c);

/* The descriptor of a blob: 0, BERTH_ENOTFOUND (not cached), BERTH_ERROR (Redis unusable). */
int berth_redis_cache_stat(struct berth_blob_descriptor *out, struct berth_redis_cache *c,
			   const char *digest);
/* Caches a descriptor (the media type only if none is cached yet, as Distribution). */
int berth_redis_cache_set(struct berth_redis_cache *c, const struct berth_blob_descriptor *d);
/* Forgets a descriptor: 0, BERTH_ENOTFOUND (was not cached), BERTH_ERROR. */
int berth_redis_cache_clear(struct berth_redis_cache *c, const char *digest);

/* The descriptor of a blob the repository holds, with the repository's media type if it has
 * one: 0, BERTH_ENOTFOUND (not a known member), BERTH_ERROR. */
int berth_redis_cache_repo_stat(struct berth_redis_cache *c, const char *repo, const char *digest,
				struct berth_blob_descriptor *out);
/* Records the blob as the repository's, its descriptor, and the repository's media type. */
int berth_redis_cache_repo_set(struct berth_redis_cache *c, const char *repo,
			       const struct berth_blob_descriptor *d);
/* Forgets the descriptor of a blob the repository holds (the membership stays, as in
 * Distribution): 0, BERTH_ENOTFOUND, BERTH_ERROR. */
int berth_redis_cache_repo_clear(struct berth_redis_cache *c, const char *repo, const char *digest);

/* Calls that failed to reach Redis since the cache was created (for a metric). */
uint64_t berth_redis_cache_errors(const struct berth_redis_cache *c);

#endif

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
 * instead; after a failure Redis is left alone for a while (1 s, doubling with each failure in a
 * row up to 8 s), then berth reconnects by itself. Connections are pooled: at most pool_size idle
 * ones are kept (closed once idle longer than idle_timeout_ms), and at most max_active exist at
 * once; a call finding none free does not wait, it answers BERTH_EBUSY (the caller looks storage
 * up). With master_name, the server is the master the sentinels name (asked again for every new
 * connection, so a failover is followed), as go-redis's failover client does.
 *
 * Every call is safe from any thread and blocks the calling thread for at most the dial timeout
 * plus the read and write timeouts of its few commands (twice the dial timeout with sentinels).
 * In `berth serve` the calls run on the thread running the request (see blob_descriptors.c).
 */
#ifndef BERTH_REGISTRY_CACHE_REDIS_H
#define BERTH_REGISTRY_CACHE_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct berth_redis_cache;

/* One server address: host (an IP address or a name) and port. */
struct berth_redis_addr {
	char host[256];
	int port;
};

/* Parses "host:port", "[v6]:port" or "host" (port 6379). BERTH_EINVALID when malformed. */
int berth_redis_addr_parse(struct berth_redis_addr *out, const char *text);

struct berth_redis_cache_options {
	const char *host;      /* IP address or name (without master_name) */
	int port;
	const char *username;  /* "" or NULL: AUTH with the password alone (or no AUTH) */
	const char *password;  /* "" or NULL: no AUTH */
	int db;                /* SELECTed after connecting when not 0 */
	long dial_timeout_ms;  /* 0: 5 s */
	long io_timeout_ms;    /* read (and write, unless write_timeout_ms); 0: 5 s */
	long write_timeout_ms; /* 0: io_timeout_ms */
	size_t pool_size;      /* idle connections kept; 0: 8 */
	size_t max_active;     /* connections open at once; 0: no limit */
	long idle_timeout_ms;  /* an idle connection older than this is closed, not used; 0: never */
	/* Sentinel: with master_name, ask these for the master's address. */
	const char *master_name;
	const struct berth_redis_addr *sentinels;
	size_t n_sentinels;
	const char *sentinel_username; /* AUTH to the sentinels; "" or NULL: none */
	const char *sentinel_password;
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
/* Forgets a blob the repository holds, as Distribution 3 does (in one transaction): its
 * membership, the repository's media type and the global descriptor. 0, BERTH_ENOTFOUND (not a
 * member), BERTH_ERROR. A failure part-way leaves the connection closed (the transaction is
 * discarded with it). */
int berth_redis_cache_repo_clear(struct berth_redis_cache *c, const char *repo, const char *digest);

/* Forgets the repository: its set of blobs and their per-repository hashes (the global
 * descriptors stay: the blobs' data does). 0 or BERTH_ERROR. */
int berth_redis_cache_repo_forget(struct berth_redis_cache *c, const char *repo);

/* A counter all instances share (berth's own keys, which Distribution never reads): its value
 * (0 when unset), or BERTH_ERROR; and its increment, 0 or BERTH_ERROR. */
int berth_redis_cache_counter_get(struct berth_redis_cache *c, const char *key, uint64_t *out);
int berth_redis_cache_counter_bump(struct berth_redis_cache *c, const char *key);

/* Calls that failed to reach Redis since the cache was created (for a metric). */
uint64_t berth_redis_cache_errors(const struct berth_redis_cache *c);
/* Calls that found every connection busy (max_active) and did not wait. */
uint64_t berth_redis_cache_busy(const struct berth_redis_cache *c);
/* Where the cache connects, for logs: "host:port" or "master NAME via host:port,...". */
const char *berth_redis_cache_describe(const struct berth_redis_cache *c);

#endif

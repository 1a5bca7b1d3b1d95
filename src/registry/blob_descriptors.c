/*
 * The shared blob descriptor cache (storage.cache.blobdescriptor: redis), as the registry uses
 * it: Distribution's order, Redis before storage, so that every instance on one store gains
 * from what any of them looked up, and a blob unlinked through one is forgotten for all.
 *
 * Which thread: these calls run on the thread running the request's storage work, a storage
 * worker whenever Redis is configured (main.c), never a polling thread. Each blocks for at most
 * the configured dial, read and write timeouts (cache_redis.h), twice that for a lookup waiting
 * for the next shared round, and only the first request to meet an outage pays them: the cache
 * is then skipped, no connection tried, until its back-off ends. Every failure falls back to
 * storage, so no request fails for Redis.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/metrics.h"
#include "core/util.h"
#include "registry/cache_redis.h"
#include "registry/reference.h"
#include "registry/registry_int.h"
#include "storage/coalesce.h"

/* Distribution's media type for a blob it found in storage (blobStatter). */
#define BLOB_MEDIA_TYPE "application/octet-stream"

/* Keys (a repository and a digest) whose lookups may be shared at once; a lookup past them
 * makes its own round trip. */
#define REDIS_LOOKUP_KEYS 4096

static _Atomic uint64_t redis_hits, redis_misses, redis_errors, redis_shared;
/* The cache of the registry being served, for the error and busy counts it keeps itself. */
static struct berth_redis_cache *_Atomic served;

static void render_redis_metrics(struct berth_buf *out)
{
	struct berth_redis_cache *c = atomic_load(&served);
	if (!c)
		return;
	berth_buf_printf(out,
			 "# HELP berth_redis_cache_requests_total Redis blob descriptor cache lookups: hit, "
			 "miss, error (Redis unusable: storage answered instead).\n"
			 "# TYPE berth_redis_cache_requests_total counter\n"
			 "berth_redis_cache_requests_total{result=\"hit\"} %llu\n"
			 "berth_redis_cache_requests_total{result=\"miss\"} %llu\n"
			 "berth_redis_cache_requests_total{result=\"error\"} %llu\n"
			 "# HELP berth_redis_cache_errors_total Redis calls that failed or were skipped during "
			 "an outage's back-off.\n"
			 "# TYPE berth_redis_cache_errors_total counter\n"
			 "berth_redis_cache_errors_total %llu\n"
			 "# HELP berth_redis_cache_busy_total Redis calls skipped because every connection "
			 "allowed (pool size) was in use.\n"
			 "# TYPE berth_redis_cache_busy_total counter\n"
			 "berth_redis_cache_busy_total %llu\n"
			 "# HELP berth_redis_cache_shared_total Lookups answered by a Redis round trip another "
			 "request sent after this one arrived.\n"
			 "# TYPE berth_redis_cache_shared_total counter\n"
			 "berth_redis_cache_shared_total %llu\n",
			 (unsigned long long)atomic_load(&redis_hits), (unsigned long long)atomic_load(&redis_misses),
			 (unsigned long long)atomic_load(&redis_errors),
			 (unsigned long long)berth_redis_cache_errors(c), (unsigned long long)berth_redis_cache_busy(c),
			 (unsigned long long)atomic_load(&redis_shared));
}

void berth_reg_redis_attach(struct berth_registry *r, struct berth_redis_cache *c)
{
	r->redis = c;
	if (c) {
		r->redis_lookups = berth_coalesce_new(REDIS_LOOKUP_KEYS);
		atomic_store(&served, c);
		berth_metrics_register(render_redis_metrics);
	}
}

void berth_reg_redis_detach(struct berth_registry *r)
{
	struct berth_redis_cache *expected = r->redis;
	atomic_compare_exchange_strong(&served, &expected, NULL);
	berth_coalesce_free(r->redis_lookups); /* first: it waits for the lookups in flight */
	r->redis_lookups = NULL;
	berth_redis_cache_free(r->redis);
	r->redis = NULL;
}

/* Counts a lookup's outcome; 1 on a hit. */
static int counted(int rc)
{
	atomic_fetch_add_explicit(rc == 0 ? &redis_hits : rc == BERTH_ENOTFOUND ? &redis_misses : &redis_errors, 1,
				  memory_order_relaxed);
	return rc == 0;
}

static void descriptor(struct berth_blob_descriptor *d, const char *digest, uint64_t size)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->digest, sizeof(d->digest), "%s", digest);
	d->size = size;
	snprintf(d->mediatype, sizeof(d->mediatype), "%s", BLOB_MEDIA_TYPE);
}

int berth_reg_redis_stat(struct berth_registry *r, const char *digest, uint64_t *size)
{
	struct berth_blob_descriptor d;
	if (!r->redis || strlen(digest) >= sizeof(d.digest))
		return 0;
	if (!counted(berth_redis_cache_stat(&d, r->redis, digest)))
		return 0;
	*size = d.size;
	return 1;
}

void berth_reg_redis_set(struct berth_registry *r, const char *digest, uint64_t size)
{
	struct berth_blob_descriptor d;
	if (!r->redis || strlen(digest) >= sizeof(d.digest))
		return;
	descriptor(&d, digest, size);
	berth_redis_cache_set(r->redis, &d);
}

/* A repository's blob, for the lookups coalesce.h shares. */
struct repo_blob {
	struct berth_redis_cache *cache;
	const char *name, *digest;
};

/* coalesce.h's stat of a key: the Redis lookup of the blob in the repository, its size in
 * out->size. */
static int repo_stat_round(struct berth_stat *out, const char *key, void *payload)
{
	const struct repo_blob *b = payload;
	struct berth_blob_descriptor d;
	(void)key;
	int rc = berth_redis_cache_repo_stat(b->cache, b->name, b->digest, &d);
	if (rc == 0)
		out->size = d.size;
	return rc;
}

/* Concurrent lookups of one blob in one repository share a round trip, under coalesce.h's
 * rule: a request uses only a lookup sent after it arrived, so a blob cleared from Redis (a
 * delete through any instance) before the request arrived is never found by it. Under load
 * on one blob, one round trip answers every request that came during the one before. */
int berth_reg_redis_repo_stat(struct berth_registry *r, const char *name, const char *digest, uint64_t *size)
{
	struct berth_blob_descriptor d;
	if (!r->redis || strlen(digest) >= sizeof(d.digest))
		return 0;
	/* The key: repository names have no '@' */
	char key[BERTH_NAME_MAX + 1 + sizeof(d.digest)];
	if ((size_t)snprintf(key, sizeof(key), "%s@%s", name, digest) >= sizeof(key))
		return 0;
	struct repo_blob b = { r->redis, name, digest };
	struct berth_stat st;
	struct berth_failure before;
	int shared;
	berth_err_save(&before); /* a shared failure is the sender's: this thread's stays as it was */
	int rc = berth_coalesce_stat(&st, &shared, r->redis_lookups, key, repo_stat_round, &b);
	berth_err_restore(&before);
	if (shared)
		atomic_fetch_add_explicit(&redis_shared, 1, memory_order_relaxed);
	if (!counted(rc))
		return 0;
	*size = st.size;
	return 1;
}

void berth_reg_redis_repo_set(struct berth_registry *r, const char *name, const char *digest, uint64_t size)
{
	struct berth_blob_descriptor d;
	if (!r->redis || strlen(digest) >= sizeof(d.digest))
		return;
	descriptor(&d, digest, size);
	berth_redis_cache_repo_set(r->redis, name, &d);
}

void berth_reg_redis_repo_clear(struct berth_registry *r, const char *name, const char *digest)
{
	if (r->redis)
		berth_redis_cache_repo_clear(r->redis, name, digest);
}

void berth_reg_redis_repo_forget(struct berth_registry *r, const char *name)
{
	if (r->redis)
		berth_redis_cache_repo_forget(r->redis, name);
}

/* berth's own key per repository: bumped whenever an instance changes the repository's tags. */
static char *tags_generation_key(const char *name)
{
	return berth_asprintf("berth::repository::%s::tags::generation", name);
}

int berth_reg_redis_tags_generation(struct berth_registry *r, const char *name, uint64_t *out)
{
	if (!r->redis)
		return 0;
	char *key = tags_generation_key(name);
	int ok = berth_redis_cache_counter_get(r->redis, key, out) == 0;
	free(key);
	return ok;
}

void berth_reg_redis_tags_changed(struct berth_registry *r, const char *name)
{
	if (!r->redis)
		return;
	char *key = tags_generation_key(name);
	berth_redis_cache_counter_bump(r->redis, key);
	free(key);
}

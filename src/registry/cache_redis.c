/*
 * Distribution's Redis blob descriptor cache on hiredis (see cache_redis.h for the key layout
 * and the failure rules).
 */
#include "registry/cache_redis.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define RETRY_AFTER_NS 1000000000ull /* after a failure, Redis is left alone this long */

struct berth_redis_cache {
	char *host, *username, *password;
	int port, db;
	struct timeval dial, io;
	size_t pool_size;
	pthread_mutex_t lock; /* guards idle */
	redisContext **idle;
	size_t n_idle;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t retry_after_ns; /* berth_now_ns() before which no connection is tried */
	atomic_int outage_logged;
};

static struct timeval ms_to_tv(long ms)
{
	if (ms <= 0)
		ms = 5000;
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

struct berth_redis_cache *berth_redis_cache_new(const struct berth_redis_cache_options *o)
{
	struct berth_redis_cache *c = berth_calloc(1, sizeof(*c));
	c->host = berth_strdup(o->host);
	c->username = berth_strdup(o->username ? o->username : "");
	c->password = berth_strdup(o->password ? o->password : "");
	c->port = o->port;
	c->db = o->db;
	c->dial = ms_to_tv(o->dial_timeout_ms);
	c->io = ms_to_tv(o->io_timeout_ms);
	c->pool_size = o->pool_size ? o->pool_size : 8;
	c->idle = berth_calloc(c->pool_size, sizeof(*c->idle));
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void berth_redis_cache_free(struct berth_redis_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		redisFree(c->idle[i]);
	free(c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c->host);
	free(c->username);
	free(c->password);
	free(c);
}

uint64_t berth_redis_cache_errors(const struct berth_redis_cache *c)
{
	return atomic_load(&c->errors);
}

/* Counts a failure, logs the first of an outage, and leaves Redis alone for a while. */
static void note_failure(struct berth_redis_cache *c, const char *what, const char *detail)
{
	atomic_fetch_add(&c->errors, 1);
	atomic_store(&c->retry_after_ns, berth_now_ns() + RETRY_AFTER_NS);
	if (atomic_exchange(&c->outage_logged, 1) == 0)
		berth_warn("redis cache %s:%d: %s: %s; looking blobs up in storage until it answers", c->host,
			   c->port, what, detail ? detail : "error");
}

static void note_success(struct berth_redis_cache *c)
{
	if (atomic_load(&c->outage_logged) && atomic_exchange(&c->outage_logged, 0))
		berth_info("redis cache %s:%d: answering again", c->host, c->port);
}

/* One command on ctx: the reply (the caller frees it), or NULL with the failure noted. An error
 * reply is a failure too (NOAUTH, WRONGTYPE, ...). */
static redisReply *run(struct berth_redis_cache *c, redisContext *ctx, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
	if (r == NULL) {
		note_failure(c, argv[0], ctx->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		note_failure(c, argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* A command whose reply only matters for success: 0 or BERTH_ERROR (noted). */
static int run_ok(struct berth_redis_cache *c, redisContext *ctx, int argc, const char **argv)
{
	redisReply *r = run(c, ctx, argc, argv);
	freeReplyObject(r);
	return r ? 0 : BERTH_ERROR;
}

/* Opens a connection: AUTH and SELECT as configured. NULL (noted) on failure. */
static redisContext *dial(struct berth_redis_cache *c)
{
	redisContext *ctx = redisConnectWithTimeout(c->host, c->port, c->dial);
	if (ctx == NULL || ctx->err) {
		note_failure(c, "connect", ctx ? ctx->errstr : "out of memory");
		redisFree(ctx);
		return NULL;
	}
	redisSetTimeout(ctx, c->io);
	char db[16];
	snprintf(db, sizeof(db), "%d", c->db);
	const char *auth_user[] = { "AUTH", c->username, c->password };
	const char *auth[] = { "AUTH", c->password };
	const char *select[] = { "SELECT", db };
	int rc = 0;
	if (c->password[0])
		rc = c->username[0] ? run_ok(c, ctx, 3, auth_user) : run_ok(c, ctx, 2, auth);
	if (rc == 0 && c->db)
		rc = run_ok(c, ctx, 2, select);
	if (rc < 0) {
		redisFree(ctx);
		return NULL;
	}
	return ctx;
}

/* A pooled connection, a new one, or NULL while Redis is left alone after a failure. */
static redisContext *conn_take(struct berth_redis_cache *c)
{
	redisContext *ctx = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->n_idle)
		ctx = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->lock);
	if (ctx)
		return ctx;
	if (berth_now_ns() < atomic_load(&c->retry_after_ns)) {
		atomic_fetch_add(&c->errors, 1);
		return NULL;
	}
	return dial(c);
}

/* Returns a connection that worked to the pool. One that failed is closed, and so are the idle
 * ones: after a restart of Redis each would fail once more, and pause the cache again. */
static void conn_give(struct berth_redis_cache *c, redisContext *ctx, int ok)
{
	redisContext *stale[64];
	size_t n_stale = 0;
	pthread_mutex_lock(&c->lock);
	if (ok && c->n_idle < c->pool_size) {
		c->idle[c->n_idle++] = ctx;
		ctx = NULL;
	}
	while (!ok && c->n_idle && n_stale < sizeof(stale) / sizeof(stale[0]))
		stale[n_stale++] = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->lock);
	if (ok)
		note_success(c);
	for (size_t i = 0; i < n_stale; i++)
		redisFree(stale[i]);
	redisFree(ctx);
}

static char *global_key(const char *digest)
{
	return berth_asprintf("blobs::%s", digest);
}

/* HMGET blobs::<digest> digest size mediatype: 0, BERTH_ENOTFOUND, or BERTH_ERROR. */
static int stat_on(struct berth_redis_cache *c, redisContext *ctx, const char *digest,
		   struct berth_blob_descriptor *out)
{
	char *key = global_key(digest);
	const char *argv[] = { "HMGET", key, "digest", "size", "mediatype" };
	redisReply *r = run(c, ctx, 5, argv);
	free(key);
	if (r == NULL)
		return BERTH_ERROR;
	int rc = BERTH_ENOTFOUND;
	/* A missing size (Distribution's old "length" field) is a miss, as in Distribution. */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		char *end;
		unsigned long long size = strtoull(r->element[1]->str, &end, 10);
		if (*end == '\0' && r->element[0]->len < sizeof(out->digest)) {
			memset(out, 0, sizeof(*out));
			memcpy(out->digest, r->element[0]->str, r->element[0]->len);
			out->size = size;
			if (r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len < sizeof(out->mediatype))
				memcpy(out->mediatype, r->element[2]->str, r->element[2]->len);
			rc = 0;
		}
	}
	freeReplyObject(r);
	return rc;
}

/* HMSET blobs::<digest> digest size, then HSETNX mediatype. */
static int set_on(struct berth_redis_cache *c, redisContext *ctx, const struct berth_blob_descriptor *d)
{
	char *key = global_key(d->digest), size[24];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)d->size);
	const char *hmset[] = { "HMSET", key, "digest", d->digest, "size", size };
	const char *hsetnx[] = { "HSETNX", key, "mediatype", d->mediatype };
	int rc = run_ok(c, ctx, 6, hmset);
	if (rc == 0)
		rc = run_ok(c, ctx, 4, hsetnx);
	free(key);
	return rc;
}

/* HDEL blobs::<digest> digest length mediatype. */
static int clear_on(struct berth_redis_cache *c, redisContext *ctx, const char *digest)
{
	char *key = global_key(digest);
	const char *argv[] = { "HDEL", key, "digest", "length", "mediatype" };
	redisReply *r = run(c, ctx, 5, argv);
	free(key);
	if (r == NULL)
		return BERTH_ERROR;
	int rc = r->type == REDIS_REPLY_INTEGER && r->integer == 0 ? BERTH_ENOTFOUND : 0;
	freeReplyObject(r);
	return rc;
}

/* SISMEMBER repository::<repo>::blobs <digest>: 1, 0, or BERTH_ERROR. */
static int member_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo, const char *digest)
{
	char *set = berth_asprintf("repository::%s::blobs", repo);
	const char *argv[] = { "SISMEMBER", set, digest };
	redisReply *r = run(c, ctx, 3, argv);
	free(set);
	if (r == NULL)
		return BERTH_ERROR;
	int member = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return member;
}

/* The operations below share this frame: take a connection, run, give it back. */
#define WITH_CONN(c, ctx, body)                                  \
	do {                                                     \
		redisContext *ctx = conn_take(c);                \
		if (ctx == NULL)                                 \
			return BERTH_ERROR;                      \
		int rc_ = (body);                                \
		conn_give((c), ctx, rc_ != BERTH_ERROR);         \
		return rc_;                                      \
	} while (0)

int berth_redis_cache_stat(struct berth_blob_descriptor *out, struct berth_redis_cache *c,
			   const char *digest)
{
	WITH_CONN(c, ctx, stat_on(c, ctx, digest, out));
}

int berth_redis_cache_set(struct berth_redis_cache *c, const struct berth_blob_descriptor *d)
{
	WITH_CONN(c, ctx, set_on(c, ctx, d));
}

int berth_redis_cache_clear(struct berth_redis_cache *c, const char *digest)
{
	WITH_CONN(c, ctx, clear_on(c, ctx, digest));
}

static int repo_stat_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo, const char *digest,
			struct berth_blob_descriptor *out)
{
	int rc = member_on(c, ctx, repo, digest);
	if (rc <= 0)
		return rc < 0 ? rc : BERTH_ENOTFOUND;
	if ((rc = stat_on(c, ctx, digest, out)) < 0)
		return rc;
	char *key = berth_asprintf("repository::%s::blobs::%s", repo, digest);
	const char *argv[] = { "HGET", key, "mediatype" };
	redisReply *r = run(c, ctx, 3, argv);
	free(key);
	if (r == NULL)
		return BERTH_ERROR;
	if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < sizeof(out->mediatype)) {
		memcpy(out->mediatype, r->str, r->len);
		out->mediatype[r->len] = '\0';
	}
	freeReplyObject(r);
	return 0;
}

int berth_redis_cache_repo_stat(struct berth_redis_cache *c, const char *repo, const char *digest,
				struct berth_blob_descriptor *out)
{
	WITH_CONN(c, ctx, repo_stat_on(c, ctx, repo, digest, out));
}

static int repo_set_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo,
		       const struct berth_blob_descriptor *d)
{
	char *set = berth_asprintf("repository::%s::blobs", repo);
	char *key = berth_asprintf("repository::%s::blobs::%s", repo, d->digest);
	const char *sadd[] = { "SADD", set, d->digest };
	const char *hset[] = { "HSET", key, "mediatype", d->mediatype };
	int rc = run_ok(c, ctx, 3, sadd);
	if (rc == 0)
		rc = set_on(c, ctx, d);
	if (rc == 0)
		rc = run_ok(c, ctx, 4, hset);
	free(key);
	free(set);
	return rc;
}

int berth_redis_cache_repo_set(struct berth_redis_cache *c, const char *repo,
			       const struct berth_blob_descriptor *d)
{
	WITH_CONN(c, ctx, repo_set_on(c, ctx, repo, d));
}

static int repo_clear_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo, const char *digest)
{
	int rc = member_on(c, ctx, repo, digest);
	if (rc <= 0)
		return rc < 0 ? rc : BERTH_ENOTFOUND;
	return clear_on(c, ctx, digest);
}

int berth_redis_cache_repo_clear(struct berth_redis_cache *c, const char *repo, const char *digest)
{
	WITH_CONN(c, ctx, repo_clear_on(c, ctx, repo, digest));
}

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
#include <sys/socket.h>
#include <sys/time.h>

#define RETRY_FIRST_NS 1000000000ull /* after a failure, Redis is left alone this long, */
#define RETRY_MAX_NS 8000000000ull   /* doubling with each failure in a row up to this */

/* An idle connection and when it was last given back. */
struct idle_conn {
	redisContext *ctx;
	uint64_t since_ns;
};

struct berth_redis_cache {
	char *host, *username, *password;
	int port, db;
	struct timeval dial, read, write;
	size_t pool_size, max_active;
	uint64_t idle_timeout_ns;
	char *master_name, *sentinel_username, *sentinel_password;
	struct berth_redis_addr *sentinels;
	size_t n_sentinels;
	char *describe;
	pthread_mutex_t lock; /* guards idle, n_idle, n_open */
	struct idle_conn *idle;
	size_t n_idle;
	size_t n_open; /* idle plus in use */
	atomic_uint_fast64_t errors, busy;
	atomic_uint_fast64_t retry_after_ns; /* berth_now_ns() before which no connection is tried */
	atomic_uint failures_in_row;
	atomic_int outage_logged;
};

static struct timeval ms_to_tv(long ms)
{
	if (ms <= 0)
		ms = 5000;
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

int berth_redis_addr_parse(struct berth_redis_addr *out, const char *text)
{
	const char *host = text, *port = NULL;
	size_t host_len;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			return BERTH_EINVALID;
		host = text + 1;
		host_len = (size_t)(close - host);
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon && strchr(text, ':') != colon)
			return BERTH_EINVALID; /* a bare IPv6 address needs brackets */
		host_len = colon ? (size_t)(colon - text) : strlen(text);
		port = colon ? colon + 1 : NULL;
	}
	if (host_len == 0 || host_len >= sizeof(out->host))
		return BERTH_EINVALID;
	memcpy(out->host, host, host_len);
	out->host[host_len] = '\0';
	out->port = 6379;
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
			return BERTH_EINVALID;
		out->port = (int)p;
	}
	return 0;
}

static char *describe(const struct berth_redis_cache *c)
{
	struct berth_buf b = BERTH_BUF_INIT(1u << 16);
	if (c->master_name) {
		berth_buf_printf(&b, "master '%s' via sentinels", c->master_name);
		for (size_t i = 0; i < c->n_sentinels; i++)
			berth_buf_printf(&b, "%s%s:%d", i ? "," : " ", c->sentinels[i].host, c->sentinels[i].port);
	} else {
		berth_buf_printf(&b, "%s:%d", c->host, c->port);
	}
	return berth_buf_detach(&b, NULL);
}

static char *dup_or_null(const char *s)
{
	return s && s[0] ? berth_strdup(s) : NULL;
}

struct berth_redis_cache *berth_redis_cache_new(const struct berth_redis_cache_options *o)
{
	struct berth_redis_cache *c = berth_calloc(1, sizeof(*c));
	c->host = berth_strdup(o->host ? o->host : "");
	c->username = berth_strdup(o->username ? o->username : "");
	c->password = berth_strdup(o->password ? o->password : "");
	c->port = o->port;
	c->db = o->db;
	c->dial = ms_to_tv(o->dial_timeout_ms);
	c->read = ms_to_tv(o->io_timeout_ms);
	c->write = o->write_timeout_ms > 0 ? ms_to_tv(o->write_timeout_ms) : c->read;
	c->pool_size = o->pool_size ? o->pool_size : 8;
	c->max_active = o->max_active;
	c->idle_timeout_ns = o->idle_timeout_ms > 0 ? (uint64_t)o->idle_timeout_ms * 1000000ull : 0;
	if (o->master_name && o->master_name[0] && o->n_sentinels) {
		c->master_name = berth_strdup(o->master_name);
		c->sentinel_username = dup_or_null(o->sentinel_username);
		c->sentinel_password = dup_or_null(o->sentinel_password);
		c->sentinels = berth_calloc(o->n_sentinels, sizeof(*c->sentinels));
		memcpy(c->sentinels, o->sentinels, o->n_sentinels * sizeof(*c->sentinels));
		c->n_sentinels = o->n_sentinels;
	}
	c->describe = describe(c);
	c->idle = berth_calloc(c->pool_size, sizeof(*c->idle));
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void berth_redis_cache_free(struct berth_redis_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		redisFree(c->idle[i].ctx);
	free(c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c->host);
	free(c->username);
	free(c->password);
	free(c->master_name);
	free(c->sentinel_username);
	free(c->sentinel_password);
	free(c->sentinels);
	free(c->describe);
	free(c);
}

uint64_t berth_redis_cache_errors(const struct berth_redis_cache *c)
{
	return atomic_load(&c->errors);
}

uint64_t berth_redis_cache_busy(const struct berth_redis_cache *c)
{
	return atomic_load(&c->busy);
}

const char *berth_redis_cache_describe(const struct berth_redis_cache *c)
{
	return c->describe;
}

/* Counts a failure, logs the first of an outage, and leaves Redis alone for a while, longer
 * with each failure in a row. */
static void note_failure(struct berth_redis_cache *c, const char *what, const char *detail)
{
	unsigned n = atomic_fetch_add(&c->failures_in_row, 1);
	uint64_t pause = n >= 3 ? RETRY_MAX_NS : RETRY_FIRST_NS << n;
	atomic_fetch_add(&c->errors, 1);
	atomic_store(&c->retry_after_ns, berth_now_ns() + pause);
	if (atomic_exchange(&c->outage_logged, 1) == 0)
		berth_warn("redis cache %s: %s: %s; looking blobs up in storage until it answers", c->describe,
			   what, detail ? detail : "error");
}

/* A command worked: the back-off ends (a failure on the way, such as one sentinel of several
 * not answering, must not keep the pool from refilling). */
static void note_success(struct berth_redis_cache *c)
{
	if (atomic_exchange(&c->failures_in_row, 0))
		atomic_store(&c->retry_after_ns, 0);
	if (atomic_load(&c->outage_logged) && atomic_exchange(&c->outage_logged, 0))
		berth_info("redis cache %s: answering again", c->describe);
}

/* One command on ctx: the reply (the caller frees it), or NULL with the failure noted. An error
 * reply is a failure too (NOAUTH, WRONGTYPE, READONLY after a failover, ...). */
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

/* Sends n commands at once and reads their n replies: one round trip. 0, or BERTH_ERROR (noted)
 * with every reply freed; an error reply is a failure too. Replies left unread on a failure
 * make the connection unusable: the caller gives it back as failed, which closes it. */
static int run_pipelined(struct berth_redis_cache *c, redisContext *ctx, size_t n, const int *argc,
			 const char **const *argv, redisReply **replies)
{
	memset(replies, 0, n * sizeof(*replies));
	for (size_t i = 0; i < n; i++) {
		if (redisAppendCommandArgv(ctx, argc[i], argv[i], NULL) != REDIS_OK) {
			note_failure(c, argv[i][0], ctx->errstr);
			return BERTH_ERROR;
		}
	}
	for (size_t i = 0; i < n; i++) {
		void *reply = NULL;
		if (redisGetReply(ctx, &reply) != REDIS_OK || reply == NULL) {
			note_failure(c, argv[i][0], ctx->errstr);
			goto out_free;
		}
		replies[i] = reply;
		if (replies[i]->type == REDIS_REPLY_ERROR) {
			note_failure(c, argv[i][0], replies[i]->str);
			goto out_free;
		}
	}
	return 0;
out_free:
	for (size_t i = 0; i < n; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
	return BERTH_ERROR;
}

/* Sets the read and write timeouts apart (hiredis 0.14 sets both to one value). */
static int set_timeouts(struct berth_redis_cache *c, redisContext *ctx)
{
	if (setsockopt(ctx->fd, SOL_SOCKET, SO_RCVTIMEO, &c->read, sizeof(c->read)) != 0 ||
	    setsockopt(ctx->fd, SOL_SOCKET, SO_SNDTIMEO, &c->write, sizeof(c->write)) != 0) {
		note_failure(c, "connect", "cannot set the socket timeouts");
		return BERTH_ERROR;
	}
	return 0;
}

/* A connection to host:port with AUTH as given: NULL (noted) on failure. */
static redisContext *connect_to(struct berth_redis_cache *c, const char *host, int port, const char *user,
				const char *password)
{
	redisContext *ctx = redisConnectWithTimeout(host, port, c->dial);
	if (ctx == NULL || ctx->err) {
		note_failure(c, "connect", ctx ? ctx->errstr : "out of memory");
		redisFree(ctx);
		return NULL;
	}
	const char *auth_user[] = { "AUTH", user ? user : "", password ? password : "" };
	const char *auth[] = { "AUTH", password ? password : "" };
	int rc = set_timeouts(c, ctx);
	if (rc == 0 && password && password[0])
		rc = user && user[0] ? run_ok(c, ctx, 3, auth_user) : run_ok(c, ctx, 2, auth);
	if (rc < 0) {
		redisFree(ctx);
		return NULL;
	}
	return ctx;
}

/* Asks one sentinel for the master's address: 0, or BERTH_ERROR (noted). */
static int ask_sentinel(struct berth_redis_cache *c, const struct berth_redis_addr *s,
			struct berth_redis_addr *master)
{
	redisContext *ctx = connect_to(c, s->host, s->port, c->sentinel_username, c->sentinel_password);
	if (ctx == NULL)
		return BERTH_ERROR;
	const char *argv[] = { "SENTINEL", "get-master-addr-by-name", c->master_name };
	redisReply *r = run(c, ctx, 3, argv);
	int rc = BERTH_ERROR;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof(master->host)) {
		char *end;
		long port = strtol(r->element[1]->str, &end, 10);
		snprintf(master->host, sizeof(master->host), "%s", r->element[0]->str);
		master->port = (int)port;
		rc = *end == '\0' && port > 0 && port <= 65535 ? 0 : BERTH_ERROR;
	}
	if (r && rc < 0)
		note_failure(c, "SENTINEL get-master-addr-by-name", "the sentinel does not know the master");
	freeReplyObject(r);
	redisFree(ctx);
	return rc;
}

/* 1 if ctx's server says it is a master (ROLE), 0 if not, BERTH_ERROR (noted). */
static int is_master(struct berth_redis_cache *c, redisContext *ctx)
{
	const char *argv[] = { "ROLE" };
	redisReply *r = run(c, ctx, 1, argv);
	if (r == NULL)
		return BERTH_ERROR;
	int master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
		     strcmp(r->element[0]->str, "master") == 0;
	freeReplyObject(r);
	if (!master)
		note_failure(c, "ROLE", "the server the sentinels named is not a master (a failover under way)");
	return master;
}

/* A connection to the master the sentinels name now: the first sentinel that answers decides. */
static redisContext *dial_master(struct berth_redis_cache *c)
{
	struct berth_redis_addr master;
	size_t i = 0;
	while (i < c->n_sentinels && ask_sentinel(c, &c->sentinels[i], &master) < 0)
		i++;
	if (i == c->n_sentinels)
		return NULL;
	redisContext *ctx = connect_to(c, master.host, master.port, c->username, c->password);
	if (ctx && is_master(c, ctx) != 1) {
		redisFree(ctx);
		return NULL;
	}
	return ctx;
}

/* Opens a connection: AUTH and SELECT as configured. NULL (noted) on failure. */
static redisContext *dial(struct berth_redis_cache *c)
{
	redisContext *ctx = c->master_name ? dial_master(c) : connect_to(c, c->host, c->port, c->username,
									   c->password);
	if (ctx == NULL)
		return NULL;
	char db[16];
	snprintf(db, sizeof(db), "%d", c->db);
	const char *select[] = { "SELECT", db };
	if (c->db && run_ok(c, ctx, 2, select) < 0) {
		redisFree(ctx);
		return NULL;
	}
	return ctx;
}

/* Takes an idle connection (closing those idle too long), or counts a new one in n_open.
 * *ctx is NULL for "dial one"; returns BERTH_EBUSY at max_active. Called with c->lock held;
 * connections to close go to *stale. */
static int take_locked(struct berth_redis_cache *c, redisContext **ctx, redisContext **stale, size_t *n_stale,
		       size_t stale_cap)
{
	uint64_t now = berth_now_ns();
	*ctx = NULL;
	while (c->n_idle) {
		struct idle_conn ic = c->idle[--c->n_idle];
		if (!c->idle_timeout_ns || now - ic.since_ns < c->idle_timeout_ns) {
			*ctx = ic.ctx;
			return 0;
		}
		c->n_open--;
		if (*n_stale < stale_cap)
			stale[(*n_stale)++] = ic.ctx;
		else
			redisFree(ic.ctx);
	}
	if (c->max_active && c->n_open >= c->max_active)
		return BERTH_EBUSY;
	c->n_open++;
	return 0;
}

/* A pooled connection, a new one, or NULL with BERTH_ERROR while Redis is left alone after a
 * failure or BERTH_EBUSY when max_active are in use (no waiting). */
static redisContext *conn_take(struct berth_redis_cache *c, int *rc)
{
	redisContext *ctx = NULL, *stale[8];
	size_t n_stale = 0;
	pthread_mutex_lock(&c->lock);
	*rc = take_locked(c, &ctx, stale, &n_stale, sizeof(stale) / sizeof(stale[0]));
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < n_stale; i++)
		redisFree(stale[i]);
	if (*rc == BERTH_EBUSY) {
		atomic_fetch_add(&c->busy, 1);
		return NULL;
	}
	if (ctx)
		return ctx;
	if (berth_now_ns() < atomic_load(&c->retry_after_ns))
		atomic_fetch_add(&c->errors, 1);
	else
		ctx = dial(c);
	if (ctx == NULL) {
		pthread_mutex_lock(&c->lock);
		c->n_open--;
		pthread_mutex_unlock(&c->lock);
		*rc = BERTH_ERROR;
	}
	return ctx;
}

/* Returns a connection that worked to the pool. One that failed is closed, and so are the idle
 * ones: after a restart of Redis (or a failover) each would fail once more, and pause the cache
 * again. */
static void conn_give(struct berth_redis_cache *c, redisContext *ctx, int ok)
{
	redisContext *stale[64];
	size_t n_stale = 0;
	pthread_mutex_lock(&c->lock);
	if (ok && c->n_idle < c->pool_size) {
		c->idle[c->n_idle++] = (struct idle_conn){ ctx, berth_now_ns() };
		ctx = NULL;
	}
	while (!ok && c->n_idle && n_stale < sizeof(stale) / sizeof(stale[0])) {
		stale[n_stale++] = c->idle[--c->n_idle].ctx;
		c->n_open--;
	}
	if (ctx)
		c->n_open--;
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

/* An HMGET blobs::<digest> digest size mediatype reply as a descriptor: 0 or BERTH_ENOTFOUND. */
static int parse_descriptor(const redisReply *r, struct berth_blob_descriptor *out)
{
	/* A missing size (Distribution's old "length" field) is a miss, as in Distribution. */
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING)
		return BERTH_ENOTFOUND;
	char *end;
	unsigned long long size = strtoull(r->element[1]->str, &end, 10);
	if (*end != '\0' || r->element[0]->len >= sizeof(out->digest))
		return BERTH_ENOTFOUND;
	memset(out, 0, sizeof(*out));
	memcpy(out->digest, r->element[0]->str, r->element[0]->len);
	out->size = size;
	if (r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len < sizeof(out->mediatype))
		memcpy(out->mediatype, r->element[2]->str, r->element[2]->len);
	return 0;
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
	int rc = parse_descriptor(r, out);
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

/* HDEL blobs::<digest> digest size mediatype (and 2.8's length). */
static int clear_on(struct berth_redis_cache *c, redisContext *ctx, const char *digest)
{
	char *key = global_key(digest);
	const char *argv[] = { "HDEL", key, "digest", "size", "length", "mediatype" };
	redisReply *r = run(c, ctx, 6, argv);
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
		int rc_;                                         \
		redisContext *ctx = conn_take(c, &rc_);          \
		if (ctx == NULL)                                 \
			return rc_;                              \
		rc_ = (body);                                    \
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

/* Distribution's three lookups (SISMEMBER, HMGET of the global descriptor, HGET of the
 * repository's media type) in one round trip. */
static int repo_stat_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo, const char *digest,
			struct berth_blob_descriptor *out)
{
	char *set = berth_asprintf("repository::%s::blobs", repo);
	char *global = global_key(digest);
	char *key = berth_asprintf("repository::%s::blobs::%s", repo, digest);
	const char *member[] = { "SISMEMBER", set, digest };
	const char *hmget[] = { "HMGET", global, "digest", "size", "mediatype" };
	const char *hget[] = { "HGET", key, "mediatype" };
	const int argc[] = { 3, 5, 3 };
	const char **const argv[] = { member, hmget, hget };
	redisReply *r[3];
	int rc = run_pipelined(c, ctx, 3, argc, argv, r);
	free(key);
	free(global);
	free(set);
	if (rc < 0)
		return rc;
	rc = r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer == 1 ? parse_descriptor(r[1], out) : BERTH_ENOTFOUND;
	if (rc == 0 && r[2]->type == REDIS_REPLY_STRING && r[2]->len > 0 && r[2]->len < sizeof(out->mediatype)) {
		memcpy(out->mediatype, r[2]->str, r[2]->len);
		out->mediatype[r[2]->len] = '\0';
	}
	for (size_t i = 0; i < 3; i++)
		freeReplyObject(r[i]);
	return rc;
}

int berth_redis_cache_repo_stat(struct berth_redis_cache *c, const char *repo, const char *digest,
				struct berth_blob_descriptor *out)
{
	WITH_CONN(c, ctx, repo_stat_on(c, ctx, repo, digest, out));
}

/* SADD to the repository's set, the global descriptor (HMSET, HSETNX of the media type) and the
 * repository's media type (HSET), in one round trip. */
static int repo_set_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo,
		       const struct berth_blob_descriptor *d)
{
	char *set = berth_asprintf("repository::%s::blobs", repo);
	char *key = berth_asprintf("repository::%s::blobs::%s", repo, d->digest);
	char *global = global_key(d->digest), size[24];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)d->size);
	const char *sadd[] = { "SADD", set, d->digest };
	const char *hmset[] = { "HMSET", global, "digest", d->digest, "size", size };
	const char *hsetnx[] = { "HSETNX", global, "mediatype", d->mediatype };
	const char *hset[] = { "HSET", key, "mediatype", d->mediatype };
	const int argc[] = { 3, 6, 4, 4 };
	const char **const argv[] = { sadd, hmset, hsetnx, hset };
	redisReply *r[4];
	int rc = run_pipelined(c, ctx, 4, argc, argv, r);
	for (size_t i = 0; rc == 0 && i < 4; i++)
		freeReplyObject(r[i]);
	free(global);
	free(key);
	free(set);
	return rc;
}

int berth_redis_cache_repo_set(struct berth_redis_cache *c, const char *repo,
			       const struct berth_blob_descriptor *d)
{
	WITH_CONN(c, ctx, repo_set_on(c, ctx, repo, d));
}

/* Distribution 3's repository-scoped Clear, one transaction: SREM from the repository's set, DEL
 * of its hash, HDEL of the global descriptor. */
static int repo_clear_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo, const char *digest)
{
	int rc = member_on(c, ctx, repo, digest);
	if (rc <= 0)
		return rc < 0 ? rc : BERTH_ENOTFOUND;
	char *set = berth_asprintf("repository::%s::blobs", repo);
	char *key = berth_asprintf("repository::%s::blobs::%s", repo, digest);
	char *global = global_key(digest);
	const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
	const char *srem[] = { "SREM", set, digest }, *del[] = { "DEL", key };
	const char *hdel[] = { "HDEL", global, "digest", "size", "length", "mediatype" };
	rc = run_ok(c, ctx, 1, multi);
	if (rc == 0)
		rc = run_ok(c, ctx, 3, srem);
	if (rc == 0)
		rc = run_ok(c, ctx, 2, del);
	if (rc == 0)
		rc = run_ok(c, ctx, 6, hdel);
	if (rc == 0)
		rc = run_ok(c, ctx, 1, exec);
	free(global);
	free(key);
	free(set);
	return rc;
}

int berth_redis_cache_repo_clear(struct berth_redis_cache *c, const char *repo, const char *digest)
{
	WITH_CONN(c, ctx, repo_clear_on(c, ctx, repo, digest));
}

/* SMEMBERS of the repository's set, DEL of each member's hash, then DEL of the set. */
static int repo_forget_on(struct berth_redis_cache *c, redisContext *ctx, const char *repo)
{
	char *set = berth_asprintf("repository::%s::blobs", repo);
	const char *members[] = { "SMEMBERS", set };
	redisReply *r = run(c, ctx, 2, members);
	int rc = r ? 0 : BERTH_ERROR;
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && rc == 0; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		char *key = berth_asprintf("repository::%s::blobs::%s", repo, r->element[i]->str);
		const char *del[] = { "DEL", key };
		rc = run_ok(c, ctx, 2, del);
		free(key);
	}
	freeReplyObject(r);
	const char *del_set[] = { "DEL", set };
	if (rc == 0)
		rc = run_ok(c, ctx, 2, del_set);
	free(set);
	return rc;
}

int berth_redis_cache_repo_forget(struct berth_redis_cache *c, const char *repo)
{
	WITH_CONN(c, ctx, repo_forget_on(c, ctx, repo));
}

/* GET key as a number (nil: 0). */
static int counter_get_on(struct berth_redis_cache *c, redisContext *ctx, const char *key, uint64_t *out)
{
	const char *argv[] = { "GET", key };
	redisReply *r = run(c, ctx, 2, argv);
	if (r == NULL)
		return BERTH_ERROR;
	*out = r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
	freeReplyObject(r);
	return 0;
}

int berth_redis_cache_counter_get(struct berth_redis_cache *c, const char *key, uint64_t *out)
{
	WITH_CONN(c, ctx, counter_get_on(c, ctx, key, out));
}

static int counter_bump_on(struct berth_redis_cache *c, redisContext *ctx, const char *key)
{
	const char *argv[] = { "INCR", key };
	return run_ok(c, ctx, 2, argv);
}

int berth_redis_cache_counter_bump(struct berth_redis_cache *c, const char *key)
{
	WITH_CONN(c, ctx, counter_bump_on(c, ctx, key));
}

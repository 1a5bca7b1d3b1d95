/*
 * The `redis` section of a Distribution configuration, for storage.cache.blobdescriptor: redis:
 * Distribution 2.8's keys (addr, pool.*) and 3.x's go-redis options (addrs, poolsize,
 * maxidleconns, maxactiveconns, connmaxidletime, mastername for Sentinel). What berth cannot do
 * is refused here by name (TLS already at load, config_keys.c).
 */
#include "cli/serve_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "registry/cache_redis.h"

/* A cache whose answer is awaited by a request: short by default (storage is the fallback).
 * go-redis waits 5 s to dial and 3 s to read. */
#define DEFAULT_DIAL_MS 250
#define DEFAULT_IO_MS 100

/* The smallest limit of those set (0: none set). */
static size_t smallest_limit(int64_t a, int64_t b, int64_t c)
{
	int64_t v[] = { a, b, c }, best = 0;
	for (size_t i = 0; i < 3; i++)
		if (v[i] > 0 && (best == 0 || v[i] < best))
			best = v[i];
	return (size_t)best;
}

/* The addresses to use: redis.addrs (3.x) or redis.addr (2.8), parsed into *out (caller frees). */
static int parse_addrs(struct berth_redis_addr **out, size_t *n, const struct berth_config *cfg)
{
	const char *const one[] = { cfg->redis.addr };
	const char *const *list = cfg->redis.addrs.n ? (const char *const *)cfg->redis.addrs.v : one;
	const char *key = cfg->redis.addrs.n ? "redis.addrs" : "redis.addr";
	*n = cfg->redis.addrs.n ? cfg->redis.addrs.n : 1;
	*out = berth_calloc(*n, sizeof(**out));
	for (size_t i = 0; i < *n; i++) {
		if (berth_redis_addr_parse(&(*out)[i], list[i]) < 0) {
			berth_error("configuration error: %s: '%s' is not an address (host:port)", key, list[i]);
			free(*out);
			*out = NULL;
			return BERTH_EINVALID;
		}
	}
	return 0;
}

/* Refuses what the section asks that berth cannot do; the reason is logged. */
static int check_section(const struct berth_config *cfg)
{
	int has_addr = cfg->redis.addr[0] != '\0', has_addrs = cfg->redis.addrs.n > 0;
	if (has_addr && has_addrs) {
		berth_error("configuration error: redis.addr and redis.addrs are both set: keep one "
			    "(addr is Distribution 2.8's, addrs 3.x's)");
		return BERTH_EINVALID;
	}
	if (!has_addr && !has_addrs) {
		berth_error("configuration error: storage.cache.blobdescriptor: redis needs redis.addrs "
			    "(or Distribution 2.8's redis.addr)");
		return BERTH_EINVALID;
	}
	if (cfg->redis.addrs.n > 1 && !cfg->redis.mastername[0]) {
		berth_error("configuration error: redis.addrs: several addresses without redis.mastername "
			    "mean a Redis Cluster, which berth does not support (one address, or Sentinel "
			    "with redis.mastername)");
		return BERTH_EINVALID;
	}
	if (cfg->redis.mastername[0] && !has_addrs) {
		berth_error("configuration error: redis.mastername: the sentinels go in redis.addrs");
		return BERTH_EINVALID;
	}
	return 0;
}

int berth_serve_redis_cache(struct berth_redis_cache **out, const struct berth_config *cfg)
{
	struct berth_redis_addr *addrs = NULL;
	size_t n = 0;
	*out = NULL;
	if (cfg->blob_cache != BERTH_BLOB_CACHE_REDIS) {
		if (cfg->redis.addr[0] || cfg->redis.addrs.n)
			berth_warn("redis is configured but not used: only storage.cache.blobdescriptor: redis "
				   "uses it (as in Distribution)");
		return 0;
	}
	if (check_section(cfg) < 0 || parse_addrs(&addrs, &n, cfg) < 0)
		return BERTH_EINVALID;
	int sentinel = cfg->redis.mastername[0] != '\0';
	struct berth_redis_cache_options o = {
		.host = sentinel ? NULL : addrs[0].host,
		.port = sentinel ? 0 : addrs[0].port,
		.username = cfg->redis.username,
		.password = cfg->redis.password,
		.db = (int)cfg->redis.db,
		.dial_timeout_ms = cfg->redis.dialtimeout_ms > 0 ? cfg->redis.dialtimeout_ms : DEFAULT_DIAL_MS,
		.io_timeout_ms = cfg->redis.readtimeout_ms > 0 ? cfg->redis.readtimeout_ms : DEFAULT_IO_MS,
		.write_timeout_ms = cfg->redis.writetimeout_ms > 0 ? cfg->redis.writetimeout_ms
				    : cfg->redis.readtimeout_ms > 0 ? cfg->redis.readtimeout_ms : DEFAULT_IO_MS,
		.pool_size = cfg->redis.pool_maxidle > 0 ? (size_t)cfg->redis.pool_maxidle : 0,
		.max_active = smallest_limit(cfg->redis.pool_maxactive, cfg->redis.poolsize, cfg->redis.maxactiveconns),
		.idle_timeout_ms = cfg->redis.pool_idletimeout_ms,
		.master_name = sentinel ? cfg->redis.mastername : NULL,
		.sentinels = sentinel ? addrs : NULL,
		.n_sentinels = sentinel ? n : 0,
		.sentinel_username = cfg->redis.sentinelusername,
		.sentinel_password = cfg->redis.sentinelpassword,
	};
	*out = berth_redis_cache_new(&o);
	free(addrs);
	berth_info("blob descriptor cache: redis %s, db %d (connects when first used)",
		   berth_redis_cache_describe(*out), (int)cfg->redis.db);
	return 0;
}

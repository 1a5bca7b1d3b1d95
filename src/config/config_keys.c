/*
 * The one table of config.yml keys, and the typed setters both the YAML walk and the
 * environment overrides go through, so a value is checked the same way wherever it comes from.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

_Static_assert(sizeof(enum berth_storage_kind) == sizeof(int), "storage kind is stored through an int");

/* ---- table ---------------------------------------------------------------------------------- */

#define C struct berth_config
#define E struct berth_notify_endpoint
#define U struct berth_config_upstream
#define FSIZE(T, f) sizeof(((T *)0)->f)
#define STR(T, k, f) { .key = k, .type = CT_STR, .off = offsetof(T, f), .size = FSIZE(T, f) }
#define BOOL(T, k, f) { .key = k, .type = CT_BOOL, .off = offsetof(T, f) }
#define NOTBOOL(T, k, f) { .key = k, .type = CT_NOT_BOOL, .off = offsetof(T, f) }
#define INT(T, k, f, lo, hi) \
	{ .key = k, .type = CT_INT, .off = offsetof(T, f), .size = FSIZE(T, f), .min = lo, .max = hi }
#define DUR(T, k, f) { .key = k, .type = CT_DURATION, .off = offsetof(T, f) }
#define ENUM(T, k, f, n) { .key = k, .type = CT_ENUM, .off = offsetof(T, f), .names = n }
#define STRLIST(T, k, f) \
	{ .key = k, .type = CT_STRLIST, .off = offsetof(T, f), .max_items = BERTH_CONFIG_MAX_LIST }
#define REGEXLIST(T, k, f) \
	{ .key = k, .type = CT_REGEXLIST, .off = offsetof(T, f), .max_items = BERTH_CONFIG_MAX_LIST }
#define HEADERS(T, k, f, cap) { .key = k, .type = CT_HEADERS, .off = offsetof(T, f), .max_items = cap }
#define STRMAP(T, k, f, cap) { .key = k, .type = CT_STRMAP, .off = offsetof(T, f), .max_items = cap }
#define FN(k, f) { .key = k, .type = CT_FN, .fn = f }
#define ANY(k, w) { .key = k, .type = CT_ANY, .why = w }
#define REFUSE(k, w) { .key = k, .type = CT_REFUSE, .why = w }
#define OBSOLETE(k) \
	{ .key = k, .type = CT_OBSOLETE, \
	  .why = "obsolete Distribution 2.x section, ignored (it changes nothing clients get)" }
#define GROUP(k, g) { .key = k, .type = CT_GROUP, .group = g }
#define CHOICE(k, g, v) { .key = k, .type = CT_CHOICE, .group = g, .value = v }

static const struct cfg_enum log_levels[] = {
	{ "debug", BERTH_LOG_DEBUG }, { "info", BERTH_LOG_INFO },
	{ "warn", BERTH_LOG_WARN },   { "error", BERTH_LOG_ERROR }, { NULL, 0 },
};
static const struct cfg_enum log_formats[] = {
	{ "text", BERTH_LOG_FORMAT_TEXT }, { "json", BERTH_LOG_FORMAT_JSON },
	{ "logstash", BERTH_LOG_FORMAT_JSON }, { NULL, 0 },
};
static const struct cfg_enum blob_caches[] = {
	{ "inmemory", BERTH_BLOB_CACHE_INMEMORY }, { "redis", BERTH_BLOB_CACHE_REDIS }, { NULL, 0 },
};
static const struct cfg_enum nets[] = { { "tcp", BERTH_NET_TCP }, { "unix", BERTH_NET_UNIX }, { NULL, 0 } };
static const struct cfg_enum tls_versions[] = {
	{ "tls1.0", BERTH_TLS_1_0 }, { "tls1.1", BERTH_TLS_1_1 },
	{ "tls1.2", BERTH_TLS_1_2 }, { "tls1.3", BERTH_TLS_1_3 }, { NULL, 0 },
};
static const struct cfg_enum client_auths[] = {
	{ "request-client-cert", BERTH_CLIENT_AUTH_REQUEST },
	{ "require-any-client-cert", BERTH_CLIENT_AUTH_REQUIRE_ANY },
	{ "verify-client-cert-if-given", BERTH_CLIENT_AUTH_VERIFY_IF_GIVEN },
	{ "require-and-verify-client-cert", BERTH_CLIENT_AUTH_REQUIRE_AND_VERIFY }, { NULL, 0 },
};

/* Why the S3 driver's tuning keys change nothing yet: the driver itself is refused at start-up. */

static int set_version(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
		       const struct cfg_scalar *v);
static int set_log_level(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			 const struct cfg_scalar *v);
static int set_deprecated_loglevel(struct cfg_ctx *c, const struct cfg_key *k, void *base,
				   const char *key, const struct cfg_scalar *v);
static int set_validation_enabled(struct cfg_ctx *c, const struct cfg_key *k, void *base,
				  const char *key, const struct cfg_scalar *v);

/* notifications.endpoints[i] */
static const struct cfg_key endpoint_keys[] = {
	STR(E, "name", name),
	BOOL(E, "disabled", disabled),
	STR(E, "url", url),
	HEADERS(E, "headers", headers, BERTH_CONFIG_MAX_HEADERS),
	DUR(E, "timeout", timeout_ms),
	INT(E, "threshold", threshold, 0, INT32_MAX),
	DUR(E, "backoff", backoff_ms),
	STRLIST(E, "ignoredmediatypes", ignoredmediatypes),
	STRLIST(E, "ignore.mediatypes", ignore_mediatypes),
	STRLIST(E, "ignore.actions", ignore_actions),
};

static void endpoint_init(void *p)
{
	struct berth_notify_endpoint *e = p;
	memset(e, 0, sizeof(*e));
	e->timeout_ms = 1000;
	e->threshold = 10;
	e->backoff_ms = 1000;
}

static void endpoint_release(void *p)
{
	struct berth_notify_endpoint *e = p;
	berth_config__headers_free(&e->headers);
	berth_config__strlist_free(&e->ignoredmediatypes);
	berth_config__strlist_free(&e->ignore_mediatypes);
	berth_config__strlist_free(&e->ignore_actions);
}

static const struct cfg_table endpoint_table = {
	endpoint_keys, sizeof(endpoint_keys) / sizeof(endpoint_keys[0]),
	sizeof(struct berth_notify_endpoint), endpoint_init, endpoint_release,
};

/* proxy.upstreams[i] (berth) */
static const struct cfg_key upstream_keys[] = {
	STR(U, "prefix", prefix),
	STR(U, "remoteurl", remoteurl),
	STR(U, "username", username),
	STR(U, "password", password),
	DUR(U, "ttl", ttl_ms),
	STR(U, "exec.command", exec_command),
	DUR(U, "exec.lifetime", exec_lifetime_ms),
	BOOL(U, "prefetch", prefetch),
};

static void upstream_init(void *p)
{
	struct berth_config_upstream *u = p;
	memset(u, 0, sizeof(*u));
	u->ttl_ms = 168LL * 3600 * 1000;
	u->exec_lifetime_ms = -1;
	u->prefetch = -1;
}

static void upstream_release(void *p)
{
	(void)p;
}

static const struct cfg_table upstream_table = {
	upstream_keys, sizeof(upstream_keys) / sizeof(upstream_keys[0]),
	sizeof(struct berth_config_upstream), upstream_init, upstream_release,
};

/* health.file[i], health.http[i], health.tcp[i] */
#define HF struct berth_health_file
#define HH struct berth_health_http
#define HT struct berth_health_tcp
static const struct cfg_key health_file_keys[] = {
	STR(HF, "file", file),
	DUR(HF, "interval", interval_ms),
};
static const struct cfg_key health_http_keys[] = {
	STR(HH, "uri", uri),
	HEADERS(HH, "headers", headers, BERTH_CONFIG_MAX_HEADERS),
	INT(HH, "statuscode", statuscode, 0, 999),
	DUR(HH, "timeout", timeout_ms),
	DUR(HH, "interval", interval_ms),
	INT(HH, "threshold", threshold, 0, INT32_MAX),
};
static const struct cfg_key health_tcp_keys[] = {
	STR(HT, "addr", addr),
	DUR(HT, "timeout", timeout_ms),
	DUR(HT, "interval", interval_ms),
	INT(HT, "threshold", threshold, 0, INT32_MAX),
};

static void zero_elem_file(void *p)
{
	memset(p, 0, sizeof(HF));
}

static void zero_elem_http(void *p)
{
	memset(p, 0, sizeof(HH));
}

static void zero_elem_tcp(void *p)
{
	memset(p, 0, sizeof(HT));
}

static void release_elem_http(void *p)
{
	berth_config__headers_free(&((HH *)p)->headers);
}

static void release_nothing(void *p)
{
	(void)p;
}

static const struct cfg_table health_file_table = {
	health_file_keys, sizeof(health_file_keys) / sizeof(health_file_keys[0]), sizeof(HF), zero_elem_file,
	release_nothing,
};
static const struct cfg_table health_http_table = {
	health_http_keys, sizeof(health_http_keys) / sizeof(health_http_keys[0]), sizeof(HH), zero_elem_http,
	release_elem_http,
};
static const struct cfg_table health_tcp_table = {
	health_tcp_keys, sizeof(health_tcp_keys) / sizeof(health_tcp_keys[0]), sizeof(HT), zero_elem_tcp,
	release_nothing,
};
#define HEALTH_LIST(k, f, table) \
	{ .key = k, .type = CT_LIST, .off = offsetof(C, f), .count_off = offsetof(C, n_##f), .sub = &table, \
	  .max_items = BERTH_CONFIG_MAX_HEALTH_CHECKS }

/* validation.manifests.indexes.platformlist[i] */
#define PL struct berth_platform
static const struct cfg_key platform_keys[] = {
	STR(PL, "os", os),
	STR(PL, "architecture", architecture),
};
static void zero_elem_platform(void *p)
{
	memset(p, 0, sizeof(PL));
}
static const struct cfg_table platform_table = {
	platform_keys, sizeof(platform_keys) / sizeof(platform_keys[0]), sizeof(PL), zero_elem_platform,
	release_nothing,
};
/* policies.immutabletags[i]: patterns checked as regexes at load, stored as written */
#define IR struct berth_immutable_rule
static int set_regex_str(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			 const struct cfg_scalar *v);
#define REGEX(T, k, f) { .key = k, .type = CT_FN, .fn = set_regex_str, .off = offsetof(T, f), .size = FSIZE(T, f) }
static const struct cfg_key immutable_rule_keys[] = {
	REGEX(IR, "repository", repository),
	REGEX(IR, "tags", tags),
};
static void zero_elem_immutable_rule(void *p)
{
	memset(p, 0, sizeof(IR));
}
static const struct cfg_table immutable_rule_table = {
	immutable_rule_keys, sizeof(immutable_rule_keys) / sizeof(immutable_rule_keys[0]), sizeof(IR),
	zero_elem_immutable_rule, release_nothing,
};

/* policies.quotas[i] */
#define QR struct berth_quota_config
static const struct cfg_key quota_keys[] = {
	REGEX(QR, "repository", repository),
	INT(QR, "tags", tags, 0, INT64_MAX),
	INT(QR, "repositories", repositories, 0, INT64_MAX),
	INT(QR, "bytes", bytes, 0, INT64_MAX),
};
static void zero_elem_quota(void *p)
{
	memset(p, 0, sizeof(QR));
}
static const struct cfg_table quota_table = {
	quota_keys, sizeof(quota_keys) / sizeof(quota_keys[0]), sizeof(QR), zero_elem_quota, release_nothing,
};

/* policies.retention.rules[i]: unset numbers are -1 (0 is a value: keep none, or at once) */
#define RR struct berth_retention_rule_config
static const struct cfg_key retention_rule_keys[] = {
	REGEX(RR, "repository", repository),
	INT(RR, "keeplatest", keeplatest, 0, INT64_MAX),
	REGEX(RR, "keeptags", keeptags),
	DUR(RR, "keeppushedwithin", keeppushedwithin_ms),
	DUR(RR, "untaggedafter", untaggedafter_ms),
	DUR(RR, "keeppulledwithin", keeppulledwithin_ms),
};
static void init_retention_rule(void *p)
{
	RR *r = p;
	memset(r, 0, sizeof(*r));
	r->keeplatest = -1;
	r->keeppushedwithin_ms = -1;
	r->untaggedafter_ms = -1;
	r->keeppulledwithin_ms = -1;
}
static const struct cfg_table retention_rule_table = {
	retention_rule_keys, sizeof(retention_rule_keys) / sizeof(retention_rule_keys[0]), sizeof(RR),
	init_retention_rule, release_nothing,
};

/* middleware.storage[i]: cloudfront's and redirect's options; config.c checks which name takes
 * which (both as Distribution 3's storage middleware reads them). */
#define SM struct berth_storage_middleware
static int set_unit_duration(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			     const struct cfg_scalar *v);
static int set_updatefrenquency(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
				const struct cfg_scalar *v);
static int set_given(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
		     const struct cfg_scalar *v);
#define UNIT_DUR(T, k, f) { .key = k, .type = CT_FN, .fn = set_unit_duration, .off = offsetof(T, f) }
static const struct cfg_key storage_middleware_keys[] = {
	STR(SM, "name", name),
	BOOL(SM, "disabled", disabled),
	STR(SM, "options.baseurl", baseurl),
	STR(SM, "options.privatekey", privatekey),
	STR(SM, "options.keypairid", keypairid),
	UNIT_DUR(SM, "options.duration", duration_ms),
	STR(SM, "options.ipfilteredby", ipfilteredby),
	STR(SM, "options.awsregion", awsregion),
	UNIT_DUR(SM, "options.updatefrequency", updatefrequency_ms),
	{ .key = "options.updatefrenquency", .type = CT_FN, .fn = set_updatefrenquency,
	  .off = offsetof(SM, updatefrequency_ms) },
	STR(SM, "options.iprangesurl", iprangesurl),
	/* rewrite's (Distribution 3): known, so that the refusal of rewrite is the one message */
	{ .key = "options.scheme", .type = CT_FN, .fn = set_given, .off = offsetof(SM, rewrite_options) },
	{ .key = "options.host", .type = CT_FN, .fn = set_given, .off = offsetof(SM, rewrite_options) },
	{ .key = "options.trimpathprefix", .type = CT_FN, .fn = set_given, .off = offsetof(SM, rewrite_options) },
};
static void init_storage_middleware(void *p)
{
	SM *m = p;
	memset(m, 0, sizeof(*m));
	m->duration_ms = -1; /* unset: 20m, storage/middleware.c */
	m->updatefrequency_ms = -1;
}
static const struct cfg_table storage_middleware_table = {
	storage_middleware_keys, sizeof(storage_middleware_keys) / sizeof(storage_middleware_keys[0]), sizeof(SM),
	init_storage_middleware, release_nothing,
};

static const struct cfg_enum index_platforms[] = {
	{ "all", BERTH_INDEX_PLATFORMS_ALL }, { "none", BERTH_INDEX_PLATFORMS_NONE },
	{ "list", BERTH_INDEX_PLATFORMS_LIST }, { NULL, 0 },
};

static const struct cfg_key keys[] = {
	FN("version", set_version),

	/* log */
	FN("log.level", set_log_level),
	ENUM(C, "log.formatter", log_formatter, log_formats),
	STRMAP(C, "log.fields", log_fields, BERTH_CONFIG_MAX_LOG_FIELDS),
	NOTBOOL(C, "log.accesslog.disabled", access_log),
	BOOL(C, "log.reportcaller", log_reportcaller),
	REFUSE("log.hooks", "log hooks (mail on error) are not supported; watch the log instead"),
	FN("loglevel", set_deprecated_loglevel),

	/* storage: one driver, plus the driver-independent sections */
	GROUP("storage", CG_STORAGE),
	CHOICE("storage.filesystem", CG_STORAGE, BERTH_STORAGE_FILESYSTEM),
	STR(C, "storage.filesystem.rootdirectory", rootdirectory),
	INT(C, "storage.filesystem.maxthreads", fs_maxthreads, 25, INT32_MAX),
	CHOICE("storage.inmemory", CG_STORAGE, BERTH_STORAGE_INMEMORY),
	CHOICE("storage.s3", CG_STORAGE, BERTH_STORAGE_S3),
	STR(C, "storage.s3.accesskey", s3.accesskey),
	STR(C, "storage.s3.secretkey", s3.secretkey),
	STR(C, "storage.s3.region", s3.region),
	STR(C, "storage.s3.regionendpoint", s3.regionendpoint),
	STR(C, "storage.s3.bucket", s3.bucket),
	STR(C, "storage.s3.rootdirectory", s3.rootdirectory),
	STR(C, "storage.s3.secure", s3.secure),
	STR(C, "storage.s3.v4auth", s3.v4auth),
	STR(C, "storage.s3.chunksize", s3.chunksize),
	STR(C, "storage.s3.forcepathstyle", s3.forcepathstyle),
	STR(C, "storage.s3.encrypt", s3.encrypt),
	STR(C, "storage.s3.keyid", s3.keyid),
	STR(C, "storage.s3.skipverify", s3.skipverify),
	STR(C, "storage.s3.multipartcopychunksize", s3.multipartcopychunksize),
	STR(C, "storage.s3.multipartcopymaxconcurrency", s3.multipartcopymaxconcurrency),
	STR(C, "storage.s3.multipartcopythresholdsize", s3.multipartcopythresholdsize),
	STR(C, "storage.s3.storageclass", s3.storageclass),
	STR(C, "storage.s3.useragent", s3.useragent),
	STR(C, "storage.s3.usedualstack", s3.usedualstack),
	STR(C, "storage.s3.objectacl", s3.objectacl),
	STR(C, "storage.s3.loglevel", s3.loglevel),
	STR(C, "storage.s3.accelerate", s3.accelerate),
	STR(C, "storage.s3.redirectendpoint", s3.redirectendpoint),
	STR(C, "storage.s3.usefipsendpoint", s3.usefipsendpoint),
	STR(C, "storage.s3.sessiontoken", s3.sessiontoken),
	CHOICE("storage.azure", CG_STORAGE, -1),
	CHOICE("storage.gcs", CG_STORAGE, -1),
	CHOICE("storage.swift", CG_STORAGE, -1),
	CHOICE("storage.oss", CG_STORAGE, -1),
	BOOL(C, "storage.delete.enabled", delete_enabled),
	BOOL(C, "storage.redirect.disable", redirect_disable),
	ENUM(C, "storage.cache.blobdescriptor", blob_cache, blob_caches),
	INT(C, "storage.cache.blobdescriptorsize", blob_cache_size, 0, INT64_MAX),
	BOOL(C, "storage.maintenance.uploadpurging.enabled", uploadpurging.enabled),
	DUR(C, "storage.maintenance.uploadpurging.age", uploadpurging.age_ms),
	DUR(C, "storage.maintenance.uploadpurging.interval", uploadpurging.interval_ms),
	BOOL(C, "storage.maintenance.uploadpurging.dryrun", uploadpurging.dryrun),
	BOOL(C, "storage.maintenance.gc.enabled", gc.enabled),
	DUR(C, "storage.maintenance.gc.interval", gc.interval_ms),
	DUR(C, "storage.maintenance.gc.delay", gc.delay_ms),
	BOOL(C, "storage.maintenance.gc.deleteuntagged", gc.deleteuntagged),
	BOOL(C, "storage.maintenance.gc.dryrun", gc.dryrun),
	BOOL(C, "storage.maintenance.readonly.enabled", readonly),
	INT(C, "storage.tag.concurrencylimit", tag_concurrencylimit, 0, INT32_MAX),

	/* http */
	STR(C, "http.addr", addr),
	ENUM(C, "http.net", http.net, nets),
	STR(C, "http.prefix", http.prefix),
	STR(C, "http.host", http.host),
	STR(C, "http.secret", http.secret),
	BOOL(C, "http.relativeurls", http.relativeurls),
	DUR(C, "http.draintimeout", http.draintimeout_ms),
	INT(C, "http.workers", http.workers, 0, 4096), /* berth-specific */
	STR(C, "http.tls.certificate", http.tls_certificate),
	STR(C, "http.tls.key", http.tls_key),
	STRLIST(C, "http.tls.clientcas", http.tls_clientcas),
	ENUM(C, "http.tls.minimumtls", http.tls_minimum, tls_versions),
	STRLIST(C, "http.tls.ciphersuites", http.tls_ciphersuites),
	REFUSE("http.tls.letsencrypt",
	       "berth does not obtain certificates itself: get one with certbot, point http.tls.certificate "
	       "and http.tls.key at its fullchain.pem and privkey.pem, and have certbot's deploy hook send "
	       "berth SIGHUP to re-read them (see README, TLS)"),
	ENUM(C, "http.tls.clientauth", http.tls_clientauth, client_auths),
	HEADERS(C, "http.headers", http.headers, BERTH_CONFIG_MAX_HEADERS),
	STR(C, "http.debug.addr", http.debug_addr),
	BOOL(C, "http.debug.prometheus.enabled", http.prometheus_enabled),
	STR(C, "http.debug.prometheus.path", http.prometheus_path),
	BOOL(C, "http.http2.disabled", http.http2_disabled),
	REFUSE("http.h2c.enabled", "berth serves HTTP/1.1 only: HTTP/2 without TLS (h2c) is not supported"),

	/* health */
	BOOL(C, "health.storagedriver.enabled", health_storagedriver.enabled),
	DUR(C, "health.storagedriver.interval", health_storagedriver.interval_ms),
	INT(C, "health.storagedriver.threshold", health_storagedriver.threshold, 0, INT32_MAX),
	HEALTH_LIST("health.file", health_files, health_file_table),
	HEALTH_LIST("health.http", health_https, health_http_table),
	HEALTH_LIST("health.tcp", health_tcps, health_tcp_table),

	/* validation */
	BOOL(C, "validation.disabled", validation.disabled),
	FN("validation.enabled", set_validation_enabled),
	REGEXLIST(C, "validation.manifests.urls.allow", validation.urls_allow),
	REGEXLIST(C, "validation.manifests.urls.deny", validation.urls_deny),
	ENUM(C, "validation.manifests.indexes.platforms", validation.index_platforms, index_platforms),
	{ .key = "validation.manifests.indexes.platformlist", .type = CT_LIST,
	  .off = offsetof(C, validation.platforms), .count_off = offsetof(C, validation.n_platforms),
	  .sub = &platform_table, .max_items = BERTH_CONFIG_MAX_LIST },

	/* auth: one provider */
	GROUP("auth", CG_AUTH),
	CHOICE("auth.none", CG_AUTH, BERTH_AUTH_NONE),
	CHOICE("auth.silly", CG_AUTH, BERTH_AUTH_SILLY),
	STR(C, "auth.silly.realm", auth.realm),
	STR(C, "auth.silly.service", auth.service),
	CHOICE("auth.token", CG_AUTH, BERTH_AUTH_TOKEN),
	STR(C, "auth.token.realm", auth.realm),
	STR(C, "auth.token.service", auth.service),
	STR(C, "auth.token.issuer", auth.issuer),
	STR(C, "auth.token.rootcertbundle", auth.rootcertbundle),
	STR(C, "auth.token.jwks", auth.jwks),
	BOOL(C, "auth.token.autoredirect", auth.autoredirect),
	STR(C, "auth.token.autoredirectpath", auth.autoredirectpath),
	STRLIST(C, "auth.token.signingalgorithms", auth.signingalgorithms),
	CHOICE("auth.htpasswd", CG_AUTH, BERTH_AUTH_HTPASSWD),
	STR(C, "auth.htpasswd.realm", auth.realm),
	STR(C, "auth.htpasswd.path", auth.path),

	/* redis (2.8 single address + pool, and v3's go-redis options): cli/redis_setup.c */
	STR(C, "redis.addr", redis.addr),
	STRLIST(C, "redis.addrs", redis.addrs),
	STR(C, "redis.username", redis.username),
	STR(C, "redis.password", redis.password),
	STR(C, "redis.mastername", redis.mastername),
	STR(C, "redis.sentinelusername", redis.sentinelusername),
	STR(C, "redis.sentinelpassword", redis.sentinelpassword),
	INT(C, "redis.db", redis.db, 0, INT32_MAX),
	DUR(C, "redis.dialtimeout", redis.dialtimeout_ms),
	DUR(C, "redis.readtimeout", redis.readtimeout_ms),
	DUR(C, "redis.writetimeout", redis.writetimeout_ms),
	INT(C, "redis.pool.maxidle", redis.pool_maxidle, 0, INT32_MAX),
	INT(C, "redis.pool.maxactive", redis.pool_maxactive, 0, INT32_MAX),
	DUR(C, "redis.pool.idletimeout", redis.pool_idletimeout_ms),
	INT(C, "redis.maxidleconns", redis.pool_maxidle, 0, INT32_MAX),
	INT(C, "redis.poolsize", redis.poolsize, 0, INT32_MAX),
	INT(C, "redis.maxactiveconns", redis.maxactiveconns, 0, INT32_MAX),
	DUR(C, "redis.connmaxidletime", redis.pool_idletimeout_ms),
	REFUSE("redis.tls", "TLS to Redis is not supported: Debian's hiredis (0.14) has no TLS; reach Redis "
	       "on a private network or through a TLS tunnel (stunnel) on loopback"),

	/* notifications */
	BOOL(C, "notifications.events.includereferences", notifications.includereferences),
	STR(C, "notifications.queuedir", notifications.queuedir),
	INT(C, "notifications.queuemaxbytes", notifications.queuemaxbytes, 4096, INT64_MAX),
	{ .key = "notifications.endpoints", .type = CT_LIST, .off = offsetof(C, notifications.endpoints),
	  .count_off = offsetof(C, notifications.n_endpoints), .sub = &endpoint_table,
	  .max_items = BERTH_CONFIG_MAX_ENDPOINTS },

	/* proxy */
	STR(C, "proxy.remoteurl", proxy.remoteurl),
	STR(C, "proxy.username", proxy.username),
	STR(C, "proxy.password", proxy.password),
	DUR(C, "proxy.ttl", proxy.ttl_ms),
	{ .key = "proxy.upstreams", .type = CT_LIST, .off = offsetof(C, proxy.upstreams),
	  .count_off = offsetof(C, proxy.n_upstreams), .sub = &upstream_table,
	  .max_items = BERTH_CONFIG_MAX_UPSTREAMS },
	STR(C, "proxy.exec.command", proxy.exec_command),
	DUR(C, "proxy.exec.lifetime", proxy.exec_lifetime_ms),
	BOOL(C, "proxy.prefetch", proxy.prefetch),
	/* Distribution 3.1: a deadline on the cache's writes to its storage. berth's writes of a
	 * fetched blob go at the upstream transfer's pace, which its stall limit bounds already. */
	ANY("proxy.cachewritetimeout", "bounded by the upstream transfer's stall limit"),

	INT(C, "catalog.maxentries", catalog_maxentries, INT64_MIN, INT64_MAX), /* <= 0: the default */
	INT(C, "tags.maxtags", tags_maxtags, 0, INT64_MAX),

	/* ui: berth's own section; any other key in it is refused (config_yaml.c) */
	BOOL(C, "ui.enabled", ui.enabled),

	/* policies (berth-specific) */
	{ .key = "policies.immutabletags", .type = CT_LIST, .off = offsetof(C, policies.immutabletags),
	  .count_off = offsetof(C, policies.n_immutabletags), .sub = &immutable_rule_table,
	  .max_items = BERTH_CONFIG_MAX_LIST },
	{ .key = "policies.quotas", .type = CT_LIST, .off = offsetof(C, policies.quotas),
	  .count_off = offsetof(C, policies.n_quotas), .sub = &quota_table, .max_items = BERTH_CONFIG_MAX_LIST },
	BOOL(C, "policies.retention.dryrun", policies.retention.dryrun),
	DUR(C, "policies.retention.interval", policies.retention.interval_ms),
	DUR(C, "policies.retention.pullflush", policies.retention.pullflush_ms),
	{ .key = "policies.retention.rules", .type = CT_LIST, .off = offsetof(C, policies.retention.rules),
	  .count_off = offsetof(C, policies.retention.n_rules), .sub = &retention_rule_table,
	  .max_items = BERTH_CONFIG_MAX_LIST },

	/* middleware: storage middleware (cloudfront, redirect) only; Distribution registers no
	 * registry or repository middleware of its own (those are for builds with plug-ins). */
	REFUSE("middleware.registry", "registry middleware is not supported (Distribution has none built "
	       "in; berth takes no plug-ins)"),
	REFUSE("middleware.repository", "repository middleware is not supported (Distribution has none "
	       "built in; berth takes no plug-ins)"),
	{ .key = "middleware.storage", .type = CT_LIST, .off = offsetof(C, storage_middleware),
	  .count_off = offsetof(C, n_storage_middleware), .sub = &storage_middleware_table,
	  .max_items = BERTH_CONFIG_MAX_LIST },
	OBSOLETE("reporting"),
	OBSOLETE("compatibility"),
	OBSOLETE("policy"),
};

const struct cfg_table berth_config__table = { keys, sizeof(keys) / sizeof(keys[0]), 0, NULL, NULL };

/* ---- groups ----------------------------------------------------------------------------------- */

static void storage_reset(struct berth_config *cfg)
{
	/* Distribution's filesystem driver default, not berth's command-line ./data. */
	snprintf(cfg->rootdirectory, sizeof(cfg->rootdirectory), "/var/lib/registry");
	cfg->fs_maxthreads = 100;
	memset(&cfg->s3, 0, sizeof(cfg->s3));
}

static void auth_reset(struct berth_config *cfg)
{
	berth_config__strlist_free(&cfg->auth.signingalgorithms);
	memset(&cfg->auth, 0, sizeof(cfg->auth));
}

const struct cfg_group berth_config__groups[CG_COUNT] = {
	[CG_STORAGE] = { "storage", "driver", offsetof(C, storage), storage_reset },
	[CG_AUTH] = { "auth", "provider", offsetof(C, auth.kind), auth_reset },
};

/* The name of a group's choice, for messages: "s3" for storage value BERTH_STORAGE_S3. */
static const char *choice_name(int group, int value)
{
	for (size_t i = 0; i < berth_config__table.n; i++) {
		const struct cfg_key *k = &keys[i];
		if (k->type == CT_CHOICE && k->group == group && k->value == value)
			return strchr(k->key, '.') + 1;
	}
	return "?";
}

int berth_config__refuse(struct cfg_ctx *c, const struct cfg_key *k, const char *disp, int line)
{
	return berth_config__fail(c, line, disp, "refused: %s", k->why);
}

int berth_config__select(struct cfg_ctx *c, int group, int value, const char *name, int line, int reset)
{
	const struct cfg_group *g = &berth_config__groups[group];
	int *field = (int *)((char *)c->cfg + g->off);
	int *chosen = c->is_env ? &c->env_choice[group] : &c->file_choice[group];

	if (value < 0)
		return berth_config__fail(c, line, g->section, "%s '%s' is not supported by berth", g->what,
					  name);
	if (*chosen != -2 && *chosen != value)
		return berth_config__fail(c, line, g->section, "more than one %s configured ('%s' and '%s')",
					  g->what, choice_name(group, *chosen), name);
	/* The file's first choice starts from the driver's defaults; the environment keeps the
	 * file's options when it names the same choice, unless it gave the bare name
	 * (REGISTRY_STORAGE=s3), which Distribution reads as "this driver, no options". A choice
	 * only the environment makes, after a file without one, also starts from defaults. */
	if (reset || (*chosen == -2 && (!c->is_env || *field != value ||
					(c->file_loaded && c->file_choice[group] == -2))))
		g->reset(c->cfg);
	*chosen = value;
	*field = value;
	return 0;
}

/* ---- lookup --------------------------------------------------------------------------------- */

const struct cfg_key *berth_config__lookup(const struct cfg_table *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->keys[i].key, key) == 0)
			return &t->keys[i];
	return NULL;
}

int berth_config__is_section(const struct cfg_table *t, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < t->n; i++)
		if (strncmp(t->keys[i].key, key, n) == 0 && t->keys[i].key[n] == '.')
			return 1;
	return 0;
}

int berth_config__in_closed_section(const char *key)
{
	return strncmp(key, "ui.", 3) == 0 || strncmp(key, "policies.", 9) == 0;
}

const char *berth_config__closed_section_keys(const char *key)
{
	return strncmp(key, "ui.", 3) == 0 ? "ui.enabled" : "the policies keys README lists";
}

/* ---- value parsers ---------------------------------------------------------------------------- */

/* Copies s without surrounding blanks into buf; -1 if it does not fit. */
static int trimmed(char *buf, size_t n, const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= n)
		return BERTH_ERROR;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int berth_config__parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "y" };
	static const char *const no[] = { "false", "no", "off", "n" };
	char b[16];

	if (trimmed(b, sizeof(b), s) < 0)
		return BERTH_ERROR;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(b, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(b, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return BERTH_ERROR;
}

/* YAML 1.1 integers: [-+] then decimal, 0x hex, 0o or leading-0 octal, 0b binary; '_' separators. */
int berth_config__parse_int(const char *s, int64_t *out)
{
	char b[80], digits[80];
	size_t nd = 0;
	int neg = 0, base = 10;
	const char *p;

	if (trimmed(b, sizeof(b), s) < 0)
		return BERTH_ERROR;
	p = b;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	} else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
		base = 8;
		p += 2;
	} else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) {
		base = 2;
		p += 2;
	} else if (p[0] == '0' && p[1]) {
		base = 8;
		p++;
	}
	for (; *p; p++) {
		if (*p == '_')
			continue;
		if (!isxdigit((unsigned char)*p))
			return BERTH_ERROR;
		digits[nd++] = *p;
	}
	digits[nd] = '\0';
	if (nd == 0)
		return BERTH_ERROR;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(digits, &end, base);
	if (*end || errno == ERANGE || v > (unsigned long long)INT64_MAX + (unsigned long long)neg)
		return BERTH_ERROR;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Go's time.ParseDuration units, in nanoseconds. */
static uint64_t duration_unit(const char *u, size_t n)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
		{ "ms", 1000000 }, { "s", 1000000000ULL }, { "m", 60000000000ULL }, { "h", 3600000000000ULL },
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0)
			return units[i].ns;
	return 0;
}

/* Go's time.ParseDuration grammar, into nanoseconds; -1 on syntax error or overflow. */
static int parse_go_duration(const char *s, uint64_t *ns_out)
{
	uint64_t total = 0;

	if (strcmp(s, "0") == 0) {
		*ns_out = 0;
		return 0;
	}
	if (!*s)
		return BERTH_ERROR;
	while (*s) {
		uint64_t v = 0, frac = 0, scale = 1;
		int pre = 0, post = 0;
		while (isdigit((unsigned char)*s)) {
			if (v > (UINT64_MAX - 9) / 10)
				return BERTH_ERROR;
			v = v * 10 + (uint64_t)(*s++ - '0');
			pre = 1;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				if (scale <= UINT64_MAX / 100) { /* extra digits are beyond nanoseconds */
					frac = frac * 10 + (uint64_t)(*s - '0');
					scale *= 10;
				}
				s++;
				post = 1;
			}
		}
		if (!pre && !post)
			return BERTH_ERROR;
		const char *u = s;
		while (*s && *s != '.' && !isdigit((unsigned char)*s))
			s++;
		uint64_t unit = duration_unit(u, (size_t)(s - u));
		if (!unit || v > (uint64_t)INT64_MAX / unit)
			return BERTH_ERROR;
		v *= unit;
		v += (uint64_t)((double)frac * ((double)unit / (double)scale));
		if (v > (uint64_t)INT64_MAX - total)
			return BERTH_ERROR;
		total += v;
	}
	*ns_out = total;
	return 0;
}

int berth_config__parse_duration(const char *s, int64_t *ms_out)
{
	char b[80];
	int64_t bare;
	uint64_t ns;

	if (trimmed(b, sizeof(b), s) < 0)
		return BERTH_ERROR;
	/* A bare YAML integer is nanoseconds, as Distribution (yaml.v2 into time.Duration) reads it. */
	if (berth_config__parse_int(b, &bare) == 0) {
		if (bare < 0)
			return BERTH_ERROR;
		ns = (uint64_t)bare;
	} else if (parse_go_duration(b[0] == '+' ? b + 1 : b, &ns) < 0) {
		return BERTH_ERROR;
	}
	/* Round sub-millisecond remainders up so a nonzero duration never reads as 0 ("unset"). */
	*ms_out = (int64_t)(ns / 1000000 + (ns % 1000000 != 0));
	return 0;
}

/* ---- setters ---------------------------------------------------------------------------------- */

/* Shortens a value for quoting in a message. */
static const char *shown(const char *s, char *buf, size_t n)
{
	size_t len = strlen(s);
	if (len < n)
		return s;
	snprintf(buf, n, "%.*s...", (int)(n - 4), s);
	return buf;
}

static int enum_lookup(const struct cfg_enum *names, const char *s, int *out)
{
	char b[64];
	if (trimmed(b, sizeof(b), s) == 0)
		for (const struct cfg_enum *e = names; e->name; e++)
			if (strcasecmp(e->name, b) == 0) {
				*out = e->value;
				return 0;
			}
	return BERTH_ERROR;
}

static int bad_enum(struct cfg_ctx *c, const struct cfg_key *k, const char *key, const struct cfg_scalar *v,
		    const struct cfg_enum *names)
{
	char list[256] = "", sb[80];
	size_t used = 0;
	for (const struct cfg_enum *e = names; e->name; e++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", e->name);
		if (w < 0 || (size_t)w >= sizeof(list) - used)
			break;
		used += (size_t)w;
	}
	return berth_config__fail(c, v->line, key, "expected one of %s, got '%s'", list,
				  shown(v->text, sb, sizeof(sb)));
}

int berth_config__set_scalar(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			     const struct cfg_scalar *v)
{
	char *field = (char *)base + k->off, sb[80];
	int b, e;
	int64_t n;

	if (k->type == CT_FN)
		return k->fn(c, k, base, key, v);
	if (v->null) /* `key:` or `key: ~` leaves the default, like an absent key */
		return 0;
	switch (k->type) {
	case CT_STR:
		if (strlen(v->text) >= k->size)
			return berth_config__fail(c, v->line, key, "value too long (%zu bytes, at most %zu)",
						  strlen(v->text), k->size - 1);
		memcpy(field, v->text, strlen(v->text) + 1);
		return 0;
	case CT_BOOL:
	case CT_NOT_BOOL:
		if (berth_config__parse_bool(v->text, &b) < 0)
			return berth_config__fail(c, v->line, key, "expected a boolean, got '%s'",
						  shown(v->text, sb, sizeof(sb)));
		*(int *)field = k->type == CT_NOT_BOOL ? !b : b;
		return 0;
	case CT_INT:
		if (berth_config__parse_int(v->text, &n) < 0)
			return berth_config__fail(c, v->line, key, "expected an integer, got '%s'",
						  shown(v->text, sb, sizeof(sb)));
		if (n < k->min || n > k->max)
			return berth_config__fail(c, v->line, key, "must be between %lld and %lld, got %lld",
						  (long long)k->min, (long long)k->max, (long long)n);
		if (k->size == sizeof(int))
			*(int *)field = (int)n;
		else
			*(int64_t *)field = n;
		return 0;
	case CT_DURATION:
		if (berth_config__parse_duration(v->text, &n) < 0)
			return berth_config__fail(c, v->line, key,
						  "expected a duration such as 10s, 1h30m or 300ms, got '%s'",
						  shown(v->text, sb, sizeof(sb)));
		*(int64_t *)field = n;
		return 0;
	case CT_ENUM:
		if (enum_lookup(k->names, v->text, &e) < 0)
			return bad_enum(c, k, key, v, k->names);
		*(int *)field = e;
		return 0;
	default:
		return berth_config__fail(c, v->line, key, "expected a %s, got a scalar",
					  k->type == CT_LIST || k->type == CT_STRLIST || k->type == CT_REGEXLIST
						  ? "list" : "map");
	}
}

static int set_version(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
		       const struct cfg_scalar *v)
{
	char sb[80];
	if (v->null || strcmp(v->text, "0.1") != 0)
		return berth_config__fail(c, v->line, key, "unsupported version '%s' (expected 0.1)",
					  v->null ? "" : shown(v->text, sb, sizeof(sb)));
	return 0;
}

static int set_log_level(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			 const struct cfg_scalar *v)
{
	int level;
	if (v->null)
		return 0;
	if (enum_lookup(log_levels, v->text, &level) < 0)
		return bad_enum(c, k, key, v, log_levels);
	c->cfg->log_level = level;
	c->log_level_set = 1;
	return 0;
}

/* loglevel applies only when log.level is absent (Distribution's rule), so it waits in the ctx. */
static int set_deprecated_loglevel(struct cfg_ctx *c, const struct cfg_key *k, void *base,
				   const char *key, const struct cfg_scalar *v)
{
	int level;
	if (v->null)
		return 0;
	if (enum_lookup(log_levels, v->text, &level) < 0)
		return bad_enum(c, k, key, v, log_levels);
	c->deprecated_loglevel = level;
	return 0;
}

/* validation.enabled (deprecated): true turns validation on whatever validation.disabled says. */
static int set_validation_enabled(struct cfg_ctx *c, const struct cfg_key *k, void *base,
				  const char *key, const struct cfg_scalar *v)
{
	struct cfg_key as_bool = { .key = k->key, .type = CT_BOOL, .off = 0 };
	int on = 0;
	if (berth_config__set_scalar(c, &as_bool, &on, key, v) < 0)
		return BERTH_ERROR;
	if (on)
		c->validation_enabled = 1;
	return 0;
}

/* A CT_STR field that must hold a POSIX extended regex (null: ""). */
static int set_regex_str(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			 const struct cfg_scalar *v)
{
	struct cfg_key as_str = { .key = k->key, .type = CT_STR, .off = k->off, .size = k->size };
	if (!v->null && berth_config__check_regex(c, v->line, key, v->text) < 0)
		return -1;
	return berth_config__set_scalar(c, &as_str, base, key, v);
}

/* A Go duration with its unit ("3000s"), more than 0: a bare number is refused, where
 * Distribution's middleware would read a YAML integer as nothing and fall back to its default. */
static int set_unit_duration(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			     const struct cfg_scalar *v)
{
	int64_t ms, bare;
	if (v->null)
		return 0;
	if (berth_config__parse_int(v->text, &bare) == 0)
		return berth_config__fail(c, v->line, key, "expected a duration with a unit (such as 20m or "
					  "3000s), got '%s'", v->text);
	if (berth_config__parse_duration(v->text, &ms) < 0 || ms <= 0)
		return berth_config__fail(c, v->line, key, "expected a duration of more than 0 (such as 20m "
					  "or 3000s), got '%s'", v->text);
	*(int64_t *)((char *)base + k->off) = ms;
	return 0;
}

/* Notes that the key was given (with any value). */
static int set_given(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
		     const struct cfg_scalar *v)
{
	(void)c;
	(void)key;
	(void)v;
	*(int *)((char *)base + k->off) = 1;
	return 0;
}

/* cloudfront's updatefrenquency: Distribution 2.x's misspelling, which 3 still takes. */
static int set_updatefrenquency(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
				const struct cfg_scalar *v)
{
	berth_config__warn(c, v->line, "%s: deprecated, use updatefrequency", key);
	return set_unit_duration(c, k, base, key, v);
}

/* ---- collections ------------------------------------------------------------------------------ */

void berth_config__strlist_free(struct berth_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void berth_config__strmap_free(struct berth_strmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].value);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

void berth_config__headers_free(struct berth_headers *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		berth_config__strlist_free(&h->v[i].values);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

int berth_config__check_regex(struct cfg_ctx *c, int line, const char *key, const char *re)
{
	regex_t rx;
	if (berth_regex_too_complex(re)) {
		char sb[80];
		return berth_config__fail(c, line, key, "regular expression '%s' is too complex",
					  shown(re, sb, sizeof(sb)));
	}
	int rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char msg[128], sb[80];
		regerror(rc, &rx, msg, sizeof(msg));
		return berth_config__fail(c, line, key, "invalid regular expression '%s': %s",
					  shown(re, sb, sizeof(sb)), msg);
	}
	regfree(&rx);
	return 0;
}

/* Element idx of a CT_LIST; idx == n appends a defaulted element. NULL after fail() if out of range. */
void *berth_config__list_elem(struct cfg_ctx *c, const struct cfg_key *k, void *base, size_t idx, int line,
			      const char *key)
{
	char **arr = (char **)((char *)base + k->off);
	size_t *n = (size_t *)((char *)base + k->count_off);
	size_t sz = k->sub->elem_size;

	if (idx > *n) {
		berth_config__fail(c, line, key, "index %zu out of range (the list has %zu items)", idx, *n);
		return NULL;
	}
	if (idx == *n) {
		if (*n >= k->max_items) {
			berth_config__fail(c, line, key, "too many items (at most %zu)", k->max_items);
			return NULL;
		}
		*arr = berth_realloc(*arr, (*n + 1) * sz);
		k->sub->elem_init(*arr + *n * sz);
		(*n)++;
	}
	return *arr + idx * sz;
}

void berth_config__list_free(const struct cfg_key *k, void *base)
{
	char **arr = (char **)((char *)base + k->off);
	size_t *n = (size_t *)((char *)base + k->count_off);
	for (size_t i = 0; i < *n; i++)
		k->sub->elem_release(*arr + i * k->sub->elem_size);
	free(*arr);
	*arr = NULL;
	*n = 0;
}

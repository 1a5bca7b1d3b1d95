/*
 * Public entry points of the config loader: defaults, load (file then environment), release,
 * and the message formatting every part of the loader shares. The keys themselves are in
 * config_keys.c; see config_internal.h for how the files divide the work.
 */
#include "config/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "core/err.h"
#include "core/log.h"

void berth_config_defaults(struct berth_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->addr, sizeof(cfg->addr), "127.0.0.1:5000");
	cfg->storage = BERTH_STORAGE_FILESYSTEM;
	snprintf(cfg->rootdirectory, sizeof(cfg->rootdirectory), "./data");
	cfg->manifest_max = 4u << 20;
	cfg->log_level = BERTH_LOG_INFO;
	cfg->access_log = 1;

	/* Distribution 2.8's defaults for keys a config.yml may leave out. */
	cfg->log_formatter = BERTH_LOG_FORMAT_TEXT;
	cfg->fs_maxthreads = 100;
	cfg->uploadpurging.enabled = 1;
	cfg->uploadpurging.age_ms = 168LL * 3600 * 1000;
	cfg->uploadpurging.interval_ms = 24LL * 3600 * 1000;
	cfg->gc.interval_ms = 24LL * 3600 * 1000;
	cfg->gc.delay_ms = 3600LL * 1000;
	cfg->http.net = BERTH_NET_TCP;
	cfg->http.tls_minimum = BERTH_TLS_1_2;
	snprintf(cfg->http.prometheus_path, sizeof(cfg->http.prometheus_path), "/metrics");
	cfg->health_storagedriver.interval_ms = 10 * 1000;
	cfg->notifications.queuemaxbytes = 64LL << 20;
	cfg->proxy.ttl_ms = 168LL * 3600 * 1000;
	cfg->catalog_maxentries = BERTH_CONFIG_DEFAULT_MAX_ENTRIES;
	cfg->tags_maxtags = BERTH_CONFIG_DEFAULT_MAX_ENTRIES;
	cfg->policies.retention.interval_ms = 3600LL * 1000; /* berth's own: Distribution has none */
	cfg->policies.retention.pullflush_ms = 60LL * 1000;
}

void berth_config_release(struct berth_config *cfg)
{
	const struct cfg_table *t = &berth_config__table;

	for (size_t i = 0; i < t->n; i++) {
		const struct cfg_key *k = &t->keys[i];
		void *field = (char *)cfg + k->off;
		switch (k->type) {
		case CT_STRLIST:
		case CT_REGEXLIST: berth_config__strlist_free(field); break;
		case CT_STRMAP: berth_config__strmap_free(field); break;
		case CT_HEADERS: berth_config__headers_free(field); break;
		case CT_LIST: berth_config__list_free(k, cfg); break;
		default: break;
		}
	}
}

/* "<origin>:<line>: <key>: <message>" for the file, "<VARIABLE>: <key>: <message>" for the environment. */
static void format_where(char *buf, size_t n, const struct cfg_ctx *c, int line)
{
	if (line > 0 && !c->is_env)
		snprintf(buf, n, "%s:%d: ", c->origin, line);
	else
		snprintf(buf, n, "%s: ", c->origin);
}

int berth_config__fail(struct cfg_ctx *c, int line, const char *key, const char *fmt, ...)
{
	char where[512], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_where(where, sizeof(where), c, line);
	if (c->errlen)
		snprintf(c->err, c->errlen, "%s%s%s%s", where, key ? key : "", key ? ": " : "", msg);
	return BERTH_ERROR;
}

/* Past this many, warnings are counted, not printed: keys shared through aliases can repeat one
 * warning thousands of times. */
#define MAX_WARNINGS 100

void berth_config__warn(struct cfg_ctx *c, int line, const char *fmt, ...)
{
	char where[512], msg[512];
	va_list ap;

	if (++c->warnings > MAX_WARNINGS) {
		if (c->warnings == MAX_WARNINGS + 1)
			fprintf(stderr, "%s: warning: more warnings not shown\n", c->origin);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_where(where, sizeof(where), c, line);
	fprintf(stderr, "%swarning: %s\n", where, msg);
}

void berth_config__ctx_init(struct cfg_ctx *c, struct berth_config *cfg, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->origin = "environment";
	c->err = err;
	c->errlen = errlen;
	for (int g = 0; g < CG_COUNT; g++)
		c->file_choice[g] = c->env_choice[g] = -2;
	c->deprecated_loglevel = -1;
	if (errlen)
		err[0] = '\0';
}

/* Settings that depend on more than one key. */
static void finish(struct cfg_ctx *c)
{
	if (!c->log_level_set && c->deprecated_loglevel >= 0)
		c->cfg->log_level = c->deprecated_loglevel;
	if (c->validation_enabled)
		c->cfg->validation.disabled = 0;
	/* Distribution 3: zero (or unset, or for the catalog negative) means the default, not
	 * "nothing"; a negative tags.maxtags is refused by its range, as Distribution refuses it. */
	if (c->cfg->catalog_maxentries <= 0)
		c->cfg->catalog_maxentries = BERTH_CONFIG_DEFAULT_MAX_ENTRIES;
	if (c->cfg->tags_maxtags == 0)
		c->cfg->tags_maxtags = BERTH_CONFIG_DEFAULT_MAX_ENTRIES;
}

static int missing(struct cfg_ctx *c, const char *list, size_t i, const char *field)
{
	char key[64];
	snprintf(key, sizeof(key), "%s[%zu].%s", list, i, field);
	return berth_config__fail(c, 0, key, "required");
}

/* What Distribution requires of each health check. */
static int check_health(struct cfg_ctx *c)
{
	const struct berth_config *cfg = c->cfg;
	for (size_t i = 0; i < cfg->n_health_files; i++)
		if (!cfg->health_files[i].file[0])
			return missing(c, "health.file", i, "file");
	for (size_t i = 0; i < cfg->n_health_https; i++)
		if (!cfg->health_https[i].uri[0])
			return missing(c, "health.http", i, "uri");
	for (size_t i = 0; i < cfg->n_health_tcps; i++)
		if (!cfg->health_tcps[i].addr[0])
			return missing(c, "health.tcp", i, "addr");
	return 0;
}

/* 1 when one prefix is the other or holds it as whole leading components ("a" and "a/b"). */
static int prefixes_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
	return strncmp(a, b, n) == 0 && (la == lb || (la < lb ? b : a)[n] == '/');
}

/* proxy.upstreams (berth) against proxy.remoteurl, and each entry's required keys: a
 * repository must belong to one upstream at most. */
static int check_proxy(struct cfg_ctx *c)
{
	const struct berth_config *cfg = c->cfg;
	if (cfg->proxy.n_upstreams == 0)
		return 0;
	if (cfg->proxy.remoteurl[0] || cfg->proxy.username[0] || cfg->proxy.password[0])
		return berth_config__fail(c, 0, "proxy.upstreams",
					  "cannot be combined with proxy.remoteurl, proxy.username or proxy.password "
					  "(proxy.remoteurl mirrors every repository; give each upstream its own keys)");
	for (size_t i = 0; i < cfg->proxy.n_upstreams; i++) {
		const struct berth_config_upstream *u = &cfg->proxy.upstreams[i];
		if (!u->prefix[0])
			return missing(c, "proxy.upstreams", i, "prefix");
		if (!u->remoteurl[0])
			return missing(c, "proxy.upstreams", i, "remoteurl");
		for (size_t j = 0; j < i; j++)
			if (prefixes_overlap(cfg->proxy.upstreams[j].prefix, u->prefix)) {
				char key[64];
				snprintf(key, sizeof(key), "proxy.upstreams[%zu].prefix", i);
				return berth_config__fail(c, 0, key, "'%s' overlaps proxy.upstreams[%zu].prefix '%s'",
							  u->prefix, j, cfg->proxy.upstreams[j].prefix);
			}
	}
	return 0;
}

/* storage.maintenance.gc: a run every 0 s, or no grace for a push in progress, is refused. */
static int check_gc(struct cfg_ctx *c)
{
	const struct berth_config *cfg = c->cfg;
	if (cfg->gc.interval_ms <= 0)
		return berth_config__fail(c, 0, "storage.maintenance.gc.interval", "must be more than 0");
	if (cfg->gc.delay_ms < 1000)
		return berth_config__fail(c, 0, "storage.maintenance.gc.delay",
					  "must be at least 1s: the time a push may take between its "
					  "layers and its manifest");
	return 0;
}

/* policies.retention.pullflush: pulls must reach the store some time. */
static int check_retention(struct cfg_ctx *c)
{
	if (c->cfg->policies.retention.pullflush_ms <= 0)
		return berth_config__fail(c, 0, "policies.retention.pullflush", "must be more than 0");
	return 0;
}

int berth_config_load(struct berth_config *cfg, const char *path, char *err, size_t errlen)
{
	struct cfg_ctx c;

	berth_config_defaults(cfg);
	berth_config__ctx_init(&c, cfg, err, errlen);
	if (!path || !*path) {
		if (errlen)
			snprintf(err, errlen, "cannot open configuration file '': the path is empty");
		return BERTH_ERROR;
	}
	c.origin = path;
	if (berth_config__yaml_file(&c, path) < 0)
		return BERTH_ERROR;
	c.file_loaded = 1;
	if (berth_config__env_apply(&c) < 0)
		return BERTH_ERROR;
	if (c.file_choice[CG_STORAGE] == -2 && c.env_choice[CG_STORAGE] == -2)
		return berth_config__fail(&c, 0, "storage",
					  "no storage driver configured (filesystem, inmemory or s3)");
	finish(&c);
	if (check_proxy(&c) < 0 || check_gc(&c) < 0 || check_retention(&c) < 0)
		return BERTH_ERROR;
	return check_health(&c);
}

int berth_config_apply_env(struct berth_config *cfg, char *err, size_t errlen)
{
	struct cfg_ctx c;

	berth_config__ctx_init(&c, cfg, err, errlen);
	if (berth_config__env_apply(&c) < 0)
		return BERTH_ERROR;
	finish(&c);
	if (check_proxy(&c) < 0 || check_gc(&c) < 0 || check_retention(&c) < 0)
		return BERTH_ERROR;
	return check_health(&c);
}

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
	cfg->proxy.exec_lifetime_ms = -1;
	cfg->proxy.prefetch = 1;
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

/* A credential helper (exec) beside username and password: Distribution runs the helper and
 * ignores the two, and so does berth, saying so. A lifetime without a command names nothing to run. */
static int check_exec(struct cfg_ctx *c, const char *at, const char *command, int64_t lifetime_ms,
		      const char *username, const char *password)
{
	char key[64];
	if (!command[0]) {
		if (lifetime_ms < 0)
			return 0;
		snprintf(key, sizeof(key), "%s.exec.command", at);
		return berth_config__fail(c, 0, key, "required with %s.exec.lifetime", at);
	}
	if (username[0] || password[0])
		berth_config__warn(c, 0, "%s.username and %s.password are ignored: %s.exec.command gives the "
				   "credentials (as Distribution does)", at, at, at);
	return 0;
}

/* proxy.upstreams (berth) against proxy.remoteurl, and each entry's required keys: a
 * repository must belong to one upstream at most. */
static int check_proxy(struct cfg_ctx *c)
{
	const struct berth_config *cfg = c->cfg;
	if (cfg->proxy.n_upstreams == 0)
		return cfg->proxy.remoteurl[0] ? check_exec(c, "proxy", cfg->proxy.exec_command,
							    cfg->proxy.exec_lifetime_ms, cfg->proxy.username,
							    cfg->proxy.password)
					       : 0;
	if (cfg->proxy.remoteurl[0] || cfg->proxy.username[0] || cfg->proxy.password[0] ||
	    cfg->proxy.exec_command[0] || cfg->proxy.exec_lifetime_ms >= 0)
		return berth_config__fail(c, 0, "proxy.upstreams",
					  "cannot be combined with proxy.remoteurl, proxy.username, proxy.password "
					  "or proxy.exec (proxy.remoteurl mirrors every repository; give each upstream "
					  "its own keys)");
	for (size_t i = 0; i < cfg->proxy.n_upstreams; i++) {
		const struct berth_config_upstream *u = &cfg->proxy.upstreams[i];
		char at[48];
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
		snprintf(at, sizeof(at), "proxy.upstreams[%zu]", i);
		if (check_exec(c, at, u->exec_command, u->exec_lifetime_ms, u->username, u->password) < 0)
			return BERTH_ERROR;
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

/* ---- middleware.storage ---- */

/* Fails naming middleware.storage[i] (and an option of it, when opt is not NULL). */
static int mw_fail(struct cfg_ctx *c, size_t i, const char *opt, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int mw_fail(struct cfg_ctx *c, size_t i, const char *opt, const char *fmt, ...)
{
	char key[96], msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(key, sizeof(key), "middleware.storage[%zu]%s%s", i, opt ? "." : "", opt ? opt : "");
	return berth_config__fail(c, 0, key, "%s", msg);
}

/* Warns about an option given that the entry's middleware (or its ipfilteredby) never reads. */
static void mw_unused(struct cfg_ctx *c, size_t i, int given, const char *opt, const char *why)
{
	if (given)
		berth_config__warn(c, 0, "middleware.storage[%zu].options.%s: %s", i, opt, why);
}

/* cloudfront's ipfilteredby: none, aws or awsregion (Distribution lowercases and trims it; ""
 * is none), written back normalised. awsregion needs the regions; options the filter chosen
 * never reads warn. */
static int check_ipfilteredby(struct cfg_ctx *c, size_t i, struct berth_storage_middleware *m)
{
	char v[64];
	const char *s = m->ipfilteredby;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	snprintf(v, sizeof(v), "%.*s", (int)n, s);
	for (char *p = v; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	if (v[0] == '\0')
		snprintf(v, sizeof(v), "none");
	if (strcmp(v, "none") != 0 && strcmp(v, "aws") != 0 && strcmp(v, "awsregion") != 0)
		return mw_fail(c, i, "options.ipfilteredby", "expected none, aws or awsregion, got '%s'",
			       m->ipfilteredby);
	snprintf(m->ipfilteredby, sizeof(m->ipfilteredby), "%s", v);
	if (strcmp(v, "none") == 0) {
		const char *why = "changes nothing with ipfilteredby none (as in Distribution)";
		mw_unused(c, i, m->awsregion[0] != '\0', "awsregion", why);
		mw_unused(c, i, m->updatefrequency_ms >= 0, "updatefrequency", why);
		mw_unused(c, i, m->iprangesurl[0] != '\0', "iprangesurl", why);
	} else if (strcmp(v, "aws") == 0) {
		mw_unused(c, i, m->awsregion[0] != '\0', "awsregion",
			  "changes nothing with ipfilteredby aws (every AWS range counts; as in Distribution)");
	} else if (m->awsregion[0] == '\0') {
		return mw_fail(c, i, "options.awsregion", "required with ipfilteredby awsregion");
	}
	return 0;
}

/* One entry: a middleware berth has, the options it needs, nothing it would ignore. */
static int check_one_middleware(struct cfg_ctx *c, size_t i, struct berth_storage_middleware *m)
{
	if (m->name[0] == '\0')
		return mw_fail(c, i, "name", "required (cloudfront or redirect)");
	if (m->disabled)
		return mw_fail(c, i, "disabled",
			       "refused: Distribution ignores this flag and applies middleware '%s' anyway; "
			       "remove the entry to turn it off, or the flag to keep it", m->name);
	if (strcmp(m->name, "rewrite") == 0)
		return mw_fail(c, i, "name", "refused: storage middleware '%s' (Distribution 3) is not "
			       "supported (berth has cloudfront and redirect)", m->name);
	int cloudfront = strcmp(m->name, "cloudfront") == 0;
	if (!cloudfront && strcmp(m->name, "redirect") != 0)
		return mw_fail(c, i, "name", "refused: unknown storage middleware '%s' (berth has cloudfront "
			       "and redirect)", m->name);
	mw_unused(c, i, m->rewrite_options, "scheme, host, trimpathprefix",
		  "options of rewrite, ignored (as Distribution ignores them)");
	if (m->baseurl[0] == '\0')
		return mw_fail(c, i, "options.baseurl", "required");
	if (!cloudfront) {
		const char *why = "not an option of redirect, ignored (as Distribution ignores it)";
		mw_unused(c, i, m->privatekey[0] != '\0', "privatekey", why);
		mw_unused(c, i, m->keypairid[0] != '\0', "keypairid", why);
		mw_unused(c, i, m->duration_ms >= 0, "duration", why);
		mw_unused(c, i, m->ipfilteredby[0] != '\0', "ipfilteredby", why);
		mw_unused(c, i, m->awsregion[0] != '\0', "awsregion", why);
		mw_unused(c, i, m->updatefrequency_ms >= 0, "updatefrequency", why);
		mw_unused(c, i, m->iprangesurl[0] != '\0', "iprangesurl", why);
		return 0;
	}
	if (m->privatekey[0] == '\0')
		return mw_fail(c, i, "options.privatekey", "required");
	if (m->keypairid[0] == '\0')
		return mw_fail(c, i, "options.keypairid", "required");
	/* Distribution's cloudfront signs only keys of its S3 driver; on another driver it logs a
	 * warning on each blob GET and serves the bytes itself. */
	if (c->cfg->storage != BERTH_STORAGE_S3)
		return mw_fail(c, i, "name", "refused: %s signs URLs of storage.s3 objects only (Distribution "
			       "accepts it on other drivers and then never uses it)", m->name);
	return check_ipfilteredby(c, i, m);
}

static int check_storage_middleware(struct cfg_ctx *c)
{
	const struct berth_config *cfg = c->cfg;
	for (size_t i = 0; i < cfg->n_storage_middleware; i++)
		if (check_one_middleware(c, i, &c->cfg->storage_middleware[i]) < 0)
			return BERTH_ERROR;
	/* Distribution stacks them, and each one's URL replaces the one below it: the last wins. */
	if (cfg->n_storage_middleware > 1)
		return mw_fail(c, 1, NULL, "refused: only one storage middleware is supported (in "
			       "Distribution this one's URLs would replace every URL of %s)",
			       cfg->storage_middleware[0].name);
	if (cfg->n_storage_middleware == 1 && cfg->redirect_disable)
		berth_config__warn(c, 0, "middleware.storage: changes nothing with storage.redirect.disable: "
				   "true (blobs are served by berth, as in Distribution)");
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
	if (check_proxy(&c) < 0 || check_gc(&c) < 0 || check_storage_middleware(&c) < 0 ||
	    check_retention(&c) < 0)
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
	if (check_proxy(&c) < 0 || check_gc(&c) < 0 || check_storage_middleware(&c) < 0 ||
	    check_retention(&c) < 0)
		return BERTH_ERROR;
	return check_health(&c);
}

/* berth: command line, process set-up and signal handling. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "auth/auth.h"
#include "cli/commands.h"
#include "cli/serve_setup.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"
#include "http/conns.h"
#include "http/debug.h"
#include "http/health.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/tls.h"
#include "notify/notify.h"
#include "proxy/proxy.h"
#include "registry/cache_redis.h"
#include "registry/gc_online.h"
#include "registry/purge.h"
#include "registry/quota.h"
#include "registry/retention.h"
#include "registry/registry.h"
#include "storage/driver.h"
#include "storage/fs_check.h"
#include "storage/middleware.h"
#include "storage/storage.h"
#include "ui/ui.h"

#define DEFAULT_DESCRIPTOR_CACHE 10000
/* Storage workers for a remote driver (http.workers): one per request in flight up to this many. */
#define DEFAULT_WORKERS 128
#define MAX_CONNECTIONS 1000000
#define MAX_TIMEOUT_S (7 * 24 * 3600)

static void usage(FILE *out)
{
	fputs("usage: berth <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  serve [CONFIG.yml] [options]   run the registry\n"
	      "  garbage-collect [--dry-run] [--delete-untagged] CONFIG.yml\n"
	      "                                 delete blobs no manifest references (registry offline)\n"
	      "  fsck [--repair] ROOT           verify every blob's digest and every link of a store\n"
	      "  repo delete CONFIG.yml NAME    delete a repository (its blobs stay for the collection)\n"
	      "  usage CONFIG.yml               tags, repositories and bytes counted against policies.quotas\n"
	      "  retention CONFIG.yml [--dry-run]\n"
	      "                                 apply policies.retention once (remove old tags, manifests)\n"
	      "  help                           show this text\n"
	      "  --version                      print the version\n"
	      "\n"
	      "CONFIG.yml is a Distribution configuration file (version 0.1); REGISTRY_* environment\n"
	      "variables override its keys. Without one, berth serves 127.0.0.1:5000 from ./data.\n"
	      "\n"
	      "serve options (override the file; before or after CONFIG.yml; --opt=VALUE works too):\n"
	      "  --addr HOST:PORT     listen address (:PORT for all interfaces)\n"
	      "  --root DIR           filesystem storage root\n"
	      "  --storage KIND       filesystem or inmemory\n"
	      "  --delete             enable deletes of blobs, manifests and tags\n"
	      "  --threads N          HTTP threads (default: one per core)\n"
	      "  --max-connections N  connections served at once; more are refused (default 4096)\n"
	      "  --idle-timeout S     close a connection idle for S seconds (default 60; 0 = never)\n"
	      "  --header-timeout S   close a connection whose request line and headers take over\n"
	      "                       S seconds (default 30; 0 = never)\n"
	      "  --log-level LEVEL    debug, info, warn or error\n"
	      "  --no-access-log      do not log one line per request\n"
	      "  -h, --help           show this text\n"
	      "\n"
	      "Exit status: 0 done (serve: stopped by SIGINT or SIGTERM), 1 error (configuration,\n"
	      "storage, ...), 2 usage error. `berth garbage-collect --help` and `berth fsck --help`\n"
	      "describe those commands.\n",
	      out);
}

static int parse_level(const char *s, int *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return BERTH_ERROR;
}

/* A decimal number from 0 to max, digits only. */
static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return BERTH_ERROR;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	if (*end || errno || n > max)
		return BERTH_ERROR;
	*out = (unsigned)n;
	return 0;
}

/* The options of `berth serve` that take a value. */
enum serve_option {
	OPT_ADDR, OPT_ROOT, OPT_STORAGE, OPT_THREADS, OPT_MAX_CONNECTIONS, OPT_IDLE_TIMEOUT,
	OPT_HEADER_TIMEOUT, OPT_LOG_LEVEL, OPT_NONE
};

static const struct {
	const char *name;
	const char *valid; /* what a bad value is told */
} serve_options[] = {
	[OPT_ADDR] = { "--addr", "HOST:PORT, :PORT or [IPv6]:PORT" },
	[OPT_ROOT] = { "--root", "a directory" },
	[OPT_STORAGE] = { "--storage", "filesystem or inmemory" },
	[OPT_THREADS] = { "--threads", "a number from 0 (one per core) to 1024" },
	[OPT_MAX_CONNECTIONS] = { "--max-connections", "a number from 1 to 1000000" },
	[OPT_IDLE_TIMEOUT] = { "--idle-timeout", "seconds, from 0 (never) to 604800" },
	[OPT_HEADER_TIMEOUT] = { "--header-timeout", "seconds, from 0 (never) to 604800" },
	[OPT_LOG_LEVEL] = { "--log-level", "debug, info, warn or error" },
};

/* Which value-taking option arg names ("--addr" or "--addr=..."); *inline_value points past
 * '=' when the value is in the same argument. */
static enum serve_option serve_option_of(const char *arg, const char **inline_value)
{
	*inline_value = NULL;
	for (int o = 0; o < OPT_NONE; o++) {
		size_t n = strlen(serve_options[o].name);
		if (strncmp(arg, serve_options[o].name, n) != 0)
			continue;
		if (arg[n] == '=')
			*inline_value = arg + n + 1;
		else if (arg[n])
			continue;
		return (enum serve_option)o;
	}
	return OPT_NONE;
}

/* Flags go to the configuration, except the connection handling ones, which only the command
 * line sets (Distribution's configuration has no such keys): those go to so. */
static int set_serve_option(struct berth_config *cfg, struct berth_server_options *so,
			    enum serve_option o, const char *v)
{
	switch (o) {
	case OPT_ADDR:
		if (!*v)
			return BERTH_ERROR;
		snprintf(cfg->addr, sizeof(cfg->addr), "%s", v);
		return 0;
	case OPT_ROOT:
		if (!*v)
			return BERTH_ERROR;
		cfg->storage = BERTH_STORAGE_FILESYSTEM;
		snprintf(cfg->rootdirectory, sizeof(cfg->rootdirectory), "%s", v);
		return 0;
	case OPT_STORAGE:
		if (strcmp(v, "filesystem") == 0)
			cfg->storage = BERTH_STORAGE_FILESYSTEM;
		else if (strcmp(v, "inmemory") == 0)
			cfg->storage = BERTH_STORAGE_INMEMORY;
		else
			return BERTH_ERROR;
		return 0;
	case OPT_THREADS:
		return parse_uint(v, 1024, &cfg->threads);
	case OPT_MAX_CONNECTIONS:
		return parse_uint(v, MAX_CONNECTIONS, &so->conn_limit) < 0 || so->conn_limit == 0 ? -1 : 0;
	case OPT_IDLE_TIMEOUT:
		return parse_uint(v, MAX_TIMEOUT_S, &so->conn_timeout);
	case OPT_HEADER_TIMEOUT:
		return parse_uint(v, MAX_TIMEOUT_S, &so->header_timeout);
	case OPT_LOG_LEVEL:
		return parse_level(v, &cfg->log_level);
	default:
		return BERTH_ERROR;
	}
}

/* What `berth serve`'s command line asks for, before the configuration is loaded. */
struct serve_args {
	const char *config; /* CONFIG.yml, or NULL */
	int help;
};

/* Finds CONFIG.yml and --help anywhere on the line, so flags may come before or after the file.
 * 0, or -1 after a message for a usage error. */
static int scan_serve_args(struct serve_args *sa, int argc, char **argv)
{
	int only_args = 0;
	memset(sa, 0, sizeof(*sa));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *inline_value;
		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (sa->config) {
				fprintf(stderr, "berth serve: unexpected argument '%s' (the configuration "
						"file is '%s'; see berth serve --help)\n", a, sa->config);
				return BERTH_ERROR;
			}
			sa->config = a;
		} else if (strcmp(a, "--") == 0) {
			only_args = 1;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			sa->help = 1;
		} else if (serve_option_of(a, &inline_value) != OPT_NONE) {
			if (!inline_value && ++i >= argc) {
				fprintf(stderr, "berth serve: %s needs a value: %s (see berth serve --help)\n", a,
					serve_options[serve_option_of(a, &inline_value)].valid);
				return BERTH_ERROR;
			}
		} else if (strcmp(a, "--delete") != 0 && strcmp(a, "--no-access-log") != 0) {
			fprintf(stderr, "berth serve: unknown option '%s' (see berth serve --help)\n", a);
			return BERTH_ERROR;
		}
	}
	return 0;
}

/* Applies the flags (already scanned, so well formed) over the loaded configuration. */
static int apply_serve_flags(struct berth_config *cfg, struct berth_server_options *so, int argc,
			     char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v;
		if (strcmp(a, "--") == 0)
			break;
		enum serve_option o = serve_option_of(a, &v);
		if (o != OPT_NONE) {
			if (!v)
				v = argv[++i];
			if (set_serve_option(cfg, so, o, v) < 0) {
				fprintf(stderr, "berth serve: invalid value '%s' for %s: valid values are %s\n",
					v, serve_options[o].name, serve_options[o].valid);
				return BERTH_ERROR;
			}
		} else if (strcmp(a, "--delete") == 0) {
			cfg->delete_enabled = 1;
		} else if (strcmp(a, "--no-access-log") == 0) {
			cfg->access_log = 0;
		}
	}
	return 0;
}

/* Loads CONFIG.yml when given, else the defaults plus REGISTRY_* variables; then the
 * command-line flags. Returns 0, 1 (a configuration error) or 2 (a usage error). */
static int load_serve_config(struct berth_config *cfg, struct berth_server_options *so,
			     const struct serve_args *sa, int argc, char **argv)
{
	char err[1024];
	int rc;
	if (sa->config) {
		rc = berth_config_load(cfg, sa->config, err, sizeof(err));
	} else {
		berth_config_defaults(cfg);
		rc = berth_config_apply_env(cfg, err, sizeof(err));
	}
	if (rc < 0) {
		fprintf(stderr, "berth: configuration error: %s\n", err);
		return 1;
	}
	return apply_serve_flags(cfg, so, argc, argv) < 0 ? 2 : 0;
}

static void setup_logging(const struct berth_config *cfg)
{
	const char *keys[BERTH_CONFIG_MAX_LOG_FIELDS], *values[BERTH_CONFIG_MAX_LOG_FIELDS];
	size_t n = cfg->log_fields.n < BERTH_CONFIG_MAX_LOG_FIELDS ? cfg->log_fields.n
								     : BERTH_CONFIG_MAX_LOG_FIELDS;
	for (size_t i = 0; i < n; i++) {
		keys[i] = cfg->log_fields.v[i].key;
		values[i] = cfg->log_fields.v[i].value;
	}
	berth_log_setup((enum berth_log_level)cfg->log_level,
			cfg->log_formatter == BERTH_LOG_FORMAT_JSON ? BERTH_LOG_JSON : BERTH_LOG_TEXT, keys,
			values, n);
	berth_log_set_report_caller(cfg->log_reportcaller);
}

/* Reads a whole (small) file, such as a PEM certificate. NULL and a logged error on failure. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct berth_buf b = BERTH_BUF_INIT(4u << 20);
	char chunk[8192];
	size_t n;
	if (!f) {
		berth_error("cannot read '%s': %s", path, berth_err_os_text(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (berth_buf_append(&b, chunk, n) < 0) {
			berth_error("'%s' is too large", path);
			fclose(f);
			berth_buf_release(&b);
			return NULL;
		}
	}
	if (ferror(f)) { /* a directory opens, then reads fail with EISDIR */
		berth_error("cannot read '%s': %s", path, berth_err_os_text(errno));
		fclose(f);
		berth_buf_release(&b);
		return NULL;
	}
	fclose(f);
	return berth_buf_detach(&b, NULL);
}

/* What the HTTP server borrows from the config, owned here for the process lifetime. */
struct tls_and_headers {
	char *priorities, *client_cas;
	struct berth_http_header *headers;
	char **joined;
	size_t n_headers;
};

/* http.host must be an absolute http(s) URL with a host (Distribution refuses anything else). */
static int external_url_valid(const char *url)
{
	const char *rest = strncmp(url, "https://", 8) == 0 ? url + 8
			   : strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
	if (!rest || !*rest || *rest == '/')
		return 0;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == '"' || *p == '<' || *p == '>')
			return 0;
	return 1;
}

static int prepare_http(struct tls_and_headers *t, const struct berth_config *cfg)
{
	memset(t, 0, sizeof(*t));
	if (cfg->http.host[0] && !external_url_valid(cfg->http.host)) {
		berth_error("configuration error: http.host: '%s' is not an absolute URL "
			    "(https://host[:port])", cfg->http.host);
		return BERTH_ERROR;
	}
	if (cfg->http.tls_certificate[0]) {
		int rc = berth_tls_priorities(&t->priorities, cfg->http.tls_minimum,
					      (const char *const *)cfg->http.tls_ciphersuites.v,
					      cfg->http.tls_ciphersuites.n);
		if (rc < 0) {
			berth_error("configuration error: %s", berth_err_reason(rc));
			return BERTH_ERROR;
		}
		if (cfg->http.tls_clientcas.n) {
			struct berth_buf cas = BERTH_BUF_INIT(16u << 20);
			for (size_t i = 0; i < cfg->http.tls_clientcas.n; i++) {
				char *pem = read_file(cfg->http.tls_clientcas.v[i]);
				if (!pem) {
					berth_buf_release(&cas);
					return BERTH_ERROR;
				}
				berth_buf_printf(&cas, "%s\n", pem);
				free(pem);
			}
			t->client_cas = berth_buf_detach(&cas, NULL);
		}
	}
	if (cfg->http.tls_clientauth != BERTH_CLIENT_AUTH_REQUIRE_AND_VERIFY && !cfg->http.tls_clientcas.n) {
		/* Distribution would ignore it: no certificate is asked for without CAs. */
		berth_error("configuration error: http.tls.clientauth: refused without http.tls.clientcas "
			    "(client certificates are asked for only with clientcas)");
		return BERTH_ERROR;
	}
	t->n_headers = cfg->http.headers.n;
	t->headers = berth_calloc(t->n_headers, sizeof(*t->headers));
	t->joined = berth_calloc(t->n_headers, sizeof(*t->joined));
	for (size_t i = 0; i < t->n_headers; i++) {
		const struct berth_header *h = &cfg->http.headers.v[i];
		struct berth_buf v = BERTH_BUF_INIT(1u << 16);
		for (size_t j = 0; j < h->values.n; j++)
			berth_buf_printf(&v, "%s%s", j ? ", " : "", h->values.v[j]);
		t->joined[i] = berth_buf_detach(&v, NULL);
		t->headers[i].name = h->name;
		t->headers[i].value = t->joined[i];
	}
	return 0;
}

static void release_http(struct tls_and_headers *t)
{
	free(t->priorities);
	free(t->client_cas);
	for (size_t i = 0; i < t->n_headers; i++)
		free(t->joined[i]);
	free(t->joined);
	free(t->headers);
}

static void register_metrics(void)
{
	berth_http_metrics_register();
	berth_conns_metrics_register();
	berth_storage_metrics_register();
	berth_registry_metrics_register();
	berth_registry_cache_metrics_register();
	berth_quota_metrics_register();
	berth_workpool_metrics_register();
	berth_gc_metrics_register();
}

/* Storage workers for a driver (or a Redis cache) whose calls wait on a network (http.workers,
 * default DEFAULT_WORKERS): enough that requests in flight seldom wait for one. NULL for a local
 * driver without Redis, whose calls run on the polling threads. */
static int start_workers(struct berth_workpool **out, const struct berth_config *cfg,
			 const struct berth_storage_driver *driver)
{
	*out = NULL;
	/* The Redis cache is a network call too: its requests leave the polling threads. */
	if (!berth_storage_is_remote(driver) && cfg->blob_cache != BERTH_BLOB_CACHE_REDIS) {
		if (cfg->http.workers > 0)
			berth_warn("http.workers: unused with %s storage and no Redis cache, whose calls run on "
				   "the HTTP threads",
				   berth_storage_driver_name((int)cfg->storage));
		return 0;
	}
	unsigned n = cfg->http.workers > 0 ? (unsigned)cfg->http.workers : DEFAULT_WORKERS;
	if (berth_workpool_new(out, n) < 0) {
		berth_error("cannot start %u storage workers (http.workers)", n);
		return BERTH_ERROR;
	}
	return 0;
}

/* The online collection's step before marking: the retention rules (registry/retention.h). */
static int retention_step(struct berth_registry *r, int dry_run, void *payload)
{
	(void)payload;
	struct berth_retention_stats st;
	int rc = berth_retention_apply(&st, r, dry_run);
	return rc == BERTH_EBUSY ? 0 : rc; /* a run already going (berth retention): skip this one */
}

/* Notification endpoints; source.addr is this host's name and the listening port, as
 * Distribution's. */
static int start_notifications(struct berth_notify **out, const struct berth_config *cfg)
{
	char host[256] = "localhost", source[320];
	const char *colon = strrchr(cfg->addr, ':');
	gethostname(host, sizeof(host) - 1);
	snprintf(source, sizeof(source), "%s:%s", host, colon ? colon + 1 : "");
	int rc = berth_notify_start(out, cfg, source);
	if (rc < 0) {
		berth_error("configuration error: %s", berth_err_reason(rc));
		return BERTH_ERROR;
	}
	return 0;
}

/* A retention removal as the notification a DELETE through the API sends: a tag delete, or a
 * manifest delete by digest (no request: retention is berth's own). */
/* The pull-through cache: proxy.remoteurl (every repository, Distribution's) or proxy.upstreams. */
static int start_proxy(struct berth_proxy **out, const struct berth_config *cfg, struct berth_registry *reg)
{
	struct berth_proxy_upstream single = { .prefix = "", .remoteurl = cfg->proxy.remoteurl,
					       .username = cfg->proxy.username, .password = cfg->proxy.password,
					       .ttl_ms = cfg->proxy.ttl_ms, .exec_command = cfg->proxy.exec_command,
					       .exec_lifetime_ms = cfg->proxy.exec_lifetime_ms,
					       .prefetch = cfg->proxy.prefetch };
	struct berth_proxy_config pcfg = { .upstreams = &single, .n_upstreams = 1 };
	struct berth_proxy_upstream *list = NULL;
	if (cfg->proxy.n_upstreams) {
		list = berth_calloc(cfg->proxy.n_upstreams, sizeof(*list));
		for (size_t i = 0; i < cfg->proxy.n_upstreams; i++) {
			const struct berth_config_upstream *u = &cfg->proxy.upstreams[i];
			list[i] = (struct berth_proxy_upstream){ .prefix = u->prefix, .remoteurl = u->remoteurl,
								 .username = u->username, .password = u->password,
								 .ttl_ms = u->ttl_ms, .exec_command = u->exec_command,
								 .exec_lifetime_ms = u->exec_lifetime_ms,
								 .prefetch = u->prefetch >= 0 ? u->prefetch
											      : cfg->proxy.prefetch };
		}
		pcfg = (struct berth_proxy_config){ .upstreams = list, .n_upstreams = cfg->proxy.n_upstreams };
	}
	int rc = berth_proxy_new(out, &pcfg, reg);
	for (size_t i = 0; rc == 0 && i < pcfg.n_upstreams; i++)
		berth_info("pull-through cache of %s for %s (ttl %lld ms)", pcfg.upstreams[i].remoteurl,
			   pcfg.upstreams[i].prefix[0] ? pcfg.upstreams[i].prefix : "every repository",
			   (long long)pcfg.upstreams[i].ttl_ms);
	free(list);
	return rc;
}

static void notify_retention(const struct berth_retention_removal *rm, void *payload)
{
	if (rm->dry_run)
		return;
	struct berth_notify_event ev = { .action = "delete", .repository = rm->repository,
					 .tag = rm->tag, .digest = rm->tag ? NULL : rm->digest };
	berth_notify_emit(payload, &ev);
}

/* so: the connection handling flags; the rest is filled in from cfg. */
static int serve(const struct berth_config *cfg, struct berth_server_options *so)
{
	struct berth_storage_driver *driver = NULL;
	struct berth_registry *reg = NULL;
	struct berth_server *srv = NULL;
	struct berth_debug_server *dbg = NULL;
	struct berth_health *health = NULL;
	struct berth_purger *purger = NULL;
	struct berth_gc_online *collector = NULL;
	struct berth_periodic *quota_counter = NULL;
	struct berth_periodic *retention = NULL;
	struct berth_periodic *pull_flusher = NULL;
	struct berth_auth *auth = NULL;
	struct berth_notify *notify = NULL;
	struct berth_proxy *proxy = NULL;
	struct berth_workpool *workers = NULL;
	struct tls_and_headers http;
	sigset_t set;
	int rc, status = 1;

	/* Signals are blocked in every thread (inherited) and taken synchronously below. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP); /* systemctl reload: never the default action, which would exit */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	register_metrics();

	if (prepare_http(&http, cfg) < 0)
		goto out_http;
	if ((rc = berth_auth_new(&auth, cfg)) < 0) {
		berth_error("configuration error: %s", berth_err_reason(rc));
		goto out_http;
	}
	if (cfg->storage == BERTH_STORAGE_FILESYSTEM &&
	    (rc = berth_fs_check_root(cfg->rootdirectory, cfg->readonly)) < 0) {
		berth_error("cannot use storage root '%s': %s", cfg->rootdirectory, berth_err_reason(rc));
		goto out_http;
	}
	/* middleware.storage: over the server's driver only, as in Distribution (not gc's or
	 * fsck's); read before the storage is contacted, so a bad key is told first. */
	struct berth_storage_driver *middleware = NULL;
	if ((rc = berth_storage_middleware_new(&middleware, cfg)) < 0) {
		berth_error("configuration error: %s", berth_err_reason(rc));
		goto out_http;
	}
	if ((rc = berth_storage_open(&driver, cfg)) < 0) {
		berth_error("%s", berth_err_reason(rc));
		berth_storage_free(middleware);
		goto out_http;
	}
	if (middleware && (rc = berth_storage_middleware_wrap(&driver, middleware)) < 0) {
		berth_error("configuration error: %s", berth_err_reason(rc));
		berth_storage_free(middleware);
		berth_storage_free(driver);
		goto out_http;
	}
	/* A read-only registry deletes nothing: the collection is not run (said below). */
	int gc_online = cfg->gc.enabled && !cfg->readonly;
	if (gc_online && !berth_storage_can_touch(driver)) {
		berth_error("configuration error: storage.maintenance.gc.enabled: refused: the %s driver "
			    "cannot refresh a blob's age, which online garbage collection needs (run "
			    "berth garbage-collect offline instead)", driver->name);
		berth_storage_free(driver);
		goto out_http;
	}
	struct berth_redis_cache *redis = NULL;
	if (berth_serve_redis_cache(&redis, cfg) < 0) {
		berth_storage_free(driver);
		goto out_http;
	}
	int validate = !cfg->validation.disabled;
	struct berth_registry_config rcfg = {
		.driver = driver,
		.redis = redis,
		.delete_enabled = cfg->delete_enabled,
		.manifest_max = cfg->manifest_max,
		.readonly = cfg->readonly,
		.redirect = !cfg->redirect_disable,
		.descriptor_cache_size = cfg->blob_cache == BERTH_BLOB_CACHE_NONE ? 0
					 : cfg->blob_cache_size > 0 ? (size_t)cfg->blob_cache_size
								    : DEFAULT_DESCRIPTOR_CACHE,
		.catalog_max = (size_t)cfg->catalog_maxentries,
		.tags_max = (size_t)cfg->tags_maxtags,
		.urls_allow = validate ? (const char *const *)cfg->validation.urls_allow.v : NULL,
		.n_urls_allow = validate ? cfg->validation.urls_allow.n : 0,
		.urls_deny = validate ? (const char *const *)cfg->validation.urls_deny.v : NULL,
		.n_urls_deny = validate ? cfg->validation.urls_deny.n : 0,
		.gc_online = gc_online,
	};
	if (berth_serve_index_children(&rcfg, cfg) < 0) {
		berth_storage_free(driver);
		berth_redis_cache_free(redis);
		goto out_http;
	}
	berth_serve_policies(&rcfg, cfg);
	rc = berth_registry_new(&reg, &rcfg);
	berth_serve_release_index_children(&rcfg); /* the registry keeps copies */
	berth_serve_release_policies(&rcfg);
	if (rc < 0) {
		berth_error("configuration error: validation.manifests.urls: invalid regular expression");
		berth_storage_free(driver);
		goto out_http;
	}
	/* Before serving: a push must never be checked against a usage not counted yet. */
	if ((rc = berth_quota_bytes_build(reg)) < 0) {
		berth_error("cannot count the stored bytes of policies.quotas: %s", berth_err_reason(rc));
		goto out_registry;
	}

	int proxied = cfg->proxy.remoteurl[0] || cfg->proxy.n_upstreams;
	if (proxied) {
		if ((rc = start_proxy(&proxy, cfg, reg)) < 0) {
			berth_error("configuration error: proxy: %s", berth_err_reason(rc));
			goto out_registry;
		}
		berth_proxy_metrics_register();
	}

	so->addr = cfg->addr;
	so->threads = cfg->threads;
	so->access_log = cfg->access_log;
	so->prefix = cfg->http.prefix[0] ? cfg->http.prefix : NULL;
	so->external_url = cfg->http.host[0] && !cfg->http.relativeurls ? cfg->http.host : NULL;
	so->tls_cert_file = cfg->http.tls_certificate[0] ? cfg->http.tls_certificate : NULL;
	so->tls_key_file = cfg->http.tls_key;
	so->tls_priorities = http.priorities;
	so->tls_client_ca_pem = http.client_cas;
	so->tls_client_auth = cfg->http.tls_clientauth;
	so->headers = http.headers;
	so->n_headers = http.n_headers;
	struct berth_api api = { .registry = reg, .auth = auth,
				 .extra = cfg->ui.enabled ? &berth_ui_handler : NULL, .proxy = proxy };
	struct berth_http_handler handler;
	berth_api_handler(&handler, &api);
	so->handler = &handler;
	so->unix_socket = cfg->http.net == BERTH_NET_UNIX;
	health = berth_serve_health_checks(cfg, reg);
	if (health && berth_health_start(health) < 0) {
		berth_error("cannot start the health checks");
		goto out_health;
	}
	so->health = health;
	if (start_notifications(&notify, cfg) < 0)
		goto out_health;
	api.notify = notify;
	if (start_workers(&workers, cfg, driver) < 0)
		goto out_health;
	so->workers = workers;
	if (berth_server_start(&srv, so) < 0)
		goto out_health;
	if (cfg->http.debug_addr[0]) {
		struct berth_debug_options dopts = {
			.addr = cfg->http.debug_addr,
			.health = health,
			.metrics_path = cfg->http.prometheus_enabled ? cfg->http.prometheus_path : NULL,
		};
		if (berth_debug_start(&dbg, &dopts) < 0)
			goto out_server;
		berth_info("debug server listening on %s (/debug/health%s%s)", cfg->http.debug_addr,
			   dopts.metrics_path ? ", " : "", dopts.metrics_path ? dopts.metrics_path : "");
	}
	if (cfg->uploadpurging.enabled && !cfg->readonly &&
	    berth_purger_start(&purger, reg, cfg->uploadpurging.age_ms, cfg->uploadpurging.interval_ms,
			       cfg->uploadpurging.dryrun) < 0)
		berth_warn("cannot start upload purging");
	if (gc_online) {
		struct berth_gc_online_options go = {
			.interval_ms = cfg->gc.interval_ms,
			.delay_ms = cfg->gc.delay_ms,
			.delete_untagged = cfg->gc.deleteuntagged,
			.dry_run = cfg->gc.dryrun,
		};
		if (berth_retention_configured(reg)) {
			if (notify)
				berth_retention_set_listener(reg, notify_retention, notify);
			go.before_mark[go.n_before_mark++] = retention_step;
		}
		if (berth_gc_online_start(&collector, reg, &go) < 0) {
			berth_error("cannot start online garbage collection");
			status = 1;
			goto out_debug;
		}
		berth_info("online garbage collection every %llds, delay %llds%s%s",
			   (long long)(cfg->gc.interval_ms / 1000), (long long)(cfg->gc.delay_ms / 1000),
			   cfg->gc.deleteuntagged ? ", deleting untagged manifests" : "",
			   cfg->gc.dryrun ? " (dry run)" : "");
	} else if (cfg->gc.enabled) {
		berth_warn("online garbage collection is not run: the registry is read-only");
	}
	if (berth_quota_metrics_start(&quota_counter, reg) < 0)
		berth_warn("cannot start counting quota usage for the metrics");
	if (berth_retention_configured(reg) && cfg->readonly) {
		berth_warn("policies.retention: not applied: the registry is read-only "
			   "(storage.maintenance.readonly)");
	} else if (berth_retention_configured(reg)) {
		if (notify)
			berth_retention_set_listener(reg, notify_retention, notify);
		/* With online collection, its cycle applies the rules (before marking, so what they
		 * untag is collected in the same run); else their own timer does. */
		if (!gc_online &&
		    berth_retention_start(&retention, reg, cfg->policies.retention.interval_ms) < 0)
			berth_warn("cannot start applying policies.retention");
		if (berth_retention_pulls_start(&pull_flusher, reg, cfg->policies.retention.pullflush_ms) < 0)
			berth_warn("cannot start recording pulls for policies.retention");
	}

	berth_info("berth %s listening on %s%s (storage %s%s%s%s)", BERTH_VERSION, so->tls_cert_file ? "https://" : "",
		   cfg->addr,
		   cfg->storage == BERTH_STORAGE_INMEMORY ? "inmemory"
		   : cfg->storage == BERTH_STORAGE_S3     ? "s3 bucket "
							  : "filesystem ",
		   cfg->storage == BERTH_STORAGE_INMEMORY ? ""
		   : cfg->storage == BERTH_STORAGE_S3     ? cfg->s3.bucket
							  : cfg->rootdirectory,
		   cfg->delete_enabled ? ", deletes enabled" : "", cfg->readonly ? ", read-only" : "");
	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		berth_serve_reload_tls(srv, so);
	berth_info("received %s, draining for up to %lld ms", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		   (long long)cfg->http.draintimeout_ms);
	status = 0;
	berth_retention_stop(retention);
	berth_quota_metrics_stop(quota_counter);
out_debug:
	berth_gc_online_stop(collector); /* waits for a run in progress */
	berth_purger_stop(purger);
	berth_debug_stop(dbg);
out_server:
	berth_server_drain_and_stop(srv, (unsigned)(cfg->http.draintimeout_ms > 0 ? cfg->http.draintimeout_ms : 0));
	berth_retention_pulls_stop(pull_flusher, reg); /* after the last pull served */
	berth_info("berth stopped");
out_health:
	berth_workpool_free(workers); /* the drain waited for the requests parked on it */
	berth_notify_stop(notify); /* after the drain: no request emits any more */
	berth_health_stop(health);
	berth_proxy_free(proxy); /* after the drain: its fetches end, its TTL state is saved */
out_registry:
	berth_registry_free(reg);
out_http:
	berth_auth_free(auth);
	release_http(&http);
	return status;
}

int main(int argc, char **argv)
{
	struct berth_config cfg;
	struct berth_server_options so = BERTH_SERVER_OPTIONS_INIT;

	berth_alloc_init();
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("berth %s\n", BERTH_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "garbage-collect") == 0)
		return berth_cmd_garbage_collect(argc - 1, argv + 1);
	if (strcmp(argv[1], "fsck") == 0)
		return berth_cmd_fsck(argc - 1, argv + 1);
	if (strcmp(argv[1], "repo") == 0)
		return berth_cmd_repo(argc - 1, argv + 1);
	if (strcmp(argv[1], "usage") == 0)
		return berth_cmd_usage(argc - 1, argv + 1);
	if (strcmp(argv[1], "retention") == 0)
		return berth_cmd_retention(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0) {
		struct serve_args sa;
		if (scan_serve_args(&sa, argc - 2, argv + 2) < 0)
			return 2;
		if (sa.help) {
			usage(stdout);
			return 0;
		}
		int rc = load_serve_config(&cfg, &so, &sa, argc - 2, argv + 2);
		if (rc) {
			berth_config_release(&cfg);
			return rc;
		}
		setup_logging(&cfg);
		int status = serve(&cfg, &so);
		berth_config_release(&cfg);
		return status;
	}
	fprintf(stderr, "berth: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}

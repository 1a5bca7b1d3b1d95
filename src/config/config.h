/*
 * Everything that configures a running berth, in one struct. The command line fills it, and so does
 * berth_config_load(), which reads CNCF Distribution's config.yml (format version 0.1) and then the
 * REGISTRY_* environment overrides, the way Distribution 2.8 does.
 *
 * Each field's comment names the YAML key it comes from. Durations are stored in milliseconds
 * (`_ms` fields). Fields without a key (manifest_max, threads) are set by the command line only.
 *
 * Ownership: the struct is plain data, except the list and map fields (struct berth_strlist,
 * struct berth_strmap, struct berth_headers, the notification endpoints), which are heap arrays
 * owned by the struct. berth_config_defaults() allocates nothing; anything that loaded a file or
 * the environment must call berth_config_release() once. Do not copy a loaded struct by value and
 * release both copies.
 */
#ifndef BERTH_CONFIG_CONFIG_H
#define BERTH_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Which storage driver: exactly one of storage.filesystem | storage.inmemory | storage.s3. */
enum berth_storage_kind { BERTH_STORAGE_FILESYSTEM, BERTH_STORAGE_INMEMORY, BERTH_STORAGE_S3 };

/* log.formatter; "logstash" is read as json. Same values as core/log.h's enum berth_log_style. */
enum berth_log_format { BERTH_LOG_FORMAT_TEXT, BERTH_LOG_FORMAT_JSON };

/* storage.cache.blobdescriptor */
enum berth_blob_cache { BERTH_BLOB_CACHE_NONE, BERTH_BLOB_CACHE_INMEMORY, BERTH_BLOB_CACHE_REDIS };

/* http.net */
enum berth_http_net { BERTH_NET_TCP, BERTH_NET_UNIX };

/* http.tls.minimumtls: tls1.0 .. tls1.3; Distribution 2.8 defaults to tls1.2. */
enum berth_tls_version { BERTH_TLS_1_0, BERTH_TLS_1_1, BERTH_TLS_1_2, BERTH_TLS_1_3 };

/* http.tls.clientauth (Distribution 3), with http.tls.clientcas; default require-and-verify. */
enum berth_client_auth {
	BERTH_CLIENT_AUTH_REQUIRE_AND_VERIFY, /* a certificate from one of clientcas is required */
	BERTH_CLIENT_AUTH_VERIFY_IF_GIVEN,    /* none is fine; one given must verify */
	BERTH_CLIENT_AUTH_REQUIRE_ANY,        /* one is required, not verified */
	BERTH_CLIENT_AUTH_REQUEST,            /* asked for, neither required nor verified */
};

/* auth: at most one provider. `auth: none` is accepted and means no authentication. */
enum berth_auth_kind { BERTH_AUTH_NONE, BERTH_AUTH_SILLY, BERTH_AUTH_TOKEN, BERTH_AUTH_HTPASSWD };

/* A list of strings (YAML sequence). v[0..n-1] are NUL-terminated heap strings. */
struct berth_strlist {
	size_t n;
	char **v;
};

/* A string -> string map, in file order. */
struct berth_strpair {
	char *key;
	char *value;
};
struct berth_strmap {
	size_t n;
	struct berth_strpair *v;
};

/* An HTTP header map (Go http.Header): name -> list of values, in file order. */
struct berth_header {
	char *name;
	struct berth_strlist values;
};
struct berth_headers {
	size_t n;
	struct berth_header *v;
};

/* Caps on collections; more entries is a load error. */
#define BERTH_CONFIG_MAX_LOG_FIELDS 16
#define BERTH_CONFIG_MAX_HEADERS 32
#define BERTH_CONFIG_MAX_LIST 256
#define BERTH_CONFIG_MAX_ENDPOINTS 32
#define BERTH_CONFIG_MAX_UPSTREAMS 32

/* catalog.maxentries and tags.maxtags when unset or 0 (Distribution 3.1's defaults). */
#define BERTH_CONFIG_DEFAULT_MAX_ENTRIES 1000

/* storage.s3.*: raw scalar text as written, "" when absent; storage/s3_config.c validates them
 * (and refuses by name the keys berth does not implement). */
struct berth_s3_config {
	char accesskey[256];       /* storage.s3.accesskey */
	char secretkey[256];       /* storage.s3.secretkey */
	char region[128];          /* storage.s3.region */
	char regionendpoint[1024]; /* storage.s3.regionendpoint */
	char bucket[256];          /* storage.s3.bucket */
	char rootdirectory[1024];  /* storage.s3.rootdirectory */
	char secure[16];           /* storage.s3.secure */
	char v4auth[16];           /* storage.s3.v4auth */
	char chunksize[32];        /* storage.s3.chunksize */
	char forcepathstyle[16];   /* storage.s3.forcepathstyle */
	char sessiontoken[2048];   /* storage.s3.sessiontoken */
	char skipverify[16];       /* storage.s3.skipverify */
	char encrypt[16];          /* storage.s3.encrypt */
	char keyid[256];           /* storage.s3.keyid */
	char multipartcopychunksize[32];      /* storage.s3.multipartcopychunksize */
	char multipartcopymaxconcurrency[32]; /* storage.s3.multipartcopymaxconcurrency */
	char multipartcopythresholdsize[32];  /* storage.s3.multipartcopythresholdsize */
	char storageclass[64];     /* storage.s3.storageclass */
	char objectacl[64];        /* storage.s3.objectacl */
	char useragent[256];       /* storage.s3.useragent */
	/* Distribution keys berth does not implement: any value is refused at start-up. */
	char usedualstack[16], accelerate[16], usefipsendpoint[16], loglevel[64];
	char redirectendpoint[1024];
};

/* notifications.endpoints[i]; unset timeout/threshold/backoff take Distribution's defaults. */
struct berth_notify_endpoint {
	char name[256];                        /* name */
	int disabled;                          /* disabled */
	char url[1024];                        /* url */
	struct berth_headers headers;          /* headers */
	int64_t timeout_ms;                    /* timeout (default 1s) */
	int64_t threshold;                     /* threshold (default 10) */
	int64_t backoff_ms;                    /* backoff (default 1s) */
	struct berth_strlist ignoredmediatypes; /* ignoredmediatypes */
	struct berth_strlist ignore_mediatypes; /* ignore.mediatypes */
	struct berth_strlist ignore_actions;   /* ignore.actions */
};

/* proxy.upstreams[i] (berth): one upstream of a pull-through cache serving several, for the
 * repositories under its prefix; ttl defaults to proxy.ttl's default (168h). */
struct berth_config_upstream {
	char prefix[256];                      /* prefix: "docker.io" serves docker.io/<name> */
	char remoteurl[1024];                  /* remoteurl */
	char username[256];                    /* username */
	char password[256];                    /* password */
	int64_t ttl_ms;                        /* ttl */
	char exec_command[1024];               /* exec.command: a credential helper ("" = none) */
	int64_t exec_lifetime_ms;              /* exec.lifetime (-1 = unset: the helper runs once) */
	int prefetch;                          /* prefetch (berth; -1 = unset: proxy.prefetch) */
};

/* middleware.storage[i]: one storage middleware, wrapping the driver berth serve uses
 * (storage/middleware.c). Its options are kept as written ("" when absent), durations parsed;
 * config.c checks the names, the options each takes and their values at load. */
struct berth_storage_middleware {
	char name[64];                 /* name: cloudfront or redirect */
	int disabled;                  /* disabled (true is refused: Distribution ignores it) */
	char baseurl[1024];            /* options.baseurl */
	char privatekey[1024];         /* options.privatekey (cloudfront): PEM file, read at start-up */
	char keypairid[256];           /* options.keypairid (cloudfront) */
	int64_t duration_ms;           /* options.duration (cloudfront; default 20m) */
	char ipfilteredby[64];         /* options.ipfilteredby (cloudfront): none, aws or awsregion
					* (lowercased, trimmed, "" made none at load) */
	char awsregion[1024];          /* options.awsregion (cloudfront, with ipfilteredby awsregion) */
	int64_t updatefrequency_ms;    /* options.updatefrequency (2.x updatefrenquency); -1 unset */
	char iprangesurl[1024];        /* options.iprangesurl (cloudfront) */
	int rewrite_options;           /* options.scheme, host or trimpathprefix (rewrite's) given */
};

/* health.file[i]: fails while the file exists. */
struct berth_health_file {
	char file[1024];     /* file */
	int64_t interval_ms; /* interval (0 = 10s) */
};

/* health.http[i]: a HEAD of uri must answer statuscode. */
struct berth_health_http {
	char uri[1024];                /* uri */
	struct berth_headers headers;  /* headers */
	int64_t statuscode;            /* statuscode (0 = 200) */
	int64_t timeout_ms;            /* timeout (0 = the interval) */
	int64_t interval_ms;           /* interval (0 = 10s) */
	int64_t threshold;             /* threshold (0 = any failure) */
};

/* health.tcp[i]: a connection to addr must open. */
struct berth_health_tcp {
	char addr[256];      /* addr */
	int64_t timeout_ms;  /* timeout (0 = the interval) */
	int64_t interval_ms; /* interval (0 = 10s) */
	int64_t threshold;   /* threshold (0 = any failure) */
};

#define BERTH_CONFIG_MAX_HEALTH_CHECKS 32

/* validation.manifests.indexes.platforms (Distribution 3) */
enum berth_index_platforms { BERTH_INDEX_PLATFORMS_ALL, BERTH_INDEX_PLATFORMS_NONE, BERTH_INDEX_PLATFORMS_LIST };

/* validation.manifests.indexes.platformlist[i] */
struct berth_platform {
	char os[64];           /* os */
	char architecture[64]; /* architecture */
};

/* policies.immutabletags[i] (berth-specific): POSIX EREs matched against the whole repository
 * name and tag; "" matches everything. */
struct berth_immutable_rule {
	char repository[1024]; /* repository */
	char tags[1024];       /* tags */
};

/* policies.quotas[i] (berth-specific): limits over every repository whose whole name matches
 * `repository` (a POSIX ERE; "" matches all); 0 = no limit. */
struct berth_quota_config {
	char repository[1024]; /* repository */
	int64_t tags;          /* tags */
	int64_t repositories;  /* repositories */
	int64_t bytes;         /* bytes: stored bytes of distinct blobs linked into them */
};

/* policies.retention.rules[i] (berth-specific): what a matching repository keeps; its other
 * tags, and its untagged manifests older than untaggedafter, are removed (README, Policies). */
struct berth_retention_rule_config {
	char repository[1024];        /* repository: POSIX ERE, whole name ("" = every repository) */
	int64_t keeplatest;           /* keeplatest: the N most recently pushed tags (-1 = not set) */
	char keeptags[1024];          /* keeptags: POSIX ERE, whole tag ("" = not set) */
	int64_t keeppushedwithin_ms;  /* keeppushedwithin: tags pushed within (-1 = not set) */
	int64_t untaggedafter_ms;     /* untaggedafter: untagged manifests go after (-1 = not set) */
	int64_t keeppulledwithin_ms;  /* keeppulledwithin: tags pulled within (-1 = not set) */
};

struct berth_config {
	/* --- fields the command line also sets --- */
	char addr[256];                   /* http.addr (":5000" = all interfaces) */
	enum berth_storage_kind storage;  /* storage.filesystem | storage.inmemory | storage.s3 */
	char rootdirectory[4096];         /* storage.filesystem.rootdirectory */
	int delete_enabled;               /* storage.delete.enabled */
	size_t manifest_max;              /* largest manifest accepted (no config key) */
	unsigned threads;                 /* HTTP polling threads, 0 = one per core (no config key) */
	int log_level;                    /* enum berth_log_level: log.level, or deprecated loglevel */
	int access_log;                   /* log.accesslog.disabled inverted */

	/* --- log --- */
	int log_formatter;                /* enum berth_log_format: log.formatter */
	struct berth_strmap log_fields;   /* log.fields (at most BERTH_CONFIG_MAX_LOG_FIELDS) */
	int log_reportcaller;             /* log.reportcaller: lines name the source file and line */

	/* --- storage --- */
	int fs_maxthreads;                /* storage.filesystem.maxthreads (>= 25, default 100) */
	struct berth_s3_config s3;        /* storage.s3.* */
	int redirect_disable;             /* storage.redirect.disable */
	int blob_cache;                   /* enum berth_blob_cache: storage.cache.blobdescriptor */
	int64_t blob_cache_size;          /* storage.cache.blobdescriptorsize (0 = implementation default) */
	struct {
		int enabled;              /* storage.maintenance.uploadpurging.enabled (default true) */
		int64_t age_ms;           /* storage.maintenance.uploadpurging.age (default 168h) */
		int64_t interval_ms;      /* storage.maintenance.uploadpurging.interval (default 24h) */
		int dryrun;               /* storage.maintenance.uploadpurging.dryrun */
	} uploadpurging;
	struct {                          /* berth-specific: online garbage collection */
		int enabled;              /* storage.maintenance.gc.enabled */
		int64_t interval_ms;      /* storage.maintenance.gc.interval (default 24h, > 0) */
		int64_t delay_ms;         /* storage.maintenance.gc.delay (default 1h, >= 1s) */
		int deleteuntagged;       /* storage.maintenance.gc.deleteuntagged */
		int dryrun;               /* storage.maintenance.gc.dryrun */
	} gc;
	int readonly;                     /* storage.maintenance.readonly.enabled */
	size_t n_storage_middleware;      /* middleware.storage (at most one enabled entry) */
	struct berth_storage_middleware *storage_middleware;
	int64_t tag_concurrencylimit;     /* storage.tag.concurrencylimit (0 = number of cores) */

	/* --- http (http.addr is `addr` above) --- */
	struct {
		int net;                          /* enum berth_http_net: http.net */
		char prefix[256];                 /* http.prefix */
		char host[1024];                  /* http.host */
		char secret[512];                 /* http.secret */
		int relativeurls;                 /* http.relativeurls */
		int64_t draintimeout_ms;          /* http.draintimeout */
		int64_t workers;                  /* http.workers (berth): threads running the storage
						   * calls of a remote driver (s3); 0: the default */
		char tls_certificate[1024];       /* http.tls.certificate */
		char tls_key[1024];               /* http.tls.key */
		struct berth_strlist tls_clientcas; /* http.tls.clientcas */
		int tls_minimum;                  /* enum berth_tls_version: http.tls.minimumtls */
		struct berth_strlist tls_ciphersuites; /* http.tls.ciphersuites (Go names) */
		int tls_clientauth;               /* enum berth_client_auth: http.tls.clientauth */
		struct berth_headers headers;     /* http.headers (at most BERTH_CONFIG_MAX_HEADERS) */
		char debug_addr[256];             /* http.debug.addr ("" = no debug server) */
		int prometheus_enabled;           /* http.debug.prometheus.enabled */
		char prometheus_path[256];        /* http.debug.prometheus.path (default /metrics) */
		int http2_disabled;               /* http.http2.disabled */
	} http;

	/* --- health --- */
	struct {
		int enabled;                      /* health.storagedriver.enabled */
		int64_t interval_ms;              /* health.storagedriver.interval (default 10s) */
		int64_t threshold;                /* health.storagedriver.threshold (0 = any failure) */
	} health_storagedriver;
	size_t n_health_files;                     /* health.file */
	struct berth_health_file *health_files;
	size_t n_health_https;                     /* health.http */
	struct berth_health_http *health_https;
	size_t n_health_tcps;                      /* health.tcp */
	struct berth_health_tcp *health_tcps;

	/* --- validation --- */
	struct {
		int disabled;                     /* validation.disabled (validation.enabled: true wins) */
		struct berth_strlist urls_allow;  /* validation.manifests.urls.allow (POSIX EREs) */
		struct berth_strlist urls_deny;   /* validation.manifests.urls.deny (POSIX EREs) */
		int index_platforms;              /* enum berth_index_platforms: ...indexes.platforms */
		size_t n_platforms;               /* validation.manifests.indexes.platformlist */
		struct berth_platform *platforms;
	} validation;

	/* --- auth (options of the one configured provider) --- */
	struct {
		int kind;                         /* enum berth_auth_kind: which of auth.silly|token|htpasswd */
		char realm[256];                  /* auth.<provider>.realm */
		char service[256];                /* auth.silly.service, auth.token.service */
		char issuer[256];                 /* auth.token.issuer */
		char rootcertbundle[1024];        /* auth.token.rootcertbundle */
		char jwks[1024];                  /* auth.token.jwks */
		int autoredirect;                 /* auth.token.autoredirect */
		char autoredirectpath[256];       /* auth.token.autoredirectpath ("" = /auth/token) */
		struct berth_strlist signingalgorithms; /* auth.token.signingalgorithms (empty = all) */
		char path[1024];                  /* auth.htpasswd.path */
	} auth;

	/* --- redis (storage.cache.blobdescriptor: redis; set up in cli/redis_setup.c) --- */
	struct {
		char addr[256];                   /* redis.addr (2.8) */
		struct berth_strlist addrs;       /* redis.addrs (3.x): the server, or with mastername the sentinels */
		char username[256];               /* redis.username (ACL user, Redis 6+) */
		char password[256];               /* redis.password */
		char mastername[256];             /* redis.mastername: Sentinel's name of the master */
		char sentinelusername[256];       /* redis.sentinelusername */
		char sentinelpassword[256];       /* redis.sentinelpassword */
		int64_t db;                       /* redis.db */
		int64_t dialtimeout_ms;           /* redis.dialtimeout */
		int64_t readtimeout_ms;           /* redis.readtimeout */
		int64_t writetimeout_ms;          /* redis.writetimeout */
		int64_t pool_maxidle;             /* redis.pool.maxidle, redis.maxidleconns */
		int64_t pool_maxactive;           /* redis.pool.maxactive */
		int64_t poolsize;                 /* redis.poolsize */
		int64_t maxactiveconns;           /* redis.maxactiveconns */
		int64_t pool_idletimeout_ms;      /* redis.pool.idletimeout, redis.connmaxidletime */
	} redis;

	/* --- notifications --- */
	struct {
		int includereferences;            /* notifications.events.includereferences */
		size_t n_endpoints;               /* notifications.endpoints */
		struct berth_notify_endpoint *endpoints;
		char queuedir[4096];              /* notifications.queuedir (berth): queues on disk */
		int64_t queuemaxbytes;            /* notifications.queuemaxbytes (berth): per endpoint */
	} notifications;

	/* --- proxy (pull-through cache) --- */
	struct {
		char remoteurl[1024];             /* proxy.remoteurl ("" = not a proxy) */
		char username[256];               /* proxy.username */
		char password[256];               /* proxy.password */
		int64_t ttl_ms;                   /* proxy.ttl (default 168h) */
		char exec_command[1024];          /* proxy.exec.command: a credential helper ("" = none) */
		int64_t exec_lifetime_ms;         /* proxy.exec.lifetime (-1 = unset: the helper runs once,
						   * 0 = for every request) */
		int prefetch;                     /* proxy.prefetch (berth; default 1): a manifest fetched
						   * for a GET starts the fetches of its blobs */
		size_t n_upstreams;               /* proxy.upstreams (berth); none with remoteurl */
		struct berth_config_upstream *upstreams;
	} proxy;

	int64_t catalog_maxentries;       /* catalog.maxentries (default 1000; 0 = the default) */
	int64_t tags_maxtags;             /* tags.maxtags (Distribution 3.1; default 1000; 0 = the default):
					   * the most tags one page of a tag list holds when n asks for more */

	/* --- ui (berth-specific: Distribution has no such section) --- */
	struct {
		int enabled;              /* ui.enabled: the web interface under /ui/ (default false) */
	} ui;

	/* --- policies (berth-specific lifecycle rules) --- */
	struct {
		size_t n_immutabletags;           /* policies.immutabletags */
		struct berth_immutable_rule *immutabletags;
		size_t n_quotas;                  /* policies.quotas */
		struct berth_quota_config *quotas;
		struct {
			int dryrun;               /* policies.retention.dryrun: log, remove nothing */
			int64_t interval_ms;      /* policies.retention.interval (default 1h; 0 = never
						   * on berth serve's own timer) */
			int64_t pullflush_ms;     /* policies.retention.pullflush (default 1m): how often
						   * recorded pulls are written to the store */
			size_t n_rules;           /* policies.retention.rules */
			struct berth_retention_rule_config *rules;
		} retention;
	} policies;
};

/*
 * The embedded defaults: filesystem storage in ./data, listening on 127.0.0.1:5000, plus
 * Distribution's defaults for everything else. Allocates nothing.
 */
void berth_config_defaults(struct berth_config *cfg);

/*
 * Loads a Distribution config.yml: starts from berth_config_defaults(), reads the YAML file at
 * `path`, then applies REGISTRY_* environment overrides. `version` must be "0.1" and exactly one
 * storage driver must end up configured. A driver named in the file with no rootdirectory gets
 * Distribution's default, /var/lib/registry.
 *
 * Unknown keys print one warning line on stderr ("config.yml:7: warning: unknown key http.foo")
 * and are otherwise ignored. Returns 0 on success, or -1 with a one-line message in `err`
 * ("config.yml:12: storage.delete.enabled: expected a boolean, got 'yes please'"). Either way,
 * call berth_config_release() afterwards. Blocks on file I/O.
 */
int berth_config_load(struct berth_config *cfg, const char *path, char *err, size_t errlen);

/*
 * Applies only the REGISTRY_* environment overrides to an already initialised `cfg` (defaults or
 * a loaded file), e.g. to run without a file. REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY sets
 * storage.filesystem.rootdirectory; values are type-checked like the YAML ones; lists and maps
 * take a YAML flow value (REGISTRY_HTTP_TLS_CLIENTCAS='[/a.pem, /b.pem]') or one item by index
 * (REGISTRY_HTTP_TLS_CLIENTCAS_0=/a.pem). Naming a driver (REGISTRY_STORAGE=inmemory or
 * REGISTRY_STORAGE_S3_BUCKET=x) switches to it. Unrecognised REGISTRY_* variables warn on stderr.
 * Returns 0, or -1 with a message naming the variable in `err`.
 */
int berth_config_apply_env(struct berth_config *cfg, char *err, size_t errlen);

/* Frees the heap fields (lists, maps, endpoints) and leaves them empty. Accepts a defaults-only cfg. */
void berth_config_release(struct berth_config *cfg);

#endif

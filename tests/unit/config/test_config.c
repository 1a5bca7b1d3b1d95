/*
 * config.yml loading (Distribution's format 0.1) and REGISTRY_* overrides. Fixtures are either
 * files in tests/fixtures/config (real Distribution configs) or written to a temp dir per test,
 * so that error messages can be checked with their exact line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "core/log.h"
#include "core/util.h"

extern char **environ;

static char tmpdir[256];
static char errbuf[1024];

static void fixture_path(char *out, size_t n, const char *name)
{
	/* __FILE__ is absolute under CMake: <src>/tests/unit/config/test_config.c */
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	int w = snprintf(out, n, "%s/../../fixtures/config/%s", dir, name);
	assert_true(w > 0 && (size_t)w < n);
}

/* Writes `text` to <tmpdir>/<name> and returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void clear_registry_env(void)
{
	char names[64][256];
	size_t n = 0;
	for (char **e = environ; *e && n < 64; e++)
		if (strncmp(*e, "REGISTRY_", 9) == 0)
			snprintf(names[n++], sizeof(names[0]), "%.*s", (int)strcspn(*e, "="), *e);
	for (size_t i = 0; i < n; i++)
		unsetenv(names[i]);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/berth-config-test-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	clear_registry_env();
	errbuf[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	clear_registry_env();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Loads text from a temp file, expecting failure; returns the message (after the "<path>:" part). */
static const char *load_fails(const char *text)
{
	struct berth_config cfg;
	const char *path = write_tmp("config.yml", text);
	int rc = berth_config_load(&cfg, path, errbuf, sizeof(errbuf));
	berth_config_release(&cfg);
	if (rc != -1)
		fail_msg("expected the load to fail:\n%s", text);
	size_t n = strlen(path);
	if (strncmp(errbuf, path, n) != 0 || errbuf[n] != ':')
		fail_msg("message does not start with the path: %s", errbuf);
	return errbuf + n + 1;
}

static void load_ok(struct berth_config *cfg, const char *text)
{
	const char *path = write_tmp("config.yml", text);
	if (berth_config_load(cfg, path, errbuf, sizeof(errbuf)) != 0)
		fail_msg("load failed: %s", errbuf);
}

#define MINIMAL "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\n"

/* Runs fn with stderr redirected to a file; returns what was written (static buffer). */
static const char *capture_stderr(void (*fn)(void *), void *arg)
{
	static char out[32768];
	char path[512];
	snprintf(path, sizeof(path), "%s/stderr.txt", tmpdir);
	fflush(stderr);
	int saved = dup(2);
	FILE *f = fopen(path, "w+");
	assert_non_null(f);
	dup2(fileno(f), 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return out;
}

struct load_args {
	const char *path;
	int rc;
	struct berth_config cfg;
};

static void do_load(void *p)
{
	struct load_args *a = p;
	a->rc = berth_config_load(&a->cfg, a->path, errbuf, sizeof(errbuf));
}

/* ---- real configs ------------------------------------------------------------------------------ */

static void check_debian(const struct berth_config *cfg)
{
	assert_int_equal(cfg->storage, BERTH_STORAGE_FILESYSTEM);
	assert_string_equal(cfg->rootdirectory, "/var/lib/docker-registry");
	assert_int_equal(cfg->delete_enabled, 1);
	assert_int_equal(cfg->blob_cache, BERTH_BLOB_CACHE_INMEMORY);
	assert_string_equal(cfg->addr, ":5000");
	assert_int_equal(cfg->log_fields.n, 1);
	assert_string_equal(cfg->log_fields.v[0].key, "service");
	assert_string_equal(cfg->log_fields.v[0].value, "registry");
	assert_int_equal(cfg->http.headers.n, 1);
	assert_string_equal(cfg->http.headers.v[0].name, "X-Content-Type-Options");
	assert_int_equal(cfg->http.headers.v[0].values.n, 1);
	assert_string_equal(cfg->http.headers.v[0].values.v[0], "nosniff");
	assert_int_equal(cfg->auth.kind, BERTH_AUTH_HTPASSWD);
	assert_string_equal(cfg->auth.realm, "basic-realm");
	assert_string_equal(cfg->auth.path, "/etc/docker/registry");
	assert_int_equal(cfg->health_storagedriver.enabled, 1);
	assert_int_equal(cfg->health_storagedriver.interval_ms, 10000);
	assert_int_equal(cfg->health_storagedriver.threshold, 3);
	assert_int_equal(cfg->log_level, BERTH_LOG_INFO);
}

static void test_debian_config(void **state)
{
	struct berth_config cfg;
	char path[1024];

	fixture_path(path, sizeof(path), "debian-docker-registry.yml");
	if (berth_config_load(&cfg, path, errbuf, sizeof(errbuf)) != 0)
		fail_msg("%s", errbuf);
	check_debian(&cfg);
	berth_config_release(&cfg);

	/* The installed one too, when docker-registry is installed (it is in the dev image). */
	if (access("/etc/docker/registry/config.yml", R_OK) == 0) {
		if (berth_config_load(&cfg, "/etc/docker/registry/config.yml", errbuf, sizeof(errbuf)) != 0)
			fail_msg("%s", errbuf);
		assert_int_equal(cfg.storage, BERTH_STORAGE_FILESYSTEM);
		berth_config_release(&cfg);
	}
}

static void test_distribution_full_example(void **state)
{
	struct berth_config cfg;
	char path[1024];

	fixture_path(path, sizeof(path), "distribution-full.yml");
	if (berth_config_load(&cfg, path, errbuf, sizeof(errbuf)) != 0)
		fail_msg("%s", errbuf);
	assert_int_equal(cfg.log_level, BERTH_LOG_DEBUG);
	assert_int_equal(cfg.access_log, 0);
	assert_int_equal(cfg.log_formatter, BERTH_LOG_FORMAT_TEXT);
	assert_int_equal(cfg.log_fields.n, 2);
	assert_string_equal(cfg.log_fields.v[1].key, "environment");
	assert_string_equal(cfg.log_fields.v[1].value, "staging");

	assert_int_equal(cfg.storage, BERTH_STORAGE_S3);
	assert_string_equal(cfg.s3.accesskey, "awsaccesskey");
	assert_string_equal(cfg.s3.secretkey, "awssecretkey");
	assert_string_equal(cfg.s3.region, "us-west-1");
	assert_string_equal(cfg.s3.regionendpoint, "http://myobjects.local");
	assert_string_equal(cfg.s3.bucket, "bucketname");
	assert_string_equal(cfg.s3.rootdirectory, "/s3/object/name/prefix");
	assert_string_equal(cfg.s3.secure, "true");
	assert_string_equal(cfg.s3.v4auth, "true");
	assert_string_equal(cfg.s3.chunksize, "5242880");
	assert_string_equal(cfg.s3.forcepathstyle, "");
	assert_int_equal(cfg.delete_enabled, 0);
	assert_int_equal(cfg.redirect_disable, 0);
	assert_int_equal(cfg.blob_cache, BERTH_BLOB_CACHE_REDIS);
	assert_int_equal(cfg.uploadpurging.enabled, 1);
	assert_int_equal(cfg.uploadpurging.age_ms, 168LL * 3600 * 1000);
	assert_int_equal(cfg.uploadpurging.interval_ms, 24LL * 3600 * 1000);
	assert_int_equal(cfg.uploadpurging.dryrun, 0);
	assert_int_equal(cfg.readonly, 0);

	assert_int_equal(cfg.auth.kind, BERTH_AUTH_TOKEN);
	assert_string_equal(cfg.auth.realm, "token-realm");
	assert_string_equal(cfg.auth.service, "token-service");
	assert_string_equal(cfg.auth.issuer, "registry-token-issuer");
	assert_string_equal(cfg.auth.rootcertbundle, "/root/certs/bundle");
	assert_int_equal(cfg.auth.autoredirect, 1);

	assert_string_equal(cfg.addr, "localhost:5000");
	assert_string_equal(cfg.http.prefix, "/my/nested/registry/");
	assert_string_equal(cfg.http.host, "https://myregistryaddress.org:5000");
	assert_string_equal(cfg.http.secret, "asecretforlocaldevelopment");
	assert_int_equal(cfg.http.relativeurls, 0);
	assert_int_equal(cfg.http.draintimeout_ms, 60000);
	assert_string_equal(cfg.http.tls_certificate, "/path/to/x509/public");
	assert_string_equal(cfg.http.tls_key, "/path/to/x509/private");
	assert_int_equal(cfg.http.tls_clientcas.n, 2);
	assert_string_equal(cfg.http.tls_clientcas.v[1], "/path/to/another/ca.pem");
	assert_int_equal(cfg.http.tls_minimum, BERTH_TLS_1_2);
	assert_string_equal(cfg.http.debug_addr, "localhost:5001");
	assert_int_equal(cfg.http.prometheus_enabled, 1);
	assert_string_equal(cfg.http.prometheus_path, "/metrics");
	assert_int_equal(cfg.http.headers.n, 1);
	assert_int_equal(cfg.http.http2_disabled, 0);

	assert_int_equal(cfg.notifications.includereferences, 1);
	assert_int_equal(cfg.notifications.n_endpoints, 1);
	const struct berth_notify_endpoint *e = &cfg.notifications.endpoints[0];
	assert_string_equal(e->name, "alistener");
	assert_int_equal(e->disabled, 0);
	assert_string_equal(e->url, "https://my.listener.com/event");
	assert_int_equal(e->headers.n, 1);
	assert_string_equal(e->headers.v[0].name, "Authorization");
	assert_string_equal(e->headers.v[0].values.v[0], "Bearer sometoken");
	assert_int_equal(e->timeout_ms, 1000);
	assert_int_equal(e->threshold, 10);
	assert_int_equal(e->backoff_ms, 1000);
	assert_int_equal(e->ignoredmediatypes.n, 1);
	assert_string_equal(e->ignoredmediatypes.v[0], "application/octet-stream");
	assert_int_equal(e->ignore_mediatypes.n, 1);
	assert_int_equal(e->ignore_actions.n, 1);
	assert_string_equal(e->ignore_actions.v[0], "pull");

	assert_string_equal(cfg.redis.addr, "localhost:6379");
	assert_string_equal(cfg.redis.password, "asecret");
	assert_int_equal(cfg.redis.db, 0);
	assert_int_equal(cfg.redis.dialtimeout_ms, 10);
	assert_int_equal(cfg.redis.readtimeout_ms, 10);
	assert_int_equal(cfg.redis.writetimeout_ms, 10);
	assert_int_equal(cfg.redis.pool_maxidle, 16);
	assert_int_equal(cfg.redis.pool_maxactive, 64);
	assert_int_equal(cfg.redis.pool_idletimeout_ms, 300000);

	assert_int_equal(cfg.health_storagedriver.enabled, 1);
	assert_int_equal(cfg.n_health_files, 1);
	assert_string_equal(cfg.health_files[0].file, "/path/to/checked/file");
	assert_int_equal(cfg.health_files[0].interval_ms, 10000);
	assert_int_equal(cfg.n_health_https, 1);
	assert_string_equal(cfg.health_https[0].uri, "http://server.to.check/must/return/200");
	assert_string_equal(cfg.health_https[0].headers.v[0].name, "Authorization");
	assert_int_equal(cfg.health_https[0].statuscode, 200);
	assert_int_equal(cfg.health_https[0].timeout_ms, 3000);
	assert_int_equal(cfg.health_https[0].threshold, 3);
	assert_int_equal(cfg.n_health_tcps, 1);
	assert_string_equal(cfg.health_tcps[0].addr, "redis-server.domain.com:6379");
	assert_int_equal(cfg.health_tcps[0].timeout_ms, 3000);
	assert_string_equal(cfg.proxy.remoteurl, "https://registry-1.docker.io");
	assert_string_equal(cfg.proxy.username, "someuser");
	assert_string_equal(cfg.proxy.password, "somepassword");
	assert_int_equal(cfg.validation.disabled, 0);
	assert_int_equal(cfg.validation.urls_allow.n, 1);
	assert_string_equal(cfg.validation.urls_allow.v[0], "^https?://([^/]+\\.)*example\\.com/");
	assert_int_equal(cfg.validation.urls_deny.n, 1);
	berth_config_release(&cfg);
}

/* The docs' list names every driver at once; Distribution refuses that too. */
static void test_docs_list_verbatim_is_refused(void **state)
{
	struct berth_config cfg;
	char path[1024];

	fixture_path(path, sizeof(path), "distribution-docs-list.yml");
	assert_int_equal(berth_config_load(&cfg, path, errbuf, sizeof(errbuf)), -1);
	assert_non_null(strstr(errbuf, ":29: storage: driver 'azure' is not supported"));
	berth_config_release(&cfg);
}

/* ---- every key of Distribution 3's reference ------------------------------------------------------ */

/* A YAML node in flow style: maps {k: v}, lists [a, b], scalars single-quoted (null as ~). */
static void flow(struct berth_buf *b, yaml_document_t *doc, yaml_node_t *n)
{
	if (n->type == YAML_SCALAR_NODE) {
		const char *t = (const char *)n->data.scalar.value;
		if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (!*t || strcmp(t, "~") == 0)) {
			berth_buf_printf(b, "~");
			return;
		}
		berth_buf_printf(b, "'");
		for (; *t; t++)
			berth_buf_printf(b, *t == '\'' ? "''" : "%c", *t);
		berth_buf_printf(b, "'");
	} else if (n->type == YAML_SEQUENCE_NODE) {
		berth_buf_printf(b, "[");
		for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
			berth_buf_printf(b, it == n->data.sequence.items.start ? "" : ", ");
			flow(b, doc, yaml_document_get_node(doc, *it));
		}
		berth_buf_printf(b, "]");
	} else {
		berth_buf_printf(b, "{");
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			berth_buf_printf(b, p == n->data.mapping.pairs.start ? "" : ", ");
			flow(b, doc, yaml_document_get_node(doc, p->key));
			berth_buf_printf(b, ": ");
			flow(b, doc, yaml_document_get_node(doc, p->value));
		}
		berth_buf_printf(b, "}");
	}
}

/* The table key that decides about `path`: the path itself or its nearest ancestor in the table. */
static const struct cfg_key *deciding_key(const char *path)
{
	char p[512];
	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		const struct cfg_key *k = berth_config__lookup(&berth_config__table, p);
		char *dot = strrchr(p, '.');
		if (k || !dot)
			return k;
		*dot = '\0';
	}
}

/* Where the walk stops: a value berth takes whole (lists, maps of values, refused or obsolete
 * sections) or a key it does not know (which the check below then catches). */
static int is_leaf(const char *path, const yaml_node_t *v)
{
	if (v->type != YAML_MAPPING_NODE || v->data.mapping.pairs.start == v->data.mapping.pairs.top)
		return 1;
	const struct cfg_key *k = berth_config__lookup(&berth_config__table, path);
	if (k)
		return k->type != CT_GROUP && k->type != CT_CHOICE;
	return !berth_config__is_section(&berth_config__table, path);
}

struct every_key {
	size_t keys, honoured, refused;
};

/* Loads a config made of `path: value` alone (plus a storage driver when it names none) and
 * checks that berth either refuses it, naming it or its section, or knows and keeps it. */
static void check_one_key(struct every_key *ek, const char *path, yaml_document_t *doc, yaml_node_t *v)
{
	struct berth_buf text = BERTH_BUF_INIT(1 << 20);
	char comps[512], *save = NULL;
	int depth = 0;
	int storage = strncmp(path, "storage.", 8) == 0;
	snprintf(comps, sizeof(comps), "%s", path);
	berth_buf_printf(&text, "version: 0.1\n");
	if (!storage)
		berth_buf_printf(&text, "storage: {inmemory: ~}\n");
	for (char *c = strtok_r(comps, ".", &save); c; c = strtok_r(NULL, ".", &save), depth++) {
		berth_buf_printf(&text, "%s%s: ", depth ? "{" : "", c);
		if (depth == 0 && storage) {
			/* storage.delete etc. need a driver beside them; storage.<driver>.x is one */
			char second[128];
			snprintf(second, sizeof(second), "storage.%.*s", (int)strcspn(path + 8, "."), path + 8);
			const struct cfg_key *k = berth_config__lookup(&berth_config__table, second);
			if (!k || k->type != CT_CHOICE)
				berth_buf_printf(&text, "{inmemory: ~, ");
			else
				berth_buf_printf(&text, "{");
			depth++;
			c = strtok_r(NULL, ".", &save);
			berth_buf_printf(&text, "%s: ", c);
		}
	}
	flow(&text, doc, v);
	for (int i = 1; i < depth; i++)
		berth_buf_printf(&text, "}");
	berth_buf_printf(&text, "\n");

	struct load_args a = { 0 };
	a.path = write_tmp("key.yml", text.data);
	const char *out = capture_stderr(do_load, &a);
	berth_config_release(&a.cfg);
	if (strstr(out, "unknown key"))
		fail_msg("%s is ignored as unknown:\n%s%s", path, text.data, out);
	const struct cfg_key *k = deciding_key(path);
	if (a.rc != 0) {
		char section[512];
		snprintf(section, sizeof(section), "%s", path);
		int named = 0;
		for (char *dot = section + strlen(section); !named; dot = strrchr(section, '.')) {
			if (dot)
				*dot = '\0';
			char needle[520], item[520];
			snprintf(needle, sizeof(needle), " %s: ", section);
			snprintf(item, sizeof(item), " %s[", section); /* an item of a list, by its index */
			named = strstr(errbuf, needle) != NULL || strstr(errbuf, item) != NULL;
			if (!strchr(section, '.'))
				break;
		}
		if (!named || (!strstr(errbuf, "refused") && !strstr(errbuf, "not supported")))
			fail_msg("%s: the load failed without refusing the key by name: %s\n%s", path, errbuf, text.data);
		ek->refused++;
	} else {
		if (!k)
			fail_msg("%s: loaded, but no key of berth's table takes it\n%s", path, text.data);
		/* a CT_REFUSE key here was given a value asking for nothing (a disabled hook) */
		if (k->type == CT_ANY && !k->why)
			fail_msg("%s: accepted and ignored without a reason\n%s", path, text.data);
		ek->honoured++;
	}
	ek->keys++;
	berth_buf_release(&text);
}

static void walk_keys(struct every_key *ek, const char *prefix, yaml_document_t *doc, yaml_node_t *map)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		char path[512];
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", (const char *)kn->data.scalar.value);
		if (strcmp(path, "version") == 0)
			continue;
		if (is_leaf(path, vn))
			check_one_key(ek, path, doc, vn);
		else
			walk_keys(ek, path, doc, vn);
	}
}

static void test_every_key_of_distribution3_is_honoured_or_refused(void **state)
{
	char path[1024];
	yaml_parser_t parser;
	yaml_document_t doc;
	struct every_key ek = { 0 };

	fixture_path(path, sizeof(path), "distribution3-docs-list.yml");
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_file(&parser, f);
	assert_true(yaml_parser_load(&parser, &doc));
	walk_keys(&ek, "", &doc, yaml_document_get_root_node(&doc));
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	/* the walk saw the whole reference (116 keys when written), both outcomes */
	if (ek.keys < 110 || ek.refused < 10 || ek.honoured < 80)
		fail_msg("walked %zu keys: %zu honoured, %zu refused", ek.keys, ek.honoured, ek.refused);
}

/* Each refusal is one message naming the key and why; values asking for nothing are accepted. */
static void test_refused_keys(void **state)
{
	const char *m;
	m = load_fails(MINIMAL "http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n      hosts: [a.example]\n");
	assert_non_null(strstr(m, "7: http.tls.letsencrypt: refused: berth does not obtain certificates itself: "
				  "get one with certbot"));
	m = load_fails(MINIMAL "http:\n  h2c:\n    enabled: true\n");
	assert_non_null(strstr(m, "7: http.h2c.enabled: refused: berth serves HTTP/1.1 only"));
	m = load_fails(MINIMAL "log:\n  hooks:\n    - type: mail\n      levels: [panic]\n");
	assert_non_null(strstr(m, "6: log.hooks: refused:"));
	m = load_fails(MINIMAL "middleware:\n  registry:\n    - name: x\n");
	assert_non_null(strstr(m, "6: middleware.registry: refused:"));
	m = load_fails(MINIMAL "middleware:\n  repository:\n    - name: x\n");
	assert_non_null(strstr(m, "6: middleware.repository: refused:"));
	struct berth_config cfg;
	setenv("REGISTRY_HTTP_H2C_ENABLED", "true", 1);
	assert_int_equal(berth_config_load(&cfg, write_tmp("config.yml", MINIMAL), errbuf, sizeof(errbuf)), -1);
	berth_config_release(&cfg);
	assert_string_equal(errbuf, "REGISTRY_HTTP_H2C_ENABLED: http.h2c.enabled: refused: berth serves HTTP/1.1 "
				    "only: HTTP/2 without TLS (h2c) is not supported");
	unsetenv("REGISTRY_HTTP_H2C_ENABLED");

	load_ok(&cfg, MINIMAL "http:\n  h2c:\n    enabled: false\n  tls:\n    letsencrypt: {hosts: []}\n"
			      "log:\n  hooks:\n    - {type: mail, disabled: true, levels: [panic]}\n"
			      "middleware:\n  registry: []\n  storage: ~\nproxy:\n  exec: {}\n");
	berth_config_release(&cfg);
}

/* reporting, compatibility and policy (2.x) change nothing clients get: one warning each. */
static void test_obsolete_sections_warn(void **state)
{
	struct load_args a = { 0 };
	char expect[1200];
	a.path = write_tmp("config.yml", MINIMAL "reporting:\n  bugsnag:\n    apikey: x\n  newrelic:\n    name: y\n"
						 "compatibility:\n  schema1:\n    enabled: true\npolicy:\n  repository:\n"
						 "    classes: [a]\n");
	const char *out = capture_stderr(do_load, &a);
	assert_int_equal(a.rc, 0);
	snprintf(expect, sizeof(expect),
		 "%s:5: warning: reporting: obsolete Distribution 2.x section, ignored (it changes nothing clients get)\n"
		 "%s:10: warning: compatibility: obsolete Distribution 2.x section, ignored (it changes nothing clients get)\n"
		 "%s:13: warning: policy: obsolete Distribution 2.x section, ignored (it changes nothing clients get)\n",
		 a.path, a.path, a.path);
	assert_string_equal(out, expect);
	berth_config_release(&a.cfg);
}

/* storage.maintenance.gc (berth-specific): off by default, every 24h with a 1h delay; an
 * interval of 0 or a delay under 1s is refused by name, as is a bad value of any key. */
static void test_maintenance_gc(void **state)
{
	struct berth_config cfg;
	(void)state;
	load_ok(&cfg, MINIMAL);
	assert_int_equal(cfg.gc.enabled, 0);
	assert_int_equal(cfg.gc.interval_ms, 24LL * 3600 * 1000);
	assert_int_equal(cfg.gc.delay_ms, 3600LL * 1000);
	assert_int_equal(cfg.gc.deleteuntagged, 0);
	assert_int_equal(cfg.gc.dryrun, 0);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "  maintenance:\n    gc:\n      enabled: true\n      interval: 10m\n"
			      "      delay: 2h\n      deleteuntagged: true\n      dryrun: yes\n");
	assert_int_equal(cfg.gc.enabled, 1);
	assert_int_equal(cfg.gc.interval_ms, 600LL * 1000);
	assert_int_equal(cfg.gc.delay_ms, 7200LL * 1000);
	assert_int_equal(cfg.gc.deleteuntagged, 1);
	assert_int_equal(cfg.gc.dryrun, 1);
	berth_config_release(&cfg);
	const char *m = load_fails(MINIMAL "  maintenance:\n    gc:\n      delay: 500ms\n");
	assert_non_null(strstr(m, "storage.maintenance.gc.delay: must be at least 1s"));
	m = load_fails(MINIMAL "  maintenance:\n    gc:\n      interval: 0s\n");
	assert_non_null(strstr(m, "storage.maintenance.gc.interval: must be more than 0"));
	m = load_fails(MINIMAL "  maintenance:\n    gc:\n      enabled: often\n");
	assert_non_null(strstr(m, "storage.maintenance.gc.enabled"));
	m = load_fails(MINIMAL "  maintenance:\n    gc:\n      delay: soon\n");
	assert_non_null(strstr(m, "storage.maintenance.gc.delay"));
}

/* ui: berth's own section. Off by default; ui.enabled is a boolean; any other key under ui is a
 * mistake (no Distribution configuration has one), refused by name, from the file or REGISTRY_UI_*. */
static void test_ui_section(void **state)
{
	struct berth_config cfg;
	load_ok(&cfg, MINIMAL);
	assert_int_equal(cfg.ui.enabled, 0);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "ui:\n  enabled: true\n");
	assert_int_equal(cfg.ui.enabled, 1);
	berth_config_release(&cfg);
	const char *m = load_fails(MINIMAL "ui:\n  enabled: true\n  theme: dark\n");
	assert_non_null(strstr(m, "7: ui.theme: refused: unknown key (berth knows only ui.enabled)"));
	m = load_fails(MINIMAL "ui:\n  enabled: sometimes\n");
	assert_non_null(strstr(m, "ui.enabled"));
	setenv("REGISTRY_UI_THEME", "dark", 1);
	assert_int_equal(berth_config_load(&cfg, write_tmp("config.yml", MINIMAL), errbuf, sizeof(errbuf)), -1);
	berth_config_release(&cfg);
	unsetenv("REGISTRY_UI_THEME");
	assert_non_null(strstr(errbuf, "ui.theme: refused: unknown key"));
	setenv("REGISTRY_UI_ENABLED", "true", 1);
	load_ok(&cfg, MINIMAL);
	unsetenv("REGISTRY_UI_ENABLED");
	assert_int_equal(cfg.ui.enabled, 1);
	berth_config_release(&cfg);
}

/* ---- defaults ---------------------------------------------------------------------------------- */

static void test_defaults_when_absent(void **state)
{
	struct berth_config cfg;

	load_ok(&cfg, "version: 0.1\nstorage:\n  filesystem:\n");
	assert_int_equal(cfg.storage, BERTH_STORAGE_FILESYSTEM);
	assert_string_equal(cfg.rootdirectory, "/var/lib/registry"); /* Distribution's, not ./data */
	assert_int_equal(cfg.fs_maxthreads, 100);
	assert_string_equal(cfg.addr, "127.0.0.1:5000");
	assert_int_equal(cfg.log_level, BERTH_LOG_INFO);
	assert_int_equal(cfg.access_log, 1);
	assert_int_equal(cfg.log_formatter, BERTH_LOG_FORMAT_TEXT);
	assert_int_equal(cfg.delete_enabled, 0);
	assert_int_equal(cfg.blob_cache, BERTH_BLOB_CACHE_NONE);
	assert_int_equal(cfg.uploadpurging.enabled, 1);
	assert_int_equal(cfg.uploadpurging.age_ms, 168LL * 3600 * 1000);
	assert_int_equal(cfg.uploadpurging.interval_ms, 24LL * 3600 * 1000);
	assert_int_equal(cfg.uploadpurging.dryrun, 0);
	assert_int_equal(cfg.readonly, 0);
	assert_int_equal(cfg.http.net, BERTH_NET_TCP);
	assert_int_equal(cfg.http.tls_minimum, BERTH_TLS_1_2);
	assert_string_equal(cfg.http.prometheus_path, "/metrics");
	assert_int_equal(cfg.http.headers.n, 0);
	assert_int_equal(cfg.health_storagedriver.interval_ms, 10000);
	assert_int_equal(cfg.auth.kind, BERTH_AUTH_NONE);
	assert_int_equal(cfg.catalog_maxentries, 1000);
	assert_int_equal(cfg.tags_maxtags, 1000);
	assert_int_equal(cfg.manifest_max, 4u << 20);
	assert_int_equal(cfg.notifications.n_endpoints, 0);
	assert_int_equal(cfg.notifications.includereferences, 0); /* Distribution's default */
	assert_string_equal(cfg.notifications.queuedir, "");
	assert_int_equal(cfg.notifications.queuemaxbytes, 64 << 20);
	berth_config_release(&cfg);

	/* Null values (`key:`, `key: ~`) keep the defaults too. */
	load_ok(&cfg, "version: 0.1\nstorage:\n  inmemory:\n  maintenance:\n    uploadpurging:\n"
		      "      age: ~\n      enabled:\nhttp:\n  addr: null\n");
	assert_int_equal(cfg.storage, BERTH_STORAGE_INMEMORY);
	assert_int_equal(cfg.uploadpurging.age_ms, 168LL * 3600 * 1000);
	assert_int_equal(cfg.uploadpurging.enabled, 1);
	assert_string_equal(cfg.addr, "127.0.0.1:5000");
	berth_config_release(&cfg);
}

static void test_value_forms(void **state)
{
	struct berth_config cfg;

	load_ok(&cfg, "version: \"0.1\"\n"
		      "storage: {filesystem: {rootdirectory: '/x y', maxthreads: 0x40},\n"
		      "          delete: {enabled: Yes}, redirect: {disable: ON},\n"
		      "          maintenance: {uploadpurging: {age: 1.5h, interval: 2h45m, dryrun: y},\n"
		      "                        readonly: {enabled: TRUE}},\n"
		      "          cache: {blobdescriptor: InMemory, blobdescriptorsize: 10_000},\n"
		      "          tag: {concurrencylimit: 8}}\n"
		      "log: {level: WARN, formatter: logstash, accesslog: {disabled: off}}\n"
		      "http: {addr: ':5001', net: unix, draintimeout: 300ms, relativeurls: no,\n"
		      "       tls: {minimumtls: tls1.3}, http2: {disabled: true},\n"
		      "       debug: {prometheus: {path: /m}}}\n"
		      "redis: {addrs: [a:1, b:2], pool: {idletimeout: 1500us}}\n"
		      "catalog: {maxentries: 50}\ntags: {maxtags: 7}\n"
		      "proxy: {ttl: 0}\n");
	assert_string_equal(cfg.rootdirectory, "/x y");
	assert_int_equal(cfg.fs_maxthreads, 64);
	assert_int_equal(cfg.delete_enabled, 1);
	assert_int_equal(cfg.redirect_disable, 1);
	assert_int_equal(cfg.uploadpurging.age_ms, 5400000);
	assert_int_equal(cfg.uploadpurging.interval_ms, (2 * 3600 + 45 * 60) * 1000LL);
	assert_int_equal(cfg.uploadpurging.dryrun, 1);
	assert_int_equal(cfg.readonly, 1);
	assert_int_equal(cfg.blob_cache, BERTH_BLOB_CACHE_INMEMORY);
	assert_int_equal(cfg.blob_cache_size, 10000);
	assert_int_equal(cfg.tag_concurrencylimit, 8);
	assert_int_equal(cfg.log_level, BERTH_LOG_WARN);
	assert_int_equal(cfg.log_formatter, BERTH_LOG_FORMAT_JSON);
	assert_int_equal(cfg.access_log, 1);
	assert_string_equal(cfg.addr, ":5001");
	assert_int_equal(cfg.http.net, BERTH_NET_UNIX);
	assert_int_equal(cfg.http.draintimeout_ms, 300);
	assert_int_equal(cfg.http.tls_minimum, BERTH_TLS_1_3);
	assert_int_equal(cfg.http.http2_disabled, 1);
	assert_string_equal(cfg.http.prometheus_path, "/m");
	assert_int_equal(cfg.redis.addrs.n, 2);
	assert_string_equal(cfg.redis.addrs.v[1], "b:2");
	assert_int_equal(cfg.redis.pool_idletimeout_ms, 2); /* 1.5ms rounds up */
	assert_int_equal(cfg.catalog_maxentries, 50);
	assert_int_equal(cfg.tags_maxtags, 7);
	assert_int_equal(cfg.proxy.ttl_ms, 0);
	berth_config_release(&cfg);

	/* Distribution 3: 0 or less is the default for the catalog; a negative maxtags is an error */
	load_ok(&cfg, MINIMAL "catalog: {maxentries: -5}\ntags: {maxtags: 0}\n");
	assert_int_equal(cfg.catalog_maxentries, 1000);
	assert_int_equal(cfg.tags_maxtags, 1000);
	berth_config_release(&cfg);
	assert_string_equal(load_fails(MINIMAL "tags: {maxtags: -1}\n"),
			    "5: tags.maxtags: must be between 0 and 9223372036854775807, got -1");
}

static void test_anchors_and_merge_keys(void **state)
{
	struct berth_config cfg;

	load_ok(&cfg, "version: 0.1\n"
		      "x-common: &common {enabled: true}\n"
		      "storage:\n  inmemory: {}\n  delete: *common\n"
		      "  maintenance:\n    readonly:\n      <<: *common\n    uploadpurging:\n"
		      "      <<: [*common, {dryrun: true, enabled: false}]\n      enabled: false\n");
	assert_int_equal(cfg.delete_enabled, 1);
	assert_int_equal(cfg.readonly, 1);
	assert_int_equal(cfg.uploadpurging.dryrun, 1);
	assert_int_equal(cfg.uploadpurging.enabled, 0);
	berth_config_release(&cfg);
}

/* Merge keys over lists of aliases nest into exponentially many visits (6^11 maps here, hours of
 * work in a 12-line file): the loader refuses the document quickly instead. A fuzzer found it. */
static void test_alias_bomb_is_refused(void **state)
{
	char text[2048];
	size_t n = (size_t)snprintf(text, sizeof(text), "version: 0.1\nx0: &x0 {enabled: true}\n");
	for (int i = 1; i <= 11; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "x%d: &x%d {<<: [*x%d, *x%d, *x%d, *x%d, *x%d, *x%d]}\n",
				      i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	snprintf(text + n, sizeof(text) - n, "storage: {inmemory: {}, maintenance: {readonly: *x11}}\n");
	time_t start = time(NULL);
	assert_non_null(strstr(load_fails(text), "excessive aliasing"));
	assert_true(time(NULL) - start < 5);

	/* Sharing a map through aliases a few times over is fine. */
	struct berth_config cfg;
	load_ok(&cfg, "version: 0.1\nx0: &x0 {enabled: true}\nx1: &x1 {<<: [*x0, *x0, *x0]}\n"
		      "storage: {inmemory: {}, maintenance: {readonly: {<<: [*x1, *x1, *x1]}}}\n");
	assert_int_equal(cfg.readonly, 1);
	berth_config_release(&cfg);
}

static void test_deprecated_keys(void **state)
{
	struct berth_config cfg;

	load_ok(&cfg, MINIMAL "loglevel: error\n");
	assert_int_equal(cfg.log_level, BERTH_LOG_ERROR);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "loglevel: error\nlog: {level: debug}\n");
	assert_int_equal(cfg.log_level, BERTH_LOG_DEBUG);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "validation: {disabled: true}\n");
	assert_int_equal(cfg.validation.disabled, 1);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "validation: {disabled: true, enabled: true}\n");
	assert_int_equal(cfg.validation.disabled, 0);
	berth_config_release(&cfg);
	/* storage: <name> and auth: <name> are Distribution's short forms. */
	load_ok(&cfg, "version: 0.1\nstorage: inmemory\nauth: silly\n");
	assert_int_equal(cfg.storage, BERTH_STORAGE_INMEMORY);
	assert_int_equal(cfg.auth.kind, BERTH_AUTH_SILLY);
	berth_config_release(&cfg);
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_error_malformed_yaml(void **state)
{
	const char *m = load_fails("version: 0.1\nstorage:\n  filesystem: {rootdirectory: /x\nhttp:\n  addr: :5000\n");
	assert_non_null(strstr(m, "invalid YAML"));
	assert_true(strncmp(m, "4:", 2) == 0 || strncmp(m, "5:", 2) == 0 || strncmp(m, "3:", 2) == 0);

	m = load_fails("version: 0.1\nhttp:\n  addr: :5000\n   secret: x: y\n");
	assert_string_equal(m, "4: invalid YAML: mapping values are not allowed in this context");
}

/* http.workers (berth-specific): the storage workers of a remote driver, 0 (the default) to
 * 4096. */
static void test_http_workers(void **state)
{
	struct berth_config cfg;
	load_ok(&cfg, MINIMAL "http:\n  workers: 16\n");
	assert_int_equal(cfg.http.workers, 16);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL);
	assert_int_equal(cfg.http.workers, 0);
	berth_config_release(&cfg);
	assert_non_null(strstr(load_fails(MINIMAL "http:\n  workers: 5000\n"), "http.workers"));
	assert_non_null(strstr(load_fails(MINIMAL "http:\n  workers: -1\n"), "http.workers"));
}

static void test_error_bad_bool(void **state)
{
	const char *m = load_fails("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /x\n"
				   "  delete:\n    enabled: yes please\n");
	assert_string_equal(m, "6: storage.delete.enabled: expected a boolean, got 'yes please'");
}

static void test_error_bad_duration(void **state)
{
	const char *m = load_fails(MINIMAL "http:\n  draintimeout: 10 seconds\n");
	assert_string_equal(m, "6: http.draintimeout: expected a duration such as 10s, 1h30m or 300ms, "
			       "got '10 seconds'");
	m = load_fails(MINIMAL "  maintenance:\n    uploadpurging:\n      age: 5d\n");
	assert_string_equal(m, "7: storage.maintenance.uploadpurging.age: expected a duration such as 10s, "
			       "1h30m or 300ms, got '5d'");
}

static void test_error_unknown_driver(void **state)
{
	const char *m = load_fails("version: 0.1\nstorage:\n  delete: {enabled: true}\n  foo:\n    bar: 1\n");
	assert_string_equal(m, "4: storage: unknown driver 'foo'");
	m = load_fails("version: 0.1\nstorage: foo\n");
	assert_string_equal(m, "2: storage: unknown driver 'foo'");
	m = load_fails("version: 0.1\nstorage:\n  gcs: {bucket: b}\n");
	assert_string_equal(m, "3: storage: driver 'gcs' is not supported by berth");
	m = load_fails(MINIMAL "auth:\n  ldap: {}\n");
	assert_string_equal(m, "6: auth: unknown provider 'ldap'");
}

static void test_error_two_drivers(void **state)
{
	const char *m = load_fails(MINIMAL "  inmemory:\n");
	assert_string_equal(m, "5: storage: more than one driver configured ('filesystem' and 'inmemory')");
	m = load_fails(MINIMAL "auth:\n  silly: {realm: a}\n  htpasswd: {path: /p}\n");
	assert_string_equal(m, "7: auth: more than one provider configured ('silly' and 'htpasswd')");
}

static void test_error_wrong_type(void **state)
{
	const char *m = load_fails(MINIMAL "  delete:\n    enabled: {a: b}\n");
	assert_string_equal(m, "6: storage.delete.enabled: expected a boolean, got a map");
	m = load_fails(MINIMAL "http: [a, b]\n");
	assert_string_equal(m, "5: http: expected a map, got a list");
	m = load_fails(MINIMAL "http:\n  tls:\n    clientcas: /one.pem\n");
	assert_string_equal(m, "7: http.tls.clientcas: expected a list, got a scalar");
	m = load_fails(MINIMAL "http:\n  headers:\n    X-Foo: {a: b}\n");
	assert_string_equal(m, "7: http.headers.X-Foo: expected a list, got a map");
	m = load_fails(MINIMAL "http:\n  secret: [a]\n");
	assert_string_equal(m, "6: http.secret: expected a string, got a list");
	m = load_fails(MINIMAL "notifications:\n  endpoints:\n    - name: a\n      timeout: [1s]\n");
	assert_string_equal(m, "8: notifications.endpoints[0].timeout: expected a duration, got a list");
	m = load_fails(MINIMAL "notifications:\n  queuemaxbytes: 100\n");
	assert_string_equal(m, "6: notifications.queuemaxbytes: must be between 4096 and 9223372036854775807, got 100");
	m = load_fails(MINIMAL "  filesystem:\n    maxthreads: 10\n");
	assert_string_equal(m, "6: storage.filesystem.maxthreads: must be between 25 and 2147483647, got 10");
	m = load_fails(MINIMAL "catalog:\n  maxentries: many\n");
	assert_string_equal(m, "6: catalog.maxentries: expected an integer, got 'many'");
	m = load_fails(MINIMAL "log:\n  level: verbose\n");
	assert_string_equal(m, "6: log.level: expected one of debug, info, warn, error, got 'verbose'");
	m = load_fails("- version: 0.1\n");
	assert_string_equal(m, "1: expected a map at the top level, got a list");
}

static void test_error_version(void **state)
{
	const char *m = load_fails("storage:\n  inmemory:\n");
	assert_string_equal(m, " version: missing (this key is required and must be 0.1)");
	m = load_fails("");
	assert_string_equal(m, " version: missing (the file is empty)");
	m = load_fails("storage: inmemory\nversion: 0.2\n");
	assert_string_equal(m, "2: version: unsupported version '0.2' (expected 0.1)");
	m = load_fails("version: 0.1\nhttp: {addr: ':1'}\n");
	assert_string_equal(m, " storage: no storage driver configured (filesystem, inmemory or s3)");
}

static void test_error_bad_regex(void **state)
{
	const char *m = load_fails(MINIMAL "validation:\n  manifests:\n    urls:\n      allow:\n"
				   "        - ^https://ok/\n        - ^https://(bad/\n");
	const char *want = "10: validation.manifests.urls.allow[1]: invalid regular expression '^https://(bad/': ";
	if (strncmp(m, want, strlen(want)) != 0)
		fail_msg("got: %s", m);
}

static void test_error_missing_file(void **state)
{
	struct berth_config cfg;
	char path[512];

	snprintf(path, sizeof(path), "%s/nope.yml", tmpdir);
	assert_int_equal(berth_config_load(&cfg, path, errbuf, sizeof(errbuf)), -1);
	assert_non_null(strstr(errbuf, path));
	assert_non_null(strstr(errbuf, "No such file or directory"));
	berth_config_release(&cfg);
	assert_int_equal(berth_config_load(&cfg, "", errbuf, sizeof(errbuf)), -1);
	assert_string_equal(errbuf, "cannot open configuration file '': the path is empty");
	berth_config_release(&cfg);
}

/* ---- unknown keys ------------------------------------------------------------------------------ */


static void test_unknown_key_warns(void **state)
{
	struct load_args a = { 0 };
	char expect[600];

	a.path = write_tmp("config.yml", MINIMAL "http:\n  addr: :5000\n  foo: bar\nfrobnicate: 1\n");
	const char *out = capture_stderr(do_load, &a);
	assert_int_equal(a.rc, 0);
	snprintf(expect, sizeof(expect), "%s:7: warning: unknown key http.foo\n%s:8: warning: unknown key frobnicate\n",
		 a.path, a.path);
	assert_string_equal(out, expect);
	assert_string_equal(a.cfg.addr, ":5000");
	berth_config_release(&a.cfg);
}

/* Distribution 3.1's proxy.cachewritetimeout is known (accepted, README says why): no warning. */
static void test_proxy_cachewritetimeout_is_known(void **state)
{
	struct load_args a = { 0 };
	a.path = write_tmp("config.yml", MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  cachewritetimeout: 5m\n");
	const char *out = capture_stderr(do_load, &a);
	assert_int_equal(a.rc, 0);
	assert_string_equal(out, "");
	assert_string_equal(a.cfg.proxy.remoteurl, "http://127.0.0.1:1");
	berth_config_release(&a.cfg);
}

/* proxy.exec (Distribution 3) and each upstream's exec: the helper's command and lifetime, unset
 * (-1), 0 or a duration; refused where it names nothing to run or beside proxy.upstreams. */
static void test_proxy_exec(void **state)
{
	struct berth_config cfg;
	load_ok(&cfg, MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  exec:\n    command: docker-credential-x\n");
	assert_string_equal(cfg.proxy.exec_command, "docker-credential-x");
	assert_int_equal(cfg.proxy.exec_lifetime_ms, -1);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  exec:\n    command: h\n    lifetime: 0\n");
	assert_int_equal(cfg.proxy.exec_lifetime_ms, 0);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: http://127.0.0.1:1\n"
			      "      exec: {command: /bin/h, lifetime: 90s}\n    - prefix: b\n"
			      "      remoteurl: http://127.0.0.1:2\n");
	assert_string_equal(cfg.proxy.upstreams[0].exec_command, "/bin/h");
	assert_int_equal(cfg.proxy.upstreams[0].exec_lifetime_ms, 90000);
	assert_string_equal(cfg.proxy.upstreams[1].exec_command, "");
	assert_int_equal(cfg.proxy.upstreams[1].exec_lifetime_ms, -1);
	berth_config_release(&cfg);
	setenv("REGISTRY_PROXY_EXEC_COMMAND", "from-env", 1);
	setenv("REGISTRY_PROXY_EXEC_LIFETIME", "1h", 1);
	load_ok(&cfg, MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n");
	assert_string_equal(cfg.proxy.exec_command, "from-env");
	assert_int_equal(cfg.proxy.exec_lifetime_ms, 3600000);
	berth_config_release(&cfg);
	unsetenv("REGISTRY_PROXY_EXEC_COMMAND");
	unsetenv("REGISTRY_PROXY_EXEC_LIFETIME");

	const char *m = load_fails(MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  exec:\n    lifetime: 1h\n");
	assert_non_null(strstr(m, "proxy.exec.command: required with proxy.exec.lifetime"));
	m = load_fails(MINIMAL "proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: http://127.0.0.1:1\n"
			       "      exec: {lifetime: 1h}\n");
	assert_non_null(strstr(m, "proxy.upstreams[0].exec.command: required with proxy.upstreams[0].exec.lifetime"));
	m = load_fails(MINIMAL "proxy:\n  exec:\n    command: h\n  upstreams:\n    - prefix: a\n"
			       "      remoteurl: http://127.0.0.1:1\n");
	assert_non_null(strstr(m, "proxy.upstreams: cannot be combined with proxy.remoteurl, proxy.username, "
				  "proxy.password or proxy.exec"));
}

/* proxy.prefetch (berth): on by default; an upstream's own prefetch, when set, wins over it (-1:
 * unset); a value that is not a boolean is refused by name, wherever it is. */
static void test_proxy_prefetch(void **state)
{
	struct berth_config cfg;
	load_ok(&cfg, MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n");
	assert_int_equal(cfg.proxy.prefetch, 1);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  prefetch: false\n");
	assert_int_equal(cfg.proxy.prefetch, 0);
	berth_config_release(&cfg);
	load_ok(&cfg, MINIMAL "proxy:\n  prefetch: false\n  upstreams:\n    - prefix: a\n"
			      "      remoteurl: http://127.0.0.1:1\n      prefetch: true\n    - prefix: b\n"
			      "      remoteurl: http://127.0.0.1:2\n");
	assert_int_equal(cfg.proxy.prefetch, 0);
	assert_int_equal(cfg.proxy.upstreams[0].prefetch, 1);
	assert_int_equal(cfg.proxy.upstreams[1].prefetch, -1);
	berth_config_release(&cfg);
	setenv("REGISTRY_PROXY_PREFETCH", "false", 1);
	load_ok(&cfg, MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n");
	assert_int_equal(cfg.proxy.prefetch, 0);
	berth_config_release(&cfg);
	unsetenv("REGISTRY_PROXY_PREFETCH");

	const char *m = load_fails(MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  prefetch: sometimes\n");
	assert_non_null(strstr(m, "proxy.prefetch: expected a boolean, got 'sometimes'"));
	m = load_fails(MINIMAL "proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: http://127.0.0.1:1\n"
			       "      prefetch: 2\n");
	assert_non_null(strstr(m, "proxy.upstreams[0].prefetch: expected a boolean, got '2'"));
}

/* exec beside username and password: Distribution ignores the two; berth too, saying so. */
static void test_proxy_exec_with_username_warns(void **state)
{
	struct load_args a = { 0 };
	a.path = write_tmp("config.yml", MINIMAL "proxy:\n  remoteurl: http://127.0.0.1:1\n  username: u\n"
						 "  password: p\n  exec:\n    command: h\n");
	const char *out = capture_stderr(do_load, &a);
	assert_int_equal(a.rc, 0);
	assert_non_null(strstr(out, "warning: proxy.username and proxy.password are ignored: proxy.exec.command "
				    "gives the credentials (as Distribution does)"));
	berth_config_release(&a.cfg);
}

/* Keys shared through aliases can repeat a warning many times: the first 100 are printed. */
static void test_warnings_are_capped(void **state)
{
	struct load_args a = { 0 };
	char text[4096], last[600];
	size_t n = (size_t)snprintf(text, sizeof(text), MINIMAL "x: &x {a: 1, b: 2, c: 3, d: 4, e: 5}\nhttp: {<<: [*x");
	for (int i = 1; i < 30; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, ", *x");
	snprintf(text + n, sizeof(text) - n, "]}\n");
	a.path = write_tmp("config.yml", text);
	const char *out = capture_stderr(do_load, &a);
	assert_int_equal(a.rc, 0);
	size_t lines = 0;
	for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 101);
	snprintf(last, sizeof(last), "%s: warning: more warnings not shown\n", a.path);
	assert_true(strlen(out) > strlen(last));
	assert_string_equal(out + strlen(out) - strlen(last), last);
	berth_config_release(&a.cfg);
}

/* ---- environment --------------------------------------------------------------------------------- */

static void test_env_overrides_file(void **state)
{
	struct berth_config cfg;

	setenv("REGISTRY_HTTP_ADDR", "0.0.0.0:6000", 1);
	setenv("REGISTRY_HTTP_SECRET", "s3cr3t # not a comment", 1);
	setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/from/env", 1);
	setenv("REGISTRY_STORAGE_DELETE_ENABLED", "false", 1);
	setenv("REGISTRY_LOG_LEVEL", "error", 1);
	setenv("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem", 1);
	setenv("REGISTRY_AUTH_HTPASSWD_PATH", "/etc/htpasswd", 1);
	setenv("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true", 1);
	setenv("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "2h", 1);
	load_ok(&cfg, MINIMAL "  delete:\n    enabled: true\nhttp:\n  addr: :5000\nlog:\n  level: debug\n");
	assert_string_equal(cfg.addr, "0.0.0.0:6000");
	assert_string_equal(cfg.http.secret, "s3cr3t # not a comment");
	assert_string_equal(cfg.rootdirectory, "/from/env");
	assert_int_equal(cfg.delete_enabled, 0);
	assert_int_equal(cfg.log_level, BERTH_LOG_ERROR);
	assert_string_equal(cfg.http.tls_certificate, "/c.pem");
	assert_int_equal(cfg.auth.kind, BERTH_AUTH_HTPASSWD);
	assert_string_equal(cfg.auth.path, "/etc/htpasswd");
	assert_int_equal(cfg.readonly, 1);
	assert_int_equal(cfg.uploadpurging.age_ms, 2 * 3600 * 1000);
	berth_config_release(&cfg);
}

static void test_env_type_checked(void **state)
{
	struct berth_config cfg;
	const char *path = write_tmp("config.yml", MINIMAL);

	setenv("REGISTRY_STORAGE_DELETE_ENABLED", "maybe", 1);
	assert_int_equal(berth_config_load(&cfg, path, errbuf, sizeof(errbuf)), -1);
	assert_string_equal(errbuf, "REGISTRY_STORAGE_DELETE_ENABLED: storage.delete.enabled: expected a "
				    "boolean, got 'maybe'");
	berth_config_release(&cfg);
	unsetenv("REGISTRY_STORAGE_DELETE_ENABLED");

	setenv("REGISTRY_HTTP_DRAINTIMEOUT", "soon", 1);
	assert_int_equal(berth_config_load(&cfg, path, errbuf, sizeof(errbuf)), -1);
	assert_non_null(strstr(errbuf, "REGISTRY_HTTP_DRAINTIMEOUT: http.draintimeout: expected a duration"));
	berth_config_release(&cfg);
	unsetenv("REGISTRY_HTTP_DRAINTIMEOUT");

	setenv("REGISTRY_VALIDATION_MANIFESTS_URLS_DENY", "['(']", 1);
	assert_int_equal(berth_config_load(&cfg, path, errbuf, sizeof(errbuf)), -1);
	assert_non_null(strstr(errbuf, "REGISTRY_VALIDATION_MANIFESTS_URLS_DENY: "
				       "validation.manifests.urls.deny[0]: invalid regular expression"));
	berth_config_release(&cfg);
	unsetenv("REGISTRY_VALIDATION_MANIFESTS_URLS_DENY");

	setenv("REGISTRY_HTTP_HEADERS", "[a]", 1);
	assert_int_equal(berth_config_load(&cfg, path, errbuf, sizeof(errbuf)), -1);
	assert_string_equal(errbuf, "REGISTRY_HTTP_HEADERS: http.headers: expected a map, got a list");
	berth_config_release(&cfg);
}

static void test_env_switches_driver(void **state)
{
	struct berth_config cfg;

	setenv("REGISTRY_STORAGE", "inmemory", 1);
	load_ok(&cfg, MINIMAL "  delete: {enabled: true}\n");
	assert_int_equal(cfg.storage, BERTH_STORAGE_INMEMORY);
	assert_int_equal(cfg.delete_enabled, 1);
	berth_config_release(&cfg);
	unsetenv("REGISTRY_STORAGE");

	setenv("REGISTRY_STORAGE_INMEMORY", "", 1);
	load_ok(&cfg, MINIMAL);
	assert_int_equal(cfg.storage, BERTH_STORAGE_INMEMORY);
	berth_config_release(&cfg);
	unsetenv("REGISTRY_STORAGE_INMEMORY");

	/* Naming the driver's own key switches too, and starts from that driver's defaults. */
	setenv("REGISTRY_STORAGE_S3_BUCKET", "bkt", 1);
	setenv("REGISTRY_STORAGE_S3_REGION", "eu-west-1", 1);
	load_ok(&cfg, MINIMAL);
	assert_int_equal(cfg.storage, BERTH_STORAGE_S3);
	assert_string_equal(cfg.s3.bucket, "bkt");
	assert_string_equal(cfg.s3.region, "eu-west-1");
	berth_config_release(&cfg);

	/* ... but two drivers from the environment is an error. */
	setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/x", 1);
	assert_int_equal(berth_config_load(&cfg, write_tmp("c.yml", MINIMAL), errbuf, sizeof(errbuf)), -1);
	assert_string_equal(errbuf, "REGISTRY_STORAGE_S3_BUCKET: storage: more than one driver configured "
				    "('filesystem' and 's3')");
	berth_config_release(&cfg);
	clear_registry_env();

	/* Same driver as the file: the file's options stay. REGISTRY_STORAGE=<name> resets them. */
	setenv("REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS", "50", 1);
	load_ok(&cfg, MINIMAL);
	assert_string_equal(cfg.rootdirectory, "/srv/reg");
	assert_int_equal(cfg.fs_maxthreads, 50);
	berth_config_release(&cfg);
	setenv("REGISTRY_STORAGE", "filesystem", 1);
	load_ok(&cfg, MINIMAL);
	assert_string_equal(cfg.rootdirectory, "/var/lib/registry");
	assert_int_equal(cfg.fs_maxthreads, 50);
	berth_config_release(&cfg);
	clear_registry_env();

	/* A file without storage is fine when the environment names the driver. */
	setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/env/root", 1);
	load_ok(&cfg, "version: 0.1\n");
	assert_int_equal(cfg.storage, BERTH_STORAGE_FILESYSTEM);
	assert_string_equal(cfg.rootdirectory, "/env/root");
	berth_config_release(&cfg);
	clear_registry_env();

	setenv("REGISTRY_STORAGE_FOO_BAR", "1", 1);
	assert_int_equal(berth_config_load(&cfg, write_tmp("c.yml", MINIMAL), errbuf, sizeof(errbuf)), -1);
	assert_string_equal(errbuf, "REGISTRY_STORAGE_FOO_BAR: storage: unknown driver 'foo'");
	berth_config_release(&cfg);
}

static void test_env_collections(void **state)
{
	struct berth_config cfg;

	setenv("REGISTRY_HTTP_TLS_CLIENTCAS", "[/a.pem, /b.pem]", 1);
	setenv("REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_0", "^https://a/", 1);
	setenv("REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_1", "^https://b/", 1);
	setenv("REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS", "[DENY]", 1);
	setenv("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[nosniff, other]", 1);
	setenv("REGISTRY_LOG_FIELDS_SERVICE", "berth", 1);
	setenv("REGISTRY_LOG_FIELDS_REGION", "eu", 1);
	setenv("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL", "http://override/", 1);
	setenv("REGISTRY_NOTIFICATIONS_ENDPOINTS_1", "{name: two, url: 'http://two/', timeout: 5s}", 1);
	setenv("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_HEADERS_AUTHORIZATION", "[Bearer x]", 1);
	setenv("REGISTRY_STORAGE_DELETE", "{enabled: true}", 1);
	load_ok(&cfg, MINIMAL "log:\n  fields: {service: registry}\n"
			      "http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
			      "notifications:\n  endpoints:\n    - name: one\n      url: http://one/\n");
	assert_int_equal(cfg.http.tls_clientcas.n, 2);
	assert_string_equal(cfg.http.tls_clientcas.v[1], "/b.pem");
	assert_int_equal(cfg.validation.urls_allow.n, 2);
	assert_string_equal(cfg.validation.urls_allow.v[1], "^https://b/");
	assert_int_equal(cfg.http.headers.n, 2);
	assert_string_equal(cfg.http.headers.v[0].name, "X-Content-Type-Options");
	assert_int_equal(cfg.http.headers.v[0].values.n, 2);
	assert_string_equal(cfg.http.headers.v[1].name, "x-frame-options");
	assert_string_equal(cfg.http.headers.v[1].values.v[0], "DENY");
	assert_int_equal(cfg.log_fields.n, 2);
	assert_string_equal(cfg.log_fields.v[0].value, "berth");
	assert_string_equal(cfg.log_fields.v[1].key, "region");
	assert_int_equal(cfg.notifications.n_endpoints, 2);
	assert_string_equal(cfg.notifications.endpoints[0].name, "one");
	assert_string_equal(cfg.notifications.endpoints[0].url, "http://override/");
	assert_string_equal(cfg.notifications.endpoints[1].name, "two");
	assert_int_equal(cfg.notifications.endpoints[1].timeout_ms, 5000);
	assert_int_equal(cfg.notifications.endpoints[1].threshold, 10);
	assert_string_equal(cfg.notifications.endpoints[1].headers.v[0].values.v[0], "Bearer x");
	assert_int_equal(cfg.delete_enabled, 1);
	berth_config_release(&cfg);
	clear_registry_env();

	setenv("REGISTRY_HTTP_TLS_CLIENTCAS_3", "/z.pem", 1);
	assert_int_equal(berth_config_load(&cfg, write_tmp("c.yml", MINIMAL), errbuf, sizeof(errbuf)), -1);
	assert_string_equal(errbuf, "REGISTRY_HTTP_TLS_CLIENTCAS_3: http.tls.clientcas[3]: index out of "
				    "range (the list has 0 items)");
	berth_config_release(&cfg);
}

static void do_apply_env(void *p)
{
	struct load_args *a = p;
	a->rc = berth_config_apply_env(&a->cfg, errbuf, sizeof(errbuf));
}

static void test_env_alone(void **state)
{
	struct load_args a;

	berth_config_defaults(&a.cfg);
	setenv("REGISTRY_HTTP_ADDR", ":7000", 1);
	setenv("REGISTRY_LOGLEVEL", "debug", 1);
	setenv("REGISTRY_PORT", "tcp://10.0.0.1:5000", 1); /* Kubernetes service links: ignored */
	setenv("REGISTRY_HTTP_SECRET", "", 1);
	setenv("REGISTRY_STORAGE_DELETE_ENABLED", "", 1); /* empty leaves non-strings alone */
	const char *out = capture_stderr(do_apply_env, &a);
	assert_int_equal(a.rc, 0);
	assert_string_equal(out, "REGISTRY_PORT: warning: unrecognized environment variable, ignored\n");
	assert_string_equal(a.cfg.addr, ":7000");
	assert_int_equal(a.cfg.log_level, BERTH_LOG_DEBUG);
	assert_int_equal(a.cfg.storage, BERTH_STORAGE_FILESYSTEM);
	assert_string_equal(a.cfg.rootdirectory, "./data");
	assert_int_equal(a.cfg.delete_enabled, 0);
	berth_config_release(&a.cfg);
}

/* ---- value parsers ------------------------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *in;
		int64_t ms;
	} ok[] = {
		{ "0", 0 }, { "300ms", 300 }, { "1.5h", 5400000 }, { "2h45m", 9900000 }, { "10s", 10000 },
		{ "168h", 604800000 }, { "1h1m1s1ms", 3661001 }, { ".5s", 500 }, { "1.s", 1000 },
		{ "+5s", 5000 }, { "1000000", 1 }, { "1500000", 2 }, { "1ns", 1 }, { "2us", 1 },
		{ "2\xc2\xb5s", 1 }, { " 3m ", 180000 },
	};
	static const char *const bad[] = { "", "10", "s", "1x", "1.5", "5d", "-1s", "1h-1m", ".s", "3 m",
					    "99999999999999999999h", "3000000h" };
	int64_t ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (berth_config__parse_duration(ok[i].in, &ms) != 0)
			fail_msg("'%s' should parse", ok[i].in);
		if (ms != ok[i].ms)
			fail_msg("'%s' gave %lld ms, expected %lld", ok[i].in, (long long)ms, (long long)ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(bad[i], "10") == 0) /* bare integers are nanoseconds, like yaml.v2 */
			continue;
		if (berth_config__parse_duration(bad[i], &ms) == 0)
			fail_msg("'%s' should not parse", bad[i]);
	}
}

static void test_parse_bool_int(void **state)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "YES", "on", "On", "y", "Y" };
	static const char *const no[] = { "false", "False", "no", "NO", "off", "OFF", "n", "N" };
	int b;
	int64_t n;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		assert_int_equal(berth_config__parse_bool(yes[i], &b), 0);
		assert_int_equal(b, 1);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		assert_int_equal(berth_config__parse_bool(no[i], &b), 0);
		assert_int_equal(b, 0);
	}
	assert_int_equal(berth_config__parse_bool("1", &b), -1);
	assert_int_equal(berth_config__parse_bool("yes please", &b), -1);
	assert_int_equal(berth_config__parse_bool("", &b), -1);

	assert_int_equal(berth_config__parse_int("5242880", &n), 0);
	assert_int_equal(n, 5242880);
	assert_int_equal(berth_config__parse_int("-12", &n), 0);
	assert_int_equal(n, -12);
	assert_int_equal(berth_config__parse_int("0x1F", &n), 0);
	assert_int_equal(n, 31);
	assert_int_equal(berth_config__parse_int("0o17", &n), 0);
	assert_int_equal(n, 15);
	assert_int_equal(berth_config__parse_int("1_000", &n), 0);
	assert_int_equal(n, 1000);
	assert_int_equal(berth_config__parse_int("9223372036854775807", &n), 0);
	assert_int_equal(n, INT64_MAX);
	assert_int_equal(berth_config__parse_int("9223372036854775808", &n), -1);
	assert_int_equal(berth_config__parse_int("1.5", &n), -1);
	assert_int_equal(berth_config__parse_int("12abc", &n), -1);
	assert_int_equal(berth_config__parse_int("", &n), -1);
	assert_int_equal(berth_config__parse_int("-", &n), -1);
	assert_int_equal(berth_config__parse_int("089", &n), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_debian_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_distribution_full_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docs_list_verbatim_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key_of_distribution3_is_honoured_or_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_obsolete_sections_warn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_maintenance_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ui_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults_when_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anchors_and_merge_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_bomb_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warnings_are_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deprecated_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_malformed_yaml, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_bad_bool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_bad_duration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_unknown_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_two_drivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_bad_regex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_warns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_cachewritetimeout_is_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_exec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_prefetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_exec_with_username_warns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_type_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_switches_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_collections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_alone, setup, teardown),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_bool_int),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "registry/registry_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/metrics.h"
#include "core/util.h"
#include "registry/cache_redis.h"
#include "registry/link.h"
#include "registry/paths.h"
#include "registry/reference.h"
#include "storage/storage.h"

/* Compiles n patterns; BERTH_EINVALID (and nothing allocated) if one does not compile. */
static int compile_patterns(regex_t **out, const char *const *patterns, size_t n)
{
	regex_t *re = berth_calloc(n, sizeof(*re));
	for (size_t i = 0; i < n; i++) {
		if (berth_regex_too_complex(patterns[i]) ||
		    regcomp(&re[i], patterns[i], REG_EXTENDED | REG_NOSUB) != 0) {
			while (i-- > 0)
				regfree(&re[i]);
			free(re);
			return BERTH_EINVALID;
		}
	}
	*out = re;
	return 0;
}

static void free_patterns(regex_t *re, size_t n)
{
	for (size_t i = 0; i < n; i++)
		regfree(&re[i]);
	free(re);
}

/*
 * Tests only (README, Several instances): BERTH_TEST_LOOK_INTERVAL_MS sets how often the
 * listings look for writers that bump no generation (default 2,000 ms), so that a test can
 * make a look happen soon, or never, rather than wait on the clock.
 */
static void apply_test_look_interval(struct berth_registry *r)
{
	const char *v = getenv("BERTH_TEST_LOOK_INTERVAL_MS");
	char *end;
	if (!v || !*v)
		return;
	unsigned long long ms = strtoull(v, &end, 10);
	if (*end != '\0' || ms > UINT64_MAX / 1000000u)
		return;
	berth_catalog_set_foreign_interval(r, ms * 1000000u);
	berth_tags_set_foreign_interval(r, ms * 1000000u);
}

int berth_registry_new(struct berth_registry **out, const struct berth_registry_config *cfg)
{
	regex_t *allow = NULL, *deny = NULL;
	if (compile_patterns(&allow, cfg->urls_allow, cfg->n_urls_allow) < 0) {
		berth_redis_cache_free(cfg->redis);
		return BERTH_EINVALID;
	}
	if (compile_patterns(&deny, cfg->urls_deny, cfg->n_urls_deny) < 0) {
		free_patterns(allow, cfg->n_urls_allow);
		berth_redis_cache_free(cfg->redis);
		return BERTH_EINVALID;
	}
	struct berth_policy *policy = NULL;
	size_t bad_rule;
	struct berth_quotas *quotas = NULL;
	struct berth_quota_bytes *quota_bytes = NULL;
	struct berth_retention *retention = NULL;
	if (berth_policy_new(&policy, &bad_rule, cfg->immutable_tags, cfg->n_immutable_tags) < 0 ||
	    berth_quotas_new(&quotas, cfg->quotas, cfg->n_quotas) < 0 ||
	    berth_quota_bytes_new(&quota_bytes, cfg->quotas, cfg->n_quotas) < 0 ||
	    berth_retention_new(&retention, cfg->retention_rules, cfg->n_retention_rules,
				cfg->retention_dry_run) < 0) {
		berth_policy_free(policy);
		berth_quotas_free(quotas);
		berth_quota_bytes_free(quota_bytes);
		free_patterns(allow, cfg->n_urls_allow);
		free_patterns(deny, cfg->n_urls_deny);
		berth_redis_cache_free(cfg->redis);
		return BERTH_EINVALID;
	}
	struct berth_registry *r = berth_calloc(1, sizeof(*r));
	r->policy = policy;
	r->quotas = quotas;
	r->quota_bytes = quota_bytes;
	r->retention = retention;
	r->urls_allow = allow;
	r->n_urls_allow = cfg->n_urls_allow;
	r->urls_deny = deny;
	r->n_urls_deny = cfg->n_urls_deny;
	r->driver = cfg->driver;
	r->delete_enabled = cfg->delete_enabled;
	r->readonly = cfg->readonly;
	r->redirect = cfg->redirect;
	r->manifest_max = cfg->manifest_max ? cfg->manifest_max : 4u << 20;
	r->catalog_max = cfg->catalog_max ? cfg->catalog_max : 1000;
	r->tags_max = cfg->tags_max ? cfg->tags_max : 1000;
	r->index_children = cfg->index_children;
	r->n_platforms = cfg->n_platforms;
	r->platform_os = berth_calloc(cfg->n_platforms ? cfg->n_platforms : 1, sizeof(char *));
	r->platform_arch = berth_calloc(cfg->n_platforms ? cfg->n_platforms : 1, sizeof(char *));
	for (size_t i = 0; i < cfg->n_platforms; i++) {
		r->platform_os[i] = berth_strdup(cfg->platform_os[i]);
		r->platform_arch[i] = berth_strdup(cfg->platform_arch[i]);
	}
	/* Most entries are bare keys; the values are tag links' digests (berth_link_read_versioned),
	 * which a byte budget of 0 would refuse. */
	if (cfg->descriptor_cache_size)
		r->descriptors = berth_cache_new(cfg->descriptor_cache_size,
						 cfg->descriptor_cache_size * BERTH_DIGEST_STR_MAX + (256u << 10));
	r->manifests = berth_cache_new(4096, 64u << 20);
	berth_reg_redis_attach(r, cfg->redis);
	r->tag_lists = berth_taglist_cache_new();
	pthread_mutex_init(&r->claims_lock, NULL);
	berth_upload_resumes_init(r);
	r->catalog = berth_catalog_cache_new();
	r->looks = berth_looks_new();
	apply_test_look_interval(r);
	berth_repo_locks_init(r);
	r->gc_refresh = cfg->gc_online;
	berth_gc_lock_init(r);
	*out = r;
	return 0;
}

void berth_registry_free(struct berth_registry *r)
{
	if (!r)
		return;
	berth_looks_free(r->looks); /* first: the looks use the caches */
	while (r->claims) {
		struct upload_claim *c = r->claims;
		r->claims = c->next;
		free(c);
	}
	berth_upload_resumes_free(r);
	pthread_mutex_destroy(&r->claims_lock);
	berth_repo_locks_destroy(r);
	berth_gc_lock_destroy(r);
	berth_catalog_cache_free(r->catalog);
	berth_cache_free(r->descriptors);
	berth_reg_redis_detach(r);
	free_patterns(r->urls_allow, r->n_urls_allow);
	free_patterns(r->urls_deny, r->n_urls_deny);
	berth_policy_free(r->policy);
	berth_quotas_free(r->quotas);
	berth_quota_bytes_free(r->quota_bytes);
	berth_retention_free(r->retention);
	for (size_t i = 0; i < r->n_platforms; i++) {
		free(r->platform_os[i]);
		free(r->platform_arch[i]);
	}
	free(r->platform_os);
	free(r->platform_arch);
	berth_cache_free(r->manifests);
	berth_taglist_cache_free(r->tag_lists);
	berth_storage_free(r->driver);
	free(r);
}

int berth_registry_delete_enabled(const struct berth_registry *r)
{
	return r->delete_enabled;
}

int berth_registry_readonly(const struct berth_registry *r)
{
	return r->readonly;
}

size_t berth_registry_manifest_max(const struct berth_registry *r)
{
	return r->manifest_max;
}

size_t berth_registry_catalog_max(const struct berth_registry *r)
{
	return r->catalog_max;
}

size_t berth_registry_tags_max(const struct berth_registry *r)
{
	return r->tags_max;
}

struct berth_storage_driver *berth_registry_driver(struct berth_registry *r)
{
	return r->driver;
}

static _Atomic uint64_t cache_hits, cache_misses;

static void render_cache_metrics(struct berth_buf *out)
{
	berth_buf_printf(out, "# HELP berth_cache_requests_total Blob descriptor and manifest cache lookups.\n"
			      "# TYPE berth_cache_requests_total counter\n"
			      "berth_cache_requests_total{result=\"hit\"} %llu\n"
			      "berth_cache_requests_total{result=\"miss\"} %llu\n",
			 (unsigned long long)atomic_load(&cache_hits),
			 (unsigned long long)atomic_load(&cache_misses));
}

void berth_registry_cache_metrics_register(void)
{
	berth_metrics_register(render_cache_metrics);
}

static int counted(int hit)
{
	atomic_fetch_add_explicit(hit ? &cache_hits : &cache_misses, 1, memory_order_relaxed);
	return hit;
}

int berth_reg_cache_get(struct berth_cache *c, const char *key, uint64_t *num, char **data, size_t *len)
{
	return c ? counted(berth_cache_get(num, data, len, c, key)) : 0;
}

int berth_reg_cache_get_into(struct berth_cache *c, const char *key, uint64_t *num, char *buf, size_t cap,
			     size_t *len)
{
	return c ? counted(berth_cache_get_into(c, key, num, buf, cap, len)) : 0;
}

void berth_reg_cache_put(struct berth_cache *c, const char *key, uint64_t num, const void *data, size_t len)
{
	if (c)
		berth_cache_put(c, key, num, data, len);
}

void berth_reg_cache_remove(struct berth_cache *c, const char *key)
{
	if (c)
		berth_cache_remove(c, key);
}

void berth_reg_cache_key(char *out, size_t cap, char kind, const char *name, const char *digest)
{
	snprintf(out, cap, "%c:%s@%s", kind, name ? name : "", digest);
}

int berth_registry_url_allowed(const struct berth_registry *r, const char *url)
{
	int allowed = r->n_urls_allow == 0;
	for (size_t i = 0; i < r->n_urls_allow && !allowed; i++)
		allowed = regexec(&r->urls_allow[i], url, 0, NULL, 0) == 0;
	for (size_t i = 0; i < r->n_urls_deny && allowed; i++)
		allowed = regexec(&r->urls_deny[i], url, 0, NULL, 0) != 0;
	return allowed;
}

int berth_link_read(struct berth_registry *r, const char *path, char out[BERTH_DIGEST_STR_MAX])
{
	char *content = NULL;
	size_t len = 0;
	int rc = berth_storage_get_content(&content, &len, r->driver, path, BERTH_LINK_MAX);
	if (rc == BERTH_ETOOLARGE)
		return BERTH_EINVALID;
	if (rc < 0)
		return rc;
	rc = berth_link_parse(out, content, len);
	free(content);
	return rc;
}

int berth_link_read_versioned(struct berth_registry *r, const char *path,
			      char out[BERTH_DIGEST_STR_MAX])
{
	char key[BERTH_PATH_MAX + 2];
	struct berth_stat st;
	uint64_t version;
	size_t len = 0;

	if (r->descriptors == NULL) /* nothing to reuse: the stat would only add a call */
		return berth_link_read(r, path, out);
	int rc = berth_storage_stat(&st, r->driver, path);
	if (rc < 0)
		return rc;
	if (st.is_dir)
		return BERTH_ENOTFOUND;
	snprintf(key, sizeof(key), "v:%s", path);
	if (st.version &&
	    berth_reg_cache_get_into(r->descriptors, key, &version, out, BERTH_DIGEST_STR_MAX, &len) &&
	    version == st.version)
		return 0;
	/* Read after the stat: if the link is replaced in between, what is cached under the old
	 * version is never used, as the next stat sees the new one. */
	if ((rc = berth_link_read(r, path, out)) == 0 && st.version)
		berth_reg_cache_put(r->descriptors, key, st.version, out, strlen(out));
	return rc;
}

int berth_link_check(struct berth_registry *r, const char *path, char kind, const char *name,
		     const char *digest)
{
	char key[BERTH_PATH_MAX];
	char linked[BERTH_DIGEST_STR_MAX];
	struct berth_stat st;
	int rc;

	berth_reg_cache_key(key, sizeof(key), kind, name, digest);
	if (berth_reg_cache_get(r->descriptors, key, NULL, NULL, NULL)) {
		rc = berth_storage_stat(&st, r->driver, path);
		if (rc == 0 && !st.is_dir)
			return 0;
		berth_reg_cache_remove(r->descriptors, key);
		return rc < 0 && rc != BERTH_ENOTFOUND ? rc : BERTH_ENOTFOUND;
	}
	rc = berth_link_read(r, path, linked);
	if (rc == BERTH_EINVALID)
		return BERTH_ENOTFOUND;
	if (rc < 0)
		return rc;
	if (strcmp(linked, digest) != 0)
		return BERTH_ENOTFOUND;
	berth_reg_cache_put(r->descriptors, key, 0, NULL, 0);
	return 0;
}

int berth_link_write_as(struct berth_registry *r, const char *path, const char *digest,
			enum berth_sync sync)
{
	int rc = berth_storage_put_content_as(r->driver, path, digest, strlen(digest), sync);
	if (rc == 0) /* after the write: an instance that sees the bump lists the repository */
		berth_catalog_link_written(r, path);
	return rc;
}

int berth_link_write(struct berth_registry *r, const char *path, const char *digest)
{
	return berth_link_write_as(r, path, digest, BERTH_SYNC_ALL);
}

int berth_blob_data_stat(uint64_t *size, struct berth_registry *r, const char *digest)
{
	char path[BERTH_PATH_MAX];
	char key[BERTH_DIGEST_STR_MAX + 8];
	struct berth_stat st;
	uint64_t cached;

	berth_reg_cache_key(key, sizeof(key), 'b', NULL, digest);
	if (berth_reg_cache_get(r->descriptors, key, &cached, NULL, NULL)) {
		if (size)
			*size = cached;
		return 0;
	}
	if (berth_reg_redis_stat(r, digest, &cached)) {
		berth_reg_cache_put(r->descriptors, key, cached, NULL, 0);
		if (size)
			*size = cached;
		return 0;
	}
	int rc = berth_path_blob_data(path, digest);
	if (rc < 0)
		return rc;
	rc = berth_storage_stat(&st, r->driver, path);
	if (rc < 0)
		return rc;
	if (st.is_dir)
		return BERTH_ENOTFOUND;
	berth_reg_cache_put(r->descriptors, key, st.size, NULL, 0);
	berth_reg_redis_set(r, digest, st.size);
	if (size)
		*size = st.size;
	return 0;
}


int berth_blob_data_present(uint64_t *size, struct berth_registry *r, const char *digest)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc = berth_path_blob_data(path, digest);
	if (rc == 0)
		rc = berth_storage_stat(&st, r->driver, path);
	if (rc == 0 && st.is_dir)
		rc = BERTH_ENOTFOUND;
	if (rc == 0 && size)
		*size = st.size;
	return rc;
}

/* Parts of `berth serve`'s set-up that turn configuration keys into running pieces. */
#include "cli/serve_setup.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "http/health.h"
#include "http/server.h"
#include "registry/registry.h"
#include "storage/storage.h"

/* SIGHUP: the TLS certificate and key are read again (certbot's deploy hook sends it). */
void berth_serve_reload_tls(struct berth_server *srv, const struct berth_server_options *so)
{
	if (!so->tls_cert_file) {
		berth_info("received SIGHUP: nothing to reload (no http.tls.certificate)");
		return;
	}
	int rc = berth_server_reload_tls(srv);
	if (rc < 0)
		berth_error("received SIGHUP: TLS certificate not reloaded, the previous one stays: %s",
			    berth_err_reason(rc));
	else
		berth_info("received SIGHUP: TLS certificate reloaded from %s", so->tls_cert_file);
}

/* health.storagedriver: a stat of the storage root; a missing root is fine. */
static int check_storage(void *payload)
{
	struct berth_stat st;
	int rc = berth_storage_stat(&st, payload, "/");
	return rc < 0 && rc != BERTH_ENOTFOUND ? rc : 0;
}

/* health.storagedriver, health.file, health.http and health.tcp; NULL when none is configured. */
struct berth_health *berth_serve_health_checks(const struct berth_config *cfg, struct berth_registry *reg)
{
	if (!cfg->health_storagedriver.enabled && !cfg->n_health_files && !cfg->n_health_https &&
	    !cfg->n_health_tcps)
		return NULL;
	struct berth_health *h = berth_health_new();
	if (cfg->health_storagedriver.enabled) {
		struct berth_storage_driver *driver = berth_registry_driver(reg);
		char name[128];
		snprintf(name, sizeof(name), "storagedriver_%s", driver->name);
		berth_health_add_check(h, name, check_storage, driver, cfg->health_storagedriver.interval_ms,
				       cfg->health_storagedriver.threshold);
	}
	for (size_t i = 0; i < cfg->n_health_files; i++)
		berth_health_add_file(h, cfg->health_files[i].file, cfg->health_files[i].interval_ms);
	for (size_t i = 0; i < cfg->n_health_https; i++) {
		const struct berth_health_http *c = &cfg->health_https[i];
		size_t n = 0;
		for (size_t j = 0; j < c->headers.n; j++)
			n += c->headers.v[j].values.n;
		char **lines = berth_calloc(n ? n : 1, sizeof(*lines));
		n = 0;
		for (size_t j = 0; j < c->headers.n; j++)
			for (size_t k = 0; k < c->headers.v[j].values.n; k++)
				lines[n++] = berth_asprintf("%s: %s", c->headers.v[j].name, c->headers.v[j].values.v[k]);
		berth_health_add_http(h, c->uri, (const char *const *)lines, n, (long)c->statuscode, c->timeout_ms,
				      c->interval_ms, c->threshold);
		for (size_t j = 0; j < n; j++)
			free(lines[j]);
		free(lines);
	}
	for (size_t i = 0; i < cfg->n_health_tcps; i++)
		berth_health_add_tcp(h, cfg->health_tcps[i].addr, cfg->health_tcps[i].timeout_ms,
				     cfg->health_tcps[i].interval_ms, cfg->health_tcps[i].threshold);
	return h;
}

/* validation.manifests.indexes as Distribution 3 reads it: platforms all (the default) checks
 * that every child of a pushed index exists; list only children of the listed platforms (every
 * child with an empty list); none, or validation.disabled, no child. Fills the platform arrays
 * (release_index_children frees them). */
int berth_serve_index_children(struct berth_registry_config *rcfg, const struct berth_config *cfg)
{
	const int mode = cfg->validation.index_platforms;
	if (cfg->validation.disabled || mode == BERTH_INDEX_PLATFORMS_NONE)
		rcfg->index_children = BERTH_INDEX_CHILDREN_NONE;
	else if (mode == BERTH_INDEX_PLATFORMS_LIST)
		rcfg->index_children = BERTH_INDEX_CHILDREN_LIST;
	else
		rcfg->index_children = BERTH_INDEX_CHILDREN_ALL;
	if (cfg->validation.n_platforms && mode != BERTH_INDEX_PLATFORMS_LIST) {
		berth_error("configuration error: validation.manifests.indexes.platformlist: refused: "
			    "used only with platforms: list");
		return BERTH_ERROR;
	}
	if (rcfg->index_children == BERTH_INDEX_CHILDREN_NONE || mode == BERTH_INDEX_PLATFORMS_LIST)
		berth_warn("validation.manifests.indexes: image indexes are accepted without all of their "
			   "children (experimental in Distribution: other tools may expect complete indexes)");
	size_t n = cfg->validation.n_platforms;
	const char **os = berth_calloc(n ? n : 1, sizeof(*os)), **arch = berth_calloc(n ? n : 1, sizeof(*arch));
	for (size_t i = 0; i < n; i++) {
		os[i] = cfg->validation.platforms[i].os;
		arch[i] = cfg->validation.platforms[i].architecture;
	}
	rcfg->platform_os = os;
	rcfg->platform_arch = arch;
	rcfg->n_platforms = n;
	return 0;
}

void berth_serve_release_index_children(struct berth_registry_config *rcfg)
{
	free((void *)rcfg->platform_os);
	free((void *)rcfg->platform_arch);
}

/*
 * Parts of `berth serve`'s set-up (src/main.c) that turn configuration keys into running pieces:
 * the health checks, the index-children validation, the TLS reload on SIGHUP.
 */
#ifndef BERTH_CLI_SERVE_SETUP_H
#define BERTH_CLI_SERVE_SETUP_H

#include "config/config.h"
#include "registry/registry.h"

struct berth_health;
struct berth_redis_cache;
struct berth_server;
struct berth_server_options;

/* SIGHUP: re-reads the TLS certificate and key (when serving TLS) and logs what happened. */
void berth_serve_reload_tls(struct berth_server *srv, const struct berth_server_options *so);

/* health.storagedriver, health.file, health.http and health.tcp as a set of checks, not started
 * (berth_health_start); NULL when none is configured. */
struct berth_health *berth_serve_health_checks(const struct berth_config *cfg, struct berth_registry *reg);

/* validation.manifests.indexes into rcfg; -1 (logged) for a platformlist without platforms: list.
 * The platform arrays borrow cfg's strings: release them with the function below. */
int berth_serve_index_children(struct berth_registry_config *rcfg, const struct berth_config *cfg);
void berth_serve_release_index_children(struct berth_registry_config *rcfg);

/* policies (immutabletags, quotas) into rcfg, borrowing cfg's strings (cli/policy_setup.c); the rule
 * array goes with the release function. */
void berth_serve_policies(struct berth_registry_config *rcfg, const struct berth_config *cfg);
void berth_serve_release_policies(struct berth_registry_config *rcfg);

/* storage.cache.blobdescriptor: redis and the redis section (cli/redis_setup.c): *out is the cache
 * (NULL when not configured), the caller's. BERTH_EINVALID (logged, naming the key) for what
 * berth cannot do: a Redis Cluster, an unparsable address, no address. */
int berth_serve_redis_cache(struct berth_redis_cache **out, const struct berth_config *cfg);

#endif

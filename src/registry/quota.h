/*
 * Quotas of the berth-specific `policies.quotas` section (registry/quota.c): by repository
 * pattern, a limit on the number of tags and on the number of repositories, summed over every
 * repository whose whole name matches the pattern (a POSIX extended regex; "" matches all).
 * A repository counts once it holds a manifest (its _manifests directory exists).
 *
 * Checked by a manifest PUT: one that would create a tag, or give a repository its first
 * manifest, past a limit is refused with BERTH_EDENIED naming the limit. Pulls, deletes and
 * moves of existing tags are never refused. Usage is counted from storage at each check (no
 * state to drift or rebuild after a restart); within one process the count and the write
 * happen under one lock (taken only for repositories a rule covers), so concurrent pushes cannot pass a limit together.
 */
#ifndef BERTH_REGISTRY_QUOTA_H
#define BERTH_REGISTRY_QUOTA_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct berth_registry;

/* policies.quotas[i]: the pattern is borrowed and compiled; a limit of 0 means none. */
struct berth_quota_rule {
	const char *repository;
	int64_t tags;
	int64_t repositories;
};

struct berth_quotas;

/* BERTH_EINVALID (nothing allocated) when a pattern does not compile. n may be 0. */
int berth_quotas_new(struct berth_quotas **out, const struct berth_quota_rule *rules, size_t n);
void berth_quotas_free(struct berth_quotas *q); /* accepts NULL */

/*
 * Held by a manifest PUT from the check to the tag write. 0 with the guard holding the quota
 * lock when a rule covers name (the caller calls berth_quota_leave after the write); BERTH_EDENIED
 * with its message (core/err.h) when the PUT would pass a limit (nothing held);
 * or a storage error. `tag` is NULL for a PUT by digest. Blocks (storage I/O).
 */
struct berth_quota_guard {
	pthread_mutex_t *held;
};
int berth_quota_enter(struct berth_quota_guard *g, struct berth_registry *r, const char *name,
		      const char *tag);
void berth_quota_leave(struct berth_quota_guard *g);

/* Current usage of rule i (0 <= i < berth_quotas_count), counted from storage. */
struct berth_quota_usage {
	const char *repository; /* the rule's pattern, borrowed */
	int64_t tags, tags_limit;
	int64_t repositories, repositories_limit;
};
size_t berth_quotas_count(const struct berth_registry *r);
int berth_quota_usage(struct berth_quota_usage *out, struct berth_registry *r, size_t i);

/* registry/quota_metrics.c: every rule's usage as Prometheus gauges (berth_quota_tags,
 * berth_quota_repositories and their _limit), counted by a background thread every 30 s (at
 * once on start), so a scrape does no storage I/O. Start does nothing (*out NULL) without
 * rules; 0 or BERTH_ERROR. Stop accepts NULL. One registry per process. */
struct berth_periodic;
void berth_quota_metrics_register(void);
int berth_quota_metrics_start(struct berth_periodic **out, struct berth_registry *r);
void berth_quota_metrics_stop(struct berth_periodic *p);

#endif

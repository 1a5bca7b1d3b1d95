/*
 * Quotas of the berth-specific `policies.quotas` section (registry/quota.c): by repository
 * pattern, a limit on the number of tags and on the number of repositories (and on stored bytes,
 * below), summed over every
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

#include "core/oid.h"

struct berth_registry;

/* policies.quotas[i]: the pattern is borrowed and compiled; a limit of 0 means none. */
struct berth_quota_rule {
	const char *repository;
	int64_t tags;
	int64_t repositories;
	int64_t bytes;
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

/* Current usage of rule i (0 <= i < berth_quotas_count): tags and repositories counted from
 * storage, bytes from the in-memory accounting below (0 unless the rule has a bytes limit and
 * berth_quota_bytes_build has run). */
struct berth_quota_usage {
	const char *repository; /* the rule's pattern, borrowed */
	int64_t tags, tags_limit;
	int64_t repositories, repositories_limit;
	int64_t bytes, bytes_limit;
};
size_t berth_quotas_count(const struct berth_registry *r);
int berth_quota_usage(struct berth_quota_usage *out, struct berth_registry *r, size_t i);

/*
 * Stored bytes (registry/quota_bytes.c): for each rule with a `bytes` limit, the size of every
 * distinct blob linked into a covered repository (a layer or config through _layers, a manifest
 * through _manifests/revisions), counted once per rule however many covered repositories link
 * it. The usage lives in memory: counted from the store by berth_quota_bytes_build, then kept up
 * to date by every link and unlink this process makes (blob upload commit, mount, manifest PUT,
 * blob delete, manifest delete by digest, repository delete, retention, and the online garbage
 * collection's removal of revision and layer links, registry/gc.c). Links written or removed by
 * another process (offline garbage collection, Distribution, a second berth) are seen at the
 * next build.
 *
 * Within one process a covered link write and its check happen under one mutex, so
 * concurrent pushes cannot pass a limit together (covered link writes are serialized).
 * Nothing is checked or counted before berth_quota_bytes_build has run once.
 */
struct berth_quota_bytes;
int berth_quota_bytes_new(struct berth_quota_bytes **out, const struct berth_quota_rule *rules, size_t n);
void berth_quota_bytes_free(struct berth_quota_bytes *b); /* accepts NULL */
/* Counts (or counts again, replacing the usage) every covered repository's links from the
 * store, excluding link writes meanwhile. 0 without bytes rules; a storage error (the previous
 * counts then stay). Blocks: one
 * walk of each covered repository's _layers and _manifests/revisions, one stat per distinct
 * blob. */
int berth_quota_bytes_build(struct berth_registry *r);
/* 1 when some rule has a bytes limit. */
int berth_quota_bytes_has_rules(const struct berth_registry *r);
/* 1 when rule i has a bytes limit (then *usage and *limit are set), else 0. */
int berth_quota_bytes_usage(int64_t *usage, int64_t *limit, struct berth_registry *r, size_t i);

enum berth_link_kind { BERTH_LINK_LAYER, BERTH_LINK_REVISION };

/*
 * Held around one link write or removal in a covered repository (nothing is held otherwise).
 * link_enter: BERTH_EDENIED with its message ("quota exceeded: bytes ...", core/err.h) when linking
 * digest (size bytes) into name would pass a rule's limit; a link that exists already adds
 * nothing and passes. The caller then writes the link and calls link_leave(g, 1 if it did).
 * unlink_enter / unlink_leave(g, 1 if the link was removed) wrap a removal the same way.
 * repo_enter lists the repository's links; repo_leave subtracts those that are gone (all of
 * them after a complete delete). Every leave accepts a guard whose enter held nothing or failed.
 */
struct berth_bytes_guard {
	struct berth_quota_bytes *held; /* NULL: nothing to do on leave */
	const char *name;
	struct berth_oid one;           /* link and unlink: the digest */
	struct berth_oid *oids;         /* the links counted on leave: &one, or repo_enter's list (owned) */
	size_t n;
	uint64_t size;                  /* link_enter: the blob's size */
	int was_linked;                 /* link_enter: the link existed already */
};
int berth_bytes_link_enter(struct berth_bytes_guard *g, struct berth_registry *r, const char *name,
			   enum berth_link_kind kind, const char *digest, uint64_t size);
void berth_bytes_link_leave(struct berth_bytes_guard *g, int linked);
int berth_bytes_unlink_enter(struct berth_bytes_guard *g, struct berth_registry *r, const char *name,
			     enum berth_link_kind kind, const char *digest);
void berth_bytes_unlink_leave(struct berth_bytes_guard *g, int removed);
int berth_bytes_repo_enter(struct berth_bytes_guard *g, struct berth_registry *r, const char *name);
void berth_bytes_repo_leave(struct berth_bytes_guard *g, struct berth_registry *r);

/* registry/quota_metrics.c: every rule's usage as Prometheus gauges (berth_quota_tags,
 * berth_quota_repositories and their _limit), counted by a background thread every 30 s (at
 * once on start), so a scrape does no storage I/O. Start does nothing (*out NULL) without
 * rules; 0 or BERTH_ERROR. Stop accepts NULL. One registry per process. */
struct berth_periodic;
void berth_quota_metrics_register(void);
int berth_quota_metrics_start(struct berth_periodic **out, struct berth_registry *r);
void berth_quota_metrics_stop(struct berth_periodic *p);

#endif

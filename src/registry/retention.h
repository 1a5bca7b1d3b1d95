/*
 * Retention rules of the berth-specific `policies.retention` section (registry/retention.c).
 *
 * A repository is governed by the first rule whose pattern matches its whole name. Its tags
 * are ordered by push time (the mtime of the tag's current link, rewritten by every PUT of the
 * tag, Distribution's too; ties: the greater tag name counts as newer). A tag stays when any
 * of the rule's keep criteria holds: it is one of the keep_latest most recently pushed, its
 * name matches keep_tags, it was pushed within keep_pushed_within, or it is immutable
 * (policies.immutabletags); every other tag is removed. A rule with no keep criterion keeps
 * every tag. With untagged_after, a manifest no remaining tag names, last pushed (the mtime of
 * its revision link) more than untagged_after ago, is removed too, unless a kept manifest
 * needs it: a child of a kept index, or a referrer (subject) of a kept manifest, where kept
 * manifests are the tagged ones and the untagged ones younger than untagged_after.
 *
 * keep_pulled_within keeps a tag pulled within it: a GET (not HEAD) of its manifest by the tag,
 * or by the digest the tag names now. Pulls are recorded only for repositories a rule with
 * keep_pulled_within governs, and only once berth serve starts recording
 * (berth_retention_pulls_start): in memory, flushed to the store in the background
 * (registry/pulls.h).
 *
 * Removing a tag is the API's DELETE of the tag (its manifest stays); removing a manifest is
 * the DELETE by digest. Blob data stays for the garbage collection.
 */
#ifndef BERTH_REGISTRY_RETENTION_H
#define BERTH_REGISTRY_RETENTION_H

#include <stddef.h>
#include <stdint.h>

struct berth_pulls;
struct berth_registry;

/* policies.retention.rules[i]: strings borrowed (compiled by the registry). */
struct berth_retention_rule {
	const char *repository;        /* POSIX ERE, whole name; NULL or "": every repository */
	int64_t keep_latest;           /* < 0: not set */
	const char *keep_tags;         /* POSIX ERE, whole tag; NULL or "": not set */
	int64_t keep_pushed_within_ms; /* < 0: not set */
	int64_t untagged_after_ms;     /* < 0: not set */
	int64_t keep_pulled_within_ms; /* < 0: not set */
};

struct berth_retention;

/* BERTH_EINVALID (nothing allocated) when a pattern does not compile. n may be 0. */
int berth_retention_new(struct berth_retention **out, const struct berth_retention_rule *rules, size_t n,
			int dry_run);
void berth_retention_free(struct berth_retention *ret); /* accepts NULL */
/* 1 if some rule is configured. */
int berth_retention_configured(const struct berth_registry *r);

/* One removal (or, in a dry run, one that would be made). Strings valid for the call only. */
struct berth_retention_removal {
	const char *repository;
	const char *tag;    /* the tag removed; NULL for an untagged manifest */
	const char *digest; /* the manifest the tag named, or the manifest removed */
	int64_t pushed;     /* its push time, seconds since the epoch */
	size_t rule;        /* index in policies.retention.rules */
	int dry_run;
};
typedef void (*berth_retention_cb)(const struct berth_retention_removal *rm, void *payload);

/* Called after each removal (notification events): set once, before any run. */
void berth_retention_set_listener(struct berth_registry *r, berth_retention_cb cb, void *payload);

struct berth_retention_stats {
	uint64_t repositories;      /* repositories a rule governs */
	uint64_t tags_removed;      /* (or that would be, in a dry run) */
	uint64_t manifests_removed;
	uint64_t skipped;           /* decisions dropped: the tag or manifest changed meanwhile */
	uint64_t errors;            /* storage errors (logged); the run goes on */
};

/*
 * Applies the rules once to every repository, logging one line per removal ("retention:
 * removed tag <repo>:<tag> ..." or, dry, "retention (dry run): would remove ...") and one
 * summary line, and calling the listener. Dry when dry_run or policies.retention.dryrun.
 *
 * Contract for the online garbage collection, which calls it before marking: it only removes
 * tags and manifest revision links, through the same paths as the API's DELETEs (so the bytes
 * quotas and caches follow); it never touches blobs or _layers. Safe under concurrent pushes in
 * this process: each repository's removals happen holding its lock exclusively (manifest PUTs
 * to it wait, registry/repo_delete.c), after checking again that what was decided still holds
 * (a tag pushed again, a new manifest in the repository: that decision is dropped). One run at
 * a time: a call while another runs returns BERTH_EBUSY at once. 0, BERTH_EBUSY, or a storage
 * error listing the repositories (nothing removed then). Blocks (storage I/O).
 */
int berth_retention_apply(struct berth_retention_stats *out, struct berth_registry *r, int dry_run);

/* berth serve's own timer (until the collection's cycle runs the rules): every interval_ms,
 * the first after interval_ms. *out NULL without rules or with interval_ms 0. 0 or
 * BERTH_ERROR. Stop accepts NULL. */
struct berth_periodic;
int berth_retention_start(struct berth_periodic **out, struct berth_registry *r, int64_t interval_ms);
void berth_retention_stop(struct berth_periodic *p);

/* The pulls recorded in memory (registry/pulls.h), or NULL when no rule has keep_pulled_within:
 * for the paths that delete what they record. Borrowed for the registry's lifetime. */
struct berth_pulls *berth_retention_pulls(const struct berth_registry *r);

/* The manifest GET path's hook: records a pull of name's reference (a tag or a digest) when
 * recording is on and a rule with keep_pulled_within governs name; else returns at once. No
 * storage I/O (a mutex and a hash map). Inputs already validated. */
void berth_retention_record_pull(struct berth_registry *r, const char *name, const char *reference);

/* berth serve: starts recording pulls and flushing them to the store every flush_ms (the
 * first after flush_ms). *out NULL, nothing recorded, when no rule has keep_pulled_within.
 * 0 or BERTH_ERROR. Stop (accepts NULL) stops recording, then flushes once more. */
int berth_retention_pulls_start(struct berth_periodic **out, struct berth_registry *r, int64_t flush_ms);
void berth_retention_pulls_stop(struct berth_periodic *p, struct berth_registry *r);

#endif

/*
 * Lifecycle policies of the berth-specific `policies` config section that act on a push or a
 * delete (registry/policy.c). For now: immutable tags.
 *
 * An immutable tag, once it exists, names the same manifest for good: a PUT that would move it
 * to another manifest, a DELETE of the tag, and a DELETE by digest of a manifest such a tag
 * names are refused with BERTH_EDENIED. Pushing the same manifest to it again is fine.
 *
 * Patterns are POSIX extended regular expressions matched against the whole repository name or
 * tag (as if between ^( and )$); an empty pattern matches everything.
 */
#ifndef BERTH_REGISTRY_POLICY_H
#define BERTH_REGISTRY_POLICY_H

#include <pthread.h>
#include <stddef.h>

struct berth_registry;

/* policies.immutabletags[i]: plain strings, borrowed by berth_policy_new (which compiles them). */
struct berth_tag_rule {
	const char *repository;
	const char *tags;
};

struct berth_policy;

/* Compiles the rules. BERTH_EINVALID (nothing allocated) when a pattern does not compile; then
 * *bad_index tells which rule. n may be 0: *out is then a policy that allows everything. */
int berth_policy_new(struct berth_policy **out, size_t *bad_index, const struct berth_tag_rule *rules,
		     size_t n);
/* Accepts NULL. */
void berth_policy_free(struct berth_policy *p);
/* 1 if tag of repository name is immutable. A NULL policy has no immutable tags. */
int berth_policy_tag_immutable(const struct berth_policy *p, const char *name, const char *tag);
/* 1 if some rule could make a tag of repository name immutable. */
int berth_policy_repo_has_immutable(const struct berth_policy *p, const char *name);

/* 1 if repository name has a tag that is immutable (a repository delete is then refused). */
int berth_policy_has_immutable_tag(struct berth_registry *r, const char *name);

/*
 * Held by a manifest PUT that points a tag at a manifest, from the check to the tag write, so
 * that two PUTs of different manifests to a new immutable tag cannot both succeed in this
 * process. berth_tag_guard_enter answers BERTH_EDENIED (with its message, core/err.h) when the tag is
 * immutable and names another manifest; otherwise 0, and the caller must call
 * berth_tag_guard_leave after writing the tag (whatever the outcome). Blocks (storage I/O).
 */
struct berth_tag_guard {
	pthread_mutex_t *held; /* NULL when the tag is not immutable */
};
int berth_tag_guard_enter(struct berth_tag_guard *g, struct berth_registry *r, const char *name,
			  const char *tag, const char *digest);
void berth_tag_guard_leave(struct berth_tag_guard *g);

/*
 * The same guard for a DELETE of manifest reference (a tag or a digest) in name:
 * BERTH_EDENIED when it is an immutable tag, or a digest an immutable tag names (nothing held);
 * otherwise 0 (also when the reference does not exist: the delete then answers that), and the
 * caller calls berth_tag_guard_leave after the delete. Blocks (storage I/O).
 */
int berth_tag_guard_enter_delete(struct berth_tag_guard *g, struct berth_registry *r, const char *name,
				 const char *reference);

#endif

/*
 * Immutable tags (registry/policy.h). The rules are compiled once; a check costs one regexec per
 * rule on the repository name, and one link read only for a tag that matches.
 *
 * Within one process, the check and the tag write (or the delete) happen under one mutex, taken
 * only for repositories some rule covers, so two PUTs racing to create the same immutable tag
 * with different manifests cannot both win. Across processes sharing a store, the check is as
 * good as the last read of the tag's link.
 */
#include "registry/policy.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

struct compiled_rule {
	regex_t repository, tags;
};

struct berth_policy {
	struct compiled_rule *rules;
	size_t n;
	pthread_mutex_t tag_lock; /* held from an immutable tag's check to its write or delete */
};

int berth_policy_new(struct berth_policy **out, size_t *bad_index, const struct berth_tag_rule *rules,
		     size_t n)
{
	struct berth_policy *p = berth_calloc(1, sizeof(*p));
	p->rules = berth_calloc(n ? n : 1, sizeof(*p->rules));
	for (; p->n < n; p->n++) {
		struct compiled_rule *c = &p->rules[p->n];
		if (berth_regex_compile_whole(&c->repository, rules[p->n].repository) < 0)
			goto out_invalid;
		if (berth_regex_compile_whole(&c->tags, rules[p->n].tags) < 0) {
			regfree(&c->repository);
			goto out_invalid;
		}
	}
	pthread_mutex_init(&p->tag_lock, NULL);
	*out = p;
	return 0;
out_invalid:
	*bad_index = p->n;
	while (p->n-- > 0) {
		regfree(&p->rules[p->n].repository);
		regfree(&p->rules[p->n].tags);
	}
	free(p->rules);
	free(p);
	return BERTH_EINVALID;
}

void berth_policy_free(struct berth_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		regfree(&p->rules[i].repository);
		regfree(&p->rules[i].tags);
	}
	free(p->rules);
	pthread_mutex_destroy(&p->tag_lock);
	free(p);
}

int berth_policy_repo_has_immutable(const struct berth_policy *p, const char *name)
{
	for (size_t i = 0; p && i < p->n; i++)
		if (regexec(&p->rules[i].repository, name, 0, NULL, 0) == 0)
			return 1;
	return 0;
}

int berth_policy_tag_immutable(const struct berth_policy *p, const char *name, const char *tag)
{
	for (size_t i = 0; p && i < p->n; i++)
		if (regexec(&p->rules[i].repository, name, 0, NULL, 0) == 0 &&
		    regexec(&p->rules[i].tags, tag, 0, NULL, 0) == 0)
			return 1;
	return 0;
}

/* The digest tag names now: 0, BERTH_ENOTFOUND when there is no such tag, or a storage error. */
static int tag_target(struct berth_registry *r, const char *name, const char *tag,
		      char digest[BERTH_DIGEST_STR_MAX])
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_tag_current(path, name, tag);
	if (rc < 0)
		return rc;
	rc = berth_link_read(r, path, digest);
	return rc == BERTH_EINVALID ? BERTH_ENOTFOUND : rc;
}

int berth_tag_guard_enter(struct berth_tag_guard *g, struct berth_registry *r, const char *name,
			  const char *tag, const char *digest)
{
	char current[BERTH_DIGEST_STR_MAX];
	g->held = NULL;
	if (!berth_policy_tag_immutable(r->policy, name, tag))
		return 0;
	pthread_mutex_lock(&r->policy->tag_lock);
	int rc = tag_target(r, name, tag, current);
	if (rc == 0 && strcmp(current, digest) != 0) {
		pthread_mutex_unlock(&r->policy->tag_lock);
		return berth_err_set(BERTH_EDENIED, "tag %s is immutable: it already names %s", tag,
				     current);
	}
	if (rc < 0 && rc != BERTH_ENOTFOUND) {
		pthread_mutex_unlock(&r->policy->tag_lock);
		return rc;
	}
	g->held = &r->policy->tag_lock;
	return 0;
}

void berth_tag_guard_leave(struct berth_tag_guard *g)
{
	if (g->held)
		pthread_mutex_unlock(g->held);
	g->held = NULL;
}

struct named_by_immutable {
	struct berth_registry *reg;
	const char *name;
	const char *digest;
};

/* berth_list_cb over a repository's tag directories: stops (1) at an immutable tag naming digest. */
static int names_digest(const char *tag_dir, void *payload)
{
	struct named_by_immutable *ctx = payload;
	const char *slash = strrchr(tag_dir, '/');
	const char *tag = slash ? slash + 1 : tag_dir;
	char current[BERTH_DIGEST_STR_MAX];
	if (!berth_policy_tag_immutable(ctx->reg->policy, ctx->name, tag))
		return 0;
	return tag_target(ctx->reg, ctx->name, tag, current) == 0 && strcmp(current, ctx->digest) == 0;
}

/* berth_list_cb over a repository's tag directories: stops (1) at an immutable tag. */
static int is_immutable_tag(const char *tag_dir, void *payload)
{
	struct named_by_immutable *ctx = payload;
	const char *slash = strrchr(tag_dir, '/');
	return berth_policy_tag_immutable(ctx->reg->policy, ctx->name, slash ? slash + 1 : tag_dir);
}

int berth_policy_has_immutable_tag(struct berth_registry *r, const char *name)
{
	char path[BERTH_PATH_MAX];
	struct named_by_immutable ctx = { r, name, NULL };
	if (!berth_policy_repo_has_immutable(r->policy, name) || berth_path_tags_dir(path, name) < 0)
		return 0;
	return berth_storage_list(r->driver, path, is_immutable_tag, &ctx) == 1;
}

int berth_tag_guard_enter_delete(struct berth_tag_guard *g, struct berth_registry *r, const char *name,
				 const char *reference)
{
	char path[BERTH_PATH_MAX];
	int rc;
	g->held = NULL;
	if (!berth_policy_repo_has_immutable(r->policy, name))
		return 0;
	pthread_mutex_lock(&r->policy->tag_lock);
	if (!strchr(reference, ':')) {
		char current[BERTH_DIGEST_STR_MAX];
		rc = berth_policy_tag_immutable(r->policy, name, reference) &&
		     tag_target(r, name, reference, current) == 0 ? BERTH_EDENIED : 0;
	} else {
		struct named_by_immutable ctx = { r, name, reference };
		rc = berth_path_tags_dir(path, name);
		if (rc == 0)
			rc = berth_storage_list(r->driver, path, names_digest, &ctx);
		rc = rc == 1 ? BERTH_EDENIED : rc == BERTH_ENOTFOUND ? 0 : rc;
	}
	if (rc < 0) {
		pthread_mutex_unlock(&r->policy->tag_lock);
		return rc;
	}
	g->held = &r->policy->tag_lock;
	return 0;
}

/*
 * Tag and repository quotas (registry/quota.h). Usage is counted from the store when a push
 * needs it: the repositories come from the catalog snapshot (rebuilt whenever this process has
 * written a link since), the tags from the tag list cache, so a check costs one stat per
 * covered repository plus its cached tag count. Nothing is kept between checks, so nothing
 * drifts under concurrent deletes, other processes or restarts.
 */
#include "registry/quota.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

struct compiled_quota {
	regex_t repository;
	char *pattern;
	int64_t tags, repositories;
};

struct berth_quotas {
	struct compiled_quota *rules;
	size_t n;
	pthread_mutex_t lock; /* held from a covered push's count to its write */
};

int berth_quotas_new(struct berth_quotas **out, const struct berth_quota_rule *rules, size_t n)
{
	struct berth_quotas *q = berth_calloc(1, sizeof(*q));
	q->rules = berth_calloc(n ? n : 1, sizeof(*q->rules));
	for (; q->n < n; q->n++) {
		struct compiled_quota *c = &q->rules[q->n];
		if (berth_regex_compile_whole(&c->repository, rules[q->n].repository) < 0) {
			berth_quotas_free(q);
			return BERTH_EINVALID;
		}
		c->pattern = berth_strdup(rules[q->n].repository ? rules[q->n].repository : "");
		c->tags = rules[q->n].tags;
		c->repositories = rules[q->n].repositories;
	}
	pthread_mutex_init(&q->lock, NULL);
	*out = q;
	return 0;
}

void berth_quotas_free(struct berth_quotas *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++) {
		regfree(&q->rules[i].repository);
		free(q->rules[i].pattern);
	}
	free(q->rules);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static int covers(const struct compiled_quota *c, const char *name)
{
	return regexec(&c->repository, name, 0, NULL, 0) == 0;
}

/* Covers name with a tag or repository limit (a bytes-only rule is quota_bytes.c's). */
static int limits_count(const struct compiled_quota *c, const char *name)
{
	return (c->tags > 0 || c->repositories > 0) && covers(c, name);
}

/* 1 if repository name holds a manifest, 0 if not, or a storage error. */
static int has_manifests(struct berth_registry *r, const char *name)
{
	char repo[BERTH_PATH_MAX], path[BERTH_PATH_MAX + 16];
	struct berth_stat st;
	int rc = berth_path_repo(repo, name);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/_manifests", repo);
	rc = berth_storage_stat(&st, r->driver, path);
	return rc == 0 ? 1 : rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* Tags of name, 0 when it has none. */
static int64_t tag_count(struct berth_registry *r, const char *name)
{
	const struct berth_tag_list *l;
	if (berth_tags_get(&l, r, name) < 0)
		return 0;
	int64_t n = (int64_t)l->n;
	berth_tag_list_release(l);
	return n;
}

/* Counts rule c's usage over the catalog into u. */
static int count_usage(struct berth_quota_usage *u, struct berth_registry *r, const struct compiled_quota *c)
{
	struct berth_strvec repos = { 0 };
	int rc = berth_catalog(&repos, r);
	memset(u, 0, sizeof(*u));
	u->repository = c->pattern;
	u->tags_limit = c->tags;
	u->repositories_limit = c->repositories;
	berth_quota_bytes_usage(&u->bytes, &u->bytes_limit, r, (size_t)(c - r->quotas->rules));
	for (size_t i = 0; rc >= 0 && i < repos.n; i++) {
		if (!covers(c, repos.items[i]))
			continue;
		if ((rc = has_manifests(r, repos.items[i])) > 0)
			u->repositories++;
		u->tags += tag_count(r, repos.items[i]);
	}
	berth_strvec_release(&repos);
	return rc < 0 ? rc : 0;
}

/* BERTH_EDENIED (with its message) if the PUT would pass rule c's limits, 0 if not. */
static int check_rule(struct berth_registry *r, const struct compiled_quota *c, int new_tag, int new_repo)
{
	struct berth_quota_usage u;
	int rc = count_usage(&u, r, c);
	if (rc < 0)
		return rc;
	if (new_repo && c->repositories > 0 && u.repositories + 1 > c->repositories) {
		return berth_err_set(BERTH_EDENIED,
				     "quota exceeded: repositories (%lld of %lld) for repositories matching '%s'",
				     (long long)u.repositories, (long long)c->repositories, c->pattern);
	}
	if (new_tag && c->tags > 0 && u.tags + 1 > c->tags) {
		return berth_err_set(BERTH_EDENIED,
				     "quota exceeded: tags (%lld of %lld) for repositories matching '%s'",
				     (long long)u.tags, (long long)c->tags, c->pattern);
	}
	return 0;
}

/* 1 if tag exists in name, 0 if not. */
static int tag_exists(struct berth_registry *r, const char *name, const char *tag)
{
	struct berth_stat st;
	return berth_tag_current_stat(&st, r, name, tag) == 0;
}

int berth_quota_enter(struct berth_quota_guard *g, struct berth_registry *r, const char *name,
		      const char *tag)
{
	struct berth_quotas *q = r->quotas;
	int covered = 0, rc = 0;
	g->held = NULL;
	for (size_t i = 0; q && i < q->n && !covered; i++)
		covered = limits_count(&q->rules[i], name);
	if (!covered)
		return 0;
	pthread_mutex_lock(&q->lock);
	int new_tag = tag && !tag_exists(r, name, tag);
	int new_repo = has_manifests(r, name);
	if (new_repo < 0) {
		rc = new_repo;
		goto out_unlock;
	}
	new_repo = !new_repo;
	for (size_t i = 0; i < q->n && rc == 0 && (new_tag || new_repo); i++)
		if (limits_count(&q->rules[i], name))
			rc = check_rule(r, &q->rules[i], new_tag, new_repo);
	if (rc == 0) {
		g->held = &q->lock;
		return 0;
	}
out_unlock:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void berth_quota_leave(struct berth_quota_guard *g)
{
	if (g->held)
		pthread_mutex_unlock(g->held);
	g->held = NULL;
}

size_t berth_quotas_count(const struct berth_registry *r)
{
	return r->quotas ? r->quotas->n : 0;
}

int berth_quota_usage(struct berth_quota_usage *out, struct berth_registry *r, size_t i)
{
	if (!r->quotas || i >= r->quotas->n)
		return BERTH_ENOTFOUND;
	return count_usage(out, r, &r->quotas->rules[i]);
}

/*
 * Retention rules (registry/retention.h). A run takes the catalog, and for each repository a
 * rule governs: reads its tags (current link: digest and mtime) and, with untagged_after, its
 * revisions (link mtime, and the digests each manifest mentions and its subject); decides in
 * memory; then, unless dry, removes under the repository's exclusive lock after checking the
 * decisions again.
 */
#include "registry/retention.h"

#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/map.h"
#include "core/oid.h"
#include "core/periodic.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/link.h"
#include "registry/manifest.h"
#include "registry/paths.h"
#include "registry/pulls.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

struct compiled_retention_rule {
	regex_t repository;
	regex_t keep_tags;
	int has_keep_tags;
	int64_t keep_latest, keep_pushed_within_ms, untagged_after_ms, keep_pulled_within_ms;
};

struct berth_retention {
	struct compiled_retention_rule *rules;
	size_t n;
	int dry_run;
	pthread_mutex_t running; /* one run at a time */
	berth_retention_cb listener;
	void *listener_payload;
	struct berth_pulls *pulls; /* when some rule has keep_pulled_within, else NULL */
	atomic_int recording;      /* berth serve records pulls (berth_retention_pulls_start) */
};

int berth_retention_new(struct berth_retention **out, const struct berth_retention_rule *rules, size_t n,
			int dry_run)
{
	struct berth_retention *ret = berth_calloc(1, sizeof(*ret));
	ret->rules = berth_calloc(n ? n : 1, sizeof(*ret->rules));
	ret->dry_run = dry_run;
	pthread_mutex_init(&ret->running, NULL);
	for (; ret->n < n; ret->n++) {
		const struct berth_retention_rule *in = &rules[ret->n];
		struct compiled_retention_rule *c = &ret->rules[ret->n];
		if (berth_regex_compile_whole(&c->repository, in->repository) < 0)
			goto out_invalid;
		c->has_keep_tags = in->keep_tags && *in->keep_tags;
		if (c->has_keep_tags && berth_regex_compile_whole(&c->keep_tags, in->keep_tags) < 0) {
			regfree(&c->repository);
			goto out_invalid;
		}
		c->keep_latest = in->keep_latest;
		c->keep_pushed_within_ms = in->keep_pushed_within_ms;
		c->untagged_after_ms = in->untagged_after_ms;
		c->keep_pulled_within_ms = in->keep_pulled_within_ms;
		if (c->keep_pulled_within_ms >= 0 && !ret->pulls)
			ret->pulls = berth_pulls_new();
	}
	*out = ret;
	return 0;
out_invalid:
	berth_retention_free(ret);
	return BERTH_EINVALID;
}

void berth_retention_free(struct berth_retention *ret)
{
	if (!ret)
		return;
	for (size_t i = 0; i < ret->n; i++) {
		regfree(&ret->rules[i].repository);
		if (ret->rules[i].has_keep_tags)
			regfree(&ret->rules[i].keep_tags);
	}
	free(ret->rules);
	berth_pulls_free(ret->pulls);
	pthread_mutex_destroy(&ret->running);
	free(ret);
}

int berth_retention_configured(const struct berth_registry *r)
{
	return r->retention && r->retention->n > 0;
}

void berth_retention_set_listener(struct berth_registry *r, berth_retention_cb cb, void *payload)
{
	if (!r->retention)
		return;
	r->retention->listener = cb;
	r->retention->listener_payload = payload;
}

/* ---- what a repository holds ---- */

struct tag_info {
	char *name;
	char digest[BERTH_DIGEST_STR_MAX];
	int64_t pushed;
	int64_t pulled; /* last pull, by the tag or its digest; -1: never (or not read) */
	int remove;
};

struct rev_info {
	struct berth_oid oid; /* the map's key */
	int64_t pushed;
	int kept;
	struct berth_oid *refs; /* digests its JSON mentions (config, layers, children, ...) */
	size_t n_refs;
	int has_subject;
	struct berth_oid subject;
};

struct repo_state {
	struct berth_registry *reg;
	const char *name;
	struct tag_info *tags;
	size_t n_tags, alloc_tags;
	struct berth_map revs; /* struct rev_info by oid */
	int errors;
};

static void repo_state_release(struct repo_state *s)
{
	for (size_t i = 0; i < s->n_tags; i++)
		free(s->tags[i].name);
	free(s->tags);
	struct rev_info *v;
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));)
		free(v->refs);
	berth_map_release(&s->revs);
}

/* A tag's current digest and push time: 0, BERTH_ENOTFOUND (no current link), or an error. */
static int read_tag(struct berth_registry *r, const char *name, const char *tag, char digest[BERTH_DIGEST_STR_MAX],
		    int64_t *pushed)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_tag_pushed(pushed, r, name, tag);
	if (rc < 0 || (rc = berth_path_tag_current(path, name, tag)) < 0)
		return rc;
	rc = berth_link_read(r, path, digest);
	return rc == BERTH_EINVALID ? BERTH_ENOTFOUND : rc;
}

static int collect_tag(const char *tag_dir, void *payload)
{
	struct repo_state *s = payload;
	const char *slash = strrchr(tag_dir, '/');
	const char *tag = slash ? slash + 1 : tag_dir;
	struct tag_info t = { NULL, "", 0, -1, 0 };
	int rc = read_tag(s->reg, s->name, tag, t.digest, &t.pushed);
	if (rc == BERTH_ENOTFOUND)
		return 0; /* not a tag (yet): Distribution lists only tags that resolve */
	if (rc < 0) {
		berth_warn("retention: %s: cannot read tag %s: %s (kept)", s->name, tag, berth_err_reason(rc));
		s->errors++;
		return 0;
	}
	t.name = berth_strdup(tag);
	BERTH_VEC_GROW(s->tags, s->n_tags + 1, s->alloc_tags);
	s->tags[s->n_tags++] = t;
	return 0;
}

static int collect_tags(struct repo_state *s)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_tags_dir(path, s->name);
	if (rc == 0)
		rc = berth_storage_list(s->reg->driver, path, collect_tag, s);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

static int collect_revision(const char *path, const struct berth_stat *st, void *payload)
{
	struct repo_state *s = payload;
	struct berth_oid oid;
	if (st->is_dir || berth_link_path_oid(&oid, path) < 0)
		return 0;
	struct rev_info *v = berth_map_add(&s->revs, &oid, NULL);
	v->pushed = st->mtime;
	return 0;
}

/* Every revision link of the repository with its mtime, into s->revs. */
static int collect_revisions(struct repo_state *s)
{
	char repo[BERTH_PATH_MAX], path[BERTH_PATH_MAX + 32];
	int rc = berth_path_repo(repo, s->name);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/_manifests/revisions", repo);
	rc = berth_storage_walk(s->reg->driver, path, collect_revision, s);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* Every "<alg>:<hex>" digest the manifest's bytes mention: the references that keep a child
 * (config, layers, an index's manifests, fields berth does not parse), found without trusting
 * the parser, as the garbage collection's lenient marking does. */
static void scan_refs(struct rev_info *v, const char *body, size_t len)
{
	static const struct { const char *prefix; size_t hex; } algs[] = { { "sha256:", 64 }, { "sha512:", 128 } };
	size_t alloc = 0;
	for (size_t i = 0; i + 7 < len; i++) {
		for (size_t a = 0; a < 2; a++) {
			if (memcmp(body + i, algs[a].prefix, 7) != 0 || i + 7 + algs[a].hex > len)
				continue;
			char digest[BERTH_DIGEST_STR_MAX];
			memcpy(digest, body + i, 7 + algs[a].hex);
			digest[7 + algs[a].hex] = '\0';
			struct berth_oid oid;
			if (berth_oid_parse(&oid, digest) < 0)
				continue;
			BERTH_VEC_GROW(v->refs, v->n_refs + 1, alloc);
			v->refs[v->n_refs++] = oid;
		}
	}
}

/* Reads each revision's manifest: its references and its subject. A manifest that cannot be
 * read is an error (the caller then removes no untagged manifest of the repository). */
static int read_revisions(struct repo_state *s)
{
	struct rev_info *v;
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));) {
		char digest[BERTH_DIGEST_STR_MAX];
		struct berth_manifest_content mc;
		berth_oid_fmt(digest, &v->oid);
		int rc = berth_manifest_get(&mc, s->reg, s->name, digest);
		if (rc < 0) {
			berth_warn("retention: %s: cannot read manifest %s: %s (no untagged manifest of it removed)",
				   s->name, digest, berth_err_reason(rc));
			return rc;
		}
		scan_refs(v, mc.body, mc.len);
		struct berth_manifest *m = NULL;
		if (berth_manifest_parse(&m, NULL, mc.body, mc.len) == 0 && m->has_subject &&
		    berth_oid_parse(&v->subject, m->subject.digest) == 0)
			v->has_subject = 1;
		berth_manifest_free(m);
		berth_manifest_content_release(&mc);
	}
	return 0;
}

/* ---- decisions ---- */

/* Newest first: push time, then the greater name. */
static int newest_first(const void *a, const void *b)
{
	const struct tag_info *x = a, *y = b;
	if (x->pushed != y->pushed)
		return x->pushed > y->pushed ? -1 : 1;
	return -strcmp(x->name, y->name);
}

static int older_than(int64_t pushed, int64_t now, int64_t ms)
{
	return (now - pushed) * 1000 > ms;
}

/* A tag's last pull: the newer of its own and its manifest's (by digest), from the store and
 * from what this process has not flushed yet. */
static int64_t tag_pulled(struct repo_state *s, const struct tag_info *t, struct berth_storage_driver *d)
{
	struct berth_pulls *p = s->reg->retention->pulls;
	int64_t by_tag = berth_pulls_last(p, d, s->name, t->name);
	int64_t by_digest = berth_pulls_last(p, d, s->name, t->digest);
	return by_tag > by_digest ? by_tag : by_digest;
}

static void read_pulls(struct repo_state *s)
{
	for (size_t i = 0; i < s->n_tags; i++)
		s->tags[i].pulled = tag_pulled(s, &s->tags[i], s->reg->driver);
}

static int pulled_within(int64_t pulled, int64_t now, int64_t ms)
{
	return ms >= 0 && pulled >= 0 && !older_than(pulled, now, ms);
}

static void decide_tags(struct repo_state *s, const struct compiled_retention_rule *c, int64_t now)
{
	if (c->keep_latest < 0 && !c->has_keep_tags && c->keep_pushed_within_ms < 0 &&
	    c->keep_pulled_within_ms < 0)
		return; /* no keep criterion: every tag stays */
	if (s->n_tags > 1) /* none: tags is NULL, which qsort must not be given */
		qsort(s->tags, s->n_tags, sizeof(*s->tags), newest_first);
	for (size_t i = 0; i < s->n_tags; i++) {
		const struct tag_info *t = &s->tags[i];
		int keep = berth_policy_tag_immutable(s->reg->policy, s->name, t->name) ||
			   (c->keep_latest >= 0 && (int64_t)i < c->keep_latest) ||
			   (c->has_keep_tags && regexec(&c->keep_tags, t->name, 0, NULL, 0) == 0) ||
			   (c->keep_pushed_within_ms >= 0 && !older_than(t->pushed, now, c->keep_pushed_within_ms)) ||
			   pulled_within(t->pulled, now, c->keep_pulled_within_ms);
		s->tags[i].remove = !keep;
	}
}

/* Marks kept: the revisions remaining tags name, the young ones, and what those need. */
static void decide_untagged(struct repo_state *s, const struct compiled_retention_rule *c, int64_t now)
{
	struct rev_info *v;
	for (size_t i = 0; i < s->n_tags; i++) {
		struct berth_oid oid;
		if (!s->tags[i].remove && berth_oid_parse(&oid, s->tags[i].digest) == 0 &&
		    (v = berth_map_find(&s->revs, &oid)))
			v->kept = 1;
	}
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));)
		if (!older_than(v->pushed, now, c->untagged_after_ms))
			v->kept = 1;
	/* To a fixed point: a kept manifest keeps what it mentions, a referrer of a kept one stays. */
	for (int changed = 1; changed;) {
		changed = 0;
		for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));) {
			if (!v->kept && v->has_subject) {
				struct rev_info *subject = berth_map_find(&s->revs, &v->subject);
				if (subject && subject->kept)
					changed = v->kept = 1;
			}
			for (size_t k = 0; v->kept && k < v->n_refs; k++) {
				struct rev_info *child = berth_map_find(&s->revs, &v->refs[k]);
				if (child && !child->kept)
					changed = child->kept = 1;
			}
		}
	}
}

static void keep_all_revisions(struct repo_state *s)
{
	struct rev_info *v;
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));)
		v->kept = 1;
}

/* ---- removal ---- */

static void format_time(char out[32], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void report(struct berth_retention *ret, struct berth_retention_removal *rm)
{
	char when[32];
	format_time(when, rm->pushed);
	if (rm->tag)
		berth_info("retention%s: %s tag %s:%s (%s, pushed %s, rule %zu)", rm->dry_run ? " (dry run)" : "",
			   rm->dry_run ? "would remove" : "removed", rm->repository, rm->tag, rm->digest, when,
			   rm->rule);
	else
		berth_info("retention%s: %s untagged manifest %s@%s (pushed %s, rule %zu)",
			   rm->dry_run ? " (dry run)" : "", rm->dry_run ? "would remove" : "removed", rm->repository,
			   rm->digest, when, rm->rule);
	if (ret->listener)
		ret->listener(rm, ret->listener_payload);
}

/* 1 if the tag is as decided (same manifest, not pushed since), 0 if not, or an error. */
static int tag_unchanged(struct repo_state *s, const struct tag_info *t)
{
	char digest[BERTH_DIGEST_STR_MAX];
	int64_t pushed;
	int rc = read_tag(s->reg, s->name, t->name, digest, &pushed);
	if (rc == BERTH_ENOTFOUND)
		return 0;
	return rc < 0 ? rc : strcmp(digest, t->digest) == 0 && pushed == t->pushed;
}

static void remove_tags(struct repo_state *s, struct berth_retention *ret, size_t rule,
			struct berth_retention_stats *st)
{
	const struct compiled_retention_rule *c = &ret->rules[rule];
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < s->n_tags; i++) {
		struct tag_info *t = &s->tags[i];
		if (!t->remove)
			continue;
		int rc = tag_unchanged(s, t);
		/* pulled since it was read (this process's pulls, in memory): it stays */
		if (rc == 1 && pulled_within(tag_pulled(s, t, NULL), now, c->keep_pulled_within_ms))
			rc = 0;
		if (rc == 1)
			rc = berth_manifest_delete(s->reg, s->name, t->name);
		else if (rc == 0)
			rc = BERTH_ENOTFOUND;
		if (rc == BERTH_ENOTFOUND || rc == BERTH_EDENIED) {
			t->remove = 0; /* pushed again, deleted, or made immutable meanwhile */
			st->skipped++;
			continue;
		}
		if (rc < 0) {
			berth_warn("retention: cannot remove tag %s:%s: %s", s->name, t->name, berth_err_reason(rc));
			t->remove = 0;
			st->errors++;
			continue;
		}
		if (c->keep_pulled_within_ms >= 0 && (rc = berth_pulls_forget(ret->pulls, s->reg->driver, s->name, t->name)) < 0)
			berth_warn("retention: %s: cannot remove the pull record of tag %s: %s (harmless)", s->name,
				   t->name, berth_err_reason(rc));
		st->tags_removed++;
		struct berth_retention_removal rm = { s->name, t->name, t->digest, t->pushed, rule, 0 };
		report(ret, &rm);
	}
}

/* 1 if the repository's revisions are those decided on (none added, none pushed again). */
static int revisions_unchanged(struct repo_state *s)
{
	struct repo_state now = { .reg = s->reg, .name = s->name,
				  .revs = BERTH_MAP_INIT(sizeof(struct rev_info), sizeof(struct berth_oid)) };
	int rc = collect_revisions(&now);
	int same = rc == 0;
	struct rev_info *v;
	for (size_t pos = 0; same && (v = berth_map_next(&now.revs, &pos));) {
		const struct rev_info *was = berth_map_find(&s->revs, &v->oid);
		same = was && was->pushed == v->pushed;
	}
	repo_state_release(&now);
	return same;
}

/* The digests the repository's tags name now, into *tagged (a map of oids). Read once under
 * the repository's exclusive lock: no PUT can add a tag until it is released. 0, or -1 when a
 * tag cannot be read (then no untagged manifest goes). */
static int tagged_now(struct berth_map *tagged, struct repo_state *s)
{
	struct repo_state now = { .reg = s->reg, .name = s->name,
				  .revs = BERTH_MAP_INIT(sizeof(struct rev_info), sizeof(struct berth_oid)) };
	int rc = collect_tags(&now) < 0 || now.errors ? -1 : 0;
	for (size_t i = 0; rc == 0 && i < now.n_tags; i++) {
		struct berth_oid t;
		if (berth_oid_parse(&t, now.tags[i].digest) == 0)
			berth_map_add(tagged, &t, NULL);
	}
	repo_state_release(&now);
	return rc;
}

static void remove_untagged(struct repo_state *s, struct berth_retention *ret, size_t rule,
			    struct berth_retention_stats *st)
{
	struct rev_info *v;
	size_t candidates = 0;
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));)
		candidates += !v->kept;
	if (candidates == 0)
		return;
	struct berth_map tagged = BERTH_MAP_INIT(sizeof(struct berth_oid), sizeof(struct berth_oid));
	/* a push meanwhile may need any of them */
	if (!revisions_unchanged(s) || tagged_now(&tagged, s) < 0) {
		st->skipped += candidates;
		berth_map_release(&tagged);
		return;
	}
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));) {
		char digest[BERTH_DIGEST_STR_MAX];
		if (v->kept)
			continue;
		berth_oid_fmt(digest, &v->oid);
		if (berth_map_find(&tagged, &v->oid)) {
			st->skipped++;
			continue;
		}
		int rc = berth_manifest_delete(s->reg, s->name, digest);
		if (rc == BERTH_ENOTFOUND || rc == BERTH_EDENIED) {
			st->skipped++;
			continue;
		}
		if (rc < 0) {
			berth_warn("retention: cannot remove manifest %s@%s: %s", s->name, digest, berth_err_reason(rc));
			st->errors++;
			continue;
		}
		st->manifests_removed++;
		struct berth_retention_removal rm = { s->name, NULL, digest, v->pushed, rule, 0 };
		report(ret, &rm);
	}
	berth_map_release(&tagged);
}

/* A dry run reports what it decided. */
static void report_decisions(struct repo_state *s, struct berth_retention *ret, size_t rule,
			     struct berth_retention_stats *st)
{
	for (size_t i = 0; i < s->n_tags; i++) {
		if (!s->tags[i].remove)
			continue;
		st->tags_removed++;
		struct berth_retention_removal rm = { s->name, s->tags[i].name, s->tags[i].digest,
						      s->tags[i].pushed, rule, 1 };
		report(ret, &rm);
	}
	struct rev_info *v;
	for (size_t pos = 0; (v = berth_map_next(&s->revs, &pos));) {
		char digest[BERTH_DIGEST_STR_MAX];
		if (v->kept)
			continue;
		berth_oid_fmt(digest, &v->oid);
		st->manifests_removed++;
		struct berth_retention_removal rm = { s->name, NULL, digest, v->pushed, rule, 1 };
		report(ret, &rm);
	}
}

static void apply_repo(struct berth_registry *r, const char *name, size_t rule, int dry_run, int64_t now,
		       struct berth_retention_stats *st)
{
	struct berth_retention *ret = r->retention;
	const struct compiled_retention_rule *c = &ret->rules[rule];
	struct repo_state s = { .reg = r, .name = name,
				.revs = BERTH_MAP_INIT(sizeof(struct rev_info), sizeof(struct berth_oid)) };
	int untagged = c->untagged_after_ms >= 0;
	/* A tag that cannot be read counts in no ordering and may name anything: the repository
	 * is left alone this run. */
	int rc = collect_tags(&s);
	if (rc < 0 || s.errors) {
		if (rc < 0)
			berth_warn("retention: %s: cannot list its tags: %s", name, berth_err_reason(rc));
		st->errors++;
		goto out;
	}
	if (untagged && ((rc = collect_revisions(&s)) < 0 || (rc = read_revisions(&s)) < 0)) {
		berth_warn("retention: %s: cannot read its manifests: %s (no untagged manifest removed)", name,
			   berth_err_reason(rc));
		st->errors++;
		untagged = 0;
	}
	if (c->keep_pulled_within_ms >= 0)
		read_pulls(&s);
	decide_tags(&s, c, now);
	if (untagged)
		decide_untagged(&s, c, now);
	else
		keep_all_revisions(&s);
	if (dry_run) {
		report_decisions(&s, ret, rule, st);
		goto out;
	}
	berth_repo_lock_exclusive(r, name);
	remove_tags(&s, ret, rule, st);
	if (untagged) {
		/* a tag whose removal was dropped still keeps its manifest */
		decide_untagged(&s, c, now);
		remove_untagged(&s, ret, rule, st);
	}
	berth_repo_unlock(r, name);
out:
	repo_state_release(&s);
}

/* The first rule whose pattern matches name, or -1. */
static long governing_rule(const struct berth_retention *ret, const char *name)
{
	for (size_t i = 0; i < ret->n; i++)
		if (regexec(&ret->rules[i].repository, name, 0, NULL, 0) == 0)
			return (long)i;
	return -1;
}

int berth_retention_apply(struct berth_retention_stats *out, struct berth_registry *r, int dry_run)
{
	struct berth_retention *ret = r->retention;
	struct berth_retention_stats st = { 0 };
	struct berth_strvec repos = { 0 };
	uint64_t t0 = berth_now_ns();
	int rc;

	if (out)
		*out = st;
	if (!ret || ret->n == 0)
		return 0;
	if (pthread_mutex_trylock(&ret->running) != 0)
		return BERTH_EBUSY;
	dry_run = dry_run || ret->dry_run;
	int64_t now = (int64_t)time(NULL);
	if ((rc = berth_catalog(&repos, r)) < 0) {
		berth_warn("retention: cannot list the repositories: %s", berth_err_reason(rc));
		goto out_unlock;
	}
	for (size_t i = 0; i < repos.n; i++) {
		long rule = governing_rule(ret, repos.items[i]);
		if (rule < 0)
			continue;
		st.repositories++;
		apply_repo(r, repos.items[i], (size_t)rule, dry_run, now, &st);
	}
	berth_info("retention%s: %llu repositories, %llu tags and %llu untagged manifests %s, %llu skipped "
		   "(changed meanwhile), %llu errors, in %llu ms",
		   dry_run ? " (dry run)" : "", (unsigned long long)st.repositories,
		   (unsigned long long)st.tags_removed, (unsigned long long)st.manifests_removed,
		   dry_run ? "would be removed" : "removed", (unsigned long long)st.skipped,
		   (unsigned long long)st.errors, (unsigned long long)((berth_now_ns() - t0) / 1000000));
	if (out)
		*out = st;
out_unlock:
	berth_strvec_release(&repos);
	pthread_mutex_unlock(&ret->running);
	return rc;
}

static void run_periodically(void *arg)
{
	struct berth_retention_stats st;
	berth_retention_apply(&st, arg, 0);
}

int berth_retention_start(struct berth_periodic **out, struct berth_registry *r, int64_t interval_ms)
{
	*out = NULL;
	if (!berth_retention_configured(r) || interval_ms <= 0)
		return 0;
	return berth_periodic_start(out, interval_ms, interval_ms, run_periodically, r);
}

void berth_retention_stop(struct berth_periodic *p)
{
	berth_periodic_stop(p);
}

struct berth_pulls *berth_retention_pulls(const struct berth_registry *r)
{
	return r->retention ? r->retention->pulls : NULL;
}

void berth_retention_record_pull(struct berth_registry *r, const char *name, const char *reference)
{
	struct berth_retention *ret = r->retention;
	if (!ret || !atomic_load_explicit(&ret->recording, memory_order_relaxed))
		return; /* no rule with keep_pulled_within, or not berth serve: no cost */
	long rule = governing_rule(ret, name);
	if (rule < 0 || ret->rules[rule].keep_pulled_within_ms < 0)
		return;
	berth_pulls_record(ret->pulls, name, reference, (int64_t)time(NULL));
}

static void flush_pulls(void *arg)
{
	struct berth_registry *r = arg;
	int rc = berth_pulls_flush(r->retention->pulls, r->driver);
	if (rc < 0)
		berth_warn("retention: cannot record pulls in the store: %s (retried at the next flush)",
			   berth_err_reason(rc));
}

int berth_retention_pulls_start(struct berth_periodic **out, struct berth_registry *r, int64_t flush_ms)
{
	*out = NULL;
	if (!r->retention || !r->retention->pulls || flush_ms <= 0)
		return 0;
	if (berth_periodic_start(out, flush_ms, flush_ms, flush_pulls, r) < 0)
		return BERTH_ERROR;
	atomic_store(&r->retention->recording, 1);
	return 0;
}

void berth_retention_pulls_stop(struct berth_periodic *p, struct berth_registry *r)
{
	if (!p)
		return;
	atomic_store(&r->retention->recording, 0);
	berth_periodic_stop(p);
	flush_pulls(r); /* the pulls since the last flush */
}

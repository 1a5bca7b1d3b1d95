/*
 * Garbage collection's mark phase (gc_int.h, berth_gc__mark_phase): phase 1 of gc.c's run.
 *
 * Repository by repository (sorted, as the catalog finds them): list its revisions, read and
 * parse each manifest, read its tags (delete_untagged), decide which revisions are kept, then
 * mark what they reference. Repositories are read on the run's team of threads, several at
 * once (mark_repos), and marked one at a time in repository order: the report lines come in
 * Distribution's order, and a repository's revisions to delete come next to each other, by
 * digest, as the sweep needs them (the marked set itself would not care: marking is a union).
 * Any storage error here aborts the run before anything is deleted.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/team.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/gc_int.h"
#include "registry/link.h"
#include "registry/manifest.h"
#include "registry/paths.h"
#include "registry/repo_walk.h"
#include "storage/storage.h"

/* The largest manifest GC will read (Distribution caps pushes at 4 MiB). */
#define GC_MANIFEST_MAX (64u << 20)

/* A revision of the repository being marked. */
struct rev {
	struct berth_oid d;
	struct berth_oid subject;
	size_t ref_off, ref_n; /* into repo.refs */
	uint8_t has_subject;
	uint8_t missing; /* its blob is gone: reported, never marked nor deleted */
	uint8_t tagged;
	uint8_t young; /* online: its blob was pushed or referenced within the delay */
	uint8_t kept;
};

struct repo {
	const char *name;
	struct rev *revs;
	size_t n, alloc;
	struct berth_oid *refs;
	size_t nrefs, refs_alloc;
	int keep_all; /* tags unreadable: keep every revision */
	int rc;       /* reading it failed (a storage error, reported) */
};

/* ---- repositories (as the catalog finds them) ---- */

static void found_repo(const char *name, void *payload)
{
	struct gc *g = payload;
	berth_strvec_push(&g->repos, name);
}

/* g->repos, sorted. */
static int find_repos(struct gc *g)
{
	struct berth_repo_walk w = { .found = found_repo, .payload = g };
	int rc = berth_repo_walk(g->d, &w);
	if (rc == BERTH_ENOTFOUND)
		return 0; /* no repositories */
	if (rc < 0) {
		berth_gc__fail(g, "cannot list %s: %s", w.failed, berth_strerror(rc));
		return rc;
	}
	berth_strvec_sort(&g->repos);
	return 0;
}

/* ---- reading a repository ---- */

/* What the callbacks of a repository's listings (add_revision, read_tag) work on. */
struct list_ctx {
	struct gc *g;
	struct repo *r;
	uint8_t alg; /* of the revisions listed; 0 for the tags */
	int rc;      /* a callback's failure (reported there) */
};

static int add_revision(const char *path, void *payload)
{
	struct list_ctx *c = payload;
	struct rev v;
	memset(&v, 0, sizeof(v));
	const char *alg = berth_gc__alg_str(c->alg);
	if (berth_oid_from_parts(&v.d, alg, strlen(alg), berth_gc__base_name(path)) < 0)
		return 0; /* not a digest: not ours to judge */
	char link[BERTH_PATH_MAX];
	struct berth_stat st;
	if (berth_gc__fmt_path(link, "%s/link", path) < 0)
		return 0;
	int rc = berth_storage_stat(&st, c->g->d, link);
	if (rc == BERTH_ENOTFOUND || (rc == 0 && st.is_dir))
		return 0; /* no link: not a revision (Distribution only enumerates link files) */
	if (rc < 0) {
		berth_gc__fail(c->g, "cannot stat %s: %s", link, berth_strerror(rc));
		c->rc = rc;
		return 1;
	}
	BERTH_VEC_GROW(c->r->revs, c->r->n + 1, c->r->alloc);
	c->r->revs[c->r->n++] = v;
	return 0;
}

static void add_ref(struct repo *r, const struct berth_oid *d)
{
	BERTH_VEC_GROW(r->refs, r->nrefs + 1, r->refs_alloc);
	r->refs[r->nrefs++] = *d;
}

static void add_ref_str(struct repo *r, const char *s)
{
	struct berth_oid d;
	if (s && berth_oid_parse(&d, s) == 0)
		add_ref(r, &d);
}

static void lenient_digests(struct repo *r, json_t *arr, const char *key)
{
	size_t i;
	json_t *it;
	if (!json_is_array(arr))
		return;
	json_array_foreach(arr, i, it)
		add_ref_str(r, json_string_value(json_object_get(it, key)));
}

/*
 * A manifest that does not validate (schema1, an OCI 1.1-rc artifact manifest, a body edited by
 * hand...): keep every digest its JSON names where a manifest names blobs, so that nothing it may
 * need is deleted. Distribution reads schema1's fsLayers[].blobSum as its references.
 */
static void lenient_refs(struct repo *r, struct rev *v, const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return;
	}
	add_ref_str(r,
		    json_string_value(json_object_get(json_object_get(root, "config"), "digest")));
	lenient_digests(r, json_object_get(root, "layers"), "digest");
	lenient_digests(r, json_object_get(root, "manifests"), "digest");
	lenient_digests(r, json_object_get(root, "blobs"), "digest");
	lenient_digests(r, json_object_get(root, "fsLayers"), "blobSum");
	const char *subject =
	    json_string_value(json_object_get(json_object_get(root, "subject"), "digest"));
	if (subject && berth_oid_parse(&v->subject, subject) == 0)
		v->has_subject = 1;
	json_decref(root);
}

/* Reads and parses revision i, recording what it references. <0 only for storage errors. */
static int load_revision(struct gc *g, struct repo *r, size_t i)
{
	struct rev *v = &r->revs[i];
	char ds[BERTH_DIGEST_STR_MAX], path[BERTH_PATH_MAX];
	char *body = NULL;
	size_t len = 0;

	berth_oid_fmt(ds, &v->d);
	v->ref_off = r->nrefs;
	int rc = berth_path_blob_data(path, ds);
	if (rc < 0)
		return rc;
	rc = berth_storage_get_content(&body, &len, g->d, path, GC_MANIFEST_MAX);
	if (rc == BERTH_ENOTFOUND) {
		berth_gc__warn(g, "%s: manifest %s: blob is missing, skipping it", r->name, ds);
		v->missing = 1;
		return 0;
	}
	if (rc == BERTH_ETOOLARGE) {
		berth_gc__warn(
		    g, "%s: manifest %s: larger than %u bytes, not reading what it references",
		    r->name, ds, GC_MANIFEST_MAX);
		return 0;
	}
	if (rc < 0) {
		berth_gc__fail(g, "%s: cannot read manifest %s: %s", r->name, ds,
			       berth_strerror(rc));
		return rc;
	}

	struct berth_manifest *m = NULL;
	rc = berth_manifest_parse(&m, NULL, body, len);
	if (rc == 0) {
		if (m->has_config)
			add_ref_str(r, m->config.digest);
		for (size_t k = 0; k < m->n_layers; k++)
			add_ref_str(r, m->layers[k].digest);
		for (size_t k = 0; k < m->n_manifests; k++)
			add_ref_str(r, m->manifests[k].digest);
		if (m->has_subject && berth_oid_parse(&v->subject, m->subject.digest) == 0)
			v->has_subject = 1;
		berth_manifest_free(m);
	} else if (rc == BERTH_EINVALID || rc == BERTH_EDIGEST || rc == BERTH_EUNSUPPORTED) {
		berth_gc__warn(
		    g, "%s: manifest %s does not parse (%s); keeping the digests its JSON names",
		    r->name, ds, berth_err_reason(rc));
		lenient_refs(r, v, body, len);
		rc = 0;
	} else {
		berth_gc__fail(g, "%s: cannot parse manifest %s: %s", r->name, ds,
			       berth_strerror(rc));
	}
	free(body);
	v->ref_n = r->nrefs - v->ref_off;
	return rc;
}

static struct rev *find_rev(struct repo *r, const struct berth_oid *d)
{
	return bsearch(d, r->revs, r->n, sizeof(*r->revs), berth_oid_cmp);
}

static int read_tag(const char *path, void *payload)
{
	struct list_ctx *c = payload;
	char link[BERTH_PATH_MAX];
	char *body = NULL;
	size_t len = 0;
	if (berth_gc__fmt_path(link, "%s/current/link", path) < 0)
		return 0;
	int rc = berth_storage_get_content(&body, &len, c->g->d, link, BERTH_LINK_MAX);
	if (rc == BERTH_ENOTFOUND)
		return 0; /* a tag without current link names nothing (as Distribution's Lookup) */
	if (rc < 0 && rc != BERTH_ETOOLARGE) {
		berth_gc__fail(c->g, "%s: cannot read %s: %s", c->r->name, link,
			       berth_strerror(rc));
		c->rc = rc;
		return 1;
	}
	char s[BERTH_DIGEST_STR_MAX];
	struct berth_oid d;
	if (rc == 0)
		rc = berth_link_parse(s, body, len);
	if (rc < 0 || berth_oid_parse(&d, s) < 0) {
		berth_gc__warn(c->g,
			       "%s: tag %s: unreadable current link; keeping every manifest "
			       "of the repository",
			       c->r->name, berth_gc__base_name(path));
		c->r->keep_all = 1;
	} else {
		struct rev *v = find_rev(c->r, &d);
		if (v)
			v->tagged = 1;
	}
	free(body);
	return 0;
}

/* Marks, within the repository, every revision reachable from the stack (already kept). */
static void keep_closure(struct repo *r, size_t *stack, size_t sp)
{
	while (sp) {
		struct rev *v = &r->revs[stack[--sp]];
		for (size_t k = 0; k < v->ref_n; k++) {
			struct rev *c = find_rev(r, &r->refs[v->ref_off + k]);
			if (c && !c->kept) {
				c->kept = 1;
				stack[sp++] = (size_t)(c - r->revs);
			}
		}
	}
}

/*
 * Which revisions stay. Without delete_untagged: all. With it: the tagged ones (and online
 * the young ones: a child pushed before its index, a manifest just pushed by digest), what they
 * reference that is a revision here (index children, transitively), and the revisions whose
 * subject stays (referrers, transitively), until nothing changes.
 */
static void decide_kept(struct repo *r, int delete_untagged)
{
	if (!delete_untagged || r->keep_all) {
		for (size_t i = 0; i < r->n; i++)
			r->revs[i].kept = 1;
		return;
	}
	size_t *stack = berth_malloc((r->n ? r->n : 1) * sizeof(*stack));
	size_t sp = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (r->revs[i].tagged || r->revs[i].young) {
			r->revs[i].kept = 1;
			stack[sp++] = i;
		}
	}
	for (;;) {
		keep_closure(r, stack, sp);
		sp = 0;
		for (size_t i = 0; i < r->n; i++) {
			struct rev *v = &r->revs[i];
			if (v->kept || !v->has_subject)
				continue;
			struct rev *s = find_rev(r, &v->subject);
			if (s && s->kept) {
				v->kept = 1;
				stack[sp++] = i;
			}
		}
		if (!sp)
			break;
	}
	free(stack);
}

/* Online: which untagged revisions are younger than the cutoff (by their blob's mtime). */
static void find_young(struct gc *g, struct repo *r)
{
	char ds[BERTH_DIGEST_STR_MAX], path[BERTH_PATH_MAX];
	struct berth_stat st;
	for (size_t i = 0; i < r->n; i++) {
		struct rev *v = &r->revs[i];
		if (v->tagged || v->missing)
			continue;
		berth_oid_fmt(ds, &v->d);
		if (berth_path_blob_data(path, ds) < 0)
			continue;
		int rc = berth_storage_stat(&st, g->d, path);
		v->young = rc < 0 || st.mtime >= g->cutoff; /* unsure: keep */
	}
}

/*
 * Lists dir of repository r (a missing one is empty) through each, with a list_ctx of alg. <0: a
 * storage error, reported as "<repository>: cannot list <what>: <error>", or each's failure.
 */
static int list_repo_dir(struct gc *g, struct repo *r, uint8_t alg, const char *dir, berth_list_cb each,
			 const char *what)
{
	struct list_ctx c = { g, r, alg, 0 };
	int rc = berth_storage_list(g->d, dir, each, &c);
	if (c.rc < 0)
		rc = c.rc;
	if (rc == BERTH_ENOTFOUND)
		rc = 0;
	if (rc < 0)
		berth_gc__fail(g, "%s: cannot list %s: %s", r->name, what, berth_strerror(rc));
	return rc;
}

/*
 * Reads repository r->name (any thread of the team): its revisions, their manifests, its tags,
 * then which revisions stay (r->revs[].kept). <0: a storage error (reported), the run aborts.
 */
static int load_repo(struct gc *g, struct repo *r)
{
	char path[BERTH_PATH_MAX];
	int rc = 0;

	for (uint8_t alg = BERTH_ALG_SHA256; alg <= BERTH_ALG_SHA512; alg++) {
		if ((rc = berth_gc__fmt_path(path, BERTH_REPOS_ROOT "/%s/_manifests/revisions/%s",
					     r->name, berth_gc__alg_str(alg))) < 0)
			return rc;
		if ((rc = list_repo_dir(g, r, alg, path, add_revision, path)) < 0)
			return rc;
	}
	if (r->n > 1)
		qsort(r->revs, r->n, sizeof(*r->revs), berth_oid_cmp);

	for (size_t i = 0; i < r->n; i++) {
		if ((rc = load_revision(g, r, i)) < 0)
			return rc;
		if ((i + 1) % GC_PROGRESS_EVERY == 0)
			berth_gc__progress(g, "mark: %s: read %zu/%zu manifests", r->name, i + 1,
					   r->n);
	}

	if (g->o->delete_untagged) {
		if ((rc = berth_gc__fmt_path(path, BERTH_REPOS_ROOT "/%s/_manifests/tags",
					     r->name)) < 0)
			return rc;
		if ((rc = list_repo_dir(g, r, 0, path, read_tag, "tags")) < 0)
			return rc;
	}
	if (g->o->registry && g->o->delete_untagged && !r->keep_all)
		find_young(g, r);
	decide_kept(r, g->o->delete_untagged);
	return 0;
}

/* Marks what the loaded repository ri keeps, and queues the rest for deletion (one thread at a
 * time, in repository order: the report lines come in Distribution's order). */
static void mark_repo(struct gc *g, size_t ri, struct repo *r)
{
	char ds[BERTH_DIGEST_STR_MAX];
	berth_gc__say(g, "%s", r->name);
	for (size_t i = 0; i < r->n; i++) {
		struct rev *v = &r->revs[i];
		if (v->missing)
			continue;
		berth_oid_fmt(ds, &v->d);
		if (!v->kept) {
			if (!g->o->registry)
				berth_gc__item(g, "%s: manifest eligible for deletion: %s", r->name,
					       ds);
			BERTH_VEC_GROW(g->doomed, g->ndoomed + 1, g->doomed_alloc);
			g->doomed[g->ndoomed].repo = ri;
			g->doomed[g->ndoomed].d = v->d;
			g->ndoomed++;
			continue;
		}
		berth_gc__say(g, "%s: marking manifest %s", r->name, ds);
		berth_gc__mark(g, &v->d);
		g->st.manifests_marked++;
		for (size_t k = 0; k < v->ref_n; k++) {
			const struct berth_oid *ref = &r->refs[v->ref_off + k];
			if (berth_gc__mark(g, ref)) {
				berth_oid_fmt(ds, ref);
				berth_gc__say(g, "%s: marking blob %s", r->name, ds);
			}
		}
	}
	berth_gc__progress(g, "mark: repository %zu/%zu %s: %zu manifests", ri + 1, g->repos.n,
			   r->name, r->n);
}

/*
 * Repositories are read on the run's team (reading and parsing manifests is CPU and page
 * cache), a thread starting the next one as soon as it is done with one, and marked in order
 * (berth_team_run_ordered): one large repository holds up only the thread reading it. No
 * repository starts to be read while what waits for its turn to be marked holds GC_READ_AHEAD
 * bytes (the repository next in order always starts), so memory behind a large repository
 * stays under GC_READ_AHEAD plus the repositories being read when it is reached.
 */
#define GC_READ_AHEAD (64u << 20)

struct mark_run {
	struct gc *g;
	struct repo *repos;	     /* g->repos.n, in g->repos order */
	atomic_size_t first_failed; /* the first repository that could not be read; SIZE_MAX */
};

/* The memory a read repository holds until it is marked. */
static size_t repo_bytes(const struct repo *r)
{
	return r->alloc * sizeof(*r->revs) + r->refs_alloc * sizeof(*r->refs);
}

static void repo_release(struct repo *r)
{
	free(r->revs);
	free(r->refs);
	r->revs = NULL;
	r->refs = NULL;
	r->n = r->alloc = r->nrefs = r->refs_alloc = 0;
}

/* Reads repository i (any thread of the team). */
static size_t read_step(void *arg, size_t i)
{
	struct mark_run *m = arg;
	struct repo *r = &m->repos[i];
	/* the run stops when repository first_failed's turn comes: none after it is marked */
	size_t failed = atomic_load(&m->first_failed);
	if (i > failed)
		return 0;
	r->rc = load_repo(m->g, r);
	while (r->rc < 0 && i < failed &&
	       !atomic_compare_exchange_weak(&m->first_failed, &failed, i))
		;
	return repo_bytes(r);
}

/* Marks repository i, once every repository before it is marked (one thread at a time). */
static int mark_step(void *arg, size_t i)
{
	struct mark_run *m = arg;
	struct repo *r = &m->repos[i];
	if (r->rc < 0)
		return r->rc;
	mark_repo(m->g, i, r);
	repo_release(r);
	return 0;
}

static int mark_repos(struct gc *g)
{
	struct mark_run m = { g, berth_calloc(g->repos.n ? g->repos.n : 1, sizeof(*m.repos)),
			      SIZE_MAX };
	for (size_t i = 0; i < g->repos.n; i++)
		m.repos[i].name = g->repos.items[i];
	int rc =
	    berth_team_run_ordered(g->team, read_step, mark_step, &m, g->repos.n, GC_READ_AHEAD);
	/* a failed run leaves read repositories behind it unmarked */
	for (size_t i = 0; i < g->repos.n; i++)
		repo_release(&m.repos[i]);
	free(m.repos);
	return rc;
}

int berth_gc__mark_phase(struct gc *g)
{
	berth_gc__progress(g, "mark: listing repositories");
	int rc = find_repos(g);
	if (rc < 0)
		return rc;
	g->st.repositories = g->repos.n;
	if ((rc = mark_repos(g)) < 0)
		return rc;
	g->st.blobs_marked = g->mark256.n + g->mark512.n;
	return 0;
}

/*
 * Storage consistency check and repair (see fsck.h).
 *
 * Phases:
 *   1. walk blobs/, hash every data file: a table of digest -> state (ok, corrupt, unreadable).
 *   2. walk repositories/, check each layer / revision / tag index link as it comes; remember
 *      tags' current links, the revisions and the layer links per repository, and the upload
 *      sessions.
 *   3. tags (against the revisions), manifests (their references), uploads, orphans.
 *   4. with a host root: scan the directory tree for temp files and unexpressible names.
 *   5. repair (nothing is changed before the scan is complete), then report every problem.
 * Problems whose repair depends on another one (the links to a corrupt blob, removable once the
 * blob has been moved aside) carry that blob's digest and are skipped if the move failed.
 */
#include "registry/fsck.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/err.h"
#include "core/map.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/link.h"
#include "registry/manifest.h"
#include "registry/paths.h"
#include "registry/reference.h"
#include "storage/storage.h"

#define FSCK_MANIFEST_MAX (64u << 20) /* largest manifest read for checking */
#define FSCK_HASH_CHUNK (1u << 20)
#define FSCK_PROGRESS_EVERY 1000
#define LOST_FOUND "lost+found"

static const char *const kind_names[BERTH_FSCK_KIND_COUNT] = {
	[BERTH_FSCK_CORRUPT_BLOB] = "corrupt-blob",
	[BERTH_FSCK_BAD_LINK] = "bad-link",
	[BERTH_FSCK_DANGLING_LINK] = "dangling-link",
	[BERTH_FSCK_CORRUPT_MANIFEST] = "corrupt-manifest",
	[BERTH_FSCK_MISSING_REFERENCE] = "missing-reference",
	[BERTH_FSCK_ORPHAN_BLOB] = "orphan-blob",
	[BERTH_FSCK_TEMP_FILE] = "temp-file",
	[BERTH_FSCK_STALE_UPLOAD] = "stale-upload",
	[BERTH_FSCK_INCOMPLETE_TAG] = "incomplete-tag",
	[BERTH_FSCK_UNKNOWN_FILE] = "unknown-file",
	[BERTH_FSCK_UNREADABLE] = "unreadable",
};

const char *berth_fsck_kind_name(enum berth_fsck_kind k)
{
	return (unsigned)k < BERTH_FSCK_KIND_COUNT ? kind_names[k] : "unknown";
}

/* ---- blob table: digest string -> state (the entries of every map below) ---- */

enum blob_state { BLOB_OK = 1, BLOB_CORRUPT, BLOB_UNREADABLE, BLOB_MOVED };

struct blob_ent {
	char *digest; /* the key, owned by the map (core/map.h) */
	uint64_t size;
	uint8_t state;
	uint8_t referenced;
	uint32_t links; /* links naming it (for the corrupt blob's detail) */
};

/* ---- problems ---- */

enum plan {
	PLAN_NONE,
	PLAN_MOVE_BLOB,    /* arg: the blob's digest */
	PLAN_REMOVE,       /* arg: storage path to remove (file or directory) */
	PLAN_REWRITE_LINK, /* arg: the digest to write into the link at path */
	PLAN_REMOVE_DEBRIS, /* arg: a temp file the driver reported (find_debris) */
};

struct problem {
	enum berth_fsck_kind kind;
	char *path;
	char *digest;
	char *detail;
	enum plan plan;
	char *arg;
	char *depends; /* a corrupt blob that must have been moved first, or NULL */
	enum berth_fsck_action action;
	char *repair;
};

struct tagrec {
	char *repo;
	char *tag;
	char *path; /* of current/link */
};

struct revrec {
	char *repo;
	char *digest;
};

/* A layer link whose blob is missing. */
struct linkrec {
	char *repo;
	char *digest;
	char *path;
};

struct uploadrec {
	char *path; /* storage path of _uploads/<id> */
	int has_startedat;
	uint64_t size;
};

struct fsck {
	struct berth_storage_driver *d;
	const struct berth_fsck_options *o;
	struct berth_fsck_stats st;
	int will_move; /* corrupt blobs are going to be moved aside */

	struct berth_map blobs;     /* digest -> state */
	struct berth_map repos;     /* repository names seen */
	struct berth_map revisions; /* "repo@digest" of revisions whose blob is there */
	struct berth_map layers;    /* "repo@digest" of layer links that stay */
	struct berth_map tagdirs;   /* storage paths of tag directories; referenced: has current/link */
	struct berth_map needed;    /* "repo@digest" of what some manifest of repo references */

	struct problem *p;
	size_t np, ap;
	struct tagrec *tags;
	size_t ntags, atags;
	struct revrec *revs;
	size_t nrevs, arevs;
	struct uploadrec *ups;
	size_t nups, aups;
	struct linkrec *gone_layers;
	size_t ngone, agone;
	uint64_t blobs_total, blob_bytes_total, blob_bytes_seen; /* for progress lines */
	unsigned char *buf; /* hashing buffer */
};

static struct problem *add_problem(struct fsck *f, enum berth_fsck_kind kind, const char *path,
				   const char *digest, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static struct problem *add_problem(struct fsck *f, enum berth_fsck_kind kind, const char *path,
				   const char *digest, const char *fmt, ...)
{
	BERTH_VEC_GROW(f->p, f->np + 1, f->ap);
	struct problem *p = &f->p[f->np++];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->path = berth_strdup(path ? path : "");
	p->digest = digest ? berth_strdup(digest) : NULL;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->detail = berth_strdup(msg);
	f->st.problems[kind]++;
	f->st.total_problems++;
	return p;
}

static void set_plan(struct problem *p, enum plan plan, const char *arg, const char *depends)
{
	p->plan = plan;
	p->arg = arg ? berth_strdup(arg) : NULL;
	p->depends = depends ? berth_strdup(depends) : NULL;
}

/* Printable rendering of untrusted bytes (link contents), at most ~80 characters. */
static void printable(char *out, size_t cap, const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n && w + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (w > 80) {
			w += (size_t)snprintf(out + w, cap - w, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
			out[w++] = (char)c;
		else
			w += (size_t)snprintf(out + w, cap - w, "\\x%02x", c);
	}
	out[w < cap ? w : cap - 1] = '\0';
}

/* ---- path helpers ---- */

/* Splits a relative path into at most max components (modifies s). Returns the count, or
 * max + 1 when there are more. */
static size_t split_path(char *s, char **parts, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(s, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return max + 1;
		parts[n++] = tok;
	}
	return n;
}

/* "<alg>:<hex>" into out if it is a digest berth supports; 0 on success. */
static int make_digest(char out[BERTH_DIGEST_STR_MAX], const char *alg, const char *hex)
{
	int n = snprintf(out, BERTH_DIGEST_STR_MAX, "%s:%s", alg, hex);
	if (n < 0 || n >= BERTH_DIGEST_STR_MAX)
		return BERTH_ERROR;
	return berth_digest_valid(out) ? 0 : -1;
}

/* The directory holding a path's last component ("/a/b/link" -> "/a/b"). */
static void parent_of(char *out, const char *path)
{
	snprintf(out, BERTH_PATH_MAX, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash && slash != out)
		*slash = '\0';
}

/* ---- phase 1: blobs ---- */

static int hash_blob(struct fsck *f, const char *path, enum berth_digest_alg alg, uint64_t *size,
		     char actual[BERTH_DIGEST_STR_MAX])
{
	struct berth_reader *r = NULL;
	struct berth_hasher *h = NULL;
	int rc = berth_storage_reader(&r, f->d, path, 0);
	if (rc < 0)
		return rc;
	berth_hasher_new(&h, alg);
	for (;;) {
		ssize_t n = r->read(r, f->buf, FSCK_HASH_CHUNK);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		berth_hasher_update(h, f->buf, (size_t)n);
	}
	if (rc == 0) {
		*size = berth_hasher_len(h);
		berth_hasher_digest(h, actual);
	}
	berth_hasher_free(h);
	r->close(r);
	return rc;
}

/* Counts the files under blobs/ first, so that progress lines can show the total. */
static int count_blob(const char *path, const struct berth_stat *st, void *payload)
{
	struct fsck *f = payload;
	if (!st->is_dir) {
		f->blobs_total++;
		f->blob_bytes_total += st->size;
	}
	return 0;
}

static int visit_blob(const char *path, const struct berth_stat *st, void *payload)
{
	struct fsck *f = payload;
	if (st->is_dir)
		return 0;
	char rel[BERTH_PATH_MAX];
	char *parts[5];
	snprintf(rel, sizeof(rel), "%s", path + strlen(BERTH_BLOBS_ROOT "/"));
	size_t n = split_path(rel, parts, 4);
	char digest[BERTH_DIGEST_STR_MAX];
	if (n != 4 || strcmp(parts[3], "data") != 0 || make_digest(digest, parts[0], parts[2]) < 0 ||
	    strncmp(parts[1], parts[2], 2) != 0 || strlen(parts[1]) != 2) {
		add_problem(f, BERTH_FSCK_UNKNOWN_FILE, path, NULL,
			    "not a blob data file of the layout (blobs/<alg>/<xx>/<hex>/data)");
		return 0;
	}
	enum berth_digest_alg alg;
	berth_digest_parse(digest, &alg, NULL);
	char actual[BERTH_DIGEST_STR_MAX];
	uint64_t size = 0;
	struct blob_ent *e = berth_map_add(&f->blobs, digest, NULL);
	int rc = hash_blob(f, path, alg, &size, actual);
	if (rc == BERTH_ENOTFOUND) { /* vanished under us: as if it had never been there */
		e->state = 0;
		return 0;
	}
	f->st.blobs++;
	f->blob_bytes_seen += st->size;
	if (f->o->progress && f->st.blobs % FSCK_PROGRESS_EVERY == 0)
		fprintf(f->o->progress, "fsck: %" PRIu64 " of %" PRIu64 " blobs hashed, %" PRIu64
			"%% of %" PRIu64 " bytes\n", f->st.blobs, f->blobs_total,
			f->blob_bytes_total ? f->blob_bytes_seen * 100 / f->blob_bytes_total : 100,
			f->blob_bytes_total);
	if (rc < 0) {
		e->state = BLOB_UNREADABLE;
		add_problem(f, BERTH_FSCK_UNREADABLE, path, digest, "cannot read blob: %s",
			    berth_strerror(rc));
		return 0;
	}
	f->st.blob_bytes += size;
	e->size = size;
	e->state = strcmp(actual, digest) == 0 ? BLOB_OK : BLOB_CORRUPT;
	return 0;
}

/* 1 if a link may name this blob: it is there (or unreadable: we cannot tell), and will stay. */
static int blob_present(struct fsck *f, const char *digest)
{
	struct blob_ent *e = berth_map_find(&f->blobs, digest);
	if (!e || !e->state)
		return 0;
	if (e->state == BLOB_CORRUPT)
		return !f->will_move;
	return 1;
}

/* One more link names the blob (shown with a corrupt blob). */
static void count_link(struct fsck *f, const char *digest)
{
	struct blob_ent *e = berth_map_find(&f->blobs, digest);
	if (e)
		e->links++;
}

/* The blob is in use as garbage-collect sees it: a revision's manifest, or something a revision
 * references. Only these keep a blob; a layer or tag index link alone does not (gc.h). */
static void mark_used(struct fsck *f, const char *digest)
{
	struct blob_ent *e = berth_map_find(&f->blobs, digest);
	if (e)
		e->referenced = 1;
}

/* ---- phase 2: repositories ---- */

enum link_kind { LINK_LAYER, LINK_REVISION, LINK_TAG_INDEX };

static const char *link_kind_name(enum link_kind k)
{
	return k == LINK_LAYER ? "layer link" : k == LINK_REVISION ? "revision link" : "tag index link";
}

/* Reads a link: 0 with a valid digest in out; BERTH_EINVALID (shown in *shown) when the content
 * is not a valid digest; another BERTH_E* code when it cannot be read. */
static int read_link(struct fsck *f, const char *path, char out[BERTH_DIGEST_STR_MAX], char *shown,
		     size_t shown_cap)
{
	char *content = NULL;
	size_t len = 0;
	int rc = berth_storage_get_content(&content, &len, f->d, path, BERTH_LINK_MAX);
	if (rc == BERTH_ETOOLARGE) {
		snprintf(shown, shown_cap, "more than %d bytes", BERTH_LINK_MAX);
		return BERTH_EINVALID;
	}
	if (rc < 0)
		return rc;
	if (berth_link_parse(out, content, len) == 0) {
		free(content);
		return 0;
	}
	char p[256];
	printable(p, sizeof(p), content, len);
	snprintf(shown, shown_cap, "'%s'", p);
	free(content);
	return BERTH_EINVALID;
}

/* The <hex> directory of a digest link, removed as a unit (as Distribution deletes). */
static void check_digest_link(struct fsck *f, enum link_kind kind, const char *repo,
			      const char *path, const char *path_digest)
{
	char content[BERTH_DIGEST_STR_MAX], shown[512], hexdir[BERTH_PATH_MAX];
	char key[BERTH_PATH_MAX + BERTH_DIGEST_STR_MAX];
	f->st.links++;
	parent_of(hexdir, path);
	snprintf(key, sizeof(key), "%s@%s", repo, path_digest);
	int present = blob_present(f, path_digest);
	struct blob_ent *be = berth_map_find(&f->blobs, path_digest);
	int corrupt = be && be->state == BLOB_CORRUPT;

	int rc = read_link(f, path, content, shown, sizeof(shown));
	if (rc == BERTH_ENOTFOUND)
		return;
	count_link(f, path_digest);
	if (kind == LINK_REVISION)
		mark_used(f, path_digest);
	if (rc < 0 && rc != BERTH_EINVALID) {
		add_problem(f, BERTH_FSCK_UNREADABLE, path, path_digest, "cannot read %s: %s",
			    link_kind_name(kind), berth_strerror(rc));
		present = 1; /* unknown: keep believing in it */
	} else if (rc == BERTH_EINVALID || strcmp(content, path_digest) != 0) {
		if (rc == 0)
			snprintf(shown, sizeof(shown), "%s", content);
		if (present) {
			struct problem *p = add_problem(f, BERTH_FSCK_BAD_LINK, path, path_digest,
							"%s holds %s, expected %s", link_kind_name(kind),
							shown, path_digest);
			set_plan(p, PLAN_REWRITE_LINK, path_digest, NULL);
		} else {
			struct problem *p = add_problem(f, BERTH_FSCK_BAD_LINK, path, path_digest,
							"%s holds %s, expected %s, whose blob is %s",
							link_kind_name(kind), shown, path_digest,
							corrupt ? "corrupt" : "missing");
			set_plan(p, PLAN_REMOVE, hexdir, corrupt ? path_digest : NULL);
		}
	} else if (!present && kind == LINK_LAYER && !corrupt) {
		/* Dangling only if a manifest of the repository needs it: known after phase 3. */
		BERTH_VEC_GROW(f->gone_layers, f->ngone + 1, f->agone);
		struct linkrec *l = &f->gone_layers[f->ngone++];
		*l = (struct linkrec){ berth_strdup(repo), berth_strdup(path_digest), berth_strdup(path) };
	} else if (!present) {
		struct problem *p = add_problem(f, BERTH_FSCK_DANGLING_LINK, path, path_digest,
						"%s names %s, whose blob is %s", link_kind_name(kind),
						path_digest, corrupt ? "corrupt (moved aside)" : "missing");
		set_plan(p, PLAN_REMOVE, hexdir, corrupt ? path_digest : NULL);
	}
	if (!present)
		return;
	if (kind == LINK_LAYER)
		berth_map_add(&f->layers, key, NULL);
	if (kind == LINK_REVISION && !berth_map_find(&f->revisions, key)) {
		berth_map_add(&f->revisions, key, NULL);
		BERTH_VEC_GROW(f->revs, f->nrevs + 1, f->arevs);
		f->revs[f->nrevs++] = (struct revrec){ berth_strdup(repo), berth_strdup(path_digest) };
	}
}

static void visit_repo_file(struct fsck *f, const char *path, const char *repo, char **rest, size_t n)
{
	char digest[BERTH_DIGEST_STR_MAX];
	const char *area = rest[0];

	if (strcmp(area, "_layers") == 0) {
		if (n == 4 && strcmp(rest[3], "link") == 0 && make_digest(digest, rest[1], rest[2]) == 0) {
			check_digest_link(f, LINK_LAYER, repo, path, digest);
			return;
		}
	} else if (strcmp(area, "_manifests") == 0) {
		if (n == 5 && strcmp(rest[1], "revisions") == 0 && strcmp(rest[4], "link") == 0 &&
		    make_digest(digest, rest[2], rest[3]) == 0) {
			check_digest_link(f, LINK_REVISION, repo, path, digest);
			return;
		}
		if (n == 5 && strcmp(rest[1], "tags") == 0 && strcmp(rest[3], "current") == 0 &&
		    strcmp(rest[4], "link") == 0) {
			char tagdir[BERTH_PATH_MAX];
			if (berth_path_tag_dir(tagdir, repo, rest[2]) == 0) {
				struct blob_ent *td = berth_map_add(&f->tagdirs, tagdir, NULL);
				td->referenced = 1;
			}
			BERTH_VEC_GROW(f->tags, f->ntags + 1, f->atags);
			f->tags[f->ntags++] = (struct tagrec){ berth_strdup(repo), berth_strdup(rest[2]),
							       berth_strdup(path) };
			return;
		}
		if (n == 7 && strcmp(rest[1], "tags") == 0 && strcmp(rest[3], "index") == 0 &&
		    strcmp(rest[6], "link") == 0 && make_digest(digest, rest[4], rest[5]) == 0) {
			check_digest_link(f, LINK_TAG_INDEX, repo, path, digest);
			return;
		}
	} else if (strcmp(area, "_uploads") == 0 && n >= 3) {
		/* _uploads/<id>/{startedat,data,committed,hashstates/<alg>/<offset>,tag/current/link} */
		struct uploadrec *u = f->nups ? &f->ups[f->nups - 1] : NULL;
		char dir[BERTH_PATH_MAX];
		if (u && berth_path_upload_dir(dir, repo, rest[1]) == 0 && strcmp(u->path, dir) == 0) {
			if (n == 3 && strcmp(rest[2], "startedat") == 0) {
				u->has_startedat = 1;
				return;
			}
			if (n == 3 && strcmp(rest[2], "data") == 0) {
				struct berth_stat st;
				if (berth_storage_stat(&st, f->d, path) == 0)
					u->size = st.size;
				return;
			}
			if (n == 5 && strcmp(rest[2], "hashstates") == 0)
				return;
			/* the digest a commit cut off by a crash had verified (registry/uploads.c) */
			if (n == 3 && strcmp(rest[2], "committed") == 0)
				return;
			/* a new tag's directory staged by a manifest PUT that a crash cut off
			 * (registry/manifest_store.c, create_tag_dir); purged with the session */
			if (n == 5 && strcmp(rest[2], "tag") == 0 && strcmp(rest[3], "current") == 0 &&
			    strcmp(rest[4], "link") == 0)
				return;
		}
	}
	add_problem(f, BERTH_FSCK_UNKNOWN_FILE, path, NULL, "not part of the repository layout");
}

static int visit_repo_entry(const char *path, const struct berth_stat *st, void *payload)
{
	struct fsck *f = payload;
	char rel[BERTH_PATH_MAX];
	char *parts[64];
	snprintf(rel, sizeof(rel), "%s", path + strlen(BERTH_REPOS_ROOT "/"));
	size_t n = split_path(rel, parts, 63);

	/* The repository name is every component before the first one starting with '_'. */
	size_t i = 0;
	while (i < n && i < 63 && parts[i][0] != '_')
		i++;
	if (i == n || n > 63) {
		if (!st->is_dir)
			add_problem(f, BERTH_FSCK_UNKNOWN_FILE, path, NULL,
				    "file outside any repository's _layers, _manifests or _uploads");
		return 0;
	}
	char repo[BERTH_PATH_MAX];
	size_t w = 0;
	for (size_t k = 0; k < i; k++)
		w += (size_t)snprintf(repo + w, sizeof(repo) - w, "%s%s", k ? "/" : "", parts[k]);
	if (i == 0) {
		if (!st->is_dir)
			add_problem(f, BERTH_FSCK_UNKNOWN_FILE, path, NULL, "file outside any repository");
		return 0;
	}
	struct blob_ent *re = berth_map_add(&f->repos, repo, NULL);
	if (!re->referenced) {
		re->referenced = 1;
		f->st.repositories++;
	}
	if (st->is_dir) {
		/* An upload session is its directory: a crash can leave one empty. */
		if (n - i == 2 && strcmp(parts[i], "_uploads") == 0) {
			BERTH_VEC_GROW(f->ups, f->nups + 1, f->aups);
			f->ups[f->nups++] = (struct uploadrec){ berth_strdup(path), 0, 0 };
		}
		if (n - i == 3 && strcmp(parts[i], "_manifests") == 0 && strcmp(parts[i + 1], "tags") == 0)
			berth_map_add(&f->tagdirs, path, NULL);
		return 0;
	}
	visit_repo_file(f, path, repo, parts + i, n - i);
	return 0;
}

/* ---- phase 3: tags, manifests, uploads, orphans ---- */

static void check_tags(struct fsck *f)
{
	for (size_t i = 0; i < f->ntags; i++) {
		struct tagrec *t = &f->tags[i];
		char digest[BERTH_DIGEST_STR_MAX], shown[512], tagdir[BERTH_PATH_MAX];
		char key[BERTH_PATH_MAX + BERTH_DIGEST_STR_MAX];
		f->st.tags++;
		f->st.links++;
		int rc = read_link(f, t->path, digest, shown, sizeof(shown));
		if (rc == BERTH_ENOTFOUND)
			continue;
		if (rc == BERTH_EINVALID) {
			add_problem(f, BERTH_FSCK_BAD_LINK, t->path, NULL,
				    "tag %s:%s current link holds %s, not a digest", t->repo, t->tag, shown);
			continue;
		}
		if (rc < 0) {
			add_problem(f, BERTH_FSCK_UNREADABLE, t->path, NULL, "cannot read tag link: %s",
				    berth_strerror(rc));
			continue;
		}
		count_link(f, digest);
		snprintf(key, sizeof(key), "%s@%s", t->repo, digest);
		if (berth_map_find(&f->revisions, key))
			continue;
		berth_path_tag_dir(tagdir, t->repo, t->tag);
		struct blob_ent *be = berth_map_find(&f->blobs, digest);
		int corrupt = be && be->state == BLOB_CORRUPT;
		struct problem *p;
		if (!blob_present(f, digest))
			p = add_problem(f, BERTH_FSCK_DANGLING_LINK, t->path, digest,
					"tag %s:%s names %s, whose blob is %s", t->repo, t->tag, digest,
					corrupt ? "corrupt (moved aside)" : "missing");
		else
			p = add_problem(f, BERTH_FSCK_DANGLING_LINK, t->path, digest,
					"tag %s:%s names %s, which is not a manifest revision of %s",
					t->repo, t->tag, digest, t->repo);
		set_plan(p, PLAN_REMOVE, tagdir, corrupt ? digest : NULL);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_tag_dirs(struct fsck *f)
{
	char **v = NULL;
	size_t n = 0, a = 0;
	struct blob_ent *e;
	for (size_t i = 0; (e = berth_map_next(&f->tagdirs, &i));) {
		if (!e->referenced) {
			BERTH_VEC_GROW(v, n + 1, a);
			v[n++] = e->digest;
		}
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct problem *p = add_problem(f, BERTH_FSCK_INCOMPLETE_TAG, v[i], NULL,
						"tag directory without current/link (a tag write cut "
						"short): listed, but resolves to nothing");
		set_plan(p, PLAN_REMOVE, v[i], NULL);
	}
	free(v);
}

static int layer_present(struct fsck *f, const char *repo, const char *digest)
{
	char key[BERTH_PATH_MAX + BERTH_DIGEST_STR_MAX];
	snprintf(key, sizeof(key), "%s@%s", repo, digest);
	return berth_map_find(&f->layers, key) != NULL;
}

static int revision_present(struct fsck *f, const char *repo, const char *digest)
{
	char key[BERTH_PATH_MAX + BERTH_DIGEST_STR_MAX];
	snprintf(key, sizeof(key), "%s@%s", repo, digest);
	return berth_map_find(&f->revisions, key) != NULL;
}

static int is_manifest_mt(const char *mt)
{
	return mt && (strcmp(mt, BERTH_MT_OCI_MANIFEST) == 0 || strcmp(mt, BERTH_MT_OCI_INDEX) == 0 ||
		      strcmp(mt, BERTH_MT_DOCKER_MANIFEST) == 0 || strcmp(mt, BERTH_MT_DOCKER_LIST) == 0);
}

static void missing_ref(struct fsck *f, const char *repo, const char *manifest, const char *what,
			const char *digest)
{
	char path[BERTH_PATH_MAX];
	berth_path_revision_link(path, repo, manifest);
	add_problem(f, BERTH_FSCK_MISSING_REFERENCE, path, digest,
		    "manifest %s of %s references %s %s, which the repository does not have",
		    manifest, repo, what, digest);
}

static void note_reference(struct fsck *f, const char *repo, const char *digest)
{
	char key[BERTH_PATH_MAX + BERTH_DIGEST_STR_MAX];
	if (!digest)
		return;
	mark_used(f, digest);
	snprintf(key, sizeof(key), "%s@%s", repo, digest);
	berth_map_add(&f->needed, key, NULL);
}

static void note_references_in(struct fsck *f, const char *repo, json_t *arr, const char *key)
{
	size_t i;
	json_t *it;
	if (json_is_array(arr))
		json_array_foreach(arr, i, it)
			note_reference(f, repo, json_string_value(json_object_get(it, key)));
}

/*
 * Every digest a manifest's JSON names where manifests name blobs, read as garbage-collect
 * reads them (gc.c lenient_refs), valid manifest or not: the blobs it keeps are exactly the
 * blobs fsck does not call orphans.
 */
static void note_references(struct fsck *f, const char *repo, json_t *m)
{
	json_t *config = json_object_get(m, "config");
	note_reference(f, repo, json_string_value(json_object_get(config, "digest")));
	note_references_in(f, repo, json_object_get(m, "layers"), "digest");
	note_references_in(f, repo, json_object_get(m, "manifests"), "digest");
	note_references_in(f, repo, json_object_get(m, "blobs"), "digest");
	note_references_in(f, repo, json_object_get(m, "fsLayers"), "blobSum");
}

static void check_manifest(struct fsck *f, const struct revrec *rv)
{
	char path[BERTH_PATH_MAX];
	char *body = NULL;
	size_t len = 0;
	struct blob_ent *be = berth_map_find(&f->blobs, rv->digest);
	if (!be || be->state != BLOB_OK)
		return; /* corrupt or unreadable: already reported */
	berth_path_blob_data(path, rv->digest);
	int rc = berth_storage_get_content(&body, &len, f->d, path, FSCK_MANIFEST_MAX);
	if (rc == BERTH_ETOOLARGE) {
		add_problem(f, BERTH_FSCK_CORRUPT_MANIFEST, path, rv->digest,
			    "manifest %s of %s is larger than %u bytes", rv->digest, rv->repo,
			    FSCK_MANIFEST_MAX);
		return;
	}
	if (rc < 0) {
		add_problem(f, BERTH_FSCK_UNREADABLE, path, rv->digest, "cannot read manifest: %s",
			    berth_strerror(rc));
		return;
	}
	f->st.manifests++;
	json_error_t jerr;
	json_t *j = json_loadb(body, len, 0, &jerr);
	if (!j || !json_is_object(j)) {
		add_problem(f, BERTH_FSCK_CORRUPT_MANIFEST, path, rv->digest,
			    "manifest %s of %s is not a JSON object%s%s", rv->digest, rv->repo,
			    j ? "" : ": ", j ? "" : jerr.text);
		json_decref(j);
		free(body);
		return;
	}
	note_references(f, rv->repo, j);
	json_decref(j);
	struct berth_manifest *m = NULL;
	/* Only what berth understands is followed (schema1 and the like are not checked further). */
	if (berth_manifest_parse(&m, NULL, body, len) == 0) {
		if (m->has_config && !layer_present(f, rv->repo, m->config.digest))
			missing_ref(f, rv->repo, rv->digest, "config", m->config.digest);
		for (size_t i = 0; i < m->n_layers; i++) {
			const struct berth_descriptor *d = &m->layers[i];
			if (berth_descriptor_is_foreign(d) || layer_present(f, rv->repo, d->digest))
				continue;
			if (is_manifest_mt(d->media_type) && revision_present(f, rv->repo, d->digest))
				continue;
			missing_ref(f, rv->repo, rv->digest, "layer", d->digest);
		}
		for (size_t i = 0; i < m->n_manifests; i++) {
			if (!revision_present(f, rv->repo, m->manifests[i].digest))
				missing_ref(f, rv->repo, rv->digest, "child manifest", m->manifests[i].digest);
		}
	}
	berth_manifest_free(m);
	free(body);
}

/*
 * Layer links whose blob is missing. Distribution's garbage-collect deletes unreferenced blobs
 * but leaves their _layers links behind (berth's removes them): such a link, which no manifest
 * of its repository references, names garbage that is gone, and is counted, not reported. One a
 * manifest needs is dangling.
 */
static void check_gone_layers(struct fsck *f)
{
	char key[BERTH_PATH_MAX + BERTH_DIGEST_STR_MAX], hexdir[BERTH_PATH_MAX];
	for (size_t i = 0; i < f->ngone; i++) {
		const struct linkrec *l = &f->gone_layers[i];
		snprintf(key, sizeof(key), "%s@%s", l->repo, l->digest);
		if (!berth_map_find(&f->needed, key)) {
			f->st.collected_layer_links++;
			continue;
		}
		parent_of(hexdir, l->path);
		struct problem *p = add_problem(f, BERTH_FSCK_DANGLING_LINK, l->path, l->digest,
						"layer link names %s, whose blob is missing", l->digest);
		set_plan(p, PLAN_REMOVE, hexdir, NULL);
	}
}

static void check_uploads(struct fsck *f)
{
	for (size_t i = 0; i < f->nups; i++) {
		struct uploadrec *u = &f->ups[i];
		f->st.uploads++;
		f->st.upload_bytes += u->size;
		if (u->has_startedat)
			continue;
		struct problem *p = add_problem(f, BERTH_FSCK_STALE_UPLOAD, u->path, NULL,
						"upload session without startedat (%" PRIu64
						" bytes): it can neither be resumed nor purged",
						u->size);
		set_plan(p, PLAN_REMOVE, u->path, NULL);
	}
}

static int cmp_ent(const void *a, const void *b)
{
	return strcmp((*(struct blob_ent *const *)a)->digest, (*(struct blob_ent *const *)b)->digest);
}

static void check_blob_states(struct fsck *f)
{
	/* Sorted output: collect the interesting entries first. */
	struct blob_ent **v = NULL;
	size_t n = 0, a = 0;
	struct blob_ent *be;
	for (size_t i = 0; (be = berth_map_next(&f->blobs, &i));) {
		if (be->state == BLOB_CORRUPT || (be->state == BLOB_OK && !be->referenced)) {
			BERTH_VEC_GROW(v, n + 1, a);
			v[n++] = be;
		}
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_ent);
	for (size_t i = 0; i < n; i++) {
		char path[BERTH_PATH_MAX];
		struct blob_ent *e = v[i];
		berth_path_blob_data(path, e->digest);
		if (e->state == BLOB_CORRUPT) {
			struct problem *p = add_problem(f, BERTH_FSCK_CORRUPT_BLOB, path, e->digest,
							"%" PRIu64 " bytes that do not hash to %s "
							"(named by %" PRIu32 " link%s)",
							e->size, e->digest, e->links, e->links == 1 ? "" : "s");
			set_plan(p, PLAN_MOVE_BLOB, e->digest, NULL);
		} else {
			add_problem(f, BERTH_FSCK_ORPHAN_BLOB, path, e->digest,
				    "%" PRIu64 " bytes that no manifest of any repository references "
				    "(garbage-collect deletes it)", e->size);
		}
	}
	free(v);
}

/* ---- phase 4: what only the storage medium shows (the driver's find_debris) ---- */

static void on_debris(const struct berth_debris *e, void *payload)
{
	struct fsck *f = payload;
	struct problem *p;
	switch (e->kind) {
	case BERTH_DEBRIS_TEMP_FILE:
		p = add_problem(f, BERTH_FSCK_TEMP_FILE, e->path, NULL,
				"temp file of an interrupted write (%lld bytes)", (long long)e->size);
		set_plan(p, PLAN_REMOVE_DEBRIS, e->path, NULL);
		break;
	case BERTH_DEBRIS_UNEXPRESSIBLE:
		add_problem(f, BERTH_FSCK_UNKNOWN_FILE, e->path, NULL,
			    "%s whose name the storage layout cannot express (invisible to the registry)",
			    e->is_dir ? "directory" : "file");
		break;
	case BERTH_DEBRIS_SYMLINK:
		add_problem(f, BERTH_FSCK_UNKNOWN_FILE, e->path, NULL, "symbolic link in the store");
		break;
	case BERTH_DEBRIS_UNREADABLE:
		add_problem(f, BERTH_FSCK_UNREADABLE, e->path, NULL, "cannot open directory: %s",
			    e->reason ? e->reason : "unknown reason");
		break;
	}
}

/* ---- phase 5: repair ---- */

/* Moves a corrupt blob's data aside to lost+found (the driver's quarantine); describes what
 * happened in *msg. */
static int move_blob(struct fsck *f, const char *digest, char **msg)
{
	char logical[BERTH_PATH_MAX], aside[64];
	const char *colon = strchr(digest, ':');
	char *where = NULL;
	snprintf(aside, sizeof(aside), BERTH_ROOT "/" LOST_FOUND "/%.*s", (int)(colon - digest), digest);
	berth_path_blob_data(logical, digest);
	int rc = berth_storage_quarantine(&where, f->d, logical, aside, colon + 1);
	if (rc < 0) {
		*msg = berth_asprintf("cannot move %s aside: %s", logical, berth_err_reason(rc));
		return rc;
	}
	*msg = berth_asprintf("moved to %s", where + 1);
	free(where);
	return 0;
}

static void do_repair(struct fsck *f, struct problem *p)
{
	int rc;
	if (p->plan == PLAN_NONE)
		return;
	if (p->plan == PLAN_MOVE_BLOB) {
		struct blob_ent *e = berth_map_find(&f->blobs, p->arg);
		if (!berth_storage_can_quarantine(f->d)) {
			p->action = BERTH_FSCK_REPAIR_FAILED;
			p->repair = berth_strdup("left in place: moving aside needs the filesystem driver");
			return;
		}
		if (move_blob(f, p->arg, &p->repair) == 0) {
			p->action = BERTH_FSCK_REPAIRED;
			if (e)
				e->state = BLOB_MOVED;
		} else {
			p->action = BERTH_FSCK_REPAIR_FAILED;
		}
		return;
	}
	if (p->depends) {
		struct blob_ent *e = berth_map_find(&f->blobs, p->depends);
		if (!e || e->state != BLOB_MOVED) {
			p->action = BERTH_FSCK_REPAIR_FAILED;
			p->repair = berth_strdup("kept: the corrupt blob it names was not moved aside");
			return;
		}
	}
	switch (p->plan) {
	case PLAN_REMOVE:
		rc = berth_storage_remove(f->d, p->arg);
		if (rc == 0 || rc == BERTH_ENOTFOUND) {
			p->action = BERTH_FSCK_REPAIRED;
			p->repair = berth_asprintf("removed %s", p->arg);
		} else {
			p->action = BERTH_FSCK_REPAIR_FAILED;
			p->repair = berth_asprintf("cannot remove %s: %s", p->arg, berth_strerror(rc));
		}
		break;
	case PLAN_REWRITE_LINK:
		rc = berth_storage_put_content(f->d, p->path, p->arg, strlen(p->arg));
		if (rc == 0) {
			p->action = BERTH_FSCK_REPAIRED;
			p->repair = berth_asprintf("rewritten to %s", p->arg);
		} else {
			p->action = BERTH_FSCK_REPAIR_FAILED;
			p->repair = berth_asprintf("cannot rewrite: %s", berth_strerror(rc));
		}
		break;
	case PLAN_REMOVE_DEBRIS:
		rc = berth_storage_remove_debris(f->d, p->arg);
		if (rc == 0 || rc == BERTH_ENOTFOUND) {
			p->action = BERTH_FSCK_REPAIRED;
			p->repair = berth_strdup("removed");
		} else {
			p->action = BERTH_FSCK_REPAIR_FAILED;
			p->repair = berth_asprintf("cannot remove: %s", berth_err_reason(rc));
		}
		break;
	default:
		break;
	}
}

static void repair_all(struct fsck *f)
{
	/* Blobs first: the links to a corrupt blob may go only once it is safe in lost+found. */
	for (size_t i = 0; i < f->np; i++)
		if (f->p[i].plan == PLAN_MOVE_BLOB)
			do_repair(f, &f->p[i]);
	for (size_t i = 0; i < f->np; i++)
		if (f->p[i].plan != PLAN_MOVE_BLOB)
			do_repair(f, &f->p[i]);
	for (size_t i = 0; i < f->np; i++) {
		if (f->p[i].action == BERTH_FSCK_REPAIRED)
			f->st.repaired++;
		else if (f->p[i].action == BERTH_FSCK_REPAIR_FAILED)
			f->st.repair_failed++;
	}
}

/* ---- the run ---- */

static void fsck_free(struct fsck *f)
{
	for (size_t i = 0; i < f->np; i++) {
		free(f->p[i].path);
		free(f->p[i].digest);
		free(f->p[i].detail);
		free(f->p[i].arg);
		free(f->p[i].depends);
		free(f->p[i].repair);
	}
	free(f->p);
	for (size_t i = 0; i < f->ntags; i++) {
		free(f->tags[i].repo);
		free(f->tags[i].tag);
		free(f->tags[i].path);
	}
	free(f->tags);
	for (size_t i = 0; i < f->nrevs; i++) {
		free(f->revs[i].repo);
		free(f->revs[i].digest);
	}
	free(f->revs);
	for (size_t i = 0; i < f->nups; i++)
		free(f->ups[i].path);
	free(f->ups);
	berth_map_release(&f->blobs);
	berth_map_release(&f->repos);
	berth_map_release(&f->revisions);
	berth_map_release(&f->layers);
	berth_map_release(&f->tagdirs);
	berth_map_release(&f->needed);
	for (size_t i = 0; i < f->ngone; i++) {
		free(f->gone_layers[i].repo);
		free(f->gone_layers[i].digest);
		free(f->gone_layers[i].path);
	}
	free(f->gone_layers);
	free(f->buf);
}

int berth_fsck_run(struct berth_storage_driver *d, const struct berth_fsck_options *o,
		   struct berth_fsck_stats *out)
{
	struct fsck f = { 0 };
	int rc;
	f.blobs = f.repos = f.revisions = f.layers = f.tagdirs = f.needed =
		(struct berth_map)BERTH_MAP_INIT(sizeof(struct blob_ent), 0);
	f.d = d;
	f.o = o;
	f.will_move = o->repair && berth_storage_can_quarantine(d);
	f.buf = berth_malloc(FSCK_HASH_CHUNK);

	if (o->progress) {
		rc = berth_storage_walk(d, BERTH_BLOBS_ROOT, count_blob, &f);
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			goto out;
	}
	rc = berth_storage_walk(d, BERTH_BLOBS_ROOT, visit_blob, &f);
	if (rc < 0 && rc != BERTH_ENOTFOUND)
		goto out;
	rc = berth_storage_walk(d, BERTH_REPOS_ROOT, visit_repo_entry, &f);
	if (rc < 0 && rc != BERTH_ENOTFOUND)
		goto out;
	rc = 0;
	check_tags(&f);
	check_tag_dirs(&f);
	for (size_t i = 0; i < f.nrevs; i++)
		check_manifest(&f, &f.revs[i]);
	check_gone_layers(&f);
	check_uploads(&f);
	check_blob_states(&f);
	berth_storage_find_debris(d, BERTH_ROOT, LOST_FOUND, on_debris, &f); /* optional slot */
	if (o->repair)
		repair_all(&f);
	if (o->report) {
		for (size_t i = 0; i < f.np; i++) {
			struct problem *p = &f.p[i];
			struct berth_fsck_problem bp = { p->kind, p->path, p->digest, p->detail, p->action,
							 p->repair };
			o->report(&bp, o->payload);
		}
	}
out:
	if (out)
		*out = f.st;
	fsck_free(&f);
	return rc;
}

/*
 * Storage consistency check (registry/fsck.c). A small store is built through the registry API
 * on the in-memory and on the filesystem driver, damaged one way per test (by hand, through
 * the driver or on the host), checked, repaired, and checked again.
 *
 * The store:
 *   a/one  M1 {C1, L1, L2}   tagged v1
 *          I  index of M1     tagged multi
 *          L9                 uploaded, then unlinked (an orphan blob)
 *   b/two  M2 {C2, L1}        tagged latest (L1 shared with a/one)
 *          an upload in progress (startedat + 5 bytes)
 */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/digest.h"
#include "core/err.h"
#include "helpers/registry.h"
#include "helpers/upload.h"
#include "registry/fsck.h"
#include "registry/gc.h"
#include "registry/manifest.h"
#include "registry/paths.h"
#include "registry/registry.h"
#include "storage/storage.h"

#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"

typedef char dg[BERTH_DIGEST_STR_MAX];

struct found {
	enum berth_fsck_kind kind;
	char path[BERTH_PATH_MAX];
	char digest[BERTH_DIGEST_STR_MAX];
	enum berth_fsck_action action;
};

struct fixture {
	struct berth_registry *reg;
	struct berth_storage_driver *d;
	char dir[256]; /* filesystem root, "" for in-memory */
	dg C1, C2, L1, L2, L9, M1, M2, I;
	char upload[37];
	struct found found[64];
	size_t nfound;
	struct berth_fsck_stats st;
};

/* ---- building the store ---- */

static void push_blob(struct fixture *f, const char *repo, const char *content, char *digest)
{
	assert_int_equal(berth_test_upload(digest, f->reg, repo, content, strlen(content)), 0);
}

static void put_manifest(struct fixture *f, const char *repo, const char *ref, const char *ct,
			 const char *body, char *digest)
{
	struct berth_manifest_put_result res;
	int rc = berth_manifest_put(&res, f->reg, repo, ref, ct, body, strlen(body));
	if (rc != 0)
		fail_msg("put %s %s: %s (%s)", repo, ref, berth_strerror(rc), berth_err_message(rc));
	snprintf(digest, BERTH_DIGEST_STR_MAX, "%s", res.digest);
}

static void image(struct fixture *f, const char *repo, const char *tag, const char *config,
		  const char *l1, const char *l2, char *digest)
{
	char body[2048];
	int n = snprintf(body, sizeof(body),
			 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":"
			 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":7},\"layers\":["
			 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":7}",
			 BERTH_MT_OCI_MANIFEST, MT_CONFIG, config, MT_LAYER, l1);
	if (l2)
		n += snprintf(body + n, sizeof(body) - (size_t)n,
			      ",{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":7}", MT_LAYER, l2);
	snprintf(body + n, sizeof(body) - (size_t)n, "]}");
	put_manifest(f, repo, tag, BERTH_MT_OCI_MANIFEST, body, digest);
}

static void put_raw(struct fixture *f, const char *path, const char *content)
{
	assert_int_equal(berth_storage_put_content(f->d, path, content, strlen(content)), 0);
}

static void build_store(struct fixture *f)
{
	char body[2048];
	push_blob(f, "a/one", "{\"c\":1}", f->C1);
	push_blob(f, "a/one", "layer-1", f->L1);
	push_blob(f, "a/one", "layer-2", f->L2);
	image(f, "a/one", "v1", f->C1, f->L1, f->L2, f->M1);
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,"
		 "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
		 BERTH_MT_OCI_INDEX, BERTH_MT_OCI_MANIFEST, f->M1);
	put_manifest(f, "a/one", "multi", BERTH_MT_OCI_INDEX, body, f->I);
	push_blob(f, "a/one", "layer-9", f->L9);
	assert_int_equal(berth_blob_delete(f->reg, "a/one", f->L9), 0);

	push_blob(f, "b/two", "layer-1", f->L1);
	push_blob(f, "b/two", "{\"c\":2}", f->C2);
	image(f, "b/two", "latest", f->C2, f->L1, NULL, f->M2);

	struct berth_upload *u = NULL;
	assert_int_equal(berth_upload_create(f->reg, "b/two", f->upload), 0);
	assert_int_equal(berth_upload_open(&u, f->reg, "b/two", f->upload), 0);
	assert_int_equal(berth_upload_write(u, "hello", 5), 0);
	assert_int_equal(berth_upload_checkpoint(u), 0);
	berth_upload_close(u);
}

/* ---- fixtures ---- */

static int setup_common(void **state, int fs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct berth_registry_config cfg = { .delete_enabled = 1 };
	if (!f || berth_test_registry_new(&f->reg, f->dir, sizeof(f->dir), fs ? "test-fsck" : NULL, &cfg) < 0)
		return -1;
	f->d = berth_registry_driver(f->reg);
	build_store(f);
	*state = f;
	return 0;
}

static int setup_mem(void **state)
{
	return setup_common(state, 0);
}

static int setup_fs(void **state)
{
	return setup_common(state, 1);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	berth_test_registry_free(f->reg, f->dir);
	free(f);
	return 0;
}

/* ---- running fsck ---- */

static void collect(const struct berth_fsck_problem *p, void *payload)
{
	struct fixture *f = payload;
	assert_non_null(p->detail);
	assert_true(f->nfound < sizeof(f->found) / sizeof(f->found[0]));
	struct found *x = &f->found[f->nfound++];
	x->kind = p->kind;
	snprintf(x->path, sizeof(x->path), "%s", p->path);
	snprintf(x->digest, sizeof(x->digest), "%s", p->digest ? p->digest : "");
	x->action = p->action;
}

static void run(struct fixture *f, int repair)
{
	/* A fresh registry view is not needed: fsck goes through the driver only. */
	struct berth_fsck_options o = {
		.repair = repair,
		.report = collect,
		.payload = f,
	};
	f->nfound = 0;
	assert_int_equal(berth_fsck_run(f->d, &o, &f->st), 0);
	assert_int_equal(f->st.total_problems, f->nfound);
}

/* Number of problems of a kind (about digest, when not NULL). */
static size_t count(struct fixture *f, enum berth_fsck_kind kind, const char *digest)
{
	size_t n = 0;
	for (size_t i = 0; i < f->nfound; i++)
		if (f->found[i].kind == kind && (!digest || strcmp(f->found[i].digest, digest) == 0))
			n++;
	return n;
}

static enum berth_fsck_action action_of(struct fixture *f, enum berth_fsck_kind kind)
{
	for (size_t i = 0; i < f->nfound; i++)
		if (f->found[i].kind == kind)
			return f->found[i].action;
	fail_msg("no %s problem", berth_fsck_kind_name(kind));
	return BERTH_FSCK_REPORTED;
}

/* The store as built has exactly one problem: the orphan L9. */
static void assert_baseline(struct fixture *f)
{
	if (f->nfound != 1 || count(f, BERTH_FSCK_ORPHAN_BLOB, f->L9) != 1) {
		for (size_t i = 0; i < f->nfound; i++)
			print_message("  %s %s %s\n", berth_fsck_kind_name(f->found[i].kind),
				      f->found[i].path, f->found[i].digest);
		fail_msg("expected only the orphan %s, got %zu problems", f->L9, f->nfound);
	}
}

static int exists(struct fixture *f, const char *path)
{
	struct berth_stat st;
	int rc = berth_storage_stat(&st, f->d, path);
	if (rc != 0 && rc != BERTH_ENOTFOUND)
		fail_msg("stat %s: %s", path, berth_strerror(rc));
	return rc == 0;
}

static void blob_path(char *out, const char *digest)
{
	assert_int_equal(berth_path_blob_data(out, digest), 0);
}

/* ---- tests ---- */

static void test_clean_store(void **state)
{
	struct fixture *f = *state;
	run(f, 0);
	assert_baseline(f);
	/* C1 L1 L2 M1 I L9 C2 M2 */
	assert_int_equal(f->st.blobs, 8);
	assert_int_equal(f->st.repositories, 2);
	assert_int_equal(f->st.manifests, 3);
	assert_int_equal(f->st.tags, 3);
	assert_int_equal(f->st.uploads, 1);
	assert_int_equal(f->st.upload_bytes, 5);
	/* Repair never touches an orphan: garbage collection's business. */
	run(f, 1);
	assert_baseline(f);
	assert_int_equal(action_of(f, BERTH_FSCK_ORPHAN_BLOB), BERTH_FSCK_REPORTED);
	char path[BERTH_PATH_MAX];
	blob_path(path, f->L9);
	assert_true(exists(f, path));
}

static void test_empty_store(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	snprintf(path, sizeof(path), "%s", BERTH_ROOT);
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	run(f, 0);
	assert_int_equal(f->nfound, 0);
	assert_int_equal(f->st.blobs, 0);
}

static void test_corrupt_blob(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX], link[BERTH_PATH_MAX];
	blob_path(path, f->L2);
	put_raw(f, path, "layer-X"); /* same size, other bytes */
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_CORRUPT_BLOB, f->L2), 1);
	assert_int_equal(f->nfound, 2); /* and the orphan */
	assert_true(exists(f, path));

	run(f, 1);
	assert_int_equal(berth_path_layer_link(link, "a/one", f->L2), 0);
	if (!f->dir[0]) {
		/* No host directory to move it to: left in place, and so are its links. */
		assert_int_equal(action_of(f, BERTH_FSCK_CORRUPT_BLOB), BERTH_FSCK_REPAIR_FAILED);
		assert_true(exists(f, path));
		assert_true(exists(f, link));
		return;
	}
	assert_int_equal(action_of(f, BERTH_FSCK_CORRUPT_BLOB), BERTH_FSCK_REPAIRED);
	assert_false(exists(f, path));
	/* Moved aside with its bytes, not deleted. */
	char host[512], got[16] = "";
	snprintf(host, sizeof(host), "%s" BERTH_ROOT "/lost+found/sha256/%s", f->dir, f->L2 + 7);
	FILE *fp = fopen(host, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, fp), 7);
	fclose(fp);
	assert_string_equal(got, "layer-X");
	/* Its link went as dangling; the manifest now misses a layer, which is reported. */
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, f->L2), 1);
	assert_int_equal(action_of(f, BERTH_FSCK_DANGLING_LINK), BERTH_FSCK_REPAIRED);
	assert_false(exists(f, link));
	assert_int_equal(count(f, BERTH_FSCK_MISSING_REFERENCE, f->L2), 1);

	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_CORRUPT_BLOB, NULL), 0);
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, NULL), 0);
	assert_int_equal(count(f, BERTH_FSCK_MISSING_REFERENCE, f->L2), 1);

	/* Re-pushing the layer makes the store whole again. */
	dg again;
	push_blob(f, "a/one", "layer-2", again);
	run(f, 0);
	assert_baseline(f);
}

static void test_corrupt_blob_twice_keeps_both(void **state)
{
	struct fixture *f = *state;
	assert_true(f->dir[0]);
	char path[BERTH_PATH_MAX], host[512];
	blob_path(path, f->L9);
	put_raw(f, path, "first bad");
	run(f, 1);
	put_raw(f, path, "second bad");
	run(f, 1);
	struct stat st;
	snprintf(host, sizeof(host), "%s" BERTH_ROOT "/lost+found/sha256/%s", f->dir, f->L9 + 7);
	assert_int_equal(stat(host, &st), 0);
	assert_int_equal(st.st_size, 9);
	snprintf(host, sizeof(host), "%s" BERTH_ROOT "/lost+found/sha256/%s.1", f->dir, f->L9 + 7);
	assert_int_equal(stat(host, &st), 0);
	assert_int_equal(st.st_size, 10);
	/* lost+found is outside the layout the registry sees: no new problem. */
	run(f, 0);
	assert_int_equal(f->nfound, 0);
}

static void test_dangling_layer_link(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX], link[BERTH_PATH_MAX];
	blob_path(path, f->L1);
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	run(f, 0);
	/* L1 is linked from both repositories and used by both images. */
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, f->L1), 2);
	assert_int_equal(count(f, BERTH_FSCK_MISSING_REFERENCE, f->L1), 2);
	assert_int_equal(f->nfound, 5);
	run(f, 1);
	assert_int_equal(berth_path_layer_link(link, "a/one", f->L1), 0);
	assert_false(exists(f, link));
	assert_int_equal(berth_path_layer_link(link, "b/two", f->L1), 0);
	assert_false(exists(f, link));
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, NULL), 0);
	assert_int_equal(count(f, BERTH_FSCK_MISSING_REFERENCE, f->L1), 2);
}

static void test_bad_link_rewritten(void **state)
{
	struct fixture *f = *state;
	char link[BERTH_PATH_MAX];
	assert_int_equal(berth_path_layer_link(link, "a/one", f->C1), 0);
	put_raw(f, link, "sha256:zzz\n");
	assert_int_equal(berth_path_revision_link(link, "b/two", f->M2), 0);
	put_raw(f, link, f->M1); /* a valid digest, but not this path's */
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_BAD_LINK, f->C1), 1);
	assert_int_equal(count(f, BERTH_FSCK_BAD_LINK, f->M2), 1);
	assert_int_equal(f->nfound, 3);
	run(f, 1);
	assert_int_equal(action_of(f, BERTH_FSCK_BAD_LINK), BERTH_FSCK_REPAIRED);
	char *content = NULL;
	size_t len;
	assert_int_equal(berth_storage_get_content(&content, &len, f->d, link, 1024), 0);
	assert_string_equal(content, f->M2);
	free(content);
	run(f, 0);
	assert_baseline(f);
	/* The registry reads them again. */
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->reg, "b/two", "latest"), 0);
	berth_manifest_content_release(&mc);
}

/* A link with whitespace around its digest (edited by hand) is served, so fsck finds nothing
 * wrong with it and --repair leaves it as it is. */
static void test_link_with_newline_agrees_with_serving(void **state)
{
	struct fixture *f = *state;
	char layer[BERTH_PATH_MAX], tag[BERTH_PATH_MAX], content[BERTH_DIGEST_STR_MAX + 4];
	assert_int_equal(berth_path_layer_link(layer, "a/one", f->L2), 0);
	snprintf(content, sizeof(content), "%s\n", f->L2);
	put_raw(f, layer, content);
	assert_int_equal(berth_path_tag_current(tag, "b/two", "latest"), 0);
	snprintf(content, sizeof(content), " %s\r\n", f->M2);
	put_raw(f, tag, content);

	uint64_t size = 0;
	assert_int_equal(berth_blob_stat(&size, f->reg, "a/one", f->L2), 0);
	assert_int_equal(size, 7);
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->reg, "b/two", "latest"), 0);
	berth_manifest_content_release(&mc);

	run(f, 0);
	assert_baseline(f);
	run(f, 1);
	assert_baseline(f);
	char *back = NULL;
	size_t len;
	assert_int_equal(berth_storage_get_content(&back, &len, f->d, layer, 1024), 0);
	snprintf(content, sizeof(content), "%s\n", f->L2);
	assert_string_equal(back, content);
	free(back);
}

/* Distribution's garbage-collect deletes a blob no manifest references but leaves its _layers
 * link: not a problem for fsck, which counts it; repair leaves it; berth's gc removes it. */
static void test_layer_link_left_by_gc(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX], link[BERTH_PATH_MAX];
	dg L8;
	push_blob(f, "a/one", "layer-8", L8); /* uploaded, never referenced */
	assert_int_equal(berth_path_blob_dir(path, L8), 0);
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	assert_int_equal(berth_path_layer_link(link, "a/one", L8), 0);
	assert_true(exists(f, link));
	run(f, 0);
	assert_baseline(f);
	assert_int_equal(f->st.collected_layer_links, 1);
	run(f, 1);
	assert_baseline(f);
	assert_true(exists(f, link));

	struct berth_gc_options o = { 0 };
	struct berth_gc_stats st;
	assert_int_equal(berth_gc_run(f->d, &o, &st), 0);
	assert_false(exists(f, link));
	run(f, 0);
	assert_int_equal(f->nfound, 0);
	assert_int_equal(f->st.collected_layer_links, 0);
}

/* A layer link to a missing blob that a manifest needs is dangling, as before. */
static void test_needed_layer_link_dangling(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_blob_dir(path, f->L2), 0);
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, f->L2), 1);
	assert_int_equal(count(f, BERTH_FSCK_MISSING_REFERENCE, f->L2), 1);
	assert_int_equal(f->st.collected_layer_links, 0);
}

/* fsck's orphans are exactly the blobs garbage-collect deletes. */
static void test_orphans_are_what_gc_deletes(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	dg L8;
	push_blob(f, "b/two", "layer-8", L8); /* linked as a layer only */
	/* An untagged manifest (kept, with its config and layer) and a manifest named only by a
	 * tag (garbage, with the config only it uses). */
	dg C3, L3, M3, C4, M4;
	push_blob(f, "a/one", "{\"c\":3}", C3);
	push_blob(f, "a/one", "layer-3", L3);
	image(f, "a/one", "old", C3, L3, NULL, M3);
	assert_int_equal(berth_path_tag_dir(path, "a/one", "old"), 0);
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	push_blob(f, "b/two", "{\"c\":4}", C4);
	image(f, "b/two", "lost", C4, f->L1, NULL, M4);
	assert_int_equal(berth_path_revision_link(path, "b/two", M4), 0);
	*strrchr(path, '/') = '\0';
	assert_int_equal(berth_storage_remove(f->d, path), 0);

	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, NULL), 4);
	const char *garbage[] = { f->L9, L8, M4, C4 };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, garbage[i]), 1);

	struct berth_gc_options o = { 0 };
	struct berth_gc_stats st;
	assert_int_equal(berth_gc_run(f->d, &o, &st), 0);
	assert_int_equal(st.blobs_deleted, 4);
	for (size_t i = 0; i < 4; i++) {
		blob_path(path, garbage[i]);
		assert_false(exists(f, path));
	}
	const char *kept[] = { f->C1, f->L1, f->L2, f->M1, f->I, f->C2, f->M2, C3, L3, M3 };
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		blob_path(path, kept[i]);
		assert_true(exists(f, path));
	}
}

static void test_bad_link_to_missing_blob_removed(void **state)
{
	struct fixture *f = *state;
	char link[BERTH_PATH_MAX];
	dg ghost;
	berth_digest_bytes(BERTH_ALG_SHA256, "ghost", 5, ghost);
	assert_int_equal(berth_path_layer_link(link, "a/one", ghost), 0);
	put_raw(f, link, "garbage");
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_BAD_LINK, ghost), 1);
	run(f, 1);
	assert_false(exists(f, link));
	run(f, 0);
	assert_baseline(f);
}

static void test_tag_without_revision(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	/* A delete by digest interrupted between the revision and the untagging. */
	assert_int_equal(berth_path_revision_link(path, "b/two", f->M2), 0);
	*strrchr(path, '/') = '\0';
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	run(f, 0);
	/* The tag names a manifest that is no revision. As garbage-collect sees it, M2 and its
	 * config C2 are garbage (a tag keeps nothing, only revisions do): orphans. */
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, f->M2), 1);
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, f->M2), 1);
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, f->C2), 1);
	assert_int_equal(f->nfound, 4);
	run(f, 1);
	assert_int_equal(berth_path_tag_dir(path, "b/two", "latest"), 0);
	assert_false(exists(f, path));
	run(f, 0);
	/* L1 is still used by a/one's manifest. */
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, f->M2), 1);
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, f->C2), 1);
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, f->L1), 0);
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, NULL), 0);
}

static void test_tag_to_missing_manifest(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	blob_path(path, f->M2);
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	run(f, 0);
	/* revision link, tag current link and tag index link all name a missing blob */
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, f->M2), 3);
	run(f, 1);
	assert_int_equal(berth_path_tag_dir(path, "b/two", "latest"), 0);
	assert_false(exists(f, path));
	assert_int_equal(berth_path_revision_link(path, "b/two", f->M2), 0);
	assert_false(exists(f, path));
	run(f, 0);
	/* With its manifest gone, C2 is garbage, as garbage-collect sees it. */
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, f->C2), 1);
	assert_int_equal(f->nfound, 2);
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->reg, "b/two", "latest"), BERTH_ENOTFOUND);
}

static void test_incomplete_tag(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	/* A tag write cut short after the index link, before current/link. */
	assert_int_equal(berth_path_tag_index_link(path, "a/one", "half", f->M1), 0);
	put_raw(f, path, f->M1);
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_INCOMPLETE_TAG, NULL), 1);
	assert_int_equal(f->nfound, 2);
	run(f, 1);
	assert_int_equal(action_of(f, BERTH_FSCK_INCOMPLETE_TAG), BERTH_FSCK_REPAIRED);
	assert_int_equal(berth_path_tag_dir(path, "a/one", "half"), 0);
	assert_false(exists(f, path));
	run(f, 0);
	assert_baseline(f);
}

static void test_bad_current_link_not_repaired(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_tag_current(path, "a/one", "v1"), 0);
	put_raw(f, path, "");
	run(f, 1);
	assert_int_equal(count(f, BERTH_FSCK_BAD_LINK, NULL), 1);
	assert_int_equal(action_of(f, BERTH_FSCK_BAD_LINK), BERTH_FSCK_REPORTED);
	assert_true(exists(f, path));
}

static void test_corrupt_manifest(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	dg bad;
	const char *body = "{\"schemaVersion\":2, truncated";
	berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), bad);
	blob_path(path, bad);
	put_raw(f, path, body);
	assert_int_equal(berth_path_revision_link(path, "a/one", bad), 0);
	put_raw(f, path, bad);
	run(f, 1);
	assert_int_equal(count(f, BERTH_FSCK_CORRUPT_MANIFEST, bad), 1);
	assert_int_equal(action_of(f, BERTH_FSCK_CORRUPT_MANIFEST), BERTH_FSCK_REPORTED);
	assert_int_equal(f->nfound, 2);
	blob_path(path, bad);
	assert_true(exists(f, path));
}

static void test_schema1_is_not_corrupt(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX], body[512];
	dg s1;
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":1,\"name\":\"a/one\",\"tag\":\"s1\",\"fsLayers\":[{\"blobSum\":\"%s\"}]}",
		 f->L1);
	berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), s1);
	blob_path(path, s1);
	put_raw(f, path, body);
	assert_int_equal(berth_path_revision_link(path, "a/one", s1), 0);
	put_raw(f, path, s1);
	run(f, 0);
	assert_baseline(f);
}

static void test_index_missing_child(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_revision_link(path, "a/one", f->M1), 0);
	*strrchr(path, '/') = '\0';
	assert_int_equal(berth_storage_remove(f->d, path), 0);
	run(f, 0);
	/* I misses its child M1, and tag v1 names M1, which is no longer a revision */
	assert_int_equal(count(f, BERTH_FSCK_MISSING_REFERENCE, f->M1), 1);
	assert_int_equal(count(f, BERTH_FSCK_DANGLING_LINK, f->M1), 1);
}

static void test_temp_file(void **state)
{
	struct fixture *f = *state;
	assert_true(f->dir[0]);
	char host[512];
	snprintf(host, sizeof(host), "%s" BERTH_REPOS_ROOT "/a/one/_manifests/tags/v1/current/.tmp~AbC123",
		 f->dir);
	int fd = open(host, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "sha256:", 7), 7);
	close(fd);
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_TEMP_FILE, NULL), 1);
	assert_int_equal(access(host, F_OK), 0);
	run(f, 1);
	assert_int_equal(action_of(f, BERTH_FSCK_TEMP_FILE), BERTH_FSCK_REPAIRED);
	assert_int_not_equal(access(host, F_OK), 0);
	run(f, 0);
	assert_baseline(f);
}

static void test_unexpressible_name(void **state)
{
	struct fixture *f = *state;
	assert_true(f->dir[0]);
	char host[512];
	snprintf(host, sizeof(host), "%s" BERTH_REPOS_ROOT "/a/one/_layers/sha256/weird name", f->dir);
	int fd = open(host, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	run(f, 1);
	assert_int_equal(count(f, BERTH_FSCK_UNKNOWN_FILE, NULL), 1);
	assert_int_equal(action_of(f, BERTH_FSCK_UNKNOWN_FILE), BERTH_FSCK_REPORTED);
	assert_int_equal(access(host, F_OK), 0);
}

static void test_stale_upload(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	const char *uuid = "0b9e7a54-3c1d-4f6e-8a2b-1c3d5e7f9a0b";
	/* An upload whose startedat was never written (a crash while creating it). */
	assert_int_equal(berth_path_upload_data(path, "a/one", uuid), 0);
	put_raw(f, path, "abc");
	/* The good upload's startedat is fine; its data may be anything. */
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_STALE_UPLOAD, NULL), 1);
	assert_int_equal(f->st.uploads, 2);
	run(f, 1);
	assert_int_equal(berth_path_upload_dir(path, "a/one", uuid), 0);
	assert_false(exists(f, path));
	assert_int_equal(berth_path_upload_dir(path, "b/two", f->upload), 0);
	assert_true(exists(f, path));
	run(f, 0);
	assert_baseline(f);
}

/* A manifest PUT stages a new tag's directory in an upload session and moves it into place; a
 * crash in between leaves _uploads/<id>/tag/current/link: a stale session, not an unknown file. */
static void test_staged_tag_left_by_crash(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX], link[BERTH_PATH_MAX + 32];
	const char *uuid = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f";
	assert_int_equal(berth_path_upload_dir(path, "a/one", uuid), 0);
	snprintf(link, sizeof(link), "%s/tag/current/link", path);
	put_raw(f, link, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_UNKNOWN_FILE, NULL), 0);
	assert_int_equal(count(f, BERTH_FSCK_STALE_UPLOAD, NULL), 1);
	run(f, 1);
	assert_false(exists(f, path));
	run(f, 0);
	assert_baseline(f);
}

static void test_unknown_files(void **state)
{
	struct fixture *f = *state;
	put_raw(f, BERTH_REPOS_ROOT "/a/stray", "x");
	put_raw(f, BERTH_REPOS_ROOT "/a/one/_layers/sha256/notahex/link", "x");
	put_raw(f, BERTH_BLOBS_ROOT "/sha256/ab/cd/data", "x");
	put_raw(f, BERTH_BLOBS_ROOT "/md5/00/0011/data", "x");
	run(f, 1);
	assert_int_equal(count(f, BERTH_FSCK_UNKNOWN_FILE, NULL), 4);
	assert_int_equal(action_of(f, BERTH_FSCK_UNKNOWN_FILE), BERTH_FSCK_REPORTED);
	assert_true(exists(f, BERTH_REPOS_ROOT "/a/stray"));
}

static void test_sha512_blob(void **state)
{
	struct fixture *f = *state;
	char path[BERTH_PATH_MAX];
	dg d;
	berth_digest_bytes(BERTH_ALG_SHA512, "sha512 blob", 11, d);
	blob_path(path, d);
	put_raw(f, path, "sha512 blob");
	assert_int_equal(berth_path_layer_link(path, "a/one", d), 0);
	put_raw(f, path, d);
	run(f, 0);
	/* Hashed and found intact; only linked as a layer, which keeps nothing from gc. */
	assert_int_equal(count(f, BERTH_FSCK_ORPHAN_BLOB, d), 1);
	assert_int_equal(f->nfound, 2);
	blob_path(path, d);
	put_raw(f, path, "sha512 blub");
	run(f, 0);
	assert_int_equal(count(f, BERTH_FSCK_CORRUPT_BLOB, d), 1);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup_mem, teardown), \
		cmocka_unit_test_setup_teardown(t, setup_fs, teardown)

/* Host-level findings (temp files, lost+found, names the layout cannot express) need a
 * filesystem root. */
#define FS_ONLY(t) cmocka_unit_test_setup_teardown(t, setup_fs, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_clean_store),
		BOTH(test_empty_store),
		BOTH(test_corrupt_blob),
		FS_ONLY(test_corrupt_blob_twice_keeps_both),
		BOTH(test_dangling_layer_link),
		BOTH(test_bad_link_rewritten),
		BOTH(test_bad_link_to_missing_blob_removed),
		BOTH(test_link_with_newline_agrees_with_serving),
		BOTH(test_layer_link_left_by_gc),
		BOTH(test_needed_layer_link_dangling),
		BOTH(test_orphans_are_what_gc_deletes),
		BOTH(test_tag_without_revision),
		BOTH(test_tag_to_missing_manifest),
		BOTH(test_incomplete_tag),
		BOTH(test_bad_current_link_not_repaired),
		BOTH(test_corrupt_manifest),
		BOTH(test_schema1_is_not_corrupt),
		BOTH(test_index_missing_child),
		FS_ONLY(test_temp_file),
		FS_ONLY(test_unexpressible_name),
		BOTH(test_stale_upload),
		BOTH(test_staged_tag_left_by_crash),
		BOTH(test_unknown_files),
		BOTH(test_sha512_blob),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Garbage collection (registry/gc.c). A store is built through the registry API (uploads,
 * manifest puts and deletes) on the in-memory and on the filesystem driver, then collected in
 * each mode, and every blob, revision, tag index entry and layer link is checked to be exactly
 * where it should be.
 *
 * The store (each image has its own config and layers unless said otherwise):
 *   a/one   M1 {C1, L1, L2}            tagged v1 and t (t first pointed at M3)
 *           M3 {C3, L4}                untagged (t moved away from it)
 *           R3 {CE, L9}  subject M3    referrer of an untagged manifest
 *           I  index of M5 {C5, L6}, M6 {C6, L7}, tagged multi; M5 and M6 untagged
 *           R  {CE, L8}  subject M1    referrer of a tagged manifest
 *           RR {CE, L13} subject R     referrer of that referrer
 *           L10                        uploaded, never referenced (a dangling layer)
 *   b/two   M2 {C2, L1, L3}            tagged latest: L1 shared with a/one
 *           M7 {C7, L11}               pushed as "gone", then deleted by digest
 *           S1 schema1 {fsLayers L12}  tagged s1, written directly (berth refuses schema1)
 *           X  revision link whose blob is missing
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/digest.h"
#include "core/err.h"
#include "helpers/counting.h"
#include "helpers/registry.h"
#include "helpers/tmproot.h"
#include "helpers/upload.h"
#include "registry/gc.h"
#include "registry/gc_int.h" /* GC_DELETERS: the mark phase reads on so many threads */
#include "registry/manifest.h"
#include "registry/paths.h"
#include "registry/registry.h"
#include "storage/storage.h"

#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_EMPTY "application/vnd.oci.empty.v1+json"

typedef char dg[BERTH_DIGEST_STR_MAX];

struct store {
	dg C1, C2, C3, C5, C6, C7, CE;
	dg L1, L2, L3, L4, L6, L7, L8, L9, L10, L11, L12, L13;
	dg M1, M2, M3, M5, M6, M7, I, R, RR, R3, S1, X;
};

struct fixture {
	struct berth_registry *reg;
	struct berth_storage_driver *d;
	char dir[256]; /* filesystem root, "" for in-memory */
	struct store s;
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
	int rc = berth_manifest_put(&res, f->reg, repo, ref ? ref : "", ct, body, strlen(body));
	if (rc != 0)
		fail_msg("put %s %s: %s (%s)", repo, ref ? ref : "", berth_strerror(rc), berth_err_message(rc));
	snprintf(digest, BERTH_DIGEST_STR_MAX, "%s", res.digest);
}

/* An OCI image manifest over config + layers (NULL-terminated), with optional subject. */
static void image(struct fixture *f, const char *repo, const char *tag, const char *subject,
		  const char *config, const char *config_mt, char *digest, ...)
{
	char body[4096];
	size_t n = (size_t)snprintf(body, sizeof(body),
				    "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":"
				    "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":2},\"layers\":[",
				    BERTH_MT_OCI_MANIFEST, config_mt, config);
	va_list ap;
	va_start(ap, digest);
	const char *sep = "";
	for (const char *l; (l = va_arg(ap, const char *));) {
		n += (size_t)snprintf(body + n, sizeof(body) - n,
				      "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":7}", sep,
				      MT_LAYER, l);
		sep = ",";
	}
	va_end(ap);
	n += (size_t)snprintf(body + n, sizeof(body) - n, "]");
	if (subject)
		n += (size_t)snprintf(body + n, sizeof(body) - n,
				      ",\"subject\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1}",
				      BERTH_MT_OCI_MANIFEST, subject);
	snprintf(body + n, sizeof(body) - n, "}");
	if (tag) {
		put_manifest(f, repo, tag, BERTH_MT_OCI_MANIFEST, body, digest);
	} else {
		char want[BERTH_DIGEST_STR_MAX];
		berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), want);
		put_manifest(f, repo, want, BERTH_MT_OCI_MANIFEST, body, digest);
	}
}

static void put_raw(struct fixture *f, const char *path, const char *content)
{
	assert_int_equal(berth_storage_put_content(f->d, path, content, strlen(content)), 0);
}

static void build_store(struct fixture *f)
{
	struct store *s = &f->s;
	char path[BERTH_PATH_MAX], body[4096];

	/* a/one */
	push_blob(f, "a/one", "{\"c\":1}", s->C1);
	push_blob(f, "a/one", "layer-1", s->L1);
	push_blob(f, "a/one", "layer-2", s->L2);
	push_blob(f, "a/one", "{\"c\":3}", s->C3);
	push_blob(f, "a/one", "layer-4", s->L4);
	image(f, "a/one", "t", NULL, s->C3, MT_CONFIG, s->M3, s->L4, NULL);
	image(f, "a/one", "v1", NULL, s->C1, MT_CONFIG, s->M1, s->L1, s->L2, NULL);
	image(f, "a/one", "t", NULL, s->C1, MT_CONFIG, s->M1, s->L1, s->L2, NULL); /* t moves */

	push_blob(f, "a/one", "{\"c\":5}", s->C5);
	push_blob(f, "a/one", "layer-6", s->L6);
	push_blob(f, "a/one", "{\"c\":6}", s->C6);
	push_blob(f, "a/one", "layer-7", s->L7);
	image(f, "a/one", NULL, NULL, s->C5, MT_CONFIG, s->M5, s->L6, NULL);
	image(f, "a/one", NULL, NULL, s->C6, MT_CONFIG, s->M6, s->L7, NULL);
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}}]}",
		 BERTH_MT_OCI_INDEX, BERTH_MT_OCI_MANIFEST, s->M5, BERTH_MT_OCI_MANIFEST, s->M6);
	put_manifest(f, "a/one", "multi", BERTH_MT_OCI_INDEX, body, s->I);

	push_blob(f, "a/one", "{}", s->CE);
	push_blob(f, "a/one", "layer-8", s->L8);
	push_blob(f, "a/one", "layer-9", s->L9);
	push_blob(f, "a/one", "layer-13", s->L13);
	image(f, "a/one", NULL, s->M1, s->CE, MT_EMPTY, s->R, s->L8, NULL);
	image(f, "a/one", NULL, s->R, s->CE, MT_EMPTY, s->RR, s->L13, NULL);
	image(f, "a/one", NULL, s->M3, s->CE, MT_EMPTY, s->R3, s->L9, NULL);

	push_blob(f, "a/one", "layer-10", s->L10);

	/* b/two */
	push_blob(f, "b/two", "layer-1", s->L1);
	push_blob(f, "b/two", "{\"c\":2}", s->C2);
	push_blob(f, "b/two", "layer-3", s->L3);
	image(f, "b/two", "latest", NULL, s->C2, MT_CONFIG, s->M2, s->L1, s->L3, NULL);
	push_blob(f, "b/two", "{\"c\":7}", s->C7);
	push_blob(f, "b/two", "layer-11", s->L11);
	image(f, "b/two", "gone", NULL, s->C7, MT_CONFIG, s->M7, s->L11, NULL);
	assert_int_equal(berth_manifest_delete(f->reg, "b/two", s->M7), 0);

	/* A schema1 manifest, as an old Distribution store may hold: layout written by hand. */
	push_blob(f, "b/two", "layer-12", s->L12);
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":1,\"name\":\"b/two\",\"tag\":\"s1\",\"architecture\":\"amd64\","
		 "\"fsLayers\":[{\"blobSum\":\"%s\"}],\"history\":[{\"v1Compatibility\":\"{}\"}]}",
		 s->L12);
	berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), s->S1);
	assert_int_equal(berth_path_blob_data(path, s->S1), 0);
	put_raw(f, path, body);
	assert_int_equal(berth_path_revision_link(path, "b/two", s->S1), 0);
	put_raw(f, path, s->S1);
	assert_int_equal(berth_path_tag_index_link(path, "b/two", "s1", s->S1), 0);
	put_raw(f, path, s->S1);
	assert_int_equal(berth_path_tag_current(path, "b/two", "s1"), 0);
	put_raw(f, path, s->S1);

	/* A revision whose manifest blob is gone. */
	berth_digest_bytes(BERTH_ALG_SHA256, "no such manifest", 16, s->X);
	assert_int_equal(berth_path_revision_link(path, "b/two", s->X), 0);
	put_raw(f, path, s->X);
}

/* ---- fixtures ---- */

static int setup_common(void **state, int fs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct berth_registry_config cfg = { .delete_enabled = 1 };
	if (!f || berth_test_registry_new(&f->reg, f->dir, sizeof(f->dir), fs ? "test-gc" : NULL, &cfg) < 0)
		return -1;
	f->d = berth_registry_driver(f->reg);
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

/* ---- checks ---- */

static int exists(struct fixture *f, const char *path)
{
	struct berth_stat st;
	int rc = berth_storage_stat(&st, f->d, path);
	if (rc != 0 && rc != BERTH_ENOTFOUND)
		fail_msg("stat %s: %s", path, berth_strerror(rc));
	return rc == 0;
}

static int blob(struct fixture *f, const char *digest)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_blob_data(path, digest), 0);
	return exists(f, path);
}

static uint64_t blob_size(struct fixture *f, const char *digest)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	assert_int_equal(berth_path_blob_data(path, digest), 0);
	assert_int_equal(berth_storage_stat(&st, f->d, path), 0);
	return st.size;
}

static int layer_link(struct fixture *f, const char *repo, const char *digest)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_layer_link(path, repo, digest), 0);
	return exists(f, path);
}

static int revision(struct fixture *f, const char *repo, const char *digest)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_revision_link(path, repo, digest), 0);
	return exists(f, path);
}

static int tag_index(struct fixture *f, const char *repo, const char *tag, const char *digest)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_tag_index_link(path, repo, tag, digest), 0);
	return exists(f, path);
}

#define HAS(expr, want)                                                                         \
	do {                                                                                    \
		if (!!(expr) != (want))                                                         \
			fail_msg("%s: expected %s", #expr, (want) ? "present" : "absent");      \
	} while (0)

static struct berth_gc_stats run_gc(struct fixture *f, int dry_run, int delete_untagged)
{
	struct berth_gc_options o = { 0 };
	struct berth_gc_stats st;
	o.dry_run = dry_run;
	o.delete_untagged = delete_untagged;
	o.quiet = 1;
	assert_int_equal(berth_gc_run(f->d, &o, &st), 0);
	return st;
}

/* What survives every mode: everything tagged or reachable from a tag. */
static void check_kept_always(struct fixture *f)
{
	struct store *s = &f->s;
	const char *blobs[] = { s->M1, s->C1, s->L1, s->L2, s->I, s->M5, s->C5, s->L6, s->M6, s->C6,
				s->L7, s->R, s->CE, s->L8, s->RR, s->L13, s->M2, s->C2, s->L3,
				s->S1, s->L12 };
	for (size_t i = 0; i < sizeof(blobs) / sizeof(blobs[0]); i++)
		if (!blob(f, blobs[i]))
			fail_msg("blob %zu (%s) was deleted", i, blobs[i]);
	const char *revs1[] = { s->M1, s->I, s->M5, s->M6, s->R, s->RR };
	for (size_t i = 0; i < sizeof(revs1) / sizeof(revs1[0]); i++)
		if (!revision(f, "a/one", revs1[i]))
			fail_msg("a/one revision %zu (%s) was deleted", i, revs1[i]);
	HAS(revision(f, "b/two", s->M2), 1);
	HAS(revision(f, "b/two", s->S1), 1);
	HAS(revision(f, "b/two", s->X), 1); /* missing blob: reported, left alone */
	HAS(tag_index(f, "a/one", "v1", s->M1), 1);
	HAS(tag_index(f, "a/one", "t", s->M1), 1);
	HAS(tag_index(f, "a/one", "multi", s->I), 1);
	const char *links1[] = { s->C1, s->L1, s->L2, s->C5, s->L6, s->C6, s->L7, s->CE, s->L8, s->L13 };
	for (size_t i = 0; i < sizeof(links1) / sizeof(links1[0]); i++)
		if (!layer_link(f, "a/one", links1[i]))
			fail_msg("a/one layer link %zu (%s) was deleted", i, links1[i]);
	HAS(layer_link(f, "b/two", s->L1), 1);
	HAS(layer_link(f, "b/two", s->C2), 1);
	HAS(layer_link(f, "b/two", s->L3), 1);
	HAS(layer_link(f, "b/two", s->L12), 1);
}

/* What goes in every mode: the dangling layer and the manifest deleted by digest. */
static void check_deleted_always(struct fixture *f)
{
	struct store *s = &f->s;
	HAS(blob(f, s->L10), 0);
	HAS(layer_link(f, "a/one", s->L10), 0);
	HAS(blob(f, s->M7), 0);
	HAS(blob(f, s->C7), 0);
	HAS(blob(f, s->L11), 0);
	HAS(layer_link(f, "b/two", s->C7), 0);
	HAS(layer_link(f, "b/two", s->L11), 0);
}

/* ---- tests ---- */

static void test_empty_store(void **state)
{
	struct fixture *f = *state;
	struct berth_gc_stats st = run_gc(f, 0, 1);
	assert_int_equal(st.repositories, 0);
	assert_int_equal(st.blobs_marked, 0);
	assert_int_equal(st.blobs_scanned, 0);
	assert_int_equal(st.blobs_deleted, 0);
}

static void test_default_mode(void **state)
{
	struct fixture *f = *state;
	struct store *s = &f->s;
	build_store(f);
	uint64_t freed = blob_size(f, s->L10) + blob_size(f, s->M7) + blob_size(f, s->C7) +
			 blob_size(f, s->L11);
	struct berth_gc_stats st = run_gc(f, 0, 0);

	check_kept_always(f);
	check_deleted_always(f);
	/* Without -m untagged manifests stay, with everything they reference. */
	HAS(blob(f, s->M3), 1);
	HAS(blob(f, s->C3), 1);
	HAS(blob(f, s->L4), 1);
	HAS(blob(f, s->R3), 1);
	HAS(blob(f, s->L9), 1);
	HAS(revision(f, "a/one", s->M3), 1);
	HAS(revision(f, "a/one", s->R3), 1);
	HAS(tag_index(f, "a/one", "t", s->M3), 1);
	HAS(layer_link(f, "a/one", s->L4), 1);

	assert_int_equal(st.repositories, 2);
	assert_int_equal(st.blobs_deleted, 4); /* L10, M7, C7, L11 */
	assert_int_equal(st.manifests_deleted, 0);
	assert_int_equal(st.layer_links_deleted, 3); /* a/one L10, b/two C7 L11 */
	assert_int_equal(st.bytes_freed, freed);
	assert_true(st.warnings >= 2); /* the schema1 manifest, the missing blob */

	/* A second run finds nothing more. */
	st = run_gc(f, 0, 0);
	assert_int_equal(st.blobs_deleted, 0);
	assert_int_equal(st.layer_links_deleted, 0);
	check_kept_always(f);
}

/* The path of a digest's pull record (registry/pulls.h). */
static void pull_record(char out[BERTH_PATH_MAX], const char *repo, const char *digest)
{
	snprintf(out, BERTH_PATH_MAX, "/berth/pulls/%s/_digests/sha256/%s", repo, strchr(digest, ':') + 1);
}

static void test_delete_untagged(void **state)
{
	struct fixture *f = *state;
	struct store *s = &f->s;
	char kept_record[BERTH_PATH_MAX], deleted_record[BERTH_PATH_MAX];
	build_store(f);
	pull_record(kept_record, "a/one", s->M1);
	pull_record(deleted_record, "a/one", s->M3);
	assert_int_equal(berth_storage_put_content(f->d, kept_record, "100", 3), 0);
	assert_int_equal(berth_storage_put_content(f->d, deleted_record, "100", 3), 0);
	struct berth_gc_stats st = run_gc(f, 0, 1);

	/* a deleted manifest's pull record goes with it */
	HAS(exists(f, deleted_record), 0);
	HAS(exists(f, kept_record), 1);

	check_kept_always(f);
	check_deleted_always(f);
	/* M3 lost its tag: gone with its blobs, its tag index entry, and its referrer R3. */
	HAS(revision(f, "a/one", s->M3), 0);
	HAS(revision(f, "a/one", s->R3), 0);
	HAS(tag_index(f, "a/one", "t", s->M3), 0);
	HAS(blob(f, s->M3), 0);
	HAS(blob(f, s->C3), 0);
	HAS(blob(f, s->L4), 0);
	HAS(blob(f, s->R3), 0);
	HAS(blob(f, s->L9), 0);
	HAS(layer_link(f, "a/one", s->C3), 0);
	HAS(layer_link(f, "a/one", s->L4), 0);
	HAS(layer_link(f, "a/one", s->L9), 0);

	assert_int_equal(st.manifests_deleted, 2);
	assert_int_equal(st.blobs_deleted, 9); /* + M3 C3 L4 R3 L9 */
	assert_int_equal(st.layer_links_deleted, 6);

	st = run_gc(f, 0, 1);
	assert_int_equal(st.blobs_deleted, 0);
	assert_int_equal(st.manifests_deleted, 0);
	check_kept_always(f);
}

/* A manifest written by hand under digest (sha512 or sha256): blob, revision link, and an entry
 * in the index of each tag of tags (NULL-terminated); current is the tag pointing at it, if any. */
static void raw_manifest(struct fixture *f, const char *repo, const char *body, const char *digest,
			 const char *current, const char *const *tags)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_blob_data(path, digest), 0);
	put_raw(f, path, body);
	assert_int_equal(berth_path_revision_link(path, repo, digest), 0);
	put_raw(f, path, digest);
	for (size_t i = 0; tags[i]; i++) {
		assert_int_equal(berth_path_tag_index_link(path, repo, tags[i], digest), 0);
		put_raw(f, path, digest);
	}
	if (current) {
		assert_int_equal(berth_path_tag_current(path, repo, current), 0);
		put_raw(f, path, digest);
	}
}

/* sha512 manifests: an untagged one goes with its tag index entries (listed under index/sha512
 * only because a sha512 revision is to go), a tagged one stays, and so do the sha256 entries. */
static void test_delete_untagged_sha512(void **state)
{
	struct fixture *f = *state;
	dg c, l, m256, old512, kept512;
	push_blob(f, "c/three", "{\"c\":512}", c);
	push_blob(f, "c/three", "layer-512", l);
	image(f, "c/three", "v", NULL, c, MT_CONFIG, m256, l, NULL);
	char body[1024];
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\","
		 "\"size\":11},\"layers\":[],\"annotations\":{\"n\":\"%%d\"}}",
		 BERTH_MT_OCI_MANIFEST, MT_CONFIG, c);
	char b1[1100], b2[1100];
	snprintf(b1, sizeof(b1), body, 1);
	snprintf(b2, sizeof(b2), body, 2);
	berth_digest_bytes(BERTH_ALG_SHA512, b1, strlen(b1), old512);
	berth_digest_bytes(BERTH_ALG_SHA512, b2, strlen(b2), kept512);
	raw_manifest(f, "c/three", b1, old512, NULL, (const char *const[]){ "v", "w", NULL });
	raw_manifest(f, "c/three", b2, kept512, "w", (const char *const[]){ "w", NULL });

	struct berth_gc_stats st = run_gc(f, 0, 1);
	assert_int_equal(st.manifests_deleted, 1);
	HAS(revision(f, "c/three", old512), 0);
	HAS(blob(f, old512), 0);
	HAS(tag_index(f, "c/three", "v", old512), 0);
	HAS(tag_index(f, "c/three", "w", old512), 0);
	HAS(revision(f, "c/three", kept512), 1);
	HAS(blob(f, kept512), 1);
	HAS(tag_index(f, "c/three", "w", kept512), 1);
	HAS(tag_index(f, "c/three", "v", m256), 1);
	HAS(blob(f, c), 1);
	HAS(layer_link(f, "c/three", l), 1);
}

/* Every path and size in the store, one per line. */
struct snap {
	char *buf;
	size_t len, cap;
};

static int snap_entry(const char *path, const struct berth_stat *st, void *payload)
{
	struct snap *s = payload;
	char line[BERTH_PATH_MAX + 64];
	int n = snprintf(line, sizeof(line), "%s %d %llu\n", path, st->is_dir,
			 (unsigned long long)st->size);
	if (s->len + (size_t)n + 1 > s->cap) {
		s->cap = (s->cap + (size_t)n + 1) * 2;
		s->buf = realloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, line, (size_t)n + 1);
	s->len += (size_t)n;
	return 0;
}

static char *snapshot(struct fixture *f)
{
	struct snap s = { NULL, 0, 0 };
	assert_int_equal(berth_storage_walk(f->d, "/", snap_entry, &s), 0);
	return s.buf;
}

static void test_dry_run(void **state)
{
	struct fixture *f = *state;
	build_store(f);
	char *before = snapshot(f);
	struct berth_gc_stats dry = run_gc(f, 1, 1);
	char *after = snapshot(f);
	assert_string_equal(before, after);
	struct berth_gc_stats dry0 = run_gc(f, 1, 0);
	free(after);
	after = snapshot(f);
	assert_string_equal(before, after);

	/* The dry runs announce exactly what the real runs then do. */
	struct berth_gc_stats real = run_gc(f, 0, 1);
	assert_int_equal(dry.blobs_deleted, real.blobs_deleted);
	assert_int_equal(dry.bytes_freed, real.bytes_freed);
	assert_int_equal(dry.manifests_deleted, real.manifests_deleted);
	assert_int_equal(dry.layer_links_deleted, real.layer_links_deleted);
	assert_int_equal(dry.blobs_marked, real.blobs_marked);
	assert_int_equal(dry0.blobs_deleted, 4);
	assert_int_equal(dry.blobs_deleted, 9);
	free(before);
	free(after);
}

/* The report goes where asked, in Distribution's words. */
static void test_report(void **state)
{
	struct fixture *f = *state;
	build_store(f);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct berth_gc_options o = { 0 };
	struct berth_gc_stats st;
	o.dry_run = 1;
	o.delete_untagged = 1;
	o.out = out;
	assert_int_equal(berth_gc_run(f->d, &o, &st), 0);
	fclose(out);

	char line[512];
	snprintf(line, sizeof(line), "a/one: marking manifest %s\n", f->s.M1);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "b/two: marking blob %s\n", f->s.L3);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "a/one: manifest eligible for deletion: %s\n", f->s.M3);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "blob eligible for deletion: %s\n", f->s.L10);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "a/one: layer link eligible for deletion: %s\n", f->s.L10);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "%llu blobs marked, 9 blobs eligible for deletion, would free %llu bytes\n",
		 (unsigned long long)st.blobs_marked, (unsigned long long)st.bytes_freed);
	assert_non_null(strstr(text, line));
	/* Nothing eligible is announced for what stays. */
	snprintf(line, sizeof(line), "eligible for deletion: %s\n", f->s.L1);
	assert_null(strstr(text, line));
	free(text);

	/* Quiet: only the summary. */
	text = NULL;
	out = open_memstream(&text, &len);
	o.out = out;
	o.quiet = 1;
	assert_int_equal(berth_gc_run(f->d, &o, &st), 0);
	fclose(out);
	assert_null(strstr(text, "marking"));
	assert_non_null(strstr(text, "blobs eligible for deletion, would free"));
	free(text);
}

/* A kept index whose child is only in another repository still marks that child's blob. */
static void test_shared_manifest_across_repos(void **state)
{
	struct fixture *f = *state;
	char c[BERTH_DIGEST_STR_MAX], l[BERTH_DIGEST_STR_MAX], m[BERTH_DIGEST_STR_MAX];
	/* The same image in two repositories, tagged in one only. */
	push_blob(f, "x", "{\"x\":1}", c);
	push_blob(f, "x", "layer-x", l);
	image(f, "x", "v", NULL, c, MT_CONFIG, m, l, NULL);
	push_blob(f, "y", "{\"x\":1}", c);
	push_blob(f, "y", "layer-x", l);
	image(f, "y", NULL, NULL, c, MT_CONFIG, m, l, NULL);
	struct berth_gc_stats st = run_gc(f, 0, 1);
	/* y's untagged revision goes; the blobs stay for x, and so do y's layer links (the
	 * digests are still marked: a link is only removed with its blob). */
	HAS(revision(f, "y", m), 0);
	HAS(revision(f, "x", m), 1);
	HAS(blob(f, m), 1);
	HAS(blob(f, c), 1);
	HAS(blob(f, l), 1);
	HAS(layer_link(f, "y", l), 1);
	assert_int_equal(st.manifests_deleted, 1);
	assert_int_equal(st.blobs_deleted, 0);
}

/* ---- one repository much larger than the others ---- */

#define BIG_MANIFESTS 150 /* one in five untagged */
#define SMALL_REPOS 30    /* one tagged manifest and one untagged each */

/* Written without syncs: the test's store need not survive a crash, and it is large. */
static void put_quick(struct fixture *f, const char *path, const char *content)
{
	assert_int_equal(
	    berth_storage_put_content_as(f->d, path, content, strlen(content), BERTH_SYNC_NONE), 0);
}

static void put_blob_quick(struct fixture *f, const char *repo, const char *content, char *digest)
{
	char path[BERTH_PATH_MAX];
	berth_digest_bytes(BERTH_ALG_SHA256, content, strlen(content), digest);
	assert_int_equal(berth_path_blob_data(path, digest), 0);
	put_quick(f, path, content);
	assert_int_equal(berth_path_layer_link(path, repo, digest), 0);
	put_quick(f, path, digest);
}

/* An image of its own config and layer plus the shared layer, written in the layout; tagged
 * t<k> or untagged. Its three own blobs go to out[0..2] (manifest, config, layer). */
static void quick_image(struct fixture *f, const char *repo, int k, int tagged, const char *shared,
			dg out[3])
{
	char path[BERTH_PATH_MAX], body[1024], content[64], tag[16];
	snprintf(content, sizeof(content), "{\"repo\":\"%s\",\"k\":%d}", repo, k);
	put_blob_quick(f, repo, content, out[1]);
	snprintf(content, sizeof(content), "layer %d of %s", k, repo);
	put_blob_quick(f, repo, content, out[2]);
	assert_int_equal(berth_path_layer_link(path, repo, shared), 0);
	put_quick(f, path, shared);
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
		 "\"digest\":\"%s\",\"size\":2},\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
		 "\"%s\",\"size\":7},{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":7}]}",
		 BERTH_MT_OCI_MANIFEST, MT_CONFIG, out[1], MT_LAYER, out[2], MT_LAYER, shared);
	berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), out[0]);
	assert_int_equal(berth_path_blob_data(path, out[0]), 0);
	put_quick(f, path, body);
	assert_int_equal(berth_path_revision_link(path, repo, out[0]), 0);
	put_quick(f, path, out[0]);
	if (!tagged)
		return;
	snprintf(tag, sizeof(tag), "t%d", k);
	assert_int_equal(berth_path_tag_index_link(path, repo, tag, out[0]), 0);
	put_quick(f, path, out[0]);
	assert_int_equal(berth_path_tag_current(path, repo, tag), 0);
	put_quick(f, path, out[0]);
}

/*
 * The mark phase reads repositories several at once and marks them in order: with the first
 * repository far larger than the others (the other threads read past it), every blob of every
 * tagged image is marked and stays, every untagged image's own blobs go, the counts are exact,
 * and the report names the repositories once each, in order.
 */
static void test_one_big_repository(void **state)
{
	struct fixture *f = *state;
	enum { IMAGES = BIG_MANIFESTS + 2 * SMALL_REPOS };
	dg shared, (*blobs)[3] = calloc(IMAGES, sizeof(*blobs));
	uint8_t *tagged = calloc(IMAGES, 1);
	char repo[32];
	size_t n = 0, kept = 0;
	assert_non_null(blobs);
	assert_non_null(tagged);
	berth_digest_bytes(BERTH_ALG_SHA256, "shared layer", 12, shared);
	for (int k = 0; k < BIG_MANIFESTS; k++, n++) {
		tagged[n] = k % 5 != 0;
		quick_image(f, "a/big", k, tagged[n], shared, blobs[n]);
	}
	for (int r = 0; r < SMALL_REPOS; r++) {
		snprintf(repo, sizeof(repo), "s%02d", r);
		for (int k = 0; k < 2; k++, n++) {
			tagged[n] = k == 0;
			quick_image(f, repo, k, tagged[n], shared, blobs[n]);
		}
	}
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_blob_data(path, shared), 0);
	put_quick(f, path, "shared layer");
	for (size_t i = 0; i < n; i++)
		kept += tagged[i];

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct berth_gc_options o = { 0 };
	struct berth_gc_stats st;
	o.delete_untagged = 1;
	o.out = out;
	assert_int_equal(berth_gc_run(f->d, &o, &st), 0);
	fclose(out);

	assert_int_equal(st.repositories, 1 + SMALL_REPOS);
	assert_int_equal(st.manifests_marked, kept);
	assert_int_equal(st.manifests_deleted, n - kept);
	assert_int_equal(st.blobs_marked, 3 * kept + 1);
	assert_int_equal(st.blobs_deleted, 3 * (n - kept));
	HAS(blob(f, shared), 1);
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 3; b++)
			if (blob(f, blobs[i][b]) != tagged[i])
				fail_msg("image %zu blob %d (%s): expected %s", i, b, blobs[i][b],
					 tagged[i] ? "present" : "absent");

	/* each repository's line once, in order: a/big first, then s00..s29 */
	const char *at = text;
	for (int r = -1; r < SMALL_REPOS; r++) {
		char line[40];
		if (r < 0)
			snprintf(line, sizeof(line), "a/big\n");
		else
			snprintf(line, sizeof(line), "\ns%02d\n", r);
		const char *hit = strstr(at, line);
		if (!hit)
			fail_msg("repository line %s missing or out of order", line);
		at = hit + 1;
	}
	free(text);
	free(blobs);
	free(tagged);
}

/*
 * A repository that cannot be read stops the mark phase at its turn, and no repository after it
 * starts to be read, even while a large one before it is still being read. The first
 * GC_DELETERS repositories (a/big, then b/f1.. whose listings fail) are read at once, one per
 * thread of the team: they meet at the driver's barrier, so no thread has taken another, and
 * a/big goes on only once every failure has returned. Then the other threads are free while
 * a/big is read, and the thirty small repositories after the failing ones must not be listed.
 * a/big's tags cannot be listed either (its last read): so every thread has met a failure before
 * it takes another repository, and no small one is listed whatever the threads' timing.
 */
static void test_unreadable_repository_stops_reads(void **state)
{
	(void)state;
	enum { FAILING = GC_DELETERS - 1 };
	struct fixture f = { 0 };
	assert_int_equal(berth_test_root_new(f.dir, sizeof(f.dir), "test-gc-unreadable"), 0);
	struct berth_counting_driver *c = berth_counting_driver_new(f.dir, 0);
	assert_non_null(c);
	f.d = &c->base;
	dg shared, blobs[3];
	char repo[32];
	berth_digest_bytes(BERTH_ALG_SHA256, "shared layer", 12, shared);
	for (int k = 0; k < BIG_MANIFESTS; k++)
		quick_image(&f, "a/big", k, 1, shared, blobs);
	for (int r = 1; r <= FAILING; r++) {
		snprintf(repo, sizeof(repo), "b/f%d", r);
		quick_image(&f, repo, 0, 1, shared, blobs);
	}
	for (int r = 0; r < SMALL_REPOS; r++) {
		snprintf(repo, sizeof(repo), "s%02d", r);
		quick_image(&f, repo, 0, 0, shared, blobs); /* untagged: the run would delete it */
	}
	char *before = snapshot(&f);

	const char *const fail[] = { BERTH_REPOS_ROOT "/b/*/_manifests/revisions/*",
				     BERTH_REPOS_ROOT "/a/big/_manifests/tags", NULL };
	c->fail = fail;
	c->barrier = 1 + FAILING;
	struct berth_gc_options o = { 0 };
	struct berth_gc_stats st;
	o.delete_untagged = 1;
	o.quiet = 1;
	assert_int_equal(berth_gc_run(f.d, &o, &st), BERTH_ERROR);

	assert_int_equal(c->met, 1 + FAILING); /* every thread was reading when they failed */
	char path[BERTH_PATH_MAX];
	for (int r = 1; r <= FAILING; r++) {
		snprintf(path, sizeof(path), BERTH_REPOS_ROOT "/b/f%d/_manifests/revisions/", r);
		assert_int_equal(berth_counting_listed(c, path), 1);
	}
	assert_int_equal(berth_counting_listed(c, BERTH_REPOS_ROOT "/a/big/_manifests/tags"), 1);
	for (int r = 0; r < SMALL_REPOS; r++) {
		snprintf(path, sizeof(path), BERTH_REPOS_ROOT "/s%02d/_manifests/revisions/", r);
		if (berth_counting_listed(c, path))
			fail_msg("%s was listed after a repository before it failed", path);
	}
	char *after = snapshot(&f);
	assert_string_equal(after, before); /* nothing deleted */
	free(before);
	free(after);
	f.d->free(f.d);
	berth_test_root_remove(f.dir);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup_mem, teardown), \
		cmocka_unit_test_setup_teardown(t, setup_fs, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_empty_store),
		BOTH(test_default_mode),
		BOTH(test_delete_untagged),
		BOTH(test_delete_untagged_sha512),
		BOTH(test_dry_run),
		BOTH(test_report),
		BOTH(test_shared_manifest_across_repos),
		BOTH(test_one_big_repository),
		cmocka_unit_test(test_unreadable_repository_stops_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * What the pull-through cache's stores sync on the filesystem (registry/manifest_store.c,
 * registry/uploads.c): content it can fetch again has its bytes synced before any name shows
 * them (a file's fsync, a blob's fdatasync) and its blob-store names made durable at once (a
 * push to a hosted repository that finds the blob links it without syncing them), but no
 * directory of the repository's synced after its renames (its links' names are made durable
 * lazily), while a push keeps every sync. Counted by this binary's own
 * fsync and fdatasync, which every call of the filesystem driver linked in here reaches, each
 * with the path its descriptor names.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/digest.h"
#include "core/err.h"
#include "helpers/registry.h"
#include "helpers/upload.h"
#include "registry/manifest.h"
#include "registry/registry.h"

#define SYNCS_MAX 256

struct sync_call {
	char path[512];
	int is_dir;
	int data_only; /* fdatasync */
};

static pthread_mutex_t syncs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sync_call syncs[SYNCS_MAX];
static size_t n_syncs;

static void record(int fd, int data_only)
{
	char link[64];
	struct stat st;
	pthread_mutex_lock(&syncs_lock);
	if (n_syncs < SYNCS_MAX) {
		struct sync_call *c = &syncs[n_syncs++];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, c->path, sizeof(c->path) - 1);
		c->path[n > 0 ? n : 0] = '\0';
		c->is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
		c->data_only = data_only;
	}
	pthread_mutex_unlock(&syncs_lock);
}

/* The C library's, counted: the driver's calls resolve to these. */
int fsync(int fd)
{
	record(fd, 0);
	return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
	record(fd, 1);
	return (int)syscall(SYS_fdatasync, fd);
}

static void syncs_reset(void)
{
	pthread_mutex_lock(&syncs_lock);
	n_syncs = 0;
	pthread_mutex_unlock(&syncs_lock);
}

/* Syncs since the reset of a directory (is_dir 1) or a file (0) whose path holds part. */
static size_t syncs_of(int is_dir, const char *part)
{
	size_t n = 0;
	pthread_mutex_lock(&syncs_lock);
	for (size_t i = 0; i < n_syncs; i++)
		n += syncs[i].is_dir == is_dir && strstr(syncs[i].path, part) != NULL;
	pthread_mutex_unlock(&syncs_lock);
	return n;
}

/* The index of the first sync of a directory (is_dir 1) or a file (0) whose path holds part,
 * or SIZE_MAX. */
static size_t first_sync_of(int is_dir, const char *part)
{
	size_t at = SIZE_MAX;
	pthread_mutex_lock(&syncs_lock);
	for (size_t i = 0; i < n_syncs && at == SIZE_MAX; i++)
		if (syncs[i].is_dir == is_dir && strstr(syncs[i].path, part))
			at = i;
	pthread_mutex_unlock(&syncs_lock);
	return at;
}

struct fixture {
	struct berth_registry *reg;
	char dir[256];
	char config[BERTH_DIGEST_STR_MAX]; /* a config blob in "hosted/app" */
	char manifest[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || berth_test_registry_new(&f->reg, f->dir, sizeof(f->dir), "test-fetched-syncs", NULL) < 0 ||
	    berth_test_upload(f->config, f->reg, "hosted/app", "{}", 2) < 0)
		return -1;
	snprintf(f->manifest, sizeof(f->manifest),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":2},\"layers\":[]}",
		 BERTH_MT_OCI_MANIFEST, f->config);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	berth_test_registry_free(f->reg, f->dir);
	free(f);
	return 0;
}

/* A manifest fetched by tag: its blob and every link synced as files, the blob's directory
 * synced, no directory of the repository's (the new tag's staging directory in _uploads
 * neither: a tag directory a crash leaves without its current link reads as no tag). */
static void test_fetched_manifest(void **state)
{
	struct fixture *f = *state;
	struct berth_manifest_put_result res;
	syncs_reset();
	assert_int_equal(berth_manifest_put_fetched(&res, f->reg, "proxy/app", "v1", BERTH_MT_OCI_MANIFEST,
						    f->manifest, strlen(f->manifest)),
			 0);
	assert_int_equal(syncs_of(1, "/docker/registry/v2/blobs/"), 1);
	assert_int_equal(syncs_of(1, "/proxy/app/"), 0);
	assert_int_equal(syncs_of(0, "/docker/registry/v2/blobs/"), 1); /* the manifest's bytes */
	assert_int_equal(syncs_of(0, "/proxy/app/_manifests/revisions/"), 1);
	assert_int_equal(syncs_of(0, "/proxy/app/_manifests/tags/v1/index/"), 1);
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->reg, "proxy/app", "v1"), 0);
	assert_string_equal(mc.digest, res.digest);
	berth_manifest_content_release(&mc);

	/* fetched again under another tag: only the new tag's links */
	syncs_reset();
	assert_int_equal(berth_manifest_put_fetched(&res, f->reg, "proxy/app", "v2", BERTH_MT_OCI_MANIFEST,
						    f->manifest, strlen(f->manifest)),
			 0);
	assert_int_equal(syncs_of(1, "/proxy/app/"), 0);
	assert_int_equal(syncs_of(1, "/docker/registry/v2/blobs/"), 0);
}

/* The same manifest pushed: every rename's directory synced too (the control: the counting
 * sees them). */
static void test_pushed_manifest(void **state)
{
	struct fixture *f = *state;
	struct berth_manifest_put_result res;
	syncs_reset();
	assert_int_equal(berth_manifest_put(&res, f->reg, "hosted/app", "v1", BERTH_MT_OCI_MANIFEST, f->manifest,
					    strlen(f->manifest)),
			 0);
	assert_int_equal(syncs_of(1, "/docker/registry/v2/blobs/"), 1);
	assert_true(syncs_of(1, "/hosted/app/_manifests") >= 2); /* the revision's, the tag's */
}

/* A session holding n bytes, opened as the cache (cached 1) or a push (0) opens it. */
static struct berth_upload *session_with(struct fixture *f, const char *repo, const char *content, size_t n,
					 int cached)
{
	struct berth_upload *u = NULL;
	char uuid[37];
	assert_int_equal(berth_upload_create(f->reg, repo, uuid), 0);
	assert_int_equal(cached ? berth_upload_open_cached(&u, f->reg, repo, uuid)
				: berth_upload_open(&u, f->reg, repo, uuid),
			 0);
	assert_int_equal(berth_upload_write(u, content, n), 0);
	return u;
}

/* A blob fetched: its data fdatasynced before anything links it, its directory in the blob
 * store synced after the move, its link synced as a file, the link's directory not synced. */
static void test_fetched_blob(void **state)
{
	struct fixture *f = *state;
	static const char content[] = "a layer fetched from the upstream";
	char digest[BERTH_DIGEST_STR_MAX];
	uint64_t size = 0;
	berth_digest_bytes(BERTH_ALG_SHA256, content, sizeof(content), digest);
	struct berth_upload *u = session_with(f, "proxy/app", content, sizeof(content), 1);
	syncs_reset();
	assert_int_equal(berth_upload_commit(u, digest), 0);
	berth_upload_close(u);
	assert_int_equal(berth_blob_stat(&size, f->reg, "proxy/app", digest), 0);
	assert_int_equal(size, sizeof(content));

	assert_int_equal(syncs_of(0, "/proxy/app/_uploads/"), 1); /* the data, before its move */
	size_t data = first_sync_of(0, "/proxy/app/_uploads/");
	size_t name = first_sync_of(1, "/docker/registry/v2/blobs/");
	size_t link = first_sync_of(0, "/proxy/app/_layers/");
	assert_true(syncs[data].data_only);
	assert_int_equal(syncs_of(0, "/proxy/app/_layers/"), 1);
	assert_true(data < name && name < link); /* the bytes, the blob's name, then the link */
	assert_int_equal(syncs_of(1, "/docker/registry/v2/blobs/"), 1);
	assert_int_equal(syncs_of(1, "/proxy/app/"), 0);
}

/* The same blob pushed: the directories synced too. */
static void test_pushed_blob(void **state)
{
	struct fixture *f = *state;
	static const char content[] = "a layer pushed";
	char digest[BERTH_DIGEST_STR_MAX];
	berth_digest_bytes(BERTH_ALG_SHA256, content, sizeof(content), digest);
	struct berth_upload *u = session_with(f, "hosted/app", content, sizeof(content), 0);
	syncs_reset();
	assert_int_equal(berth_upload_commit(u, digest), 0);
	berth_upload_close(u);
	assert_int_equal(syncs_of(1, "/docker/registry/v2/blobs/"), 1);
	assert_int_equal(syncs_of(1, "/hosted/app/_layers/"), 1);
}

/* Asserts that the blob store's directory of digest was synced before the first directory
 * whose path holds link_dir (the link a push or mount answers after). */
static void assert_blob_name_synced_before(const char *digest, const char *link_dir)
{
	char blob_dir[256];
	const char *hex = strchr(digest, ':') + 1;
	snprintf(blob_dir, sizeof(blob_dir), "/docker/registry/v2/blobs/sha256/%.2s/%s", hex, hex);
	size_t name = first_sync_of(1, blob_dir);
	size_t link = first_sync_of(1, link_dir);
	assert_true(name != SIZE_MAX);
	assert_true(link != SIZE_MAX);
	assert_true(name < link);
}

/* A blob fetched into the cache's repository, then linked into a hosted one, as a push that
 * finds it there (pushed 1) or a mount from the cache's repository (0) links it: both answer
 * once their own link is durable, so the blob's name must be durable before that link is. */
static void fetched_then_linked(struct fixture *f, int pushed)
{
	static const char content[] = "a layer fetched, then pushed or mounted";
	char digest[BERTH_DIGEST_STR_MAX];
	uint64_t size = 0;
	berth_digest_bytes(BERTH_ALG_SHA256, content, sizeof(content), digest);
	syncs_reset();
	struct berth_upload *u = session_with(f, "proxy/app", content, sizeof(content), 1);
	assert_int_equal(berth_upload_commit(u, digest), 0);
	berth_upload_close(u);
	if (pushed) {
		u = session_with(f, "hosted/app", content, sizeof(content), 0);
		assert_int_equal(berth_upload_commit(u, digest), 0);
		berth_upload_close(u);
	} else {
		assert_int_equal(berth_blob_mount(&size, f->reg, "hosted/app", digest, "proxy/app"),
				 0);
		assert_int_equal(size, sizeof(content));
	}
	assert_blob_name_synced_before(digest, "/hosted/app/_layers/");
}

static void test_fetched_then_pushed_blob(void **state)
{
	fetched_then_linked(*state, 1);
}

static void test_fetched_then_mounted_blob(void **state)
{
	fetched_then_linked(*state, 0);
}

/* A manifest fetched, then the same pushed to a hosted repository (which finds its bytes
 * stored): the bytes' name is durable before the push's revision link is. */
static void test_fetched_then_pushed_manifest(void **state)
{
	struct fixture *f = *state;
	struct berth_manifest_put_result res;
	syncs_reset();
	assert_int_equal(berth_manifest_put_fetched(&res, f->reg, "proxy/app", "v1",
						    BERTH_MT_OCI_MANIFEST, f->manifest,
						    strlen(f->manifest)),
			 0);
	assert_int_equal(berth_manifest_put(&res, f->reg, "hosted/app", "v1", BERTH_MT_OCI_MANIFEST,
					    f->manifest, strlen(f->manifest)),
			 0);
	assert_blob_name_synced_before(res.digest, "/hosted/app/_manifests/revisions/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fetched_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pushed_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetched_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pushed_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetched_then_pushed_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetched_then_mounted_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetched_then_pushed_manifest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

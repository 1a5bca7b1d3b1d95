/*
 * Online garbage collection's safety (registry/gc_online.h), on the filesystem driver:
 *  - ages: an unreferenced blob older than the delay goes, a younger one (and its layer link)
 *    stays; a HEAD (berth_blob_stat_refresh), a mount and a re-upload make an old blob young
 *    again, a pull's stat (berth_blob_stat: a GET) does not;
 *    with deleteuntagged, an untagged manifest pushed within the delay stays with its blobs.
 *  - the sweep lock: a push that runs exactly while the collection deletes a blob it checked
 *    (a wrapper driver starts the push from inside the collection's remove of that blob and
 *    gives it 300 ms) either completes before the check, or after the deletion and then finds
 *    the blob gone (a manifest PUT fails, an upload stores the blob again): never a manifest
 *    stored, or an upload answered, without its blob. Without the lock both would.
 *  - across instances (registry/gc_shared.h): the same pushes through a second registry on the
 *    same root (another process: its own sweep lock, its own instance id) wait out the batch's
 *    sweep notice instead; without the notices both would lose the blob. The lease goes to
 *    one instance at a time and passes on once it lapses.
 * Old blobs are made old by setting their data's mtime an hour back.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>

#include "core/digest.h"
#include "core/err.h"
#include "helpers/tmproot.h"
#include "helpers/upload.h"
#include "registry/gc.h"
#include "registry/gc_online.h"
#include "registry/gc_shared.h"
#include "registry/registry_int.h"
#include "registry/paths.h"
#include "registry/registry.h"
#include "registry/retention.h"
#include "storage/storage.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX "application/vnd.oci.image.index.v1+json"

typedef char dg[BERTH_DIGEST_STR_MAX];

/* A filesystem driver whose remove of one path first runs a hook (the concurrent push). */
struct window_driver {
	struct berth_storage_driver base;
	struct berth_storage_driver *inner;
	char trigger[BERTH_PATH_MAX]; /* "" : none */
	void (*hook)(void *arg);
	void *arg;
	unsigned touches; /* refreshes of a blob's age */
	/* what a collection costs (its deleter threads count too) */
	_Atomic unsigned notice_puts;          /* sweep notices written by put_content (durable) */
	_Atomic unsigned notice_puts_unsynced; /* ... by put_content_as, BERTH_SYNC_NONE */
	_Atomic unsigned absent_tag_removes;   /* removes under _manifests/tags/ of nothing */
	_Atomic unsigned pull_record_looks;    /* stats and lists under /berth/pulls */
};

static struct berth_storage_driver *inner(struct berth_storage_driver *d)
{
	return ((struct window_driver *)d)->inner;
}

static int w_get(char **o, size_t *n, struct berth_storage_driver *d, const char *p, size_t m)
{
	return inner(d)->get_content(o, n, inner(d), p, m);
}
static int is_notice(const char *p)
{
	return strncmp(p, BERTH_GC_NOTICES_DIR "/", strlen(BERTH_GC_NOTICES_DIR "/")) == 0;
}
static int is_pull_record(const char *p)
{
	return strncmp(p, "/berth/pulls", strlen("/berth/pulls")) == 0;
}
static int w_put(struct berth_storage_driver *d, const char *p, const void *b, size_t n)
{
	if (is_notice(p))
		((struct window_driver *)d)->notice_puts++;
	return inner(d)->put_content(inner(d), p, b, n);
}
static int w_put_as(struct berth_storage_driver *d, const char *p, const void *b, size_t n,
		    enum berth_sync sync)
{
	struct window_driver *w = (struct window_driver *)d;
	if (is_notice(p))
		(void)(sync == BERTH_SYNC_NONE ? w->notice_puts_unsynced++ : w->notice_puts++);
	return inner(d)->put_content_as(inner(d), p, b, n, sync);
}
static int w_reader(struct berth_reader **o, struct berth_storage_driver *d, const char *p, uint64_t off)
{
	return inner(d)->reader(o, inner(d), p, off);
}
static int w_writer(struct berth_writer **o, struct berth_storage_driver *d, const char *p, int a)
{
	return inner(d)->writer(o, inner(d), p, a);
}
static int w_stat(struct berth_stat *o, struct berth_storage_driver *d, const char *p)
{
	if (is_pull_record(p))
		((struct window_driver *)d)->pull_record_looks++;
	return inner(d)->stat(o, inner(d), p);
}
static int w_list(struct berth_storage_driver *d, const char *p, berth_list_cb cb, void *pl)
{
	if (is_pull_record(p))
		((struct window_driver *)d)->pull_record_looks++;
	return inner(d)->list(inner(d), p, cb, pl);
}
static int w_move(struct berth_storage_driver *d, const char *f, const char *t)
{
	return inner(d)->move(inner(d), f, t);
}
static int w_walk(struct berth_storage_driver *d, const char *p, berth_walk_cb cb, void *pl)
{
	return inner(d)->walk(inner(d), p, cb, pl);
}
static int w_touch(struct berth_storage_driver *d, const char *p)
{
	((struct window_driver *)d)->touches++;
	return inner(d)->touch(inner(d), p);
}
static int w_remove(struct berth_storage_driver *d, const char *p)
{
	struct window_driver *w = (struct window_driver *)d;
	if (w->trigger[0] && strcmp(p, w->trigger) == 0) {
		w->trigger[0] = '\0';
		w->hook(w->arg);
	}
	int rc = inner(d)->remove(inner(d), p);
	if (rc == BERTH_ENOTFOUND && strstr(p, "/_manifests/tags/"))
		w->absent_tag_removes++;
	return rc;
}
static void w_free(struct berth_storage_driver *d)
{
	inner(d)->free(inner(d));
	free(d);
}

struct fixture {
	char dir[256];
	struct window_driver *w;
	struct berth_registry *reg;
	struct berth_registry *other; /* another instance on the same root */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct berth_storage_driver *fs = NULL;
	if (berth_test_root_new(f->dir, sizeof(f->dir), "test-gc-online") < 0 ||
	    berth_fs_driver_new(&fs, f->dir) < 0)
		return -1;
	f->w = calloc(1, sizeof(*f->w));
	f->w->base = (struct berth_storage_driver){
		.version = BERTH_STORAGE_DRIVER_VERSION, .name = "window", .get_content = w_get,
		.put_content = w_put, .reader = w_reader, .writer = w_writer, .stat = w_stat,
		.list = w_list, .move = w_move, .remove = w_remove, .walk = w_walk, .free = w_free,
		.touch = w_touch, .put_content_as = w_put_as,
	};
	f->w->inner = fs;
	struct berth_registry_config cfg = { .driver = &f->w->base, .delete_enabled = 1,
					     .descriptor_cache_size = 1000, .gc_online = 1 };
	if (berth_registry_new(&f->reg, &cfg) < 0)
		return -1;
	struct berth_storage_driver *fs2 = NULL;
	if (berth_fs_driver_new(&fs2, f->dir) < 0)
		return -1;
	cfg.driver = fs2;
	if (berth_registry_new(&f->other, &cfg) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	berth_registry_free(f->reg);
	berth_registry_free(f->other);
	berth_test_root_remove(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static int upload_via(struct berth_registry *reg, const char *repo, const char *content, char *digest)
{
	return berth_test_upload(digest, reg, repo, content, strlen(content));
}

static int upload(struct fixture *f, const char *repo, const char *content, char *digest)
{
	return upload_via(f->reg, repo, content, digest);
}

static void image(char *body, size_t cap, const char *config, const char *layer, const char *cfgd,
		  const char *layerd)
{
	snprintf(body, cap,
		 "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\",\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
		 "\"digest\":\"%s\",\"size\":%zu}]}",
		 cfgd, strlen(config), layerd, strlen(layer));
}

static int put_manifest_via(struct berth_registry *reg, const char *repo, const char *ref,
			    const char *body, char *digest)
{
	struct berth_manifest_put_result res;
	int rc = berth_manifest_put(&res, reg, repo, ref, MT_MANIFEST, body, strlen(body));
	if (digest)
		snprintf(digest, BERTH_DIGEST_STR_MAX, "%s", res.digest);
	return rc;
}

static int put_manifest(struct fixture *f, const char *repo, const char *ref, const char *body,
			char *digest)
{
	return put_manifest_via(f->reg, repo, ref, body, digest);
}

/* Uploads config and layer to repo (their digests into cfgd and layerd) and puts their image
 * manifest, body (cap bytes), by its digest (into m): untagged. */
static void push_untagged_image(struct fixture *f, const char *repo, const char *config, const char *layer,
				char *cfgd, char *layerd, char *m, char *body, size_t cap)
{
	assert_int_equal(upload(f, repo, config, cfgd), 0);
	assert_int_equal(upload(f, repo, layer, layerd), 0);
	image(body, cap, config, layer, cfgd, layerd);
	berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), m);
	assert_int_equal(put_manifest(f, repo, m, body, NULL), 0);
}

static void host_path(struct fixture *f, char *out, const char *digest)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_blob_data(path, digest), 0);
	snprintf(out, BERTH_PATH_MAX + 512, "%s%s", f->dir, path);
}

/* The blob's data was last written or refreshed an hour ago. */
static void age(struct fixture *f, const char *digest)
{
	char p[BERTH_PATH_MAX + 512];
	host_path(f, p, digest);
	struct timespec t[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
}

static int is_old(struct fixture *f, const char *digest)
{
	char p[BERTH_PATH_MAX + 512];
	struct stat st;
	host_path(f, p, digest);
	assert_int_equal(stat(p, &st), 0);
	return st.st_mtime < time(NULL) - 600;
}

static int blob_exists(struct fixture *f, const char *digest)
{
	char p[BERTH_PATH_MAX + 512];
	struct stat st;
	host_path(f, p, digest);
	return stat(p, &st) == 0;
}

static int layer_link_exists(struct fixture *f, const char *repo, const char *digest)
{
	char path[BERTH_PATH_MAX], p[BERTH_PATH_MAX + 512];
	struct stat st;
	assert_int_equal(berth_path_layer_link(path, repo, digest), 0);
	snprintf(p, sizeof(p), "%s%s", f->dir, path);
	return stat(p, &st) == 0;
}

static struct berth_gc_stats collect(struct fixture *f, int delete_untagged)
{
	struct berth_gc_options o = { .quiet = 1, .delete_untagged = delete_untagged,
				      .registry = f->reg, .delay_ms = 1000 };
	struct berth_gc_stats st;
	assert_int_equal(berth_gc_run(berth_registry_driver(f->reg), &o, &st), 0);
	return st;
}

/* ---- ages ---- */

static void test_old_unreferenced_goes_young_stays(void **state)
{
	struct fixture *f = *state;
	dg old, young;
	assert_int_equal(upload(f, "r", "old layer", old), 0);
	assert_int_equal(upload(f, "r", "young layer", young), 0);
	age(f, old);
	struct berth_gc_stats st = collect(f, 0);
	assert_false(blob_exists(f, old));
	assert_false(layer_link_exists(f, "r", old));
	assert_true(blob_exists(f, young));
	assert_true(layer_link_exists(f, "r", young)); /* a manifest may still come for it */
	assert_int_equal(st.blobs_deleted, 1);
	assert_int_equal(st.young_kept, 1);
}

static void test_head_mount_and_repush_refresh_age(void **state)
{
	struct fixture *f = *state;
	dg a, b, c;
	uint64_t size;
	assert_int_equal(upload(f, "r", "checked by HEAD", a), 0);
	assert_int_equal(upload(f, "r", "mounted", b), 0);
	assert_int_equal(upload(f, "r", "pushed again", c), 0);
	age(f, a);
	age(f, b);
	age(f, c);
	assert_int_equal(berth_blob_stat_refresh(&size, f->reg, "r", a), 0);
	unsigned touches = f->w->touches;
	assert_int_equal(berth_blob_mount(&size, f->reg, "s", b, "r"), 0);
	assert_int_equal(size, strlen("mounted")); /* the answer's size: no second look */
	assert_int_equal(f->w->touches, touches + 1);
	assert_int_equal(upload(f, "t", "pushed again", c), 0);
	assert_false(is_old(f, a));
	assert_false(is_old(f, b));
	assert_false(is_old(f, c));
	collect(f, 0);
	assert_true(blob_exists(f, a) && blob_exists(f, b) && blob_exists(f, c));
}

/* A pull (GET) references nothing: its stat leaves the age alone (on S3 a refresh is a
 * CopyObject), and the unreferenced blob goes. */
static void test_pull_stat_does_not_refresh_age(void **state)
{
	struct fixture *f = *state;
	dg a;
	uint64_t size = 0;
	assert_int_equal(upload(f, "r", "only pulled", a), 0);
	age(f, a);
	unsigned touches = f->w->touches;
	assert_int_equal(berth_blob_stat(&size, f->reg, "r", a), 0);
	assert_int_equal(size, strlen("only pulled"));
	assert_int_equal(f->w->touches, touches);
	assert_true(is_old(f, a));
	collect(f, 0);
	assert_false(blob_exists(f, a));
}

static void test_manifest_put_refreshes_references(void **state)
{
	struct fixture *f = *state;
	dg cfg, lay, m;
	char body[1024];
	assert_int_equal(upload(f, "r", "config", cfg), 0);
	assert_int_equal(upload(f, "r", "layer", lay), 0);
	age(f, cfg);
	age(f, lay);
	image(body, sizeof(body), "config", "layer", cfg, lay);
	assert_int_equal(put_manifest(f, "r", "v1", body, m), 0);
	assert_false(is_old(f, cfg));
	assert_false(is_old(f, lay));
}

static void test_untagged_young_manifest_stays_with_its_blobs(void **state)
{
	struct fixture *f = *state;
	dg c1, l1, m1, c2, l2, m2;
	char body[1024];
	/* m1 pushed by digest just now (a child before its index); m2 untagged for an hour */
	push_untagged_image(f, "r", "config one", "layer one", c1, l1, m1, body, sizeof(body));
	push_untagged_image(f, "r", "config two", "layer two", c2, l2, m2, body, sizeof(body));
	age(f, c2);
	age(f, l2);
	age(f, m2);
	struct berth_gc_stats st = collect(f, 1);
	assert_int_equal(st.manifests_deleted, 1);
	assert_true(blob_exists(f, m1) && blob_exists(f, c1) && blob_exists(f, l1));
	assert_false(blob_exists(f, m2) || blob_exists(f, c2) || blob_exists(f, l2));
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->reg, "r", m1), 0);
	berth_manifest_content_release(&mc);
	assert_int_equal(berth_manifest_get(&mc, f->reg, "r", m2), BERTH_ENOTFOUND);
}

/* ---- what a run costs ---- */

/* A sweep notice only has to be visible (gc_shared.h): written without the fsyncs of a durable
 * put_content (on the filesystem, two per notice: they were most of a small batch's time). */
static void test_sweep_notice_is_not_synced(void **state)
{
	struct fixture *f = *state;
	dg a;
	assert_int_equal(upload(f, "r", "old layer", a), 0);
	age(f, a);
	struct berth_gc_stats st = collect(f, 0);
	assert_int_equal(st.blobs_deleted, 1);
	assert_true(f->w->notice_puts_unsynced >= 2); /* the blobs' phase and the layer links' */
	assert_int_equal(f->w->notice_puts, 0);
}

/*
 * Repository r: tags t0..t4 name one image; tag "moved" named m1, then m2; u1 and u2 were
 * pushed by digest. With deleteuntagged the old m1, u1 and u2 go (*gone: their digests),
 * with m1's entry in the index of "moved".
 */
static void untagged_in_many_tags(struct fixture *f, char gone[3][BERTH_DIGEST_STR_MAX], dg m2)
{
	dg c, l, m0;
	char body[1024], tag[8];
	assert_int_equal(upload(f, "r", "config", c), 0);
	assert_int_equal(upload(f, "r", "layer", l), 0);
	image(body, sizeof(body), "config", "layer", c, l);
	for (int t = 0; t < 5; t++) {
		snprintf(tag, sizeof(tag), "t%d", t);
		assert_int_equal(put_manifest(f, "r", tag, body, m0), 0);
	}
	push_untagged_image(f, "r", "config 1", "layer 1", c, l, gone[0], body, sizeof(body));
	assert_int_equal(put_manifest(f, "r", "moved", body, NULL), 0);
	push_untagged_image(f, "r", "config 2", "layer 2", c, l, m2, body, sizeof(body));
	assert_int_equal(put_manifest(f, "r", "moved", body, NULL), 0);
	push_untagged_image(f, "r", "config 3", "layer 3", c, l, gone[1], body, sizeof(body));
	push_untagged_image(f, "r", "config 4", "layer 4", c, l, gone[2], body, sizeof(body));
	for (int i = 0; i < 3; i++)
		age(f, gone[i]);
}

static int tag_index_exists(struct fixture *f, const char *tag, const char *digest)
{
	char path[BERTH_PATH_MAX], p[BERTH_PATH_MAX + 512];
	struct stat st;
	assert_int_equal(berth_path_tag_index_link(path, "r", tag, digest), 0);
	snprintf(p, sizeof(p), "%s%s", f->dir, path);
	return stat(p, &st) == 0;
}

/* An untagged manifest's deletion removes its entries in the tags' indexes that exist (as
 * Distribution's): listed once, instead of a remove under every tag for each manifest. */
static void test_untagged_delete_removes_only_existing_tag_entries(void **state)
{
	struct fixture *f = *state;
	char gone[3][BERTH_DIGEST_STR_MAX];
	dg m2;
	untagged_in_many_tags(f, gone, m2);
	assert_true(tag_index_exists(f, "moved", gone[0]));
	struct berth_gc_stats st = collect(f, 1);
	assert_int_equal(st.manifests_deleted, 3);
	assert_false(tag_index_exists(f, "moved", gone[0]));
	assert_true(tag_index_exists(f, "moved", m2));
	assert_int_equal(f->w->absent_tag_removes, 0);
}

/* Without a keeppulledwithin rule nothing records pulls: a run deleting manifests does not
 * look for their records. */
static void test_untagged_delete_without_pull_rules_skips_records(void **state)
{
	struct fixture *f = *state;
	char gone[3][BERTH_DIGEST_STR_MAX];
	dg m2;
	untagged_in_many_tags(f, gone, m2);
	struct berth_gc_stats st = collect(f, 1);
	assert_int_equal(st.manifests_deleted, 3);
	assert_int_equal(f->w->pull_record_looks, 0);
}

/* With one, the record of a deleted manifest's digest goes with it. */
static void test_untagged_delete_with_pull_rules_forgets_records(void **state)
{
	struct fixture *f = *state;
	char gone[3][BERTH_DIGEST_STR_MAX], record[BERTH_PATH_MAX], p[BERTH_PATH_MAX + 512];
	dg m2;
	struct stat sb;
	untagged_in_many_tags(f, gone, m2);
	struct berth_storage_driver *fs = NULL;
	struct berth_registry *reg = NULL;
	struct berth_retention_rule rule = { .repository = "", .keep_latest = -1, .keep_pushed_within_ms = -1,
					     .untagged_after_ms = -1, .keep_pulled_within_ms = 3600000 };
	struct berth_registry_config cfg = { .delete_enabled = 1, .descriptor_cache_size = 1000, .gc_online = 1,
					     .retention_rules = &rule, .n_retention_rules = 1 };
	assert_int_equal(berth_fs_driver_new(&fs, f->dir), 0);
	cfg.driver = fs;
	assert_int_equal(berth_registry_new(&reg, &cfg), 0);
	snprintf(record, sizeof(record), "/berth/pulls/r/_digests/sha256/%s", strchr(gone[1], ':') + 1);
	assert_int_equal(berth_storage_put_content(fs, record, "1", 1), 0);

	struct berth_gc_options o = { .quiet = 1, .delete_untagged = 1, .registry = reg, .delay_ms = 1000 };
	struct berth_gc_stats st;
	assert_int_equal(berth_gc_run(fs, &o, &st), 0);
	assert_int_equal(st.manifests_deleted, 3);
	snprintf(p, sizeof(p), "%s%s", f->dir, record);
	assert_int_not_equal(stat(p, &sb), 0);
	berth_registry_free(reg);
}

/* ---- the sweep lock ---- */

struct push {
	struct fixture *f;
	struct berth_registry *via; /* the instance pushing: NULL for f->reg */
	int kind; /* 0: manifest PUT referencing the blob; 1: upload of the blob's bytes again;
		   * 2: index PUT */
	int wait_all; /* the hook waits for the push to end, however long */
	const char *body;
	char digest[BERTH_DIGEST_STR_MAX];
	int rc;
	int done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
};

static void *push_main(void *arg)
{
	struct push *p = arg;
	dg d;
	struct berth_registry *via = p->via ? p->via : p->f->reg;
	struct berth_manifest_put_result res;
	int rc = p->kind == 0 ? put_manifest_via(via, "r", "v1", p->body, NULL)
		 : p->kind == 1 ? upload_via(via, "r", p->body, d)
				: berth_manifest_put(&res, via, "r", "v1", MT_INDEX, p->body, strlen(p->body));
	pthread_mutex_lock(&p->lock);
	p->rc = rc;
	p->done = 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Runs inside the collection's remove of the blob: starts the push, gives it 300 ms. */
static void start_push(void *arg)
{
	struct push *p = arg;
	assert_int_equal(pthread_create(&p->thread, NULL, push_main, p), 0);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 300 * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (p->wait_all && !p->done)
		pthread_cond_wait(&p->cond, &p->lock);
	while (!p->done && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
		;
	pthread_mutex_unlock(&p->lock);
}

/* The push runs inside the collection's remove of path. */
static void push_in_window_at(struct fixture *f, struct push *p, const char *path, int delete_untagged)
{
	snprintf(f->w->trigger, sizeof(f->w->trigger), "%s", path);
	f->w->hook = start_push;
	f->w->arg = p;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	collect(f, delete_untagged);
	assert_string_equal(f->w->trigger, ""); /* the window was reached */
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
}

static void push_in_window(struct fixture *f, struct push *p, const char *victim)
{
	char path[BERTH_PATH_MAX];
	assert_int_equal(berth_path_blob_dir(path, victim), 0);
	push_in_window_at(f, p, path, 0);
}

static void test_manifest_put_while_its_layer_is_deleted(void **state)
{
	struct fixture *f = *state;
	dg cfg, lay;
	char body[1024];
	assert_int_equal(upload(f, "r", "young config", cfg), 0);
	assert_int_equal(upload(f, "r", "old layer", lay), 0);
	age(f, lay);
	image(body, sizeof(body), "young config", "old layer", cfg, lay);
	struct push p = { .f = f, .kind = 0, .body = body };
	push_in_window(f, &p, lay);
	/* the PUT waited for the deletion, then found the layer gone */
	assert_int_equal(p.rc, BERTH_ENOTFOUND);
	assert_false(blob_exists(f, lay));
}

/* The blob "old layer" (lay) pushed again by p through reg, waited out a deletion: stored again,
 * linked in "r", its size right through reg. */
static void assert_stored_again(struct fixture *f, struct berth_registry *reg, const struct push *p, const char *lay)
{
	uint64_t size;
	assert_int_equal(p->rc, 0);
	assert_true(blob_exists(f, lay));
	assert_true(layer_link_exists(f, "r", lay));
	assert_int_equal(berth_blob_stat(&size, reg, "r", lay), 0);
	assert_int_equal(size, strlen("old layer"));
}

static void test_blob_pushed_again_while_deleted(void **state)
{
	struct fixture *f = *state;
	dg lay;
	uint64_t size;
	assert_int_equal(upload(f, "r", "old layer", lay), 0);
	assert_int_equal(berth_blob_stat(&size, f->reg, "r", lay), 0); /* its size is cached */
	age(f, lay);
	struct push p = { .f = f, .kind = 1, .body = "old layer" };
	push_in_window(f, &p, lay);
	/* the upload waited for the deletion, then stored the blob again, linked */
	assert_stored_again(f, f->reg, &p, lay);
}

/* ---- across instances ---- */

static void test_other_instance_manifest_put_while_its_layer_is_deleted(void **state)
{
	struct fixture *f = *state;
	dg cfg, lay;
	char body[1024];
	assert_int_equal(upload(f, "r", "young config", cfg), 0);
	assert_int_equal(upload(f, "r", "old layer", lay), 0);
	age(f, lay);
	image(body, sizeof(body), "young config", "old layer", cfg, lay);
	/* the other instance does not take this one's sweep lock: it touches the layer (still
	 * there), finds it in the batch's notice, waits the batch out, and finds it gone */
	struct push p = { .f = f, .via = f->other, .kind = 0, .body = body };
	push_in_window(f, &p, lay);
	assert_int_equal(p.rc, BERTH_ENOTFOUND);
	assert_false(blob_exists(f, lay));
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->other, "r", "v1"), BERTH_ENOTFOUND);
}

static void test_other_instance_blob_pushed_again_while_deleted(void **state)
{
	struct fixture *f = *state;
	dg lay;
	assert_int_equal(upload(f, "r", "old layer", lay), 0);
	age(f, lay);
	struct push p = { .f = f, .via = f->other, .kind = 1, .body = "old layer" };
	push_in_window(f, &p, lay);
	/* answered only once the batch was over: stored again, linked */
	assert_stored_again(f, f->other, &p, lay);
}

/* An index PUT slower than the delay: its child, pushed by digest before it, is untagged and
 * old when a collection marks, and the index comes (through another instance) after the mark:
 * the child stays (its age restarts) and so must its config and layer, which the mark did not
 * mark. */
static void test_index_put_keeps_what_its_untagged_child_references(void **state)
{
	struct fixture *f = *state;
	dg cfg, lay, child, dcfg, dlay, decoy;
	char body[1024], decoy_body[1024], index[2048], path[BERTH_PATH_MAX], hex[129];
	push_untagged_image(f, "r", "child config", "child layer", cfg, lay, child, body, sizeof(body));
	/* an untagged manifest in repository "a", collected first: the index PUT runs inside the
	 * removal of its revision, after the mark */
	push_untagged_image(f, "a", "decoy config", "decoy layer", dcfg, dlay, decoy, decoy_body, sizeof(decoy_body));
	age(f, cfg);
	age(f, lay);
	age(f, child);
	age(f, dcfg);
	age(f, dlay);
	age(f, decoy);
	snprintf(index, sizeof(index),
		 "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\",\"manifests\":[{\"mediaType\":"
		 "\"" MT_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\","
		 "\"architecture\":\"amd64\"}}]}",
		 child, strlen(body));
	snprintf(hex, sizeof(hex), "%s", decoy + strlen("sha256:"));
	snprintf(path, sizeof(path), "/docker/registry/v2/repositories/a/_manifests/revisions/sha256/%s", hex);
	struct push p = { .f = f, .via = f->other, .kind = 2, .body = index, .wait_all = 1 };
	push_in_window_at(f, &p, path, 1);
	assert_int_equal(p.rc, 0);
	assert_true(blob_exists(f, child));
	assert_true(blob_exists(f, cfg));
	assert_true(blob_exists(f, lay));
	assert_false(blob_exists(f, decoy));
	struct berth_manifest_content mc;
	assert_int_equal(berth_manifest_get(&mc, f->reg, "r", child), 0);
	berth_manifest_content_release(&mc);
}

static void test_lease_one_instance_at_a_time(void **state)
{
	struct fixture *f = *state;
	char holder[64];
	int64_t until;
	assert_int_equal(berth_gc_lease_take(f->reg, 60000, holder, &until), 1);
	assert_int_equal(berth_gc_lease_take(f->other, 60000, holder, &until), 0);
	assert_string_equal(holder, f->reg->gc_instance);
	assert_int_equal(berth_gc_lease_take(f->reg, 1, holder, &until), 1); /* renewed, short */
	usleep(5000);
	assert_int_equal(berth_gc_lease_take(f->other, 60000, holder, &until), 1); /* lapsed */
	assert_int_equal(berth_gc_lease_take(f->reg, 60000, holder, &until), 0);
	assert_string_equal(holder, f->other->gc_instance);
}

/* ---- the cycle ---- */

struct step_state {
	struct fixture *f;
	const char *layer;
	int calls;
	int dry_run_seen;
	int gone_by_second_call; /* the first run collected what its step untagged */
	pthread_mutex_t lock;
};

/* A retention-like step: untags r:v1 the first time. */
static int untag_step(struct berth_registry *r, int dry_run, void *payload)
{
	struct step_state *s = payload;
	pthread_mutex_lock(&s->lock);
	int call = ++s->calls;
	s->dry_run_seen = dry_run;
	if (call == 2)
		s->gone_by_second_call = !blob_exists(s->f, s->layer);
	pthread_mutex_unlock(&s->lock);
	return call == 1 ? berth_manifest_delete(r, "r", "v1") : 0;
}

static void test_cycle_runs_steps_before_marking(void **state)
{
	struct fixture *f = *state;
	dg cfg, lay, m;
	char body[1024];
	assert_int_equal(upload(f, "r", "config", cfg), 0);
	assert_int_equal(upload(f, "r", "layer", lay), 0);
	image(body, sizeof(body), "config", "layer", cfg, lay);
	assert_int_equal(put_manifest(f, "r", "v1", body, m), 0);
	age(f, cfg);
	age(f, lay);
	age(f, m);

	struct step_state s = { f, lay, 0, -1, 0, PTHREAD_MUTEX_INITIALIZER };
	struct berth_gc_online_options o = { .interval_ms = 20, .delay_ms = 1000, .delete_untagged = 1,
					     .n_before_mark = 1 };
	o.before_mark[0] = untag_step;
	o.before_mark_payload[0] = &s;
	struct berth_gc_online *g = NULL;
	assert_int_equal(berth_gc_online_start(&g, f->reg, &o), 0);
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&s.lock);
		int calls = s.calls;
		pthread_mutex_unlock(&s.lock);
		if (calls >= 2)
			break;
		usleep(10000);
	}
	berth_gc_online_stop(g);
	/* untagged by the step, then collected by the same run: the step ran before the mark */
	assert_true(s.calls >= 2);
	assert_true(s.gone_by_second_call);
	assert_int_equal(s.dry_run_seen, 0);
	assert_false(blob_exists(f, m) || blob_exists(f, cfg) || blob_exists(f, lay));
}

struct nice_state {
	pthread_mutex_t lock;
	int calls;
	int nice; /* the collection thread's, seen by its step */
};

static int record_nice(struct berth_registry *r, int dry_run, void *payload)
{
	struct nice_state *s = payload;
	(void)r;
	(void)dry_run;
	int nice = getpriority(PRIO_PROCESS, (id_t)gettid());
	pthread_mutex_lock(&s->lock);
	s->nice = nice;
	s->calls++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The collection yields the CPU to serving: its thread runs 10 nicer than the rest. */
static void test_cycle_runs_at_low_priority(void **state)
{
	struct fixture *f = *state;
	struct nice_state s = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };
	struct berth_gc_online_options o = { .interval_ms = 20, .delay_ms = 1000, .n_before_mark = 1 };
	o.before_mark[0] = record_nice;
	o.before_mark_payload[0] = &s;
	int before = getpriority(PRIO_PROCESS, (id_t)gettid());
	struct berth_gc_online *g = NULL;
	assert_int_equal(berth_gc_online_start(&g, f->reg, &o), 0);
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&s.lock);
		int calls = s.calls;
		pthread_mutex_unlock(&s.lock);
		if (calls >= 1)
			break;
		usleep(10000);
	}
	berth_gc_online_stop(g);
	assert_true(s.calls >= 1);
	assert_int_equal(s.nice, before + 10 > 19 ? 19 : before + 10);
	/* only the collection's threads: this one (serving, in berth serve) is as it was */
	assert_int_equal(getpriority(PRIO_PROCESS, (id_t)gettid()), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_old_unreferenced_goes_young_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_mount_and_repush_refresh_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pull_stat_does_not_refresh_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_put_refreshes_references, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untagged_young_manifest_stays_with_its_blobs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sweep_notice_is_not_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untagged_delete_removes_only_existing_tag_entries, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_untagged_delete_without_pull_rules_skips_records, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_untagged_delete_with_pull_rules_forgets_records, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_manifest_put_while_its_layer_is_deleted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blob_pushed_again_while_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_instance_manifest_put_while_its_layer_is_deleted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_instance_blob_pushed_again_while_deleted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_index_put_keeps_what_its_untagged_child_references,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_one_instance_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cycle_runs_steps_before_marking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cycle_runs_at_low_priority, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

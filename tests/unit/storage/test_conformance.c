/*
 * Storage driver conformance: one suite, run against every driver, pinning down the contract
 * in storage/driver.h. A few filesystem-only tests check the on-disk layout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config/config.h"
#include "core/err.h"
#include "helpers/tmproot.h"
#include "storage/driver.h"
#include "storage/fs_direct.h"
#include "storage/middleware.h"
#include "storage/storage.h"

struct fixture {
	struct berth_storage_driver *d;
	char tmpdir[64]; /* fs only: berth_test_root_new directory, removed in teardown */
	char root[96];   /* fs only: the driver's root, tmpdir/root (created by the driver) */
};

/* ---- fixtures ---- */

static int setup_fs(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (berth_test_root_new(f->tmpdir, sizeof(f->tmpdir), "storage") < 0)
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->tmpdir);
	if (berth_fs_driver_new(&f->d, f->root) != 0)
		return -1;
	*state = f;
	return 0;
}

static int setup_inmem(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (berth_inmem_driver_new(&f->d) != 0)
		return -1;
	*state = f;
	return 0;
}

/* The filesystem driver under a storage middleware (middleware.storage redirect), which must
 * forward every call unchanged. */
static int setup_fs_middleware(void **state)
{
	static struct berth_config cfg; /* large: not on the stack */
	static struct berth_storage_middleware mw = { .name = "redirect", .baseurl = "https://cdn.example.com",
						      .duration_ms = -1, .updatefrequency_ms = -1 };
	struct berth_storage_driver *m = NULL;
	if (setup_fs(state) != 0)
		return -1;
	berth_config_defaults(&cfg);
	cfg.n_storage_middleware = 1;
	cfg.storage_middleware = &mw;
	if (berth_storage_middleware_new(&m, &cfg) != 0 ||
	    berth_storage_middleware_wrap(&((struct fixture *)*state)->d, m) != 0)
		return -1;
	return 0;
}

/* ---- S3: one throw-away RGW for the group, a fresh rootdirectory per test ---- */

static struct {
	char dir[64];   /* rgw-test-up.sh's directory; "" when no RGW runs */
	char endpoint[128], access[128], secret[128], region[64], bucket[64];
	int serial;
} rgw;

/* The value of NAME=value among rgw-test-up.sh's output lines, into out. */
static void take_assignment(const char *line, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);
	if (strncmp(line, name, n) == 0 && line[n] == '=') {
		/* the result is used: a truncated value stays truncated, and GCC's Release build
		 * (-Wformat-truncation) does not refuse the call */
		if (snprintf(out, outlen, "%s", line + n + 1) < 0)
			out[0] = '\0';
		out[strcspn(out, "\n")] = '\0';
	}
}

static int rgw_down(void **state);

/* A failed assertion under the sanitizers aborts: the gateway's daemons must not outlive us. */
static void rgw_down_on_abort(int sig)
{
	rgw_down(NULL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int rgw_up(void **state)
{
	signal(SIGABRT, rgw_down_on_abort);
	snprintf(rgw.dir, sizeof(rgw.dir), "%s", "/tmp/berth-rgw-XXXXXX");
	if (mkdtemp(rgw.dir) == NULL)
		return -1;
	char cmd[512], line[512];
	snprintf(cmd, sizeof(cmd), "%s/tests/fixtures/s3/rgw-test-up.sh %s berth-test", BERTH_SRC_DIR, rgw.dir);
	FILE *p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		take_assignment(line, "S3_ENDPOINT", rgw.endpoint, sizeof(rgw.endpoint));
		take_assignment(line, "S3_ACCESS_KEY", rgw.access, sizeof(rgw.access));
		take_assignment(line, "S3_SECRET_KEY", rgw.secret, sizeof(rgw.secret));
		take_assignment(line, "S3_REGION", rgw.region, sizeof(rgw.region));
		take_assignment(line, "S3_BUCKET", rgw.bucket, sizeof(rgw.bucket));
	}
	if (pclose(p) != 0 || rgw.bucket[0] == '\0') {
		fprintf(stderr, "cannot start radosgw (logs in %s/log)\n", rgw.dir);
		rgw.dir[0] = '\0';
		return -1;
	}
	return 0;
}

static int rgw_down(void **state)
{
	if (rgw.dir[0]) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "%s/tests/fixtures/s3/rgw-down.sh %s", BERTH_SRC_DIR, rgw.dir);
		rgw.dir[0] = '\0';
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* Options for the test RGW: parts and the copy threshold at S3's 5 MiB minimum, so that the
 * large-object tests go through multipart uploads and multipart copies. */
static struct berth_s3_options rgw_options(const char *rootdirectory)
{
	return (struct berth_s3_options){
		.endpoint = rgw.endpoint, .bucket = rgw.bucket, .path_style = 1, .region = rgw.region,
		.accesskey = rgw.access, .secretkey = rgw.secret, .sessiontoken = "",
		.rootdirectory = rootdirectory, .chunksize = 5u << 20, .copy_chunksize = 5u << 20,
		.copy_threshold = 5u << 20, .encrypt_header = "", .keyid = "", .storageclass = "STANDARD",
		.objectacl = "private", .useragent = "", .retries = 3, .connect_timeout_ms = 5000,
		.stall_timeout_s = 30,
	};
}

static int setup_s3(void **state)
{
	if (rgw.dir[0] == '\0')
		return -1;
	struct fixture *f = calloc(1, sizeof(*f));
	char root[64];
	snprintf(root, sizeof(root), "/conformance/t%d", ++rgw.serial);
	struct berth_s3_options o = rgw_options(root);
	if (berth_s3_driver_new(&f->d, &o) != 0)
		return -1;
	*state = f;
	return 0;
}

/* The S3 driver, like Distribution's, does not police a name being both an object and a
 * "directory" (a key prefix): registry paths never collide so, and checking every parent on
 * every write would cost a request each. Its stat gives directories no version (listings are
 * not cached on it); objects have one (their ETag's). */
static void skip_on_s3(struct berth_storage_driver *d)
{
	if (strcmp(d->name, "s3") == 0)
		skip();
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	f->d->free(f->d);
	berth_test_root_remove(f->tmpdir);
	free(f);
	return 0;
}

static struct berth_storage_driver *drv(void **state)
{
	return ((struct fixture *)*state)->d;
}

/* ---- helpers ---- */

static void put(struct berth_storage_driver *d, const char *path, const char *s)
{
	assert_int_equal(d->put_content(d, path, s, strlen(s)), 0);
}

static void expect_content(struct berth_storage_driver *d, const char *path, const char *want)
{
	char *got = NULL;
	size_t len = 0;
	assert_int_equal(d->get_content(&got, &len, d, path, 1 << 20), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(got, want);
	free(got);
}

static void expect_absent(struct berth_storage_driver *d, const char *path)
{
	struct berth_stat st;
	assert_int_equal(d->stat(&st, d, path), BERTH_ENOTFOUND);
}

/* Reads a reader to the end in pieces of `chunk` bytes. */
static char *read_all(struct berth_reader *r, size_t chunk, size_t *len)
{
	size_t cap = 64, n = 0;
	char *buf = malloc(cap);
	char piece[4096];
	assert_true(chunk <= sizeof(piece));
	for (;;) {
		ssize_t got = r->read(r, piece, chunk);
		assert_true(got >= 0);
		if (got == 0)
			break;
		if (n + (size_t)got + 1 > cap) {
			cap = (n + (size_t)got + 1) * 2;
			buf = realloc(buf, cap);
		}
		memcpy(buf + n, piece, (size_t)got);
		n += (size_t)got;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* A collected list of names, compared as a sorted, newline-joined string. */
struct names {
	char buf[4096];
	char *v[64];
	size_t n;
	int calls;
	int stop_at; /* non-zero: return 42 on this call */
};

static int collect_name(const char *path, void *payload)
{
	struct names *ns = payload;
	ns->calls++;
	assert_true(ns->n < 64);
	ns->v[ns->n++] = strdup(path);
	return ns->calls == ns->stop_at ? 42 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *names_sorted(struct names *ns)
{
	qsort(ns->v, ns->n, sizeof(ns->v[0]), cmp_str);
	ns->buf[0] = '\0';
	for (size_t i = 0; i < ns->n; i++) {
		strcat(ns->buf, ns->v[i]);
		strcat(ns->buf, "\n");
		free(ns->v[i]);
	}
	ns->n = 0;
	return ns->buf;
}

/* A walk transcript: one "path d" or "path f<size>" line per visit, in visiting order. */
struct transcript {
	struct berth_storage_driver *d;
	char buf[4096];
	int calls;
	int stop_at;
};

static int record_visit(const char *path, const struct berth_stat *st, void *payload)
{
	struct transcript *t = payload;
	char line[256];
	struct berth_stat again;

	/* Callbacks may call back into the driver (no lock may be held around them). */
	assert_int_equal(t->d->stat(&again, t->d, path), 0);
	assert_int_equal(again.is_dir, st->is_dir);

	if (st->is_dir)
		snprintf(line, sizeof(line), "%s d\n", path);
	else
		snprintf(line, sizeof(line), "%s f%llu\n", path, (unsigned long long)st->size);
	strcat(t->buf, line);
	t->calls++;
	return t->calls == t->stop_at ? 42 : 0;
}

/* ---- content ---- */

static void test_put_get_roundtrip(void **state)
{
	struct berth_storage_driver *d = drv(state);
	put(d, "/a/b/c", "hello");
	expect_content(d, "/a/b/c", "hello");

	/* Binary-safe, and NUL-terminated past the length. */
	assert_int_equal(d->put_content(d, "/bin", "x\0y", 3), 0);
	char *got;
	size_t len;
	assert_int_equal(d->get_content(&got, &len, d, "/bin", 3), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "x\0y\0", 4);
	free(got);

	assert_int_equal(d->put_content(d, "/empty", "", 0), 0);
	expect_content(d, "/empty", "");
}

static void test_get_missing(void **state)
{
	struct berth_storage_driver *d = drv(state);
	char *got = (char *)"untouched";
	size_t len;
	assert_int_equal(d->get_content(&got, &len, d, "/nope", 100), BERTH_ENOTFOUND);
	put(d, "/a/file", "x");
	assert_int_equal(d->get_content(&got, &len, d, "/a/file/below", 100), BERTH_ENOTFOUND);
	/* a directory */
	assert_int_equal(d->get_content(&got, &len, d, "/a", 100), BERTH_ENOTFOUND);
	assert_string_equal(got, "untouched");
}

static void test_get_too_large(void **state)
{
	struct berth_storage_driver *d = drv(state);
	char *got = NULL;
	size_t len;
	put(d, "/ten", "0123456789");
	assert_int_equal(d->get_content(&got, &len, d, "/ten", 9), BERTH_ETOOLARGE);
	assert_null(got);
	assert_int_equal(d->get_content(&got, &len, d, "/ten", 10), 0);
	assert_int_equal(len, 10);
	free(got);
}

static void test_overwrite(void **state)
{
	struct berth_storage_driver *d = drv(state);
	put(d, "/o", "a longer first value");
	put(d, "/o", "short");
	expect_content(d, "/o", "short");
}

static void test_put_keeps_open_readers(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_reader *r;
	size_t len;
	put(d, "/x", "old content");
	assert_int_equal(d->reader(&r, d, "/x", 0), 0);
	put(d, "/x", "NEW");
	char *got = read_all(r, 4, &len); /* atomic replace: the reader keeps the old object */
	assert_string_equal(got, "old content");
	free(got);
	r->close(r);
	expect_content(d, "/x", "NEW");
}

/* put_content_as and move_as (put_content and move where a driver has none), at every sync
 * level: the same atomic replacements and moves, visible at once; only what is durable on
 * return differs, which no reader can see. The filesystem driver (under middleware.storage
 * too) has its own. */
static void test_put_as(void **state)
{
	static const enum berth_sync levels[] = { BERTH_SYNC_ALL, BERTH_SYNC_FILE,
						  BERTH_SYNC_NONE };
	struct berth_storage_driver *d = drv(state);
	struct berth_reader *r;
	size_t len;
	char path[32];
	if (strcmp(d->name, "filesystem") == 0)
		assert_non_null(d->put_content_as);
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		enum berth_sync sync = levels[i];
		snprintf(path, sizeof(path), "/n/o%zu/x", i); /* parents made */
		assert_int_equal(berth_storage_put_content_as(d, path, "old content", 11, sync), 0);
		expect_content(d, path, "old content");
		assert_int_equal(d->reader(&r, d, path, 0), 0);
		assert_int_equal(berth_storage_put_content_as(d, path, "NEW", 3, sync), 0);
		char *got = read_all(r, 4, &len);
		assert_string_equal(got, "old content"); /* replaced, not rewritten in place */
		free(got);
		r->close(r);
		expect_content(d, path, "NEW");
		assert_int_equal(berth_storage_put_content_as(d, path, "", 0, sync), 0);
		expect_content(d, path, "");
		assert_int_equal(berth_storage_put_content_as(d, "/n/bad//path", "x", 1, sync),
				 BERTH_EINVALID);
	}
}

static void test_move_as(void **state)
{
	static const enum berth_sync levels[] = { BERTH_SYNC_ALL, BERTH_SYNC_FILE,
						  BERTH_SYNC_NONE };
	struct berth_storage_driver *d = drv(state);
	char from[32], to[32], old[32], missing[32];
	if (strcmp(d->name, "filesystem") == 0)
		assert_non_null(d->move_as);
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		enum berth_sync sync = levels[i];
		snprintf(from, sizeof(from), "/l%zu/a/x", i);
		snprintf(to, sizeof(to), "/l%zu/b/c/y", i);
		snprintf(old, sizeof(old), "/l%zu/old", i);
		snprintf(missing, sizeof(missing), "/l%zu/m/n", i);
		put(d, from, "NEW");
		assert_int_equal(berth_storage_move_as(d, from, to, sync), 0); /* parents made */
		expect_absent(d, from);
		expect_content(d, to, "NEW");
		put(d, old, "old");
		assert_int_equal(berth_storage_move_as(d, to, old, sync), 0); /* replaces */
		expect_absent(d, to);
		expect_content(d, old, "NEW");
		assert_int_equal(berth_storage_move_as(d, "/l/missing", missing, sync),
				 BERTH_ENOTFOUND);
		missing[strlen(missing) - 2] = '\0'; /* no parent made either */
		expect_absent(d, missing);
	}
}

static void test_type_conflicts(void **state)
{
	struct berth_storage_driver *d = drv(state);
	skip_on_s3(d);
	struct berth_writer *w;
	put(d, "/f", "file");
	put(d, "/dir/x", "x");
	assert_int_equal(d->put_content(d, "/f/g", "x", 1), BERTH_EEXISTS);
	assert_int_equal(d->writer(&w, d, "/f/g", 0), BERTH_EEXISTS);
	assert_int_equal(d->put_content(d, "/dir", "x", 1), BERTH_EEXISTS);
	assert_int_equal(d->writer(&w, d, "/dir", 1), BERTH_EEXISTS);
	assert_int_equal(d->move(d, "/f", "/dir"), BERTH_EEXISTS);
	assert_int_equal(d->move(d, "/dir", "/f"), BERTH_EEXISTS);
	expect_content(d, "/f", "file");
	expect_content(d, "/dir/x", "x");
}

/* ---- paths ---- */

static const char *const invalid_paths[] = {
	"", "a", "a/b", "/a/../b", "/a//b", "/a/./b", "/a b", "/a/", "/..", "/.", "//", "/a/b/..",
	"/a~", "/\xc3\xa9", "/a\\b", "/a:b",
};

static void test_path_grammar(void **state)
{
	const char *valid[] = { "/", "/a", "/a/b", "/A-z_0.9", "/.hidden", "/a/..b", "/...", "/-" };
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_true(berth_storage_path_valid(valid[i]));
	for (size_t i = 0; i < sizeof(invalid_paths) / sizeof(invalid_paths[0]); i++)
		assert_false(berth_storage_path_valid(invalid_paths[i]));
	assert_false(berth_storage_path_valid(NULL));
}

static int never_called(const char *path, void *payload)
{
	fail();
	return 0;
}

static int never_visited(const char *path, const struct berth_stat *st, void *payload)
{
	fail();
	return 0;
}

static void expect_all_invalid(struct berth_storage_driver *d, const char *p)
{
	char *got;
	size_t len;
	struct berth_reader *r;
	struct berth_writer *w;
	struct berth_stat st;
	assert_int_equal(d->get_content(&got, &len, d, p, 100), BERTH_EINVALID);
	assert_int_equal(d->put_content(d, p, "x", 1), BERTH_EINVALID);
	assert_int_equal(d->reader(&r, d, p, 0), BERTH_EINVALID);
	assert_int_equal(d->writer(&w, d, p, 0), BERTH_EINVALID);
	assert_int_equal(d->move(d, p, "/ok"), BERTH_EINVALID);
	assert_int_equal(d->move(d, "/ok", p), BERTH_EINVALID);
	assert_int_equal(d->remove(d, p), BERTH_EINVALID);
	if (strcmp(p, "/") != 0) { /* the root is a directory: stat/list/walk accept it */
		assert_int_equal(d->stat(&st, d, p), BERTH_EINVALID);
		assert_int_equal(d->list(d, p, never_called, NULL), BERTH_EINVALID);
		assert_int_equal(d->walk(d, p, never_visited, NULL), BERTH_EINVALID);
	}
}

static void test_invalid_paths_rejected(void **state)
{
	struct berth_storage_driver *d = drv(state);
	put(d, "/ok", "x");
	put(d, "/a/b", "y");
	for (size_t i = 0; i < sizeof(invalid_paths) / sizeof(invalid_paths[0]); i++)
		expect_all_invalid(d, invalid_paths[i]);
	expect_all_invalid(d, "/"); /* not an object */
	expect_content(d, "/ok", "x");
	expect_content(d, "/a/b", "y");
}

/* ---- reader ---- */

static void test_reader_offsets(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_reader *r;
	char buf[32];
	size_t len;
	put(d, "/r", "0123456789");

	assert_int_equal(d->reader(&r, d, "/r", 0), 0);
	assert_int_equal(r->size, 10);
	assert_int_equal(r->offset, 0);
	if (strcmp(d->name, "inmemory") == 0)
		assert_int_equal(r->fd, -1);
	char *got = read_all(r, sizeof(buf), &len);
	assert_string_equal(got, "0123456789");
	free(got);
	r->close(r);

	assert_int_equal(d->reader(&r, d, "/r", 4), 0);
	assert_int_equal(r->size, 10);
	assert_int_equal(r->offset, 4);
	got = read_all(r, sizeof(buf), &len);
	assert_string_equal(got, "456789");
	free(got);
	r->close(r);

	assert_int_equal(d->reader(&r, d, "/r", 10), 0);
	assert_int_equal(r->read(r, buf, sizeof(buf)), 0);
	r->close(r);

	r = NULL;
	assert_int_equal(d->reader(&r, d, "/r", 11), BERTH_ERANGE);
	assert_null(r);
	assert_int_equal(d->reader(&r, d, "/missing", 0), BERTH_ENOTFOUND);
	put(d, "/dir/f", "x");
	assert_int_equal(d->reader(&r, d, "/dir", 0), BERTH_ENOTFOUND);
}

static void test_reader_small_pieces(void **state)
{
	struct berth_storage_driver *d = drv(state);
	enum { N = 10007 };
	char *want = malloc(N + 1);
	for (size_t i = 0; i < N; i++)
		want[i] = (char)('a' + i * 7 % 26);
	want[N] = '\0';
	assert_int_equal(d->put_content(d, "/big", want, N), 0);

	struct berth_reader *r;
	size_t len;
	assert_int_equal(d->reader(&r, d, "/big", 3), 0);
	char *got = read_all(r, 7, &len);
	assert_int_equal(len, N - 3);
	assert_memory_equal(got, want + 3, N - 3);
	free(got);
	void (*close_reader)(struct berth_reader *) = r->close;
	close_reader(r);
	close_reader(NULL); /* close accepts NULL */
	free(want);
}

/* ---- writer ---- */

static void write_str(struct berth_writer *w, const char *s)
{
	assert_int_equal(w->write(w, s, strlen(s)), 0);
}

static void test_writer_truncate_and_append(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_writer *w;

	assert_int_equal(d->writer(&w, d, "/up/data", 0), 0); /* parents are created */
	assert_int_equal(w->size(w), 0);
	write_str(w, "abc");
	write_str(w, "def");
	assert_int_equal(w->size(w), 6);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_content(d, "/up/data", "abcdef");

	assert_int_equal(d->writer(&w, d, "/up/data", 1), 0);
	assert_int_equal(w->size(w), 6);
	write_str(w, "gh");
	assert_int_equal(w->size(w), 8);
	assert_int_equal(w->commit(w), 0);
	write_str(w, "i"); /* still usable after commit */
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_content(d, "/up/data", "abcdefghi");

	assert_int_equal(d->writer(&w, d, "/up/data", 0), 0);
	assert_int_equal(w->size(w), 0);
	write_str(w, "x");
	w->close(w); /* close without commit keeps the bytes */
	expect_content(d, "/up/data", "x");

	assert_int_equal(d->writer(&w, d, "/fresh/append", 1), 0); /* append creates */
	assert_int_equal(w->size(w), 0);
	w->close(w);
	expect_content(d, "/fresh/append", "");
}

static void test_writer_visible_before_commit(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_writer *w;
	struct berth_reader *r;
	size_t len;

	assert_int_equal(d->writer(&w, d, "/v", 0), 0);
	write_str(w, "abc");
	assert_int_equal(w->flush(w), 0);
	assert_int_equal(d->reader(&r, d, "/v", 0), 0);
	assert_int_equal(r->size, 3);
	char *got = read_all(r, 2, &len);
	assert_string_equal(got, "abc");
	free(got);
	r->close(r);

	/* Many small appends: sizes stay exact while storage grows. */
	char chunk[1000];
	memset(chunk, 'z', sizeof(chunk));
	for (int i = 0; i < 1000; i++)
		assert_int_equal(w->write(w, chunk, sizeof(chunk)), 0);
	assert_int_equal(w->size(w), 3 + 1000 * 1000);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	struct berth_stat st;
	assert_int_equal(d->stat(&st, d, "/v"), 0);
	assert_int_equal(st.size, 3 + 1000 * 1000);
}

static void test_writer_cancel(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_writer *w;
	assert_int_equal(d->writer(&w, d, "/c/upload", 0), 0);
	write_str(w, "partial");
	assert_int_equal(w->cancel(w), 0);
	expect_absent(d, "/c/upload");
	void (*close_writer)(struct berth_writer *) = w->close;
	close_writer(w);
	close_writer(NULL); /* close accepts NULL */
	expect_absent(d, "/c/upload");

	/* Zero-length writes are fine on a fresh object. */
	assert_int_equal(d->writer(&w, d, "/c/empty", 0), 0);
	assert_int_equal(w->write(w, "", 0), 0);
	assert_int_equal(w->size(w), 0);
	w->close(w);
	expect_content(d, "/c/empty", "");
}

/* A reproducible byte pattern with no period a block size would hide. */
/* n pseudo-random bytes at an address aligned as a writer takes them without a copy. */
static unsigned char *pattern(size_t n)
{
	void *v = NULL;
	assert_int_equal(posix_memalign(&v, BERTH_WRITER_ALIGN, n ? n : 1), 0);
	unsigned char *p = v;
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

/* The object holds exactly want[0, n). */
static void expect_bytes(struct berth_storage_driver *d, const char *path, const unsigned char *want,
			 size_t n)
{
	struct berth_reader *r;
	static unsigned char buf[1 << 16];
	size_t off = 0;
	assert_int_equal(d->reader(&r, d, path, 0), 0);
	assert_int_equal(r->size, n);
	for (;;) {
		ssize_t got = r->read(r, buf, sizeof(buf));
		assert_true(got >= 0);
		if (got == 0)
			break;
		assert_true(off + (size_t)got <= n);
		assert_memory_equal(buf, want + off, (size_t)got);
		off += (size_t)got;
	}
	assert_int_equal(off, n);
	r->close(r);
}

/* Writes src[from, to) in pieces of growing, odd sizes. */
static void write_pieces(struct berth_writer *w, const unsigned char *src, size_t from, size_t to)
{
	size_t piece = 1;
	while (from < to) {
		size_t k = to - from < piece ? to - from : piece;
		assert_int_equal(w->write(w, src + from, k), 0);
		from += k;
		piece = piece * 3 + 1;
		if (piece > (700u << 10))
			piece = 4097;
	}
}

/* Writes src[from, to) in pieces of BERTH_WRITER_ALIGN multiples at aligned offsets: brings
 * the object to an aligned size first, and ends with whatever is left. */
static void write_aligned_pieces(struct berth_writer *w, const unsigned char *src, size_t from, size_t to)
{
	size_t head = (BERTH_WRITER_ALIGN - from % BERTH_WRITER_ALIGN) % BERTH_WRITER_ALIGN;
	size_t piece = 64u << 10;
	if (head > to - from)
		head = to - from;
	if (head > 0)
		assert_int_equal(w->write(w, src + from, head), 0);
	for (from += head; from < to;) {
		size_t k = piece < to - from ? piece : to - from;
		assert_int_equal(w->write(w, src + from, k), 0);
		from += k;
		piece = piece >= (1u << 20) ? 64u << 10 : piece * 2;
	}
}

/* Large objects (the filesystem driver writes their aligned pieces directly past 1 MiB, see
 * storage/fs_direct.h): every byte lands in order whatever the piece sizes and alignments,
 * across a flush, a reopen at an unaligned size and a commit. */
static void test_writer_large_pieces(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t total = (6u << 20) + 12345, first = (3u << 20) + 777, second = (4u << 20) + 9;
	unsigned char *src = pattern(total);
	struct berth_writer *w;

	assert_int_equal(d->writer(&w, d, "/big/data", 0), 0);
	write_pieces(w, src, 0, first);
	assert_int_equal(w->size(w), first);
	assert_int_equal(w->flush(w), 0);
	expect_bytes(d, "/big/data", src, first);
	write_pieces(w, src, first, second); /* still usable after a flush */
	assert_int_equal(w->size(w), second);
	w->close(w); /* close without flush or commit keeps the bytes too */
	expect_bytes(d, "/big/data", src, second);

	assert_int_equal(d->writer(&w, d, "/big/data", 1), 0);
	assert_int_equal(w->size(w), second);
	write_aligned_pieces(w, src, second, (5u << 20) + 3);
	write_pieces(w, src, (5u << 20) + 3, (5u << 20) + 70000); /* odd again after aligned */
	write_aligned_pieces(w, src, (5u << 20) + 70000, total);
	assert_int_equal(w->size(w), total);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_bytes(d, "/big/data", src, total);

	/* A cancelled large object is gone. */
	assert_int_equal(d->writer(&w, d, "/big/gone", 0), 0);
	write_aligned_pieces(w, src, 0, total);
	assert_int_equal(w->cancel(w), 0);
	w->close(w);
	expect_absent(d, "/big/gone");
	free(src);
}

/* A suspended writer's bytes are where the next append-open continues, in every driver; the
 * size an append-open would start at is known without opening one (berth_storage_append_size),
 * and a commit makes the object whole. */
static void test_writer_suspend(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t total = (7u << 20) + 321, first = 1000, second = (6u << 20) + 5;
	unsigned char *src = pattern(total);
	struct berth_writer *w;
	uint64_t size = 0;

	assert_int_equal(berth_storage_append_size(&size, d, "/sus/data"), BERTH_ENOTFOUND);
	assert_int_equal(d->writer(&w, d, "/sus/data", 1), 0);
	write_pieces(w, src, 0, first);
	assert_int_equal(berth_writer_suspend(w), 0);
	assert_int_equal(w->suspend_noted, 0); /* S3: a plain object, no upload to vouch for */
	assert_int_equal(w->size(w), first);
	w->close(w);
	assert_int_equal(berth_storage_append_size(&size, d, "/sus/data"), 0);
	assert_int_equal(size, first);

	for (size_t from = first, to = second; from < total; from = to, to = total) {
		assert_int_equal(d->writer(&w, d, "/sus/data", 1), 0);
		assert_int_equal(w->size(w), from);
		write_pieces(w, src, from, to);
		assert_int_equal(berth_writer_suspend(w), 0);
		w->close(w);
		assert_int_equal(berth_storage_append_size(&size, d, "/sus/data"), 0);
		assert_int_equal(size, to);
	}

	/* An append-open that writes nothing changes nothing; a commit makes the object. */
	assert_int_equal(d->writer(&w, d, "/sus/data", 1), 0);
	assert_int_equal(w->size(w), total);
	w->close(w);
	assert_int_equal(d->writer(&w, d, "/sus/data", 1), 0);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_bytes(d, "/sus/data", src, total);
	free(src);
}

/* The resume slot (driver.h): a writer reopened where this process's last suspend of the path
 * left it, once, while nothing else opened it; nothing opened otherwise, and never by a driver
 * without the slot. */
static void test_resume_writer(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t part = 5u << 20, total = 2 * part + 77;
	unsigned char *src = pattern(total);
	struct berth_writer *w = NULL, *none = NULL;

	assert_int_equal(berth_storage_resume_writer(&none, d, "/res/data"), 0);
	assert_null(none);
	assert_int_equal(d->writer(&w, d, "/res/data", 1), 0);
	write_pieces(w, src, 0, part);
	assert_int_equal(berth_writer_suspend(w), 0);
	assert_int_equal(w->suspend_noted, berth_storage_can_resume(d));
	w->close(w);
	if (berth_storage_can_resume(d)) {
		assert_int_equal(berth_storage_resume_writer(&w, d, "/res/data"), 0);
		assert_non_null(w);
		assert_int_equal(w->size(w), part);
		write_pieces(w, src, part, 2 * part);
		assert_int_equal(berth_writer_suspend(w), 0);
		w->close(w);
		assert_int_equal(berth_storage_resume_writer(&w, d, "/res/data"), 0);
		assert_non_null(w);
		assert_int_equal(w->size(w), 2 * part);
		w->close(w); /* not suspended: vouched for once */
		assert_int_equal(berth_storage_resume_writer(&none, d, "/res/data"), 0);
		assert_null(none);
		/* another open of the path after a suspend ends what the suspend left */
		assert_int_equal(d->writer(&w, d, "/res/data", 1), 0);
		assert_int_equal(berth_writer_suspend(w), 0);
		w->close(w);
		assert_int_equal(d->writer(&w, d, "/res/data", 1), 0);
		w->close(w);
	} else {
		assert_int_equal(d->writer(&w, d, "/res/data", 1), 0);
		write_pieces(w, src, part, 2 * part);
		assert_int_equal(berth_writer_suspend(w), 0);
		w->close(w);
	}
	assert_int_equal(berth_storage_resume_writer(&none, d, "/res/data"), 0);
	assert_null(none);
	assert_int_equal(d->writer(&w, d, "/res/data", 1), 0);
	assert_int_equal(w->size(w), 2 * part);
	write_pieces(w, src, 2 * part, total);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	assert_int_equal(berth_storage_resume_writer(&none, d, "/res/data"), 0);
	assert_null(none);
	expect_bytes(d, "/res/data", src, total);
	free(src);
}

/* ---- stat / list ---- */

static void test_stat(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_stat st;
	int64_t now = (int64_t)time(NULL);
	put(d, "/s/file", "12345");

	assert_int_equal(d->stat(&st, d, "/s/file"), 0);
	assert_int_equal(st.size, 5);
	assert_false(st.is_dir);
	assert_true(st.mtime >= now - 60 && st.mtime <= now + 60);

	assert_int_equal(d->stat(&st, d, "/s"), 0);
	assert_true(st.is_dir);
	assert_int_equal(st.size, 0);
	assert_int_equal(d->stat(&st, d, "/"), 0);
	assert_true(st.is_dir);

	expect_absent(d, "/nope");
	expect_absent(d, "/s/file/below");
}

/* S3 objects have a version from their ETag: the same while the bytes are, another for others. */
static void test_s3_object_version(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_stat st;
	put(d, "/ov", "one");
	assert_int_equal(d->stat(&st, d, "/ov"), 0);
	uint64_t v1 = st.version;
	assert_true(v1 != 0);
	put(d, "/ov", "one");
	assert_int_equal(d->stat(&st, d, "/ov"), 0);
	assert_true(st.version == v1);
	put(d, "/ov", "two");
	assert_int_equal(d->stat(&st, d, "/ov"), 0);
	assert_true(st.version != v1 && st.version != 0);
}

/* list_tree (optional): every object below a directory, none beside it, with its size. */
static int collect_tree(const char *path, const struct berth_stat *st, void *payload)
{
	char line[128];
	snprintf(line, sizeof(line), "%s %llu", path, (unsigned long long)st->size);
	assert_false(st->is_dir);
	return collect_name(line, payload);
}

static void test_list_tree(void **state)
{
	struct berth_storage_driver *d = drv(state);
	if (!berth_storage_can_list_tree(d))
		skip();
	struct names ns = { 0 };
	put(d, "/lt/a-b", "1");
	put(d, "/lt/a/x", "22");
	put(d, "/lt/a/y/z", "333");
	put(d, "/ltx", "4444");
	assert_int_equal(berth_storage_list_tree(d, "/lt", collect_tree, &ns), 0);
	assert_string_equal(names_sorted(&ns), "/lt/a-b 1\n/lt/a/x 2\n/lt/a/y/z 3\n");
	ns = (struct names){ .stop_at = 2 };
	assert_int_equal(berth_storage_list_tree(d, "/lt", collect_tree, &ns), 42);
	assert_int_equal(ns.calls, 2);
	names_sorted(&ns);
	assert_int_equal(berth_storage_list_tree(d, "/empty", collect_tree, &ns), BERTH_ENOTFOUND);
}

/* touch (online garbage collection): the mtime becomes at least the clock read before, to the
 * second, the bytes stay, nothing is created. */
static void test_touch(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_stat st;
	struct timespec before;
	put(d, "/t/blob", "same bytes");
	assert_int_equal(d->stat(&st, d, "/t/blob"), 0);
	/* an mtime of an earlier second than the touch (S3's LastModified has whole seconds) */
	while ((int64_t)time(NULL) <= st.mtime)
		usleep(50 * 1000);
	clock_gettime(CLOCK_REALTIME_COARSE, &before);
	assert_int_equal(berth_storage_touch(d, "/t/blob"), 0);
	assert_int_equal(d->stat(&st, d, "/t/blob"), 0);
	assert_true(st.mtime >= (int64_t)before.tv_sec);
	assert_int_equal(st.size, strlen("same bytes"));
	expect_content(d, "/t/blob", "same bytes");
	assert_int_equal(berth_storage_touch(d, "/t/nope"), BERTH_ENOTFOUND);
	expect_absent(d, "/t/nope");
}

/* A directory's version once the driver gives one (the filesystem waits out its racy second). */
static uint64_t settled_version(struct berth_storage_driver *d, const char *path)
{
	struct berth_stat st;
	for (int i = 0; i < 40; i++) {
		assert_int_equal(d->stat(&st, d, path), 0);
		if (st.version)
			return st.version;
		usleep(50 * 1000);
	}
	fail_msg("%s never got a version", path);
	return 0;
}

/* A directory's version changes when a child comes or goes, and only then (listings are cached
 * on it). */
static void test_dir_version(void **state)
{
	struct berth_storage_driver *d = drv(state);
	skip_on_s3(d);
	struct berth_stat st;
	put(d, "/v/a", "x");
	uint64_t v1 = settled_version(d, "/v");
	assert_int_equal(d->stat(&st, d, "/v"), 0);
	assert_true(st.version == v1);
	put(d, "/v/b", "x");
	assert_int_equal(d->stat(&st, d, "/v"), 0);
	assert_true(st.version != v1);
	uint64_t v2 = settled_version(d, "/v");
	assert_true(v2 != v1);
	assert_int_equal(d->remove(d, "/v/b"), 0);
	assert_int_equal(d->stat(&st, d, "/v"), 0);
	assert_true(st.version != v2 && st.version != v1);
}

static void test_list(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct names ns = { 0 };
	put(d, "/l/b", "x");
	put(d, "/l/c/d", "x");
	put(d, "/l/e", "x");

	assert_int_equal(d->list(d, "/l", collect_name, &ns), 0);
	assert_string_equal(names_sorted(&ns), "/l/b\n/l/c\n/l/e\n");
	assert_int_equal(d->list(d, "/", collect_name, &ns), 0);
	assert_string_equal(names_sorted(&ns), "/l\n");
	assert_int_equal(d->list(d, "/l/c", collect_name, &ns), 0);
	assert_string_equal(names_sorted(&ns), "/l/c/d\n");

	assert_int_equal(d->list(d, "/missing", never_called, NULL), BERTH_ENOTFOUND);
	assert_int_equal(d->list(d, "/l/b", never_called, NULL), BERTH_ENOTFOUND); /* a file */

	ns.calls = 0;
	ns.stop_at = 1;
	assert_int_equal(d->list(d, "/l", collect_name, &ns), 42);
	assert_int_equal(ns.calls, 1);
	names_sorted(&ns);
}

/* An object's version, where the driver gives one, changes when its bytes do (the catalog's
 * generation and the tag links are cached on it). */
static void test_object_version(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_stat st;
	put(d, "/ov/obj", "one");
	uint64_t v1 = settled_version(d, "/ov/obj");
	put(d, "/ov/obj", "two");
	assert_int_equal(d->stat(&st, d, "/ov/obj"), 0);
	assert_true(st.version != v1);
	uint64_t v2 = settled_version(d, "/ov/obj");
	assert_true(v2 != v1);
	assert_int_equal(d->stat(&st, d, "/ov/obj"), 0);
	assert_true(st.version == v2);
}

/* Children come in strcmp order of their names (the tag list relies on it). */
static void test_list_order(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct names ns = { 0 };
	static const char *const order[] = { "/o/1.0", "/o/B", "/o/_x", "/o/a", "/o/a-b", "/o/a.b",
					     "/o/a_b", "/o/ab", "/o/latest" };
	for (size_t i = sizeof(order) / sizeof(order[0]); i-- > 0;)
		put(d, order[i], "x");
	assert_int_equal(d->list(d, "/o", collect_name, &ns), 0);
	assert_int_equal(ns.n, sizeof(order) / sizeof(order[0]));
	for (size_t i = 0; i < ns.n; i++) {
		assert_string_equal(ns.v[i], order[i]);
		free(ns.v[i]);
	}
}

/* ---- move / remove ---- */

static void test_move(void **state)
{
	struct berth_storage_driver *d = drv(state);

	put(d, "/src", "payload");
	assert_int_equal(d->move(d, "/src", "/x/y/z"), 0); /* parents created */
	expect_absent(d, "/src");
	expect_content(d, "/x/y/z", "payload");

	put(d, "/p", "new");
	put(d, "/q", "old");
	assert_int_equal(d->move(d, "/p", "/q"), 0); /* replaces */
	expect_absent(d, "/p");
	expect_content(d, "/q", "new");

	assert_int_equal(d->move(d, "/q", "/q"), 0);
	expect_content(d, "/q", "new");

	assert_int_equal(d->move(d, "/missing", "/m/n"), BERTH_ENOTFOUND);
	expect_absent(d, "/m");

	put(d, "/d1/f", "in dir");
	assert_int_equal(d->move(d, "/d1", "/d1/inside"), BERTH_EINVALID);
	assert_int_equal(d->move(d, "/d1", "/d2"), 0); /* directories move whole */
	expect_absent(d, "/d1");
	expect_content(d, "/d2/f", "in dir");
	assert_int_equal(d->move(d, "/d2/f", "/d2"), BERTH_EEXISTS); /* onto its non-empty parent */
}

static void test_remove(void **state)
{
	struct berth_storage_driver *d = drv(state);
	put(d, "/file", "x");
	assert_int_equal(d->remove(d, "/file"), 0);
	expect_absent(d, "/file");
	assert_int_equal(d->remove(d, "/file"), BERTH_ENOTFOUND);

	put(d, "/t/a", "x");
	put(d, "/t/b/c", "x");
	put(d, "/t/b/d/e", "x");
	put(d, "/keep", "x");
	assert_int_equal(d->remove(d, "/t"), 0);
	expect_absent(d, "/t");
	expect_absent(d, "/t/b/d/e");
	expect_content(d, "/keep", "x");

	put(d, "/u/v/w", "x");
	assert_int_equal(d->remove(d, "/u/v"), 0);
	expect_absent(d, "/u/v");
	assert_int_equal(d->remove(d, "/u/v/w"), BERTH_ENOTFOUND);
}

/* ---- walk ---- */

static void build_walk_tree(struct berth_storage_driver *d)
{
	put(d, "/w/b/x", "12");
	put(d, "/w/a", "1");
	put(d, "/w/c/y/z", "123");
	put(d, "/w/B", "");
	put(d, "/w/a.b", "1234");
	put(d, "/w/_u", "x");
}

static void test_walk_order(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct transcript t = { .d = d };
	build_walk_tree(d);

	/* strcmp order: uppercase < '_' < lowercase, and a prefix sorts first. */
	assert_int_equal(d->walk(d, "/w", record_visit, &t), 0);
	assert_string_equal(t.buf, "/w/B f0\n"
				   "/w/_u f1\n"
				   "/w/a f1\n"
				   "/w/a.b f4\n"
				   "/w/b d\n"
				   "/w/b/x f2\n"
				   "/w/c d\n"
				   "/w/c/y d\n"
				   "/w/c/y/z f3\n");

	struct transcript all = { .d = d };
	assert_int_equal(d->walk(d, "/", record_visit, &all), 0);
	assert_int_equal(all.calls, 10);
	assert_memory_equal(all.buf, "/w d\n/w/B f0\n", 13);

	assert_int_equal(d->walk(d, "/missing", never_visited, NULL), BERTH_ENOTFOUND);
	assert_int_equal(d->walk(d, "/w/a", never_visited, NULL), BERTH_ENOTFOUND); /* a file */
}

static void test_walk_early_stop(void **state)
{
	struct berth_storage_driver *d = drv(state);
	build_walk_tree(d);

	struct transcript t = { .d = d, .stop_at = 3 };
	assert_int_equal(d->walk(d, "/w", record_visit, &t), 42);
	assert_int_equal(t.calls, 3);

	struct transcript deep = { .d = d, .stop_at = 8 }; /* inside /w/c/y */
	assert_int_equal(d->walk(d, "/w", record_visit, &deep), 42);
	assert_int_equal(deep.calls, 8);
}

/* ---- concurrency ---- */

enum { WRITERS = 8, WRITES = 200, VALUE_LEN = 1000 };

struct racer {
	struct berth_storage_driver *d;
	char fill;
	atomic_int *stop;
	int failures;
};

/* 1 if buf is a whole value as some writer wrote it: VALUE_LEN copies of one letter. */
static int value_intact(const char *buf, size_t len)
{
	if (len != VALUE_LEN || buf[0] < 'A' || buf[0] >= 'A' + WRITERS)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if (buf[i] != buf[0])
			return 0;
	}
	return 1;
}

static void *race_writer(void *arg)
{
	struct racer *r = arg;
	char value[VALUE_LEN];
	memset(value, r->fill, sizeof(value));
	for (int i = 0; i < WRITES; i++) {
		if (r->d->put_content(r->d, "/race/value", value, sizeof(value)) != 0)
			r->failures++;
	}
	return NULL;
}

static void *race_reader(void *arg)
{
	struct racer *r = arg;
	while (!atomic_load(r->stop)) {
		char *got;
		size_t len;
		int rc = r->d->get_content(&got, &len, r->d, "/race/value", VALUE_LEN);
		if (rc == BERTH_ENOTFOUND)
			continue; /* before the first put lands */
		if (rc != 0 || !value_intact(got, len))
			r->failures++;
		if (rc == 0)
			free(got);
	}
	return NULL;
}

static void test_concurrent_put_content(void **state)
{
	struct berth_storage_driver *d = drv(state);
	atomic_int stop = 0;
	pthread_t threads[WRITERS + 1];
	struct racer racers[WRITERS + 1];

	for (int i = 0; i <= WRITERS; i++) {
		racers[i] = (struct racer){ .d = d, .fill = (char)('A' + i), .stop = &stop };
		void *(*fn)(void *) = i < WRITERS ? race_writer : race_reader;
		assert_int_equal(pthread_create(&threads[i], NULL, fn, &racers[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(threads[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(threads[WRITERS], NULL);

	for (int i = 0; i <= WRITERS; i++)
		assert_int_equal(racers[i].failures, 0);
	char *got;
	size_t len;
	assert_int_equal(d->get_content(&got, &len, d, "/race/value", VALUE_LEN), 0);
	assert_true(value_intact(got, len));
	free(got);
}

/* ---- filesystem only ---- */

static struct fixture *fix(void **state)
{
	return *state;
}

static char *read_disk(const char *file, size_t *len)
{
	FILE *fp = fopen(file, "rb");
	assert_non_null(fp);
	char *buf = calloc(1, 1 << 16);
	*len = fread(buf, 1, (1 << 16) - 1, fp);
	fclose(fp);
	return buf;
}

static int no_foreign_names(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *base = path + ftw->base;
	assert_null(strstr(base, ".tmp"));
	assert_null(strchr(base, '~'));
	return 0;
}

static void test_fs_layout_exact(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	const char *link = "/docker/registry/v2/repositories/lib/x/_layers/sha256/abc/link";
	const char *digest = "sha256:abc";
	char file[512];
	size_t len;
	struct stat st;

	put(d, link, digest);
	snprintf(file, sizeof(file), "%s%s", f->root, link);
	char *disk = read_disk(file, &len);
	assert_int_equal(len, strlen(digest)); /* exactly the bytes: no newline, no framing */
	assert_memory_equal(disk, digest, len);
	free(disk);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	struct berth_writer *w;
	assert_int_equal(d->writer(&w, d, "/docker/registry/v2/repositories/lib/x/_uploads/u1/data",
				   0), 0);
	write_str(w, "blob bytes");
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	assert_int_equal(d->move(d, "/docker/registry/v2/repositories/lib/x/_uploads/u1/data",
				 "/docker/registry/v2/blobs/sha256/ab/abc/data"), 0);
	snprintf(file, sizeof(file), "%s/docker/registry/v2/blobs/sha256/ab/abc/data", f->root);
	disk = read_disk(file, &len);
	assert_string_equal(disk, "blob bytes");
	free(disk);

	for (int i = 0; i < 20; i++)
		put(d, link, digest);
	assert_int_equal(nftw(f->root, no_foreign_names, 16, FTW_PHYS), 0);
}

/* The open flags (/proc/self/fdinfo) of this process's descriptor for host, or -1. */
static int host_fd_flags(const char *host)
{
	char link[300], target[512], info[300], line[128];
	int flags = -1;
	DIR *dir = opendir("/proc/self/fd");
	assert_non_null(dir);
	for (struct dirent *e; flags < 0 && (e = readdir(dir)) != NULL;) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, host) != 0)
			continue;
		snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", e->d_name);
		FILE *fp = fopen(info, "r");
		while (fp && fgets(line, sizeof(line), fp))
			if (sscanf(line, "flags: %o", (unsigned *)&flags) == 1)
				break;
		if (fp)
			fclose(fp);
	}
	closedir(dir);
	return flags;
}

/* Whether the driver uses direct writes on the file system under host. */
static int host_takes_direct(const char *host)
{
	int fd = open(host, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	int yes = fs_direct_supported(fd);
	close(fd);
	return yes;
}

/* A large object's aligned pieces go with direct writes; an unaligned piece and a small
 * object never do. */
static void test_fs_large_write_goes_direct(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	const size_t total = (2u << 20) + 5;
	unsigned char *src = pattern(total);
	char host[256], small[256];
	struct berth_writer *w, *ws;

	snprintf(host, sizeof(host), "%s/direct/data", f->root);
	snprintf(small, sizeof(small), "%s/direct/small", f->root);
	assert_int_equal(d->writer(&w, d, "/direct/data", 0), 0);
	if (!host_takes_direct(host)) {
		w->close(w);
		free(src);
		skip(); /* e.g. an old kernel or a file system without direct I/O */
	}
	assert_int_equal(d->writer(&ws, d, "/direct/small", 0), 0);
	write_aligned_pieces(ws, src, 0, 100000);
	write_pieces(w, src, 0, 1u << 20);
	assert_false(host_fd_flags(host) & O_DIRECT); /* below DIRECT_AFTER */
	write_aligned_pieces(w, src, 1u << 20, total - 5);
	assert_true(host_fd_flags(host) & O_DIRECT);
	assert_false(host_fd_flags(small) & O_DIRECT);
	write_pieces(w, src, total - 5, total); /* the tail: through the page cache */
	assert_false(host_fd_flags(host) & O_DIRECT);
	assert_int_equal(w->flush(w), 0);
	expect_bytes(d, "/direct/data", src, total);
	w->close(w);
	ws->close(ws);
	free(src);
}

/* Pages of host in the page cache (mincore). */
static size_t host_resident_pages(const char *host, size_t len)
{
	int fd = open(host, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page, resident = 0;
	unsigned char *vec = malloc(n);
	assert_non_null(vec);
	assert_int_equal(mincore(map, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		resident += vec[i] & 1;
	free(vec);
	munmap(map, len);
	close(fd);
	return resident;
}

/* A writer opened with BERTH_WRITER_APPEND_CACHED (a blob the pull-through cache fetches, which
 * the next pull reads) never writes directly: every byte stays in the page cache. */
static void test_fs_cached_write_stays_buffered(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	const size_t total = 3u << 20;
	unsigned char *src = pattern(total);
	char host[256];
	struct berth_writer *w;

	snprintf(host, sizeof(host), "%s/cached/data", f->root);
	assert_int_equal(d->writer(&w, d, "/cached/data", BERTH_WRITER_APPEND_CACHED), 0);
	if (!host_takes_direct(host)) {
		w->close(w);
		free(src);
		skip(); /* nothing to tell apart: every write is buffered there */
	}
	write_aligned_pieces(w, src, 0, total);
	assert_false(host_fd_flags(host) & O_DIRECT);
	assert_int_equal(w->commit(w), 0);
	expect_bytes(d, "/cached/data", src, total);
	w->close(w);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	assert_int_equal(host_resident_pages(host, total), (total + page - 1) / page);
	free(src);
}

/* A write refused part-way through a large object (here the file size limit, as a full disk
 * would) is reported, by that write or a later one or the flush, and the writer's size then
 * says what the file holds: a prefix of what was written. */
static void test_fs_large_write_error_midway(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	const size_t total = 6u << 20, limit = (3u << 20) + 100000;
	unsigned char *src = pattern(total);
	struct rlimit old, lim;
	struct berth_writer *w;
	char host[256];
	struct stat st;
	int rc = 0;

	snprintf(host, sizeof(host), "%s/limited/data", f->root);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = (struct rlimit){ .rlim_cur = limit, .rlim_max = old.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	assert_int_equal(d->writer(&w, d, "/limited/data", 0), 0);
	for (size_t off = 0; off < total && rc == 0; off += 256u << 10)
		rc = w->write(w, src + off, 256u << 10);
	if (rc == 0)
		rc = w->flush(w);
	assert_true(rc < 0);
	uint64_t size = w->size(w);
	assert_true(size <= limit);
	assert_int_equal(stat(host, &st), 0);
	assert_int_equal((uint64_t)st.st_size, size);
	w->close(w);

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	expect_bytes(d, "/limited/data", src, (size_t)size);
	free(src);
}

static void test_fs_reader_fd_can_be_taken(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct berth_reader *r;
	char buf[8] = { 0 };
	put(d, "/sf", "sendfile me");

	assert_int_equal(d->reader(&r, d, "/sf", 9), 0);
	assert_true(r->fd >= 0);
	int fd = r->fd;
	r->fd = -1;
	r->close(r);
	assert_true(fcntl(fd, F_GETFD) != -1); /* still open: the caller owns it */
	assert_int_equal(pread(fd, buf, sizeof(buf), 9), 2);
	assert_string_equal(buf, "me");
	close(fd);
}

static void test_fs_foreign_names_hidden(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	struct names ns = { 0 };
	struct transcript t = { .d = d };
	char file[512];
	put(d, "/h/real", "x");

	/* A temp file left by a crash, and a name outside the grammar. */
	snprintf(file, sizeof(file), "%s/h/.tmp~abc123", f->root);
	close(open(file, O_CREAT | O_WRONLY, 0644));
	snprintf(file, sizeof(file), "%s/h/has space", f->root);
	close(open(file, O_CREAT | O_WRONLY, 0644));

	assert_int_equal(d->list(d, "/h", collect_name, &ns), 0);
	assert_string_equal(names_sorted(&ns), "/h/real\n");
	assert_int_equal(d->walk(d, "/h", record_visit, &t), 0);
	assert_string_equal(t.buf, "/h/real f1\n");

	assert_int_equal(d->remove(d, "/h"), 0); /* removes the stray files too */
	expect_absent(d, "/h");
}

static void test_fs_remove_does_not_follow_symlinks(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	char outside[128], victim[256], link[512];

	snprintf(outside, sizeof(outside), "%s/outside", f->tmpdir);
	snprintf(victim, sizeof(victim), "%s/victim", outside);
	assert_int_equal(mkdir(outside, 0755), 0);
	close(open(victim, O_CREAT | O_WRONLY, 0644));

	put(d, "/s/file", "x");
	snprintf(link, sizeof(link), "%s/s/link", f->root);
	assert_int_equal(symlink(outside, link), 0);

	assert_int_equal(d->remove(d, "/s"), 0);
	expect_absent(d, "/s");
	struct stat st;
	assert_int_equal(stat(victim, &st), 0);
}

/*
 * A remove reads each directory with getdents64 and goes by each entry's d_type: a directory
 * larger than one read (8 KiB of entries), files, nested directories, a symlink (removed, never
 * followed) and a name outside the grammar all go, and a symlink removed by its own name leaves
 * the directory it points to alone.
 */
static void test_fs_remove_whole_trees(void **state)
{
	struct fixture *f = fix(state);
	struct berth_storage_driver *d = f->d;
	char path[768], outside[128];

	for (int i = 0; i < 400; i++) {
		snprintf(path, sizeof(path), "/big/entry-with-a-rather-long-name-to-fill-the-buffer-%03d", i);
		put(d, path, "x");
	}
	put(d, "/big/sub/deeper/f", "x");
	snprintf(path, sizeof(path), "%s/big/odd name", f->root);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(outside, sizeof(outside), "%s/outside", f->tmpdir);
	assert_int_equal(mkdir(outside, 0755), 0);
	snprintf(path, sizeof(path), "%s/big/sub/to-outside", f->root);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_equal(d->remove(d, "/big"), 0);
	expect_absent(d, "/big");
	struct stat st;
	assert_int_equal(stat(outside, &st), 0);

	/* a blob's directory with a file besides data goes whole */
	put(d, "/blobs/ab/abcd/data", "blob");
	put(d, "/blobs/ab/abcd/stray", "x");
	assert_int_equal(d->remove(d, "/blobs/ab/abcd"), 0);
	expect_absent(d, "/blobs/ab/abcd");
	struct berth_stat bst;
	assert_int_equal(d->stat(&bst, d, "/blobs/ab"), 0);
	assert_true(bst.is_dir);

	/* a symlink named itself: only the link goes */
	snprintf(path, sizeof(path), "%s/lnk", f->root);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_equal(d->remove(d, "/lnk"), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(d->remove(d, "/lnk"), BERTH_ENOTFOUND);
}

/* ---- S3 only ---- */

struct raw_answer {
	char body[8192];
	size_t len;
};

static size_t raw_body(char *p, size_t size, size_t n, void *arg)
{
	struct raw_answer *a = arg;
	size_t k = size * n;
	if (a->len + k < sizeof(a->body)) {
		memcpy(a->body + a->len, p, k);
		a->len += k;
		a->body[a->len] = '\0';
	}
	return k;
}

/* One signed request straight to the test bucket, as another S3 client would send it. With
 * auth = 0 it is sent unsigned (a presigned URL). Returns the HTTP status. */
static long raw_s3(const char *method, const char *url_or_key, const void *body, size_t len, int auth,
		   struct raw_answer *a)
{
	char url[2048], userpwd[300];
	if (strncmp(url_or_key, "http", 4) == 0)
		snprintf(url, sizeof(url), "%s", url_or_key);
	else
		snprintf(url, sizeof(url), "%s/%s%s%s", rgw.endpoint, rgw.bucket, url_or_key[0] == '?' ? "" : "/",
			 url_or_key);
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	memset(a, 0, sizeof(*a));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, raw_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	if (auth) {
		char sig[128];
		snprintf(sig, sizeof(sig), "aws:amz:%s:s3", rgw.region);
		snprintf(userpwd, sizeof(userpwd), "%s:%s", rgw.access, rgw.secret);
		hdrs = curl_slist_append(hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig);
		curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	}
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	}
	long status = 0;
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return status;
}

/* The text of <tag> in an answer, into out. */
static void xml_text(const struct raw_answer *a, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *b = strstr(a->body, open), *e = b ? strstr(b, close) : NULL;
	assert_non_null(e);
	b += strlen(open);
	assert_true((size_t)(e - b) < outlen);
	memcpy(out, b, (size_t)(e - b));
	out[e - b] = '\0';
}

/* Writes src[0, n) to path through a committed writer. */
static void write_object(struct berth_storage_driver *d, const char *path, const unsigned char *src, size_t n)
{
	struct berth_writer *w;
	assert_int_equal(d->writer(&w, d, path, 0), 0);
	write_pieces(w, src, 0, n);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
}

/* An append to an object past one part continues with a new multipart upload whose first part
 * is a server-side copy of the object (UploadPartCopy). */
static void test_s3_append_copies_large_object(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t first = (11u << 20) + 5, total = (12u << 20) + 77;
	unsigned char *src = pattern(total);
	struct berth_writer *w;
	assert_int_equal(d->writer(&w, d, "/big/obj", 0), 0);
	write_pieces(w, src, 0, first);
	w->close(w);
	expect_bytes(d, "/big/obj", src, first);

	assert_int_equal(d->writer(&w, d, "/big/obj", 1), 0);
	assert_int_equal(w->size(w), first);
	write_pieces(w, src, first, total);
	assert_int_equal(w->size(w), total);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_bytes(d, "/big/obj", src, total);
	free(src);
}

/* A multipart upload left open on the key, as Distribution's writer leaves one between PATCHes
 * (parts of >= 5 MiB, no object yet), is found by listing and continued. */
static void test_s3_continues_open_upload(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t part = 5u << 20, total = part + 1234;
	unsigned char *src = pattern(total);
	struct raw_answer a;
	char key[128], url[1024], id[256];
	snprintf(key, sizeof(key), "conformance/t%d/up/data", rgw.serial);
	snprintf(url, sizeof(url), "%s?uploads=", key);
	assert_int_equal(raw_s3("POST", url, "", 0, 1, &a), 200);
	xml_text(&a, "UploadId", id, sizeof(id));
	snprintf(url, sizeof(url), "%s?partNumber=1&uploadId=%s", key, id);
	assert_int_equal(raw_s3("PUT", url, src, part, 1, &a), 200);
	expect_absent(d, "/up/data");

	struct berth_writer *w;
	assert_int_equal(d->writer(&w, d, "/up/data", 1), 0);
	assert_int_equal(w->size(w), part);
	write_pieces(w, src, part, total);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_bytes(d, "/up/data", src, total);
	snprintf(url, sizeof(url), "?prefix=conformance%%2Ft%d%%2Fup%%2Fdata&uploads=", rgw.serial);
	assert_int_equal(raw_s3("GET", url, NULL, 0, 1, &a), 200);
	assert_null(strstr(a.body, "<UploadId>")); /* completed, nothing left open */
	free(src);
}

/* How many multipart uploads are open on a key of the test's root; the id of the last one
 * listed into id (when id is not NULL and there is one). */
static int open_uploads(const char *path, char *id, size_t idlen)
{
	struct raw_answer a;
	char raw[256], url[768] = "?prefix=";
	size_t n = strlen(url);
	snprintf(raw, sizeof(raw), "conformance/t%d%s", rgw.serial, path);
	for (const char *p = raw; *p; p++)
		n += (size_t)snprintf(url + n, sizeof(url) - n, *p == '/' ? "%%2F" : "%c", *p);
	snprintf(url + n, sizeof(url) - n, "&uploads=");
	assert_int_equal(raw_s3("GET", url, NULL, 0, 1, &a), 200);
	int count = 0;
	const char *last = NULL;
	for (const char *p = a.body; (p = strstr(p, "<UploadId>")) != NULL; p++) {
		count++;
		last = p;
	}
	if (last && id) {
		const char *b = last + strlen("<UploadId>"), *e = strstr(b, "</UploadId>");
		assert_non_null(e);
		assert_true((size_t)(e - b) < idlen);
		memcpy(id, b, (size_t)(e - b));
		id[e - b] = '\0';
	}
	return count;
}

/* A resume open checks the upload its suspend left with ListParts: a part another client added
 * opens it positioned after that part but not vouched for (1); the upload aborted, and nothing
 * is opened (an append-open then lists, as usual). */
static void test_s3_resume_checks_the_parts(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t part = 5u << 20;
	unsigned char *src = pattern(3 * part);
	struct berth_writer *w = NULL, *none = NULL;
	struct raw_answer a;
	char key[128], url[1024], id[256];
	snprintf(key, sizeof(key), "conformance/t%d/rp/data", rgw.serial);

	assert_int_equal(d->writer(&w, d, "/rp/data", 1), 0);
	write_pieces(w, src, 0, part);
	assert_int_equal(berth_writer_suspend(w), 0);
	w->close(w);
	assert_int_equal(open_uploads("/rp/data", id, sizeof(id)), 1);
	snprintf(url, sizeof(url), "%s?partNumber=2&uploadId=%s", key, id);
	assert_int_equal(raw_s3("PUT", url, src + part, part, 1, &a), 200);
	/* Still listed with parts: positioned after them, as an append-open, but not vouched for. */
	assert_int_equal(berth_storage_resume_writer(&w, d, "/rp/data"), 1);
	assert_non_null(w);
	assert_int_equal(w->size(w), 2 * part);
	w->close(w); /* not written to: stores nothing */
	assert_int_equal(berth_storage_resume_writer(&none, d, "/rp/data"), 0); /* taken */
	assert_null(none);

	assert_int_equal(d->writer(&w, d, "/rp/data", 1), 0);
	assert_int_equal(w->size(w), 2 * part);
	write_pieces(w, src, 2 * part, 3 * part);
	assert_int_equal(berth_writer_suspend(w), 0);
	w->close(w);
	snprintf(url, sizeof(url), "%s?uploadId=%s", key, id);
	assert_int_equal(raw_s3("DELETE", url, NULL, 0, 1, &a), 204);
	assert_int_equal(berth_storage_resume_writer(&none, d, "/rp/data"), 0);
	assert_null(none);
	free(src);
}

/* Parts of upload id on the test root's path. */
static int upload_parts(const char *path, const char *id)
{
	struct raw_answer a;
	char url[1024];
	snprintf(url, sizeof(url), "conformance/t%d%s?uploadId=%s", rgw.serial, path, id);
	assert_int_equal(raw_s3("GET", url, NULL, 0, 1, &a), 200);
	int n = 0;
	for (const char *p = a.body; (p = strstr(p, "<Part>")) != NULL; p++)
		n++;
	return n;
}

/* Suspending keeps one multipart upload open across writers, as Distribution's driver keeps
 * it between PATCHes: parts accumulate in it (no object, no copy), the short part a suspend
 * leaves is completed by the next writer before it appends, and the commit completes the
 * upload into the object and leaves nothing open. */
static void test_s3_suspend_keeps_one_upload(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t part = 5u << 20, total = 4 * part + 99;
	unsigned char *src = pattern(total);
	struct berth_writer *w;
	char id[256], id2[256];

	/* Two whole parts: stored as parts, nothing visible as the object. */
	assert_int_equal(d->writer(&w, d, "/s/data", 1), 0);
	write_pieces(w, src, 0, 2 * part);
	assert_int_equal(berth_writer_suspend(w), 0);
	assert_int_equal(w->write(w, "x", 1), BERTH_EINVALID); /* suspended: only close */
	w->close(w);
	expect_absent(d, "/s/data");
	assert_int_equal(open_uploads("/s/data", id, sizeof(id)), 1);
	assert_int_equal(upload_parts("/s/data", id), 2);

	/* The next writer continues the same upload; its tail becomes a short part. */
	assert_int_equal(d->writer(&w, d, "/s/data", 1), 0);
	assert_int_equal(w->size(w), 2 * part);
	write_pieces(w, src, 2 * part, 3 * part + 7);
	assert_int_equal(berth_writer_suspend(w), 0);
	w->close(w);
	expect_absent(d, "/s/data");
	assert_int_equal(open_uploads("/s/data", id2, sizeof(id2)), 1);
	assert_string_equal(id, id2);
	assert_int_equal(upload_parts("/s/data", id), 4);

	/* After a short part the upload takes no more: the next writer completes it first. */
	assert_int_equal(d->writer(&w, d, "/s/data", 1), 0);
	assert_int_equal(w->size(w), 3 * part + 7);
	write_pieces(w, src, 3 * part + 7, total);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_bytes(d, "/s/data", src, total);
	assert_int_equal(open_uploads("/s/data", NULL, 0), 0);
	free(src);
}

/* Removing a directory aborts the multipart uploads left open below it (their parts would
 * otherwise stay stored, and billed, forever); an open upload alone is something to remove. */
static void test_s3_remove_aborts_open_uploads(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct raw_answer a;
	char url[512];
	put(d, "/dir/x", "x");
	snprintf(url, sizeof(url), "conformance/t%d/dir/sub/data?uploads=", rgw.serial);
	assert_int_equal(raw_s3("POST", url, "", 0, 1, &a), 200);
	snprintf(url, sizeof(url), "conformance/t%d/only/data?uploads=", rgw.serial);
	assert_int_equal(raw_s3("POST", url, "", 0, 1, &a), 200);
	snprintf(url, sizeof(url), "conformance/t%d/dirx/data?uploads=", rgw.serial); /* not below /dir */
	assert_int_equal(raw_s3("POST", url, "", 0, 1, &a), 200);

	assert_int_equal(d->remove(d, "/dir"), 0);
	assert_int_equal(d->remove(d, "/only"), 0);
	assert_int_equal(d->remove(d, "/only"), BERTH_ENOTFOUND);
	snprintf(url, sizeof(url), "?prefix=conformance%%2Ft%d%%2F&uploads=", rgw.serial);
	assert_int_equal(raw_s3("GET", url, NULL, 0, 1, &a), 200);
	assert_null(strstr(a.body, "dir/sub/data"));
	assert_null(strstr(a.body, "only/data"));
	assert_non_null(strstr(a.body, "dirx/data"));
}

/* A staged writer's object appears at its path only on commit, whole: until then, and after a
 * close without commit or a cancel, the path holds what it held, and no multipart upload
 * stays behind. */
static void test_s3_staged_writer(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t total = (11u << 20) + 5;
	unsigned char *src = pattern(total);
	struct berth_writer *w;
	put(d, "/st/data", "old");
	for (int how = 0; how < 2; how++) {
		assert_int_equal(d->staged_writer(&w, d, "/st/data"), 0);
		write_pieces(w, src, 0, total);
		assert_int_equal(w->flush(w), BERTH_EUNSUPPORTED);
		assert_int_equal(open_uploads("/st/data", NULL, 0), 1); /* two parts stored */
		expect_bytes(d, "/st/data", (const unsigned char *)"old", 3);
		if (how == 1)
			assert_int_equal(w->cancel(w), 0);
		w->close(w);
		expect_bytes(d, "/st/data", (const unsigned char *)"old", 3);
		assert_int_equal(open_uploads("/st/data", NULL, 0), 0);
	}
	assert_int_equal(d->staged_writer(&w, d, "/st/data"), 0);
	write_pieces(w, src, 0, total);
	assert_int_equal(w->commit(w), 0);
	assert_int_equal(w->write(w, "x", 1), BERTH_EINVALID); /* committed: only close */
	w->close(w);
	expect_bytes(d, "/st/data", src, total);
	assert_int_equal(open_uploads("/st/data", NULL, 0), 0);
	/* A small one is one PUT at the commit. */
	assert_int_equal(d->staged_writer(&w, d, "/st/small"), 0);
	assert_int_equal(w->write(w, "tiny", 4), 0);
	expect_absent(d, "/st/small");
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	expect_bytes(d, "/st/small", (const unsigned char *)"tiny", 4);
	free(src);
}

/* purge_staged aborts the multipart uploads below a directory started before the time given
 * (what a crash left of staged writers), and no others. */
static void test_s3_purge_staged(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct raw_answer a;
	char url[512];
	size_t purged = 9;
	snprintf(url, sizeof(url), "conformance/t%d/pz/a/data?uploads=", rgw.serial);
	assert_int_equal(raw_s3("POST", url, "", 0, 1, &a), 200);
	snprintf(url, sizeof(url), "conformance/t%d/pzz/data?uploads=", rgw.serial); /* not below /pz */
	assert_int_equal(raw_s3("POST", url, "", 0, 1, &a), 200);
	assert_int_equal(d->purge_staged(d, "/pz", (int64_t)time(NULL) - 3600, &purged), 0);
	assert_int_equal(purged, 0); /* younger than the age */
	assert_int_equal(open_uploads("/pz/a/data", NULL, 0), 1);
	assert_int_equal(d->purge_staged(d, "/pz", (int64_t)time(NULL) + 3600, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(open_uploads("/pz/a/data", NULL, 0), 0);
	assert_int_equal(open_uploads("/pzz/data", NULL, 0), 1);
}

/* Past multipartcopythresholdsize a move copies in parts; the bytes arrive whole. */
static void test_s3_move_multipart_copy(void **state)
{
	struct berth_storage_driver *d = drv(state);
	const size_t total = (11u << 20) + 3;
	unsigned char *src = pattern(total);
	write_object(d, "/m/from", src, total);
	assert_int_equal(d->move(d, "/m/from", "/m/to"), 0);
	expect_absent(d, "/m/from");
	expect_bytes(d, "/m/to", src, total);
	free(src);
}

/* url_for gives a presigned GET URL any HTTP client can fetch the object from. */
static void test_s3_url_for(void **state)
{
	struct berth_storage_driver *d = drv(state);
	struct raw_answer a;
	char *url = NULL;
	put(d, "/u/blob", "presigned bytes");
	assert_int_equal(d->url_for(&url, d, "/u/blob"), 0);
	assert_int_equal(raw_s3("GET", url, NULL, 0, 0, &a), 200);
	assert_string_equal(a.body, "presigned bytes");
	url[strlen(url) - 1] ^= 1; /* a signature off by one bit is refused */
	assert_int_equal(raw_s3("GET", url, NULL, 0, 0, &a), 403);
	free(url);
}

/* Starts tests/fixtures/s3/faultproxy.py in front of the RGW, failing every `every`-th request
 * with 503 SlowDown; its endpoint goes to endpoint, its pid to *pid. */
static void start_fault_proxy(int every, char *endpoint, size_t len, const char *count_file, pid_t *pid)
{
	char port_file[128], cmd[1024];
	snprintf(port_file, sizeof(port_file), "%s/proxy.port", rgw.dir);
	unlink(port_file);
	snprintf(cmd, sizeof(cmd),
		 "python3 %s/tests/fixtures/s3/faultproxy.py --upstream %s --every %d --port-file %s "
		 "--count-file %s >/dev/null 2>&1 & echo $!",
		 BERTH_SRC_DIR, rgw.endpoint, every, port_file, count_file);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", pid), 1);
	pclose(p);
	FILE *f = NULL;
	for (int i = 0; i < 200 && (f = fopen(port_file, "r")) == NULL; i++)
		usleep(25 * 1000);
	assert_non_null(f);
	int port = 0;
	assert_int_equal(fscanf(f, "%d", &port), 1);
	fclose(f);
	snprintf(endpoint, len, "http://127.0.0.1:%d", port);
}

static int read_count(const char *file)
{
	FILE *f = fopen(file, "r");
	int n = 0;
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

/* 503 SlowDown on every third request: every operation still succeeds, through retries. */
static void test_s3_retries_slowdown(void **state)
{
	char endpoint[128], count_file[128], root[64];
	pid_t pid;
	snprintf(count_file, sizeof(count_file), "%s/proxy.faults", rgw.dir);
	start_fault_proxy(3, endpoint, sizeof(endpoint), count_file, &pid);
	snprintf(root, sizeof(root), "/conformance/t%d", rgw.serial);
	struct berth_s3_options o = rgw_options(root);
	o.endpoint = endpoint;
	struct berth_storage_driver *d;
	assert_int_equal(berth_s3_driver_new(&d, &o), 0);

	const size_t total = (6u << 20) + 11;
	unsigned char *src = pattern(total);
	write_object(d, "/f/big", src, total);
	for (int i = 0; i < 6; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/f/small%d", i);
		put(d, path, "x");
		expect_content(d, path, "x");
	}
	struct names ns = { 0 };
	assert_int_equal(d->list(d, "/f", collect_name, &ns), 0);
	assert_int_equal(ns.n, 7);
	names_sorted(&ns);
	expect_bytes(d, "/f/big", src, total);
	assert_int_equal(d->move(d, "/f/big", "/f/moved"), 0);
	assert_int_equal(d->remove(d, "/f"), 0);
	expect_absent(d, "/f/small0");
	assert_true(read_count(count_file) >= 5);

	d->free(d);
	free(src);
	kill(pid, SIGTERM);
}

/* A server that cannot be reached is an error after the retries (never "not found"), in bounded
 * time. */
static void test_s3_unreachable(void **state)
{
	struct berth_s3_options o = rgw_options("/x");
	o.endpoint = "http://127.0.0.1:1";
	o.retries = 2;
	struct berth_storage_driver *d;
	struct berth_stat st;
	assert_int_equal(berth_s3_driver_new(&d, &o), 0);
	time_t t0 = time(NULL);
	assert_int_equal(d->put_content(d, "/a", "x", 1), BERTH_EUNAVAILABLE);
	assert_int_equal(d->stat(&st, d, "/a"), BERTH_EUNAVAILABLE);
	assert_true(time(NULL) - t0 < 5);
	d->free(d);
}

/* ---- registration ---- */

#define CONFORMANCE_TESTS(setup)                                                          \
	cmocka_unit_test_setup_teardown(test_put_get_roundtrip, setup, teardown),         \
	cmocka_unit_test_setup_teardown(test_get_missing, setup, teardown),               \
	cmocka_unit_test_setup_teardown(test_get_too_large, setup, teardown),             \
	cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),                 \
	cmocka_unit_test_setup_teardown(test_put_keeps_open_readers, setup, teardown),    \
	cmocka_unit_test_setup_teardown(test_put_as, setup, teardown),                    \
	cmocka_unit_test_setup_teardown(test_move_as, setup, teardown),                   \
	cmocka_unit_test_setup_teardown(test_type_conflicts, setup, teardown),            \
	cmocka_unit_test_setup_teardown(test_invalid_paths_rejected, setup, teardown),    \
	cmocka_unit_test_setup_teardown(test_reader_offsets, setup, teardown),            \
	cmocka_unit_test_setup_teardown(test_reader_small_pieces, setup, teardown),       \
	cmocka_unit_test_setup_teardown(test_writer_truncate_and_append, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_writer_visible_before_commit, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_writer_cancel, setup, teardown),             \
	cmocka_unit_test_setup_teardown(test_writer_large_pieces, setup, teardown),       \
	cmocka_unit_test_setup_teardown(test_writer_suspend, setup, teardown),            \
	cmocka_unit_test_setup_teardown(test_resume_writer, setup, teardown),             \
	cmocka_unit_test_setup_teardown(test_stat, setup, teardown),                      \
	cmocka_unit_test_setup_teardown(test_touch, setup, teardown),                     \
	cmocka_unit_test_setup_teardown(test_dir_version, setup, teardown),               \
	cmocka_unit_test_setup_teardown(test_list_tree, setup, teardown),                 \
	cmocka_unit_test_setup_teardown(test_list, setup, teardown),                      \
	cmocka_unit_test_setup_teardown(test_object_version, setup, teardown),            \
	cmocka_unit_test_setup_teardown(test_list_order, setup, teardown),                \
	cmocka_unit_test_setup_teardown(test_move, setup, teardown),                      \
	cmocka_unit_test_setup_teardown(test_remove, setup, teardown),                    \
	cmocka_unit_test_setup_teardown(test_walk_order, setup, teardown),                \
	cmocka_unit_test_setup_teardown(test_walk_early_stop, setup, teardown),           \
	cmocka_unit_test_setup_teardown(test_concurrent_put_content, setup, teardown)

int main(void)
{
	const struct CMUnitTest common[] = {
		cmocka_unit_test(test_path_grammar),
	};
	const struct CMUnitTest fs[] = {
		CONFORMANCE_TESTS(setup_fs),
		cmocka_unit_test_setup_teardown(test_fs_layout_exact, setup_fs, teardown),
		cmocka_unit_test_setup_teardown(test_fs_reader_fd_can_be_taken, setup_fs, teardown),
		cmocka_unit_test_setup_teardown(test_fs_foreign_names_hidden, setup_fs, teardown),
		cmocka_unit_test_setup_teardown(test_fs_remove_whole_trees, setup_fs, teardown),
		cmocka_unit_test_setup_teardown(test_fs_remove_does_not_follow_symlinks, setup_fs,
						teardown),
		cmocka_unit_test_setup_teardown(test_fs_large_write_goes_direct, setup_fs, teardown),
		cmocka_unit_test_setup_teardown(test_fs_cached_write_stays_buffered, setup_fs, teardown),
		cmocka_unit_test_setup_teardown(test_fs_large_write_error_midway, setup_fs, teardown),
	};
	const struct CMUnitTest inmem[] = {
		CONFORMANCE_TESTS(setup_inmem),
	};
	const struct CMUnitTest fs_middleware[] = {
		CONFORMANCE_TESTS(setup_fs_middleware),
		cmocka_unit_test_setup_teardown(test_fs_layout_exact, setup_fs_middleware, teardown),
	};
	const struct CMUnitTest s3[] = {
		CONFORMANCE_TESTS(setup_s3),
		cmocka_unit_test_setup_teardown(test_s3_append_copies_large_object, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_continues_open_upload, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_suspend_keeps_one_upload, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_resume_checks_the_parts, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_move_multipart_copy, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_staged_writer, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_purge_staged, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_remove_aborts_open_uploads, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_url_for, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_object_version, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_retries_slowdown, setup_s3, teardown),
		cmocka_unit_test_setup_teardown(test_s3_unreachable, setup_s3, teardown),
	};

	int failed = cmocka_run_group_tests_name("storage path grammar", common, NULL, NULL);
	failed += cmocka_run_group_tests_name("storage conformance: filesystem", fs, NULL, NULL);
	failed += cmocka_run_group_tests_name("storage conformance: inmemory", inmem, NULL, NULL);
	failed += cmocka_run_group_tests_name("storage conformance: filesystem under middleware.storage",
					      fs_middleware, NULL, NULL);
	if (system("command -v radosgw >/dev/null && command -v ceph-mon >/dev/null") == 0)
		failed += cmocka_run_group_tests_name("storage conformance: s3 (radosgw)", s3, rgw_up, rgw_down);
	else
		fprintf(stderr, "SKIP: storage conformance: s3: radosgw and ceph-mon are not installed "
				"(scripts/install-deps.sh installs them)\n");
	return failed;
}

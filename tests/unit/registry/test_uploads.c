/*
 * Upload sessions' verify-then-commit (registry/uploads.c), as the pull-through cache uses them:
 * berth_upload_verify says whether the bytes match a digest and stores nothing, so a fetch can
 * end its clients' pulls before the commit makes the blob durable and links it; a session opened
 * with berth_upload_open_cached commits like any other, its bytes written on the caller's thread.
 * On the in-memory and filesystem drivers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/digest.h"
#include "core/err.h"
#include "helpers/registry.h"
#include "registry/registry.h"
#include "storage/storage.h"

#define REPO "proxy/cache"

struct fixture {
	struct berth_registry *reg;
	char dir[256]; /* filesystem root, "" for in-memory */
};

static int setup_common(void **state, int fs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || berth_test_registry_new(&f->reg, f->dir, sizeof(f->dir), fs ? "test-uploads" : NULL, NULL) < 0)
		return -1;
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

/* A session of REPO holding n bytes of content (opened as the proxy opens its fetches). */
static struct berth_upload *session_with(struct fixture *f, const char *content, size_t n, char uuid[37])
{
	struct berth_upload *u = NULL;
	assert_int_equal(berth_upload_create(f->reg, REPO, uuid), 0);
	assert_int_equal(berth_upload_open_cached(&u, f->reg, REPO, uuid), 0);
	for (size_t off = 0; off < n; off += 100000)
		assert_int_equal(berth_upload_write(u, content + off, n - off < 100000 ? n - off : 100000), 0);
	return u;
}

static char *content_of(size_t n)
{
	char *p = malloc(n);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(i * 7 + i / 4093);
	return p;
}

/* A matching digest verifies and nothing is stored until the commit, which then links it. */
static void test_verify_then_commit(void **state)
{
	struct fixture *f = *state;
	const size_t n = 3u << 20; /* past the body pipe's start and the direct-write threshold */
	char *content = content_of(n), uuid[37], digest[BERTH_DIGEST_STR_MAX];
	uint64_t size = 0;
	berth_digest_bytes(BERTH_ALG_SHA256, content, n, digest);

	struct berth_upload *u = session_with(f, content, n, uuid);
	assert_int_equal(berth_upload_verify(u, digest), 0);
	assert_int_equal(berth_blob_stat(&size, f->reg, REPO, digest), BERTH_ENOTFOUND);
	assert_int_equal(berth_upload_verify(u, digest), 0); /* again: the same verdict */
	assert_int_equal(berth_upload_commit(u, digest), 0);
	berth_upload_close(u);
	assert_int_equal(berth_blob_stat(&size, f->reg, REPO, digest), 0);
	assert_int_equal(size, n);
	assert_int_equal(berth_upload_stat(&size, f->reg, REPO, uuid), BERTH_ENOTFOUND);
	free(content);
}

/* Another digest: BERTH_EDIGEST, nothing stored, and the session is still there to cancel. */
static void test_verify_mismatch_keeps_session(void **state)
{
	struct fixture *f = *state;
	const size_t n = 200000;
	char *content = content_of(n), uuid[37], digest[BERTH_DIGEST_STR_MAX], other[BERTH_DIGEST_STR_MAX];
	uint64_t size = 0;
	berth_digest_bytes(BERTH_ALG_SHA256, content, n, digest);
	berth_digest_bytes(BERTH_ALG_SHA256, content, n - 1, other);

	struct berth_upload *u = session_with(f, content, n, uuid);
	assert_int_equal(berth_upload_verify(u, other), BERTH_EDIGEST);
	assert_int_equal(berth_upload_verify(u, "sha256:not-a-digest"), BERTH_EDIGEST);
	assert_int_equal(berth_upload_stat(&size, f->reg, REPO, uuid), 0);
	assert_int_equal(size, n);
	assert_int_equal(berth_upload_cancel(u), 0);
	berth_upload_close(u);
	assert_int_equal(berth_blob_stat(&size, f->reg, REPO, other), BERTH_ENOTFOUND);
	assert_int_equal(berth_blob_stat(&size, f->reg, REPO, digest), BERTH_ENOTFOUND);
	assert_int_equal(berth_upload_stat(&size, f->reg, REPO, uuid), BERTH_ENOTFOUND);
	free(content);
}

/* A session opened for a fetch takes each write on the caller's thread: the bytes are stored
 * when berth_upload_write returns (a body pipe, which such a session does not start, holds a
 * tail that ends off the writer's alignment back until the pipe finishes). */
static void test_cached_writes_inline(void **state)
{
	struct fixture *f = *state;
	const size_t first = 64u << 10, second = 1000; /* past the body pipe's start, then a tail */
	char *content = content_of(first + second), uuid[37];
	uint64_t size = 0;
	struct berth_upload *u = NULL;

	assert_int_equal(berth_upload_create(f->reg, REPO, uuid), 0);
	assert_int_equal(berth_upload_open_cached(&u, f->reg, REPO, uuid), 0);
	assert_int_equal(berth_upload_write(u, content, first), 0);
	assert_int_equal(berth_upload_write(u, content + first, second), 0);
	assert_int_equal(berth_upload_stat(&size, f->reg, REPO, uuid), 0);
	assert_int_equal(size, first + second);
	assert_int_equal(berth_upload_cancel(u), 0);
	berth_upload_close(u);
	free(content);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup_mem, teardown), \
		cmocka_unit_test_setup_teardown(t, setup_fs, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_verify_then_commit),
		BOTH(test_verify_mismatch_keeps_session),
		BOTH(test_cached_writes_inline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The hash pipe: what it digests on its own thread equals hashing the same bytes inline,
 * whatever the piece sizes (pieces larger than the ring, pieces that wrap around it), its
 * state carries on after finish, and no more pipes run than there are cores.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/digest.h"
#include "core/err.h"
#include "core/hashpipe.h"

static unsigned char *random_bytes(size_t n, unsigned seed)
{
	unsigned char *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	return b;
}

static void inline_digest(const unsigned char *b, size_t n, char out[BERTH_DIGEST_STR_MAX])
{
	berth_digest_bytes(BERTH_ALG_SHA256, b, n, out);
}

/* Feeds n bytes through a pipe in pieces of the given sizes (cycled) and returns the hasher. */
static struct berth_hasher *through_pipe(const unsigned char *b, size_t n, const size_t *pieces,
					 size_t npieces)
{
	struct berth_hasher *h = NULL;
	struct berth_hash_pipe *p = NULL;
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_hash_pipe_start(&p, h), 0);
	for (size_t off = 0, i = 0; off < n; i++) {
		size_t k = pieces[i % npieces];
		if (k > n - off)
			k = n - off;
		berth_hash_pipe_update(p, b + off, k);
		off += k;
	}
	return berth_hash_pipe_finish(p);
}

static void test_same_digest_as_inline(void **state)
{
	(void)state;
	const size_t n = 5 * BERTH_HASH_PIPE_RING + 12345;
	unsigned char *b = random_bytes(n, 7);
	char want[BERTH_DIGEST_STR_MAX], got[BERTH_DIGEST_STR_MAX];
	inline_digest(b, n, want);
	static const size_t small[] = { 1, 63, 4096, 65537, 131072 };
	static const size_t big[] = { BERTH_HASH_PIPE_RING + 1, 3 * BERTH_HASH_PIPE_RING };
	static const size_t odd[] = { BERTH_HASH_PIPE_RING - 1, 2 };
	const size_t *sets[] = { small, big, odd };
	const size_t lens[] = { 5, 2, 2 };
	for (size_t s = 0; s < 3; s++) {
		struct berth_hasher *h = through_pipe(b, n, sets[s], lens[s]);
		assert_int_equal(berth_hasher_len(h), n);
		berth_hasher_digest(h, got);
		assert_string_equal(got, want);
		berth_hasher_free(h);
	}
	free(b);
}

static void test_empty_and_continued(void **state)
{
	(void)state;
	struct berth_hasher *h = NULL;
	struct berth_hash_pipe *p = NULL;
	char want[BERTH_DIGEST_STR_MAX], got[BERTH_DIGEST_STR_MAX];
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_hash_pipe_start(&p, h), 0);
	h = berth_hash_pipe_finish(p); /* nothing given */
	assert_int_equal(berth_hasher_len(h), 0);
	/* Inline, then piped, then inline again: one stream. */
	unsigned char *b = random_bytes(3 << 20, 9);
	berth_hasher_update(h, b, 1000);
	assert_int_equal(berth_hash_pipe_start(&p, h), 0);
	berth_hash_pipe_update(p, b + 1000, (2 << 20) - 1000);
	h = berth_hash_pipe_finish(p);
	berth_hasher_update(h, b + (2 << 20), 1 << 20);
	berth_hasher_digest(h, got);
	inline_digest(b, 3 << 20, want);
	assert_string_equal(got, want);
	berth_hasher_free(h);
	free(b);
}

static void test_at_most_one_per_core(void **state)
{
	(void)state;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct berth_hash_pipe **pipes = calloc((size_t)cores + 1, sizeof(*pipes));
	struct berth_hasher *extra = NULL;
	for (long i = 0; i < cores; i++) {
		struct berth_hasher *h = NULL;
		assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
		assert_int_equal(berth_hash_pipe_start(&pipes[i], h), 0);
	}
	assert_int_equal(berth_hasher_new(&extra, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_hash_pipe_start(&pipes[cores], extra), BERTH_EBUSY);
	berth_hasher_update(extra, "abc", 3); /* still the caller's */
	for (long i = 0; i < cores; i++)
		berth_hasher_free(berth_hash_pipe_finish(pipes[i]));
	struct berth_hash_pipe *p = NULL;
	assert_int_equal(berth_hash_pipe_start(&p, extra), 0); /* a slot came back */
	berth_hasher_free(berth_hash_pipe_finish(p));
	free(pipes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_digest_as_inline),
		cmocka_unit_test(test_empty_and_continued),
		cmocka_unit_test(test_at_most_one_per_core),
	};
	return cmocka_run_group_tests_name("hash pipe", tests, NULL, NULL);
}

/*
 * Streaming hashers and their Go-compatible state format. The expected states were derived
 * independently (a from-scratch SHA compression in Python, checked against hashlib), not from
 * berth's own output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/digest.h"
#include "core/err.h"

#define MIB (1024 * 1024)

#define SHA256_EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA512_EMPTY                                                                            \
	"sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0" \
	"ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
#define SHA512_ABC                                                                              \
	"sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a8" \
	"36ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
/* Of prng_fill(1 MiB). */
#define SHA256_MIB "sha256:e81b74f82d49d7cd93809eb7f728cf10cad98a920f450d69921c12849934c4c9"
#define SHA512_MIB                                                                              \
	"sha512:a9075e91b8468bb9fb5461de29940837d79330fcea5a43a17f227a680aebd8391a2e2d7e586027ff" \
	"9f20b45cf15747a5ff96cdb15302fab25cbad788143bada3"

static const uint32_t sha256_iv[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static const uint64_t sha512_iv[8] = {
	0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
	0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
};

/* h[] after compressing the first block of prng_fill's output. */
static const uint32_t sha256_h_block1[8] = {
	0xd58de748, 0x59cde60a, 0xe990c964, 0xdde102e7,
	0x392c67af, 0x500efa89, 0x416ca8b7, 0xd4d89c9f,
};

static const uint64_t sha512_h_block1[8] = {
	0xda7e18fa6cff5375, 0x6d9416515b6a8cbe, 0xf5657a35d1f81585, 0x623f4e9cbb235560,
	0x9d115f8cdfbce14d, 0x00e87fa4d16e3f12, 0x5347197ab455913f, 0x58c12dc1d0f9c4ca,
};

/* xorshift64, one byte (the top one) per step: reproducible pseudo-random data. */
static void prng_fill(unsigned char *buf, size_t n)
{
	uint64_t s = 0x9E3779B97F4A7C15ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		buf[i] = (unsigned char)(s >> 56);
	}
}

static unsigned char *prng_alloc(size_t n)
{
	unsigned char *buf = malloc(n);

	assert_non_null(buf);
	prng_fill(buf, n);
	return buf;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* Go's sha256 MarshalBinary, built by hand: 108 bytes. */
static void go_state_sha256(unsigned char out[108], const uint32_t h[8], const void *pending,
			    size_t n_pending, uint64_t total)
{
	int i;

	memset(out, 0, 108);
	memcpy(out, "sha\x03", 4);
	for (i = 0; i < 8; i++)
		put_be32(out + 4 + 4 * i, h[i]);
	memcpy(out + 36, pending, n_pending);
	put_be64(out + 100, total);
}

/* Go's sha512 MarshalBinary, built by hand: 204 bytes. */
static void go_state_sha512(unsigned char out[204], const uint64_t h[8], const void *pending,
			    size_t n_pending, uint64_t total)
{
	int i;

	memset(out, 0, 204);
	memcpy(out, "sha\x07", 4);
	for (i = 0; i < 8; i++)
		put_be64(out + 4 + 8 * i, h[i]);
	memcpy(out + 68, pending, n_pending);
	put_be64(out + 196, total);
}

static void assert_hash(enum berth_digest_alg alg, const void *buf, size_t n, const char *want)
{
	char got[BERTH_DIGEST_STR_MAX];

	berth_digest_bytes(alg, buf, n, got);
	assert_string_equal(got, want);
}

static void test_known_digests(void **state)
{
	unsigned char *mib = prng_alloc(MIB);

	(void)state;
	assert_hash(BERTH_ALG_SHA256, "", 0, SHA256_EMPTY);
	assert_hash(BERTH_ALG_SHA256, NULL, 0, SHA256_EMPTY);
	assert_hash(BERTH_ALG_SHA256, "abc", 3, SHA256_ABC);
	assert_hash(BERTH_ALG_SHA512, "", 0, SHA512_EMPTY);
	assert_hash(BERTH_ALG_SHA512, "abc", 3, SHA512_ABC);
	assert_hash(BERTH_ALG_SHA256, mib, MIB, SHA256_MIB);
	assert_hash(BERTH_ALG_SHA512, mib, MIB, SHA512_MIB);
	free(mib);
}

static void test_digest_bytes_alg_none(void **state)
{
	char got[BERTH_DIGEST_STR_MAX];

	(void)state;
	memset(got, 'x', sizeof(got));
	berth_digest_bytes(BERTH_ALG_NONE, "abc", 3, got);
	assert_string_equal(got, "");
}

static void test_hasher_new_rejects_none(void **state)
{
	struct berth_hasher *h = (struct berth_hasher *)&h;

	(void)state;
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_NONE), BERTH_EINVALID);
	assert_null(h);
	assert_int_equal(berth_hasher_new(&h, (enum berth_digest_alg)42), BERTH_EINVALID);
	assert_null(h);
	berth_hasher_free(NULL);
}

/* Feeding in uneven pieces gives the one-shot digest; the hasher stays usable after digest(). */
static void check_streaming(enum berth_digest_alg alg, const char *want_mib)
{
	static const size_t pieces[] = { 0, 1, 2, 61, 64, 127, 128, 129, 1000, 4096, 65537 };
	unsigned char *mib = prng_alloc(MIB);
	struct berth_hasher *h;
	char got[BERTH_DIGEST_STR_MAX];
	size_t off = 0;
	size_t i = 0;

	assert_int_equal(berth_hasher_new(&h, alg), 0);
	assert_int_equal(berth_hasher_alg(h), alg);
	assert_int_equal(berth_hasher_len(h), 0);
	berth_hasher_digest(h, got);
	assert_string_equal(got, alg == BERTH_ALG_SHA256 ? SHA256_EMPTY : SHA512_EMPTY);
	while (off < MIB) {
		size_t n = pieces[i++ % (sizeof(pieces) / sizeof(pieces[0]))];

		if (n > MIB - off)
			n = MIB - off;
		berth_hasher_update(h, mib + off, n);
		off += n;
		assert_int_equal(berth_hasher_len(h), off);
		if (i % 7 == 0) /* an intermediate digest must not disturb the state */
			berth_hasher_digest(h, got);
	}
	berth_hasher_digest(h, got);
	assert_string_equal(got, want_mib);
	berth_hasher_digest(h, got);
	assert_string_equal(got, want_mib);
	berth_hasher_free(h);
	free(mib);
}

static void test_streaming_sha256(void **state)
{
	(void)state;
	check_streaming(BERTH_ALG_SHA256, SHA256_MIB);
}

static void test_streaming_sha512(void **state)
{
	(void)state;
	check_streaming(BERTH_ALG_SHA512, SHA512_MIB);
}

/*
 * The interop property: hash `split` bytes, marshal, unmarshal into a new hasher, hash the rest:
 * the digest equals the one-shot digest of everything.
 */
static void check_split(enum berth_digest_alg alg, const unsigned char *data, size_t n,
			size_t split, const char *want)
{
	unsigned char state[BERTH_HASHSTATE_MAX];
	struct berth_hasher *a;
	struct berth_hasher *b;
	char got[BERTH_DIGEST_STR_MAX];
	size_t len = 0;

	assert_int_equal(berth_hasher_new(&a, alg), 0);
	berth_hasher_update(a, data, split);
	assert_int_equal(berth_hasher_marshal(a, state, sizeof(state), &len), 0);
	assert_int_equal(len, alg == BERTH_ALG_SHA256 ? 108 : 204);
	berth_hasher_free(a);

	assert_int_equal(berth_hasher_unmarshal(&b, alg, state, len), 0);
	assert_int_equal(berth_hasher_alg(b), alg);
	assert_int_equal(berth_hasher_len(b), split);
	berth_hasher_update(b, data + split, n - split);
	assert_int_equal(berth_hasher_len(b), n);
	berth_hasher_digest(b, got);
	assert_string_equal(got, want);
	berth_hasher_free(b);
}

static void check_splits(enum berth_digest_alg alg, const char *want_mib)
{
	static const size_t splits[] = {
		0, 1, 2, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 191, 192, 255, 256, 257,
		1000, 4095, 4096, 4097, 65535, 65536, 65537, 500000, MIB - 129, MIB - 128,
		MIB - 64, MIB - 1, MIB,
	};
	unsigned char *mib = prng_alloc(MIB);
	size_t i;

	for (i = 0; i < sizeof(splits) / sizeof(splits[0]); i++)
		check_split(alg, mib, MIB, splits[i], want_mib);
	free(mib);
}

static void test_split_sha256(void **state)
{
	(void)state;
	check_splits(BERTH_ALG_SHA256, SHA256_MIB);
}

static void test_split_sha512(void **state)
{
	(void)state;
	check_splits(BERTH_ALG_SHA512, SHA512_MIB);
}

/* Every split of a short input, including repeated marshal/unmarshal round trips. */
static void test_split_every_offset_small(void **state)
{
	unsigned char *data = prng_alloc(300);
	char want256[BERTH_DIGEST_STR_MAX];
	char want512[BERTH_DIGEST_STR_MAX];
	size_t i;

	(void)state;
	berth_digest_bytes(BERTH_ALG_SHA256, data, 300, want256);
	berth_digest_bytes(BERTH_ALG_SHA512, data, 300, want512);
	for (i = 0; i <= 300; i++) {
		check_split(BERTH_ALG_SHA256, data, 300, i, want256);
		check_split(BERTH_ALG_SHA512, data, 300, i, want512);
	}
	free(data);
}

static void marshal_after(enum berth_digest_alg alg, const void *data, size_t n,
			  unsigned char *out, size_t *len)
{
	struct berth_hasher *h;

	assert_int_equal(berth_hasher_new(&h, alg), 0);
	berth_hasher_update(h, data, n);
	assert_int_equal(berth_hasher_marshal(h, out, BERTH_HASHSTATE_MAX, len), 0);
	berth_hasher_free(h);
}

/* sha256 of "abc" stopped after 3 bytes: no block compressed yet, so h is the IV. */
static void test_marshal_sha256_exact_bytes(void **state)
{
	unsigned char want[108];
	unsigned char got[BERTH_HASHSTATE_MAX];
	unsigned char *data = prng_alloc(65);
	size_t len;

	(void)state;
	go_state_sha256(want, sha256_iv, "abc", 3, 3);
	assert_memory_equal(want, "sha\x03\x6a\x09\xe6\x67\xbb\x67\xae\x85", 12);
	assert_memory_equal(want + 36, "abc\0\0", 5);
	assert_memory_equal(want + 100, "\0\0\0\0\0\0\0\x03", 8);
	marshal_after(BERTH_ALG_SHA256, "abc", 3, got, &len);
	assert_int_equal(len, 108);
	assert_memory_equal(got, want, 108);

	go_state_sha256(want, sha256_iv, "", 0, 0);
	marshal_after(BERTH_ALG_SHA256, "", 0, got, &len);
	assert_memory_equal(got, want, 108);

	/* one block compressed, one byte pending */
	go_state_sha256(want, sha256_h_block1, data + 64, 1, 65);
	marshal_after(BERTH_ALG_SHA256, data, 65, got, &len);
	assert_memory_equal(got, want, 108);

	/* exactly one block: nothing pending */
	go_state_sha256(want, sha256_h_block1, "", 0, 64);
	marshal_after(BERTH_ALG_SHA256, data, 64, got, &len);
	assert_memory_equal(got, want, 108);
	free(data);
}

static void test_marshal_sha512_exact_bytes(void **state)
{
	unsigned char want[204];
	unsigned char got[BERTH_HASHSTATE_MAX];
	unsigned char *data = prng_alloc(129);
	size_t len;

	(void)state;
	go_state_sha512(want, sha512_iv, "abc", 3, 3);
	assert_memory_equal(want, "sha\x07\x6a\x09\xe6\x67\xf3\xbc\xc9\x08", 12);
	marshal_after(BERTH_ALG_SHA512, "abc", 3, got, &len);
	assert_int_equal(len, 204);
	assert_memory_equal(got, want, 204);

	go_state_sha512(want, sha512_h_block1, data + 128, 1, 129);
	marshal_after(BERTH_ALG_SHA512, data, 129, got, &len);
	assert_memory_equal(got, want, 204);

	go_state_sha512(want, sha512_h_block1, "", 0, 128);
	marshal_after(BERTH_ALG_SHA512, data, 128, got, &len);
	assert_memory_equal(got, want, 204);
	free(data);
}

/* A state written by Go (built by hand here) resumes in berth. */
static void test_unmarshal_go_state(void **state)
{
	unsigned char st256[108];
	unsigned char st512[204];
	unsigned char *data = prng_alloc(1000);
	struct berth_hasher *h;
	char want[BERTH_DIGEST_STR_MAX];
	char got[BERTH_DIGEST_STR_MAX];

	(void)state;
	go_state_sha256(st256, sha256_h_block1, data + 64, 1, 65);
	assert_int_equal(berth_hasher_unmarshal(&h, BERTH_ALG_SHA256, st256, 108), 0);
	berth_hasher_update(h, data + 65, 1000 - 65);
	berth_hasher_digest(h, got);
	berth_digest_bytes(BERTH_ALG_SHA256, data, 1000, want);
	assert_string_equal(got, want);
	berth_hasher_free(h);

	go_state_sha512(st512, sha512_h_block1, data + 128, 1, 129);
	assert_int_equal(berth_hasher_unmarshal(&h, BERTH_ALG_SHA512, st512, 204), 0);
	berth_hasher_update(h, data + 129, 1000 - 129);
	berth_hasher_digest(h, got);
	berth_digest_bytes(BERTH_ALG_SHA512, data, 1000, want);
	assert_string_equal(got, want);
	berth_hasher_free(h);

	go_state_sha256(st256, sha256_iv, "abc", 3, 3);
	assert_int_equal(berth_hasher_unmarshal(&h, BERTH_ALG_SHA256, st256, 108), 0);
	berth_hasher_digest(h, got);
	assert_string_equal(got, SHA256_ABC);
	berth_hasher_free(h);
	free(data);
}

static void expect_unmarshal_fails(enum berth_digest_alg alg, const unsigned char *buf, size_t n)
{
	struct berth_hasher *h = (struct berth_hasher *)&h;

	assert_int_equal(berth_hasher_unmarshal(&h, alg, buf, n), BERTH_EINVALID);
	assert_null(h);
}

static void test_unmarshal_rejects(void **state)
{
	unsigned char st256[108];
	unsigned char st512[204];
	unsigned char bad[BERTH_HASHSTATE_MAX + 1];

	(void)state;
	go_state_sha256(st256, sha256_iv, "abc", 3, 3);
	go_state_sha512(st512, sha512_iv, "abc", 3, 3);

	/* wrong length */
	expect_unmarshal_fails(BERTH_ALG_SHA256, st256, 107);
	expect_unmarshal_fails(BERTH_ALG_SHA256, st256, 0);
	memcpy(bad, st256, 108);
	bad[108] = 0;
	expect_unmarshal_fails(BERTH_ALG_SHA256, bad, 109);
	expect_unmarshal_fails(BERTH_ALG_SHA512, st512, 203);
	expect_unmarshal_fails(BERTH_ALG_SHA512, st512, 4);

	/* state of the other algorithm */
	expect_unmarshal_fails(BERTH_ALG_SHA512, st256, 108);
	expect_unmarshal_fails(BERTH_ALG_SHA256, st512, 204);

	/* wrong magic: sha224 ("sha\x02") and sha384 ("sha\x04") states */
	memcpy(bad, st256, 108);
	bad[3] = 0x02;
	expect_unmarshal_fails(BERTH_ALG_SHA256, bad, 108);
	memcpy(bad, st512, 204);
	bad[3] = 0x04;
	expect_unmarshal_fails(BERTH_ALG_SHA512, bad, 204);
	memcpy(bad, st256, 108);
	bad[0] = 'S';
	expect_unmarshal_fails(BERTH_ALG_SHA256, bad, 108);

	/* length says 2 bytes pending, but 3 are in the buffer */
	memcpy(bad, st256, 108);
	bad[107] = 2;
	expect_unmarshal_fails(BERTH_ALG_SHA256, bad, 108);
	memcpy(bad, st512, 204);
	bad[203] = 2;
	expect_unmarshal_fails(BERTH_ALG_SHA512, bad, 204);

	/* length a whole number of blocks, but the buffer is not empty */
	memcpy(bad, st256, 108);
	bad[107] = 64;
	expect_unmarshal_fails(BERTH_ALG_SHA256, bad, 108);
	memcpy(bad, st512, 204);
	bad[203] = 128;
	expect_unmarshal_fails(BERTH_ALG_SHA512, bad, 204);

	/* garbage in the last byte of the block buffer */
	memcpy(bad, st256, 108);
	bad[99] = 1;
	expect_unmarshal_fails(BERTH_ALG_SHA256, bad, 108);

	/* no algorithm, no buffer */
	expect_unmarshal_fails(BERTH_ALG_NONE, st256, 108);
	expect_unmarshal_fails(BERTH_ALG_SHA256, NULL, 108);
}

/* Pending count comes from the length: 67 bytes -> 3 pending even though h is arbitrary. */
static void test_unmarshal_length_above_block(void **state)
{
	unsigned char st[108];
	unsigned char out[BERTH_HASHSTATE_MAX];
	struct berth_hasher *h;
	size_t len;

	(void)state;
	go_state_sha256(st, sha256_h_block1, "xyz", 3, 67);
	assert_int_equal(berth_hasher_unmarshal(&h, BERTH_ALG_SHA256, st, sizeof(st)), 0);
	assert_int_equal(berth_hasher_len(h), 67);
	assert_int_equal(berth_hasher_marshal(h, out, sizeof(out), &len), 0);
	assert_int_equal(len, 108);
	assert_memory_equal(out, st, 108);
	berth_hasher_free(h);
}

/* A large total length (more than 2^32 bytes, more than 2^29 so the bit count needs Nh)
 * survives the round trip exactly. */
static void test_unmarshal_large_length(void **state)
{
	unsigned char st256[108];
	unsigned char st512[204];
	unsigned char out[BERTH_HASHSTATE_MAX];
	const uint64_t total = 0x123456789abULL * 64 + 5;
	struct berth_hasher *h;
	size_t len;

	(void)state;
	go_state_sha256(st256, sha256_h_block1, "12345", 5, total);
	assert_int_equal(berth_hasher_unmarshal(&h, BERTH_ALG_SHA256, st256, 108), 0);
	assert_true(berth_hasher_len(h) == total);
	assert_int_equal(berth_hasher_marshal(h, out, sizeof(out), &len), 0);
	assert_memory_equal(out, st256, 108);
	berth_hasher_update(h, "67", 2);
	assert_true(berth_hasher_len(h) == total + 2);
	berth_hasher_free(h);

	go_state_sha512(st512, sha512_h_block1, "12345", 5, 0x123456789abULL * 128 + 5);
	assert_int_equal(berth_hasher_unmarshal(&h, BERTH_ALG_SHA512, st512, 204), 0);
	assert_true(berth_hasher_len(h) == 0x123456789abULL * 128 + 5);
	assert_int_equal(berth_hasher_marshal(h, out, sizeof(out), &len), 0);
	assert_memory_equal(out, st512, 204);
	berth_hasher_free(h);
}

static void test_marshal_small_buffer(void **state)
{
	unsigned char out[BERTH_HASHSTATE_MAX];
	struct berth_hasher *h;
	size_t len = 0;

	(void)state;
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_hasher_marshal(h, out, 107, &len), BERTH_EINVALID);
	assert_int_equal(berth_hasher_marshal(h, out, 108, &len), 0);
	assert_int_equal(len, 108);
	berth_hasher_free(h);

	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA512), 0);
	assert_int_equal(berth_hasher_marshal(h, out, 203, &len), BERTH_EINVALID);
	assert_int_equal(berth_hasher_marshal(h, out, 204, &len), 0);
	assert_int_equal(len, 204);
	berth_hasher_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_digests),
		cmocka_unit_test(test_digest_bytes_alg_none),
		cmocka_unit_test(test_hasher_new_rejects_none),
		cmocka_unit_test(test_streaming_sha256),
		cmocka_unit_test(test_streaming_sha512),
		cmocka_unit_test(test_split_sha256),
		cmocka_unit_test(test_split_sha512),
		cmocka_unit_test(test_split_every_offset_small),
		cmocka_unit_test(test_marshal_sha256_exact_bytes),
		cmocka_unit_test(test_marshal_sha512_exact_bytes),
		cmocka_unit_test(test_unmarshal_go_state),
		cmocka_unit_test(test_unmarshal_rejects),
		cmocka_unit_test(test_unmarshal_length_above_block),
		cmocka_unit_test(test_unmarshal_large_length),
		cmocka_unit_test(test_marshal_small_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

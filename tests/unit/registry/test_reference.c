/* Repository names, tags and digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "registry/reference.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX128 HEX64 HEX64

/* A string of n copies of c (NUL-terminated); free() it. */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* prefix followed by enough copies of c to make the whole string n bytes long. */
static char *padded(const char *prefix, char c, size_t n)
{
	char *s = repeat(c, n);

	memcpy(s, prefix, strlen(prefix));
	return s;
}

static void test_name_valid(void **state)
{
	static const char *const valid[] = {
		"a", "0", "library/ubuntu", "a/b/c/d/e", "foo.bar", "foo_bar", "a__b", "a-b",
		"a--b", "a---------b", "a.b_c__d-e--f", "abc123/x-y_z.w", "9/8/7", "my-org/my.repo",
		"a.b.c", "a_b_c",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (!berth_name_valid(valid[i]))
			fail_msg("expected valid name: %s", valid[i]);
	}
}

static void test_name_invalid(void **state)
{
	static const char *const invalid[] = {
		"", "A", "Library/ubuntu", "library/Ubuntu", "a___b", "a__", "__a", "a_", "_a",
		"a.", ".a", "a..b", "a._b", "a-.b", "a.-b", "a-", "-a", "a/", "/a", "a//b", "/",
		"a/b/", "a b", "a:b", "a@b", "localhost:5000/foo", "a\tb", "a\nb", "é", "a/é",
		"caf\xc3\xa9", "a\xff", "a/../b", "a/./b", "..", "a+b", "a~b", "a!b", "a\\b",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (berth_name_valid(invalid[i]))
			fail_msg("expected invalid name: %s", invalid[i]);
	}
	assert_false(berth_name_valid(NULL));
}

static void test_name_length(void **state)
{
	char *s;

	(void)state;
	s = repeat('a', BERTH_NAME_MAX);
	assert_true(berth_name_valid(s));
	free(s);
	s = repeat('a', BERTH_NAME_MAX + 1);
	assert_false(berth_name_valid(s));
	free(s);

	/* components with slashes, exactly 255 and 256 in total */
	s = padded("library/x-y/", 'z', 255);
	assert_true(berth_name_valid(s));
	free(s);
	s = padded("library/x-y/", 'z', 256);
	assert_false(berth_name_valid(s));
	free(s);

	/* very long strings, valid in shape, invalid in length; and long garbage */
	s = repeat('a', 1 << 20);
	assert_false(berth_name_valid(s));
	free(s);
	s = repeat('-', 1 << 20);
	assert_false(berth_name_valid(s));
	free(s);
	s = padded("a", '-', 200);
	assert_false(berth_name_valid(s));
	s[199] = 'b';
	assert_true(berth_name_valid(s));
	free(s);
}

static void test_tag_valid(void **state)
{
	static const char *const valid[] = {
		"latest", "v1.0.0", "1", "_", "_private", "A", "Z9", "a-b", "a.b", "a_b",
		"x--..__", "3.14-rc.1_build", "UPPER", "MiXeD",
	};
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (!berth_tag_valid(valid[i]))
			fail_msg("expected valid tag: %s", valid[i]);
	}
	s = repeat('t', BERTH_TAG_MAX);
	assert_true(berth_tag_valid(s));
	free(s);
	s = padded("_", '-', 128);
	assert_true(berth_tag_valid(s));
	free(s);
}

static void test_tag_invalid(void **state)
{
	static const char *const invalid[] = {
		"", ".", "-", ".latest", "-latest", "a b", "a/b", "a:b", "a@b", "a+b", "tag\n",
		" tag", "t\xc3\xa9", "\xff", ("sha256:" HEX64),
	};
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (berth_tag_valid(invalid[i]))
			fail_msg("expected invalid tag: %s", invalid[i]);
	}
	assert_false(berth_tag_valid(NULL));
	s = repeat('t', BERTH_TAG_MAX + 1);
	assert_false(berth_tag_valid(s));
	free(s);
	s = repeat('t', 1 << 20);
	assert_false(berth_tag_valid(s));
	free(s);
}

static void test_digest_parse_sha256(void **state)
{
	const char *d = "sha256:" HEX64;
	enum berth_digest_alg alg = BERTH_ALG_NONE;
	const char *hex = NULL;

	(void)state;
	assert_int_equal(berth_digest_parse(d, &alg, &hex), 0);
	assert_int_equal(alg, BERTH_ALG_SHA256);
	assert_ptr_equal(hex, d + 7);
	assert_true(berth_digest_valid(d));
	assert_int_equal(berth_digest_parse(d, NULL, NULL), 0);
}

static void test_digest_parse_sha512(void **state)
{
	const char *d = "sha512:" HEX128;
	enum berth_digest_alg alg = BERTH_ALG_NONE;
	const char *hex = NULL;

	(void)state;
	assert_int_equal(berth_digest_parse(d, &alg, &hex), 0);
	assert_int_equal(alg, BERTH_ALG_SHA512);
	assert_ptr_equal(hex, d + 7);
	assert_true(berth_digest_valid(d));
}

static void test_digest_parse_invalid(void **state)
{
	static const char *const invalid[] = {
		"",
		":",
		"sha256",
		"sha256:",
		":" HEX64,
		"sha256" HEX64,
		"sha256::" HEX64,
		"sha256:" HEX64 "0", /* 65 hex */
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", /* 63 */
		"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:" HEX64 " ",
		" sha256:" HEX64,
		"sha256:" HEX64 "\n",
		"SHA256:" HEX64,
		"Sha256:" HEX64,
		"sha512:" HEX64,
		"sha512:" HEX128 "a",
		"sha256:" HEX128,
		"sha256 :" HEX64,
		"sha-:" HEX64,
		"-sha:" HEX64,
		"sha..256:" HEX64,
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef01234567\xc3\xa9" "abcdef",
		"sha256:ab/cd",
		"md5:abc+def",
		"md5:",
		"\xff:abc",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (berth_digest_parse(invalid[i], NULL, NULL) != BERTH_EINVALID)
			fail_msg("expected BERTH_EINVALID for digest: %s", invalid[i]);
		assert_false(berth_digest_valid(invalid[i]));
	}
	assert_int_equal(berth_digest_parse(NULL, NULL, NULL), BERTH_EINVALID);
	assert_false(berth_digest_valid(NULL));
}

static void test_digest_parse_unsupported(void **state)
{
	static const char *const unsupported[] = {
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha384:" HEX64,
		"sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"blake3:" HEX64,
		"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
		"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
		"a.b_c-d+e:x=y_z-Q",
		"sha2560:" HEX64,
	};
	size_t i;
	enum berth_digest_alg alg = BERTH_ALG_SHA256;
	const char *hex = "untouched";

	(void)state;
	for (i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		if (berth_digest_parse(unsupported[i], &alg, &hex) != BERTH_EUNSUPPORTED)
			fail_msg("expected BERTH_EUNSUPPORTED for digest: %s", unsupported[i]);
		assert_false(berth_digest_valid(unsupported[i]));
	}
	/* a supported algorithm with a well-formed but non-hex encoding is invalid */
	assert_int_equal(berth_digest_parse("sha256:" HEX64 "=", NULL, NULL), BERTH_EINVALID);
	assert_int_equal(berth_digest_parse("sha256:abc", NULL, NULL), BERTH_EINVALID);
	/* outputs untouched on failure */
	assert_int_equal(alg, BERTH_ALG_SHA256);
	assert_string_equal(hex, "untouched");
}

static void test_digest_long_input(void **state)
{
	char *s = padded("sha256:", 'a', 1 << 20);

	(void)state;
	assert_int_equal(berth_digest_parse(s, NULL, NULL), BERTH_EINVALID);
	memcpy(s, "shaXYZ:", 7);
	assert_int_equal(berth_digest_parse(s, NULL, NULL), BERTH_EINVALID);
	memcpy(s, "shaxyz:", 7);
	assert_int_equal(berth_digest_parse(s, NULL, NULL), BERTH_EUNSUPPORTED);
	free(s);
	s = repeat('a', 1 << 20);
	assert_int_equal(berth_digest_parse(s, NULL, NULL), BERTH_EINVALID);
	free(s);
}

static void test_digest_alg_helpers(void **state)
{
	(void)state;
	assert_string_equal(berth_digest_alg_name(BERTH_ALG_SHA256), "sha256");
	assert_string_equal(berth_digest_alg_name(BERTH_ALG_SHA512), "sha512");
	assert_null(berth_digest_alg_name(BERTH_ALG_NONE));
	assert_int_equal(berth_digest_hex_len(BERTH_ALG_SHA256), 64);
	assert_int_equal(berth_digest_hex_len(BERTH_ALG_SHA512), 128);
	assert_int_equal(berth_digest_hex_len(BERTH_ALG_NONE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_name_invalid),
		cmocka_unit_test(test_name_length),
		cmocka_unit_test(test_tag_valid),
		cmocka_unit_test(test_tag_invalid),
		cmocka_unit_test(test_digest_parse_sha256),
		cmocka_unit_test(test_digest_parse_sha512),
		cmocka_unit_test(test_digest_parse_invalid),
		cmocka_unit_test(test_digest_parse_unsupported),
		cmocka_unit_test(test_digest_long_input),
		cmocka_unit_test(test_digest_alg_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Link file content (registry/link.c): the one parser serving, gc and fsck share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "registry/link.h"

#define D256 "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static int parse(char out[BERTH_DIGEST_STR_MAX], const char *s)
{
	return berth_link_parse(out, s, strlen(s));
}

static void test_bare_digest(void **state)
{
	char out[BERTH_DIGEST_STR_MAX];
	assert_int_equal(parse(out, D256), 0);
	assert_string_equal(out, D256);
}

static void test_surrounding_whitespace(void **state)
{
	const char *cases[] = { (D256 "\n"), (D256 "\r\n"), (" \t" D256 " \n\n"), ("\n" D256) };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[BERTH_DIGEST_STR_MAX] = "";
		assert_int_equal(parse(out, cases[i]), 0);
		assert_string_equal(out, D256);
	}
}

static void test_sha512_with_newline(void **state)
{
	/* 136 bytes: more than a digest buffer holds before trimming. */
	char link[160], out[BERTH_DIGEST_STR_MAX];
	memcpy(link, "sha512:", 7);
	memset(link + 7, 'a', 128);
	link[135] = '\n';
	assert_int_equal(berth_link_parse(out, link, 136), 0);
	assert_int_equal(strlen(out), 135);
}

static void test_not_a_link(void **state)
{
	char out[BERTH_DIGEST_STR_MAX] = "untouched";
	const char *bad[] = { "", "\n", "sha256:zzz", (D256 "x"), (D256 " " D256), "sha256:\n",
			      "SHA256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(out, bad[i]), BERTH_EINVALID);
	assert_string_equal(out, "untouched");
	/* An embedded NUL is not hidden by the C string end. */
	char nul[] = D256 "\0junk";
	assert_int_equal(berth_link_parse(out, nul, sizeof(nul) - 1), BERTH_EINVALID);
	/* Not NUL-terminated: only len bytes are read. */
	assert_int_equal(berth_link_parse(out, D256 "garbage", strlen(D256)), 0);
	assert_string_equal(out, D256);
}

static void test_digest_of_a_link_path(void **state)
{
	(void)state;
	struct berth_oid oid;
	char out[BERTH_DIGEST_STR_MAX];
	assert_int_equal(berth_link_path_oid(&oid, "/docker/registry/v2/repositories/a/b/_layers/sha256/"
					     "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/link"),
			 0);
	berth_oid_fmt(out, &oid);
	assert_string_equal(out, D256);
	const char *bad[] = {
		"/r/_layers/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
		"/r/_layers/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/data",
		"/r/_layers/md5/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/link",
		"/r/_layers/sha256/2cf24dba/link", "link", "/link", "sha256/x/link",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(berth_link_path_oid(&oid, bad[i]), BERTH_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bare_digest),
		cmocka_unit_test(test_surrounding_whitespace),
		cmocka_unit_test(test_sha512_with_newline),
		cmocka_unit_test(test_not_a_link),
		cmocka_unit_test(test_digest_of_a_link_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

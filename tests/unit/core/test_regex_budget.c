/* berth_regex_too_complex: bounded repetitions that would make regcomp allocate without bound;
 * berth_regex_compile_whole, built on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/util.h"

static void test_real_patterns_pass(void **state)
{
	(void)state;
	assert_false(berth_regex_too_complex("^https?://"));
	assert_false(berth_regex_too_complex("^https?://([^/]+\\.)*example\\.com/"));
	assert_false(berth_regex_too_complex("^https://[a-z]{1,63}\\.example\\.com/[a-z0-9]{1,10}/"));
	assert_false(berth_regex_too_complex("a\\{1000\\}")); /* escaped braces are literals */
}

static void test_nested_counts_refused(void **state)
{
	(void)state;
	assert_true(berth_regex_too_complex("(a{1000}){1000}"));
	assert_true(berth_regex_too_complex("((x{99}){99}){99}"));
	assert_true(berth_regex_too_complex("(abcdefghij){99999}"));
	assert_true(berth_regex_too_complex("a{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}{1,}"));
	/* Stacked operators double the tree each time (found by the config fuzzer). */
	assert_true(berth_regex_too_complex("^x: +++++++++++++++++++++++++++ y"));
	assert_false(berth_regex_too_complex("[a-z]+/[a-z]+/[a-z]+/[a-z]+/[a-z]+/[a-z]+/[a-z]+/[a-z]+"));
	char long_pattern[5000];
	memset(long_pattern, 'a', sizeof(long_pattern) - 1);
	long_pattern[sizeof(long_pattern) - 1] = '\0';
	assert_true(berth_regex_too_complex(long_pattern));
}

/* berth_regex_compile_whole: the policies' patterns match whole strings; "" matches all. */
static void test_compile_whole(void **state)
{
	(void)state;
	regex_t re;
	assert_int_equal(berth_regex_compile_whole(&re, "team/.*|solo"), 0);
	assert_int_equal(regexec(&re, "team/a", 0, NULL, 0), 0);
	assert_int_equal(regexec(&re, "solo", 0, NULL, 0), 0);
	assert_int_not_equal(regexec(&re, "solo2", 0, NULL, 0), 0);
	assert_int_not_equal(regexec(&re, "x/team/a", 0, NULL, 0), 0);
	regfree(&re);
	assert_int_equal(berth_regex_compile_whole(&re, ""), 0);
	assert_int_equal(regexec(&re, "anything/at/all", 0, NULL, 0), 0);
	regfree(&re);
	assert_int_equal(berth_regex_compile_whole(&re, "v[0-9"), BERTH_EINVALID);
	assert_int_equal(berth_regex_compile_whole(&re, "((a{1,100}){1,100}){1,100}"), BERTH_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_patterns_pass),
		cmocka_unit_test(test_nested_counts_refused),
		cmocka_unit_test(test_compile_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* berth_regex_too_complex: bounded repetitions that would make regcomp allocate without bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_patterns_pass),
		cmocka_unit_test(test_nested_counts_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

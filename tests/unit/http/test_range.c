/* Range and Content-Range header parsers, and berth_parse_u64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/range.h"

static void expect_range(const char *header, uint64_t size, uint64_t want_start,
			 uint64_t want_len)
{
	uint64_t start = 0;
	uint64_t len = 0;
	int rc = berth_range_parse(header, size, &start, &len);

	if (rc != 0 || start != want_start || len != want_len)
		fail_msg("Range '%s' size %llu: rc %d start %llu len %llu, want start %llu len %llu",
			 header, (unsigned long long)size, rc, (unsigned long long)start,
			 (unsigned long long)len, (unsigned long long)want_start,
			 (unsigned long long)want_len);
}

static void expect_range_rc(const char *header, uint64_t size, int want_rc)
{
	uint64_t start = 12345;
	uint64_t len = 67890;
	int rc = berth_range_parse(header, size, &start, &len);

	if (rc != want_rc)
		fail_msg("Range '%s' size %llu: rc %d, want %d", header ? header : "(null)",
			 (unsigned long long)size, rc, want_rc);
	assert_true(start == 12345 && len == 67890);
}

static void test_range_simple(void **state)
{
	(void)state;
	expect_range("bytes=0-", 100, 0, 100);
	expect_range("bytes=0-0", 100, 0, 1);
	expect_range("bytes=0-99", 100, 0, 100);
	expect_range("bytes=10-19", 100, 10, 10);
	expect_range("bytes=99-99", 100, 99, 1);
	expect_range("bytes=99-", 100, 99, 1);
	expect_range("bytes=5-5", 6, 5, 1);
}

static void test_range_clamped(void **state)
{
	(void)state;
	expect_range("bytes=0-100", 100, 0, 100);
	expect_range("bytes=50-1000000", 100, 50, 50);
	expect_range("bytes=0-18446744073709551615", 100, 0, 100);
	expect_range("bytes=0-18446744073709551615", UINT64_MAX, 0, UINT64_MAX);
	expect_range("bytes=1-", UINT64_MAX, 1, UINT64_MAX - 1);
}

static void test_range_suffix(void **state)
{
	(void)state;
	expect_range("bytes=-5", 100, 95, 5);
	expect_range("bytes=-1", 100, 99, 1);
	expect_range("bytes=-100", 100, 0, 100);
	expect_range("bytes=-101", 100, 0, 100);
	expect_range("bytes=-18446744073709551615", 3, 0, 3);
	expect_range("bytes=-5", 1, 0, 1);
}

static void test_range_whitespace_and_case(void **state)
{
	(void)state;
	expect_range(" bytes = 1 - 3 ", 10, 1, 3);
	expect_range("\tbytes=\t-2\t", 10, 8, 2);
	expect_range("bytes= 4-", 10, 4, 6);
	expect_range("BYTES=0-1", 10, 0, 2);
	expect_range("Bytes=0-1", 10, 0, 2);
	expect_range("bytes=007-008", 10, 7, 2);
}

static void test_range_unsatisfiable(void **state)
{
	(void)state;
	expect_range_rc("bytes=100-", 100, BERTH_ERANGE);
	expect_range_rc("bytes=100-200", 100, BERTH_ERANGE);
	expect_range_rc("bytes=1000-2000", 100, BERTH_ERANGE);
	expect_range_rc("bytes=18446744073709551615-", 100, BERTH_ERANGE);
	expect_range_rc("bytes=-0", 100, BERTH_ERANGE);
	expect_range_rc("bytes=0-", 0, BERTH_ERANGE);
	expect_range_rc("bytes=0-0", 0, BERTH_ERANGE);
	expect_range_rc("bytes=-5", 0, BERTH_ERANGE);
	expect_range_rc("bytes=-0", 0, BERTH_ERANGE);
}

static void test_range_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"bytes",
		"bytes=-",
		"bytes=5",
		"bytes=5-2",
		"bytes=--5",
		"bytes=--1",
		"bytes=1-2-3",
		"bytes=-5-",
		"bytes=-5-10",
		"items=0-1",
		"byte=0-1",
		"bytes0-1",
		"bytes:0-1",
		"bytes=a-b",
		"bytes=0x10-",
		"bytes=+1-2",
		"bytes=1-+2",
		"bytes=1-2x",
		"bytes=1 2-3",
		"bytes=18446744073709551616-",
		"bytes=0-18446744073709551616",
		"bytes=-18446744073709551616",
		"bytes=99999999999999999999999999-",
		"bytes=0-1\n",
		"bytes=\xc3\xa9-1",
		"bytes=1-\xff",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_range_rc(bad[i], 100, BERTH_EINVALID);
	/* several well-formed ranges, or none: not malformed, but not served either */
	static const char *const lists[] = {
		"bytes=", "bytes =", "bytes=0-0,2-3", "bytes=0-0, 2-3", "bytes=0-1,", "bytes=,0-1",
		"bytes=0-0,1-1,2-2", "bytes=-5, 1-, 3-4",
	};
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		expect_range_rc(lists[i], 100, BERTH_EUNSUPPORTED);
	/* a list with one malformed element is malformed */
	expect_range_rc("bytes=0-1,5-2", 100, BERTH_EINVALID);
	expect_range_rc("bytes=0-1,--1", 100, BERTH_EINVALID);
	expect_range_rc("bytes=0-1,1-2-3", 100, BERTH_EINVALID);
	/* malformed wins over an empty resource */
	expect_range_rc("bytes=5-2", 0, BERTH_EINVALID);
	expect_range_rc("items=0-1", 0, BERTH_EINVALID);
	expect_range_rc(NULL, 100, BERTH_EINVALID);
}

static void expect_content_range(const char *header, uint64_t want_start, uint64_t want_end)
{
	uint64_t start = 0;
	uint64_t end = 0;
	int rc = berth_content_range_parse(header, &start, &end);

	if (rc != 0 || start != want_start || end != want_end)
		fail_msg("Content-Range '%s': rc %d start %llu end %llu, want %llu-%llu", header, rc,
			 (unsigned long long)start, (unsigned long long)end,
			 (unsigned long long)want_start, (unsigned long long)want_end);
}

static void test_content_range_valid(void **state)
{
	(void)state;
	expect_content_range("0-99", 0, 99);
	expect_content_range("0-0", 0, 0);
	expect_content_range("100-199", 100, 199);
	expect_content_range("5-5", 5, 5);
	expect_content_range("bytes 0-99/100", 0, 99);
	expect_content_range("bytes 0-99/1000", 0, 99);
	expect_content_range("bytes 0-99/*", 0, 99);
	expect_content_range("bytes 0-99", 0, 99);
	expect_content_range("bytes=0-99", 0, 99);
	expect_content_range("Bytes 10-19/20", 10, 19);
	expect_content_range(" 0 - 99 ", 0, 99);
	expect_content_range("bytes  0-99 / * ", 0, 99);
	expect_content_range("bytes= 1-2", 1, 2);
	expect_content_range("0-18446744073709551615", 0, UINT64_MAX);
	expect_content_range("18446744073709551615-18446744073709551615", UINT64_MAX, UINT64_MAX);
}

static void test_content_range_invalid(void **state)
{
	static const char *const bad[] = {
		"",
		"5-4",
		"-1-2",
		"1--2",
		"-",
		"0-",
		"-0",
		"0",
		"a-b",
		"0-99/100",
		"bytes=0-99/100",
		"bytes 0-99/99",
		"bytes 0-99/0",
		"bytes 0-99/",
		"bytes 0-99/**",
		"bytes 0-99/-1",
		"bytes 0-99/100x",
		"bytes0-99",
		"bytes:0-99",
		"bytes */100",
		"items 0-99",
		"0-99,100-199",
		"0-99 100",
		"+0-99",
		"0-+99",
		"0-18446744073709551616",
		"18446744073709551616-18446744073709551617",
		"0-9\xc3\xa9",
		"0-99\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t start = 7;
		uint64_t end = 8;

		if (berth_content_range_parse(bad[i], &start, &end) != BERTH_EINVALID)
			fail_msg("expected BERTH_EINVALID for Content-Range '%s'", bad[i]);
		assert_true(start == 7 && end == 8);
	}
	{
		uint64_t start;
		uint64_t end;

		assert_int_equal(berth_content_range_parse(NULL, &start, &end), BERTH_EINVALID);
	}
}

static void test_parse_u64(void **state)
{
	static const char *const bad[] = {
		"", " ", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0", "1e3", "18446744073709551616",
		"18446744073709551620", "99999999999999999999", "\xc3\xa9",
	};
	uint64_t v = 0;
	size_t i;

	(void)state;
	assert_int_equal(berth_parse_u64("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(berth_parse_u64("42", &v), 0);
	assert_true(v == 42);
	assert_int_equal(berth_parse_u64("0007", &v), 0);
	assert_true(v == 7);
	assert_int_equal(berth_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(berth_parse_u64("18446744073709551610", &v), 0);
	assert_true(v == UINT64_MAX - 5);
	assert_int_equal(berth_parse_u64("1", NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 99;
		if (berth_parse_u64(bad[i], &v) != BERTH_EINVALID)
			fail_msg("expected BERTH_EINVALID for '%s'", bad[i]);
		assert_true(v == 99);
	}
	assert_int_equal(berth_parse_u64(NULL, &v), BERTH_EINVALID);
}

/* Very long inputs: long runs of digits overflow, long runs of blanks are still parsed. */
static void test_long_inputs(void **state)
{
	size_t n = 1 << 20;
	char *s = malloc(n + 16);
	uint64_t a;
	uint64_t b;

	(void)state;
	assert_non_null(s);
	memset(s, '0', n);
	s[n] = '\0';
	assert_int_equal(berth_parse_u64(s, &a), 0);
	assert_true(a == 0);
	s[n - 1] = '9';
	assert_int_equal(berth_parse_u64(s, &a), 0);
	assert_true(a == 9);
	memset(s, '9', n);
	assert_int_equal(berth_parse_u64(s, &a), BERTH_EINVALID);
	assert_int_equal(berth_content_range_parse(s, &a, &b), BERTH_EINVALID);

	memcpy(s, "bytes=", 6);
	memset(s + 6, ' ', n - 6);
	memcpy(s + n, "0-1", 4);
	assert_int_equal(berth_range_parse(s, 10, &a, &b), 0);
	assert_true(a == 0 && b == 2);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_simple),
		cmocka_unit_test(test_range_clamped),
		cmocka_unit_test(test_range_suffix),
		cmocka_unit_test(test_range_whitespace_and_case),
		cmocka_unit_test(test_range_unsatisfiable),
		cmocka_unit_test(test_range_malformed),
		cmocka_unit_test(test_content_range_valid),
		cmocka_unit_test(test_content_range_invalid),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_long_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

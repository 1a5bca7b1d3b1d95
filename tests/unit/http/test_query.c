/* Query strings as berth decodes them (instead of libmicrohttpd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/query.h"

static void test_query_first_value_wins(void **state)
{
	(void)state;
	struct berth_query *q = berth_query_new("n=1&last=a&n=2");
	assert_string_equal(berth_query_get(q, "n"), "1");
	assert_string_equal(berth_query_get(q, "last"), "a");
	assert_null(berth_query_get(q, "digest"));
	assert_null(berth_query_get(q, "N"));
	berth_query_free(q);
}

static void test_query_decoding(void **state)
{
	(void)state;
	struct berth_query *q = berth_query_new("a=x+y%2B%41&b%3D=1&c=%00%zz%4&d=&e&%6e=2");
	assert_string_equal(berth_query_get(q, "a"), "x y+A");
	assert_string_equal(berth_query_get(q, "b="), "1");
	assert_string_equal(berth_query_get(q, "c"), "%00%zz%4"); /* %00 and bad escapes kept */
	assert_string_equal(berth_query_get(q, "d"), "");
	assert_null(berth_query_get(q, "e"));                     /* no '=': no value */
	assert_string_equal(berth_query_get(q, "n"), "2");
	berth_query_free(q);
}

static void test_query_edges(void **state)
{
	(void)state;
	struct berth_query *q = berth_query_new("");
	assert_null(berth_query_get(q, ""));
	berth_query_free(q);
	q = berth_query_new("&&=v&&k=1&");
	assert_string_equal(berth_query_get(q, ""), "v");
	assert_string_equal(berth_query_get(q, "k"), "1");
	berth_query_free(q);
	assert_null(berth_query_get(NULL, "n"));
	berth_query_free(NULL);
}

static void test_query_many_arguments(void **state)
{
	(void)state;
	size_t n = 20000, len = n * 12 + 16;
	char *raw = malloc(len), *w = raw;
	for (size_t i = 0; i < n; i++)
		w += snprintf(w, len - (size_t)(w - raw), "a%zu=v&", i);
	snprintf(w, len - (size_t)(w - raw), "last=z");
	struct berth_query *q = berth_query_new(raw);
	free(raw);
	assert_string_equal(berth_query_get(q, "a19999"), "v");
	assert_string_equal(berth_query_get(q, "last"), "z");
	berth_query_free(q);
}

static void test_unescape_in_place(void **state)
{
	(void)state;
	char s[] = "/v2/a%2Fb/%00/%C3%A9%";
	assert_int_equal(berth_http_unescape(s), strlen("/v2/a/b/%00/\xc3\xa9%"));
	assert_string_equal(s, "/v2/a/b/%00/\xc3\xa9%");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_first_value_wins),
		cmocka_unit_test(test_query_decoding),
		cmocka_unit_test(test_query_edges),
		cmocka_unit_test(test_query_many_arguments),
		cmocka_unit_test(test_unescape_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

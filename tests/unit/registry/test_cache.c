/* The bounded cache: values come back as stored, replacing and removing work, the entry count
 * and the value bytes stay within their bounds, and an entry in use survives eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/cache.h"

static int hits(struct berth_cache *c, int n)
{
	int found = 0;
	char key[32];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		found += berth_cache_get(NULL, NULL, NULL, c, key);
	}
	return found;
}

static void test_get_put_replace_remove(void **state)
{
	(void)state;
	struct berth_cache *c = berth_cache_new(64, 1 << 20);
	uint64_t num = 0;
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(berth_cache_get(&num, &data, &len, c, "a"), 0);
	berth_cache_put(c, "a", 7, "seven", 5);
	assert_int_equal(berth_cache_get(&num, &data, &len, c, "a"), 1);
	assert_int_equal(num, 7);
	assert_int_equal(len, 5);
	assert_string_equal(data, "seven");
	free(data);
	berth_cache_put(c, "a", 8, NULL, 0); /* replaced: a number only */
	assert_int_equal(berth_cache_get(&num, &data, &len, c, "a"), 1);
	assert_int_equal(num, 8);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);
	char buf[8];
	assert_int_equal(berth_cache_get_into(c, "a", &num, buf, sizeof(buf), &len), 1);
	assert_int_equal(num, 8);
	assert_string_equal(buf, "");
	berth_cache_put(c, "b", 9, "1234567", 7); /* fits in 8 with its NUL */
	assert_int_equal(berth_cache_get_into(c, "b", &num, buf, sizeof(buf), &len), 1);
	assert_int_equal(len, 7);
	assert_string_equal(buf, "1234567");
	berth_cache_put(c, "b", 10, "12345678", 8); /* does not: a miss */
	assert_int_equal(berth_cache_get_into(c, "b", &num, buf, sizeof(buf), &len), 0);
	assert_int_equal(num, 9);
	berth_cache_remove(c, "a");
	assert_int_equal(berth_cache_get(&num, NULL, NULL, c, "a"), 0);
	berth_cache_free(c);
}

static void test_bounded_and_recent_kept(void **state)
{
	(void)state;
	struct berth_cache *c = berth_cache_new(64, 1 << 20);
	char key[32];
	/* "key-0" is used after every insert: always the most recent in its shard, never evicted */
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		berth_cache_put(c, key, (uint64_t)i, NULL, 0);
		assert_int_equal(berth_cache_get(NULL, NULL, NULL, c, "key-0"), 1);
	}
	assert_true(hits(c, 10000) <= 64);
	assert_int_equal(berth_cache_get(NULL, NULL, NULL, c, "key-9999"), 1); /* the last put */
	berth_cache_free(c);

	/* bytes: 1 MiB in all holds at most 1024 values of 1 KiB */
	c = berth_cache_new(100000, 1 << 20);
	char value[1024];
	memset(value, 'v', sizeof(value));
	for (int i = 0; i < 4000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		berth_cache_put(c, key, 0, value, sizeof(value));
	}
	int kept = hits(c, 4000);
	assert_true(kept <= 1024);
	assert_true(kept > 0);
	/* a value over an eighth of a shard's share (1 MiB / 16 / 8 = 8 KiB) is not kept */
	static char big[(8 << 10) + 2];
	berth_cache_put(c, "big", 0, big, sizeof(big));
	assert_int_equal(berth_cache_get(NULL, NULL, NULL, c, "big"), 0);
	berth_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_put_replace_remove),
		cmocka_unit_test(test_bounded_and_recent_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

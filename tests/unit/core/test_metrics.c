/* Histograms: observations land in the right bucket, the buckets are rendered cumulative, and
 * the +Inf bucket equals _count in every rendering, even while other threads observe (a scrape
 * once saw 3 in +Inf and 4 in _count). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/metrics.h"

/* The value of the series line starting with prefix in text, or -1. */
static long long series(const char *text, const char *prefix)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return atoll(strchr(p, ' ') + 1);
	}
	return -1;
}

static void test_buckets_are_cumulative(void **state)
{
	static struct berth_histogram h;
	struct berth_buf out = BERTH_BUF_INIT(1 << 20);

	berth_histogram_observe(&h, 50 * 1000);            /* 50 us: first bucket (0.0001) */
	berth_histogram_observe(&h, 2 * 1000 * 1000);      /* 2 ms: le 0.0025 */
	berth_histogram_observe(&h, 7ull * 1000000000ull); /* 7 s: only +Inf */
	berth_metrics_render_histogram(&out, "t", "route=\"x\"", &h);
	assert_int_equal(series(out.data, "t_bucket{route=\"x\",le=\"0.0001\"}"), 1);
	assert_int_equal(series(out.data, "t_bucket{route=\"x\",le=\"0.001\"}"), 1);
	assert_int_equal(series(out.data, "t_bucket{route=\"x\",le=\"0.0025\"}"), 2);
	assert_int_equal(series(out.data, "t_bucket{route=\"x\",le=\"5\"}"), 2);
	assert_int_equal(series(out.data, "t_bucket{route=\"x\",le=\"+Inf\"}"), 3);
	assert_int_equal(series(out.data, "t_count{route=\"x\"}"), 3);
	assert_non_null(strstr(out.data, "t_sum{route=\"x\"} 7.002050000\n"));
	berth_buf_release(&out);
}

static struct berth_histogram busy;
static _Atomic int stop;

static void *observer(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; !stop; i++)
		berth_histogram_observe(&busy, (i % 7) * 1000 * 1000);
	return NULL;
}

static void test_count_matches_inf_bucket_under_load(void **state)
{
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, observer, NULL), 0);
	for (int round = 0; round < 2000; round++) {
		struct berth_buf out = BERTH_BUF_INIT(1 << 20);
		berth_metrics_render_histogram(&out, "b", "", &busy);
		long long inf = series(out.data, "b_bucket{le=\"+Inf\"}"), count = series(out.data, "b_count{}");
		berth_buf_release(&out);
		if (inf != count)
			fail_msg("round %d: +Inf %lld, _count %lld", round, inf, count);
	}
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_are_cumulative),
		cmocka_unit_test(test_count_matches_inf_bucket_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

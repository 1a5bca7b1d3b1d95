/*
 * storage/awsips.c: AWS's ip-ranges.json read as Distribution's s3filter.go reads it (IPv4
 * and IPv6 prefixes, the regions asked for, unparseable prefixes skipped), addresses matched
 * against it (IPv4-mapped IPv6 as IPv4), a bad document keeping the ranges, and the updater
 * thread stopped at once by free. The fetch itself is covered by
 * tests/api/test_storage_middleware.py (a local ip-ranges server).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "core/err.h"
#include "storage/awsips.h"

static const char doc[] =
	"{\"syncToken\":\"1\",\"prefixes\":["
	"{\"ip_prefix\":\"3.5.140.0/22\",\"region\":\"ap-northeast-2\",\"service\":\"AMAZON\"},"
	"{\"ip_prefix\":\"52.94.76.0/22\",\"region\":\"us-west-2\",\"service\":\"AMAZON\"},"
	"{\"ip_prefix\":\"10.1.2.3/33\",\"region\":\"us-west-2\",\"service\":\"AMAZON\"},"
	"{\"ip_prefix\":\"13.34.37.64/27\",\"region\":\"US-EAST-1\",\"service\":\"AMAZON\"}],"
	"\"ipv6_prefixes\":["
	"{\"ipv6_prefix\":\"2600:1f14::/35\",\"region\":\"us-west-2\",\"service\":\"AMAZON\"},"
	"{\"ipv6_prefix\":\"2a05:d07a:a000::/40\",\"region\":\"eu-south-1\",\"service\":\"AMAZON\"}]}";

static void test_every_region(void **state)
{
	(void)state;
	struct berth_awsips *ips = NULL;
	assert_int_equal(berth_awsips_new(&ips, "", 3600 * 1000, NULL), 0);
	assert_int_equal(berth_awsips_contains(ips, "52.94.76.1"), 0); /* nothing fetched yet */
	assert_int_equal(berth_awsips_load(ips, doc, strlen(doc)), 0);
	assert_int_equal(berth_awsips_contains(ips, "52.94.76.1"), 1);
	assert_int_equal(berth_awsips_contains(ips, "52.94.79.255"), 1);
	assert_int_equal(berth_awsips_contains(ips, "52.94.80.0"), 0);
	assert_int_equal(berth_awsips_contains(ips, "3.5.143.7"), 1);
	assert_int_equal(berth_awsips_contains(ips, "13.34.37.95"), 1);
	assert_int_equal(berth_awsips_contains(ips, "13.34.37.96"), 0);
	assert_int_equal(berth_awsips_contains(ips, "::ffff:52.94.76.9"), 1);
	assert_int_equal(berth_awsips_contains(ips, "2600:1f14:1fff::1"), 1);
	assert_int_equal(berth_awsips_contains(ips, "2600:1f14:2000::1"), 0);
	assert_int_equal(berth_awsips_contains(ips, "2a05:d07a:a0ff:ffff::"), 1);
	assert_int_equal(berth_awsips_contains(ips, "10.1.2.3"), 0); /* its prefix did not parse */
	assert_int_equal(berth_awsips_contains(ips, "127.0.0.1"), 0);
	assert_int_equal(berth_awsips_contains(ips, "not an address"), 0);
	assert_int_equal(berth_awsips_contains(ips, "52.94.76.1:443"), 0);
	/* not a ranges document: the ranges stay */
	assert_int_equal(berth_awsips_load(ips, "<html>", 6), BERTH_EINVALID);
	assert_int_equal(berth_awsips_load(ips, "{\"prefixes\":3}", 14), BERTH_EINVALID);
	assert_int_equal(berth_awsips_contains(ips, "52.94.76.1"), 1);
	/* a new document replaces them */
	const char *other = "{\"prefixes\":[{\"ip_prefix\":\"127.0.0.0/8\",\"region\":\"local\"}]}";
	assert_int_equal(berth_awsips_load(ips, other, strlen(other)), 0);
	assert_int_equal(berth_awsips_contains(ips, "52.94.76.1"), 0);
	assert_int_equal(berth_awsips_contains(ips, "127.1.2.3"), 1);
	berth_awsips_free(ips);
}

static void test_regions(void **state)
{
	(void)state;
	struct berth_awsips *ips = NULL;
	assert_int_equal(berth_awsips_new(&ips, "", 3600 * 1000, " us-east-1 ,US-West-2"), 0);
	assert_int_equal(berth_awsips_load(ips, doc, strlen(doc)), 0);
	assert_int_equal(berth_awsips_contains(ips, "52.94.76.1"), 1);       /* us-west-2 */
	assert_int_equal(berth_awsips_contains(ips, "13.34.37.65"), 1);      /* US-EAST-1 */
	assert_int_equal(berth_awsips_contains(ips, "2600:1f14::1"), 1);     /* us-west-2 */
	assert_int_equal(berth_awsips_contains(ips, "3.5.140.1"), 0);        /* ap-northeast-2 */
	assert_int_equal(berth_awsips_contains(ips, "2a05:d07a:a000::1"), 0); /* eu-south-1 */
	berth_awsips_free(ips);
}

/* The updater sleeps for hours between fetches; free wakes and joins it at once. */
static void test_free_stops_the_updater(void **state)
{
	(void)state;
	struct berth_awsips *ips = NULL;
	struct timespec t0, t1;
	assert_int_equal(berth_awsips_new(&ips, "", 12LL * 3600 * 1000, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	berth_awsips_free(ips);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 60); /* not the 12 hours it would sleep */
	berth_awsips_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_region),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_free_stops_the_updater),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

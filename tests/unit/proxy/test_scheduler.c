/* The pull-through cache's TTL scheduler (proxy/scheduler.h): Distribution's
 * scheduler-state.json read at start and written back, entries expired through the callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/err.h"
#include "proxy/scheduler.h"
#include "storage/storage.h"

struct expired {
	int n;
	int type[8];
	char name[8][64];
	char digest[8][80];
};

static int on_expire(enum berth_sched_type type, const char *name, const char *digest, void *payload)
{
	struct expired *e = payload;
	if (e->n < 8) {
		e->type[e->n] = type;
		snprintf(e->name[e->n], sizeof(e->name[0]), "%s", name);
		snprintf(e->digest[e->n], sizeof(e->digest[0]), "%s", digest);
	}
	e->n++;
	return 0;
}

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void test_times(void **state)
{
	(void)state;
	int64_t ms;
	char out[48];
	assert_int_equal(berth_scheduler_parse_time(&ms, "2026-12-06T08:49:22Z"), 0);
	assert_int_equal(ms, 1796546962000LL);
	/* Go's RFC3339Nano, and a local zone as Distribution writes it outside UTC */
	assert_int_equal(berth_scheduler_parse_time(&ms, "2026-12-06T08:49:22.123456789Z"), 0);
	assert_int_equal(ms, 1796546962123LL);
	assert_int_equal(berth_scheduler_parse_time(&ms, "2026-12-06T09:49:22.5+01:00"), 0);
	assert_int_equal(ms, 1796546962500LL);
	assert_int_equal(berth_scheduler_parse_time(&ms, "2026-12-06 08:49:22Z"), BERTH_EINVALID);
	assert_int_equal(berth_scheduler_parse_time(&ms, "2026-12-06T08:49:22"), BERTH_EINVALID);
	assert_int_equal(berth_scheduler_parse_time(&ms, "2026-12-06T08:49:22Zjunk"), BERTH_EINVALID);
	berth_scheduler_format_time(out, sizeof(out), 1796546962120LL);
	assert_string_equal(out, "2026-12-06T08:49:22.12Z");
	berth_scheduler_format_time(out, sizeof(out), 1796546962000LL);
	assert_string_equal(out, "2026-12-06T08:49:22Z");
}

static json_t *state_of(struct berth_storage_driver *d)
{
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(berth_storage_get_content(&data, &len, d, "/scheduler-state.json", 1 << 20), 0);
	json_t *doc = json_loadb(data, len, 0, NULL);
	free(data);
	assert_non_null(doc);
	return doc;
}

/* A state Distribution wrote: one entry long past (expired at start), one far ahead (kept). */
static void test_reads_distributions_state_and_expires(void **state)
{
	(void)state;
	struct berth_storage_driver *d = NULL;
	struct berth_scheduler *s = NULL;
	struct expired e = { 0 };
	const char *text = "{\"library/alpine@" D1 "\":{\"Key\":\"library/alpine@" D1 "\","
			   "\"ExpiryData\":\"2020-01-02T03:04:05.678901234+02:00\",\"EntryType\":0},"
			   "\"library/alpine@" D2 "\":{\"Key\":\"library/alpine@" D2 "\","
			   "\"ExpiryData\":\"2999-01-01T00:00:00Z\",\"EntryType\":1}}";
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_storage_put_content(d, "/scheduler-state.json", text, strlen(text)), 0);
	assert_int_equal(berth_scheduler_start(&s, d, on_expire, &e), 0);
	assert_int_equal(berth_scheduler_count(s), 2);
	for (int i = 0; i < 300 && e.n == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.type[0], BERTH_SCHED_BLOB);
	assert_string_equal(e.name[0], "library/alpine");
	assert_string_equal(e.digest[0], D1);
	assert_int_equal(berth_scheduler_count(s), 1);
	berth_scheduler_stop(s);

	json_t *doc = state_of(d);
	assert_int_equal(json_object_size(doc), 1);
	json_t *entry = json_object_get(doc, "library/alpine@" D2);
	assert_string_equal(json_string_value(json_object_get(entry, "Key")), "library/alpine@" D2);
	assert_string_equal(json_string_value(json_object_get(entry, "ExpiryData")), "2999-01-01T00:00:00Z");
	assert_int_equal(json_integer_value(json_object_get(entry, "EntryType")), 1);
	json_decref(doc);
	d->free(d);
}

/* Entries added survive a restart; a renewed entry keeps one key. */
static void test_added_entries_survive_restart(void **state)
{
	(void)state;
	struct berth_storage_driver *d = NULL;
	struct berth_scheduler *s = NULL;
	struct expired e = { 0 };
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_scheduler_start(&s, d, on_expire, &e), 0);
	assert_int_equal(berth_scheduler_count(s), 0);
	berth_scheduler_add(s, BERTH_SCHED_MANIFEST, "a/b", D1, 3600 * 1000);
	berth_scheduler_add(s, BERTH_SCHED_BLOB, "a/b", D2, 3600 * 1000);
	berth_scheduler_add(s, BERTH_SCHED_BLOB, "a/b", D2, 7200 * 1000);
	assert_int_equal(berth_scheduler_count(s), 2);
	berth_scheduler_stop(s);

	s = NULL;
	assert_int_equal(berth_scheduler_start(&s, d, on_expire, &e), 0);
	assert_int_equal(berth_scheduler_count(s), 2);
	berth_scheduler_add(s, BERTH_SCHED_BLOB, "a/c", D2, 100);
	for (int i = 0; i < 300 && e.n == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.name[0], "a/c");
	berth_scheduler_stop(s);
	json_t *doc = state_of(d);
	assert_int_equal(json_object_size(doc), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "a/b@" D1), "EntryType")), 1);
	json_decref(doc);
	d->free(d);
}

#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

/* Two instances on one storage (several berths on one bucket): what each fetched is in the
 * state once both saved, whichever saved last; a later expiry written by the other wins. */
static void test_instances_on_one_storage_merge_their_entries(void **state)
{
	(void)state;
	struct berth_storage_driver *d = NULL;
	struct berth_scheduler *a = NULL, *b = NULL;
	struct expired ea = { 0 }, eb = { 0 };
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_scheduler_start(&a, d, on_expire, &ea), 0);
	assert_int_equal(berth_scheduler_start(&b, d, on_expire, &eb), 0);
	berth_scheduler_add(a, BERTH_SCHED_BLOB, "a/x", D1, 3600 * 1000);
	berth_scheduler_add(a, BERTH_SCHED_BLOB, "a/x", D3, 3600 * 1000);
	berth_scheduler_add(b, BERTH_SCHED_MANIFEST, "a/x", D2, 3600 * 1000);
	berth_scheduler_add(b, BERTH_SCHED_BLOB, "a/x", D3, 7200 * 1000); /* fetched again there */
	berth_scheduler_stop(a);
	berth_scheduler_stop(b); /* the last to save: it writes what a saved too */
	json_t *doc = state_of(d);
	assert_int_equal(json_object_size(doc), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "a/x@" D1), "EntryType")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "a/x@" D2), "EntryType")), 1);
	int64_t d3 = 0, now = (int64_t)time(NULL) * 1000;
	assert_int_equal(berth_scheduler_parse_time(
				 &d3, json_string_value(json_object_get(json_object_get(doc, "a/x@" D3), "ExpiryData"))),
			 0);
	assert_true(d3 > now + 3600 * 1000);
	json_decref(doc);

	/* And one starting later takes in all three. */
	assert_int_equal(berth_scheduler_start(&a, d, on_expire, &ea), 0);
	assert_int_equal(berth_scheduler_count(a), 3);
	berth_scheduler_stop(a);
	assert_int_equal(ea.n + eb.n, 0);
	d->free(d);
}

/* An entry expired here is left out of the state although the stored one still holds it: it is
 * expired once, not taken back and expired again. */
static void test_expired_entry_is_not_taken_back(void **state)
{
	(void)state;
	struct berth_storage_driver *d = NULL;
	struct berth_scheduler *s = NULL;
	struct expired e = { 0 };
	const char *text = "{\"a/y@" D1 "\":{\"Key\":\"a/y@" D1 "\",\"ExpiryData\":\"2020-01-01T00:00:00Z\","
			   "\"EntryType\":0}}";
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_storage_put_content(d, "/scheduler-state.json", text, strlen(text)), 0);
	assert_int_equal(berth_scheduler_start(&s, d, on_expire, &e), 0);
	for (int i = 0; i < 300 && e.n == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(e.n, 1);
	berth_scheduler_add(s, BERTH_SCHED_BLOB, "a/y", D2, 3600 * 1000);
	berth_scheduler_stop(s);
	assert_int_equal(e.n, 1);
	json_t *doc = state_of(d);
	assert_int_equal(json_object_size(doc), 1);
	assert_non_null(json_object_get(doc, "a/y@" D2));
	json_decref(doc);
	d->free(d);
}

static void test_refuses_a_state_that_does_not_parse(void **state)
{
	(void)state;
	struct berth_storage_driver *d = NULL;
	struct berth_scheduler *s = NULL;

	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_storage_put_content(d, "/scheduler-state.json", "{not json", 9), 0);
	assert_int_equal(berth_scheduler_start(&s, d, on_expire, NULL), BERTH_EINVALID);
	assert_null(s);
	assert_non_null(strstr(berth_err_reason(BERTH_EINVALID), "scheduler-state.json"));
	d->free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_reads_distributions_state_and_expires),
		cmocka_unit_test(test_added_entries_survive_restart),
		cmocka_unit_test(test_instances_on_one_storage_merge_their_entries),
		cmocka_unit_test(test_expired_entry_is_not_taken_back),
		cmocka_unit_test(test_refuses_a_state_that_does_not_parse),
	};
	return cmocka_run_group_tests_name("proxy TTL scheduler", tests, NULL, NULL);
}

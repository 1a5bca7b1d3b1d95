/*
 * An event's JSON: Distribution's fields in its order, a fresh UUID id and an RFC 3339 UTC
 * timestamp each time, size and length together, empty optional fields left out (a tag delete
 * has only repository and tag), references as given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/util.h"
#include "notify/notify.h"

static json_t *event(const struct berth_notify_event *ev)
{
	char *text = berth_notify_event_json(NULL, ev);
	assert_non_null(text);
	json_t *o = json_loads(text, 0, NULL);
	assert_non_null(o);
	free(text);
	return o;
}

static void test_event__manifest_push(void **state)
{
	(void)state;
	struct berth_notify_event ev = {
		.action = "push", .media_type = "application/vnd.oci.image.manifest.v1+json",
		.digest = "sha256:aa", .size = 42, .repository = "a/b",
		.url = "http://h/v2/a/b/manifests/sha256:aa", .tag = "v1",
		.references_json = "[{\"mediaType\":\"x\",\"digest\":\"sha256:cc\",\"size\":1}]",
		.request_id = "r1", .request_addr = "127.0.0.1:5", .request_host = "h",
		.request_method = "PUT", .request_useragent = "ua", .actor = "alice",
	};
	char *text = berth_notify_event_json(NULL, &ev);
	assert_non_null(text);
	/* Distribution's field order */
	const char *order[] = { "\"id\"", "\"timestamp\"", "\"action\"", "\"target\"", "\"mediaType\"",
				"\"size\"", "\"digest\"", "\"length\"", "\"repository\"", "\"url\"", "\"tag\"",
				"\"references\"", "\"request\"", "\"actor\"", "\"source\"" };
	const char *at = text;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *p = strstr(at, order[i]);
		assert_non_null(p);
		at = p;
	}
	free(text);
	json_t *o = event(&ev);
	assert_true(berth_uuid_valid(json_string_value(json_object_get(o, "id"))));
	const char *ts = json_string_value(json_object_get(o, "timestamp"));
	assert_int_equal(ts[4], '-');
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[strlen(ts) - 1], 'Z');
	json_t *t = json_object_get(o, "target");
	assert_int_equal(json_integer_value(json_object_get(t, "size")), 42);
	assert_int_equal(json_integer_value(json_object_get(t, "length")), 42);
	assert_string_equal(json_string_value(json_object_get(t, "tag")), "v1");
	assert_null(json_object_get(t, "fromRepository"));
	assert_int_equal(json_array_size(json_object_get(t, "references")), 1);
	json_t *r = json_object_get(o, "request");
	assert_string_equal(json_string_value(json_object_get(r, "method")), "PUT");
	assert_string_equal(json_string_value(json_object_get(r, "useragent")), "ua");
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "actor"), "name")), "alice");
	json_t *o2 = event(&ev); /* a new id each time */
	assert_string_not_equal(json_string_value(json_object_get(o, "id")),
				json_string_value(json_object_get(o2, "id")));
	json_decref(o2);
	json_decref(o);
}

static void test_event__tag_delete_has_only_repository_and_tag(void **state)
{
	(void)state;
	struct berth_notify_event ev = {
		.action = "delete", .repository = "a/b", .tag = "v1", .size = -1,
		.request_id = "r2", .request_method = "DELETE", .actor = "",
	};
	json_t *o = event(&ev);
	json_t *t = json_object_get(o, "target");
	assert_int_equal(json_object_size(t), 2);
	assert_string_equal(json_string_value(json_object_get(t, "tag")), "v1");
	assert_int_equal(json_object_size(json_object_get(o, "actor")), 0);
	/* request.useragent and request.id are always there, addr and host only when known */
	json_t *r = json_object_get(o, "request");
	assert_non_null(json_object_get(r, "useragent"));
	assert_null(json_object_get(r, "addr"));
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event__manifest_push),
		cmocka_unit_test(test_event__tag_delete_has_only_repository_and_tag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

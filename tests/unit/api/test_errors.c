/* api/errors.c: the one table from condition to HTTP status and OCI error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "api/api_int.h"
#include "core/err.h"

/* Every condition has a row: a status an HTTP client reads as an error and a code the
 * distribution spec (or Distribution) defines. */
static void test_every_condition_has_a_row(void **state)
{
	static const char *const spec_codes[] = {
		"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
		"MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
		"NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
		"TOOMANYREQUESTS", "RANGE_INVALID", "PAGINATION_NUMBER_INVALID", "TAG_INVALID",
		"UNKNOWN", "UNAVAILABLE",
	};
	(void)state;
	for (int c = 0; c < BERTH_API_N_CONDITIONS; c++) {
		unsigned status = berth_api_condition_status((enum berth_api_condition)c);
		const char *code = berth_api_condition_code((enum berth_api_condition)c);
		assert_true(status >= 400 && status < 600);
		assert_non_null(code);
		int known = 0;
		for (size_t i = 0; i < sizeof(spec_codes) / sizeof(spec_codes[0]); i++)
			known |= strcmp(code, spec_codes[i]) == 0;
		assert_true(known);
	}
}

/* Rows where Distribution's answer is not the obvious one. */
static void test_distribution_answers(void **state)
{
	(void)state;
	assert_int_equal(berth_api_condition_status(BERTH_API_MANIFEST_TOO_LARGE), 413);
	assert_string_equal(berth_api_condition_code(BERTH_API_MANIFEST_TOO_LARGE), "MANIFEST_INVALID");
	assert_int_equal(berth_api_condition_status(BERTH_API_MANIFEST_BLOB_UNKNOWN), 400);
	assert_int_equal(berth_api_condition_status(BERTH_API_UPLOAD_BUSY), 409);
	assert_string_equal(berth_api_condition_code(BERTH_API_UPLOAD_BUSY), "BLOB_UPLOAD_INVALID");
	assert_int_equal(berth_api_condition_status(BERTH_API_UNSUPPORTED), 405);
	assert_int_equal(berth_api_condition_status(BERTH_API_NO_ENDPOINT), 404);
	assert_string_equal(berth_api_condition_code(BERTH_API_NO_ENDPOINT), "UNSUPPORTED");
	assert_int_equal(berth_api_condition_status(BERTH_API_STORAGE_FULL), 507);
	assert_string_equal(berth_api_condition_code(BERTH_API_STORAGE_FULL), "UNKNOWN");
	/* the policies' refusals (immutable tags), the web interface's token forwarding */
	assert_int_equal(berth_api_condition_status(BERTH_API_DENIED), 403);
	assert_string_equal(berth_api_condition_code(BERTH_API_DENIED), "DENIED");
	assert_int_equal(berth_api_condition_status(BERTH_API_TOO_MANY_REQUESTS), 429);
	assert_string_equal(berth_api_condition_code(BERTH_API_TOO_MANY_REQUESTS), "TOOMANYREQUESTS");
	assert_int_equal(berth_api_condition_status(BERTH_API_ARGUMENT_INVALID), 400);
	assert_string_equal(berth_api_condition_code(BERTH_API_ARGUMENT_INVALID), "UNSUPPORTED");
	/* out of range: internal, never a read past the table */
	assert_int_equal(berth_api_condition_status(BERTH_API_N_CONDITIONS), 500);
}

static void test_storage_conditions(void **state)
{
	(void)state;
	assert_int_equal(berth_api_storage_condition(BERTH_ENOSPC), BERTH_API_STORAGE_FULL);
	/* S3 unreachable or busy after every retry: 503 UNAVAILABLE, not a 500. */
	assert_int_equal(berth_api_storage_condition(BERTH_EUNAVAILABLE), BERTH_API_UNAVAILABLE);
	assert_int_equal(berth_api_condition_status(BERTH_API_UNAVAILABLE), 503);
	assert_string_equal(berth_api_condition_code(BERTH_API_UNAVAILABLE), "UNAVAILABLE");
	assert_int_equal(berth_api_storage_condition(BERTH_ERROR), BERTH_API_INTERNAL);
	assert_int_equal(berth_api_storage_condition(BERTH_ENOTFOUND), BERTH_API_INTERNAL);
}

/* A failure recorded while a body arrives is kept on the request, apart from the thread's
 * failure, which other requests served on the thread in between overwrite; only the first is
 * kept. */
static void test_body_failure_kept_on_the_request(void **state)
{
	(void)state;
	struct berth_api_request ar = { 0 };
	struct berth_request req = { .data = &ar };
	berth_err_set(BERTH_EINVALID, "an earlier failure of this request");
	berth_api_fail(&req, BERTH_API_MANIFEST_TOO_LARGE, "manifest too large");
	assert_true(ar.failed);
	assert_int_equal(ar.fail_condition, BERTH_API_MANIFEST_TOO_LARGE);
	assert_string_equal(ar.failure.message, "manifest too large");
	/* another request on this thread */
	berth_err_set(BERTH_EDENIED, "tag v1 is immutable");
	berth_api_fail(&req, BERTH_API_RANGE_INVALID, "a second failure");
	assert_int_equal(ar.fail_condition, BERTH_API_MANIFEST_TOO_LARGE);
	assert_string_equal(ar.failure.message, "manifest too large");
	assert_string_equal(berth_err_message(BERTH_EDENIED), "tag v1 is immutable");
	/* no message: the condition's own */
	struct berth_api_request ar2 = { 0 };
	struct berth_request req2 = { .data = &ar2 };
	berth_api_fail(&req2, BERTH_API_RANGE_INVALID, NULL);
	assert_string_equal(ar2.failure.message, "invalid content range");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_condition_has_a_row),
		cmocka_unit_test(test_distribution_answers),
		cmocka_unit_test(test_storage_conditions),
		cmocka_unit_test(test_body_failure_kept_on_the_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

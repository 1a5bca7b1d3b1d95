/*
 * storage.s3.* as berth_storage_open reads them: every key berth does not implement, and every
 * bad value, is refused at start-up in one line naming the key; accepted options reach the
 * bucket check (here against a port nobody listens on, so no S3 server is needed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/err.h"
#include "storage/storage.h"

static struct berth_config cfg; /* large: not on the stack */

/* A valid storage.s3 section, against 127.0.0.1:1 (nothing listens there). */
static void base_config(void)
{
	berth_config_release(&cfg);
	berth_config_defaults(&cfg);
	cfg.storage = BERTH_STORAGE_S3;
	strcpy(cfg.s3.accesskey, "AK");
	strcpy(cfg.s3.secretkey, "SK");
	strcpy(cfg.s3.region, "us-east-1");
	strcpy(cfg.s3.bucket, "b");
	strcpy(cfg.s3.regionendpoint, "http://127.0.0.1:1");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
}

/* berth_storage_open fails with rc and a message containing want. */
static void expect_refused(int rc, const char *want)
{
	struct berth_storage_driver *d = (struct berth_storage_driver *)1;
	assert_int_equal(berth_storage_open(&d, &cfg), rc);
	assert_null(d);
	const char *msg = berth_err_message(rc);
	if (strstr(msg, want) == NULL)
		fail_msg("message '%s' does not contain '%s'", msg, want);
	assert_null(strchr(msg, '\n'));
}

#define SET(field, value) snprintf(cfg.s3.field, sizeof(cfg.s3.field), "%s", value)

static void test_required_keys(void **state)
{
	base_config();
	SET(bucket, "");
	expect_refused(BERTH_EINVALID, "storage.s3.bucket is required");
	base_config();
	SET(region, "");
	expect_refused(BERTH_EINVALID, "storage.s3.region is required");
	base_config();
	SET(accesskey, "");
	expect_refused(BERTH_EINVALID, "storage.s3: no credentials");
}

static void test_unimplemented_keys_refused_by_name(void **state)
{
	static const struct { size_t off, size; const char *value, *want; } cases[] = {
#define CASE(f, v, w) { offsetof(struct berth_s3_config, f), sizeof(((struct berth_s3_config *)0)->f), v, w }
		CASE(usedualstack, "true", "storage.s3.usedualstack is not supported"),
		CASE(accelerate, "true", "storage.s3.accelerate is not supported"),
		CASE(usefipsendpoint, "true", "storage.s3.usefipsendpoint is not supported"),
		CASE(loglevel, "debug", "storage.s3.loglevel is not supported"),
		CASE(redirectendpoint, "https://cdn.example", "storage.s3.redirectendpoint is not supported"),
		CASE(multipartcopymaxconcurrency, "8", "storage.s3.multipartcopymaxconcurrency is not supported"),
		CASE(v4auth, "false", "storage.s3.v4auth: only true is supported"),
		CASE(chunksize, "1000", "storage.s3.chunksize: expected bytes"),
		CASE(chunksize, "10MB", "storage.s3.chunksize: expected bytes"),
		CASE(multipartcopychunksize, "5242879", "storage.s3.multipartcopychunksize"),
		CASE(multipartcopythresholdsize, "-1", "storage.s3.multipartcopythresholdsize"),
		CASE(secure, "maybe", "storage.s3.secure: expected a boolean"),
		CASE(skipverify, "2", "storage.s3.skipverify: expected a boolean"),
		CASE(forcepathstyle, "yesno", "storage.s3.forcepathstyle: expected a boolean"),
		CASE(keyid, "k", "storage.s3.keyid needs storage.s3.encrypt: true"),
		CASE(storageclass, "COLD", "storage.s3.storageclass: unknown storage class 'COLD'"),
		CASE(objectacl, "everyone", "storage.s3.objectacl: unknown canned ACL 'everyone'"),
		CASE(rootdirectory, "/a b", "storage.s3.rootdirectory"),
		CASE(rootdirectory, "/a/../b", "storage.s3.rootdirectory"),
		CASE(regionendpoint, "ftp://host", "storage.s3.regionendpoint: only http:// and https://"),
#undef CASE
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		base_config();
		snprintf((char *)&cfg.s3 + cases[i].off, cases[i].size, "%s", cases[i].value);
		expect_refused(BERTH_EINVALID, cases[i].want);
	}
}

/* Values that ask for what berth does anyway pass the checks and reach the bucket check; so do
 * credentials from the environment. */
static void test_accepted_reach_the_bucket(void **state)
{
	base_config();
	SET(usedualstack, "false");
	SET(accelerate, "false");
	SET(loglevel, "off");
	SET(multipartcopymaxconcurrency, "1");
	SET(encrypt, "true");
	SET(keyid, "arn:key");
	SET(storageclass, "NONE");
	SET(objectacl, "bucket-owner-full-control");
	SET(chunksize, "5242880");
	SET(rootdirectory, "/registry/");
	SET(accesskey, "");
	SET(secretkey, "");
	setenv("AWS_ACCESS_KEY_ID", "envak", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsk", 1);
	expect_refused(BERTH_EUNAVAILABLE, "cannot list bucket 'b' at http://127.0.0.1:1 (unreachable)");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	/* No scheme: secure decides. */
	base_config();
	SET(regionendpoint, "127.0.0.1:1");
	SET(secure, "false");
	expect_refused(BERTH_EUNAVAILABLE, "at http://127.0.0.1:1 ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_required_keys),
		cmocka_unit_test(test_unimplemented_keys_refused_by_name),
		cmocka_unit_test(test_accepted_reach_the_bucket),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	berth_config_release(&cfg);
	return failed;
}

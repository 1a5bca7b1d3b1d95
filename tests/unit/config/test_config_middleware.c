/*
 * middleware.* of config.yml (issue 17): middleware.storage's cloudfront and redirect read
 * with every option Distribution gives them (from the file and from REGISTRY_MIDDLEWARE_*),
 * and everything else refused naming the key: registry and repository middleware, rewrite,
 * unknown names, `disabled: true`, missing options, bad values, cloudfront off S3, two
 * middleware; options that change nothing warn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "helpers/config.h"
#include "helpers/tmproot.h"

static char tmpdir[256];
static char errpath[512];
static char errbuf[1024];
static char warnings[4096];

#define S3 "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n"
#define FS "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\n"
#define CF "middleware:\n  storage:\n    - name: cloudfront\n      options:\n"
#define CF_REQUIRED "        baseurl: https://d1.cloudfront.net/\n        privatekey: /k.pem\n" \
		    "        keypairid: K2JCJMDEHXQW5F\n"
#define RD "middleware:\n  storage:\n    - name: redirect\n      options:\n"

static int setup(void **state)
{
	(void)state;
	if (berth_test_root_new(tmpdir, sizeof(tmpdir), "config-mw") < 0)
		return -1;
	snprintf(errpath, sizeof(errpath), "%s/stderr", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return berth_test_root_remove(tmpdir);
}

/* Loads text; what the load printed on stderr (its warnings) lands in `warnings`. */
static int load(struct berth_config *cfg, const char *text)
{
	fflush(stderr);
	int saved = dup(2);
	FILE *e = fopen(errpath, "w+");
	assert_non_null(e);
	dup2(fileno(e), 2);
	int rc = berth_test_config_load(cfg, tmpdir, text, errbuf, sizeof(errbuf));
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(e);
	size_t n = fread(warnings, 1, sizeof(warnings) - 1, e);
	warnings[n] = '\0';
	fclose(e);
	return rc;
}

static void refused(const char *text, const char *want)
{
	struct berth_config cfg;
	assert_int_equal(load(&cfg, text), -1);
	berth_config_release(&cfg);
	if (!strstr(errbuf, want))
		fail_msg("'%s' does not contain '%s'", errbuf, want);
}

static void test_cloudfront_options_are_read(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, S3 CF CF_REQUIRED "        duration: 3000s\n        ipfilteredby: ' None '\n"), 0);
	assert_string_equal(warnings, "");
	assert_int_equal(cfg.n_storage_middleware, 1);
	const struct berth_storage_middleware *m = &cfg.storage_middleware[0];
	assert_string_equal(m->name, "cloudfront");
	assert_string_equal(m->baseurl, "https://d1.cloudfront.net/");
	assert_string_equal(m->privatekey, "/k.pem");
	assert_string_equal(m->keypairid, "K2JCJMDEHXQW5F");
	assert_int_equal(m->duration_ms, 3000 * 1000);
	assert_int_equal(m->disabled, 0);
	berth_config_release(&cfg);

	/* duration unset: -1 (storage/middleware.c gives Distribution's 20m) */
	assert_int_equal(load(&cfg, S3 CF CF_REQUIRED "        disabled: false\n"), 0);
	assert_int_equal(cfg.storage_middleware[0].duration_ms, -1);
	berth_config_release(&cfg);
}

static void test_redirect_options_are_read(void **state)
{
	struct berth_config cfg;
	(void)state;
	/* redirect takes any driver, as in Distribution */
	assert_int_equal(load(&cfg, FS RD "        baseurl: https://cdn.example.com/x\n"), 0);
	assert_string_equal(warnings, "");
	assert_int_equal(cfg.n_storage_middleware, 1);
	assert_string_equal(cfg.storage_middleware[0].name, "redirect");
	assert_string_equal(cfg.storage_middleware[0].baseurl, "https://cdn.example.com/x");
	berth_config_release(&cfg);
	/* an empty list, or none at all, is no middleware */
	assert_int_equal(load(&cfg, FS "middleware:\n  storage: []\n  registry: []\n  repository: ~\n"), 0);
	assert_int_equal(cfg.n_storage_middleware, 0);
	berth_config_release(&cfg);
}

static void test_from_the_environment(void **state)
{
	struct berth_config cfg;
	(void)state;
	setenv("REGISTRY_MIDDLEWARE_STORAGE_0_OPTIONS_BASEURL", "https://env.example.com", 1);
	assert_int_equal(load(&cfg, FS RD "        baseurl: https://file.example.com\n"), 0);
	unsetenv("REGISTRY_MIDDLEWARE_STORAGE_0_OPTIONS_BASEURL");
	assert_string_equal(cfg.storage_middleware[0].baseurl, "https://env.example.com");
	berth_config_release(&cfg);
	setenv("REGISTRY_MIDDLEWARE_STORAGE", "[{name: redirect, options: {baseurl: 'http://e'}}]", 1);
	assert_int_equal(load(&cfg, FS), 0);
	unsetenv("REGISTRY_MIDDLEWARE_STORAGE");
	assert_int_equal(cfg.n_storage_middleware, 1);
	assert_string_equal(cfg.storage_middleware[0].baseurl, "http://e");
	berth_config_release(&cfg);
}

static void test_other_middleware_refused_by_name(void **state)
{
	(void)state;
	refused(FS "middleware:\n  registry:\n    - name: ARegistryMiddleware\n", "middleware.registry: refused:");
	refused(FS "middleware:\n  repository:\n    - name: ARepositoryMiddleware\n      options: {foo: bar}\n",
		"middleware.repository: refused:");
	refused(FS "middleware:\n  storage:\n    - name: rewrite\n      options: {scheme: https, host: x}\n",
		"middleware.storage[0].name: refused: storage middleware 'rewrite' (Distribution 3) is not "
		"supported");
	assert_string_equal(warnings, ""); /* its options are known: the refusal is the one message */
	refused(FS "middleware:\n  storage:\n    - name: CloudFront\n      options: {baseurl: x}\n",
		"middleware.storage[0].name: refused: unknown storage middleware 'CloudFront'");
	refused(FS "middleware:\n  storage:\n    - options: {baseurl: https://x}\n",
		"middleware.storage[0].name: required");
}

static void test_disabled_refused(void **state)
{
	(void)state;
	refused(FS RD "        baseurl: https://x\n      disabled: true\n",
		"middleware.storage[0].disabled: refused: Distribution ignores this flag and applies "
		"middleware 'redirect' anyway");
}

static void test_required_options(void **state)
{
	(void)state;
	refused(FS RD "        foo: bar\n", "middleware.storage[0].options.baseurl: required");
	refused(S3 CF "        privatekey: /k.pem\n        keypairid: K\n",
		"middleware.storage[0].options.baseurl: required");
	refused(S3 CF "        baseurl: https://d1\n        keypairid: K\n",
		"middleware.storage[0].options.privatekey: required");
	refused(S3 CF "        baseurl: https://d1\n        privatekey: /k.pem\n",
		"middleware.storage[0].options.keypairid: required");
}

static void test_cloudfront_values(void **state)
{
	(void)state;
	refused(S3 CF CF_REQUIRED "        duration: 3000\n",
		"middleware.storage[0].options.duration: expected a duration with a unit");
	refused(S3 CF CF_REQUIRED "        duration: 0s\n",
		"middleware.storage[0].options.duration: expected a duration of more than 0");
	refused(S3 CF CF_REQUIRED "        duration: soon\n", "middleware.storage[0].options.duration");
	refused(S3 CF CF_REQUIRED "        updatefrequency: 12\n", "middleware.storage[0].options.updatefrequency");
	refused(S3 CF CF_REQUIRED "        ipfilteredby: awsregion\n",
		"middleware.storage[0].options.awsregion: required with ipfilteredby awsregion");
	refused(S3 CF CF_REQUIRED "        ipfilteredby: all\n",
		"middleware.storage[0].options.ipfilteredby: expected none, aws or awsregion, got 'all'");
}

/* ipfilteredby is read as Distribution reads it: trimmed, any case, "" is none. */
static void test_ipfilteredby(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, S3 CF CF_REQUIRED "        ipfilteredby: ' AWSRegion'\n"
					 "        awsregion: us-east-1, EU-west-1\n        updatefrequency: 1h\n"
					 "        iprangesurl: http://127.0.0.1:1/ip-ranges.json\n"), 0);
	assert_string_equal(warnings, "");
	const struct berth_storage_middleware *m = &cfg.storage_middleware[0];
	assert_string_equal(m->ipfilteredby, "awsregion");
	assert_string_equal(m->awsregion, "us-east-1, EU-west-1");
	assert_int_equal(m->updatefrequency_ms, 3600 * 1000);
	assert_string_equal(m->iprangesurl, "http://127.0.0.1:1/ip-ranges.json");
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, S3 CF CF_REQUIRED "        ipfilteredby: aws\n        awsregion: us-east-1\n"), 0);
	assert_string_equal(cfg.storage_middleware[0].ipfilteredby, "aws");
	assert_non_null(strstr(warnings, "middleware.storage[0].options.awsregion: changes nothing with "
					 "ipfilteredby aws"));
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, S3 CF CF_REQUIRED "        ipfilteredby: ''\n"), 0);
	assert_string_equal(cfg.storage_middleware[0].ipfilteredby, "none");
	berth_config_release(&cfg);
}

static void test_cloudfront_needs_s3(void **state)
{
	(void)state;
	refused(FS CF CF_REQUIRED, "middleware.storage[0].name: refused: cloudfront signs URLs of storage.s3 "
				   "objects only");
	refused("version: 0.1\nstorage:\n  inmemory:\n" CF CF_REQUIRED, "middleware.storage[0].name: refused:");
}

static void test_one_middleware_only(void **state)
{
	(void)state;
	refused(FS RD "        baseurl: https://a\n    - name: redirect\n      options: {baseurl: https://b}\n",
		"middleware.storage[1]: refused: only one storage middleware is supported");
}

/* What changes nothing is said, once per option, naming it. */
static void test_unused_options_warn(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, S3 CF CF_REQUIRED "        awsregion: us-east-1\n        updatefrenquency: 1h\n"
					 "        iprangesurl: https://ip-ranges.example/ip.json\n"), 0);
	berth_config_release(&cfg);
	assert_non_null(strstr(warnings, "middleware.storage[0].options.updatefrenquency: deprecated, use "
					 "updatefrequency"));
	assert_non_null(strstr(warnings, "middleware.storage[0].options.awsregion: changes nothing with "
					 "ipfilteredby none"));
	assert_non_null(strstr(warnings, "middleware.storage[0].options.updatefrequency: changes nothing"));
	assert_non_null(strstr(warnings, "middleware.storage[0].options.iprangesurl: changes nothing"));

	assert_int_equal(load(&cfg, FS RD "        baseurl: https://x\n        privatekey: /k.pem\n"
					 "        duration: 1m\n"), 0);
	berth_config_release(&cfg);
	assert_non_null(strstr(warnings, "middleware.storage[0].options.privatekey: not an option of redirect"));
	assert_non_null(strstr(warnings, "middleware.storage[0].options.duration: not an option of redirect"));

	assert_int_equal(load(&cfg, FS "  redirect:\n    disable: true\n" RD "        baseurl: https://x\n"), 0);
	berth_config_release(&cfg);
	assert_non_null(strstr(warnings, "middleware.storage: changes nothing with storage.redirect.disable: true"));

	assert_int_equal(load(&cfg, FS RD "        baseurl: https://x\n        host: cdn\n"), 0);
	berth_config_release(&cfg);
	assert_non_null(strstr(warnings, "middleware.storage[0].options.scheme, host, trimpathprefix: options of "
					 "rewrite, ignored"));

	assert_int_equal(load(&cfg, FS RD "        baseurl: https://x\n        color: blue\n"), 0);
	berth_config_release(&cfg);
	assert_non_null(strstr(warnings, "unknown key middleware.storage[0].options.color"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cloudfront_options_are_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_options_are_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_the_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_middleware_refused_by_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disabled_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cloudfront_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipfilteredby, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cloudfront_needs_s3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_middleware_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unused_options_warn, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

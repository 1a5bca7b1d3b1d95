/* WWW-Authenticate challenges as registries and token servers send them (proxy/upstream.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/err.h"
#include "proxy/upstream.h"

static void test_bearer_with_every_parameter(void **state)
{
	(void)state;
	struct berth_challenge ch;
	assert_int_equal(berth_challenge_parse(&ch, "Bearer realm=\"https://auth.docker.io/token\","
						    "service=\"registry.docker.io\",scope=\"repository:library/alpine:pull\""),
			 0);
	assert_string_equal(ch.scheme, "bearer");
	assert_string_equal(ch.realm, "https://auth.docker.io/token");
	assert_string_equal(ch.service, "registry.docker.io");
	assert_string_equal(ch.scope, "repository:library/alpine:pull");
}

static void test_spacing_case_tokens_and_escapes(void **state)
{
	(void)state;
	struct berth_challenge ch;
	assert_int_equal(berth_challenge_parse(&ch, "  BEARER  Realm = \"http://127.0.0.1:1/t\" , service=plain,"
						    " error=\"invalid_token\", scope=\"a\\\"b\""),
			 0);
	assert_string_equal(ch.scheme, "bearer");
	assert_string_equal(ch.realm, "http://127.0.0.1:1/t");
	assert_string_equal(ch.service, "plain");
	assert_string_equal(ch.scope, "a\"b");
}

static void test_basic(void **state)
{
	(void)state;
	struct berth_challenge ch;
	assert_int_equal(berth_challenge_parse(&ch, "Basic realm=\"Registry Realm\""), 0);
	assert_string_equal(ch.scheme, "basic");
	assert_string_equal(ch.realm, "Registry Realm");
	assert_string_equal(ch.service, "");
}

static void test_refused(void **state)
{
	(void)state;
	struct berth_challenge ch;
	assert_int_equal(berth_challenge_parse(&ch, ""), BERTH_EINVALID);
	assert_int_equal(berth_challenge_parse(&ch, NULL), BERTH_EINVALID);
	/* a Bearer challenge without a realm names nowhere to ask */
	assert_int_equal(berth_challenge_parse(&ch, "Bearer service=\"x\""), BERTH_EINVALID);
	/* an unterminated quote ends with the header, never past it */
	assert_int_equal(berth_challenge_parse(&ch, "Bearer realm=\"http://a"), 0);
	assert_string_equal(ch.realm, "http://a");
}

/* A remote URL that is not http(s) is refused with its reason as the thread's failure. */
static void test_upstream_refuses_other_schemes(void **state)
{
	(void)state;
	struct berth_upstream *u = NULL;
	struct berth_upstream_config cfg = { .url = "ftp://mirror.example" };
	assert_int_equal(berth_upstream_new(&u, &cfg), BERTH_EINVALID);
	assert_null(u);
	assert_string_equal(berth_err_reason(BERTH_EINVALID), "'ftp://mirror.example' is not an http or https URL");
}

/* The one URL host reader (the upstream's Basic host, the token realm's, Docker Hub's): the host
 * as the URL spells it, never its user information; the port only when asked and named. */
static void test_url_host(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		int with_port;
		const char *host;
	} cases[] = {
		{ "https://Registry-1.Docker.io/v2/", 0, "Registry-1.Docker.io" },
		{ "https://registry-1.docker.io:443/v2/", 0, "registry-1.docker.io" },
		{ "https://registry-1.docker.io:443/v2/", 1, "registry-1.docker.io:443" },
		{ "http://127.0.0.1:5000", 1, "127.0.0.1:5000" },
		{ "http://auth.example/token?service=x", 1, "auth.example" },
		{ "https://user:secret@docker.io/", 0, "docker.io" },
		{ "http://[::1]:8080/", 0, "[::1]" },
		{ "", 1, "" },
		{ "not a url", 0, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *host = berth_upstream_url_host(cases[i].url, cases[i].with_port);
		assert_string_equal(host, cases[i].host);
		free(host);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer_with_every_parameter),
		cmocka_unit_test(test_spacing_case_tokens_and_escapes),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_upstream_refuses_other_schemes),
		cmocka_unit_test(test_url_host),
	};
	return cmocka_run_group_tests_name("proxy challenges", tests, NULL, NULL);
}

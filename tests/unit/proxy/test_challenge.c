/* WWW-Authenticate challenges as registries and token servers send them (proxy/upstream.h). */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpsl.h>

#include "core/err.h"
#include "core/util.h"
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

/* Whose token realm gets the upstream's credentials: Distribution's realmAllowed, but the same
 * host on another port is trusted whatever the host (berth's token servers run beside their
 * registry on 127.0.0.1). Case by case, with the system's public suffix list. */
static void test_realm_trust_boundary(void **state)
{
	(void)state;
	static const struct {
		const char *remote, *realm;
		int trusted;
	} cases[] = {
		/* the same host */
		{ "https://registry.example.com", "https://registry.example.com/token", 1 },
		{ "https://Registry.Example.COM:5000", "https://registry.example.com:5000/token", 1 },
		{ "http://127.0.0.1:5000", "http://127.0.0.1:5000/token", 1 },
		/* the same host, another port: trusted (Distribution refuses it for an IP or localhost) */
		{ "http://127.0.0.1:5000", "http://127.0.0.1:5001/token", 1 },
		{ "http://localhost:5000", "http://LOCALHOST:6000/token", 1 },
		{ "http://[::1]:5000", "http://[::1]:5001/token", 1 },
		{ "https://registry.example.com", "https://registry.example.com:8443/token", 1 },
		/* another IP, localhost, or a name beside an IP */
		{ "http://127.0.0.1:5000", "http://127.0.0.2:5000/token", 0 },
		{ "http://10.0.0.1", "http://10.0.0.2/token", 0 },
		{ "http://localhost:5000", "http://127.0.0.1:5000/token", 0 },
		{ "http://registry.example.com", "http://localhost/token", 0 },
		{ "http://registry.example.com", "http://192.0.2.7/token", 0 },
		{ "http://192.0.2.7", "http://auth.example.com/token", 0 },
		{ "http://[::1]:5000", "http://[::2]:5000/token", 0 },
		{ "http://registry.example.com", "http://0x7f.1/token", 0 }, /* 127.0.0.1 */
		/* the same registrable domain */
		{ "https://registry-1.docker.io", "https://auth.docker.io/token", 1 },
		{ "https://ghcr.io", "https://ghcr.io/token", 1 },
		{ "https://quay.io", "https://quay.io/v2/auth", 1 },
		{ "https://a.example.co.uk", "https://b.example.co.uk/token", 1 },
		{ "https://registry.example.com", "https://AUTH.Example.com/token", 1 },
		/* another one */
		{ "https://example.com", "https://evil.com/token", 0 },
		{ "https://registry.example.com", "https://example.com.evil.net/token", 0 },
		{ "https://example.co.uk", "https://other.co.uk/token", 0 },
		{ "https://ghcr.io", "https://evil.io/token", 0 },
		{ "https://alice.github.io", "https://bob.github.io/token", 0 }, /* a private suffix */
		/* no registrable domain on either side: refused (Go compares "" with "" and trusts) */
		{ "http://registry:5000", "http://auth:5001/token", 0 },
		{ "https://co.uk", "https://uk/token", 0 },
		{ "https://registry.example.com", "https://auth.example.com./token", 0 },
		/* a realm without a host, or no URL at all */
		{ "https://registry.example.com", "/token", 0 },
		{ "https://registry.example.com", "registry.example.com/token", 0 },
		{ "https://registry.example.com", "", 0 },
		{ "https://registry.example.com", NULL, 0 },
		{ "https://registry.example.com", "http:///token", 0 },
		/* an https upstream's credentials do not go to an http realm, even on its own host */
		{ "https://registry.example.com", "http://registry.example.com/token", 0 },
		{ "https://registry-1.docker.io", "http://auth.docker.io/token", 0 },
		{ "https://registry.example.com", "HTTPS://auth.example.com/token", 1 },
		{ "http://registry.example.com", "https://auth.example.com/token", 1 },
		/* judged on the host libcurl connects to, not on how the realm is written */
		{ "https://registry.example.com", "https://registry.example.com@evil.com/token", 0 },
		{ "https://registry.example.com", "https://registry.example.com%2eevil.com/token", 0 },
		{ "https://registry.example.com", "https://evil.com\\@registry.example.com/token", 1 },
		{ "http://127.0.0.1:5000", "http://127.1/token", 1 },
		/* a host not in ASCII: "evil.com" U+FF0F (a full-width slash) ".docker.io" */
		{ "https://registry-1.docker.io", "https://evil.com\xef\xbc\x8f.docker.io/token", 0 },
		{ "https://registry.example.com", "https://auth.example.com\xef\xbc\x8f/token", 0 },
	};
	psl_ctx_t *psl = psl_latest(NULL);
	assert_non_null(psl);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = berth_challenge_realm_trusted(psl, cases[i].remote, cases[i].realm, NULL);
		if (got != cases[i].trusted)
			fail_msg("remote %s, realm %s: %s, want %s", cases[i].remote,
				 cases[i].realm ? cases[i].realm : "(null)", got ? "trusted" : "refused",
				 cases[i].trusted ? "trusted" : "refused");
	}
	/* The warning says why: an http realm is not refused for its host. */
	const char *why = NULL;
	assert_int_equal(berth_challenge_realm_trusted(psl, "https://registry.example.com", "http://registry.example.com/t", &why), 0);
	assert_non_null(strstr(why, "not https"));
	assert_int_equal(berth_challenge_realm_trusted(psl, "https://registry.example.com", "https://evil.com/t", &why), 0);
	assert_non_null(strstr(why, "outside the upstream's trust boundary"));
	assert_int_equal(berth_challenge_realm_trusted(psl, "https://registry.example.com", "https://auth.example.com/t", &why), 1);
	assert_null(why);
	/* Without a public suffix list only the same host is trusted. */
	assert_int_equal(berth_challenge_realm_trusted(NULL, "https://registry-1.docker.io", "https://auth.docker.io/t", NULL), 0);
	assert_int_equal(berth_challenge_realm_trusted(NULL, "http://127.0.0.1:1", "http://127.0.0.1:2/t", NULL), 1);
	psl_free(psl);
}

/* Where libcurl converts a name not in ASCII (IDNA, under a UTF-8 locale: berth runs in "C",
 * where it cannot and the realm is refused), the converted host is judged: the full-width slash
 * becomes a '/', which no host name holds. */
static void test_realm_trust_converted_host(void **state)
{
	(void)state;
	char *before = berth_strdup(setlocale(LC_ALL, NULL));
	if (!setlocale(LC_ALL, "C.UTF-8")) {
		free(before);
		skip();
	}
	psl_ctx_t *psl = psl_latest(NULL);
	assert_non_null(psl);
	int full_width_slash = berth_challenge_realm_trusted(psl, "https://registry-1.docker.io",
							     "https://evil.com\xef\xbc\x8f.docker.io/token", NULL);
	/* "b\xc3\xbccher.de" is xn--bcher-kva.de; a full-width "e" is an "e" */
	int idn = berth_challenge_realm_trusted(psl, "https://b\xc3\xbc" "cher.de", "https://xn--bcher-kva.de/token", NULL);
	int full_width_e = berth_challenge_realm_trusted(psl, "https://registry.example.com",
							 "https://auth.\xef\xbd\x85xample.com/token", NULL);
	setlocale(LC_ALL, before);
	free(before);
	psl_free(psl);
	assert_int_equal(full_width_slash, 0);
	assert_int_equal(idn, 1);
	assert_int_equal(full_width_e, 1);
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
		cmocka_unit_test(test_realm_trust_boundary),
		cmocka_unit_test(test_realm_trust_converted_host),
	};
	return cmocka_run_group_tests_name("proxy challenges", tests, NULL, NULL);
}

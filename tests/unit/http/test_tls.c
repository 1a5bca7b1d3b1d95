/*
 * http.tls.minimumtls and http.tls.ciphersuites as GnuTLS priority strings (http/tls.c): the
 * versions enabled, the TLS 1.2 suites GnuTLS then offers (exactly those listed), and the lists
 * refused because GnuTLS would widen them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "config/config.h"
#include "core/err.h"
#include "http/tls.h"

/* The TLS <= 1.2 suites the priority string enables, as GnuTLS names them, ';'-separated. */
static void tls12_suites(char *out, size_t n, const char *prio)
{
	gnutls_priority_t p;
	assert_int_equal(gnutls_priority_init(&p, prio, NULL), 0);
	out[0] = '\0';
	for (unsigned idx = 0;; idx++) {
		unsigned sidx;
		int r = gnutls_priority_get_cipher_suite_index(p, idx, &sidx);
		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (r < 0)
			continue;
		gnutls_protocol_t minver;
		const char *name = gnutls_cipher_suite_info(sidx, NULL, NULL, NULL, NULL, &minver);
		if (name && minver < GNUTLS_TLS1_3) {
			strncat(out, name, n - strlen(out) - 1);
			strncat(out, ";", n - strlen(out) - 1);
		}
	}
	gnutls_priority_deinit(p);
}

static void test_default_is_distributions_list(void **state)
{
	(void)state;
	char *prio = NULL, suites[2048];
	assert_int_equal(berth_tls_priorities(&prio, BERTH_TLS_1_2, NULL, 0), 0);
	assert_non_null(strstr(prio, "+VERS-TLS1.3"));
	assert_non_null(strstr(prio, "+VERS-TLS1.2"));
	assert_null(strstr(prio, "+VERS-TLS1.1"));
	tls12_suites(suites, sizeof(suites), prio);
	/* ECDHE with AES-GCM and ChaCha20 only: no CBC, no RSA key exchange */
	assert_non_null(strstr(suites, "TLS_ECDHE_ECDSA_AES_128_GCM_SHA256;"));
	assert_non_null(strstr(suites, "TLS_ECDHE_RSA_CHACHA20_POLY1305;"));
	assert_null(strstr(suites, "CBC"));
	assert_null(strstr(suites, "TLS_RSA_"));
	free(prio);
}

static void test_list_is_exact(void **state)
{
	(void)state;
	const char *list[] = { "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" };
	char *prio = NULL, suites[2048];
	assert_int_equal(berth_tls_priorities(&prio, BERTH_TLS_1_2, list, 2), 0);
	tls12_suites(suites, sizeof(suites), prio);
	assert_string_equal(suites, "TLS_ECDHE_RSA_AES_128_GCM_SHA256;TLS_ECDHE_RSA_AES_256_GCM_SHA384;");
	free(prio);
}

static void test_minimum_versions(void **state)
{
	(void)state;
	char *prio = NULL;
	assert_int_equal(berth_tls_priorities(&prio, BERTH_TLS_1_3, NULL, 0), 0);
	assert_string_equal(prio, "NORMAL:-VERS-ALL:+VERS-TLS1.3");
	free(prio);
	assert_int_equal(berth_tls_priorities(&prio, BERTH_TLS_1_0, NULL, 0), 0);
	assert_non_null(strstr(prio, "+VERS-TLS1.0"));
	assert_non_null(strstr(prio, "+VERS-TLS1.1"));
	free(prio);
}

static void test_refusals(void **state)
{
	(void)state;
	char *prio = NULL;
	const char *unknown[] = { "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_FAKE" };
	assert_int_equal(berth_tls_priorities(&prio, BERTH_TLS_1_2, unknown, 2), -1);
	assert_null(prio);
	assert_string_equal(berth_err_message(BERTH_ERROR), "http.tls.ciphersuites: unknown TLS cipher suite 'TLS_FAKE'");
	/* RSA key exchange from one suite, AES-256-CBC from another: GnuTLS would pair them all */
	const char *mixed[] = { "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA" };
	assert_int_equal(berth_tls_priorities(&prio, BERTH_TLS_1_2, mixed, 2), -1);
	assert_null(prio);
	assert_non_null(strstr(berth_err_message(BERTH_ERROR), "http.tls.ciphersuites: the TLS library cannot enable this list without also "
				    "enabling TLS_"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_is_distributions_list),
		cmocka_unit_test(test_list_is_exact),
		cmocka_unit_test(test_minimum_versions),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

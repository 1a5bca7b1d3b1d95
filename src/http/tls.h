/*
 * TLS settings of the HTTPS listener, on GnuTLS (what libmicrohttpd uses):
 *
 * - http.tls.minimumtls and http.tls.ciphersuites become a GnuTLS priority string. Cipher suites
 *   take Distribution's (Go's) names; as in Go, they restrict TLS 1.2 and below only (TLS 1.3's
 *   suites are not configurable), and with minimumtls tls1.3 they are not used (a warning says
 *   so). GnuTLS enables every combination of the key exchanges, ciphers and MACs named, so a
 *   list whose combinations would enable a suite not listed is refused, naming that suite.
 * - The server certificate and key are served through a certificate callback from a store that
 *   SIGHUP re-reads (berth_tls_certs_reload): new handshakes get the new pair, connections
 *   already open keep theirs, nothing is dropped.
 *
 * The certificate callback (gnutls_certificate_retrieve_function2) has no user pointer, so the
 * store is process-wide: one HTTPS listener per process.
 */
#ifndef BERTH_HTTP_TLS_H
#define BERTH_HTTP_TLS_H

#include <stddef.h>

#include <gnutls/abstract.h>

/*
 * The priority string for min_version (enum berth_tls_version) and the ciphersuites (Go names;
 * n == 0: Distribution's default list). *out is the caller's (free). 0, or -1 with a one-line
 * message (core/err.h) naming the key ("http.tls.ciphersuites: unknown TLS cipher suite 'X'").
 */
int berth_tls_priorities(char **out, int min_version, const char *const *suites, size_t n);

/*
 * Loads the certificate chain and key (PEM) into the store, replacing what it held. The paths
 * are kept for berth_tls_certs_reload. 0, or -1 with a message (core/err.h). Blocks on file I/O.
 */
int berth_tls_certs_load(const char *cert_path, const char *key_path);

/* Re-reads the files given to berth_tls_certs_load. On failure the previous pair stays in use
 * and -1 comes back with the reason as its message (core/err.h). */
int berth_tls_certs_reload(void);

/* The callback for MHD_OPTION_HTTPS_CERT_CALLBACK (a gnutls_certificate_retrieve_function2 *). */
gnutls_certificate_retrieve_function2 *berth_tls_cert_callback(void);

/* Frees every pair the store ever held (pairs replaced by a reload stay alive, as sessions may
 * still use them, until here). Call after the HTTPS server has stopped. */
void berth_tls_certs_free(void);

#endif

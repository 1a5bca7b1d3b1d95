#include "http/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

/* ---- priorities ---------------------------------------------------------------------------- */

/* One of Go's cipher suites (the names Distribution accepts), as GnuTLS's key exchange, cipher
 * and MAC; tls13: a TLS 1.3 suite, which Go (and so berth) does not let the list restrict. */
struct suite {
	const char *go_name;
	const char *kx, *cipher, *mac; /* GnuTLS priority names */
	int tls13;
};

static const struct suite suites[] = {
	{ "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "RSA", "3DES-CBC", "SHA1", 0 },
	{ "TLS_RSA_WITH_AES_128_CBC_SHA", "RSA", "AES-128-CBC", "SHA1", 0 },
	{ "TLS_RSA_WITH_AES_256_CBC_SHA", "RSA", "AES-256-CBC", "SHA1", 0 },
	{ "TLS_RSA_WITH_AES_128_GCM_SHA256", "RSA", "AES-128-GCM", "AEAD", 0 },
	{ "TLS_RSA_WITH_AES_256_GCM_SHA384", "RSA", "AES-256-GCM", "AEAD", 0 },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA", "AES-128-CBC", "SHA1", 0 },
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA", "AES-256-CBC", "SHA1", 0 },
	{ "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA", "3DES-CBC", "SHA1", 0 },
	{ "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA", "AES-128-CBC", "SHA1", 0 },
	{ "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA", "AES-256-CBC", "SHA1", 0 },
	{ "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA", "AES-128-GCM", "AEAD", 0 },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA", "AES-128-GCM", "AEAD", 0 },
	{ "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA", "AES-256-GCM", "AEAD", 0 },
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA", "AES-256-GCM", "AEAD", 0 },
	{ "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD", 0 },
	{ "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD", 0 },
	{ "TLS_AES_128_GCM_SHA256", NULL, "AES-128-GCM", "AEAD", 1 },
	{ "TLS_AES_256_GCM_SHA384", NULL, "AES-256-GCM", "AEAD", 1 },
	{ "TLS_CHACHA20_POLY1305_SHA256", NULL, "CHACHA20-POLY1305", "AEAD", 1 },
};
#define N_SUITES (sizeof(suites) / sizeof(suites[0]))

/* Distribution's default list (registry.go defaultCipherSuites). */
static const char *const default_suites[] = {
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384",
};

static const struct suite *find_suite(const char *go_name)
{
	for (size_t i = 0; i < N_SUITES; i++)
		if (strcmp(suites[i].go_name, go_name) == 0)
			return &suites[i];
	return NULL;
}

/* Appends ":+item" to the priority string unless it is there already. */
static void add_item(struct berth_buf *b, const char *item)
{
	size_t n = strlen(item);
	for (const char *p = b->data; p && (p = strstr(p, ":+")) != NULL; p += 2)
		if (strncmp(p + 2, item, n) == 0 && (p[2 + n] == ':' || p[2 + n] == '\0'))
			return;
	berth_buf_printf(b, ":+%s", item);
}

/* The TLS <= 1.2 suite GnuTLS calls (kx, cipher, mac) is in the list (selected[i] set)? */
static int listed(const unsigned char *selected, gnutls_kx_algorithm_t kx, gnutls_cipher_algorithm_t cipher,
		  gnutls_mac_algorithm_t mac)
{
	for (size_t i = 0; i < N_SUITES; i++) {
		const struct suite *s = &suites[i];
		if (selected[i] && !s->tls13 && gnutls_kx_get_id(s->kx) == kx &&
		    gnutls_cipher_get_id(s->cipher) == cipher && gnutls_mac_get_id(s->mac) == mac)
			return 1;
	}
	return 0;
}

/* GnuTLS enables every kx x cipher x mac combination of the priority string: refuse a list for
 * which that means a TLS 1.2 suite the list does not name. */
static int check_exact(const char *prio, const unsigned char *selected)
{
	gnutls_priority_t p;
	const char *errpos = NULL;
	if (gnutls_priority_init(&p, prio, &errpos) < 0) {
		berth_err_set(BERTH_ERROR, "http.tls.ciphersuites: the TLS library refuses '%s' at '%s'", prio,
			      errpos ? errpos : "?");
		return BERTH_ERROR;
	}
	int rc = 0;
	for (unsigned idx = 0;; idx++) {
		unsigned sidx;
		int r = gnutls_priority_get_cipher_suite_index(p, idx, &sidx);
		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (r < 0)
			continue;
		gnutls_kx_algorithm_t kx;
		gnutls_cipher_algorithm_t cipher;
		gnutls_mac_algorithm_t mac;
		gnutls_protocol_t minver;
		const char *name = gnutls_cipher_suite_info(sidx, NULL, &kx, &cipher, &mac, &minver);
		if (!name || minver >= GNUTLS_TLS1_3 || listed(selected, kx, cipher, mac))
			continue;
		berth_err_set(BERTH_ERROR, "http.tls.ciphersuites: the TLS library cannot enable this list without "
			      "also enabling %s: add its Go name to the list or drop the suites that pair with it", name);
		rc = -1;
		break;
	}
	gnutls_priority_deinit(p);
	return rc;
}

int berth_tls_priorities(char **out, int min_version, const char *const *names, size_t n)
{
	static const char *const versions[] = { "VERS-TLS1.0", "VERS-TLS1.1", "VERS-TLS1.2", "VERS-TLS1.3" };
	unsigned char selected[N_SUITES] = { 0 };
	struct berth_buf b = BERTH_BUF_INIT(4096);

	*out = NULL;
	berth_buf_printf(&b, "NORMAL:-VERS-ALL");
	for (int v = BERTH_TLS_1_3; v >= min_version && v >= BERTH_TLS_1_0; v--)
		add_item(&b, versions[v]);
	if (min_version >= BERTH_TLS_1_3) {
		/* Go offers no cipher suite choice for TLS 1.3, nor does Distribution. */
		if (n)
			berth_warn("http.tls.ciphersuites: not used with minimumtls tls1.3 (TLS 1.3 cipher "
				   "suites are not configurable)");
		*out = berth_buf_detach(&b, NULL);
		return 0;
	}
	if (n == 0) {
		names = default_suites;
		n = sizeof(default_suites) / sizeof(default_suites[0]);
	}
	for (size_t i = 0; i < n; i++) {
		const struct suite *s = find_suite(names[i]);
		if (!s) {
			berth_err_set(BERTH_ERROR, "http.tls.ciphersuites: unknown TLS cipher suite '%s'", names[i]);
			berth_buf_release(&b);
			return BERTH_ERROR;
		}
		selected[s - suites] = 1;
	}
	/* GnuTLS shares ciphers between TLS 1.3 and 1.2: TLS 1.3 gets the ciphers of the suites
	 * listed (of either version), so that it adds no TLS 1.2 suite. Go would offer all three
	 * TLS 1.3 suites whatever the list; this is never weaker. */
	berth_buf_printf(&b, ":-CIPHER-ALL:-MAC-ALL:-KX-ALL:+AEAD");
	for (size_t i = 0; i < N_SUITES; i++) {
		if (!selected[i])
			continue;
		if (suites[i].kx)
			add_item(&b, suites[i].kx);
		add_item(&b, suites[i].cipher);
		add_item(&b, suites[i].mac);
	}
	if (check_exact(b.data, selected) < 0) {
		berth_buf_release(&b);
		return BERTH_ERROR;
	}
	*out = berth_buf_detach(&b, NULL);
	return 0;
}

/* ---- certificates ------------------------------------------------------------------------------ */

#define MAX_CHAIN 16

/* A certificate chain and its key, as handed to GnuTLS. */
struct pair {
	gnutls_pcert_st chain[MAX_CHAIN];
	unsigned n;
	gnutls_privkey_t key;
	struct pair *older; /* pairs replaced by a reload, kept for sessions that may hold them */
};

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pair *current; /* guarded by store_lock */
static char *cert_file, *key_file;

static void pair_free(struct pair *p)
{
	for (unsigned i = 0; i < p->n; i++)
		gnutls_pcert_deinit(&p->chain[i]);
	if (p->key)
		gnutls_privkey_deinit(p->key);
	free(p);
}

#define PEM_MAX (1u << 20) /* far more than any certificate chain or key */

/* Reads a whole PEM file into d (gnutls_free it); the message says why it could not. */
static int read_pem(gnutls_datum_t *d, const char *what, const char *path)
{
	struct berth_buf b = BERTH_BUF_INIT(PEM_MAX);
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "rb");
	if (!f) {
		berth_err_set(BERTH_ERROR, "cannot read %s '%s': %s", what, path, strerror(errno));
		return BERTH_ERROR;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (berth_buf_append(&b, chunk, n) < 0) {
			berth_err_set(BERTH_ERROR, "cannot read %s '%s': larger than %u bytes", what, path, PEM_MAX);
			goto fail;
		}
	}
	if (ferror(f)) {
		berth_err_set(BERTH_ERROR, "cannot read %s '%s': %s", what, path, strerror(errno));
		goto fail;
	}
	fclose(f);
	d->size = (unsigned)b.len;
	d->data = gnutls_malloc(b.len + 1);
	if (!d->data)
		abort(); /* as berth_malloc */
	memcpy(d->data, b.data ? b.data : "", b.len + (b.data != NULL));
	berth_buf_release(&b);
	return 0;
fail:
	fclose(f);
	berth_buf_release(&b);
	return BERTH_ERROR;
}

/* 1 if the key is the one the first certificate was issued for. */
static int key_matches(gnutls_pcert_st *leaf, gnutls_privkey_t key)
{
	gnutls_pubkey_t pub;
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	int same = 0;
	if (gnutls_pubkey_init(&pub) < 0)
		return 0;
	if (gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) == 0 &&
	    gnutls_pubkey_export2(leaf->pubkey, GNUTLS_X509_FMT_DER, &b) == 0)
		same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return same;
}

static int pair_load(struct pair **out, const char *cert_path, const char *key_path)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	struct pair *p = berth_calloc(1, sizeof(*p));
	int rc = -1, r;

	if (read_pem(&cert, "http.tls.certificate", cert_path) < 0 ||
	    read_pem(&key, "http.tls.key", key_path) < 0)
		goto out;
	p->n = MAX_CHAIN;
	if ((r = gnutls_pcert_list_import_x509_raw(p->chain, &p->n, &cert, GNUTLS_X509_FMT_PEM, 0)) < 0) {
		p->n = 0;
		berth_err_set(BERTH_ERROR, "http.tls.certificate '%s': %s", cert_path, gnutls_strerror(r));
		goto out;
	}
	if ((r = gnutls_privkey_init(&p->key)) < 0 ||
	    (r = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		berth_err_set(BERTH_ERROR, "http.tls.key '%s': %s", key_path, gnutls_strerror(r));
		goto out;
	}
	if (!key_matches(&p->chain[0], p->key)) {
		berth_err_set(BERTH_ERROR, "http.tls.key '%s' is not the key of http.tls.certificate '%s'", key_path,
			      cert_path);
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	gnutls_free(cert.data);
	gnutls_free(key.data);
	if (p)
		pair_free(p);
	return rc;
}

static void install(struct pair *p)
{
	pthread_mutex_lock(&store_lock);
	p->older = current;
	current = p;
	pthread_mutex_unlock(&store_lock);
}

int berth_tls_certs_load(const char *cert_path, const char *key_path)
{
	struct pair *p;
	if (pair_load(&p, cert_path, key_path) < 0)
		return BERTH_ERROR;
	free(cert_file);
	free(key_file);
	cert_file = berth_strdup(cert_path);
	key_file = berth_strdup(key_path);
	install(p);
	return 0;
}

int berth_tls_certs_reload(void)
{
	struct pair *p;
	if (!cert_file) {
		berth_err_set(BERTH_ERROR, "no TLS certificate configured");
		return BERTH_ERROR;
	}
	if (pair_load(&p, cert_file, key_file) < 0)
		return BERTH_ERROR;
	install(p);
	return 0;
}

/* Every handshake: the pair installed last. GnuTLS neither frees nor changes what it is given. */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
		    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
		    unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
	(void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
	pthread_mutex_lock(&store_lock);
	struct pair *p = current;
	pthread_mutex_unlock(&store_lock);
	if (!p)
		return BERTH_ERROR;
	*pcert = p->chain;
	*pcert_length = p->n;
	*privkey = p->key;
	return 0;
}

gnutls_certificate_retrieve_function2 *berth_tls_cert_callback(void)
{
	return retrieve;
}

void berth_tls_certs_free(void)
{
	pthread_mutex_lock(&store_lock);
	struct pair *p = current;
	current = NULL;
	pthread_mutex_unlock(&store_lock);
	while (p) {
		struct pair *older = p->older;
		pair_free(p);
		p = older;
	}
	berth_safefree(cert_file);
	berth_safefree(key_file);
}

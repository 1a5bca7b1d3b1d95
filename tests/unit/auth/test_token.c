/*
 * Token (JWT bearer) auth and the silly provider. Every key, certificate and token is made here
 * with OpenSSL: self-signed certificates whose keys are named by libtrust kid, a CA with an
 * intermediate for x5c chains, a rogue CA that is not trusted, and a JWKS file. Tokens are
 * signed the way a token server signs them (ES* signatures as raw r || s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define REALM "https://auth.example/token"
#define SERVICE "registry.example"
#define ISSUER "test-issuer"
#define OMIT LLONG_MIN

/* Keys named by kid through the bundle's self-signed certificates. */
static EVP_PKEY *rsa_key, *ec_key, *ec384_key, *ed_key;
static X509 *rsa_cert, *ec_cert, *ec384_cert, *ed_cert;
/* x5c: root CA (in the bundle) -> intermediate -> leaves; a rogue CA outside the bundle. */
static EVP_PKEY *ca_key, *inter_key, *leaf_key, *rogue_key;
static X509 *ca_cert, *inter_cert, *leaf_cert, *leaf2_cert, *rogue_ca_cert, *rogue_leaf_cert;
/* Keys only in the JWKS file, and one trusted nowhere. */
static EVP_PKEY *jwks_rsa, *jwks_ec, *jwks_ed, *stranger;

static char rsa_kid[BERTH_LIBTRUST_KID_LEN], ec_kid[BERTH_LIBTRUST_KID_LEN];
static char ec384_kid[BERTH_LIBTRUST_KID_LEN], ed_kid[BERTH_LIBTRUST_KID_LEN];

static char tmpdir[256];
static char bundle_path[512], jwks_path[512];
static char challenge[1024], user[128];
static long serial = 1;

/* ---- making keys, certificates and files ---- */

static EVP_PKEY *gen(const char *kind)
{
	EVP_PKEY *k = NULL;
	if (strcmp(kind, "RSA") == 0)
		k = EVP_RSA_gen(2048);
	else if (strcmp(kind, "ED25519") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		k = EVP_EC_gen(kind);
	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key, self-signed unless issuer is given; ca makes it a CA. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca)
{
	X509 *x = X509_new();
	EVP_PKEY *signer = issuer_key ? issuer_key : key;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(x, key);
	if (ca) {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
	}
	int ed = EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519;
	assert_true(X509_sign(x, signer, ed ? NULL : EVP_sha256()) > 0);
	return x;
}

static char *b64url(const void *p, size_t n)
{
	return berth_b64_encode(BERTH_B64_URL, p, n);
}

static char *bn_b64url(const EVP_PKEY *k, const char *param, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	BN_free(bn);
	return b64url(buf, (size_t)n);
}

/* The key as a JWK object (public part), with kid when not NULL. */
static char *jwk_json(const EVP_PKEY *k, const char *kid)
{
	char *a, *b = NULL, *out;
	char kidpart[128] = "";
	if (kid)
		snprintf(kidpart, sizeof(kidpart), ",\"kid\":\"%s\"", kid);
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA:
		a = bn_b64url(k, OSSL_PKEY_PARAM_RSA_N, 0);
		b = bn_b64url(k, OSSL_PKEY_PARAM_RSA_E, 0);
		out = berth_asprintf("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}", a, b, kidpart);
		break;
	case EVP_PKEY_EC: {
		int len = (EVP_PKEY_get_bits(k) + 7) / 8;
		a = bn_b64url(k, OSSL_PKEY_PARAM_EC_PUB_X, len);
		b = bn_b64url(k, OSSL_PKEY_PARAM_EC_PUB_Y, len);
		out = berth_asprintf("{\"kty\":\"EC\",\"crv\":\"P-%d\",\"x\":\"%s\",\"y\":\"%s\"%s}",
				     EVP_PKEY_get_bits(k), a, b, kidpart);
		break;
	}
	default: {
		unsigned char raw[32];
		size_t len = sizeof(raw);
		assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
		a = b64url(raw, len);
		out = berth_asprintf("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"%s}", a, kidpart);
		break;
	}
	}
	free(a);
	free(b);
	return out;
}

static char *cert_b64(X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	assert_true(n > 0);
	char *s = berth_b64_encode(BERTH_B64_STD, der, (size_t)n);
	OPENSSL_free(der);
	return s;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void write_bundle(const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	X509 *certs[] = { rsa_cert, ec_cert, ec384_cert, ed_cert, ca_cert };
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
		assert_int_equal(PEM_write_X509(f, certs[i]), 1);
	assert_int_equal(fclose(f), 0);
}

static void write_jwks(const char *path)
{
	char *r = jwk_json(jwks_rsa, "rsa-1"), *e = jwk_json(jwks_ec, "ec-1"), *d = jwk_json(jwks_ed, "ed-1");
	char *enc = jwk_json(stranger, "enc-1");
	/* An encryption key (use: enc) and a key without kid are skipped. */
	enc[strlen(enc) - 1] = '\0';
	char *nokid = jwk_json(stranger, NULL);
	char *text = berth_asprintf("{\"keys\":[%s,%s,%s,%s,\"use\":\"enc\"},%s]}", r, e, d, enc, nokid);
	write_file(path, text);
	free(r), free(e), free(d), free(enc), free(nokid), free(text);
}

static int group_setup(void **state)
{
	(void)state;
	rsa_key = gen("RSA"), ec_key = gen("P-256"), ec384_key = gen("P-384"), ed_key = gen("ED25519");
	rsa_cert = make_cert(rsa_key, "rsa", NULL, NULL, 0);
	ec_cert = make_cert(ec_key, "ec", NULL, NULL, 0);
	ec384_cert = make_cert(ec384_key, "ec384", NULL, NULL, 0);
	ed_cert = make_cert(ed_key, "ed", NULL, NULL, 0);
	ca_key = gen("P-256"), inter_key = gen("P-256"), leaf_key = gen("RSA"), rogue_key = gen("P-256");
	ca_cert = make_cert(ca_key, "root ca", NULL, NULL, 1);
	inter_cert = make_cert(inter_key, "intermediate ca", ca_cert, ca_key, 1);
	leaf_cert = make_cert(leaf_key, "token signer", ca_cert, ca_key, 0);
	leaf2_cert = make_cert(leaf_key, "token signer 2", inter_cert, inter_key, 0);
	rogue_ca_cert = make_cert(rogue_key, "root ca", NULL, NULL, 1);
	rogue_leaf_cert = make_cert(leaf_key, "token signer", rogue_ca_cert, rogue_key, 0);
	jwks_rsa = gen("RSA"), jwks_ec = gen("P-256"), jwks_ed = gen("ED25519"), stranger = gen("RSA");
	assert_int_equal(berth_libtrust_kid(rsa_key, rsa_kid), 0);
	assert_int_equal(berth_libtrust_kid(ec_key, ec_kid), 0);
	assert_int_equal(berth_libtrust_kid(ec384_key, ec384_kid), 0);
	assert_int_equal(berth_libtrust_kid(ed_key, ed_kid), 0);

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/berth-token-test-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(bundle_path, sizeof(bundle_path), "%s/bundle.pem", tmpdir);
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", tmpdir);
	write_bundle(bundle_path);
	write_jwks(jwks_path);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY *keys[] = { rsa_key, ec_key, ec384_key, ed_key, ca_key, inter_key, leaf_key, rogue_key,
			     jwks_rsa, jwks_ec, jwks_ed, stranger };
	X509 *certs[] = { rsa_cert, ec_cert, ec384_cert, ed_cert, ca_cert, inter_cert, leaf_cert, leaf2_cert,
			  rogue_ca_cert, rogue_leaf_cert };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		EVP_PKEY_free(keys[i]);
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
		X509_free(certs[i]);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- making tokens ---- */

static const EVP_MD *alg_md(const char *alg)
{
	if (strstr(alg, "256"))
		return EVP_sha256();
	if (strstr(alg, "384"))
		return EVP_sha384();
	if (strstr(alg, "512"))
		return EVP_sha512();
	return NULL;
}

/* Signs input as the JWS algorithm alg does; ES* come out as r || s. */
static unsigned char *sign(const char *alg, EVP_PKEY *key, const char *input, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	assert_int_equal(EVP_DigestSignInit(ctx, &pctx, alg_md(alg), NULL, key), 1);
	if (alg[0] == 'P') {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	}
	size_t len = 0;
	assert_int_equal(EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)input, strlen(input)), 1);
	unsigned char *sig = malloc(len);
	assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)input, strlen(input)), 1);
	EVP_MD_CTX_free(ctx);
	if (alg[0] == 'E' && alg[1] == 'S') {
		int half = (EVP_PKEY_get_bits(key) + 7) / 8;
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
		assert_non_null(es);
		unsigned char *raw = malloc((size_t)half * 2);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half);
		ECDSA_SIG_free(es);
		free(sig);
		sig = raw;
		len = (size_t)half * 2;
	}
	*siglen = len;
	return sig;
}

/* header.claims.signature; key NULL leaves the signature as given in raw_sig (may be ""). */
static char *make_token(const char *header, const char *claims, const char *alg, EVP_PKEY *key)
{
	char *h = b64url(header, strlen(header)), *c = b64url(claims, strlen(claims));
	char *input = berth_asprintf("%s.%s", h, c);
	char *s;
	if (key) {
		size_t len;
		unsigned char *sig = sign(alg, key, input, &len);
		s = b64url(sig, len);
		free(sig);
	} else {
		s = berth_strdup("");
	}
	char *token = berth_asprintf("%s.%s", input, s);
	free(h), free(c), free(input), free(s);
	return token;
}

static char *kid_header(const char *alg, const char *kid)
{
	return berth_asprintf("{\"typ\":\"JWT\",\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
}

/* Claims with the usual iss and aud; OMIT leaves a time out; access is raw JSON or NULL. */
static char *claims(long long exp_in, long long nbf_in, long long iat_in, const char *access)
{
	long long now = (long long)time(NULL);
	struct berth_buf b = BERTH_BUF_INIT(1 << 20);
	berth_buf_printf(&b, "{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":\"%s\",\"jti\":\"x\"", ISSUER, SERVICE);
	if (exp_in != OMIT)
		berth_buf_printf(&b, ",\"exp\":%lld", now + exp_in);
	if (nbf_in != OMIT)
		berth_buf_printf(&b, ",\"nbf\":%lld", now + nbf_in);
	if (iat_in != OMIT)
		berth_buf_printf(&b, ",\"iat\":%lld", now + iat_in);
	if (access)
		berth_buf_printf(&b, ",\"access\":%s", access);
	berth_buf_append(&b, "}", 1);
	return berth_buf_detach(&b, NULL);
}

#define PULL_PUSH_FOO "[{\"type\":\"repository\",\"name\":\"foo\",\"actions\":[\"pull\",\"push\"]}]"

static char *good_claims(void)
{
	return claims(300, -10, -10, PULL_PUSH_FOO);
}

/* A valid token for alg, signed by key, named by kid. */
static char *token_kid(const char *alg, EVP_PKEY *key, const char *kid, const char *claims_json)
{
	char *h = kid_header(alg, kid);
	char *t = make_token(h, claims_json, alg, key);
	free(h);
	return t;
}

/* ---- authorizing ---- */

/* A token provider's configuration with the test's realm, service and issuer. */
static void token_config(struct berth_config *cfg, const char *bundle, const char *jwks)
{
	berth_config_defaults(cfg);
	cfg->auth.kind = BERTH_AUTH_TOKEN;
	snprintf(cfg->auth.realm, sizeof(cfg->auth.realm), "%s", REALM);
	snprintf(cfg->auth.service, sizeof(cfg->auth.service), "%s", SERVICE);
	snprintf(cfg->auth.issuer, sizeof(cfg->auth.issuer), "%s", ISSUER);
	snprintf(cfg->auth.rootcertbundle, sizeof(cfg->auth.rootcertbundle), "%s", bundle ? bundle : "");
	snprintf(cfg->auth.jwks, sizeof(cfg->auth.jwks), "%s", jwks ? jwks : "");
}

static struct berth_auth *token_auth(const char *bundle, const char *jwks)
{
	struct berth_config cfg;
	struct berth_auth *a = NULL;
	token_config(&cfg, bundle, jwks);
	if (berth_auth_new(&a, &cfg) != 0)
		fail_msg("berth_auth_new: %s", berth_err_message(BERTH_ERROR));
	return a;
}

static const struct berth_access pull_foo[] = { { "repository", "foo", "pull" } };
static const struct berth_access push_foo[] = { { "repository", "foo", "pull" }, { "repository", "foo", "push" } };

static int authz_header(struct berth_auth *a, const char *header, const struct berth_access *acc, size_t n)
{
	return berth_auth_authorize(a, header, acc, n, challenge, sizeof(challenge), user, sizeof(user));
}

static int authz(struct berth_auth *a, const char *token, const struct berth_access *acc, size_t n)
{
	char *h = berth_asprintf("Bearer %s", token);
	int rc = authz_header(a, h, acc, n);
	free(h);
	return rc;
}

/* Takes ownership of token: it must be refused as invalid. */
static void assert_invalid(struct berth_auth *a, char *token)
{
	assert_int_equal(authz(a, token, pull_foo, 1), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Bearer realm=\"" REALM "\",service=\"" SERVICE
			    "\",scope=\"repository:foo:pull\",error=\"invalid_token\"");
	assert_string_equal(user, "");
	free(token);
}

/* Takes ownership of token: it must let alice pull foo. */
static void assert_valid(struct berth_auth *a, char *token)
{
	int rc = authz(a, token, pull_foo, 1);
	if (rc != 0)
		fail_msg("token refused (%d): %s", rc, token);
	assert_string_equal(user, "alice");
	free(token);
}

/* ---- tests ---- */

static void test_libtrust_kid(void **state)
{
	(void)state;
	/* Expected value computed independently: sha256 of the DER SPKI, first 30 bytes, base32,
	 * groups of four (python3 hashlib + base64.b32encode). */
	static const char pem[] = "-----BEGIN PUBLIC KEY-----\n"
				  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEOtv/0KLma5b8DpUft/H5rFmoKIM7\n"
				  "jroJh1J4vVQV5+JDIbsNYxxyb9Lgv61I1kOyDcdtOtbAwh5e6SH8NB6xQQ==\n"
				  "-----END PUBLIC KEY-----\n";
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(k);
	char kid[BERTH_LIBTRUST_KID_LEN];
	assert_int_equal(berth_libtrust_kid(k, kid), 0);
	assert_string_equal(kid, "Y5HT:RI3H:7ZBB:DKZM:ENOA:UFNI:XUE7:GSH7:AJ4L:OXFS:XI4N:B2TO");
	EVP_PKEY_free(k);
}

static void test_valid_algorithms(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c = good_claims();
	const char *rsa_algs[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512" };
	for (size_t i = 0; i < sizeof(rsa_algs) / sizeof(rsa_algs[0]); i++)
		assert_valid(a, token_kid(rsa_algs[i], rsa_key, rsa_kid, c));
	assert_valid(a, token_kid("ES256", ec_key, ec_kid, c));
	assert_valid(a, token_kid("ES384", ec384_key, ec384_kid, c));
	assert_valid(a, token_kid("EdDSA", ed_key, ed_kid, c));
	/* The scheme is case-insensitive, as in Distribution. */
	char *t = token_kid("ES256", ec_key, ec_kid, c);
	char *h = berth_asprintf("bearer %s", t);
	assert_int_equal(authz_header(a, h, pull_foo, 1), 0);
	free(h), free(t), free(c);
	berth_auth_free(a);
}

/* auth.token.signingalgorithms: only the listed algorithms verify; unknown names are refused. */
static void test_signing_algorithms(void **state)
{
	(void)state;
	struct berth_config cfg;
	struct berth_auth *a = NULL;
	char *list[] = { "ES256", "HS256" };

	token_config(&cfg, bundle_path, NULL);
	cfg.auth.signingalgorithms = (struct berth_strlist){ 2, list };
	if (berth_auth_new(&a, &cfg) != 0)
		fail_msg("berth_auth_new: %s", berth_err_message(BERTH_ERROR));
	char *c = good_claims();
	assert_valid(a, token_kid("ES256", ec_key, ec_kid, c));
	assert_invalid(a, token_kid("RS256", rsa_key, rsa_kid, c));
	assert_invalid(a, token_kid("EdDSA", ed_key, ed_kid, c));
	free(c);
	berth_auth_free(a);

	char *unknown[] = { "RS256", "XX999" };
	cfg.auth.signingalgorithms = (struct berth_strlist){ 2, unknown };
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "auth.token.signingalgorithms: unsupported signing algorithm: XX999");
	char *hmac_only[] = { "HS256" };
	cfg.auth.signingalgorithms = (struct berth_strlist){ 1, hmac_only };
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_non_null(strstr(berth_err_message(BERTH_ERROR), "only HMAC algorithms listed"));
}

static void test_time_claims(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c;
#define WITH(claims_expr, check)                                        \
	do {                                                            \
		c = (claims_expr);                                      \
		check(a, token_kid("ES256", ec_key, ec_kid, c));        \
		free(c);                                                \
	} while (0)
	WITH(claims(-120, OMIT, OMIT, PULL_PUSH_FOO), assert_invalid);   /* expired */
	WITH(claims(-30, OMIT, OMIT, PULL_PUSH_FOO), assert_valid);      /* expired, within the leeway */
	WITH(claims(OMIT, OMIT, OMIT, PULL_PUSH_FOO), assert_invalid);   /* no exp */
	WITH(claims(300, 120, OMIT, PULL_PUSH_FOO), assert_invalid);     /* not valid yet */
	WITH(claims(300, 30, OMIT, PULL_PUSH_FOO), assert_valid);        /* nbf within the leeway */
	WITH(claims(300, OMIT, 600, PULL_PUSH_FOO), assert_invalid);     /* issued in the future */
	WITH(claims(300, OMIT, 30, PULL_PUSH_FOO), assert_valid);
	WITH(berth_asprintf("{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":\"%s\",\"exp\":\"%lld\",\"access\":%s}", ISSUER,
			    SERVICE, (long long)time(NULL) + 300, PULL_PUSH_FOO),
	     assert_invalid);                                            /* exp as a string */
	WITH(berth_asprintf("{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":\"%s\",\"exp\":%lld.5,\"access\":%s}", ISSUER,
			    SERVICE, (long long)time(NULL) + 300, PULL_PUSH_FOO),
	     assert_valid);                                              /* fractional exp */
	WITH(berth_asprintf("{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":\"%s\",\"exp\":1e300,\"access\":%s}", ISSUER,
			    SERVICE, PULL_PUSH_FOO),
	     assert_invalid);                                            /* absurd exp */
	berth_auth_free(a);
}

static char *claims_iss_aud(const char *iss_json, const char *aud_json)
{
	struct berth_buf b = BERTH_BUF_INIT(1 << 20);
	berth_buf_printf(&b, "{\"sub\":\"alice\",\"exp\":%lld,\"access\":%s", (long long)time(NULL) + 300,
			 PULL_PUSH_FOO);
	if (iss_json)
		berth_buf_printf(&b, ",\"iss\":%s", iss_json);
	if (aud_json)
		berth_buf_printf(&b, ",\"aud\":%s", aud_json);
	berth_buf_append(&b, "}", 1);
	return berth_buf_detach(&b, NULL);
}

static void test_issuer_audience(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c;
	WITH(claims_iss_aud("\"" ISSUER "\"", "\"" SERVICE "\""), assert_valid);
	WITH(claims_iss_aud("\"" ISSUER "\"", "[\"other\",\"" SERVICE "\"]"), assert_valid);
	WITH(claims_iss_aud("\"evil-issuer\"", "\"" SERVICE "\""), assert_invalid);
	WITH(claims_iss_aud(NULL, "\"" SERVICE "\""), assert_invalid);
	WITH(claims_iss_aud("[\"" ISSUER "\"]", "\"" SERVICE "\""), assert_invalid);
	WITH(claims_iss_aud("\"" ISSUER "\"", "\"other-registry\""), assert_invalid);
	WITH(claims_iss_aud("\"" ISSUER "\"", "[\"other\"]"), assert_invalid);
	WITH(claims_iss_aud("\"" ISSUER "\"", "[]"), assert_invalid);
	WITH(claims_iss_aud("\"" ISSUER "\"", NULL), assert_invalid);
	WITH(claims_iss_aud("\"" ISSUER "\"", "{\"aud\":\"" SERVICE "\"}"), assert_invalid);
#undef WITH
	berth_auth_free(a);
}

/* Replaces the signature part of token with base64url(sig). */
static char *with_signature(char *token, const unsigned char *sig, size_t len)
{
	char *dot = strrchr(token, '.');
	char *s = b64url(sig, len);
	char *out = berth_asprintf("%.*s.%s", (int)(dot - token), token, s);
	free(s);
	free(token);
	return out;
}

static void test_bad_signatures(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c = good_claims();
	char *h;

	/* Signed by a key that is not the one the kid names. */
	assert_invalid(a, token_kid("RS256", stranger, rsa_kid, c));
	assert_invalid(a, token_kid("ES256", jwks_ec, ec_kid, c));
	/* One bit of the signature flipped. */
	char *t = token_kid("RS256", rsa_key, rsa_kid, c);
	char *dot = strrchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	assert_invalid(a, t);
	/* An ES256 signature of the wrong length (DER instead of r || s, or cut short). */
	unsigned char junk[72] = { 0x30, 0x44 };
	assert_invalid(a, with_signature(token_kid("ES256", ec_key, ec_kid, c), junk, sizeof(junk)));
	assert_invalid(a, with_signature(token_kid("ES256", ec_key, ec_kid, c), junk, 63));
	/* The algorithm must fit the key: RS256 from an EC kid, ES384 from a P-256 key, ES256 from
	 * an Ed25519 key, EdDSA from an RSA key. */
	assert_invalid(a, token_kid("RS256", rsa_key, ec_kid, c));
	assert_invalid(a, token_kid("ES384", ec_key, ec_kid, c));
	assert_invalid(a, token_kid("ES256", ec_key, ed_kid, c));
	assert_invalid(a, token_kid("EdDSA", ed_key, rsa_kid, c));
	/* alg none, with no signature and with some bytes. */
	h = kid_header("none", rsa_kid);
	assert_invalid(a, make_token(h, c, "none", NULL));
	assert_invalid(a, with_signature(make_token(h, c, "none", NULL), junk, 10));
	free(h);
	/* HS256 keyed with the public key's PEM: the classic algorithm confusion. */
	h = kid_header("HS256", rsa_kid);
	t = make_token(h, c, "none", NULL);
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, rsa_key);
	char *pem;
	long pemlen = BIO_get_mem_data(bio, &pem);
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	t[strlen(t) - 1] = '\0'; /* the signing input, without the final '.' */
	HMAC(EVP_sha256(), pem, (int)pemlen, (unsigned char *)t, strlen(t), mac, &maclen);
	strcat(t, ".");
	BIO_free(bio);
	assert_invalid(a, with_signature(t, mac, maclen));
	free(h);
	/* Unknown algorithm names, and critical header extensions. */
	assert_invalid(a, token_kid("RS1", rsa_key, rsa_kid, c));
	h = berth_asprintf("{\"alg\":\"RS256\",\"kid\":\"%s\",\"crit\":[\"exp\"],\"exp\":1}", rsa_kid);
	assert_invalid(a, make_token(h, c, "RS256", rsa_key));
	free(h);
	/* No key named at all. */
	assert_invalid(a, make_token("{\"alg\":\"RS256\"}", c, "RS256", rsa_key));
	free(c);
	berth_auth_free(a);
}

static void test_unknown_kid(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, jwks_path);
	char *c = good_claims();
	assert_invalid(a, token_kid("RS256", rsa_key, "AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL", c));
	assert_invalid(a, token_kid("RS256", rsa_key, "", c));
	/* A libtrust id of a key the bundle does not hold. */
	char kid[BERTH_LIBTRUST_KID_LEN];
	berth_libtrust_kid(stranger, kid);
	assert_invalid(a, token_kid("RS256", stranger, kid, c));
	/* The JWKS's skipped keys: use "enc", and no kid. */
	assert_invalid(a, token_kid("RS256", stranger, "enc-1", c));
	free(c);
	berth_auth_free(a);
}

static void test_malformed(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c = good_claims();
	char *h = kid_header("RS256", rsa_kid);
	const char *garbage[] = { "", ".", "..", "...", "a.b", "a.b.c.d", "!!!.e30.e30", "e30.e30.e30",
				  "eyJ.eyJ.AAAA", "e30..AAAA", ".e30.AAAA", "e30.e30." };
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		assert_invalid(a, berth_strdup(garbage[i]));
	/* Header or claims that are not JSON objects. */
	assert_invalid(a, make_token("{\"alg\":\"RS256\"", c, "RS256", rsa_key));
	assert_invalid(a, make_token("[\"RS256\"]", c, "RS256", rsa_key));
	assert_invalid(a, make_token("{\"alg\":\"RS256\",\"alg\":\"none\"}", c, "RS256", rsa_key));
	assert_invalid(a, make_token(h, "not json", "RS256", rsa_key));
	assert_invalid(a, make_token(h, "[1,2]", "RS256", rsa_key));
	assert_invalid(a, make_token(h, "", "RS256", rsa_key));
	/* Malformed access claims. */
	const char *bad_access[] = { "\"repository:foo:pull\"", "[{\"type\":1,\"name\":\"foo\",\"actions\":[]}]",
				     "[{\"type\":\"repository\",\"actions\":[\"pull\"]}]",
				     "[{\"type\":\"repository\",\"name\":\"foo\",\"actions\":\"pull\"}]",
				     "[{\"type\":\"repository\",\"name\":\"foo\",\"actions\":[1]}]", "[null]", "{}" };
	for (size_t i = 0; i < sizeof(bad_access) / sizeof(bad_access[0]); i++) {
		char *cc = claims(300, OMIT, OMIT, bad_access[i]);
		assert_invalid(a, make_token(h, cc, "RS256", rsa_key));
		free(cc);
	}
	/* A non-string subject. */
	char *cc = berth_asprintf("{\"iss\":\"%s\",\"sub\":7,\"aud\":\"%s\",\"exp\":%lld}", ISSUER, SERVICE,
				  (long long)time(NULL) + 300);
	assert_invalid(a, make_token(h, cc, "RS256", rsa_key));
	free(cc);
	/* A token of 20 KiB: refused before it is parsed. */
	char *big = malloc(20 * 1024 + 1);
	memset(big, 'A', 20 * 1024);
	big[20 * 1024] = '\0';
	big[100] = '.';
	big[200] = '.';
	assert_invalid(a, big);
	free(h), free(c);
	berth_auth_free(a);
}

/* Every prefix of a valid token, and every one-character change in its header and claims. */
static void test_truncated_and_mutated(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c = good_claims();
	char *t = token_kid("ES256", ec_key, ec_kid, c);
	size_t len = strlen(t);
	for (size_t i = 0; i < len; i++)
		assert_invalid(a, berth_strndup(t, i));
	size_t signed_len = (size_t)(strrchr(t, '.') - t);
	for (size_t i = 0; i < signed_len; i++) {
		char *m = berth_strdup(t);
		m[i] = m[i] == 'x' ? 'y' : m[i] == '.' ? '-' : 'x';
		assert_invalid(a, m);
	}
	assert_valid(a, t);
	free(c);
	berth_auth_free(a);
}

static char *x5c_header(const char *alg, X509 *const *chain, size_t n)
{
	struct berth_buf b = BERTH_BUF_INIT(1 << 20);
	berth_buf_printf(&b, "{\"typ\":\"JWT\",\"alg\":\"%s\",\"x5c\":[", alg);
	for (size_t i = 0; i < n; i++) {
		char *s = cert_b64(chain[i]);
		berth_buf_printf(&b, "%s\"%s\"", i ? "," : "", s);
		free(s);
	}
	berth_buf_append(&b, "]}", 2);
	return berth_buf_detach(&b, NULL);
}

static void test_x5c(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	char *c = good_claims();
	char *h;

	/* Leaf signed by the bundle's CA. */
	h = x5c_header("RS256", (X509 *[]){ leaf_cert }, 1);
	assert_valid(a, make_token(h, c, "RS256", leaf_key));
	/* ... but the token signed by another key than the leaf's. */
	assert_invalid(a, make_token(h, c, "RS256", stranger));
	free(h);
	/* Leaf -> intermediate -> bundle CA. */
	h = x5c_header("RS256", (X509 *[]){ leaf2_cert, inter_cert }, 2);
	assert_valid(a, make_token(h, c, "RS256", leaf_key));
	free(h);
	/* Without the intermediate the chain does not reach the bundle. */
	h = x5c_header("RS256", (X509 *[]){ leaf2_cert }, 1);
	assert_invalid(a, make_token(h, c, "RS256", leaf_key));
	free(h);
	/* A rogue CA with the same subject name, carried in the chain itself. */
	h = x5c_header("RS256", (X509 *[]){ rogue_leaf_cert, rogue_ca_cert }, 2);
	assert_invalid(a, make_token(h, c, "RS256", leaf_key));
	free(h);
	/* A self-signed leaf that is in the bundle is its own anchor. */
	h = x5c_header("ES256", (X509 *[]){ ec_cert }, 1);
	assert_valid(a, make_token(h, c, "ES256", ec_key));
	free(h);
	/* x5c takes precedence over kid: a good kid does not rescue a bad chain. */
	h = berth_asprintf("{\"alg\":\"RS256\",\"kid\":\"%s\",\"x5c\":[\"%s\"]}", rsa_kid, "AAAA");
	assert_invalid(a, make_token(h, c, "RS256", rsa_key));
	free(h);
	/* Malformed x5c. */
	const char *bad[] = { "\"MIIB\"", "[\"!!notbase64\"]", "[7]", "[\"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\"]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = berth_asprintf("{\"alg\":\"RS256\",\"x5c\":%s}", bad[i]);
		assert_invalid(a, make_token(h, c, "RS256", leaf_key));
		free(h);
	}
	free(c);
	berth_auth_free(a);

	/* With only a JWKS there are no trust anchors for chains. */
	a = token_auth(NULL, jwks_path);
	c = good_claims();
	h = x5c_header("RS256", (X509 *[]){ leaf_cert }, 1);
	assert_invalid(a, make_token(h, c, "RS256", leaf_key));
	free(h), free(c);
	berth_auth_free(a);
}

static void test_jwk_header(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, jwks_path);
	char *c = good_claims();
	char *jwk, *h;
	/* The bundle's and the JWKS's keys, sent inline. */
	EVP_PKEY *trusted[] = { rsa_key, ec_key, ed_key, jwks_rsa };
	const char *algs[] = { "RS256", "ES256", "EdDSA", "RS512" };
	for (size_t i = 0; i < 4; i++) {
		jwk = jwk_json(trusted[i], NULL);
		h = berth_asprintf("{\"alg\":\"%s\",\"jwk\":%s}", algs[i], jwk);
		assert_valid(a, make_token(h, c, algs[i], trusted[i]));
		free(jwk), free(h);
	}
	/* A key nobody trusts, sent inline. */
	jwk = jwk_json(stranger, NULL);
	h = berth_asprintf("{\"alg\":\"RS256\",\"jwk\":%s}", jwk);
	assert_invalid(a, make_token(h, c, "RS256", stranger));
	free(jwk), free(h);
	/* An untrusted inline key with a chain to the bundle CA whose leaf is that key. */
	jwk = jwk_json(leaf_key, NULL);
	char *leaf = cert_b64(leaf_cert), *rogue = cert_b64(rogue_leaf_cert), *rogue_ca = cert_b64(rogue_ca_cert);
	jwk[strlen(jwk) - 1] = '\0';
	h = berth_asprintf("{\"alg\":\"RS256\",\"jwk\":%s,\"x5c\":[\"%s\"]}}", jwk, leaf);
	assert_valid(a, make_token(h, c, "RS256", leaf_key));
	free(h);
	h = berth_asprintf("{\"alg\":\"RS256\",\"jwk\":%s,\"x5c\":[\"%s\",\"%s\"]}}", jwk, rogue, rogue_ca);
	assert_invalid(a, make_token(h, c, "RS256", leaf_key));
	free(h);
	free(jwk), free(leaf), free(rogue), free(rogue_ca);
	/* Malformed JWKs: unknown kty, EC point off the curve, short coordinates. */
	const char *bad[] = { "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", "\"RSA\"",
			      "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQ\",\"y\":\"AQ\"}",
			      ("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
			       "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}"),
			      "{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"AQAB\"}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = berth_asprintf("{\"alg\":\"ES256\",\"jwk\":%s}", bad[i]);
		assert_invalid(a, make_token(h, c, "ES256", ec_key));
		free(h);
	}
	free(c);
	berth_auth_free(a);
}

static void test_jwks(void **state)
{
	(void)state;
	char *c = good_claims();
	for (int with_bundle = 0; with_bundle < 2; with_bundle++) {
		struct berth_auth *a = token_auth(with_bundle ? bundle_path : NULL, jwks_path);
		assert_valid(a, token_kid("RS256", jwks_rsa, "rsa-1", c));
		assert_valid(a, token_kid("PS384", jwks_rsa, "rsa-1", c));
		assert_valid(a, token_kid("ES256", jwks_ec, "ec-1", c));
		assert_valid(a, token_kid("EdDSA", jwks_ed, "ed-1", c));
		assert_invalid(a, token_kid("RS256", jwks_rsa, "ec-1", c));
		assert_invalid(a, token_kid("ES256", ec_key, "ec-1", c));
		assert_invalid(a, token_kid("RS256", jwks_rsa, "rsa-2", c));
		if (with_bundle)
			assert_valid(a, token_kid("RS256", rsa_key, rsa_kid, c));
		else
			assert_invalid(a, token_kid("RS256", rsa_key, rsa_kid, c));
		berth_auth_free(a);
	}
	free(c);
}

static char *access_token(const char *access)
{
	char *c = claims(300, OMIT, OMIT, access);
	char *t = token_kid("ES256", ec_key, ec_kid, c);
	free(c);
	return t;
}

#define CH_PREFIX "Bearer realm=\"" REALM "\",service=\"" SERVICE "\""

static void test_access(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	const struct berth_access del_foo[] = { { "repository", "foo", "delete" } };
	const struct berth_access catalog[] = { { "registry", "catalog", "*" } };
	const struct berth_access mount[] = { { "repository", "foo", "pull" },
					      { "repository", "foo", "push" },
					      { "repository", "bar", "pull" } };
	const struct berth_access pull_bar[] = { { "repository", "bar", "pull" } };
	const struct berth_access pull_foo_sub[] = { { "repository", "foo/sub", "pull" } };
	char *t;

	/* pull only */
	t = access_token("[{\"type\":\"repository\",\"name\":\"foo\",\"actions\":[\"pull\"]}]");
	assert_int_equal(authz(a, t, pull_foo, 1), 0);
	assert_int_equal(authz(a, t, NULL, 0), 0); /* GET /v2/: any valid token */
	assert_int_equal(authz(a, t, push_foo, 2), BERTH_EDENIED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull,push\",error=\"insufficient_scope\"");
	assert_int_equal(authz(a, t, del_foo, 1), BERTH_EDENIED);
	assert_int_equal(authz(a, t, pull_bar, 1), BERTH_EDENIED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:bar:pull\",error=\"insufficient_scope\"");
	assert_int_equal(authz(a, t, pull_foo_sub, 1), BERTH_EDENIED);
	assert_int_equal(authz(a, t, catalog, 1), BERTH_EDENIED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"registry:catalog:*\",error=\"insufficient_scope\"");
	free(t);

	/* pull and push, in two entries that add up; a mount also needs pull on the source. */
	t = access_token("[{\"type\":\"repository\",\"name\":\"foo\",\"actions\":[\"pull\"]},"
			 "{\"type\":\"repository\",\"name\":\"foo\",\"actions\":[\"push\"]}]");
	assert_int_equal(authz(a, t, push_foo, 2), 0);
	assert_int_equal(authz(a, t, mount, 3), BERTH_EDENIED);
	assert_string_equal(challenge, CH_PREFIX
			    ",scope=\"repository:foo:pull,push repository:bar:pull\",error=\"insufficient_scope\"");
	free(t);

	/* "*" grants every action on its resource, and only there. */
	t = access_token("[{\"type\":\"repository\",\"name\":\"foo\",\"actions\":[\"*\"]}]");
	assert_int_equal(authz(a, t, push_foo, 2), 0);
	assert_int_equal(authz(a, t, del_foo, 1), 0);
	assert_int_equal(authz(a, t, pull_bar, 1), BERTH_EDENIED);
	assert_int_equal(authz(a, t, catalog, 1), BERTH_EDENIED);
	free(t);

	/* The catalog, and a type that only looks alike. */
	t = access_token("[{\"type\":\"registry\",\"name\":\"catalog\",\"actions\":[\"*\"]},"
			 "{\"type\":\"repositories\",\"name\":\"foo\",\"actions\":[\"*\"]}]");
	assert_int_equal(authz(a, t, catalog, 1), 0);
	assert_int_equal(authz(a, t, pull_foo, 1), BERTH_EDENIED);
	free(t);

	/* No access claim, or an empty one: authenticated, nothing granted. */
	t = access_token("[]");
	assert_int_equal(authz(a, t, NULL, 0), 0);
	assert_string_equal(user, "alice");
	assert_int_equal(authz(a, t, pull_foo, 1), BERTH_EDENIED);
	free(t);
	t = access_token(NULL);
	assert_int_equal(authz(a, t, pull_foo, 1), BERTH_EDENIED);
	free(t);
	t = access_token("null");
	assert_int_equal(authz(a, t, NULL, 0), 0);
	free(t);
	berth_auth_free(a);
}

static void test_challenges(void **state)
{
	(void)state;
	struct berth_auth *a = token_auth(bundle_path, NULL);
	const struct berth_access mount[] = { { "repository", "foo", "pull" },
					      { "repository", "foo", "push" },
					      { "repository", "lib/bar", "pull" } };

	assert_int_equal(authz_header(a, NULL, NULL, 0), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX);
	assert_int_equal(authz_header(a, NULL, mount, 3), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull,push repository:lib/bar:pull\"");
	/* Other schemes, or a Bearer header not of the form "Bearer <token>": no error param. */
	assert_int_equal(authz_header(a, "Basic YWxpY2U6c2VjcmV0", pull_foo, 1), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull\"");
	assert_int_equal(authz_header(a, "Bearer", pull_foo, 1), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull\"");
	assert_int_equal(authz_header(a, "Bearer a b", pull_foo, 1), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull\"");
	/* A challenge that would not fit loses its scope, not its realm. */
	char small[80];
	assert_int_equal(berth_auth_authorize(a, NULL, mount, 3, small, sizeof(small), NULL, 0), BERTH_EUNAUTHORIZED);
	assert_string_equal(small, CH_PREFIX);
	berth_auth_free(a);
}

/* autoredirect: the realm is built from the request's Host, as Distribution 2.8 does. */
static void test_autoredirect(void **state)
{
	(void)state;
	struct berth_config cfg;
	struct berth_auth *a = NULL;
	berth_config_defaults(&cfg);
	cfg.auth.kind = BERTH_AUTH_TOKEN;
	cfg.auth.autoredirect = 1;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "%s", REALM);
	snprintf(cfg.auth.service, sizeof(cfg.auth.service), "%s", SERVICE);
	snprintf(cfg.auth.issuer, sizeof(cfg.auth.issuer), "%s", ISSUER);
	snprintf(cfg.auth.rootcertbundle, sizeof(cfg.auth.rootcertbundle), "%s", bundle_path);
	assert_int_equal(berth_auth_new(&a, &cfg), 0);
	assert_int_equal(berth_auth_authorize_host(a, NULL, "registry.example.com:5000", pull_foo, 1,
						   challenge, sizeof(challenge), user, sizeof(user)),
			 BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Bearer realm=\"https://registry.example.com:5000/auth/token\","
				       "service=\"" SERVICE "\",scope=\"repository:foo:pull\"");
	/* No usable Host (absent, or with characters no host has): the configured realm. */
	assert_int_equal(berth_auth_authorize_host(a, NULL, "evil\"host", pull_foo, 1, challenge,
						   sizeof(challenge), user, sizeof(user)),
			 BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull\"");
	assert_int_equal(authz_header(a, NULL, pull_foo, 1), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, CH_PREFIX ",scope=\"repository:foo:pull\"");
	berth_auth_free(a);

	/* auth.token.autoredirectpath (Distribution 3) */
	snprintf(cfg.auth.autoredirectpath, sizeof(cfg.auth.autoredirectpath), "/v2/token");
	assert_int_equal(berth_auth_new(&a, &cfg), 0);
	assert_int_equal(berth_auth_authorize_host(a, NULL, "registry.example.com", pull_foo, 1, challenge,
						   sizeof(challenge), user, sizeof(user)),
			 BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Bearer realm=\"https://registry.example.com/v2/token\","
				       "service=\"" SERVICE "\",scope=\"repository:foo:pull\"");
	berth_auth_free(a);
	snprintf(cfg.auth.autoredirectpath, sizeof(cfg.auth.autoredirectpath), "token\"x");
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "auth.token.autoredirectpath: 'token\"x' is not an absolute URL path");
}

static void test_silly(void **state)
{
	(void)state;
	struct berth_config cfg;
	struct berth_auth *a = NULL;
	berth_config_defaults(&cfg);
	cfg.auth.kind = BERTH_AUTH_SILLY;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "silly-realm");
	snprintf(cfg.auth.service, sizeof(cfg.auth.service), "silly-service");
	assert_int_equal(berth_auth_new(&a, &cfg), 0);
	assert_int_equal(authz_header(a, NULL, push_foo, 2), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Bearer realm=\"silly-realm\",service=\"silly-service\","
				       "scope=\"repository:foo:pull repository:foo:push\"");
	assert_int_equal(authz_header(a, "", NULL, 0), BERTH_EUNAUTHORIZED);
	assert_string_equal(challenge, "Bearer realm=\"silly-realm\",service=\"silly-service\"");
	assert_int_equal(authz_header(a, "anything at all", push_foo, 2), 0);
	assert_string_equal(user, "silly");
	berth_auth_free(a);

	cfg.auth.service[0] = '\0';
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_string_equal(berth_err_message(BERTH_ERROR), "auth.silly.service must be set");
}

static void token_new_fails(const char *bundle, const char *jwks, const char *issuer, const char *want)
{
	struct berth_config cfg;
	struct berth_auth *a = NULL;
	berth_config_defaults(&cfg);
	cfg.auth.kind = BERTH_AUTH_TOKEN;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "%s", REALM);
	snprintf(cfg.auth.service, sizeof(cfg.auth.service), "%s", SERVICE);
	snprintf(cfg.auth.issuer, sizeof(cfg.auth.issuer), "%s", issuer);
	snprintf(cfg.auth.rootcertbundle, sizeof(cfg.auth.rootcertbundle), "%s", bundle);
	snprintf(cfg.auth.jwks, sizeof(cfg.auth.jwks), "%s", jwks);
	assert_int_equal(berth_auth_new(&a, &cfg), -1);
	assert_null(a);
	if (!strstr(berth_err_message(BERTH_ERROR), want))
		fail_msg("error '%s' does not mention '%s'", berth_err_message(BERTH_ERROR), want);
}

static void test_token_config_errors(void **state)
{
	(void)state;
	char path[600], path2[600], path3[600];
	token_new_fails(bundle_path, "", "", "auth.token.issuer must be set");
	token_new_fails("", "", ISSUER, "auth.token.rootcertbundle (or auth.token.jwks) must be set");
	token_new_fails("/nonexistent/bundle.pem", "", ISSUER, "cannot open /nonexistent/bundle.pem");
	snprintf(path, sizeof(path), "%s/empty.pem", tmpdir);
	write_file(path, "");
	token_new_fails(path, "", ISSUER, "holds no certificate");
	snprintf(path2, sizeof(path2), "%s/garbage.pem", tmpdir);
	write_file(path2, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
	token_new_fails(path2, "", ISSUER, "bad PEM certificate");
	snprintf(path3, sizeof(path3), "%s/bad.jwks", tmpdir);
	write_file(path3, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"!!\",\"e\":\"AQAB\"}]}");
	token_new_fails("", path3, ISSUER, "key \"k\" is not a usable");
	write_file(path3, "{\"keys\":");
	token_new_fails("", path3, ISSUER, "auth.token.jwks");
	write_file(path3, "{\"keys\":[]}");
	token_new_fails("", path3, ISSUER, "no signing key");
}

int main(void)
{
	berth_log_setup(BERTH_LOG_ERROR, BERTH_LOG_TEXT, NULL, NULL, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libtrust_kid),
		cmocka_unit_test(test_valid_algorithms),
		cmocka_unit_test(test_signing_algorithms),
		cmocka_unit_test(test_time_claims),
		cmocka_unit_test(test_issuer_audience),
		cmocka_unit_test(test_bad_signatures),
		cmocka_unit_test(test_unknown_kid),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_truncated_and_mutated),
		cmocka_unit_test(test_x5c),
		cmocka_unit_test(test_jwk_header),
		cmocka_unit_test(test_jwks),
		cmocka_unit_test(test_access),
		cmocka_unit_test(test_challenges),
		cmocka_unit_test(test_autoredirect),
		cmocka_unit_test(test_silly),
		cmocka_unit_test(test_token_config_errors),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

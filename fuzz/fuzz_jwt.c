/*
 * The token authenticator: compact JWS parsing, signature check (RS/PS/ES/EdDSA, key found by
 * x5c, jwk or kid), claims check and the access decision (src/auth/jwt.c, keys.c, b64.c, auth.c).
 *
 * One authenticator per process (auth.token with realm, service "fuzz-service", issuer
 * "fuzz-issuer"), its trust anchors made in LLVMFuzzerInitialize in a temp dir:
 *   rootcertbundle  self-signed certificates of a fresh EC P-256 key and of the fixed Ed25519 key
 *   jwks            the fixed Ed25519 key (kid "fuzz-ed25519") and a fresh RSA-2048 key ("fuzz-rsa")
 * The Ed25519 key is fixed (its seed is SHA-256("berth fuzz ed25519 key")) so that make-seeds.py
 * signs valid tokens with it: those seeds get past the signature into the claims.
 *
 * Every input is, as is:
 *   - the token of "Bearer <input>" and the whole Authorization header, through
 *     berth_auth_authorize with no access (GET /v2/), a pull and a pull+push+catalog;
 *   - a token for berth_jwt_verify; standard and base64url for berth_b64_decode; a JWK (when it is
 *     JSON) for berth_jwk_to_pkey; an Authorization header for berth_basic_parse.
 * An input starting with '{' is also "<header JSON>\n<claims JSON>" that the fuzzer encodes and
 * signs itself with the key the header's alg needs (RSA, EC or Ed25519), so that mutated headers
 * and claims reach the claims checks; in it @X5C@ becomes the EC certificate (base64 DER),
 * @KID@ the EC key's libtrust kid and @JWK@ the EC key as a JWK object.
 *
 * Properties: no crash or leak; only 0 / EUNAUTHORIZED / EDENIED, EDENIED never without an
 * access, a Bearer challenge with the right error on every refusal; asking for more access is
 * never allowed when less is refused; the authorizer agrees with berth_jwt_verify plus a model
 * of the access claims; an accepted token has a supported alg, the issuer, audience and an exp,
 * and is refused once its signature or claims are altered; base64 decodes round-trip; a JWK
 * key has a libtrust kid; Basic credentials round-trip.
 */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "fuzz_common.h"

#define ISSUER "fuzz-issuer"
#define SERVICE "fuzz-service"
#define CHALLENGE_CAP 1024

static struct berth_auth *auth;
static struct berth_keyset *keys;
static EVP_PKEY *ec_key, *rsa_key, *ed_key;
static char *x5c_b64;  /* the EC certificate, standard base64 DER */
static char *ec_jwk;   /* the EC public key as a JWK object */
static char ec_kid[BERTH_LIBTRUST_KID_LEN];
static char dir[] = "/tmp/berth-fuzz-jwt-XXXXXX";
static char bundle_path[256], jwks_path[256];

static const struct berth_access pull[] = { { "repository", "library/fuzz", "pull" } };
static const struct berth_access more[] = {
	{ "repository", "library/fuzz", "pull" },
	{ "repository", "library/fuzz", "push" },
	{ "registry", "catalog", "*" },
};

/* ---- set-up ---- */

static void cleanup(void)
{
	unlink(bundle_path);
	unlink(jwks_path);
	rmdir(dir);
}

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	if (!c || !name || X509_set_version(c, X509_VERSION_3) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(c), 1) != 1 || !X509_gmtime_adj(X509_getm_notBefore(c), -86400) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 365 * 10) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_subject_name(c, name) != 1 || X509_set_issuer_name(c, name) != 1 ||
	    X509_set_pubkey(c, key) != 1 ||
	    !X509_sign(c, key, EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()))
		abort();
	X509_NAME_free(name);
	return c;
}

static char *b64url_param(EVP_PKEY *key, const char *param)
{
	BIGNUM *bn = NULL;
	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		abort();
	unsigned char buf[1024];
	int n = BN_bn2bin(bn, buf);
	BN_free(bn);
	return berth_b64_encode(BERTH_B64_URL, buf, (size_t)n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	unsigned char seed[32], raw[65];
	size_t rawlen;
	static const char seed_text[] = "berth fuzz ed25519 key";

	berth_log_setup(BERTH_LOG_ERROR, BERTH_LOG_TEXT, NULL, NULL, 0);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	snprintf(bundle_path, sizeof(bundle_path), "%s/bundle.pem", dir);
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);

	SHA256((const unsigned char *)seed_text, strlen(seed_text), seed);
	ed_key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	ec_key = EVP_EC_gen("P-256");
	rsa_key = EVP_RSA_gen(2048);
	if (!ed_key || !ec_key || !rsa_key)
		abort();

	/* The bundle: both certificates. */
	X509 *ec_cert = self_signed(ec_key, "berth fuzz EC");
	X509 *ed_cert = self_signed(ed_key, "berth fuzz Ed25519");
	FILE *f = fopen(bundle_path, "w");
	if (!f || PEM_write_X509(f, ec_cert) != 1 || PEM_write_X509(f, ed_cert) != 1 || fclose(f) != 0)
		abort();
	unsigned char *der = NULL;
	int derlen = i2d_X509(ec_cert, &der);
	if (derlen <= 0)
		abort();
	x5c_b64 = berth_b64_encode(BERTH_B64_STD, der, (size_t)derlen);
	OPENSSL_free(der);
	X509_free(ec_cert);
	X509_free(ed_cert);

	/* The EC key as a JWK, and its libtrust kid. */
	if (EVP_PKEY_get_octet_string_param(ec_key, OSSL_PKEY_PARAM_PUB_KEY, raw, sizeof(raw), &rawlen) != 1 ||
	    rawlen != 65 || berth_libtrust_kid(ec_key, ec_kid) < 0)
		abort();
	char *x = berth_b64_encode(BERTH_B64_URL, raw + 1, 32), *y = berth_b64_encode(BERTH_B64_URL, raw + 33, 32);
	if (asprintf(&ec_jwk, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y) < 0)
		abort();
	free(x);
	free(y);

	/* The JWKS: Ed25519 and RSA. */
	if (EVP_PKEY_get_raw_public_key(ed_key, raw, &(size_t){ 32 }) != 1)
		abort();
	char *ed_x = berth_b64_encode(BERTH_B64_URL, raw, 32);
	char *n = b64url_param(rsa_key, OSSL_PKEY_PARAM_RSA_N), *e = b64url_param(rsa_key, OSSL_PKEY_PARAM_RSA_E);
	f = fopen(jwks_path, "w");
	if (!f)
		abort();
	fprintf(f, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"fuzz-ed25519\",\"use\":\"sig\",\"x\":\"%s\"},"
		   "{\"kty\":\"RSA\",\"kid\":\"fuzz-rsa\",\"n\":\"%s\",\"e\":\"%s\"}]}\n", ed_x, n, e);
	if (fclose(f) != 0)
		abort();
	free(ed_x);
	free(n);
	free(e);

	static struct berth_config cfg; /* large: not on the stack */
	cfg.auth.kind = BERTH_AUTH_TOKEN;
	snprintf(cfg.auth.realm, sizeof(cfg.auth.realm), "https://auth.example.com/token");
	snprintf(cfg.auth.service, sizeof(cfg.auth.service), SERVICE);
	snprintf(cfg.auth.issuer, sizeof(cfg.auth.issuer), ISSUER);
	snprintf(cfg.auth.rootcertbundle, sizeof(cfg.auth.rootcertbundle), "%s", bundle_path);
	snprintf(cfg.auth.jwks, sizeof(cfg.auth.jwks), "%s", jwks_path);
	if (berth_auth_new(&auth, &cfg) != 0 || !auth ||
	    berth_keyset_load(&keys, bundle_path, jwks_path) != 0) {
		fprintf(stderr, "fuzz_jwt: set-up failed: %s\n", berth_err_message(BERTH_ERROR));
		abort();
	}
	if (getenv("FUZZ_JWT_PRINT"))
		fprintf(stderr, "fuzz_jwt: EC kid %s\n", ec_kid);
	return 0;
}

/* ---- helpers ---- */

/* The model of the access claims: every access is named by an entry with its action or "*". */
static bool model_grants(const json_t *claims, const struct berth_access *acc, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		bool found = false;
		const json_t *list = json_object_get(claims, "access"), *ra;
		for (size_t i = 0; !found && i < json_array_size(list); i++) {
			ra = json_array_get(list, i);
			const char *t = json_string_value(json_object_get(ra, "type"));
			const char *nm = json_string_value(json_object_get(ra, "name"));
			const json_t *acts = json_object_get(ra, "actions");
			if (!t || !nm || strcmp(t, acc[k].type) || strcmp(nm, acc[k].name))
				continue;
			for (size_t j = 0; j < json_array_size(acts); j++) {
				const char *a = json_string_value(json_array_get(acts, j));
				if (a && (!strcmp(a, "*") || !strcmp(a, acc[k].action)))
					found = true;
			}
		}
		if (!found)
			return false;
	}
	return true;
}

static int authorize(const char *header, const struct berth_access *acc, size_t n)
{
	char challenge[CHALLENGE_CAP], user[128];
	memset(challenge, 'x', sizeof(challenge));
	memset(user, 'x', sizeof(user));
	int rc = berth_auth_authorize(auth, header, acc, n, challenge, sizeof(challenge), user, sizeof(user));
	FUZZ_CHECK(rc == 0 || rc == BERTH_EUNAUTHORIZED || rc == BERTH_EDENIED, "rc %d", rc);
	FUZZ_CHECK(memchr(challenge, '\0', sizeof(challenge)) && memchr(user, '\0', sizeof(user)),
		   "unterminated challenge or user");
	FUZZ_CHECK(n > 0 || rc != BERTH_EDENIED, "EDENIED without any access asked");
	if (rc == 0) {
		FUZZ_CHECK(challenge[0] == '\0', "challenge on success: %s", challenge);
		FUZZ_CHECK(header && strncasecmp(header, "Bearer ", 7) == 0, "allowed without a Bearer token");
	} else {
		FUZZ_CHECK(strncmp(challenge, "Bearer realm=\"", 14) == 0, "challenge %s", challenge);
		FUZZ_CHECK(user[0] == '\0', "user on refusal");
		if (rc == BERTH_EDENIED)
			FUZZ_CHECK(strstr(challenge, "error=\"insufficient_scope\""), "challenge %s", challenge);
		else if (!header || (strncasecmp(header, "Bearer ", 7) != 0 &&
				     strlen(header) <= BERTH_AUTH_HEADER_MAX))
			FUZZ_CHECK(!strstr(challenge, "error="), "error without a token: %s", challenge);
		else if (!strchr(header + 7, ' '))
			FUZZ_CHECK(strstr(challenge, "error=\"invalid_token\""), "challenge %s", challenge);
	}
	return rc;
}

/* The authorizer on "Bearer <token>" with the three access sets, checked against
 * berth_jwt_verify at the same second and the model of the access claims. */
static void check_bearer(const char *token, size_t len)
{
	size_t hlen = 7 + len;
	char *header = malloc(hlen + 1);
	if (!header)
		abort();
	memcpy(header, "Bearer ", 7);
	memcpy(header + 7, token, len);
	header[hlen] = '\0';

	time_t t0 = time(NULL);
	int r0 = authorize(header, NULL, 0);
	int r1 = authorize(header, pull, 1);
	int r2 = authorize(header, more, 3);
	time_t t1 = time(NULL);
	FUZZ_CHECK(r2 != 0 || r1 == 0, "more access allowed than a pull");
	FUZZ_CHECK(r1 != 0 || r0 == 0, "a pull allowed but not GET /v2/");

	/* A token the authorizer sees whole (no NUL, no space, under the header cap). */
	if (t0 == t1 && !memchr(token, '\0', len) && !memchr(token, ' ', len) && hlen <= BERTH_AUTH_HEADER_MAX) {
		const struct berth_jwt_policy pol = { .keys = keys, .issuer = ISSUER, .audience = SERVICE };
		json_t *claims = NULL;
		int v = berth_jwt_verify(token, len, &pol, (int64_t)t0, &claims);
		FUZZ_CHECK((v == 0) == (r0 == 0), "verify %d, authorize %d (%s)", v, r0,
			   v ? berth_err_message(v) : "");
		if (v == 0) {
			FUZZ_CHECK((r1 == 0) == model_grants(claims, pull, 1), "pull: authorize %d", r1);
			FUZZ_CHECK((r2 == 0) == model_grants(claims, more, 3), "more: authorize %d", r2);
			FUZZ_CHECK(r1 == 0 || r1 == BERTH_EDENIED, "valid token, pull %d", r1);
		}
		json_decref(claims);
	}
	free(header);
}

/* berth_jwt_verify on len bytes (an exact-size copy, no NUL). Returns the claims or NULL. */
static json_t *verify(const char *token, size_t len, int64_t now)
{
	const struct berth_jwt_policy pol = { .keys = keys, .issuer = ISSUER, .audience = SERVICE };
	char *copy = malloc(len ? len : 1);
	json_t *claims = (json_t *)1;
	if (!copy)
		abort();
	memcpy(copy, token, len);
	berth_err_clear();
	int rc = berth_jwt_verify(copy, len, &pol, now, &claims);
	free(copy);
	if (rc != 0) {
		const struct berth_failure *why = berth_err_last();
		FUZZ_CHECK(rc == BERTH_EUNAUTHORIZED && !claims && why && why->code == rc,
			   "refusal rc %d", rc);
		return NULL;
	}
	FUZZ_CHECK(json_is_object(claims), "claims not an object");
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	FUZZ_CHECK(iss && !strcmp(iss, ISSUER), "accepted issuer");
	FUZZ_CHECK(json_is_number(json_object_get(claims, "exp")), "accepted without exp");
	const json_t *aud = json_object_get(claims, "aud");
	bool aud_ok = json_is_string(aud) && !strcmp(json_string_value(aud), SERVICE);
	for (size_t i = 0; i < json_array_size(aud); i++)
		aud_ok |= json_is_string(json_array_get(aud, i)) &&
			  !strcmp(json_string_value(json_array_get(aud, i)), SERVICE);
	FUZZ_CHECK(aud_ok, "accepted audience");
	return claims;
}

/* ---- the internals ---- */

static void check_b64(enum berth_b64 v, const char *in, size_t len)
{
	unsigned char *out = NULL, *out2 = NULL;
	size_t n = 0, n2 = 0;
	if (berth_b64_decode(v, in, len, &out, &n) != 0)
		return;
	FUZZ_CHECK(n <= len / 4 * 3 + 2 && out[n] == '\0', "decoded %zu bytes from %zu", n, len);
	char *enc = berth_b64_encode(v, out, n);
	size_t pad = 0;
	while (pad < len && pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	FUZZ_CHECK(strlen(enc) == (v == BERTH_B64_STD ? len : len - pad), "re-encoded length %zu of %zu",
		   strlen(enc), len);
	FUZZ_CHECK(berth_b64_decode(v, enc, strlen(enc), &out2, &n2) == 0 && n2 == n && !memcmp(out, out2, n),
		   "re-encoded form does not decode to the same bytes");
	free(enc);
	free(out);
	free(out2);
}

static void check_jwk(const json_t *jwk)
{
	EVP_PKEY *k = berth_jwk_to_pkey(jwk);
	if (!k)
		return;
	int id = EVP_PKEY_get_base_id(k);
	FUZZ_CHECK(id == EVP_PKEY_RSA || id == EVP_PKEY_EC || id == EVP_PKEY_ED25519, "key type %d", id);
	char kid[BERTH_LIBTRUST_KID_LEN];
	FUZZ_CHECK(berth_libtrust_kid(k, kid) == 0 && strlen(kid) == BERTH_LIBTRUST_KID_LEN - 1, "libtrust kid");
	berth_keyset_has(keys, k);
	EVP_PKEY_free(k);
	ERR_clear_error();
}

static void check_basic(const char *header)
{
	char *user = (char *)1, *pass = (char *)1;
	if (berth_basic_parse(header, &user, &pass) != 0) {
		FUZZ_CHECK(!user && !pass, "outputs set on refusal");
		return;
	}
	FUZZ_CHECK(user[0] && !strchr(user, ':'), "user \"%s\"", user);
	/* Basic of user:password again gives the same pair. */
	size_t ul = strlen(user), pl = strlen(pass);
	char *plain = malloc(ul + pl + 2);
	if (!plain)
		abort();
	snprintf(plain, ul + pl + 2, "%s:%s", user, pass);
	char *b64 = berth_b64_encode(BERTH_B64_STD, (unsigned char *)plain, ul + pl + 1);
	char *again = malloc(strlen(b64) + 7);
	if (!again)
		abort();
	sprintf(again, "basic %s", b64);
	char *u2, *p2;
	FUZZ_CHECK(berth_basic_parse(again, &u2, &p2) == 0 && !strcmp(u2, user) && !strcmp(p2, pass),
		   "Basic credentials do not round-trip");
	berth_secret_free(u2);
	berth_secret_free(p2);
	free(again);
	free(b64);
	free(plain);
	berth_secret_free(user);
	berth_secret_free(pass);
}

/* ---- tokens the fuzzer signs ---- */

/* s with every @X5C@, @KID@ and @JWK@ replaced (a new string). */
static char *expand(const char *s)
{
	static const char *names[] = { "@X5C@", "@KID@", "@JWK@" };
	const char *values[] = { x5c_b64, ec_kid, ec_jwk };
	size_t cap = strlen(s) + 1, len = 0;
	for (const char *p = s; (p = strchr(p, '@')); p++)
		cap += strlen(x5c_b64);
	char *out = malloc(cap);
	if (!out)
		abort();
	while (*s) {
		size_t i;
		for (i = 0; i < 3; i++) {
			if (!strncmp(s, names[i], strlen(names[i])))
				break;
		}
		if (i < 3) {
			len += (size_t)sprintf(out + len, "%s", values[i]);
			s += strlen(names[i]);
		} else {
			out[len++] = *s++;
		}
	}
	out[len] = '\0';
	return out;
}

/* Signs input with the key alg asks for (Ed25519 for anything unknown); a base64url signature. */
static char *sign(const char *alg, const char *input, size_t len)
{
	EVP_PKEY *key = ed_key;
	const EVP_MD *md = NULL;
	int pss = 0, ec = 0;
	if (alg && (!strncmp(alg, "RS", 2) || !strncmp(alg, "PS", 2) || !strncmp(alg, "ES", 2))) {
		key = alg[0] == 'E' ? ec_key : rsa_key;
		pss = alg[0] == 'P';
		ec = alg[0] == 'E';
		md = !strcmp(alg + 2, "384") ? EVP_sha384() : !strcmp(alg + 2, "512") ? EVP_sha512() : EVP_sha256();
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char sig[512], raw[64];
	size_t siglen = sizeof(sig);
	if (!ctx || EVP_DigestSignInit(ctx, &pctx, md, NULL, key) != 1 ||
	    (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, len) != 1)
		abort();
	EVP_MD_CTX_free(ctx);
	if (!ec)
		return berth_b64_encode(BERTH_B64_URL, sig, siglen);
	const unsigned char *p = sig;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
	if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) != 32)
		abort();
	ECDSA_SIG_free(es);
	return berth_b64_encode(BERTH_B64_URL, raw, 64);
}

static void check_signed(const char *text)
{
	const char *nl = strchr(text, '\n');
	size_t hlen = nl ? (size_t)(nl - text) : strlen(text);
	char *htext = strndup(text, hlen);
	char *header = expand(htext), *claims = expand(nl ? nl + 1 : "{}");
	free(htext);
	json_t *hj = json_loads(header, 0, NULL);
	const char *alg = json_string_value(json_object_get(hj, "alg"));
	if (json_is_object(json_object_get(hj, "jwk")))
		check_jwk(json_object_get(hj, "jwk"));

	char *h64 = berth_b64_encode(BERTH_B64_URL, (unsigned char *)header, strlen(header));
	char *c64 = berth_b64_encode(BERTH_B64_URL, (unsigned char *)claims, strlen(claims));
	size_t inlen = strlen(h64) + 1 + strlen(c64);
	char *token = malloc(inlen + 1 + 700);
	if (!token)
		abort();
	sprintf(token, "%s.%s", h64, c64);
	char *sig = sign(alg, token, inlen);
	sprintf(token + inlen, ".%s", sig);
	size_t tlen = strlen(token);

	int64_t now = (int64_t)time(NULL);
	json_t *ok = verify(token, tlen, now);
	if (ok) {
		static const char *const supported[] = { "RS256", "RS384", "RS512", "PS256", "PS384",
							 "PS512", "ES256", "ES384", "ES512", "EdDSA" };
		bool known = false;
		for (size_t i = 0; alg && i < sizeof(supported) / sizeof(supported[0]); i++)
			known |= !strcmp(alg, supported[i]);
		FUZZ_CHECK(known, "accepted alg \"%s\"", alg ? alg : "(none)");
		FUZZ_CHECK(!json_object_get(hj, "crit"), "accepted crit");
		json_decref(ok);
		/* An altered signature (its first character) is refused. */
		token[inlen + 1] = token[inlen + 1] == 'A' ? 'B' : 'A';
		FUZZ_CHECK(!(ok = verify(token, tlen, now)), "altered signature accepted");
		token[inlen + 1] = sig[0];
		/* Claims other than those signed (one more space) are refused. */
		size_t cl = strlen(claims);
		char *claims2 = malloc(cl + 2);
		if (!claims2)
			abort();
		memcpy(claims2, claims, cl);
		memcpy(claims2 + cl, " ", 2);
		char *c64b = berth_b64_encode(BERTH_B64_URL, (unsigned char *)claims2, cl + 1);
		char *t2 = malloc(strlen(h64) + strlen(c64b) + strlen(sig) + 3);
		if (!t2)
			abort();
		int t2len = sprintf(t2, "%s.%s.%s", h64, c64b, sig);
		FUZZ_CHECK(!(ok = verify(t2, (size_t)t2len, now)), "claims not covered by the signature");
		free(t2);
		free(c64b);
		free(claims2);
	}
	check_bearer(token, tlen);

	json_decref(hj);
	free(sig);
	free(token);
	free(h64);
	free(c64);
	free(header);
	free(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	/* The input as the token, and as the whole header. */
	check_bearer(s, size);
	authorize(s, pull, 1);
	check_basic(s);
	json_t *v = verify((const char *)data, size, (int64_t)time(NULL));
	json_decref(v);

	/* The pieces. */
	check_b64(BERTH_B64_URL, s, size);
	check_b64(BERTH_B64_STD, s, size);
	if (size && data[0] == '{') {
		json_t *j = json_loadb(s, size, 0, NULL);
		if (json_is_object(j))
			check_jwk(j);
		json_decref(j);
		check_signed(s);
	}
	free(s);
	ERR_clear_error();
	return 0;
}

/*
 * JWT bearer tokens as Distribution's token auth accepts them: a compact JWS
 * (base64url(header) "." base64url(claims) "." base64url(signature)) signed with an asymmetric
 * key the registry trusts. The signature is checked before the claims are even parsed, so
 * nothing an untrusted party wrote is interpreted beyond the header.
 *
 * Algorithms: RS256/384/512 (PKCS#1 v1.5), PS256/384/512 (PSS, salt = hash length),
 * ES256/384/512 (the JWS signature is r || s, each the curve's size, converted to DER for
 * OpenSSL), EdDSA (Ed25519). "none" and the HMAC algorithms are refused: every key is public.
 */
#include "auth/auth_int.h"

#include <math.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "core/err.h"

enum alg_kind { ALG_RSA, ALG_PSS, ALG_EC, ALG_ED };

struct alg {
	const char *name;
	enum alg_kind kind;
	const EVP_MD *(*md)(void); /* NULL for EdDSA, which hashes internally */
	int ec_bits;               /* the curve an ES* algorithm requires */
};

static const struct alg algs[] = {
	{ "RS256", ALG_RSA, EVP_sha256, 0 },
	{ "RS384", ALG_RSA, EVP_sha384, 0 },
	{ "RS512", ALG_RSA, EVP_sha512, 0 },
	{ "PS256", ALG_PSS, EVP_sha256, 0 },
	{ "PS384", ALG_PSS, EVP_sha384, 0 },
	{ "PS512", ALG_PSS, EVP_sha512, 0 },
	{ "ES256", ALG_EC, EVP_sha256, 256 },
	{ "ES384", ALG_EC, EVP_sha384, 384 },
	{ "ES512", ALG_EC, EVP_sha512, 521 },
	{ "EdDSA", ALG_ED, NULL, 0 },
};

/* The three dot-separated parts of a compact JWS. */
struct parts {
	const char *p[3];
	size_t len[3];
};

static int split(const char *token, size_t len, struct parts *out)
{
	size_t start = 0;
	int n = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && token[i] != '.')
			continue;
		if (n == 3)
			return BERTH_ERROR;
		out->p[n] = token + start;
		out->len[n] = i - start;
		n++;
		start = i + 1;
	}
	return n == 3 && out->len[0] && out->len[1] && out->len[2] ? 0 : -1;
}

/* A base64url part holding a JSON object, or NULL. */
static json_t *decode_object(const char *part, size_t len)
{
	unsigned char *raw;
	size_t rawlen;
	if (berth_b64_decode(BERTH_B64_URL, part, len, &raw, &rawlen) < 0)
		return NULL;
	json_t *obj = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

static const struct alg *find_alg(const char *name)
{
	for (size_t i = 0; name && i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	}
	return NULL;
}

/* 1 if key is of the kind (and curve) the algorithm needs: no RSA key verifies an ES256. */
static int key_fits(const EVP_PKEY *key, const struct alg *alg)
{
	switch (alg->kind) {
	case ALG_RSA:
	case ALG_PSS:
		return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
	case ALG_EC:
		return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == alg->ec_bits;
	case ALG_ED:
		return EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
	}
	return 0;
}

/* JWS r || s (each exactly the curve's size) to the DER ECDSA-Sig-Value OpenSSL verifies. */
static int ecdsa_raw_to_der(const unsigned char *sig, size_t len, int bits, unsigned char **der,
			    size_t *derlen)
{
	size_t half = ((size_t)bits + 7) / 8;
	int rc = BERTH_ERROR;
	if (len != 2 * half)
		return BERTH_ERROR;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
	BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
	if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out_sig;
	}
	/* es owns r and s now. */
	*der = NULL;
	int n = i2d_ECDSA_SIG(es, der);
	if (n > 0) {
		*derlen = (size_t)n;
		rc = 0;
	}
out_sig:
	ECDSA_SIG_free(es);
	return rc;
}

static int signature_valid(EVP_PKEY *key, const struct alg *alg, const char *input, size_t inlen,
			   const unsigned char *sig, size_t siglen)
{
	unsigned char *der = NULL;
	size_t derlen = 0;
	EVP_PKEY_CTX *pctx = NULL;
	int ok = 0;
	if (alg->kind == ALG_EC) {
		if (ecdsa_raw_to_der(sig, siglen, alg->ec_bits, &der, &derlen) < 0)
			return 0;
		sig = der;
		siglen = derlen;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, alg->md ? alg->md() : NULL, NULL, key) != 1)
		goto out_ctx;
	if (alg->kind == ALG_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		goto out_ctx;
	ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, inlen) == 1;
out_ctx:
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	ERR_clear_error();
	return ok;
}

/* A JWK named in the header is trusted if it carries a chain to a bundle certificate whose
 * leaf is that key, or, without a chain, if it is one of the trusted keys (Distribution's
 * parseAndVerifyRawJWK). */
static EVP_PKEY *jwk_key(const struct berth_keyset *ks, const json_t *jwk)
{
	EVP_PKEY *key = berth_jwk_to_pkey(jwk);
	if (!key) {
		berth_err_set(BERTH_EUNAUTHORIZED, "unusable jwk in the token header");
		return NULL;
	}
	const json_t *chain = json_object_get(jwk, "x5c");
	int trusted;
	if (chain) {
		EVP_PKEY *leaf = json_is_array(chain) ? berth_keyset_verify_chain(ks, chain) : NULL;
		trusted = leaf && EVP_PKEY_eq(leaf, key) == 1;
		EVP_PKEY_free(leaf);
	} else {
		trusted = berth_keyset_has(ks, key);
	}
	if (!trusted) {
		berth_err_set(BERTH_EUNAUTHORIZED, "jwk in the token header is not a trusted key");
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* The key that must have signed the token (caller frees), looked for the way Distribution does:
 * x5c first, then jwk, then kid. */
static EVP_PKEY *signing_key(const struct berth_keyset *ks, const json_t *header)
{
	const json_t *x5c = json_object_get(header, "x5c");
	const json_t *jwk = json_object_get(header, "jwk");
	const char *kid = json_string_value(json_object_get(header, "kid"));
	EVP_PKEY *key;

	if (x5c && !json_is_array(x5c)) {
		berth_err_set(BERTH_EUNAUTHORIZED, "x5c is not an array");
		return NULL;
	}
	if (json_array_size(x5c) > 0) {
		key = berth_keyset_verify_chain(ks, x5c);
		if (!key)
			berth_err_set(BERTH_EUNAUTHORIZED, "x5c chain does not lead to a trusted certificate");
		return key;
	}
	if (jwk)
		return jwk_key(ks, jwk);
	if (kid && *kid) {
		key = berth_keyset_by_kid(ks, kid);
		if (!key) {
			berth_err_set(BERTH_EUNAUTHORIZED, "token signed by an unknown kid");
			return NULL;
		}
		EVP_PKEY_up_ref(key);
		return key;
	}
	berth_err_set(BERTH_EUNAUTHORIZED, "token header names no x5c, jwk or kid");
	return NULL;
}

int berth_jwt_algorithm_bit(const char *name, unsigned *bit)
{
	static const char *const hmac[] = { "HS256", "HS384", "HS512" };
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (strcmp(algs[i].name, name) == 0) {
			*bit = 1u << i;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(hmac) / sizeof(hmac[0]); i++) {
		if (strcmp(hmac[i], name) == 0) {
			*bit = 0;
			return 0;
		}
	}
	return BERTH_ERROR;
}

/* Header and signature: 0 when the token was signed by a trusted key with an allowed algorithm. */
static int verify_signature(const struct parts *parts, const struct berth_keyset *ks, unsigned allowed)
{
	unsigned char *sig = NULL;
	size_t siglen;
	EVP_PKEY *key = NULL;
	int rc = BERTH_ERROR;
	json_t *header = decode_object(parts->p[0], parts->len[0]);
	if (!header) {
		berth_err_set(BERTH_EUNAUTHORIZED, "malformed token header");
		return BERTH_ERROR;
	}
	const struct alg *alg = find_alg(json_string_value(json_object_get(header, "alg")));
	if (!alg) {
		berth_err_set(BERTH_EUNAUTHORIZED, "unsupported signing algorithm");
		goto out_header;
	}
	if (allowed && !(allowed & (1u << (alg - algs)))) {
		berth_err_set(BERTH_EUNAUTHORIZED, "signing algorithm not in auth.token.signingalgorithms");
		goto out_header;
	}
	if (json_object_get(header, "crit")) {
		/* RFC 7515 4.1.11: extensions we don't know must make the token invalid. */
		berth_err_set(BERTH_EUNAUTHORIZED, "token header has critical extensions");
		goto out_header;
	}
	if (berth_b64_decode(BERTH_B64_URL, parts->p[2], parts->len[2], &sig, &siglen) < 0) {
		berth_err_set(BERTH_EUNAUTHORIZED, "malformed token signature");
		goto out_header;
	}
	key = signing_key(ks, header);
	if (!key)
		goto out_sig;
	if (!key_fits(key, alg)) {
		berth_err_set(BERTH_EUNAUTHORIZED, "signing algorithm does not match the key");
		goto out_key;
	}
	/* The signing input is header "." claims, as sent. */
	size_t inlen = parts->len[0] + 1 + parts->len[1];
	if (!signature_valid(key, alg, parts->p[0], inlen, sig, siglen)) {
		berth_err_set(BERTH_EUNAUTHORIZED, "bad token signature");
		goto out_key;
	}
	rc = 0;
out_key:
	EVP_PKEY_free(key);
out_sig:
	free(sig);
out_header:
	json_decref(header);
	return rc;
}

/* A NumericDate claim: 1 and *out when present and sane, 0 when absent, -1 when malformed. */
static int numeric_date(const json_t *claims, const char *name, int64_t *out)
{
	const json_t *v = json_object_get(claims, name);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return BERTH_ERROR;
	double d = json_number_value(v);
	if (!isfinite(d) || d < -1e15 || d > 1e15)
		return BERTH_ERROR;
	/* Rounded down (without libm's floor): a fractional second is not yet the next one. */
	int64_t t = (int64_t)d;
	*out = (double)t > d ? t - 1 : t;
	return 1;
}

static int audience_matches(const json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	size_t i;
	const json_t *a;
	json_array_foreach(aud, i, a) {
		if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
			return 1;
	}
	return 0;
}

/* 1 if `access` is absent or a list of {type, name, actions[]} with string members. */
static int access_wellformed(const json_t *access)
{
	if (!access || json_is_null(access))
		return 1;
	if (!json_is_array(access))
		return 0;
	size_t i, j;
	const json_t *ra, *act;
	json_array_foreach(access, i, ra) {
		const json_t *actions = json_object_get(ra, "actions");
		if (!json_is_object(ra) || !json_is_string(json_object_get(ra, "type")) ||
		    !json_is_string(json_object_get(ra, "name")))
			return 0;
		if (actions && !json_is_null(actions) && !json_is_array(actions))
			return 0;
		json_array_foreach(actions, j, act) {
			if (!json_is_string(act))
				return 0;
		}
	}
	return 1;
}

static int check_claims(const json_t *claims, const struct berth_jwt_policy *p, int64_t now)
{
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	const json_t *sub = json_object_get(claims, "sub");
	int64_t exp = 0, nbf = 0, iat = 0;
	int has_exp = numeric_date(claims, "exp", &exp);
	int has_nbf = numeric_date(claims, "nbf", &nbf);
	int has_iat = numeric_date(claims, "iat", &iat);
	const char *why;

	if (!iss || strcmp(iss, p->issuer) != 0)
		why = "token from an untrusted issuer";
	else if (!audience_matches(json_object_get(claims, "aud"), p->audience))
		why = "token intended for another audience";
	else if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
		why = "malformed exp, nbf or iat claim";
	else if (has_exp == 0 || now > exp + BERTH_JWT_LEEWAY_S)
		why = "token expired";
	else if (has_nbf && now < nbf - BERTH_JWT_LEEWAY_S)
		why = "token not valid yet (nbf)";
	else if (has_iat && now < iat - BERTH_JWT_LEEWAY_S)
		why = "token issued in the future (iat)";
	else if (sub && !json_is_string(sub))
		why = "malformed sub claim";
	else if (!access_wellformed(json_object_get(claims, "access")))
		why = "malformed access claim";
	else
		return 0;
	return berth_err_set(BERTH_EUNAUTHORIZED, "%s", why);
}

int berth_jwt_verify(const char *token, size_t len, const struct berth_jwt_policy *p, int64_t now,
		     json_t **claims)
{
	struct parts parts;
	json_t *c = NULL;
	*claims = NULL;
	if (split(token, len, &parts) < 0) {
		berth_err_set(BERTH_EUNAUTHORIZED, "malformed token (not three non-empty parts)");
		goto err;
	}
	if (verify_signature(&parts, p->keys, p->algorithms) < 0)
		goto err;
	c = decode_object(parts.p[1], parts.len[1]);
	if (!c) {
		berth_err_set(BERTH_EUNAUTHORIZED, "malformed token claims");
		goto err;
	}
	if (check_claims(c, p, now) < 0)
		goto err_claims;
	*claims = c;
	return 0;
err_claims:
	json_decref(c);
err:
	return BERTH_EUNAUTHORIZED;
}

static int has_action(const json_t *actions, const char *action)
{
	size_t i;
	const json_t *a;
	json_array_foreach(actions, i, a) {
		const char *s = json_string_value(a);
		if (s && (strcmp(s, "*") == 0 || strcmp(s, action) == 0))
			return 1;
	}
	return 0;
}

int berth_jwt_grants(const json_t *claims, const struct berth_access *a)
{
	size_t i;
	const json_t *ra;
	/* Entries naming the same resource add up, as in Distribution's accessSet. */
	json_array_foreach(json_object_get(claims, "access"), i, ra) {
		const char *type = json_string_value(json_object_get(ra, "type"));
		const char *name = json_string_value(json_object_get(ra, "name"));
		if (type && name && strcmp(type, a->type) == 0 && strcmp(name, a->name) == 0 &&
		    has_action(json_object_get(ra, "actions"), a->action))
			return 1;
	}
	return 0;
}

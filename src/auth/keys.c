/*
 * Token signing keys. Two sources, as Distribution's token auth has them:
 *   rootcertbundle  PEM certificates. They are the trust anchors for tokens carrying an x5c
 *                   chain, and their public keys are the trusted keys a `kid` (libtrust key id)
 *                   or a `jwk` header may name.
 *   jwks            a JSON Web Key Set; its keys are looked up by their `kid`.
 * Once loaded the set is never modified, so every thread reads it without a lock (OpenSSL's
 * X509_STORE locks internally while chains are verified against it).
 */
#include "auth/auth_int.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"

/* Caps on what a config file or a token may make us hold. */
#define JWKS_FILE_MAX (1024 * 1024)
#define X5C_CHAIN_MAX 8

struct key {
	char *kid;     /* JWKS kid, or the libtrust id of a bundle certificate's key */
	EVP_PKEY *pkey;
};

struct berth_keyset {
	X509_STORE *roots; /* the bundle's certificates, NULL without a bundle */
	struct key *keys;
	size_t n, alloc;
};

static void add_key(struct berth_keyset *ks, const char *kid, EVP_PKEY *pkey)
{
	BERTH_VEC_GROW(ks->keys, ks->n + 1, ks->alloc);
	ks->keys[ks->n].kid = berth_strdup(kid);
	ks->keys[ks->n].pkey = pkey;
	ks->n++;
}

/* ---- libtrust key ids ---- */

int berth_libtrust_kid(const EVP_PKEY *key, char out[BERTH_LIBTRUST_KID_LEN])
{
	static const char base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	unsigned char *der = NULL;
	unsigned char sum[SHA256_DIGEST_LENGTH];
	int len = i2d_PUBKEY(key, &der);
	if (len <= 0)
		return BERTH_ERROR;
	SHA256(der, (size_t)len, sum);
	OPENSSL_free(der);

	/* 30 bytes = 240 bits = 48 base32 characters, no padding; a ':' after every 4. */
	size_t o = 0;
	uint64_t acc = 0;
	int bits = 0;
	int chars = 0;
	for (int i = 0; i < 30; i++) {
		acc = (acc << 8) | sum[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			if (chars > 0 && chars % 4 == 0)
				out[o++] = ':';
			out[o++] = base32[(acc >> bits) & 31];
			chars++;
		}
	}
	out[o] = '\0';
	return 0;
}

/* ---- the certificate bundle ---- */

static int load_bundle(struct berth_keyset *ks, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		berth_err_set(BERTH_ERROR, "auth.token.rootcertbundle: cannot open %s: %s", path, strerror(errno));
		return BERTH_ERROR;
	}
	ks->roots = X509_STORE_new();
	/* Bundle certificates are trust anchors whether or not they are self-signed, as in Go's
	 * x509.CertPool roots. */
	X509_STORE_set_flags(ks->roots, X509_V_FLAG_PARTIAL_CHAIN);
	size_t certs = 0;
	X509 *cert;
	ERR_clear_error();
	while ((cert = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		char kid[BERTH_LIBTRUST_KID_LEN];
		EVP_PKEY *pkey = X509_get_pubkey(cert);
		if (!pkey || berth_libtrust_kid(pkey, kid) < 0 || X509_STORE_add_cert(ks->roots, cert) != 1) {
			EVP_PKEY_free(pkey);
			X509_free(cert);
			berth_err_set(BERTH_ERROR, "auth.token.rootcertbundle: %s: certificate %zu is unusable", path,
				      certs + 1);
			goto err_close;
		}
		add_key(ks, kid, pkey);
		X509_free(cert);
		certs++;
	}
	/* PEM_read_X509 ends with "no start line" at the end of the file; anything else is an error. */
	unsigned long e = ERR_peek_last_error();
	if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		berth_err_set(BERTH_ERROR, "auth.token.rootcertbundle: %s: bad PEM certificate after %zu", path,
			      certs);
		goto err_close;
	}
	ERR_clear_error();
	if (certs == 0) {
		berth_err_set(BERTH_ERROR, "auth.token.rootcertbundle: %s holds no certificate", path);
		goto err_close;
	}
	fclose(f);
	return 0;
err_close:
	ERR_clear_error();
	fclose(f);
	return BERTH_ERROR;
}

/* ---- JWK ---- */

/* A base64url member of a JWK, decoded; exact_len 0 accepts any non-zero length. */
static int jwk_bytes(const json_t *jwk, const char *member, size_t exact_len, unsigned char **out,
		     size_t *len)
{
	const char *s = json_string_value(json_object_get(jwk, member));
	if (!s || berth_b64_decode(BERTH_B64_URL, s, strlen(s), out, len) < 0)
		return BERTH_ERROR;
	if (*len == 0 || (exact_len && *len != exact_len)) {
		free(*out);
		*out = NULL;
		return BERTH_ERROR;
	}
	return 0;
}

/* Builds a public key of the named type from OpenSSL parameters. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *jwk_rsa(const json_t *jwk)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen, elen;
	EVP_PKEY *pkey = NULL;
	if (jwk_bytes(jwk, "n", 0, &n, &nlen) < 0)
		return NULL;
	if (jwk_bytes(jwk, "e", 0, &e, &elen) < 0)
		goto out_n;
	BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL);
	BIGNUM *bn_e = BN_bin2bn(e, (int)elen, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
		pkey = pkey_fromdata("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	free(e);
out_n:
	free(n);
	return pkey;
}

static EVP_PKEY *jwk_ec(const json_t *jwk)
{
	static const struct {
		const char *crv, *group;
		size_t len;
	} curves[] = {
		{ "P-256", "prime256v1", 32 },
		{ "P-384", "secp384r1", 48 },
		{ "P-521", "secp521r1", 66 },
	};
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL, *y = NULL;
	size_t xlen, ylen;
	EVP_PKEY *pkey = NULL;
	size_t c;
	for (c = 0; c < sizeof(curves) / sizeof(curves[0]); c++) {
		if (crv && strcmp(crv, curves[c].crv) == 0)
			break;
	}
	if (c == sizeof(curves) / sizeof(curves[0]))
		return NULL;
	if (jwk_bytes(jwk, "x", curves[c].len, &x, &xlen) < 0)
		return NULL;
	if (jwk_bytes(jwk, "y", curves[c].len, &y, &ylen) < 0)
		goto out_x;
	/* An uncompressed point, 04 || x || y; OpenSSL checks that it is on the curve. */
	unsigned char point[1 + 2 * 66];
	point[0] = 0x04;
	memcpy(point + 1, x, xlen);
	memcpy(point + 1 + xlen, y, ylen);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[c].group, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + xlen + ylen))
		pkey = pkey_fromdata("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	free(y);
out_x:
	free(x);
	return pkey;
}

static EVP_PKEY *jwk_okp(const json_t *jwk)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL;
	size_t xlen;
	if (!crv || strcmp(crv, "Ed25519") != 0 || jwk_bytes(jwk, "x", 32, &x, &xlen) < 0)
		return NULL;
	EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
	free(x);
	return pkey;
}

EVP_PKEY *berth_jwk_to_pkey(const json_t *jwk)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	EVP_PKEY *pkey = NULL;
	if (!json_is_object(jwk) || !kty)
		return NULL;
	if (strcmp(kty, "RSA") == 0)
		pkey = jwk_rsa(jwk);
	else if (strcmp(kty, "EC") == 0)
		pkey = jwk_ec(jwk);
	else if (strcmp(kty, "OKP") == 0)
		pkey = jwk_okp(jwk);
	ERR_clear_error();
	return pkey;
}

/* ---- the JWKS file ---- */

static int load_jwks(struct berth_keyset *ks, const char *path)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		berth_err_set(BERTH_ERROR, "auth.token.jwks: %s: %s", path, jerr.text);
		return BERTH_ERROR;
	}
	const json_t *keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		berth_err_set(BERTH_ERROR, "auth.token.jwks: %s has no \"keys\" array", path);
		goto err_doc;
	}
	size_t i;
	const json_t *jwk;
	json_array_foreach(keys, i, jwk) {
		const char *kid = json_string_value(json_object_get(jwk, "kid"));
		const char *use = json_string_value(json_object_get(jwk, "use"));
		if (use && strcmp(use, "sig") != 0)
			continue; /* an encryption key can't sign tokens */
		if (!kid || !*kid) {
			berth_warn("auth.token.jwks: %s: key %zu has no kid, ignored", path, i);
			continue;
		}
		EVP_PKEY *pkey = berth_jwk_to_pkey(jwk);
		if (!pkey) {
			berth_err_set(BERTH_ERROR, "auth.token.jwks: %s: key \"%s\" is not a usable RSA, EC or Ed25519 public key",
				      path, kid);
			goto err_doc;
		}
		add_key(ks, kid, pkey);
	}
	json_decref(doc);
	return 0;
err_doc:
	json_decref(doc);
	return BERTH_ERROR;
}

/* ---- the set ---- */

int berth_keyset_load(struct berth_keyset **out, const char *bundle, const char *jwks)
{
	struct berth_keyset *ks = berth_calloc(1, sizeof(*ks));
	*out = NULL;
	if (bundle && *bundle && load_bundle(ks, bundle) < 0)
		goto err_free;
	if (jwks && *jwks && load_jwks(ks, jwks) < 0)
		goto err_free;
	if (ks->n == 0) {
		berth_err_set(BERTH_ERROR, "auth.token: no signing key (rootcertbundle and jwks hold none)");
		goto err_free;
	}
	*out = ks;
	return 0;
err_free:
	berth_keyset_free(ks);
	return BERTH_ERROR;
}

void berth_keyset_free(struct berth_keyset *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->keys[i].kid);
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks->keys);
	X509_STORE_free(ks->roots);
	free(ks);
}

EVP_PKEY *berth_keyset_by_kid(const struct berth_keyset *ks, const char *kid)
{
	for (size_t i = 0; i < ks->n; i++) {
		if (strcmp(ks->keys[i].kid, kid) == 0)
			return ks->keys[i].pkey;
	}
	return NULL;
}

int berth_keyset_has(const struct berth_keyset *ks, const EVP_PKEY *key)
{
	for (size_t i = 0; i < ks->n; i++) {
		if (EVP_PKEY_eq(ks->keys[i].pkey, key) == 1)
			return 1;
	}
	return 0;
}

/* One x5c entry (standard base64 DER) as a certificate, or NULL. */
static X509 *x5c_cert(const json_t *entry)
{
	const char *s = json_string_value(entry);
	unsigned char *der;
	size_t len;
	if (!s || berth_b64_decode(BERTH_B64_STD, s, strlen(s), &der, &len) < 0)
		return NULL;
	const unsigned char *p = der;
	X509 *cert = d2i_X509(NULL, &p, (long)len);
	/* Trailing bytes after the certificate mean it is not one DER certificate. */
	if (cert && p != der + len) {
		X509_free(cert);
		cert = NULL;
	}
	free(der);
	return cert;
}

EVP_PKEY *berth_keyset_verify_chain(const struct berth_keyset *ks, const json_t *x5c)
{
	size_t n = json_array_size(x5c);
	EVP_PKEY *key = NULL;
	if (!ks->roots || n == 0 || n > X5C_CHAIN_MAX)
		return NULL;
	X509 *leaf = x5c_cert(json_array_get(x5c, 0));
	if (!leaf)
		goto out_errors;
	STACK_OF(X509) *intermediates = sk_X509_new_null();
	for (size_t i = 1; i < n; i++) {
		X509 *c = x5c_cert(json_array_get(x5c, i));
		if (!c || !sk_X509_push(intermediates, c)) {
			X509_free(c);
			goto out_intermediates;
		}
	}
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (ctx && X509_STORE_CTX_init(ctx, ks->roots, leaf, intermediates) == 1 &&
	    X509_verify_cert(ctx) == 1)
		key = X509_get_pubkey(leaf);
	X509_STORE_CTX_free(ctx);
out_intermediates:
	sk_X509_pop_free(intermediates, X509_free);
	X509_free(leaf);
out_errors:
	ERR_clear_error();
	return key;
}

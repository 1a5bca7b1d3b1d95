/*
 * Internals shared by the auth module's .c files (and its unit tests); not for other layers.
 *   b64.c       base64 (standard, padded) and base64url (JOSE, padding optional)
 *   htpasswd.c  the bcrypt htpasswd file, re-read on change, with a verification cache
 *   keys.c      token signing keys: the root certificate bundle and the JWKS file
 *   jwt.c       compact JWS parsing, signature and claims verification, access claims
 *   auth.c      berth_auth_*: provider dispatch and WWW-Authenticate challenges
 */
#ifndef BERTH_AUTH_INT_H
#define BERTH_AUTH_INT_H

#include <jansson.h>
#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

struct berth_access;

/* Largest Authorization header looked at; anything longer is refused unread. */
#define BERTH_AUTH_HEADER_MAX (16 * 1024)

/* ---- b64.c ---- */

enum berth_b64 {
	BERTH_B64_STD, /* RFC 4648 section 4, '=' padding required (HTTP Basic, x5c) */
	BERTH_B64_URL, /* RFC 4648 section 5, '=' padding optional (JOSE) */
};

/* Decodes in[0..len) into a new heap buffer (NUL-terminated for convenience, not counted in
 * *outlen). 0, or BERTH_EINVALID on any character, padding or length the variant refuses. */
int berth_b64_decode(enum berth_b64 variant, const char *in, size_t len, unsigned char **out,
		     size_t *outlen);
/* Encodes into a new heap string: STD padded, URL unpadded. */
char *berth_b64_encode(enum berth_b64 variant, const unsigned char *in, size_t len);

/* ---- htpasswd.c ---- */

struct berth_htpasswd;

/*
 * Opens the htpasswd file at path, creating it with user "docker" and a random password (logged
 * once, as Distribution does) when it does not exist. The file is re-read when it changes.
 * 0, or -1 with a message (core/err.h).
 */
int berth_htpasswd_open(struct berth_htpasswd **out, const char *path);
void berth_htpasswd_close(struct berth_htpasswd *h);
/* 0 if password is user's (bcrypt), BERTH_EUNAUTHORIZED otherwise. Thread-safe. */
int berth_htpasswd_check(struct berth_htpasswd *h, const char *user, const char *password);
/* Number of usable (bcrypt) users in the file as last loaded, after a change check. */
size_t berth_htpasswd_count(struct berth_htpasswd *h);
/* Makes the next call look at the file again now instead of within a second (for tests). */
void berth_htpasswd_recheck(struct berth_htpasswd *h);
/* Verifications answered from the cache so far (for tests). */
uint64_t berth_htpasswd_cache_hits(struct berth_htpasswd *h);

/*
 * Parses an `Authorization: Basic <base64(user:password)>` header (scheme case-insensitive).
 * On success *user and *password are new heap strings the caller must wipe and free with
 * berth_secret_free(). BERTH_EINVALID when the header is not Basic, the base64 is bad, there is
 * no ':', the user is empty, or either part holds a NUL byte.
 */
int berth_basic_parse(const char *header, char **user, char **password);
/* Wipes a NUL-terminated secret and frees it. Accepts NULL. */
void berth_secret_free(char *s);

/* ---- keys.c ---- */

/* The keys a token may be signed with. Immutable once loaded, so shared by all threads. */
struct berth_keyset;

/*
 * Loads the trust anchors: bundle (PEM certificates; "" for none) and jwks (a JWKS file; ""
 * for none). At least one key must come out of them. 0, or -1 with a message (core/err.h).
 */
int berth_keyset_load(struct berth_keyset **out, const char *bundle, const char *jwks);
void berth_keyset_free(struct berth_keyset *ks);
/* The key with this id (JWKS kid, or libtrust id of a bundle certificate's key), or NULL. */
EVP_PKEY *berth_keyset_by_kid(const struct berth_keyset *ks, const char *kid);
/* 1 if key equals one of the set's keys. */
int berth_keyset_has(const struct berth_keyset *ks, const EVP_PKEY *key);
/*
 * Verifies a JOSE x5c chain (JSON array of standard base64 DER certificates, leaf first) up
 * to a bundle certificate and returns the leaf's public key (caller frees), or NULL.
 */
EVP_PKEY *berth_keyset_verify_chain(const struct berth_keyset *ks, const json_t *x5c);

/* A JWK (RSA, EC P-256/384/521, OKP Ed25519) as a public key (caller frees), or NULL. */
EVP_PKEY *berth_jwk_to_pkey(const json_t *jwk);

/* libtrust's key id: base32 of the first 240 bits of SHA-256 of the DER SubjectPublicKeyInfo,
 * in 12 groups of 4 characters separated by ':' (59 characters + NUL). 0 or -1. */
#define BERTH_LIBTRUST_KID_LEN 60
int berth_libtrust_kid(const EVP_PKEY *key, char out[BERTH_LIBTRUST_KID_LEN]);

/* ---- jwt.c ---- */

/* Who a token must come from and be for. */
struct berth_jwt_policy {
	const struct berth_keyset *keys;
	const char *issuer;   /* `iss` must equal this */
	const char *audience; /* `aud` (string or array) must contain this */
	unsigned algorithms;  /* allowed `alg`s: bits from berth_jwt_algorithm_bit(); 0 = all */
};

/*
 * auth.token.signingalgorithms: the bit of one algorithm name (Distribution's names, exact
 * case), 0 for HS256/384/512 (known, but berth holds no HMAC keys, so no such token verifies),
 * or -1 for a name Distribution does not know either.
 */
int berth_jwt_algorithm_bit(const char *name, unsigned *bit);

/* Clock skew allowed on exp, nbf and iat, as Distribution's token.Leeway. */
#define BERTH_JWT_LEEWAY_S 60

/*
 * Verifies a compact JWS token (len bytes, no NUL needed) at time now (Unix seconds): its
 * signature (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA) by a trusted key, found
 * through the header's x5c, jwk or kid; then its claims (iss, aud, exp, nbf, iat, and a
 * well-formed `access` list). On success *claims receives the claims object (json_decref it).
 * BERTH_EUNAUTHORIZED otherwise, with the reason for the log as its message (core/err.h).
 */
int berth_jwt_verify(const char *token, size_t len, const struct berth_jwt_policy *p, int64_t now,
		     json_t **claims);
/* 1 if the verified claims grant this access (an action "*" grants every action). */
int berth_jwt_grants(const json_t *claims, const struct berth_access *a);

#endif

/*
 * Authentication and authorization, configured by Distribution's `auth` section:
 *   htpasswd {realm, path}: HTTP Basic against a bcrypt-only htpasswd file, re-read when it
 *     changes; any valid user gets every access (as in Distribution).
 *   token {realm, service, issuer, rootcertbundle, jwks, autoredirect}: JWT bearer tokens (RS*,
 *     ES*, EdDSA) verified against the certificate bundle (x5c chain or kid) or a JWKS file,
 *     checking exp, nbf, iss and aud; access granted by the token's `access` claims.
 *   silly {realm, service}: any Authorization header is accepted (tests only, as Distribution).
 * Secrets are compared in constant time and never logged. Thread-safe.
 */
#ifndef BERTH_AUTH_AUTH_H
#define BERTH_AUTH_AUTH_H

#include <stddef.h>

struct berth_config;
struct berth_auth;

/* One access a request needs, as a token `access` claim expresses it:
 * type "repository" with name "<repo>" and actions "pull" / "push" / "delete", or type
 * "registry" with name "catalog" and action "*". */
struct berth_access {
	const char *type;
	const char *name;
	const char *action;
};

/*
 * Creates the authenticator the config asks for. *out is NULL when the config has no auth
 * section (every request allowed). 0, or -1 with a one-line message (core/err.h; a missing htpasswd
 * file is not an error: Distribution creates it; an unreadable certificate bundle is).
 */
int berth_auth_new(struct berth_auth **out, const struct berth_config *cfg);
void berth_auth_free(struct berth_auth *a);

/*
 * Decides one request. `authorization` is the Authorization header (NULL if absent); `access`
 * lists every access the request needs (n may be 0 for GET /v2/, which needs authentication
 * only).
 * Returns 0 when allowed (user, when not NULL, receives the user name or token subject, for the
 * access log). BERTH_EUNAUTHORIZED when the credentials are missing or bad, and
 * BERTH_EDENIED when they are valid but do not grant everything asked: in both cases
 * `challenge` receives the WWW-Authenticate value to send with the 401, e.g.
 *   Basic realm="Registry Realm"
 *   Bearer realm="https://auth/token",service="registry",scope="repository:foo:pull,push",error="insufficient_scope"
 */
int berth_auth_authorize(struct berth_auth *a, const char *authorization,
			 const struct berth_access *access, size_t n, char *challenge, size_t challenge_cap,
			 char *user, size_t user_cap);

/*
 * The same, knowing the request's Host header (may be NULL): with auth.token.autoredirect the
 * challenge's realm is then https://<host>/auth/token, as Distribution 2.8 builds it.
 */
int berth_auth_authorize_host(struct berth_auth *a, const char *authorization, const char *host,
			      const struct berth_access *access, size_t n, char *challenge,
			      size_t challenge_cap, char *user, size_t user_cap);

/*
 * With token auth and a fixed realm (not autoredirect): 1, and the realm (token server URL) and
 * service through the out pointers, borrowed for the authenticator's lifetime. Otherwise 0.
 */
int berth_auth_token_server(const char **realm_out, const char **service_out, const struct berth_auth *a);

#endif

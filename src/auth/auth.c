/*
 * berth_auth: the one authenticator the config's `auth` section names, and the
 * WWW-Authenticate challenges that go with a 401, written the way Distribution writes them:
 *   htpasswd  Basic realm="<realm>"
 *   token     Bearer realm="<realm>",service="<service>"[,scope="<scopes>"][,error="<error>"]
 *             where scopes are "type:name:action,action" per resource, space-separated, and
 *             error is invalid_token (a token was sent but is no good) or insufficient_scope
 *   silly     Bearer realm="<realm>",service="<service>"[,scope="type:name:action ..."]
 * The parts are in htpasswd.c (file and Basic credentials), jwt.c and keys.c (tokens).
 */
#include "auth/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth_int.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

struct berth_auth {
	int kind; /* enum berth_auth_kind, never BERTH_AUTH_NONE */
	char *realm;
	int autoredirect; /* token: realm = https://<request Host><redirect_path> (Distribution) */
	char *redirect_path; /* auth.token.autoredirectpath, default /auth/token */
	char *service;
	char *issuer;
	struct berth_htpasswd *htpasswd; /* htpasswd */
	struct berth_keyset *keys;       /* token */
	unsigned algorithms;             /* token: auth.token.signingalgorithms as bits; 0 = all */
};

/* ---- set-up ---- */

static int require(const char *value, const char *provider, const char *option)
{
	if (value && *value)
		return 0;
	berth_err_set(BERTH_ERROR, "auth.%s.%s must be set", provider, option);
	return BERTH_ERROR;
}

static int setup_htpasswd(struct berth_auth *a, const struct berth_config *cfg)
{
	if (require(cfg->auth.realm, "htpasswd", "realm") < 0 ||
	    require(cfg->auth.path, "htpasswd", "path") < 0)
		return BERTH_ERROR;
	return berth_htpasswd_open(&a->htpasswd, cfg->auth.path);
}

/* auth.token.signingalgorithms: an unknown name is an error, as in Distribution. Listing only
 * HMAC algorithms, for which berth has no keys, would refuse every token: also an error. */
static int token_algorithms(unsigned *out, const struct berth_strlist *names)
{
	*out = 0;
	for (size_t i = 0; i < names->n; i++) {
		unsigned bit;
		if (berth_jwt_algorithm_bit(names->v[i], &bit) < 0) {
			berth_err_set(BERTH_ERROR, "auth.token.signingalgorithms: unsupported signing algorithm: %s",
				      names->v[i]);
			return BERTH_ERROR;
		}
		*out |= bit;
	}
	if (names->n && !*out) {
		berth_err_set(BERTH_ERROR, "auth.token.signingalgorithms: only HMAC algorithms listed; berth "
			      "verifies tokens with public keys only (RS*, PS*, ES*, EdDSA)");
		return BERTH_ERROR;
	}
	return 0;
}

static int setup_token(struct berth_auth *a, const struct berth_config *cfg)
{
	if (require(cfg->auth.realm, "token", "realm") < 0 ||
	    require(cfg->auth.service, "token", "service") < 0 ||
	    require(cfg->auth.issuer, "token", "issuer") < 0)
		return BERTH_ERROR;
	if (!cfg->auth.rootcertbundle[0] && !cfg->auth.jwks[0]) {
		berth_err_set(BERTH_ERROR, "auth.token.rootcertbundle (or auth.token.jwks) must be set");
		return BERTH_ERROR;
	}
	a->issuer = berth_strdup(cfg->auth.issuer);
	if (token_algorithms(&a->algorithms, &cfg->auth.signingalgorithms) < 0)
		return BERTH_ERROR;
	return berth_keyset_load(&a->keys, cfg->auth.rootcertbundle, cfg->auth.jwks);
}

static int setup_silly(const struct berth_config *cfg)
{
	if (require(cfg->auth.realm, "silly", "realm") < 0 ||
	    require(cfg->auth.service, "silly", "service") < 0)
		return BERTH_ERROR;
	berth_warn("auth.silly accepts any Authorization header: it is for tests only");
	return 0;
}

/* An absolute path of visible characters that needs no escaping in a challenge. */
static int redirect_path_valid(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\' || *p == '?' ||
		    *p == '#')
			return 0;
	return 1;
}

int berth_auth_new(struct berth_auth **out, const struct berth_config *cfg)
{
	int rc;
	*out = NULL;
	if (cfg->auth.kind == BERTH_AUTH_NONE)
		return 0;
	struct berth_auth *a = berth_calloc(1, sizeof(*a));
	a->kind = cfg->auth.kind;
	a->realm = berth_strdup(cfg->auth.realm);
	a->autoredirect = cfg->auth.kind == BERTH_AUTH_TOKEN && cfg->auth.autoredirect;
	a->redirect_path = berth_strdup(cfg->auth.autoredirectpath[0] ? cfg->auth.autoredirectpath : "/auth/token");
	if (a->autoredirect && !redirect_path_valid(a->redirect_path)) {
		berth_err_set(BERTH_ERROR, "auth.token.autoredirectpath: '%s' is not an absolute URL path",
			      a->redirect_path);
		berth_auth_free(a);
		return BERTH_ERROR;
	}
	a->service = berth_strdup(cfg->auth.service);
	switch (a->kind) {
	case BERTH_AUTH_HTPASSWD: rc = setup_htpasswd(a, cfg); break;
	case BERTH_AUTH_TOKEN: rc = setup_token(a, cfg); break;
	case BERTH_AUTH_SILLY: rc = setup_silly(cfg); break;
	default:
		berth_err_set(BERTH_ERROR, "unknown auth provider");
		rc = -1;
		break;
	}
	if (rc < 0) {
		berth_auth_free(a);
		return BERTH_ERROR;
	}
	*out = a;
	return 0;
}

void berth_auth_free(struct berth_auth *a)
{
	if (!a)
		return;
	berth_htpasswd_close(a->htpasswd);
	berth_keyset_free(a->keys);
	free(a->realm);
	free(a->service);
	free(a->issuer);
	free(a->redirect_path);
	free(a);
}

/* ---- challenges ---- */

/* A quoted-string: '"' and '\' escaped, control characters (never valid in a header) dropped. */
static void put_quoted(struct berth_buf *b, const char *s)
{
	berth_buf_append(b, "\"", 1);
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			continue;
		if (*s == '"' || *s == '\\')
			berth_buf_append(b, "\\", 1);
		berth_buf_append(b, s, 1);
	}
	berth_buf_append(b, "\"", 1);
}

static int same_resource(const struct berth_access *x, const struct berth_access *y)
{
	return strcmp(x->type, y->type) == 0 && strcmp(x->name, y->name) == 0;
}

/* Index of the first access for acc[i]'s resource. */
static size_t first_of_resource(const struct berth_access *acc, size_t i)
{
	size_t j = 0;
	while (!same_resource(&acc[j], &acc[i]))
		j++;
	return j;
}

/* 1 if an access before acc[k] names the same resource and action. */
static int listed_before(const struct berth_access *acc, size_t k)
{
	for (size_t j = 0; j < k; j++) {
		if (same_resource(&acc[j], &acc[k]) && strcmp(acc[j].action, acc[k].action) == 0)
			return 1;
	}
	return 0;
}

/* "type:name:a1,a2 type2:name2:a3": one scope per resource, as Distribution's accessSet
 * writes it (token), or one per access, as its silly provider does (silly). */
static void put_scope(struct berth_buf *b, const struct berth_access *acc, size_t n, int per_resource)
{
	for (size_t i = 0; i < n; i++) {
		if (per_resource && first_of_resource(acc, i) != i)
			continue; /* listed with its resource's first access */
		berth_buf_printf(b, "%s%s:%s:%s", i ? " " : "", acc[i].type, acc[i].name, acc[i].action);
		for (size_t k = i + 1; per_resource && k < n; k++) {
			if (same_resource(&acc[k], &acc[i]) && !listed_before(acc, k))
				berth_buf_printf(b, ",%s", acc[k].action);
		}
	}
}

/* Challenges are built without a cap (they hold a few names at most) and then checked to fit. */
#define CHALLENGE_BUILD_MAX (64 * 1024)

static void bearer_text(struct berth_buf *b, const struct berth_auth *a, const char *realm,
			const struct berth_access *acc, size_t n, const char *error, int with_scope)
{
	berth_buf_append(b, "Bearer realm=", 13);
	put_quoted(b, realm);
	berth_buf_append(b, ",service=", 9);
	put_quoted(b, a->service);
	if (with_scope && n > 0) {
		struct berth_buf scope = BERTH_BUF_INIT(CHALLENGE_BUILD_MAX);
		put_scope(&scope, acc, n, a->kind == BERTH_AUTH_TOKEN);
		berth_buf_append(b, ",scope=", 7);
		put_quoted(b, scope.data ? scope.data : "");
		berth_buf_release(&scope);
	}
	if (error)
		berth_buf_printf(b, ",error=\"%s\"", error);
}

static void set_bearer_challenge(const struct berth_auth *a, const char *realm,
				 const struct berth_access *acc, size_t n, const char *error, char *out,
				 size_t cap)
{
	struct berth_buf b = BERTH_BUF_INIT(CHALLENGE_BUILD_MAX);
	bearer_text(&b, a, realm, acc, n, error, 1);
	if (b.len >= cap) {
		/* Scopes name repositories and may not fit: the challenge without them still works. */
		berth_buf_release(&b);
		bearer_text(&b, a, realm, acc, n, error, 0);
	}
	snprintf(out, cap, "%s", b.len < cap ? b.data : "Bearer");
	berth_buf_release(&b);
}

static void set_basic_challenge(const struct berth_auth *a, char *out, size_t cap)
{
	struct berth_buf b = BERTH_BUF_INIT(CHALLENGE_BUILD_MAX);
	berth_buf_append(&b, "Basic realm=", 12);
	put_quoted(&b, a->realm);
	snprintf(out, cap, "%s", b.len < cap ? b.data : "Basic");
	berth_buf_release(&b);
}

static void set_user(char *user, size_t cap, const char *name)
{
	if (user && cap)
		snprintf(user, cap, "%s", name);
}

/* ---- deciding ---- */

static int authorize_basic(struct berth_auth *a, const char *authorization, char *challenge,
			   size_t challenge_cap, char *user, size_t user_cap)
{
	char *name = NULL, *password = NULL;
	int rc = BERTH_EUNAUTHORIZED;
	if (authorization && berth_basic_parse(authorization, &name, &password) == 0) {
		rc = berth_htpasswd_check(a->htpasswd, name, password);
		if (rc == 0)
			set_user(user, user_cap, name);
		else
			berth_warn("htpasswd: authentication failed for user \"%.128s\"", name);
	}
	if (rc != 0)
		set_basic_challenge(a, challenge, challenge_cap);
	berth_secret_free(password);
	free(name);
	return rc;
}

/* The token of "Bearer <token>" (scheme case-insensitive, one space, as Distribution splits it). */
static int bearer_token(const char *authorization, const char **token, size_t *len)
{
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	*token = authorization + 7;
	*len = strlen(*token);
	return memchr(*token, ' ', *len) == NULL;
}

static int authorize_token(struct berth_auth *a, const char *realm, const char *authorization,
			   const struct berth_access *acc, size_t n, char *challenge, size_t challenge_cap,
			   char *user, size_t user_cap)
{
	const char *token;
	size_t len;
	json_t *claims = NULL;
	const struct berth_jwt_policy policy = { a->keys, a->issuer, a->service, a->algorithms };

	if (!bearer_token(authorization, &token, &len)) {
		/* No token: the challenge tells the client where to get one. */
		set_bearer_challenge(a, realm, acc, n, NULL, challenge, challenge_cap);
		return BERTH_EUNAUTHORIZED;
	}
	int rc = berth_jwt_verify(token, len, &policy, (int64_t)time(NULL), &claims);
	if (rc < 0) {
		berth_warn("token auth: %s", berth_err_reason(rc));
		set_bearer_challenge(a, realm, acc, n, "invalid_token", challenge, challenge_cap);
		return BERTH_EUNAUTHORIZED;
	}
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	for (size_t i = 0; i < n; i++) {
		if (!berth_jwt_grants(claims, &acc[i])) {
			berth_info("token auth: token of \"%.128s\" does not grant %s:%s:%s", sub ? sub : "",
				   acc[i].type, acc[i].name, acc[i].action);
			json_decref(claims);
			set_bearer_challenge(a, realm, acc, n, "insufficient_scope", challenge, challenge_cap);
			return BERTH_EDENIED;
		}
	}
	set_user(user, user_cap, sub ? sub : "");
	json_decref(claims);
	return 0;
}

static int authorize_silly(struct berth_auth *a, const char *realm, const char *authorization,
			   const struct berth_access *acc, size_t n, char *challenge, size_t challenge_cap,
			   char *user, size_t user_cap)
{
	if (authorization && *authorization) {
		set_user(user, user_cap, "silly");
		return 0;
	}
	set_bearer_challenge(a, realm, acc, n, NULL, challenge, challenge_cap);
	return BERTH_EUNAUTHORIZED;
}

/* A Host header fit to stand in a URL: host name or address characters and a port. */
static int host_valid(const char *host)
{
	size_t n = host ? strlen(host) : 0;
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
			return 0;
	}
	return 1;
}

int berth_auth_authorize(struct berth_auth *a, const char *authorization,
			 const struct berth_access *access, size_t n, char *challenge, size_t challenge_cap,
			 char *user, size_t user_cap)
{
	return berth_auth_authorize_host(a, authorization, NULL, access, n, challenge, challenge_cap,
					 user, user_cap);
}

int berth_auth_authorize_host(struct berth_auth *a, const char *authorization, const char *host,
			      const struct berth_access *access, size_t n, char *challenge,
			      size_t challenge_cap, char *user, size_t user_cap)
{
	char redirect_realm[640]; /* "https://" + a valid host + a path of at most 255 */
	const char *realm = a->realm;
	if (a->autoredirect && host_valid(host)) {
		snprintf(redirect_realm, sizeof(redirect_realm), "https://%s%s", host, a->redirect_path);
		realm = redirect_realm;
	}
	if (user && user_cap)
		user[0] = '\0';
	if (challenge && challenge_cap)
		challenge[0] = '\0';
	/* Far larger than any real credentials or token: refused before anything looks at it. */
	if (authorization && strnlen(authorization, BERTH_AUTH_HEADER_MAX + 1) > BERTH_AUTH_HEADER_MAX) {
		berth_warn("auth: Authorization header over %d bytes refused", BERTH_AUTH_HEADER_MAX);
		if (a->kind == BERTH_AUTH_HTPASSWD)
			set_basic_challenge(a, challenge, challenge_cap);
		else
			set_bearer_challenge(a, realm, access, n, a->kind == BERTH_AUTH_TOKEN ? "invalid_token" : NULL,
					     challenge, challenge_cap);
		return BERTH_EUNAUTHORIZED;
	}
	switch (a->kind) {
	case BERTH_AUTH_HTPASSWD:
		return authorize_basic(a, authorization, challenge, challenge_cap, user, user_cap);
	case BERTH_AUTH_TOKEN:
		return authorize_token(a, realm, authorization, access, n, challenge, challenge_cap, user,
				       user_cap);
	case BERTH_AUTH_SILLY:
		return authorize_silly(a, realm, authorization, access, n, challenge, challenge_cap, user,
				       user_cap);
	default:
		return BERTH_ERROR;
	}
}

int berth_auth_token_server(const char **realm_out, const char **service_out, const struct berth_auth *a)
{
	if (!a || a->kind != BERTH_AUTH_TOKEN || a->autoredirect)
		return 0;
	*realm_out = a->realm;
	*service_out = a->service;
	return 1;
}

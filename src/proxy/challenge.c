/* WWW-Authenticate challenges, and whose realm may have the upstream's credentials
 * (proxy/upstream.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libpsl.h>

#include "core/err.h"
#include "core/util.h"
#include "proxy/upstream.h"

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == ',')
		p++;
	return p;
}

/* Copies a token or a quoted string (backslash escapes undone) into out; the end. */
static const char *read_value(const char *p, char *out, size_t cap)
{
	size_t n = 0;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 < cap)
				out[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else {
		for (; *p && *p != ',' && *p != ' ' && *p != '\t'; p++)
			if (n + 1 < cap)
				out[n++] = *p;
	}
	out[n] = '\0';
	return p;
}

int berth_challenge_parse(struct berth_challenge *out, const char *header)
{
	memset(out, 0, sizeof(*out));
	const char *p = skip_space(header ? header : "");
	size_t n = strcspn(p, " \t");
	if (n == 0 || n >= sizeof(out->scheme))
		return BERTH_EINVALID;
	for (size_t i = 0; i < n; i++)
		out->scheme[i] = (char)tolower((unsigned char)p[i]);
	p = skip_space(p + n);
	while (*p) {
		char name[32];
		size_t k = strcspn(p, "= \t,");
		const char *eq = p + k;
		while (*eq == ' ' || *eq == '\t') /* RFC 7235 allows blanks around '=' */
			eq++;
		if (*eq != '=') { /* a token68 or a stray word: not ours */
			p = skip_space(p + k + (p[k] ? 1 : 0));
			continue;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(k < 31 ? k : 31), p);
		p = eq + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		char value[1024];
		p = read_value(p, value, sizeof(value));
		if (strcasecmp(name, "realm") == 0)
			snprintf(out->realm, sizeof(out->realm), "%s", value);
		else if (strcasecmp(name, "service") == 0)
			snprintf(out->service, sizeof(out->service), "%.*s", (int)sizeof(out->service) - 1, value);
		else if (strcasecmp(name, "scope") == 0)
			snprintf(out->scope, sizeof(out->scope), "%.*s", (int)sizeof(out->scope) - 1, value);
		p = skip_space(p);
	}
	if (strcmp(out->scheme, "bearer") == 0 && !out->realm[0])
		return BERTH_EINVALID;
	return 0;
}

/* ---- the realm's trust boundary ---- */

/* libcurl gives a host not in ASCII as libidn2 converts it for the connection (IDNA: "ｅvil.com"
 * is "evil.com"); without this flag, as written: any byte past ASCII then fails plain_host. */
#ifdef CURLU_PUNYCODE
#define HOST_AS_CONNECTED CURLU_PUNYCODE
#else
#define HOST_AS_CONNECTED 0
#endif

static void lowercase(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* An IPv6 literal (libcurl has checked it), or a name of ASCII letters, digits, '-', '.' and
 * '_' only: what an IDNA conversion can give besides ("evil.com／.docker.io", a full-width
 * slash, becomes "evil.com/.docker.io") names no host the rules below can judge. */
static int plain_host(const char *host)
{
	static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";
	return host[0] == '[' || (host[0] && host[strspn(host, name_chars)] == '\0');
}

/* The host url's connection goes to, lowercase, and whether url is https; NULL when url has no
 * host or it is not a plain_host (also when its conversion fails, as it does under the C locale
 * berth runs in). The caller frees it. */
static char *connected_host(const char *url, int *https)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL, *out = NULL;
	if (h && url && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, HOST_AS_CONNECTED) == CURLUE_OK && plain_host(host)) {
		out = berth_strdup(host);
		lowercase(out);
		*https = strcasecmp(scheme, "https") == 0;
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);
	return out;
}

/* Go's net.ParseIP or "localhost", on a host as libcurl gives it: IPv6 in brackets, IPv4 in
 * dotted decimal (libcurl normalizes 0x7f.1 and the like, which Go would take for a name). */
static int literal_or_local(const char *host)
{
	struct in_addr a;
	return strcmp(host, "localhost") == 0 || host[0] == '[' || inet_pton(AF_INET, host, &a) == 1;
}

/* host's eTLD+1 (a pointer into host), or NULL when it has none. A name with an empty label has
 * none, as Go's publicsuffix.EffectiveTLDPlusOne refuses it (libpsl would answer "a.com." for
 * "x.a.com."). Where Go errs on both sides it compares "" with "" and trusts; here neither has
 * one and the realm is refused. */
static const char *registrable_domain(const psl_ctx_t *psl, const char *host)
{
	size_t n = strlen(host);
	if (!psl || n == 0 || host[0] == '.' || host[n - 1] == '.' || strstr(host, ".."))
		return NULL;
	return psl_registrable_domain(psl, host);
}

/* Whether the realm's host theirs is inside the boundary of the upstream's host ours. */
static int same_boundary(const psl_ctx_t *psl, const char *ours, const char *theirs)
{
	if (strcmp(ours, theirs) == 0) /* any port: see upstream.h */
		return 1;
	if (literal_or_local(ours) || literal_or_local(theirs))
		return 0;
	const char *a = registrable_domain(psl, ours), *b = registrable_domain(psl, theirs);
	return a && b && strcmp(a, b) == 0;
}

int berth_challenge_realm_trusted(const struct psl_ctx_st *psl, const char *remote_url, const char *realm,
				  const char **why)
{
	int ours_https = 0, theirs_https = 0, trusted = 0;
	char *ours = connected_host(remote_url, &ours_https);
	char *theirs = connected_host(realm, &theirs_https);
	const char *reason = "is outside the upstream's trust boundary";
	if (ours && theirs && ours_https && !theirs_https)
		reason = "is not https, as the upstream is (the credentials would go in clear text)";
	else if (ours && theirs)
		trusted = same_boundary(psl, ours, theirs);
	free(ours);
	free(theirs);
	if (why)
		*why = trusted ? NULL : reason;
	return trusted;
}

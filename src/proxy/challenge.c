/* WWW-Authenticate challenges, and whose realm may have the upstream's credentials
 * (proxy/upstream.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpsl.h>

#include "core/err.h"
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

static void lowercase(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
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

int berth_challenge_realm_trusted(const struct psl_ctx_st *psl, const char *remote_url, const char *realm)
{
	char *ours = berth_upstream_url_host(remote_url ? remote_url : "", 0);
	char *theirs = berth_upstream_url_host(realm ? realm : "", 0);
	int trusted = 0;
	lowercase(ours);
	lowercase(theirs);
	if (!ours[0] || !theirs[0]) /* not a URL with a host */
		trusted = 0;
	else if (strcmp(ours, theirs) == 0) /* any port: see upstream.h */
		trusted = 1;
	else if (literal_or_local(ours) || literal_or_local(theirs))
		trusted = 0;
	else {
		const char *a = registrable_domain(psl, ours), *b = registrable_domain(psl, theirs);
		trusted = a && b && strcmp(a, b) == 0;
	}
	free(ours);
	free(theirs);
	return trusted;
}

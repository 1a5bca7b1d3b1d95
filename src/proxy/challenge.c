/* WWW-Authenticate challenges (proxy/upstream.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

#include "http/query.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

struct query_arg {
	const char *key;
	const char *value; /* NULL: given without '=' */
};

struct berth_query {
	char *text;              /* the raw query, split and decoded in place */
	struct query_arg *args;
	size_t n_args;
};

static void parse(struct berth_query *q);

struct berth_query *berth_query_new(const char *raw)
{
	struct berth_query *q = berth_calloc(1, sizeof(*q));
	q->text = berth_strdup(raw);
	parse(q);
	return q;
}

void berth_query_free(struct berth_query *q)
{
	if (!q)
		return;
	free(q->args);
	free(q->text);
	free(q);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 32);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t berth_http_unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		int hi = r[0] == '%' && r[1] ? hex_value(r[1]) : -1;
		int lo = hi >= 0 && r[2] ? hex_value(r[2]) : -1;
		if (lo >= 0 && (hi | lo) != 0) {
			*w++ = (char)(hi * 16 + lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void decode_component(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '+')
			*p = ' ';
	berth_http_unescape(s);
}

/* Splits the text at '&' and '=' and decodes each key and value in place. */
static void parse(struct berth_query *q)
{
	size_t n = 1;
	for (const char *p = q->text; *p; p++)
		n += *p == '&';
	q->args = berth_calloc(n, sizeof(*q->args));
	for (char *arg = q->text; arg;) {
		char *next = strchr(arg, '&');
		if (next)
			*next++ = '\0';
		if (*arg) {
			char *eq = strchr(arg, '=');
			if (eq)
				*eq++ = '\0';
			decode_component(arg);
			if (eq)
				decode_component(eq);
			q->args[q->n_args].key = arg;
			q->args[q->n_args].value = eq;
			q->n_args++;
		}
		arg = next;
	}
}

const char *berth_query_get(struct berth_query *q, const char *name)
{
	if (!q)
		return NULL;
	for (size_t i = 0; i < q->n_args; i++)
		if (strcmp(q->args[i].key, name) == 0)
			return q->args[i].value;
	return NULL;
}

/*
 * A request's query string, kept and decoded by berth rather than by libmicrohttpd: MHD would
 * put every argument in the connection's fixed memory pool, and a few thousand of them exhaust
 * it, after which MHD 0.9.75 never answers (see on_uri in server.c). Here the arguments cost
 * heap memory proportional to the URI, which MHD's pool already bounds.
 */
#ifndef BERTH_HTTP_QUERY_H
#define BERTH_HTTP_QUERY_H

#include <stddef.h>

struct berth_query;

/* The arguments of raw (the text after '?', not decoded), split and decoded at once, so that
 * lookups only read (any thread may make them). Never NULL. */
struct berth_query *berth_query_new(const char *raw);
/* Accepts NULL. */
void berth_query_free(struct berth_query *q);

/*
 * The decoded value of the first argument called name, as libmicrohttpd gave it: '+' is a
 * space, %XX is decoded except %00, and an argument without '=' has no value (NULL). NULL when
 * absent, and for a NULL q. Borrowed until berth_query_free.
 */
const char *berth_query_get(struct berth_query *q, const char *name);

/* Decodes %XX in s, in place, except %00, which stays encoded so a NUL can never cut a string
 * short. Returns the new length. */
size_t berth_http_unescape(char *s);

#endif

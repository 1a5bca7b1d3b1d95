#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

#define MAX_FIELDS 16
/* A value longer than this is cut so that a line always stays whole and parseable: a client's
 * 1 MiB User-Agent must not become a 1 MiB log line. */
#define VALUE_MAX_BYTES 2048

/* Set once by berth_log_setup before any thread starts; read-only afterwards. */
static enum berth_log_level min_level = BERTH_LOG_INFO;
static enum berth_log_style format = BERTH_LOG_TEXT;
static char *field_keys[MAX_FIELDS];
static char *field_values[MAX_FIELDS];
static size_t n_fields;
static int report_caller;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void berth_log_setup(enum berth_log_level level, enum berth_log_style fmt,
		     const char *const *keys, const char *const *values, size_t n)
{
	min_level = level;
	format = fmt;
	for (size_t i = 0; i < n_fields; i++) {
		free(field_keys[i]);
		free(field_values[i]);
	}
	n_fields = n < MAX_FIELDS ? n : MAX_FIELDS;
	for (size_t i = 0; i < n_fields; i++) {
		field_keys[i] = berth_strdup(keys[i]);
		field_values[i] = berth_strdup(values[i]);
	}
}

void berth_log_set_level(enum berth_log_level level)
{
	min_level = level;
}

int berth_log_enabled(enum berth_log_level level)
{
	return level >= min_level;
}

/* A line under construction: a stack buffer that moves to the heap only for long lines. */
struct line {
	char small[2048];
	char *buf;
	size_t len, cap;
};

static void line_init(struct line *l)
{
	l->buf = l->small;
	l->len = 0;
	l->cap = sizeof(l->small);
}

static void put(struct line *l, const char *s, size_t n)
{
	if (l->len + n + 2 > l->cap) {
		size_t cap = l->cap * 2;
		while (l->len + n + 2 > cap)
			cap *= 2;
		char *grown = berth_malloc(cap);
		memcpy(grown, l->buf, l->len);
		if (l->buf != l->small)
			free(l->buf);
		l->buf = grown;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, surrogates or
 * code points past U+10FFFF), or 0 if the bytes there are not one. */
static size_t utf8_sequence(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Appends s quoted and escaped for JSON (and equally fine for logfmt text). A byte that is not
 * part of well-formed UTF-8 (a client's URI or User-Agent may hold any) would make the line
 * invalid JSON: it becomes U+FFFD in JSON, as Go's encoding/json writes it for Distribution,
 * and \xNN in text, as Go's %q writes it there.
 */
static void put_quoted(struct line *l, const char *s)
{
	const unsigned char *start = (const unsigned char *)(s ? s : "");
	put(l, "\"", 1);
	for (const unsigned char *p = start; *p;) {
		size_t n = utf8_sequence(p);
		if ((size_t)(p - start) + (n ? n : 1) > VALUE_MAX_BYTES)
			break;
		char esc[8];
		if (n == 0) {
			if (format == BERTH_LOG_JSON)
				put(l, "\\ufffd", 6);
			else
				put(l, esc, (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p));
			n = 1;
		} else if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			put(l, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(l, esc, 6);
		} else {
			put(l, (const char *)p, n);
		}
		p += n;
	}
	put(l, "\"", 1);
}

/* key=value (text) or "key":value (json), with a separator before every field but the first. */
static void field(struct line *l, int *first, const char *key, const char *value, int quote)
{
	if (!*first)
		puts_(l, format == BERTH_LOG_JSON ? "," : " ");
	*first = 0;
	if (format == BERTH_LOG_JSON) {
		put_quoted(l, key);
		put(l, ":", 1);
	} else {
		puts_(l, key);
		put(l, "=", 1);
	}
	if (quote)
		put_quoted(l, value);
	else
		puts_(l, value);
}

static void begin(struct line *l, int *first, enum berth_log_level level)
{
	char when[48];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	line_init(l);
	*first = 1;
	if (format == BERTH_LOG_JSON)
		put(l, "{", 1);
	field(l, first, "time", when, format == BERTH_LOG_JSON);
	field(l, first, "level", level_names[level], format == BERTH_LOG_JSON);
	for (size_t i = 0; i < n_fields; i++)
		field(l, first, field_keys[i], field_values[i], 1);
}

static void end(struct line *l)
{
	if (format == BERTH_LOG_JSON)
		put(l, "}", 1);
	l->buf[l->len++] = '\n';
	/* One write per line keeps lines whole when threads log at once. */
	fwrite(l->buf, 1, l->len, stderr);
	if (l->buf != l->small)
		free(l->buf);
}

void berth_log_set_report_caller(int on)
{
	report_caller = on;
}

/* One message line; file may be NULL (no caller known). */
static void log_line(enum berth_log_level level, const char *file, int line, const char *func,
		     const char *fmt, va_list ap)
{
	char msg[2048], where[512];
	struct line l;
	int first;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	begin(&l, &first, level);
	if (report_caller && file) {
		/* From the source tree's src/ on: __FILE__ is the build's absolute path. */
		const char *src = strstr(file, "/src/");
		snprintf(where, sizeof(where), "%s:%d", src ? src + 1 : file, line);
		field(&l, &first, "func", func, 1);
		field(&l, &first, "file", where, 1);
	}
	field(&l, &first, "msg", msg, 1);
	end(&l);
}

void berth_log(enum berth_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	log_line(level, NULL, 0, NULL, fmt, ap);
	va_end(ap);
}

void berth_log_at(enum berth_log_level level, const char *file, int line, const char *func, const char *fmt, ...)
{
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	log_line(level, file, line, func, fmt, ap);
	va_end(ap);
}

void berth_log_access(const struct berth_access_entry *e)
{
	char num[32];
	struct line l;
	int first;

	if (BERTH_LOG_INFO < min_level)
		return;
	begin(&l, &first, BERTH_LOG_INFO);
	field(&l, &first, "msg", "response completed", 1);
	field(&l, &first, "http.request.id", e->request_id, 1);
	field(&l, &first, "http.request.method", e->method, 1);
	field(&l, &first, "http.request.uri", e->uri, 1);
	field(&l, &first, "http.request.remoteaddr", e->remote, 1);
	field(&l, &first, "http.request.useragent", e->user_agent, 1);
	if (e->user)
		field(&l, &first, "auth.user.name", e->user, 1);
	snprintf(num, sizeof(num), "%u", e->status);
	field(&l, &first, "http.response.status", num, 0);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)e->bytes_in);
	field(&l, &first, "http.request.contentlength", num, 0);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)e->bytes_out);
	field(&l, &first, "http.response.written", num, 0);
	snprintf(num, sizeof(num), "%.3f", e->duration_ms / 1000.0);
	field(&l, &first, "http.response.duration", num, 0);
	end(&l);
}

#include "http/range.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

/* A parsed byte-range-spec, before it is resolved against the resource size. */
struct range_spec {
	int suffix;        /* "-N": the last `first` bytes */
	uint64_t first;    /* first-pos, or the suffix length */
	int has_last;
	uint64_t last;     /* last-pos, inclusive */
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Consumes one or more decimal digits at *pp into *out. 0, or BERTH_EINVALID if there is no
 * digit or the value does not fit in uint64. */
static int scan_u64(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (!is_digit(*p))
		return BERTH_EINVALID;
	while (is_digit(*p)) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return BERTH_EINVALID;
		v = v * 10 + d;
		p++;
	}
	*pp = p;
	*out = v;
	return 0;
}

int berth_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v;

	if (!s || scan_u64(&s, &v) != 0 || *s != '\0')
		return BERTH_EINVALID;
	if (out)
		*out = v;
	return 0;
}

/* "bytes" OWS "=" OWS, case-insensitive unit. Returns the position after it, or NULL. */
static const char *skip_bytes_unit(const char *p)
{
	p = skip_ows(p);
	if (strncasecmp(p, "bytes", 5) != 0)
		return NULL;
	p = skip_ows(p + 5);
	if (*p != '=')
		return NULL;
	return skip_ows(p + 1);
}

/* Parses a whole Range header holding exactly one byte-range-spec. */
static int parse_range_spec(const char *header, struct range_spec *spec)
{
	const char *p = skip_bytes_unit(header);

	*spec = (struct range_spec){ 0 };
	if (!p)
		return BERTH_EINVALID;
	if (*p == '-') {
		p = skip_ows(p + 1);
		if (scan_u64(&p, &spec->first) != 0)
			return BERTH_EINVALID;
		spec->suffix = 1;
	} else {
		if (scan_u64(&p, &spec->first) != 0)
			return BERTH_EINVALID;
		p = skip_ows(p);
		if (*p != '-')
			return BERTH_EINVALID;
		p = skip_ows(p + 1);
		if (is_digit(*p)) {
			if (scan_u64(&p, &spec->last) != 0)
				return BERTH_EINVALID;
			spec->has_last = 1;
			if (spec->last < spec->first)
				return BERTH_EINVALID;
		}
	}
	p = skip_ows(p);
	return *p == '\0' ? 0 : BERTH_EINVALID;
}

/* Resolves a parsed spec against a resource of `size` bytes. */
static int resolve_range(const struct range_spec *spec, uint64_t size, uint64_t *start,
			 uint64_t *len)
{
	uint64_t end;

	if (size == 0)
		return BERTH_ERANGE;
	if (spec->suffix) {
		uint64_t n = spec->first < size ? spec->first : size;

		if (n == 0)
			return BERTH_ERANGE;
		*start = size - n;
		*len = n;
		return 0;
	}
	if (spec->first >= size)
		return BERTH_ERANGE;
	end = spec->has_last && spec->last < size ? spec->last : size - 1;
	*start = spec->first;
	*len = end - spec->first + 1;
	return 0;
}

/* Longest byte-range-spec (with its blanks) looked at in a list; a longer one is malformed. */
#define RANGE_ITEM_MAX 96

/* 1 if the set after "bytes=" is a comma-separated list whose every non-empty element is a
 * well-formed byte-range-spec (Go skips empty elements as RFC 9110's list syntax allows). */
static int well_formed_list(const char *header)
{
	const char *p = skip_bytes_unit(header);
	if (!p)
		return 0;
	for (;;) {
		size_t n = strcspn(p, ",");
		char item[RANGE_ITEM_MAX + sizeof("bytes=")];
		struct range_spec spec;
		const char *q = skip_ows(p);
		if ((size_t)(q - p) < n) { /* not an empty element */
			if (n > RANGE_ITEM_MAX)
				return 0;
			memcpy(item, "bytes=", 6);
			memcpy(item + 6, p, n);
			item[6 + n] = '\0';
			if (parse_range_spec(item, &spec) != 0)
				return 0;
		}
		if (!p[n])
			return 1;
		p += n + 1;
	}
}

int berth_range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len)
{
	struct range_spec spec;

	if (!header)
		return BERTH_EINVALID;
	if (parse_range_spec(header, &spec) != 0)
		return well_formed_list(header) ? BERTH_EUNSUPPORTED : BERTH_EINVALID;
	return resolve_range(&spec, size, start, len);
}

enum content_range_form {
	CR_BARE,   /* "A-B" */
	CR_EQUALS, /* "bytes=A-B" */
	CR_SPACE,  /* "bytes A-B", optionally "/total" or "/" and an asterisk */
};

/* Recognises the optional "bytes" prefix; returns the position of the first number. */
static const char *content_range_prefix(const char *p, enum content_range_form *form)
{
	p = skip_ows(p);
	*form = CR_BARE;
	if (strncasecmp(p, "bytes", 5) != 0)
		return p;
	p += 5;
	if (*p == '=') {
		*form = CR_EQUALS;
		return skip_ows(p + 1);
	}
	if (*p == ' ' || *p == '\t') {
		*form = CR_SPACE;
		return skip_ows(p);
	}
	return NULL;
}

/* "/" OWS (total | "*") after the range of the "bytes A-B/total" form; total must exceed last. */
static const char *skip_complete_length(const char *p, uint64_t last)
{
	uint64_t total;

	p = skip_ows(p + 1);
	if (*p == '*')
		return p + 1;
	if (scan_u64(&p, &total) != 0 || last >= total)
		return NULL;
	return p;
}

int berth_content_range_parse(const char *header, uint64_t *start, uint64_t *end)
{
	enum content_range_form form;
	const char *p;
	uint64_t first;
	uint64_t last;

	if (!header)
		return BERTH_EINVALID;
	p = content_range_prefix(header, &form);
	if (!p || scan_u64(&p, &first) != 0)
		return BERTH_EINVALID;
	p = skip_ows(p);
	if (*p != '-')
		return BERTH_EINVALID;
	p = skip_ows(p + 1);
	if (scan_u64(&p, &last) != 0 || last < first)
		return BERTH_EINVALID;
	p = skip_ows(p);
	if (form == CR_SPACE && *p == '/') {
		p = skip_complete_length(p, last);
		if (!p)
			return BERTH_EINVALID;
		p = skip_ows(p);
	}
	if (*p != '\0')
		return BERTH_EINVALID;
	*start = first;
	*end = last;
	return 0;
}

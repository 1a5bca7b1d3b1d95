/*
 * Query strings as the API reads them. The URL router and handlers are reached through the
 * HTTP target (fuzz_http.c); this one feeds each query value straight to the validator its
 * handler uses, fast and without a server:
 *   digest=, mount=   berth_digest_parse / berth_digest_valid (uploads: monolithic PUT, mount)
 *   from=             berth_name_valid (cross-repository mount source)
 *   n=                berth_parse_u64 (tags/list and _catalog pagination)
 *   last=             the strcmp walk of the pagination over a sorted list
 *                     (berth_strvec_push / berth_strvec_sort), the list made of the tag= values
 * The handlers get their arguments from berth_query (src/http/query.c), which is checked here
 * against a plain model of the same rules: '&' between arguments, the first '=' between key and
 * value, '+' as space, %XX decoded except %00 (which stays encoded, so a NUL never cuts a value
 * short), the first argument of a name wins, one without '=' has no value.
 * Properties: no crash or leak; berth_query gives each name the model's first value; the
 * pagination window stays inside the list, has at most n entries and starts after `last`.
 */
#include "core/err.h"
#include "fuzz_common.h"
#include "http/query.h"
#include "http/range.h"
#include "registry/reference.h"
#include "registry/registry.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 32;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* In place, as libmicrohttpd's '+' handling followed by berth's unescape callback. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++)
		if (*r == '+')
			*r = ' ';
	for (const char *r = s; *r; r++) {
		int hi, lo;
		if (r[0] == '%' && r[1] && r[2] && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
		    (hi | lo) != 0) {
			*w++ = (char)(hi * 16 + lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

#define MAX_TAGS 64

static int strvec_has(const struct berth_strvec *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->items[i], s) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = fuzz_cstr(data, size);
	const char *n_arg = NULL, *last = NULL;
	struct berth_strvec all = { 0 }, seen = { 0 };
	struct berth_query *query = berth_query_new(q);

	for (char *save = NULL, *arg = strtok_r(q, "&", &save); arg; arg = strtok_r(NULL, "&", &save)) {
		char *val = strchr(arg, '=');
		if (val)
			*val++ = '\0';
		unescape(arg);
		if (val)
			unescape(val);
		if (seen.n < MAX_TAGS && !strvec_has(&seen, arg)) { /* the first of its name */
			const char *got = berth_query_get(query, arg);
			FUZZ_CHECK(val ? got && strcmp(got, val) == 0 : got == NULL,
				   "berth_query gives \"%s\" for \"%s\", the model \"%s\"", got ? got : "(null)",
				   arg, val ? val : "(null)");
			berth_strvec_push(&seen, arg);
		}
		if (!val)
			continue;
		if (strcmp(arg, "digest") == 0 || strcmp(arg, "mount") == 0) {
			enum berth_digest_alg alg;
			const char *hex = NULL;
			int rc = berth_digest_parse(val, &alg, &hex);
			FUZZ_CHECK((rc == 0) == berth_digest_valid(val), "digest verdicts differ");
			if (rc == 0)
				FUZZ_CHECK(strlen(hex) == berth_digest_hex_len(alg), "hex length");
		} else if (strcmp(arg, "from") == 0) {
			if (berth_name_valid(val))
				FUZZ_CHECK(strlen(val) <= BERTH_NAME_MAX && !strchr(val, '%') && !strstr(val, ".."),
					   "from=\"%s\" accepted", val);
		} else if (strcmp(arg, "n") == 0) {
			n_arg = val;
		} else if (strcmp(arg, "last") == 0) {
			last = val;
		} else if (strcmp(arg, "tag") == 0 && all.n < MAX_TAGS) {
			berth_strvec_push(&all, val);
		}
	}
	berth_strvec_sort(&all);
	for (size_t i = 1; i < all.n; i++)
		FUZZ_CHECK(strcmp(all.items[i - 1], all.items[i]) <= 0, "list not sorted");

	/* The window berth_api_send_page (src/api/tags.c) computes, with default_n 0 (tags). */
	uint64_t n = all.n;
	int bad_n = n_arg && *n_arg && berth_parse_u64(n_arg, &n) < 0;
	if (!bad_n) {
		size_t first = 0, count;
		if (last && *last)
			while (first < all.n && strcmp(all.items[first], last) <= 0)
				first++;
		count = all.n - first;
		if (count > n)
			count = (size_t)n;
		FUZZ_CHECK(first <= all.n && first + count <= all.n, "window %zu+%zu of %zu", first, count,
			   all.n);
		if (last && *last && count)
			FUZZ_CHECK(strcmp(all.items[first], last) > 0, "window starts at or before last");
	}
	berth_strvec_release(&all);
	berth_strvec_release(&seen);
	berth_query_free(query);
	free(q);
	return 0;
}

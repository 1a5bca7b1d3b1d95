/* GET /v2/<name>/tags/list and the n/last pagination shared with the catalog. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api_int.h"
#include "core/err.h"
#include "core/util.h"
#include "http/range.h"

/* Percent-encodes a query value (names and tags only hold [a-zA-Z0-9._/-], but be safe). */
static void query_escape(struct berth_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-' || c == '/')
			berth_buf_append(b, s, 1);
		else
			berth_buf_printf(b, "%%%02X", c);
	}
}

/* 400 PAGINATION_NUMBER_INVALID with detail (a JSON object, taken; NULL for none), as
 * Distribution 3 answers a bad or too large n. */
static void pagination_number_invalid(struct berth_request *req, json_t *detail)
{
	char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
	berth_api_answer(req, BERTH_API_PAGINATION_INVALID,
			"invalid number of results requested", text);
	free(text);
	json_decref(detail);
}

/* The index of the first item after last (items sorted by strcmp, as listings are). */
static size_t first_after(const char *const *items, size_t total, const char *last)
{
	size_t lo = 0, hi = total;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(items[mid], last) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Appends s as a JSON string, escaped as jansson escapes it (names and tags never need it). */
static void json_string_to(struct berth_buf *b, const char *s)
{
	berth_buf_append(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		berth_buf_append(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\')
			berth_buf_printf(b, "\\%c", c);
		else if (c == '\n')
			berth_buf_append(b, "\\n", 2);
		else if (c == '\t')
			berth_buf_append(b, "\\t", 2);
		else
			berth_buf_printf(b, "\\u%04X", c);
		run = s + 1;
	}
	berth_buf_append(b, run, (size_t)(s - run));
	berth_buf_append(b, "\"", 1);
}

void berth_api_send_page(struct berth_request *req, const char *const *items, size_t total,
			 const char *key_name, const char *key_value, const char *list_name,
			 const char *link_path, uint64_t default_n, uint64_t max_n)
{
	const char *n_arg = berth_req_query(req, "n");
	const char *last = berth_req_query(req, "last");
	uint64_t n = default_n;
	size_t first = 0, count;

	if (n_arg && *n_arg && berth_parse_u64(n_arg, &n) < 0) {
		pagination_number_invalid(req, json_pack("{s:s}", "n", n_arg));
		return;
	}
	if (n_arg && !*n_arg)
		n = default_n;
	if (!n_arg && default_n == 0)
		n = total;
	/* As Distribution 3: a catalog's default page size is also its maximum (catalog.maxentries),
	 * and asking for more is refused; a tag list's n above tags.maxtags is lowered to it (the
	 * spec lets a page hold fewer than n when a Link header follows). */
	if (default_n && n > default_n) {
		pagination_number_invalid(req, json_pack("{s:I}", "n", (json_int_t)(n > INT64_MAX ? INT64_MAX : n)));
		return;
	}
	if (max_n && n > max_n)
		n = max_n;
	if (last && *last)
		first = first_after(items, total, last);
	count = total - first;
	if (count > n)
		count = (size_t)n;

	/* Written directly, as jansson's compact form: a page of 1,000 names is 1,000 string
	 * objects and a dump otherwise. */
	struct berth_buf json = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_append(&json, "{", 1);
	if (key_name) {
		json_string_to(&json, key_name);
		berth_buf_append(&json, ":", 1);
		json_string_to(&json, key_value);
		berth_buf_append(&json, ",", 1);
	}
	json_string_to(&json, list_name);
	berth_buf_append(&json, ":[", 2);
	for (size_t i = 0; i < count; i++) {
		if (i)
			berth_buf_append(&json, ",", 1);
		json_string_to(&json, items[first + i]);
	}
	berth_buf_append(&json, "]}", 2);
	size_t len;
	char *body = berth_buf_detach(&json, &len);

	struct MHD_Response *resp = berth_resp_take(body, len);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (count > 0 && first + count < total) {
		struct berth_buf link = BERTH_BUF_INIT(1 << 16);
		berth_buf_printf(&link, "<%s%s?last=", req->url_prefix, link_path);
		query_escape(&link, items[first + count - 1]);
		berth_buf_printf(&link, "&n=%llu>; rel=\"next\"", (unsigned long long)n);
		MHD_add_response_header(resp, "Link", link.data);
		berth_buf_release(&link);
	}
	berth_req_send(req, MHD_HTTP_OK, resp, len);
}

static void release_tags(void *cls)
{
	berth_tag_list_release(cls);
}

void berth_api_tags(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	const struct berth_tag_list *tags = NULL;
	char link_path[BERTH_NAME_MAX + 32];
	int rc;

	if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0 && !berth_req_is_head(req)) {
		berth_api_method_not_allowed(req);
		return;
	}
	if (ar->proxy) {
		berth_api_proxied_tags(req);
		return;
	}
	rc = berth_tags_get(&tags, ar->registry, ar->name);
	if (rc == BERTH_ENOTFOUND) {
		/* Distribution's detail; a routed name matches the grammar, so needs no escaping. */
		char detail[BERTH_NAME_MAX + 16];
		snprintf(detail, sizeof(detail), "{\"name\":\"%s\"}", ar->name);
		berth_api_answer(req, BERTH_API_NAME_UNKNOWN,
				"repository name not known to registry", detail);
		return;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot list tags");
		return;
	}
	if (!berth_req_query(req, "n") && !berth_req_query(req, "last")) {
		/* The whole list: its JSON is kept with it, and sent from there (a 10,000-tag list is
		 * ~100 KB a copy would cost each request); the response holds the list's reference. */
		size_t len = tags->json_len; /* tags may be gone once borrowing fails */
		struct MHD_Response *resp = berth_resp_borrow(tags->json, len, release_tags, (void *)tags);
		if (resp)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		berth_req_send(req, MHD_HTTP_OK, resp, len);
		return;
	} else {
		snprintf(link_path, sizeof(link_path), "/v2/%s/tags/list", ar->name);
		/* tags.maxtags (Distribution 3.1): a larger n is lowered to it, with a Link to go on. */
		berth_api_send_page(req, tags->tags, tags->n, "name", ar->name, "tags", link_path, 0,
				    berth_registry_tags_max(ar->registry));
	}
	berth_tag_list_release(tags);
}

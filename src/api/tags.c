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
	if (last && *last) {
		while (first < total && strcmp(items[first], last) <= 0)
			first++;
	}
	count = total - first;
	if (count > n)
		count = (size_t)n;

	json_t *list = json_array();
	for (size_t i = 0; i < count; i++)
		json_array_append_new(list, json_string(items[first + i]));
	json_t *root = json_object();
	if (key_name)
		json_object_set_new(root, key_name, json_string(key_value));
	json_object_set_new(root, list_name, list);
	char *body = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	size_t len = strlen(body);

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
		/* The whole list: its JSON is kept with it. */
		struct MHD_Response *resp = berth_resp_copy(tags->json, tags->json_len);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		berth_req_send(req, MHD_HTTP_OK, resp, tags->json_len);
	} else {
		snprintf(link_path, sizeof(link_path), "/v2/%s/tags/list", ar->name);
		/* tags.maxtags (Distribution 3.1): a larger n is lowered to it, with a Link to go on. */
		berth_api_send_page(req, tags->tags, tags->n, "name", ar->name, "tags", link_path, 0,
				    berth_registry_tags_max(ar->registry));
	}
	berth_tag_list_release(tags);
}

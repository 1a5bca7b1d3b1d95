/* The web interface's routes: pages, their files, and the JSON endpoints of ui/ui.h. */
#include "ui/ui.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "registry/reference.h"
#include "registry/registry.h"
#include "ui/assets.h"
#include "ui/token.h"
#include "ui/ui_int.h"

/* The page may run only its own script and style and talk only to its own origin: nothing
 * inline, nothing from elsewhere, no framing. */
#define UI_CSP                                                                                  \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "           \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static int owns(const char *url)
{
	return strncmp(url, "/ui", 3) == 0 && (url[3] == '\0' || url[3] == '/');
}

static const struct berth_ui_asset *find_asset(const char *name)
{
	for (size_t i = 0; i < berth_ui_n_assets; i++)
		if (strcmp(berth_ui_assets[i].name, name) == 0)
			return &berth_ui_assets[i];
	return NULL;
}

/* http.prefix as a path ("" or "/registry"): req->url_prefix is http.host + prefix when
 * absolute URLs are configured, and the page refers to its files by path only. */
static const char *path_prefix(const struct berth_request *req)
{
	const char *p = req->url_prefix;
	const char *scheme = strstr(p, "://");
	if (scheme) {
		p = strchr(scheme + 3, '/');
		return p ? p : "";
	}
	return p;
}

static void add_ui_headers(struct MHD_Response *resp, const char *etag)
{
	MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
	if (etag) {
		/* Revalidated on each use: a new berth binary brings new files at once. */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	} else {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	}
}

/* 1 if the client's If-None-Match names etag (or is "*"). */
static int not_modified(struct berth_request *req, const char *etag)
{
	const char *inm = berth_req_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (!inm)
		return 0;
	if (strcmp(inm, "*") == 0)
		return 1;
	size_t n = strlen(etag);
	for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag))
		if ((p == inm || p[-1] == ' ' || p[-1] == ',') && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return 1;
	return 0;
}

static void send_body(struct berth_request *req, const char *type, const char *etag,
		      struct MHD_Response *resp, size_t len)
{
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	add_ui_headers(resp, etag);
	berth_req_send(req, MHD_HTTP_OK, resp, len);
}

static int answer_not_modified(struct berth_request *req, const char *etag)
{
	if (!not_modified(req, etag))
		return 0;
	struct MHD_Response *resp = berth_resp_empty();
	add_ui_headers(resp, etag);
	berth_req_send(req, MHD_HTTP_NOT_MODIFIED, resp, 0);
	return 1;
}

static void send_asset(struct berth_request *req, const struct berth_ui_asset *a)
{
	if (answer_not_modified(req, a->etag))
		return;
	send_body(req, a->type, a->etag, berth_resp_copy(a->data, a->len), a->len);
}

/* s with & < > " ' escaped for an HTML attribute; owned by the caller. */
static char *html_escape(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		n += strchr("&<>\"'", *p) ? 6 : 1;
	char *out = berth_malloc(n + 1), *o = out;
	for (const char *p = s; *p; p++) {
		if (strchr("&<>\"'", *p))
			o += snprintf(o, 7, "&#%d;", *p);
		else
			*o++ = *p;
	}
	*o = '\0';
	return out;
}

/* The shell of every page: index.html with "%BASE%" replaced by the path prefix, so the page
 * finds its files and the registry below http.prefix. */
static void send_page(struct berth_request *req)
{
	const struct berth_ui_asset *a = find_asset("index.html");
	static const char mark[] = "%BASE%";
	if (!a) {
		berth_api_answer(req, BERTH_API_NO_ENDPOINT, "no such page", NULL);
		return;
	}
	if (answer_not_modified(req, a->etag))
		return;
	char *base = html_escape(path_prefix(req));
	size_t base_len = strlen(base), marks = 0;
	const char *text = (const char *)a->data;
	for (const char *p = strstr(text, mark); p; p = strstr(p + 1, mark))
		marks++;
	size_t len = a->len - marks * (sizeof(mark) - 1) + marks * base_len;
	char *page = berth_malloc(len + 1), *o = page;
	for (const char *p = text, *m; *p; p = m + sizeof(mark) - 1) {
		m = strstr(p, mark);
		if (!m) {
			memcpy(o, p, strlen(p));
			o += strlen(p);
			break;
		}
		memcpy(o, p, (size_t)(m - p));
		o += m - p;
		memcpy(o, base, base_len);
		o += base_len;
	}
	free(base);
	send_body(req, "text/html; charset=utf-8", a->etag, berth_resp_take(page, len), len);
}

void berth_ui__send_json(struct berth_request *req, json_t *doc)
{
	char *body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	size_t len = strlen(body);
	struct MHD_Response *resp = berth_resp_take(body, len);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	add_ui_headers(resp, NULL);
	berth_req_send(req, MHD_HTTP_OK, resp, len);
}

static void send_info(struct berth_request *req)
{
	if (!berth_api_authorize(req, NULL, 0))
		return;
	berth_ui__send_json(req, json_pack("{s:b, s:b}", "delete_enabled", berth_registry_delete_enabled(berth_api_registry(req)),
				 "readonly", berth_registry_readonly(berth_api_registry(req))));
}

static void send_pushed(struct berth_request *req)
{
	const char *repo = berth_req_query(req, "repo"), *tag = berth_req_query(req, "tag");
	if (!repo || !berth_name_valid(repo)) {
		berth_api_answer(req, BERTH_API_NAME_INVALID, NULL, NULL);
		return;
	}
	if (!tag || !berth_tag_valid(tag)) {
		berth_api_answer(req, BERTH_API_TAG_INVALID, "invalid tag", NULL);
		return;
	}
	struct berth_access pull = { "repository", repo, "pull" };
	if (!berth_api_authorize(req, &pull, 1))
		return;
	int64_t mtime = 0;
	int rc = berth_tag_pushed(&mtime, berth_api_registry(req), repo, tag);
	if (rc == BERTH_ENOTFOUND) {
		berth_api_answer(req, BERTH_API_MANIFEST_UNKNOWN, NULL, NULL);
		return;
	}
	if (rc < 0) {
		berth_error("cannot stat tag '%s' of '%s': %s", tag, repo, berth_strerror(rc));
		berth_api_answer(req, BERTH_API_INTERNAL, "cannot read the tag", NULL);
		return;
	}
	char when[32];
	struct tm tm;
	time_t t = (time_t)mtime;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	berth_ui__send_json(req, json_pack("{s:s}", "pushed", when));
}

static void redirect_to_root(struct berth_request *req)
{
	char *to = berth_asprintf("%s/ui/", path_prefix(req));
	struct MHD_Response *resp = berth_resp_empty();
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, to);
	free(to);
	berth_req_send(req, MHD_HTTP_MOVED_PERMANENTLY, resp, 0);
}

static void dispatch(struct berth_request *req, const char *url)
{
	if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0 && !berth_req_is_head(req)) {
		berth_api_answer(req, BERTH_API_UNSUPPORTED, "the web interface is read-only: use GET", NULL);
		return;
	}
	if (strcmp(url, "/ui") == 0) {
		redirect_to_root(req);
	} else if (strncmp(url, "/ui/assets/", 11) == 0) {
		const struct berth_ui_asset *a = find_asset(url + 11);
		if (a && strcmp(a->name, "index.html") != 0)
			send_asset(req, a);
		else
			berth_api_answer(req, BERTH_API_NO_ENDPOINT, "no such file", NULL);
	} else if (strcmp(url, "/ui/api/info") == 0) {
		send_info(req);
	} else if (strcmp(url, "/ui/api/pushed") == 0) {
		berth_req_offload(req, send_pushed); /* reads storage: off the polling thread on S3 */
	} else if (strcmp(url, "/ui/api/token") == 0) {
		berth_ui_token(req);
	} else if (strncmp(url, "/ui/api/", 8) == 0) {
		berth_api_answer(req, BERTH_API_NO_ENDPOINT, NULL, NULL);
	} else {
		send_page(req);
	}
}

const struct berth_api_extra berth_ui_handler = { owns, dispatch };

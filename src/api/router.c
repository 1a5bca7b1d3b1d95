/*
 * URL routing. Repository names may contain '/', so a route is recognised by its suffix:
 *   /                                     liveness probe (any method, no auth)
 *   /v2/                                  base
 *   /v2/_catalog                          catalog
 *   /v2/<name>/tags/list                  tags
 *   /v2/<name>/manifests/<reference>      manifest
 *   /v2/<name>/blobs/uploads/             start an upload
 *   /v2/<name>/blobs/uploads/<uuid>       an upload session
 *   /v2/<name>/blobs/<digest>             blob
 *   /v2/<name>/referrers/<digest>         referrers
 *   /v2/_berth/repositories/<name>        a repository (berth-specific: DELETE); no repository
 *                                         name has a component starting with '_', so this
 *                                         prefix shadows no OCI route
 *   what the API's extra handler claims   the web interface, with ui.enabled (ui/ui.h)
 */
#include <string.h>

#include "api/api.h"
#include "api/api_int.h"
#include "registry/reference.h"
#include "auth/auth.h"
#include "core/err.h"
#include "proxy/proxy.h"
#include "registry/registry.h"

static int ends_with(const char *s, size_t len, const char *suffix, size_t *prefix_len)
{
	size_t n = strlen(suffix);
	if (len < n || memcmp(s + len - n, suffix, n) != 0)
		return 0;
	*prefix_len = len - n;
	return 1;
}

/* Splits "<name>/<kind>/<last>" where last has no '/'. */
static int split_last(const char *s, size_t len, const char *kind, size_t *name_len, const char **last)
{
	const char *slash = memrchr(s, '/', len);
	size_t klen = strlen(kind);
	if (!slash || slash == s + len - 1)
		return 0;
	size_t before = (size_t)(slash - s);
	if (before < klen + 2 || memcmp(slash - klen, kind, klen) != 0 || slash[-(long)klen - 1] != '/')
		return 0;
	*name_len = before - klen - 1;
	*last = slash + 1;
	return 1;
}

#define REPOSITORY_PREFIX "_berth/repositories/"

static enum berth_api_route match(const char *rest, size_t *name_len, const char **param)
{
	size_t len = strlen(rest);
	*param = NULL;
	if (strncmp(rest, REPOSITORY_PREFIX, strlen(REPOSITORY_PREFIX)) == 0) {
		*param = rest + strlen(REPOSITORY_PREFIX); /* the name, moved into place by dispatch */
		*name_len = len - strlen(REPOSITORY_PREFIX);
		return BERTH_API_ROUTE_REPOSITORY;
	}
	if (ends_with(rest, len, "/tags/list", name_len))
		return BERTH_API_ROUTE_TAGS;
	if (ends_with(rest, len, "/blobs/uploads/", name_len) ||
	    ends_with(rest, len, "/blobs/uploads", name_len))
		return BERTH_API_ROUTE_UPLOADS;
	if (split_last(rest, len, "blobs/uploads", name_len, param))
		return BERTH_API_ROUTE_UPLOAD;
	if (split_last(rest, len, "manifests", name_len, param))
		return BERTH_API_ROUTE_MANIFEST;
	if (split_last(rest, len, "blobs", name_len, param))
		return BERTH_API_ROUTE_BLOB;
	if (split_last(rest, len, "referrers", name_len, param))
		return BERTH_API_ROUTE_REFERRERS;
	return BERTH_API_ROUTE_NONE;
}

static void not_found(struct berth_request *req)
{
	berth_api_answer(req, BERTH_API_NO_ENDPOINT, "no such endpoint", NULL);
}

static int is_method(const struct berth_request *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

/* The accesses a routed request needs (at most 2), as token access claims name them. */
static size_t required_access(struct berth_request *req, struct berth_access *out)
{
	struct berth_api_request *ar = berth_api_req(req);
	size_t n = 0;
	int read = is_method(req, MHD_HTTP_METHOD_GET) || berth_req_is_head(req);
	int del = is_method(req, MHD_HTTP_METHOD_DELETE);

	switch (ar->route) {
	case BERTH_API_ROUTE_BASE:
		return 0;
	case BERTH_API_ROUTE_CATALOG:
		out[n++] = (struct berth_access){ "registry", "catalog", "*" };
		return n;
	case BERTH_API_ROUTE_UPLOADS:
	case BERTH_API_ROUTE_UPLOAD:
		/* Uploading needs push, and pull too, as Distribution asks. A mount's source
		 * repository is checked apart (berth_api_may_pull): without pull on it, the
		 * POST starts a plain upload instead of failing. */
		out[n++] = (struct berth_access){ "repository", ar->name, "pull" };
		out[n++] = (struct berth_access){ "repository", ar->name, "push" };
		return n;
	default:
		if (del)
			out[n++] = (struct berth_access){ "repository", ar->name, "delete" };
		else if (read)
			out[n++] = (struct berth_access){ "repository", ar->name, "pull" };
		else {
			out[n++] = (struct berth_access){ "repository", ar->name, "pull" };
			out[n++] = (struct berth_access){ "repository", ar->name, "push" };
		}
		return n;
	}
}

int berth_api_authorize(struct berth_request *req, const struct berth_access *access, size_t n)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (!ar->auth)
		return 1;
	int rc = berth_auth_authorize_host(ar->auth, berth_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
					   berth_req_header(req, MHD_HTTP_HEADER_HOST), access, n,
					   ar->challenge, sizeof(ar->challenge), req->user,
					   sizeof(req->user));
	if (rc == 0)
		return 1;
	if (rc == BERTH_EUNAUTHORIZED || rc == BERTH_EDENIED)
		berth_api_answer(req, BERTH_API_UNAUTHORIZED, "authentication required", NULL);
	else
		berth_api_answer(req, BERTH_API_INTERNAL, "authorization failed", NULL);
	return 0;
}

/* 1 if the routed request may go on; otherwise answers 401 with the challenge and returns 0. */
static int authorize(struct berth_request *req)
{
	struct berth_access access[2];
	if (!berth_api_req(req)->auth)
		return 1;
	return berth_api_authorize(req, access, required_access(req, access));
}

struct berth_registry *berth_api_registry(struct berth_request *req)
{
	return berth_api_req(req)->registry;
}

struct berth_auth *berth_api_auth(struct berth_request *req)
{
	return berth_api_req(req)->auth;
}

int berth_api_may_pull(struct berth_request *req, const char *repo)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (!ar->auth)
		return 1;
	struct berth_access access = { "repository", repo, "pull" };
	char challenge[sizeof(ar->challenge)]; /* not sent: a refusal here answers nothing */
	return berth_auth_authorize_host(ar->auth, berth_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
					 berth_req_header(req, MHD_HTTP_HEADER_HOST), &access, 1, challenge,
					 sizeof(challenge), NULL, 0) == 0;
}

static int is_write(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_PUT) == 0 || strcmp(method, MHD_HTTP_METHOD_POST) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_PATCH) == 0 || strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;
}

static void run_route(struct berth_request *req);

/* The route is the API's and, by its index, the metrics' (route_names). */
static void set_route(struct berth_request *req, enum berth_api_route route)
{
	berth_api_req(req)->route = route;
	req->route = (unsigned)route;
}

/* A pull-through cache of several upstreams: containerd's ?ns=HOST names the upstream by its
 * prefix (the repository is then stored as <prefix>/<name>); a repository no upstream serves is
 * a hosted one, answered as without a proxy. */
static void route_to_upstream(struct berth_api_request *ar, const char *ns)
{
	char named[sizeof(ar->name)];
	if (berth_proxy_ns_name(ar->proxy, ns, ar->name, named, sizeof(named)))
		memcpy(ar->name, named, sizeof(named));
	if (!berth_proxy_serves(ar->proxy, ar->name))
		ar->proxy = NULL;
}

void berth_api_dispatch(struct berth_request *req, const char *url, void *payload)
{
	const struct berth_api *api = payload;
	struct berth_api_request *ar = berth_api_req(req);
	size_t name_len = 0;
	const char *param = NULL;

	ar->registry = api->registry;
	ar->auth = api->auth;
	ar->notify = api->notify;
	ar->proxy = api->proxy;
	berth_err_clear();
	if (strcmp(url, "/") == 0) {
		berth_api_root(req);
		return;
	}
	if (strcmp(url, "/v2/") == 0 || strcmp(url, "/v2") == 0) {
		set_route(req, BERTH_API_ROUTE_BASE);
		if (authorize(req))
			berth_api_base(req);
		return;
	}
	if (api->extra && api->extra->owns(url)) {
		api->extra->dispatch(req, url);
		return;
	}
	if (strncmp(url, "/v2/", 4) != 0) {
		not_found(req);
		return;
	}
	if (strcmp(url, "/v2/_catalog") == 0) {
		set_route(req, BERTH_API_ROUTE_CATALOG);
		if (authorize(req))
			berth_req_offload(req, berth_api_catalog);
		return;
	}
	set_route(req, match(url + 4, &name_len, &param));
	if (ar->route == BERTH_API_ROUTE_NONE) {
		not_found(req);
		return;
	}
	const char *name = url + 4;
	if (ar->route == BERTH_API_ROUTE_REPOSITORY) {
		name = param;
		param = NULL;
	}
	if (name_len == 0 || name_len > BERTH_NAME_MAX) {
		berth_api_answer(req, BERTH_API_NAME_INVALID, "invalid repository name", NULL);
		return;
	}
	memcpy(ar->name, name, name_len);
	ar->name[name_len] = '\0';
	if (!berth_name_valid(ar->name)) {
		berth_api_answer(req, BERTH_API_NAME_INVALID, "invalid repository name", NULL);
		return;
	}
	if (ar->proxy)
		route_to_upstream(ar, berth_req_query(req, "ns"));
	if (param) {
		if (strlen(param) >= sizeof(ar->reference)) {
			berth_api_answer(req,
					 ar->route == BERTH_API_ROUTE_MANIFEST ? BERTH_API_TAG_INVALID
									       : BERTH_API_DIGEST_INVALID,
					 "reference is too long", NULL);
			return;
		}
		memcpy(ar->reference, param, strlen(param) + 1);
	}
	if (!authorize(req))
		return;
	if (berth_registry_readonly(ar->registry) && is_write(req->method)) {
		/* Maintenance mode: reads go on, every write is refused (as Distribution's). */
		berth_api_answer(req, BERTH_API_UNSUPPORTED,
				"registry is in read-only mode", NULL);
		return;
	}
	if (ar->proxy && (ar->route == BERTH_API_ROUTE_UPLOADS || ar->route == BERTH_API_ROUTE_UPLOAD ||
			  ar->route == BERTH_API_ROUTE_REPOSITORY)) {
		/* A pull-through cache takes no pushes or deletes, as Distribution's. */
		berth_api_answer(req, BERTH_API_UNSUPPORTED, "the operation is unsupported", NULL);
		return;
	}
	/* Storage work leaves the polling thread when the driver asks it (main.c gives the server
	 * workers then); on the filesystem it runs here. */
	berth_req_offload(req, run_route);
}

/* The routed, authorized request's handler. */
static void run_route(struct berth_request *req)
{
	switch (berth_api_req(req)->route) {
	case BERTH_API_ROUTE_TAGS: berth_api_tags(req); break;
	case BERTH_API_ROUTE_MANIFEST: berth_api_manifest(req); break;
	case BERTH_API_ROUTE_BLOB: berth_api_blob(req); break;
	case BERTH_API_ROUTE_UPLOADS: berth_api_uploads_post(req); break;
	case BERTH_API_ROUTE_UPLOAD: berth_api_upload(req); break;
	case BERTH_API_ROUTE_REFERRERS: berth_api_referrers(req); break;
	case BERTH_API_ROUTE_REPOSITORY: berth_api_repository(req); break;
	default: not_found(req); break;
	}
}

static const char *const route_names[BERTH_API_N_ROUTES] = {
	"none", "base", "catalog", "tags", "manifest", "blob", "uploads", "upload", "referrers",
	"repository",
};

void berth_api_handler(struct berth_http_handler *out, struct berth_api *api)
{
	*out = (struct berth_http_handler){
		.handle = berth_api_dispatch,
		.refuse = berth_api_refuse,
		.payload = api,
		.request_data = sizeof(struct berth_api_request),
		.route_names = route_names,
		.n_routes = BERTH_API_N_ROUTES,
	};
}

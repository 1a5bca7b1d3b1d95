/* Internals shared by the API handler files. */
#ifndef BERTH_API_INT_H
#define BERTH_API_INT_H

#include <stdint.h>

#include "core/err.h"
#include "http/request.h"
#include "api/api.h"
#include "http/server.h"
#include "registry/reference.h"
#include "registry/registry.h"

enum berth_api_route {
	BERTH_API_ROUTE_NONE = 0,
	BERTH_API_ROUTE_BASE,         /* /v2/ */
	BERTH_API_ROUTE_CATALOG,      /* /v2/_catalog */
	BERTH_API_ROUTE_TAGS,         /* /v2/<name>/tags/list */
	BERTH_API_ROUTE_MANIFEST,     /* /v2/<name>/manifests/<reference> */
	BERTH_API_ROUTE_BLOB,         /* /v2/<name>/blobs/<digest> */
	BERTH_API_ROUTE_UPLOADS,      /* /v2/<name>/blobs/uploads/ */
	BERTH_API_ROUTE_UPLOAD,       /* /v2/<name>/blobs/uploads/<uuid> */
	BERTH_API_ROUTE_REFERRERS,    /* /v2/<name>/referrers/<digest> */
	BERTH_API_ROUTE_REPOSITORY,   /* /v2/_berth/repositories/<name> (berth-specific) */
	BERTH_API_N_ROUTES
};

/* The API's part of a request (the request's data, http/request.h): its route's parameters,
 * the authorization's challenge, and the first failure met while the body arrived. */
struct berth_api_request {
	struct berth_registry *registry;
	struct berth_auth *auth; /* NULL: no authentication configured */
	struct berth_notify *notify; /* NULL: no notification endpoints */
	enum berth_api_route route;
	char name[BERTH_NAME_MAX + 1];
	char reference[BERTH_TAG_MAX + BERTH_DIGEST_STR_MAX]; /* tag, digest or upload id */
	char challenge[1024]; /* WWW-Authenticate value for a 401 */

	struct berth_proxy *proxy; /* the pull-through cache; NULL: a hosted registry */

	berth_complete_cb complete; /* the handler's, run when the body was taken whole */
	int failed;
	enum berth_api_condition fail_condition;
	struct berth_failure failure; /* its message, kept past the callback (core/err.h) */
};

static inline struct berth_api_request *berth_api_req(struct berth_request *req)
{
	return req->data;
}

/* Handlers, one per route and method family; each answers or installs body callbacks. */
void berth_api_root(struct berth_request *req);
void berth_api_base(struct berth_request *req);
void berth_api_catalog(struct berth_request *req);
void berth_api_tags(struct berth_request *req);
void berth_api_blob(struct berth_request *req);
void berth_api_uploads_post(struct berth_request *req);
void berth_api_upload(struct berth_request *req);
void berth_api_manifest(struct berth_request *req);
void berth_api_referrers(struct berth_request *req);
void berth_api_repository(struct berth_request *req); /* api/repositories.c */

/* The pull-through cache's side of the routes (api/proxied.c): answered once the upstream has
 * been asked on the proxy's threads; push and delete answer 405 UNSUPPORTED. */
void berth_api_proxied_manifest(struct berth_request *req);
void berth_api_proxied_tags(struct berth_request *req);
void berth_api_proxied_blob(struct berth_request *req); /* a blob not cached here */
/* Answers a manifest read (GET or HEAD) with mc's bytes, which it takes. */
void berth_api_send_manifest(struct berth_request *req, struct berth_manifest_content *mc);
/* The headers of a blob answer. */
void berth_api_blob_headers(struct MHD_Response *resp, const char *digest);

/* Routes and authorizes a request, then runs its handler (the server's handle callback). */
void berth_api_dispatch(struct berth_request *req, const char *url, void *payload);

/* The HTTP status and OCI error code of a condition (the table's row). */
unsigned berth_api_condition_status(enum berth_api_condition cond);
const char *berth_api_condition_code(enum berth_api_condition cond);
/* The same answer as a response the caller adds headers to and sends (berth_req_send) with
 * berth_api_condition_status(cond); *len: its body's length. */
struct MHD_Response *berth_api_error_response(size_t *len, struct berth_request *req,
					      enum berth_api_condition cond, const char *message,
					      const char *detail_json);
/* The condition for a BERTH_E* code from storage or the registry's internals: full, or
 * internal. */
enum berth_api_condition berth_api_storage_condition(int rc);
/* Records a failure while the body is still arriving (the first one counts); it is answered
 * once the body is in, instead of the handler's complete callback. */
void berth_api_fail(struct berth_request *req, enum berth_api_condition cond, const char *message);
/* Installs the body callbacks of a handler that reads a body; body_state is the callbacks' own
 * (req->body_state), released by cleanup. */
void berth_api_read_body(struct berth_request *req, void *body_state, berth_body_cb on_body,
			 berth_complete_cb complete, berth_cleanup_cb cleanup);
/* The server's refuse callback: the OCI error for a condition the server found itself. */
void berth_api_refuse(struct berth_request *req, enum berth_http_refusal why, unsigned status,
		      const char *message, void *payload);

/* 1 if the request's credentials grant pull on repo (always, without auth). Answers nothing. */
int berth_api_may_pull(struct berth_request *req, const char *repo);
/* Answers a storage or internal failure (5xx), logging its cause. */
void berth_api_storage_error(struct berth_request *req, int rc, const char *what);
/* Same, recorded while the body is arriving. */
void berth_api_storage_fail(struct berth_request *req, int rc, const char *what);
/* 405 UNSUPPORTED for a method the route does not have. */
void berth_api_method_not_allowed(struct berth_request *req);
/* Validates a digest from the URL or query; answers 400 DIGEST_INVALID and returns 0 if bad. */
int berth_api_check_digest(struct berth_request *req, const char *digest);
/* {"digest":"..."} detail text into out. */
void berth_api_digest_detail(char *out, size_t cap, const char *digest);
/* 1 if the If-None-Match header names this digest (quoted or not, or *). */
int berth_api_etag_matches(struct berth_request *req, const char *digest);
/* The client's address as Distribution's requestutil.RemoteAddr gives it (api/events.c):
 * X-Forwarded-For's first entry, X-Real-Ip, else the peer as host:port ([v6]:port); "" for a
 * Unix socket. */
void berth_api__remote_addr(struct berth_request *req, char *out, size_t cap);

/*
 * Answers a sorted list page as {"<key_name>": <key_value>, "<list_name>": [...]} honouring the
 * n and last query arguments, with a Link header to the next page when one remains.
 * default_n == 0 means "everything" when n is absent; an n above max_n (when not 0) is
 * lowered to it.
 */
void berth_api_send_page(struct berth_request *req, const char *const *items, size_t total,
			 const char *key_name, const char *key_value, const char *list_name,
			 const char *link_path, uint64_t default_n, uint64_t max_n);

#endif

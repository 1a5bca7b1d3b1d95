/*
 * One HTTP request as the API handlers see it: the route's parameters, accessors for headers
 * and query arguments, a body sink, and the ways to answer. Lives from the first byte of the
 * request until its response is sent (freed by the server).
 */
#ifndef BERTH_HTTP_REQUEST_H
#define BERTH_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "registry/reference.h"

struct berth_server;
struct berth_registry;
struct berth_auth;
struct berth_query;
struct berth_notify;

enum berth_route {
	BERTH_ROUTE_NONE = 0,
	BERTH_ROUTE_BASE,         /* /v2/ */
	BERTH_ROUTE_CATALOG,      /* /v2/_catalog */
	BERTH_ROUTE_TAGS,         /* /v2/<name>/tags/list */
	BERTH_ROUTE_MANIFEST,     /* /v2/<name>/manifests/<reference> */
	BERTH_ROUTE_BLOB,         /* /v2/<name>/blobs/<digest> */
	BERTH_ROUTE_UPLOADS,      /* /v2/<name>/blobs/uploads/ */
	BERTH_ROUTE_UPLOAD,       /* /v2/<name>/blobs/uploads/<uuid> */
	BERTH_ROUTE_REFERRERS,    /* /v2/<name>/referrers/<digest> */
	BERTH_ROUTE_REPOSITORY,   /* /v2/_berth/repositories/<name> (berth-specific) */
};

struct berth_request;

/*
 * Handlers outside api/ (the web interface, ui/ui.h), given to the server by main.c: the router
 * hands a URL (below http.prefix) that owns() claims to dispatch(), which answers as an api/
 * handler does, before any of the registry API's routing and authorization.
 */
struct berth_handler {
	int (*owns)(const char *url);
	void (*dispatch)(struct berth_request *req, const char *url);
};

/* Body sink: called for each piece of the request body. 0, or a BERTH_E* code after having
 * recorded the failure with berth_req_fail. */
typedef int (*berth_body_cb)(struct berth_request *req, const char *data, size_t n);
/* Called once the whole body is in (or at once when there is none); must answer. */
typedef void (*berth_complete_cb)(struct berth_request *req);
typedef void (*berth_cleanup_cb)(struct berth_request *req);

struct berth_request {
	struct berth_server *server;
	struct berth_registry *registry;
	struct berth_auth *auth; /* NULL: no authentication configured */
	const struct berth_handler *extra; /* URLs it claims are its, not api/'s; or NULL */
	struct berth_notify *notify; /* NULL: no notification endpoints */
	struct MHD_Connection *conn;
	const char *method;
	enum berth_route route;
	char name[BERTH_NAME_MAX + 1];
	char reference[BERTH_TAG_MAX + BERTH_DIGEST_STR_MAX]; /* tag, digest or upload id */

	/* Set by a handler that reads a body. */
	berth_body_cb on_body;
	berth_complete_cb on_complete;
	berth_cleanup_cb cleanup;
	void *state;
	berth_complete_cb on_resume; /* set while suspended (berth_req_suspend) */

	/* First failure recorded while reading the body; answered at the end. */
	int failed;
	unsigned fail_status;
	const char *fail_code;
	char fail_message[256];
	char *fail_detail; /* JSON, owned */

	int started;  /* the first access-handler call has happened */
	/* An answer MHD refused to queue in the call that produced it (it does, for example, in
	 * the call after a "100 Continue"): queued on the next call that allows it. */
	struct MHD_Response *pending;
	unsigned pending_status;
	uint64_t pending_len;
	int deferred; /* dispatch waits for the next callback (no body) */
	int bad_target; /* the request line's target holds a space: refused */

	/* Bookkeeping for the access log. */
	int responded;
	unsigned status;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t start_ns;
	const char *url_prefix; /* http.prefix without its trailing '/', "" when none: every URL
				 * berth hands out (Location, Link) starts with it */
	char id[32];
	char user[128]; /* authenticated user or token subject, for the access log */
	char challenge[1024]; /* WWW-Authenticate value for a 401 */
	char path[512];
	struct berth_query *query; /* the query's arguments, owned; NULL when there is no '?' */
};

/* Header or query value, NULL if absent. Borrowed for the request's lifetime. */
const char *berth_req_header(struct berth_request *req, const char *name);
const char *berth_req_query(struct berth_request *req, const char *name);
int berth_req_is_head(const struct berth_request *req);

/*
 * Sends resp with status, adding the headers every answer carries. Takes ownership of resp.
 * body_len is for the access log.
 */
void berth_req_send(struct berth_request *req, unsigned status, struct MHD_Response *resp,
		    uint64_t body_len);
/* An empty-bodied answer; headers added by the caller via the returned response before sending
 * are not possible, so use berth_resp_empty + MHD_add_response_header + berth_req_send. */
struct MHD_Response *berth_resp_empty(void);
/* A response over a copy of buf. */
struct MHD_Response *berth_resp_copy(const void *buf, size_t len);
/* A response that takes ownership of a heap buffer (freed with free()). */
struct MHD_Response *berth_resp_take(void *buf, size_t len);

/*
 * Sends the OCI error JSON {"errors":[{"code","message","detail"}]}. detail_json is a JSON text
 * (object or string) or NULL for null.
 */
void berth_req_error(struct berth_request *req, unsigned status, const char *code,
		     const char *message, const char *detail_json);
/*
 * Slow work off the polling threads: parks the request (its connection is not polled) so that
 * another thread can do the work, then call berth_req_resume. on_resume then runs on a polling
 * thread and must answer. Call from a handler, for a request whose body is all in (a GET).
 * Whoever suspends must resume within a bounded time: the server's shutdown waits for it.
 */
void berth_req_suspend(struct berth_request *req, berth_complete_cb on_resume);
/* From any thread, once per suspend. The request must not be touched after this call. */
void berth_req_resume(struct berth_request *req);

/* Records a failure while the body is still arriving; the server answers it at the end. */
void berth_req_fail(struct berth_request *req, unsigned status, const char *code,
		    const char *message, const char *detail_json);

#endif

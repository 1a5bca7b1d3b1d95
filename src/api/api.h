/*
 * The OCI distribution API: the HTTP handler main.c registers with the server. One file per
 * resource (base.c, catalog.c, blobs.c, uploads.c, manifests.c, tags.c, referrers.c, and berth's
 * repositories.c); router.c routes and authorizes; errors.c holds the translation from conditions
 * to HTTP status and OCI error codes; events.c raises the notification events.
 */
#ifndef BERTH_API_API_H
#define BERTH_API_API_H

#include "http/server.h"

struct berth_auth;
struct berth_notify;
struct berth_proxy;
struct berth_registry;

/*
 * A handler beside the API's (the web interface, ui/ui.h), consulted first: a path (below
 * http.prefix) that owns() claims goes to dispatch(), which answers as an API handler does
 * (berth_api_answer, berth_api_authorize), with the API's part of the request filled in.
 */
struct berth_api_extra {
	int (*owns)(const char *url);
	void (*dispatch)(struct berth_request *req, const char *url);
};

/* What the API serves; borrowed by the handler, must outlive the server. */
struct berth_api {
	struct berth_registry *registry;
	struct berth_auth *auth;     /* NULL: no authentication configured */
	struct berth_notify *notify; /* NULL: no notification endpoints */
	const struct berth_api_extra *extra; /* NULL: none */
	struct berth_proxy *proxy;   /* NULL: not a pull-through cache (proxy/proxy.h) */
};

/* Fills out with the API's handler serving api (its payload). */
void berth_api_handler(struct berth_http_handler *out, struct berth_api *api);

/*
 * The conditions the API answers with an OCI error: each has one HTTP status and one OCI code,
 * in one table (api/errors.c), as Distribution answers them.
 */
enum berth_api_condition {
	BERTH_API_BLOB_UNKNOWN,          /* 404 BLOB_UNKNOWN */
	BERTH_API_UPLOAD_UNKNOWN,        /* 404 BLOB_UPLOAD_UNKNOWN */
	BERTH_API_UPLOAD_BUSY,           /* 409 BLOB_UPLOAD_INVALID: another request holds it */
	BERTH_API_RANGE_INVALID,         /* 416 RANGE_INVALID */
	BERTH_API_DIGEST_INVALID,        /* 400 DIGEST_INVALID */
	BERTH_API_MANIFEST_UNKNOWN,      /* 404 MANIFEST_UNKNOWN */
	BERTH_API_MANIFEST_INVALID,      /* 400 MANIFEST_INVALID */
	BERTH_API_MANIFEST_TOO_LARGE,    /* 413 MANIFEST_INVALID */
	BERTH_API_MANIFEST_BLOB_UNKNOWN, /* 400 MANIFEST_BLOB_UNKNOWN */
	BERTH_API_NAME_INVALID,          /* 400 NAME_INVALID */
	BERTH_API_NAME_UNKNOWN,          /* 404 NAME_UNKNOWN */
	BERTH_API_TAG_INVALID,           /* 400 TAG_INVALID */
	BERTH_API_PAGINATION_INVALID,    /* 400 PAGINATION_NUMBER_INVALID */
	BERTH_API_UNAUTHORIZED,          /* 401 UNAUTHORIZED (with the challenge) */
	BERTH_API_UNSUPPORTED,           /* 405 UNSUPPORTED: method, deletes off, read-only */
	BERTH_API_NO_ENDPOINT,           /* 404 UNSUPPORTED: no such route */
	BERTH_API_UNAVAILABLE,           /* 503 UNAVAILABLE */
	BERTH_API_DENIED,                /* 403 DENIED: a policy forbids it (an immutable tag) */
	BERTH_API_TOO_MANY_REQUESTS,     /* 429 TOOMANYREQUESTS */
	BERTH_API_ARGUMENT_INVALID,      /* 400 UNSUPPORTED: a query argument berth cannot use */
	BERTH_API_STORAGE_FULL,          /* 507 UNKNOWN */
	BERTH_API_INTERNAL,              /* 500 UNKNOWN */
	BERTH_API_N_CONDITIONS
};

/*
 * Answers cond with the OCI error JSON {"errors":[{"code","message","detail"}]} and its status.
 * message NULL: the condition's usual one. detail_json is a JSON text (object or string) or
 * NULL for null.
 */
void berth_api_answer(struct berth_request *req, enum berth_api_condition cond, const char *message,
		      const char *detail_json);

/* The registry and the authentication (NULL: none) a request is served with. */
struct berth_registry *berth_api_registry(struct berth_request *req);
struct berth_auth *berth_api_auth(struct berth_request *req);

struct berth_access;
/* 1 if the request's credentials grant every access listed (n may be 0: authenticated at all;
 * always 1 without auth); otherwise answers 401 UNAUTHORIZED with the challenge, or 500, and
 * returns 0. For handlers outside api/ (the web interface's own endpoints). */
int berth_api_authorize(struct berth_request *req, const struct berth_access *access, size_t n);

#endif

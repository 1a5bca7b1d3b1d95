/* The API's error answers: one table from condition to HTTP status and OCI error code, and
 * the translation of BERTH_E* codes from storage into conditions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api_int.h"
#include "core/err.h"
#include "core/log.h"
#include "registry/reference.h"

static char *error_body(const char *code, const char *message, const char *detail_json, size_t *len)
{
	json_t *detail = detail_json ? json_loads(detail_json, JSON_DECODE_ANY, NULL) : NULL;
	json_t *err = json_pack("{s:s, s:s, s:o}", "code", code, "message", message,
				"detail", detail ? detail : json_null());
	json_t *root = json_pack("{s:[o]}", "errors", err);
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	*len = strlen(s);
	return s;
}

static const struct {
	unsigned status;
	const char *code;
	const char *message;
} conditions[BERTH_API_N_CONDITIONS] = {
	[BERTH_API_BLOB_UNKNOWN] = { MHD_HTTP_NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry" },
	[BERTH_API_UPLOAD_UNKNOWN] = { MHD_HTTP_NOT_FOUND, "BLOB_UPLOAD_UNKNOWN",
				       "blob upload unknown to registry" },
	[BERTH_API_UPLOAD_BUSY] = { MHD_HTTP_CONFLICT, "BLOB_UPLOAD_INVALID",
				    "upload is in use by another request" },
	[BERTH_API_RANGE_INVALID] = { MHD_HTTP_RANGE_NOT_SATISFIABLE, "RANGE_INVALID",
				      "invalid content range" },
	[BERTH_API_DIGEST_INVALID] = { MHD_HTTP_BAD_REQUEST, "DIGEST_INVALID",
				       "provided digest did not match uploaded content" },
	[BERTH_API_MANIFEST_UNKNOWN] = { MHD_HTTP_NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown" },
	[BERTH_API_MANIFEST_INVALID] = { MHD_HTTP_BAD_REQUEST, "MANIFEST_INVALID", "manifest invalid" },
	[BERTH_API_MANIFEST_TOO_LARGE] = { MHD_HTTP_CONTENT_TOO_LARGE, "MANIFEST_INVALID",
					   "manifest too large" },
	[BERTH_API_MANIFEST_BLOB_UNKNOWN] = { MHD_HTTP_BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN",
					      "blob unknown to registry" },
	[BERTH_API_NAME_INVALID] = { MHD_HTTP_BAD_REQUEST, "NAME_INVALID", "invalid repository name" },
	[BERTH_API_NAME_UNKNOWN] = { MHD_HTTP_NOT_FOUND, "NAME_UNKNOWN",
				     "repository name not known to registry" },
	[BERTH_API_TAG_INVALID] = { MHD_HTTP_BAD_REQUEST, "TAG_INVALID", "manifest tag did not match URI" },
	[BERTH_API_PAGINATION_INVALID] = { MHD_HTTP_BAD_REQUEST, "PAGINATION_NUMBER_INVALID",
					   "invalid number of results requested" },
	[BERTH_API_UNAUTHORIZED] = { MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED", "authentication required" },
	[BERTH_API_UNSUPPORTED] = { MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
				    "the operation is unsupported" },
	[BERTH_API_NO_ENDPOINT] = { MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "no such endpoint" },
	[BERTH_API_UNAVAILABLE] = { MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE", "service unavailable" },
	[BERTH_API_DENIED] = { MHD_HTTP_FORBIDDEN, "DENIED", "requested access to the resource is denied" },
	[BERTH_API_TOO_MANY_REQUESTS] = { MHD_HTTP_TOO_MANY_REQUESTS, "TOOMANYREQUESTS", "too many requests" },
	[BERTH_API_ARGUMENT_INVALID] = { MHD_HTTP_BAD_REQUEST, "UNSUPPORTED", "invalid argument" },
	[BERTH_API_STORAGE_FULL] = { MHD_HTTP_INSUFFICIENT_STORAGE, "UNKNOWN", "storage is full" },
	[BERTH_API_INTERNAL] = { MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "storage error" },
};

/* The OCI error JSON with code, the one writer of it: the response, and its length. */
static struct MHD_Response *error_response(size_t *len, struct berth_request *req, const char *code,
					   const char *message, const char *detail_json)
{
	char *body = error_body(code, message, detail_json, len);
	struct MHD_Response *resp = berth_resp_take(body, *len);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
	const char *challenge = req->data ? berth_api_req(req)->challenge : "";
	if (challenge[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
	return resp;
}

static void send_error(struct berth_request *req, unsigned status, const char *code,
		       const char *message, const char *detail_json)
{
	size_t len;
	struct MHD_Response *resp = error_response(&len, req, code, message, detail_json);
	berth_req_send(req, status, resp, len);
}

/* An out-of-range condition is answered as internal. */
static enum berth_api_condition known(enum berth_api_condition cond)
{
	return (size_t)cond < BERTH_API_N_CONDITIONS ? cond : BERTH_API_INTERNAL;
}

unsigned berth_api_condition_status(enum berth_api_condition cond)
{
	return conditions[known(cond)].status;
}

const char *berth_api_condition_code(enum berth_api_condition cond)
{
	return conditions[known(cond)].code;
}

struct MHD_Response *berth_api_error_response(size_t *len, struct berth_request *req,
					      enum berth_api_condition cond, const char *message,
					      const char *detail_json)
{
	cond = known(cond);
	return error_response(len, req, conditions[cond].code,
			      message ? message : conditions[cond].message, detail_json);
}

void berth_api_answer(struct berth_request *req, enum berth_api_condition cond, const char *message,
		      const char *detail_json)
{
	cond = known(cond);
	send_error(req, conditions[cond].status, conditions[cond].code,
		   message ? message : conditions[cond].message, detail_json);
}

void berth_api_fail(struct berth_request *req, enum berth_api_condition cond, const char *message)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (ar->failed)
		return;
	ar->failed = 1;
	ar->fail_condition = known(cond);
	/* answered by a later callback, when this thread may have served other requests */
	berth_err_set(BERTH_ERROR, "%s", message ? message : conditions[ar->fail_condition].message);
	berth_err_save(&ar->failure);
}

/* The complete callback the server runs: the recorded failure, or the handler's own. */
static void complete_or_answer_failure(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (ar->failed)
		berth_api_answer(req, ar->fail_condition, ar->failure.message, NULL);
	else
		ar->complete(req);
}

void berth_api_read_body(struct berth_request *req, void *body_state, berth_body_cb on_body,
			 berth_complete_cb complete, berth_cleanup_cb cleanup)
{
	berth_api_req(req)->complete = complete;
	req->body_state = body_state;
	req->on_body = on_body;
	req->on_complete = complete_or_answer_failure;
	req->cleanup = cleanup;
}

/* The condition answering each refusal of the server's (http/server.h); the status and
 * message are the server's (a framing error is 400 or 501). */
static const struct {
	enum berth_api_condition cond;
	const char *detail_json;
} refusals[] = {
	[BERTH_HTTP_REFUSE_CERTIFICATE] = { BERTH_API_UNAUTHORIZED, NULL },
	[BERTH_HTTP_REFUSE_FRAMING] = { BERTH_API_UNSUPPORTED, NULL },
	[BERTH_HTTP_REFUSE_NO_ROUTE] = { BERTH_API_NO_ENDPOINT, NULL },
	[BERTH_HTTP_REFUSE_UNHEALTHY] = { BERTH_API_UNAVAILABLE,
					  "\"health check failed: please see /debug/health\"" },
	[BERTH_HTTP_REFUSE_NO_ANSWER] = { BERTH_API_INTERNAL, NULL },
};

void berth_api_refuse(struct berth_request *req, enum berth_http_refusal why, unsigned status,
		      const char *message, void *payload)
{
	(void)payload;
	size_t i = (size_t)why < sizeof(refusals) / sizeof(refusals[0]) ? (size_t)why
									: BERTH_HTTP_REFUSE_NO_ANSWER;
	send_error(req, status, conditions[refusals[i].cond].code, message, refusals[i].detail_json);
}

enum berth_api_condition berth_api_storage_condition(int rc)
{
	if (rc == BERTH_EUNAVAILABLE)
		return BERTH_API_UNAVAILABLE;
	return rc == BERTH_ENOSPC ? BERTH_API_STORAGE_FULL : BERTH_API_INTERNAL;
}

void berth_api_storage_error(struct berth_request *req, int rc, const char *what)
{
	berth_error("%s %s: %s: %s", req->method, req->path, what, berth_err_reason(rc));
	berth_api_answer(req, berth_api_storage_condition(rc), NULL, NULL);
}

void berth_api_storage_fail(struct berth_request *req, int rc, const char *what)
{
	berth_error("%s %s: %s: %s", req->method, req->path, what, berth_err_reason(rc));
	berth_api_fail(req, berth_api_storage_condition(rc), NULL);
}

void berth_api_method_not_allowed(struct berth_request *req)
{
	berth_api_answer(req, BERTH_API_UNSUPPORTED, NULL, NULL);
}

void berth_api_digest_detail(char *out, size_t cap, const char *digest)
{
	/* Digests that reach here are validated, so they need no JSON escaping. */
	snprintf(out, cap, "{\"digest\":\"%s\"}", digest);
}

int berth_api_check_digest(struct berth_request *req, const char *digest)
{
	if (digest && berth_digest_valid(digest))
		return 1;
	berth_api_answer(req, BERTH_API_DIGEST_INVALID, NULL, NULL);
	return 0;
}

int berth_api_etag_matches(struct berth_request *req, const char *digest)
{
	const char *inm = berth_req_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (!inm)
		return 0;
	if (strcmp(inm, "*") == 0)
		return 1;
	const char *p = strstr(inm, digest);
	return p != NULL;
}

/* Translation of BERTH_E* codes and common conditions into HTTP answers. */
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

void berth_api_error(struct berth_request *req, unsigned status, const char *code,
		     const char *message, const char *detail_json)
{
	size_t len;
	char *body = error_body(code, message, detail_json, &len);
	struct MHD_Response *resp = berth_resp_take(body, len);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
	const char *challenge = req->data ? berth_api_req(req)->challenge : "";
	if (challenge[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
	berth_req_send(req, status, resp, len);
}

void berth_api_fail(struct berth_request *req, unsigned status, const char *code,
		    const char *message)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (ar->failed)
		return;
	ar->failed = 1;
	ar->fail_status = status;
	ar->fail_code = code;
	snprintf(ar->fail_message, sizeof(ar->fail_message), "%s", message);
}

/* The complete callback the server runs: the recorded failure, or the handler's own. */
static void complete_or_answer_failure(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (ar->failed)
		berth_api_error(req, ar->fail_status, ar->fail_code, ar->fail_message, NULL);
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

/* The OCI answer to each refusal of the server's (http/server.h); the status and message are
 * the server's. */
static const struct {
	const char *code;
	const char *detail_json;
} refusals[] = {
	[BERTH_HTTP_REFUSE_CERTIFICATE] = { "UNAUTHORIZED", NULL },
	[BERTH_HTTP_REFUSE_FRAMING] = { "UNSUPPORTED", NULL },
	[BERTH_HTTP_REFUSE_NO_ROUTE] = { "UNSUPPORTED", NULL },
	[BERTH_HTTP_REFUSE_UNHEALTHY] = { "UNAVAILABLE",
					  "\"health check failed: please see /debug/health\"" },
	[BERTH_HTTP_REFUSE_NO_ANSWER] = { "UNKNOWN", NULL },
};

void berth_api_refuse(struct berth_request *req, enum berth_http_refusal why, unsigned status,
		      const char *message, void *payload)
{
	(void)payload;
	size_t i = (size_t)why < sizeof(refusals) / sizeof(refusals[0]) ? (size_t)why
									: BERTH_HTTP_REFUSE_NO_ANSWER;
	berth_api_error(req, status, refusals[i].code, message, refusals[i].detail_json);
}

static void storage_status(int rc, unsigned *status, const char **message)
{
	if (rc == BERTH_ENOSPC) {
		*status = MHD_HTTP_INSUFFICIENT_STORAGE;
		*message = "storage is full";
	} else {
		*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		*message = "storage error";
	}
}

void berth_api_storage_error(struct berth_request *req, int rc, const char *what)
{
	unsigned status;
	const char *message;
	storage_status(rc, &status, &message);
	berth_error("%s %s: %s: %s", req->method, req->path, what, berth_err_reason(rc));
	berth_api_error(req, status, "UNKNOWN", message, NULL);
}

void berth_api_storage_fail(struct berth_request *req, int rc, const char *what)
{
	unsigned status;
	const char *message;
	storage_status(rc, &status, &message);
	berth_error("%s %s: %s: %s", req->method, req->path, what, berth_err_reason(rc));
	berth_api_fail(req, status, "UNKNOWN", message);
}

void berth_api_method_not_allowed(struct berth_request *req)
{
	berth_api_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
			"the operation is unsupported", NULL);
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
	berth_api_error(req, MHD_HTTP_BAD_REQUEST, "DIGEST_INVALID",
			"provided digest did not match uploaded content", NULL);
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

/* Translation of BERTH_E* codes and common conditions into HTTP answers. */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "core/err.h"
#include "core/log.h"
#include "registry/reference.h"

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
	berth_req_error(req, status, "UNKNOWN", message, NULL);
}

void berth_api_storage_fail(struct berth_request *req, int rc, const char *what)
{
	unsigned status;
	const char *message;
	storage_status(rc, &status, &message);
	berth_error("%s %s: %s: %s", req->method, req->path, what, berth_err_reason(rc));
	berth_req_fail(req, status, "UNKNOWN", message, NULL);
}

void berth_api_method_not_allowed(struct berth_request *req)
{
	berth_req_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
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
	berth_req_error(req, MHD_HTTP_BAD_REQUEST, "DIGEST_INVALID",
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

/* GET / (liveness) and GET /v2/ (API version check). */
#include <string.h>

#include "api/api_int.h"

static int is_read(struct berth_request *req)
{
	return strcmp(req->method, MHD_HTTP_METHOD_GET) == 0 || berth_req_is_head(req);
}

/* Load balancers probe "/": Distribution answers 200, no body, "Cache-Control: no-cache", to any
 * method and without authentication, even below http.prefix. */
void berth_api_root(struct berth_request *req)
{
	struct MHD_Response *resp = berth_resp_empty();
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	berth_req_send(req, MHD_HTTP_OK, resp, 0);
}

void berth_api_base(struct berth_request *req)
{
	if (!is_read(req)) {
		berth_api_method_not_allowed(req);
		return;
	}
	struct MHD_Response *resp = berth_resp_copy("{}", 2);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	berth_req_send(req, MHD_HTTP_OK, resp, 2);
}

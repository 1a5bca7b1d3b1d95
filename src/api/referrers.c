/* GET /v2/<name>/referrers/<digest>[?artifactType=] (OCI distribution-spec v1.1). */
#include <string.h>

#include "api/api_int.h"
#include "core/err.h"
#include "registry/manifest.h"

void berth_api_referrers(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	const char *artifact_type = berth_req_query(req, "artifactType");
	char *json = NULL;
	size_t len = 0;

	if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0 && !berth_req_is_head(req)) {
		berth_api_method_not_allowed(req);
		return;
	}
	if (!berth_api_check_digest(req, ar->reference))
		return;
	if (artifact_type && !*artifact_type)
		artifact_type = NULL;
	int rc = berth_referrers(&json, &len, ar->registry, ar->name, ar->reference, artifact_type);
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot list referrers");
		return;
	}
	struct MHD_Response *resp = berth_resp_take(json, len);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, BERTH_MT_OCI_INDEX);
	if (artifact_type)
		MHD_add_response_header(resp, "OCI-Filters-Applied", "artifactType");
	berth_req_send(req, MHD_HTTP_OK, resp, len);
}

/* GET /v2/_catalog: the repositories, paginated (catalog.maxentries). */
#include <string.h>

#include "api/api_int.h"
#include "core/vec.h"

void berth_api_catalog(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct berth_strvec repos = { 0 };
	int rc;

	if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0 && !berth_req_is_head(req)) {
		berth_api_method_not_allowed(req);
		return;
	}
	rc = berth_catalog(&repos, ar->registry);
	if (rc < 0)
		berth_api_storage_error(req, rc, "cannot list repositories");
	else
		berth_api_send_page(req, (const char *const *)repos.items, repos.n, NULL, NULL, "repositories", "/v2/_catalog",
				    berth_registry_catalog_max(ar->registry),
				    berth_registry_catalog_max(ar->registry)); /* catalog.maxentries */
	berth_strvec_release(&repos);
}

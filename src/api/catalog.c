/* GET /v2/_catalog: the repositories, paginated (catalog.maxentries). */
#include <string.h>

#include "api/api_int.h"

void berth_api_catalog(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	const struct berth_catalog_list *repos = NULL;
	int rc;

	if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0 && !berth_req_is_head(req)) {
		berth_api_method_not_allowed(req);
		return;
	}
	/* The shared snapshot, not a copy: a page of 1,000 out of 10,000 copies none. */
	rc = berth_catalog_get(&repos, ar->registry);
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot list repositories");
		return;
	}
	berth_api_send_page(req, repos->names, repos->n, NULL, NULL, "repositories", "/v2/_catalog",
			    berth_registry_catalog_max(ar->registry),
			    berth_registry_catalog_max(ar->registry)); /* catalog.maxentries */
	berth_catalog_list_release(repos);
}

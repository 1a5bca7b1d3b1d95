/*
 * DELETE /v2/_berth/repositories/<name>: deletes a repository (berth-specific; the OCI API has
 * no such operation). Answers 202 like a manifest DELETE; with token auth it needs the `delete`
 * action on that repository (api/router.c), and storage.delete.enabled.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "core/err.h"
#include "registry/reference.h"

static void delete_repository(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	int rc = berth_repo_delete(ar->registry, ar->name);
	switch (rc) {
	case 0:
		berth_req_send(req, MHD_HTTP_ACCEPTED, berth_resp_empty(), 0);
		break;
	case BERTH_EUNSUPPORTED:
		berth_api_method_not_allowed(req);
		break;
	case BERTH_ENOTFOUND: {
		/* as the tag list answers it; a routed name matches the grammar, so needs no escaping */
		char detail[BERTH_NAME_MAX + 16];
		snprintf(detail, sizeof(detail), "{\"name\":\"%s\"}", ar->name);
		berth_api_answer(req, BERTH_API_NAME_UNKNOWN, NULL, detail);
		break;
	}
	case BERTH_EDENIED:
		berth_api_answer(req, BERTH_API_DENIED, "the repository has an immutable tag", NULL);
		break;
	default:
		berth_api_storage_error(req, rc, "cannot delete repository");
		break;
	}
}

void berth_api_repository(struct berth_request *req)
{
	if (strcmp(req->method, MHD_HTTP_METHOD_DELETE) == 0)
		delete_repository(req);
	else
		berth_api_method_not_allowed(req);
}

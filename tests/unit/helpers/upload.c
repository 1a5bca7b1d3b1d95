#include "helpers/upload.h"

#include "registry/registry.h"

int berth_test_upload(char digest[BERTH_DIGEST_STR_MAX], struct berth_registry *r, const char *repo,
		      const void *content, size_t n)
{
	char uuid[37];
	struct berth_upload *u = NULL;
	berth_digest_bytes(BERTH_ALG_SHA256, content, n, digest);
	int rc = berth_upload_create(r, repo, uuid);
	if (rc == 0)
		rc = berth_upload_open(&u, r, repo, uuid);
	if (rc == 0)
		rc = berth_upload_write(u, content, n);
	if (rc == 0)
		rc = berth_upload_commit(u, digest);
	berth_upload_close(u);
	return rc;
}

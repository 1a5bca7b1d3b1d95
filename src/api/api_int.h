/* Internals shared by the API handler files. */
#ifndef BERTH_API_INT_H
#define BERTH_API_INT_H

#include <stdint.h>

#include "http/request.h"
#include "registry/registry.h"

/* Handlers, one per route and method family; each answers or installs body callbacks. */
void berth_api_root(struct berth_request *req);
void berth_api_base(struct berth_request *req);
void berth_api_catalog(struct berth_request *req);
void berth_api_tags(struct berth_request *req);
void berth_api_blob(struct berth_request *req);
void berth_api_uploads_post(struct berth_request *req);
void berth_api_upload(struct berth_request *req);
void berth_api_manifest(struct berth_request *req);
void berth_api_referrers(struct berth_request *req);
void berth_api_repository(struct berth_request *req); /* api/repositories.c */

/* 1 if the request's credentials grant pull on repo (always, without auth). Answers nothing. */
int berth_api_may_pull(struct berth_request *req, const char *repo);
/* Answers a storage or internal failure (5xx), logging its cause. */
void berth_api_storage_error(struct berth_request *req, int rc, const char *what);
/* Same, recorded while the body is arriving. */
void berth_api_storage_fail(struct berth_request *req, int rc, const char *what);
/* 405 UNSUPPORTED for a method the route does not have. */
void berth_api_method_not_allowed(struct berth_request *req);
/* Validates a digest from the URL or query; answers 400 DIGEST_INVALID and returns 0 if bad. */
int berth_api_check_digest(struct berth_request *req, const char *digest);
/* {"digest":"..."} detail text into out. */
void berth_api_digest_detail(char *out, size_t cap, const char *digest);
/* 1 if the If-None-Match header names this digest (quoted or not, or *). */
int berth_api_etag_matches(struct berth_request *req, const char *digest);

/*
 * Answers a sorted list page as {"<key_name>": <key_value>, "<list_name>": [...]} honouring the
 * n and last query arguments, with a Link header to the next page when one remains.
 * default_n == 0 means "everything" when n is absent; an n above max_n (when not 0) is
 * lowered to it.
 */
void berth_api_send_page(struct berth_request *req, const char *const *items, size_t total,
			 const char *key_name, const char *key_value, const char *list_name,
			 const char *link_path, uint64_t default_n, uint64_t max_n);

#endif

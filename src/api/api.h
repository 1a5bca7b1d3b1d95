/*
 * The OCI distribution API: the HTTP handler main.c registers with the server. One file per
 * resource (base.c, catalog.c, blobs.c, uploads.c, manifests.c, tags.c, referrers.c); router.c routes and
 * authorizes; errors.c holds the translation from conditions to HTTP status and OCI error codes.
 */
#ifndef BERTH_API_API_H
#define BERTH_API_API_H

#include "http/server.h"

struct berth_auth;
struct berth_registry;

/* What the API serves; borrowed by the handler, must outlive the server. */
struct berth_api {
	struct berth_registry *registry;
	struct berth_auth *auth; /* NULL: no authentication configured */
};

/* Fills out with the API's handler serving api (its payload). */
void berth_api_handler(struct berth_http_handler *out, struct berth_api *api);

#endif

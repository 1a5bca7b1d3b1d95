/*
 * The OCI distribution API: routes a request to its handler. One file per resource
 * (base.c, blobs.c, uploads.c, manifests.c, tags.c, referrers.c); errors.c holds the
 * translation from BERTH_E* codes to HTTP status and OCI error codes.
 */
#ifndef BERTH_API_API_H
#define BERTH_API_API_H

#include "http/request.h"

/* Parses the (decoded) URL path, fills the request's route parameters and starts the handler:
 * it either answers at once or installs body callbacks. */
void berth_api_dispatch(struct berth_request *req, const char *url);

struct berth_access;
/* 1 if the request's credentials grant every access listed (n may be 0: authenticated at all;
 * always 1 without auth); otherwise answers 401 UNAUTHORIZED with the challenge, or 500, and
 * returns 0. For handlers outside api/ (the web interface's own endpoints). */
int berth_api_authorize(struct berth_request *req, const struct berth_access *access, size_t n);

#endif

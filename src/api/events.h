/*
 * Notification events raised by the API handlers, one call where Distribution's listener raises
 * one (after the registry operation succeeded, before the answer is sent: with
 * notifications.queuedir the event is durable once the client has its answer). Each is a no-op
 * without notification endpoints (the API's notify NULL). They block on the queue's fsync only.
 */
#ifndef BERTH_API_EVENTS_H
#define BERTH_API_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

/* A blob push (upload committed), pull (GET/HEAD served) or mount (from is the source). */
void berth_api_event_blob(struct berth_request *req, const char *action, const char *digest,
			  uint64_t size, const char *from);
/* A manifest push or pull: body is the manifest as stored; media_type may be NULL (then its
 * mediaType field). The tag is the request's reference when that is not the digest. */
void berth_api_event_manifest(struct berth_request *req, const char *action, const char *digest,
			      const char *media_type, const char *body, size_t len);
/* A delete: of a manifest or blob (digest) or of a tag (tag; digest NULL). */
void berth_api_event_delete(struct berth_request *req, const char *digest, const char *tag);

#endif

/*
 * Notifications: Distribution's webhook events (notifications.endpoints). An event is filtered
 * by each endpoint's ignore rules, then appended to that endpoint's queue (notify/queue.h: on
 * disk and fsynced with notifications.queuedir, else in memory) by the request's thread; one
 * delivery thread per endpoint POSTs the events in order, one envelope per event, with libcurl
 * (timeout, retries; after `threshold` failures in a row it waits `backoff` between tries, as
 * Distribution's breaker). A client request never waits for an endpoint.
 */
#ifndef BERTH_NOTIFY_NOTIFY_H
#define BERTH_NOTIFY_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

struct berth_config;
struct berth_notify;

/* The envelope's Content-Type (Distribution 2.8, Debian's docker-registry). */
#define BERTH_NOTIFY_MEDIA_TYPE "application/vnd.docker.distribution.events.v1+json"

/* One event, as Distribution's notifications.Event; NULL or "" strings are left out where
 * Distribution leaves them out. */
struct berth_notify_event {
	const char *action;          /* push, pull, mount, delete */
	const char *media_type;      /* target.mediaType */
	const char *digest;          /* target.digest */
	int64_t size;                /* target.size and target.length */
	const char *repository;      /* target.repository */
	const char *from_repository; /* target.fromRepository (mount) */
	const char *url;             /* target.url */
	const char *tag;             /* target.tag */
	const char *references_json; /* target.references: a JSON array text, or NULL */
	const char *request_id, *request_addr, *request_host, *request_method, *request_useragent;
	const char *actor;           /* actor.name: the authenticated user */
};

/*
 * Opens every enabled endpoint's queue and starts its delivery thread. *out is NULL when no
 * endpoint is enabled. 0, or BERTH_ERROR with its message (core/err.h: unusable queuedir, bad
 * endpoint). source_addr is source.addr (host:port of this registry).
 */
int berth_notify_start(struct berth_notify **out, const struct berth_config *cfg,
		       const char *source_addr);
/* Stops the delivery threads (an attempt under way finishes or times out) and frees. NULL ok. */
void berth_notify_stop(struct berth_notify *n);

/* Whether manifest events carry target.references. */
int berth_notify_include_references(const struct berth_notify *n);

/*
 * Queues ev for every endpoint that does not ignore it. Durable on return with a queuedir.
 * Blocks on the queue's fsync, never on an endpoint. Failures are logged and counted, not
 * returned: the request that caused the event has succeeded. n may be NULL (no-op).
 */
void berth_notify_emit(struct berth_notify *n, const struct berth_notify_event *ev);

/* The JSON text of ev with a new id and the current time (heap, caller frees). */
char *berth_notify_event_json(const struct berth_notify *n, const struct berth_notify_event *ev);

#endif

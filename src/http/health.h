/*
 * Distribution's health checks, feeding /debug/health and the 503 answers:
 *
 * - a check given as a callback: storagedriver (health.storagedriver), a stat of the storage
 *   root (cli/serve_setup.c: http knows no storage).
 * - file (health.file): fails while the file exists ("file exists"), to take a node out of a
 *   load balancer's rotation by creating a file.
 * - http (health.http): a HEAD of the URI with the configured headers must answer statuscode.
 * - tcp (health.tcp): a TCP connection to the address must open.
 *
 * Each check runs on a thread of its own every `interval` (the first run at once), with
 * `timeout` bounding its network call (the interval when unset, so that a check never outlives
 * its period). A check fails after `threshold` failures in a row (any failure when 0; file
 * checks have no threshold) and passes again at the first success. While any check fails,
 * /debug/health answers 503 with {"<check>": "<error>", ...} and every API request is answered
 * 503 UNAVAILABLE, as Distribution does. Checks are named as in Distribution:
 * storagedriver_<driver>, the file path, the URI, the address.
 */
#ifndef BERTH_HTTP_HEALTH_H
#define BERTH_HTTP_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct berth_health;

/* A check of the caller's: 0, or a BERTH_E* code with a one-line reason as its message
 * (core/err.h). Runs on the check's thread. */
typedef int (*berth_health_check_fn)(void *payload);

/* An empty set of checks; add them, then berth_health_start. */
struct berth_health *berth_health_new(void);
/* name: the report's key (copied); payload is borrowed. */
void berth_health_add_check(struct berth_health *h, const char *name, berth_health_check_fn fn,
			    void *payload, int64_t interval_ms, int64_t threshold);
void berth_health_add_file(struct berth_health *h, const char *path, int64_t interval_ms);
/* headers: n "Name: value" lines, copied. statuscode 0 = 200. */
void berth_health_add_http(struct berth_health *h, const char *uri, const char *const *headers, size_t n,
			   long statuscode, int64_t timeout_ms, int64_t interval_ms, int64_t threshold);
void berth_health_add_tcp(struct berth_health *h, const char *addr, int64_t timeout_ms, int64_t interval_ms,
			  int64_t threshold);
/* Starts every check's thread. 0 or BERTH_ERROR (then stop it, which frees it). */
int berth_health_start(struct berth_health *h);
/* Stops the checks and frees. Accepts NULL. */
void berth_health_stop(struct berth_health *h);
/* 1 while every check passes (always, for NULL). Cheap: one atomic load per check. */
int berth_health_ok(const struct berth_health *h);
/* Distribution's /debug/health body: "{}" when passing, else {"<check>":"<error>",...} with the
 * failing checks. A new string the caller frees (free()). */
char *berth_health_report(struct berth_health *h);

#endif

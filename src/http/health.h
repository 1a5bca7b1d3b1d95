/*
 * Distribution's storage driver health check (health.storagedriver): every interval a stat of
 * the storage root; the check fails after `threshold` failures in a row (any failure when 0),
 * and passes again at the first success. While it fails, /debug/health answers 503 with the
 * error and every API request is answered 503 UNAVAILABLE, as Distribution does.
 */
#ifndef BERTH_HTTP_HEALTH_H
#define BERTH_HTTP_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct berth_storage_driver;
struct berth_health;

/* Starts the checker (the first check runs at once). driver is borrowed. 0 or BERTH_ERROR. */
int berth_health_start(struct berth_health **out, struct berth_storage_driver *driver,
		       int64_t interval_ms, int64_t threshold);
/* Stops and frees. Accepts NULL. */
void berth_health_stop(struct berth_health *h);
/* 1 while the check passes (always, for NULL). Cheap: one atomic load. */
int berth_health_ok(const struct berth_health *h);
/* Distribution's /debug/health body: "{}" when passing, else {"storagedriver_<name>":"<error>"}.
 * A new string the caller frees. */
char *berth_health_report(struct berth_health *h);

#endif

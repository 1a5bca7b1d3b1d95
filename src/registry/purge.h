/*
 * Upload purging (storage.maintenance.uploadpurging): upload sessions whose startedat is older
 * than `age` are removed, every `interval`, after a random start-up jitter, by a background
 * thread; with dryrun they are only logged. Same rule as Distribution's purgeuploads.go.
 */
#ifndef BERTH_REGISTRY_PURGE_H
#define BERTH_REGISTRY_PURGE_H

#include <stddef.h>
#include <stdint.h>

struct berth_registry;
struct berth_purger;

/* One pass: removes (or with dry_run, lists) uploads that started before `before` (Unix seconds).
 * *purged counts them. */
int berth_purge_uploads(struct berth_registry *r, int64_t before, int dry_run, size_t *purged);

int berth_purger_start(struct berth_purger **out, struct berth_registry *r, int64_t age_ms,
		       int64_t interval_ms, int dry_run);
/* Stops the thread (waits for a pass in progress). Accepts NULL. */
void berth_purger_stop(struct berth_purger *p);

#endif

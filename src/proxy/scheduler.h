/*
 * The pull-through cache's TTL expiry, as Distribution's proxy scheduler: every blob and
 * manifest fetched from the upstream gets an entry "<repository>@<digest>" that expires after
 * the TTL; an expired entry's content is removed (proxy.c's callback). The entries are kept in
 * Distribution's scheduler-state.json at the storage root (a JSON object keyed by entry key:
 * {"Key", "ExpiryData" (RFC 3339), "EntryType" 0 blob / 1 manifest}), read at start, and every
 * 5 seconds and at stop merged with what is stored (other instances on the same storage write it
 * too: their entries are taken in, a later expiry wins, entries expired here stay out) and
 * written back when that differs: either server can take over the store, and several instances
 * share it.
 */
#ifndef BERTH_PROXY_SCHEDULER_H
#define BERTH_PROXY_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

struct berth_storage_driver;
struct berth_scheduler;

#define BERTH_SCHEDULER_STATE_PATH "/scheduler-state.json"

enum berth_sched_type { BERTH_SCHED_BLOB = 0, BERTH_SCHED_MANIFEST = 1 };

/* Removes what an entry names; runs on the scheduler's thread. Its result is only logged. */
typedef int (*berth_expire_cb)(enum berth_sched_type type, const char *name, const char *digest,
			       void *payload);

/*
 * Reads the state (a missing file: no entries) and starts the thread. The driver is borrowed.
 * 0, or BERTH_EINVALID (a state file that does not parse) or a storage error, with its reason
 * (berth_err_set).
 */
int berth_scheduler_start(struct berth_scheduler **out, struct berth_storage_driver *driver,
			  berth_expire_cb on_expire, void *payload);
/* Adds or renews the entry of name@digest, expiring ttl_ms from now. Thread-safe. */
void berth_scheduler_add(struct berth_scheduler *s, enum berth_sched_type type, const char *name,
			 const char *digest, int64_t ttl_ms);
/* Entries pending now. */
size_t berth_scheduler_count(struct berth_scheduler *s);
/* Writes the state, stops the thread, frees. Accepts NULL. */
void berth_scheduler_stop(struct berth_scheduler *s);

/* RFC 3339 time (as Go's time.Time marshals it) <-> milliseconds since the epoch; exposed for
 * the tests. Parse: 0 or BERTH_EINVALID. Format: out holds at least 40 bytes. */
int berth_scheduler_parse_time(int64_t *ms_out, const char *s);
void berth_scheduler_format_time(char *out, size_t cap, int64_t ms);

#endif

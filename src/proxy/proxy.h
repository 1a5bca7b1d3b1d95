/*
 * The pull-through cache (proxy.remoteurl), as Distribution's proxy serves: manifests by tag
 * ask the upstream for the tag's current digest (HEAD) and serve and store that manifest, or
 * the cached one when the upstream cannot answer; by digest, local first, else fetched,
 * verified and stored; blobs local first, else streamed from the upstream to the client while
 * being stored, the digest verified before anything is linked; tag lists from the upstream.
 * What is fetched expires after the TTL (proxy/scheduler.h).
 *
 * Every function that talks to the upstream blocks: the API runs them on the proxy's job
 * threads (berth_proxy_submit) with the request parked, never on an HTTP polling thread.
 */
#ifndef BERTH_PROXY_PROXY_H
#define BERTH_PROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/vec.h"
#include "proxy/jobs.h"
#include "registry/registry.h"

struct berth_proxy;

/* One upstream: proxy.remoteurl and its keys (prefix ""), or an entry of proxy.upstreams. */
struct berth_proxy_upstream {
	const char *prefix;    /* "": every repository; else the repositories <prefix>/... */
	const char *remoteurl;
	const char *username;  /* NULL or "" for anonymous */
	const char *password;
	int64_t ttl_ms;        /* 0: what is fetched never expires */
	const char *exec_command;  /* a credential helper (proxy/credhelper.h), or NULL / "" */
	int64_t exec_lifetime_ms;  /* -1 unset, 0 every call, else how long its answer is kept */
	int prefetch;              /* a manifest fetched for a GET starts its blobs' fetches */
};

struct berth_proxy_config {
	const struct berth_proxy_upstream *upstreams; /* prefixes that do not overlap (config.c) */
	size_t n_upstreams;
};

/*
 * Starts the cache over reg (borrowed: it must outlive the proxy) and its storage driver (the
 * TTL state lives at its root). 0, or BERTH_EINVALID / a storage error with its reason
 * (berth_err_set).
 */
int berth_proxy_new(struct berth_proxy **out, const struct berth_proxy_config *cfg, struct berth_registry *reg);
/* Lets the fetches in flight end, saves the TTL state, frees. Accepts NULL. */
void berth_proxy_free(struct berth_proxy *p);
/* The proxy's metrics: hits, misses, stale tags served, and each upstream's counters. */
void berth_proxy_metrics_register(void);

/* 1 when an upstream serves the repository name (pulls go through the cache; pushes and deletes
 * are refused), 0 for a hosted repository. */
int berth_proxy_serves(const struct berth_proxy *p, const char *name);
/* containerd's ?ns=HOST beside a repository name: when an upstream's prefix is HOST (or HOST is
 * docker.io and the upstream is Docker Hub), writes "<prefix>/<name>" to out and returns 1;
 * otherwise 0 (also when it would not fit size or is not a valid name). */
int berth_proxy_ns_name(const struct berth_proxy *p, const char *ns, const char *name, char *out, size_t size);

/* Counts a pull served from the cache without asking the upstream (blob 1, manifest 0). */
void berth_proxy_note_hit(struct berth_proxy *p, int blob);

/* Runs fn(arg) on one of the proxy's job threads. 0, or BERTH_EBUSY (too many waiting). */
int berth_proxy_submit(struct berth_proxy *p, berth_job_fn fn, void *arg);

/* A manifest fetched from the upstream and verified, not stored yet. */
struct berth_proxy_pending;

/*
 * A manifest by tag or digest (see above). BERTH_ENOTFOUND: unknown here and upstream;
 * BERTH_ERROR: the upstream could not be asked and nothing is cached (the reason logged).
 * With pending NULL, a manifest fetched is stored before this returns. Else *pending (NULL
 * when there is nothing to store) takes that work, for berth_proxy_manifest_store once the
 * client has its answer: the answer then waits for none of the store's writes and syncs.
 * Blocks.
 */
int berth_proxy_manifest_get(struct berth_manifest_content *out, struct berth_proxy *p, const char *name,
			     const char *reference, struct berth_proxy_pending **pending);
/* Stores what berth_proxy_manifest_get left pending (failures are logged) and frees it.
 * Accepts NULL. Blocks. */
void berth_proxy_manifest_store(struct berth_proxy *p, struct berth_proxy_pending *pending);
/*
 * Starts fetching the blobs of the manifest pending holds (its config and layers; image
 * manifests only, not indexes) that its repository does not have and that no fetch is fetching,
 * with no client reading yet: one asking for such a blob moments later joins the fetch under way
 * (berth_proxy_fetch_start) instead of waiting for its own upstream round trip. Only when the
 * upstream's prefetch is on; at most a few at once across the proxy, the rest left to the
 * clients' own GETs. Call it before the client has its answer (its blob GETs then find the fetches
 * under way) and before berth_proxy_manifest_store.
 * Never fails (failures are logged and counted). Accepts NULL. Blocks (a storage stat per blob).
 */
void berth_proxy_prefetch(struct berth_proxy *p, const struct berth_proxy_pending *pending);
/*
 * For a HEAD by tag (containerd's and Docker's resolve, which GET the manifest by digest next):
 * when pending is an image manifest fetched by tag and its upstream's prefetch is on, remembers
 * it for 60 s (BERTH_PROXY_MARK_MS; a bounded list, the oldest dropped) instead of prefetching: a HEAD
 * alone (an update checker's) fetches no blob. Call it before the client has its answer (its
 * GET by digest may follow at once) and before berth_proxy_manifest_store.
 * Accepts NULL. Does not block.
 */
void berth_proxy_mark_prefetch(struct berth_proxy *p, const struct berth_proxy_pending *pending);
/*
 * For a GET by digest of name's manifest mc, cached or being stored: when a HEAD by tag marked it
 * (berth_proxy_mark_prefetch) and the mark has not expired, takes the mark and does what
 * berth_proxy_prefetch does for mc's blobs. Call it before the client has its answer: the
 * fetches are then under way when it asks for a blob. Never fails. Blocks (a storage stat per
 * blob) only when marked; unmarked, a lock and a short scan, or nothing when no mark is held.
 */
void berth_proxy_prefetch_marked(struct berth_proxy *p, const char *name, const char *digest,
				 const struct berth_manifest_content *mc);
/* The upstream's tags of name, sorted; BERTH_ENOTFOUND when it has none, BERTH_ERROR when it
 * cannot be asked (the caller then serves the local list, as Distribution). Blocks. */
int berth_proxy_tags(struct berth_strvec *out, struct berth_proxy *p, const char *name);
/* The size of a blob not cached here, from the upstream (HEAD). BERTH_ENOTFOUND or
 * BERTH_ERROR. Blocks. */
int berth_proxy_blob_stat(uint64_t *size, struct berth_proxy *p, const char *name, const char *digest);

/* ---- streaming a blob from the upstream ---- */

struct berth_proxy_fetch;
/* Called from a fetch thread when the reader has news: first when berth_proxy_fetch_status knows
 * its answer and, for a blob coming, its first bytes are there to send (a blob of 1 MiB or less:
 * all of it, verified), then each time a read that answered BERTH_EBUSY can go on.
 * Never called after berth_proxy_fetch_release. Must not call back into the fetch. */
typedef void (*berth_fetch_notify)(void *payload);

/*
 * Starts fetching name's blob digest from the upstream, stored as it arrives, or joins the fetch
 * of it already under way (one upstream GET for concurrent pulls). Returns at once; notify
 * tells when berth_proxy_fetch_status knows. *out is the caller's until
 * berth_proxy_fetch_release. 0, BERTH_EBUSY (too many fetches) or BERTH_ENOTFOUND (no upstream
 * serves name).
 */
int berth_proxy_fetch_start(struct berth_proxy_fetch **out, struct berth_proxy *p, const char *name,
			    const char *digest, berth_fetch_notify notify, void *payload);
/* 0 and the blob's size once the upstream is sending it: read along; BERTH_EEXISTS: the
 * fetch joined too late to read along has stored the blob: serve it from storage; BERTH_EBUSY
 * while it is not known yet; BERTH_ENOTFOUND (the upstream does not have it) or BERTH_ERROR
 * (it could not be asked, or the transfer failed). */
int berth_proxy_fetch_status(struct berth_proxy_fetch *f, uint64_t *size);
/*
 * Copies the next bytes: their count; 0 at the end, once the whole blob arrived and its digest
 * was verified (the last byte is held back until then); BERTH_EBUSY when none are there yet:
 * then on_wait(payload) runs first, under the fetch's lock, so that the reader parks itself
 * before notify can say there is more; BERTH_ERROR when the transfer broke or the digest did
 * not match.
 */
ssize_t berth_proxy_fetch_read(struct berth_proxy_fetch *f, char *buf, size_t max, berth_fetch_notify on_wait,
			       void *payload);
/* The reader is done (or gone): the fetch goes on storing the blob without it. */
void berth_proxy_fetch_release(struct berth_proxy_fetch *f);

#endif

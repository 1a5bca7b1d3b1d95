/* Internals shared by the proxy's .c files. */
#ifndef BERTH_PROXY_INT_H
#define BERTH_PROXY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/map.h"
#include "proxy/jobs.h"
#include "proxy/proxy.h"
#include "proxy/scheduler.h"
#include "proxy/upstream.h"
#include "registry/reference.h"

/* The manifest types asked of the upstream, as Distribution's client asks. */
#define BERTH_PROXY_ACCEPT                                                                   \
	"application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " \
	"application/vnd.docker.distribution.manifest.v2+json, "                               \
	"application/vnd.docker.distribution.manifest.list.v2+json"

/* One upstream and the repositories it serves. */
struct berth_proxy_route {
	char *prefix;      /* "" (proxy.remoteurl: every repository) or "docker.io" for docker.io/... */
	struct berth_upstream *upstream;
	int64_t ttl_ms;    /* 0: what is fetched from it never expires */
	int docker_hub;    /* single-name repositories are library/<name> upstream */
	int prefetch;      /* a manifest fetched for a GET starts its blobs' fetches (berth_proxy_prefetch) */
};

/* Where a repository's pulls go: its route and its name upstream. */
struct berth_proxy_target {
	const struct berth_proxy_route *route;
	char remote[BERTH_NAME_MAX + 16];
};

/* How many manifests a HEAD by tag fetched are remembered for their GET by digest to prefetch
 * (the oldest dropped), and for how long. */
#define BERTH_PROXY_MARKS_MAX 64
#define BERTH_PROXY_MARK_MS 60000

/* "<name>@<digest>" of an image manifest a HEAD by tag fetched from the upstream; key[0] == 0:
 * a free slot. */
struct berth_proxy_mark {
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	uint64_t until_ns; /* berth_now_ns() past which it is forgotten */
};

struct berth_proxy {
	struct berth_registry *reg;
	struct berth_proxy_route *routes;
	size_t n_routes;
	struct berth_scheduler *scheduler; /* NULL when no route's TTL is set (shared: one state file) */
	struct berth_jobs *jobs;    /* short calls: manifests, tags, HEADs */
	struct berth_jobs *fetches; /* blob transfers, which may take minutes */
	struct berth_jobs *stores;  /* blobs fetched, stored once their clients have them: nicer threads */
	pthread_mutex_t inflight_lock;
	struct berth_map inflight;  /* "<name>@<digest>" -> the fetch storing it now (fetch.c) */
	pthread_mutex_t pending_lock;
	struct berth_map pending;   /* "<name>@<digest>" -> a manifest answered, being stored */
	_Atomic int prefetches;     /* prefetches running (at most BERTH_PROXY_PREFETCH_MAX) */
	pthread_mutex_t marks_lock;
	atomic_int marks_held;      /* slots with a key (expired or not): 0, no GET looks */
	struct berth_proxy_mark marks[BERTH_PROXY_MARKS_MAX]; /* image manifests a HEAD by tag fetched:
							       * their GET by digest prefetches (proxy.c) */
	atomic_int stopping;        /* set by berth_proxy_free: a start-up ping ends, a prefetch holding
				     * for a reader gives up */
};

/* Prefetches running at once across the proxy: the fetch threads (32) stay free for the
 * clients' own fetches. */
#define BERTH_PROXY_PREFETCH_MAX 8

/* The proxy's counters (proxy/proxy.c). */
struct berth_proxy_stats {
	_Atomic uint64_t blob_hits, blob_misses, blob_shared, manifest_hits, manifest_misses, stale_tags;
	_Atomic uint64_t prefetch_started, prefetch_joined, prefetch_failed;
};
extern struct berth_proxy_stats berth_proxy_stats;

/* The target of the local repository name: 0, or BERTH_ENOTFOUND when no upstream serves it
 * (a hosted repository) or its name upstream would be too long. */
int berth_proxy__target(struct berth_proxy_target *out, const struct berth_proxy *p, const char *name);

/* Starts fetching name's blob digest from target (name's, berth_proxy__target) with no reader
 * (fetch.c): a client asking for it moments later joins the fetch (berth_proxy_fetch_start) and
 * reads along. 0; BERTH_EEXISTS when a fetch of it is under way already; BERTH_EBUSY at
 * BERTH_PROXY_PREFETCH_MAX or when the fetch queue is full or stopping. Does not block. */
int berth_proxy__prefetch(struct berth_proxy *p, const struct berth_proxy_target *target, const char *name,
			  const char *digest);
/* Wakes the prefetches holding for a reader once p->stopping is set: they give up (fetch.c). */
void berth_proxy__wake_prefetches(struct berth_proxy *p);

/* The size of the entries of berth_proxy.inflight (fetch.c). */
extern const size_t berth_proxy__inflight_entry_size;

#endif

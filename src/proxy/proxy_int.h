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

/* The manifest types asked of the upstream, as Distribution's client asks. */
#define BERTH_PROXY_ACCEPT                                                                   \
	"application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " \
	"application/vnd.docker.distribution.manifest.v2+json, "                               \
	"application/vnd.docker.distribution.manifest.list.v2+json"

struct berth_proxy {
	struct berth_registry *reg;
	struct berth_upstream *upstream;
	struct berth_scheduler *scheduler; /* NULL when the TTL is 0 */
	int64_t ttl_ms;
	struct berth_jobs *jobs;    /* short calls: manifests, tags, HEADs */
	struct berth_jobs *fetches; /* blob transfers, which may take minutes */
	pthread_mutex_t inflight_lock;
	struct berth_map inflight;  /* "<name>@<digest>" -> the fetch storing it now (fetch.c) */
};

/* The proxy's counters (proxy/proxy.c). */
struct berth_proxy_stats {
	_Atomic uint64_t blob_hits, blob_misses, blob_shared, manifest_hits, manifest_misses, stale_tags;
};
extern struct berth_proxy_stats berth_proxy_stats;

/* The size of the entries of berth_proxy.inflight (fetch.c). */
extern const size_t berth_proxy__inflight_entry_size;

#endif

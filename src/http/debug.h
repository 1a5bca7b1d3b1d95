/*
 * The debug server on http.debug.addr: GET /debug/health (storage driver check, Distribution's
 * answer shape) and Prometheus metrics at http.debug.prometheus.path. One polling thread.
 */
#ifndef BERTH_HTTP_DEBUG_H
#define BERTH_HTTP_DEBUG_H

struct berth_health;
struct berth_debug_server;

struct berth_debug_options {
	const char *addr;            /* "HOST:PORT" */
	struct berth_health *health; /* health.storagedriver checker (borrowed), or NULL */
	const char *metrics_path;    /* NULL: metrics disabled */
};

int berth_debug_start(struct berth_debug_server **out, const struct berth_debug_options *opts);
void berth_debug_stop(struct berth_debug_server *d);

#endif

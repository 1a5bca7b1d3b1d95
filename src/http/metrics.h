/* HTTP metrics: requests by route, method and status; duration by route; bytes in and out. */
#ifndef BERTH_HTTP_METRICS_H
#define BERTH_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The routes' labels, index 0 for requests no route took (at most 16 are counted); names are
 * borrowed for the process's life. Called before serving. */
void berth_http_metrics_routes(const char *const *names, size_t n);
void berth_http_observe(unsigned route, const char *method, unsigned status,
			uint64_t duration_ns, uint64_t bytes_in, uint64_t bytes_out);
void berth_http_metrics_register(void);

#endif

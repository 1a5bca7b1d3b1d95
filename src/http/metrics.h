/* HTTP metrics: requests by route, method and status; duration by route; bytes in and out. */
#ifndef BERTH_HTTP_METRICS_H
#define BERTH_HTTP_METRICS_H

#include <stdint.h>

#include "http/request.h"

void berth_http_observe(enum berth_route route, const char *method, unsigned status,
			uint64_t duration_ns, uint64_t bytes_in, uint64_t bytes_out);
void berth_http_metrics_register(void);

#endif

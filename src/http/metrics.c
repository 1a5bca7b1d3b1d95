#include "http/metrics.h"

#include <stdio.h>
#include <string.h>

#include "core/metrics.h"

/* Routes are the handler's (berth_http_metrics_routes); the counters have room for N_ROUTES. */
#define N_ROUTES 16

static const char *const no_routes[] = { "none" };
static const char *const *route_names = no_routes;
static size_t n_routes = 1;
static const char *const method_names[] = { "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OTHER" };
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))
static const unsigned statuses[] = { 200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 405,
				     409, 413, 416, 429, 500, 503, 507, 0 /* other */ };
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

static _Atomic uint64_t requests[N_ROUTES][N_METHODS][N_STATUSES];
static struct berth_histogram durations[N_ROUTES];
static _Atomic uint64_t bytes_in_total[N_ROUTES];
static _Atomic uint64_t bytes_out_total[N_ROUTES];

static size_t method_index(const char *m)
{
	for (size_t i = 0; i + 1 < N_METHODS; i++) {
		if (strcmp(m, method_names[i]) == 0)
			return i;
	}
	return N_METHODS - 1;
}

static size_t status_index(unsigned status)
{
	for (size_t i = 0; i + 1 < N_STATUSES; i++) {
		if (statuses[i] == status)
			return i;
	}
	return N_STATUSES - 1;
}

void berth_http_metrics_routes(const char *const *names, size_t n)
{
	if (!names || n == 0)
		return;
	route_names = names;
	n_routes = n < N_ROUTES ? n : N_ROUTES;
}

void berth_http_observe(unsigned route, const char *method, unsigned status,
			uint64_t duration_ns, uint64_t bytes_in, uint64_t bytes_out)
{
	size_t r = (size_t)route < n_routes ? (size_t)route : 0;
	atomic_fetch_add_explicit(&requests[r][method_index(method)][status_index(status)], 1,
				  memory_order_relaxed);
	berth_histogram_observe(&durations[r], duration_ns);
	atomic_fetch_add_explicit(&bytes_in_total[r], bytes_in, memory_order_relaxed);
	atomic_fetch_add_explicit(&bytes_out_total[r], bytes_out, memory_order_relaxed);
}

static void render(struct berth_buf *out)
{
	char labels[96];
	berth_buf_printf(out, "# HELP berth_http_requests_total HTTP requests by route, method and status.\n"
			      "# TYPE berth_http_requests_total counter\n");
	for (size_t r = 0; r < n_routes; r++)
		for (size_t m = 0; m < N_METHODS; m++)
			for (size_t s = 0; s < N_STATUSES; s++) {
				uint64_t v = atomic_load_explicit(&requests[r][m][s], memory_order_relaxed);
				if (!v)
					continue;
				char status[16];
				if (statuses[s])
					snprintf(status, sizeof(status), "%u", statuses[s]);
				else
					snprintf(status, sizeof(status), "other");
				berth_buf_printf(out,
						 "berth_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
						 route_names[r], method_names[m], status, (unsigned long long)v);
			}
	berth_buf_printf(out, "# HELP berth_http_request_duration_seconds Time to answer a request.\n"
			      "# TYPE berth_http_request_duration_seconds histogram\n");
	for (size_t r = 1; r < n_routes; r++) {
		snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
		berth_metrics_render_histogram(out, "berth_http_request_duration_seconds", labels, &durations[r]);
	}
	berth_buf_printf(out, "# HELP berth_http_request_bytes_total Request body bytes received.\n"
			      "# TYPE berth_http_request_bytes_total counter\n");
	for (size_t r = 1; r < n_routes; r++)
		berth_buf_printf(out, "berth_http_request_bytes_total{route=\"%s\"} %llu\n", route_names[r],
				 (unsigned long long)atomic_load(&bytes_in_total[r]));
	berth_buf_printf(out, "# HELP berth_http_response_bytes_total Response body bytes sent.\n"
			      "# TYPE berth_http_response_bytes_total counter\n");
	for (size_t r = 1; r < n_routes; r++)
		berth_buf_printf(out, "berth_http_response_bytes_total{route=\"%s\"} %llu\n", route_names[r],
				 (unsigned long long)atomic_load(&bytes_out_total[r]));
}

void berth_http_metrics_register(void)
{
	berth_metrics_register(render);
}

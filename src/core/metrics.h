/*
 * Prometheus metrics: lock-free counters and latency histograms that any thread may update,
 * rendered in the text exposition format. Each layer keeps its own metric families in static
 * storage and registers one render callback at start-up (berth_metrics_register); GET /metrics
 * on the debug server calls them all.
 */
#ifndef BERTH_CORE_METRICS_H
#define BERTH_CORE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* Latency buckets in seconds (upper bounds), shared by every histogram. */
#define BERTH_HIST_BUCKETS 14

struct berth_histogram {
	_Atomic uint64_t buckets[BERTH_HIST_BUCKETS + 1]; /* last is +Inf; their total is the count */
	_Atomic uint64_t sum_ns;
};

void berth_histogram_observe(struct berth_histogram *h, uint64_t ns);

/* Appends the series of one histogram; labels is a pre-rendered label list like
 * `route="blob",method="GET"` (may be ""). */
void berth_metrics_render_histogram(struct berth_buf *out, const char *name, const char *labels,
				    const struct berth_histogram *h);

typedef void (*berth_metrics_render_cb)(struct berth_buf *out);
/* Registers a render callback (at start-up, before serving; idempotent per callback). */
void berth_metrics_register(berth_metrics_render_cb cb);
/* Renders every registered family. */
void berth_metrics_render(struct berth_buf *out);

#endif

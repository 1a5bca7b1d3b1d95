#include "core/metrics.h"

#include <pthread.h>

static const double bucket_bounds[BERTH_HIST_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

#define MAX_CALLBACKS 16
static pthread_mutex_t callbacks_lock = PTHREAD_MUTEX_INITIALIZER;
static berth_metrics_render_cb callbacks[MAX_CALLBACKS];
static size_t n_callbacks;

void berth_histogram_observe(struct berth_histogram *h, uint64_t ns)
{
	double s = (double)ns / 1e9;
	size_t i = 0;
	while (i < BERTH_HIST_BUCKETS && s > bucket_bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void berth_metrics_render_histogram(struct berth_buf *out, const char *name, const char *labels,
				    const struct berth_histogram *h)
{
	uint64_t cumulative = 0;
	const char *sep = *labels ? "," : "";
	for (size_t i = 0; i <= BERTH_HIST_BUCKETS; i++) {
		cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		if (i < BERTH_HIST_BUCKETS)
			berth_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
					 bucket_bounds[i], (unsigned long long)cumulative);
		else
			berth_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
					 (unsigned long long)cumulative);
	}
	berth_buf_printf(out, "%s_sum{%s} %.9f\n", name, labels,
			 (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
	/* The count is the buckets' total as read above, not a counter of its own: a request observed
	 * while the series are written would otherwise make _count differ from the +Inf bucket. */
	berth_buf_printf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cumulative);
}

void berth_metrics_register(berth_metrics_render_cb cb)
{
	pthread_mutex_lock(&callbacks_lock);
	for (size_t i = 0; i < n_callbacks; i++) {
		if (callbacks[i] == cb)
			goto out;
	}
	if (n_callbacks < MAX_CALLBACKS)
		callbacks[n_callbacks++] = cb;
out:
	pthread_mutex_unlock(&callbacks_lock);
}

void berth_metrics_render(struct berth_buf *out)
{
	pthread_mutex_lock(&callbacks_lock);
	size_t n = n_callbacks;
	berth_metrics_render_cb cbs[MAX_CALLBACKS];
	for (size_t i = 0; i < n; i++)
		cbs[i] = callbacks[i];
	pthread_mutex_unlock(&callbacks_lock);
	for (size_t i = 0; i < n; i++)
		cbs[i](out);
}

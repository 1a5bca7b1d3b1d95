/* storage_operation_duration_seconds{op=...}: latency of every driver call;
 * berth_storage_coalesced_total: stats answered by a request another caller sent. */
#include <stdatomic.h>
#include <stdio.h>

#include "core/metrics.h"
#include "storage/storage.h"

static const char *const op_names[BERTH_SOP_COUNT] = {
	"get_content", "put_content", "reader", "writer", "stat", "list", "move", "remove", "walk",
};

static struct berth_histogram op_latency[BERTH_SOP_COUNT];
static _Atomic uint64_t coalesced;

void berth_storage_observe(enum berth_storage_op op, uint64_t ns)
{
	berth_histogram_observe(&op_latency[op], ns);
}

void berth_storage_count_coalesced(void)
{
	atomic_fetch_add_explicit(&coalesced, 1, memory_order_relaxed);
}

static void render(struct berth_buf *out)
{
	char labels[64];
	berth_buf_printf(out, "# HELP berth_storage_operation_duration_seconds Latency of storage driver operations.\n"
			      "# TYPE berth_storage_operation_duration_seconds histogram\n");
	for (int i = 0; i < BERTH_SOP_COUNT; i++) {
		snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[i]);
		berth_metrics_render_histogram(out, "berth_storage_operation_duration_seconds", labels,
					       &op_latency[i]);
	}
	berth_buf_printf(out, "# HELP berth_storage_coalesced_total Storage stats answered by a request "
			      "another concurrent stat of the same path sent (S3).\n"
			      "# TYPE berth_storage_coalesced_total counter\n"
			      "berth_storage_coalesced_total %llu\n",
			 (unsigned long long)atomic_load(&coalesced));
}

void berth_storage_metrics_register(void)
{
	berth_metrics_register(render);
}

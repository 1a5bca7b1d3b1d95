/* storage_operation_duration_seconds{op=...}: latency of every driver call. */
#include <stdio.h>

#include "core/metrics.h"
#include "storage/storage.h"

static const char *const op_names[BERTH_SOP_COUNT] = {
	"get_content", "put_content", "reader", "writer", "stat", "list", "move", "remove", "walk",
};

static struct berth_histogram op_latency[BERTH_SOP_COUNT];

void berth_storage_observe(enum berth_storage_op op, uint64_t ns)
{
	berth_histogram_observe(&op_latency[op], ns);
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
}

void berth_storage_metrics_register(void)
{
	berth_metrics_register(render);
}

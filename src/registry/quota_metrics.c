/*
 * Quota usage in the Prometheus metrics (registry/quota.h): a background thread counts every
 * policies.quotas rule's usage from the store every QUOTA_METRICS_INTERVAL_MS and keeps the
 * last counts for the metrics page, so a scrape does no storage I/O.
 *   berth_quota_tags{repository="<pattern>"}, berth_quota_tags_limit, berth_quota_repositories,
 *   berth_quota_repositories_limit, berth_quota_bytes, berth_quota_bytes_limit (limits: 0 = none;
 *   bytes from the in-memory accounting, registry/quota_bytes.c).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/periodic.h"
#include "core/util.h"
#include "registry/quota.h"
#include "registry/registry.h"

#define QUOTA_METRICS_INTERVAL_MS 30000

struct quota_snapshot_row {
	char *repository; /* the rule's pattern, owned */
	int64_t tags, tags_limit, repositories, repositories_limit, bytes, bytes_limit;
};

/* The last counts, for the one registry berth serves. */
static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct quota_snapshot_row *snapshot;
static size_t snapshot_n;

static void snapshot_replace(struct quota_snapshot_row *rows, size_t n)
{
	pthread_mutex_lock(&snapshot_lock);
	struct quota_snapshot_row *old = snapshot;
	size_t old_n = snapshot_n;
	snapshot = rows;
	snapshot_n = n;
	pthread_mutex_unlock(&snapshot_lock);
	for (size_t i = 0; i < old_n; i++)
		free(old[i].repository);
	free(old);
}

/* Counts every rule; keeps the previous counts when one cannot be counted. */
static void refresh(void *arg)
{
	struct berth_registry *r = arg;
	size_t n = berth_quotas_count(r);
	struct quota_snapshot_row *rows = berth_calloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		struct berth_quota_usage u;
		int rc = berth_quota_usage(&u, r, i);
		if (rc < 0) {
			berth_warn("quota usage: cannot count: %s", berth_err_reason(rc));
			for (size_t j = 0; j < i; j++)
				free(rows[j].repository);
			free(rows);
			return;
		}
		rows[i] = (struct quota_snapshot_row){ berth_strdup(u.repository), u.tags, u.tags_limit,
						       u.repositories, u.repositories_limit, u.bytes,
						       u.bytes_limit };
	}
	snapshot_replace(rows, n);
}

/* A label value in the exposition format: backslash, quote and newline escaped. */
static void print_label(struct berth_buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			berth_buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			berth_buf_printf(out, "\\n");
		else
			berth_buf_printf(out, "%c", *s);
	}
}

static void render_gauge(struct berth_buf *out, const char *name, const char *help, size_t field)
{
	berth_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (size_t i = 0; i < snapshot_n; i++) {
		berth_buf_printf(out, "%s{repository=\"", name);
		print_label(out, snapshot[i].repository);
		berth_buf_printf(out, "\"} %lld\n", (long long)*(const int64_t *)((const char *)&snapshot[i] + field));
	}
}

static void render(struct berth_buf *out)
{
	pthread_mutex_lock(&snapshot_lock);
	if (snapshot_n) {
		render_gauge(out, "berth_quota_tags", "Tags counted against a policies.quotas rule.",
			     offsetof(struct quota_snapshot_row, tags));
		render_gauge(out, "berth_quota_tags_limit", "The rule's tag limit (0: none).",
			     offsetof(struct quota_snapshot_row, tags_limit));
		render_gauge(out, "berth_quota_repositories",
			     "Repositories holding a manifest counted against a policies.quotas rule.",
			     offsetof(struct quota_snapshot_row, repositories));
		render_gauge(out, "berth_quota_repositories_limit", "The rule's repository limit (0: none).",
			     offsetof(struct quota_snapshot_row, repositories_limit));
		render_gauge(out, "berth_quota_bytes",
			     "Bytes of distinct blobs linked into the repositories of a policies.quotas rule "
			     "with a bytes limit (0 without).",
			     offsetof(struct quota_snapshot_row, bytes));
		render_gauge(out, "berth_quota_bytes_limit", "The rule's bytes limit (0: none).",
			     offsetof(struct quota_snapshot_row, bytes_limit));
	}
	pthread_mutex_unlock(&snapshot_lock);
}

void berth_quota_metrics_register(void)
{
	berth_metrics_register(render);
}

int berth_quota_metrics_start(struct berth_periodic **out, struct berth_registry *r)
{
	*out = NULL;
	if (berth_quotas_count(r) == 0)
		return 0;
	return berth_periodic_start(out, 0, QUOTA_METRICS_INTERVAL_MS, refresh, r);
}

void berth_quota_metrics_stop(struct berth_periodic *p)
{
	berth_periodic_stop(p);
	snapshot_replace(NULL, 0);
}

#include "http/health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/periodic.h"
#include "core/util.h"
#include "storage/storage.h"

struct berth_health {
	struct berth_storage_driver *driver;
	int64_t threshold;
	_Atomic int ok;
	pthread_mutex_t lock; /* guards error and failures */
	char error[128];      /* the last failure's message */
	int64_t failures;     /* in a row */
	struct berth_periodic *task;
};

/* Distribution's check: a missing root is fine (an empty store), any other error is not. */
static void check_once(void *arg)
{
	struct berth_health *h = arg;
	struct berth_stat st;
	int rc = berth_storage_stat(h->driver, "/", &st);
	pthread_mutex_lock(&h->lock);
	if (rc < 0 && rc != BERTH_ENOTFOUND) {
		h->failures++;
		snprintf(h->error, sizeof(h->error), "%s", berth_err_reason(rc));
		if (h->failures >= (h->threshold > 0 ? h->threshold : 1))
			atomic_store(&h->ok, 0);
	} else {
		h->failures = 0;
		atomic_store(&h->ok, 1);
	}
	pthread_mutex_unlock(&h->lock);
}

int berth_health_start(struct berth_health **out, struct berth_storage_driver *driver,
		       int64_t interval_ms, int64_t threshold)
{
	struct berth_health *h = berth_calloc(1, sizeof(*h));
	h->driver = driver;
	h->threshold = threshold;
	atomic_init(&h->ok, 1);
	pthread_mutex_init(&h->lock, NULL);
	if (berth_periodic_start(&h->task, 0, interval_ms > 0 ? interval_ms : 10000, check_once, h) < 0) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return BERTH_ERROR;
	}
	*out = h;
	return 0;
}

void berth_health_stop(struct berth_health *h)
{
	if (!h)
		return;
	berth_periodic_stop(h->task);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int berth_health_ok(const struct berth_health *h)
{
	return !h || atomic_load(&((struct berth_health *)h)->ok);
}

char *berth_health_report(struct berth_health *h)
{
	if (berth_health_ok(h))
		return berth_strdup("{}");
	pthread_mutex_lock(&h->lock);
	/* berth's error strings hold no quotes or backslashes: no JSON escaping needed. */
	char *body = berth_asprintf("{\"storagedriver_%s\":\"%s\"}", h->driver->name, h->error);
	pthread_mutex_unlock(&h->lock);
	return body;
}

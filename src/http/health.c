#include "http/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/util.h"
#include "storage/storage.h"

struct berth_health {
	struct berth_storage_driver *driver;
	int64_t interval_ms;
	int64_t threshold;
	_Atomic int ok;
	pthread_mutex_t lock; /* guards error, failures and stopping */
	pthread_cond_t wake;
	char error[128];      /* the last failure's message */
	int64_t failures;     /* in a row */
	int stopping;
	pthread_t thread;
};

/* Distribution's check: a missing root is fine (an empty store), any other error is not. */
static void check_once(struct berth_health *h)
{
	struct berth_stat st;
	int rc = berth_storage_stat(h->driver, "/", &st);
	pthread_mutex_lock(&h->lock);
	if (rc < 0 && rc != BERTH_ENOTFOUND) {
		h->failures++;
		snprintf(h->error, sizeof(h->error), "%s", berth_strerror(rc));
		if (h->failures >= (h->threshold > 0 ? h->threshold : 1))
			atomic_store(&h->ok, 0);
	} else {
		h->failures = 0;
		atomic_store(&h->ok, 1);
	}
	pthread_mutex_unlock(&h->lock);
}

static void *check_loop(void *arg)
{
	struct berth_health *h = arg;
	check_once(h);
	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += h->interval_ms / 1000;
		until.tv_nsec += (h->interval_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!h->stopping && pthread_cond_timedwait(&h->wake, &h->lock, &until) != ETIMEDOUT)
			;
		if (h->stopping)
			break;
		pthread_mutex_unlock(&h->lock);
		check_once(h);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int berth_health_start(struct berth_health **out, struct berth_storage_driver *driver,
		       int64_t interval_ms, int64_t threshold)
{
	struct berth_health *h = berth_calloc(1, sizeof(*h));
	h->driver = driver;
	h->interval_ms = interval_ms > 0 ? interval_ms : 10000;
	h->threshold = threshold;
	atomic_init(&h->ok, 1);
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->thread, NULL, check_loop, h) != 0) {
		pthread_cond_destroy(&h->wake);
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
	pthread_mutex_lock(&h->lock);
	h->stopping = 1;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->wake);
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

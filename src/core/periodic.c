#include "core/periodic.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"
#include "core/util.h"

struct berth_periodic {
	int64_t first_ms, interval_ms;
	void (*run)(void *arg);
	void *arg;
	pthread_mutex_t lock; /* guards stopping */
	pthread_cond_t wake;  /* on CLOCK_MONOTONIC: wall-clock jumps do not stretch a nap */
	int stopping;
	pthread_t thread;
};

/* Sleeps ms unless told to stop; 1 when stopping. */
static int nap(struct berth_periodic *p, int64_t ms)
{
	struct timespec until = berth_monotonic_after_ms(ms);
	pthread_mutex_lock(&p->lock);
	while (!p->stopping && pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
		;
	int stopping = p->stopping;
	pthread_mutex_unlock(&p->lock);
	return stopping;
}

static void *periodic_main(void *arg)
{
	struct berth_periodic *p = arg;
	if (nap(p, p->first_ms))
		return NULL;
	do
		p->run(p->arg);
	while (!nap(p, p->interval_ms));
	return NULL;
}

int berth_periodic_start(struct berth_periodic **out, int64_t first_ms, int64_t interval_ms,
			 void (*run)(void *arg), void *arg)
{
	struct berth_periodic *p = berth_calloc(1, sizeof(*p));
	p->first_ms = first_ms > 0 ? first_ms : 0;
	p->interval_ms = interval_ms > 0 ? interval_ms : 1;
	p->run = run;
	p->arg = arg;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, periodic_main, p) != 0) {
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return BERTH_ERROR;
	}
	*out = p;
	return 0;
}

void berth_periodic_stop(struct berth_periodic *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

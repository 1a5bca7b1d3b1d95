/* A team of threads running batches (core/team.h). */
#include "core/team.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/util.h"

struct berth_team {
	pthread_mutex_t lock;
	pthread_cond_t start; /* a new batch (or the end) for the helpers */
	pthread_cond_t done;  /* the last helper left the batch */
	uint64_t batch;       /* counts batches: a helper works on each one once */
	unsigned working;     /* helpers not yet done with the current batch */
	int stopping;
	berth_team_fn fn;
	void *arg;
	size_t n;
	_Atomic size_t next; /* the next item to take */
	unsigned n_helpers;
	pthread_t *helpers;
};

/* Takes items of the current batch until none is left (every thread of the team). */
static void take_items(struct berth_team *t)
{
	size_t i;
	while ((i = atomic_fetch_add(&t->next, 1)) < t->n)
		t->fn(t->arg, i);
}

static void *helper_main(void *arg)
{
	struct berth_team *t = arg;
	uint64_t seen = 0;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (t->batch == seen && !t->stopping)
			pthread_cond_wait(&t->start, &t->lock);
		if (t->stopping)
			break;
		seen = t->batch;
		pthread_mutex_unlock(&t->lock);
		take_items(t);
		pthread_mutex_lock(&t->lock);
		if (--t->working == 0)
			pthread_cond_signal(&t->done);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

struct berth_team *berth_team_new(unsigned helpers)
{
	struct berth_team *t = berth_calloc(1, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->start, NULL);
	pthread_cond_init(&t->done, NULL);
	t->helpers = berth_calloc(helpers ? helpers : 1, sizeof(*t->helpers));
	pthread_attr_t attr;
	/* storage calls and manifest parsing, as the request workers do (core/workpool.c): 256 KiB
	 * is their stack too */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	while (t->n_helpers < helpers && pthread_create(&t->helpers[t->n_helpers], &attr, helper_main, t) == 0)
		t->n_helpers++;
	pthread_attr_destroy(&attr);
	return t;
}

void berth_team_run(struct berth_team *t, berth_team_fn fn, void *arg, size_t n)
{
	pthread_mutex_lock(&t->lock);
	t->fn = fn;
	t->arg = arg;
	t->n = n;
	atomic_store(&t->next, 0);
	/* a batch of one item is the caller's alone */
	unsigned wake = n > 1 ? t->n_helpers : 0;
	t->working = wake;
	if (wake) {
		t->batch++;
		pthread_cond_broadcast(&t->start);
	}
	pthread_mutex_unlock(&t->lock);
	take_items(t);
	pthread_mutex_lock(&t->lock);
	while (t->working)
		pthread_cond_wait(&t->done, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

void berth_team_free(struct berth_team *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = 1;
	pthread_cond_broadcast(&t->start);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->n_helpers; i++)
		pthread_join(t->helpers[i], NULL);
	pthread_cond_destroy(&t->done);
	pthread_cond_destroy(&t->start);
	pthread_mutex_destroy(&t->lock);
	free(t->helpers);
	free(t);
}

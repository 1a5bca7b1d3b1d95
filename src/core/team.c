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

/* ---- the ordered pipeline ---- */

struct ordered {
	berth_team_step_fn step;
	berth_team_then_fn then;
	void *arg;
	size_t n, max_held;
	pthread_mutex_t lock;
	pthread_cond_t moved; /* next moved on, or the run stopped */
	uint8_t *stepped;     /* per item: its step returned */
	size_t *weight;       /* per item: what its step returned */
	size_t next;          /* the next item for then */
	size_t held;          /* the weights of the items stepped and not yet through then */
	int passing;          /* a thread is running then on items, in order */
	int rc;               /* a then failed: the run stops */
};

/* Runs then on every item whose turn has come, in order (o->lock held; released meanwhile). One
 * thread at a time: the others leave their items to it. */
static void pass_in_order(struct ordered *o)
{
	if (o->passing)
		return;
	o->passing = 1;
	while (o->rc == 0 && o->next < o->n && o->stepped[o->next]) {
		size_t i = o->next;
		pthread_mutex_unlock(&o->lock);
		int rc = o->then(o->arg, i);
		pthread_mutex_lock(&o->lock);
		o->held -= o->weight[i];
		o->next++;
		if (rc < 0)
			o->rc = rc;
		pthread_cond_broadcast(&o->moved);
	}
	o->passing = 0;
}

static void ordered_item(void *arg, size_t i)
{
	struct ordered *o = arg;
	pthread_mutex_lock(&o->lock);
	/* Items are taken in order, so the next item for then has been taken already: its thread
	 * never waits here, and the run always moves on. */
	while (o->rc == 0 && i != o->next && o->held >= o->max_held)
		pthread_cond_wait(&o->moved, &o->lock);
	int stopped = o->rc < 0;
	pthread_mutex_unlock(&o->lock);
	if (stopped)
		return;
	size_t w = o->step(o->arg, i);
	pthread_mutex_lock(&o->lock);
	o->weight[i] = w;
	o->stepped[i] = 1;
	o->held += w;
	pass_in_order(o);
	pthread_mutex_unlock(&o->lock);
}

int berth_team_run_ordered(struct berth_team *t, berth_team_step_fn step, berth_team_then_fn then,
			   void *arg, size_t n, size_t max_held)
{
	struct ordered o = { .step = step, .then = then, .arg = arg, .n = n, .max_held = max_held };
	if (n == 0)
		return 0;
	pthread_mutex_init(&o.lock, NULL);
	pthread_cond_init(&o.moved, NULL);
	o.stepped = berth_calloc(n, sizeof(*o.stepped));
	o.weight = berth_calloc(n, sizeof(*o.weight));
	berth_team_run(t, ordered_item, &o, n);
	free(o.stepped);
	free(o.weight);
	pthread_cond_destroy(&o.moved);
	pthread_mutex_destroy(&o.lock);
	return o.rc;
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

/*
 * The listings' looks at the store for writers that bump no generation (registry/catalog.c,
 * registry/taglist.c), run one at a time on a thread of their own, so that no request waits on a
 * walk of the store: the request that finds a look due answers from its snapshot and queues the
 * look, which replaces the snapshot when done. The thread lives while looks are queued and ends
 * when the queue runs empty (looks come at most every few seconds: an idle server keeps no
 * thread for them); the next look starts another.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "registry/registry_int.h"

struct look {
	struct look *next;
	berth_look_fn fn;
	void *arg;
};

struct berth_looks {
	pthread_mutex_t lock;
	pthread_cond_t idle;  /* the queue ran empty (berth_looks_wait) */
	struct look *head, *tail;
	int started; /* a thread was created and is not joined yet */
	int active;  /* it takes looks from the queue (not yet ending) */
	int running; /* a look is running */
	_Atomic int stopping;
	pthread_t thread;
};

struct berth_looks *berth_looks_new(void)
{
	struct berth_looks *l = berth_calloc(1, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->idle, NULL);
	return l;
}

static void *looks_main(void *arg)
{
	struct berth_looks *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct look *k = l->head;
		if (!k)
			break; /* every look queued has run (when stopping too) */
		l->head = k->next;
		if (!l->head)
			l->tail = NULL;
		l->running = 1;
		pthread_mutex_unlock(&l->lock);
		/* when stopping, the look gives up at once, only releasing its arg */
		k->fn(k->arg);
		free(k);
		pthread_mutex_lock(&l->lock);
		l->running = 0;
		if (!l->head)
			pthread_cond_broadcast(&l->idle);
	}
	l->active = 0;
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int berth_looks_submit(struct berth_registry *r, berth_look_fn fn, void *arg)
{
	struct berth_looks *l = r->looks;
	int rc = 0;
	pthread_mutex_lock(&l->lock);
	if (atomic_load(&l->stopping)) {
		rc = BERTH_ERROR;
	} else if (!l->active) {
		/* the last thread has left its loop (active is cleared under the lock): joined at once */
		if (l->started)
			pthread_join(l->thread, NULL);
		l->started = 0;
		if (pthread_create(&l->thread, NULL, looks_main, l) != 0) {
			berth_warn("registry: cannot start the listings' look thread");
			rc = BERTH_ERROR;
		} else {
			l->started = l->active = 1;
		}
	}
	if (rc == 0) {
		struct look *k = berth_calloc(1, sizeof(*k));
		k->fn = fn;
		k->arg = arg;
		if (l->tail)
			l->tail->next = k;
		else
			l->head = k;
		l->tail = k;
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int berth_looks_stopping(struct berth_registry *r)
{
	return atomic_load_explicit(&r->looks->stopping, memory_order_relaxed);
}

void berth_looks_wait(struct berth_registry *r)
{
	struct berth_looks *l = r->looks;
	pthread_mutex_lock(&l->lock);
	while (l->head || l->running)
		pthread_cond_wait(&l->idle, &l->lock);
	pthread_mutex_unlock(&l->lock);
}

void berth_looks_free(struct berth_looks *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	atomic_store(&l->stopping, 1);
	int started = l->started;
	pthread_mutex_unlock(&l->lock);
	if (started)
		pthread_join(l->thread, NULL);
	pthread_cond_destroy(&l->idle);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

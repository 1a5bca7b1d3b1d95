/*
 * The listings' looks at the store for writers that bump no generation (registry/catalog.c,
 * registry/taglist.c), run one at a time on a thread of their own, started on first use, so
 * that no request waits on a walk of the store: the request that finds a look due answers from
 * its snapshot and queues the look, which replaces the snapshot when done.
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
	pthread_cond_t wake;  /* a look queued, or stopping */
	pthread_cond_t idle;  /* the queue ran empty (berth_looks_wait) */
	struct look *head, *tail;
	int started, running;
	_Atomic int stopping;
	pthread_t thread;
};

struct berth_looks *berth_looks_new(void)
{
	struct berth_looks *l = berth_calloc(1, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);
	pthread_cond_init(&l->idle, NULL);
	return l;
}

static void *looks_main(void *arg)
{
	struct berth_looks *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->head && !atomic_load(&l->stopping))
			pthread_cond_wait(&l->wake, &l->lock);
		struct look *k = l->head;
		if (!k)
			break; /* stopping, and every look queued has run */
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
	} else if (!l->started) {
		if (pthread_create(&l->thread, NULL, looks_main, l) != 0) {
			berth_warn("registry: cannot start the listings' look thread");
			rc = BERTH_ERROR;
		} else {
			l->started = 1;
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
		pthread_cond_signal(&l->wake);
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
	pthread_cond_signal(&l->wake);
	int started = l->started;
	pthread_mutex_unlock(&l->lock);
	if (started)
		pthread_join(l->thread, NULL);
	pthread_cond_destroy(&l->wake);
	pthread_cond_destroy(&l->idle);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/*
 * The listings' looks at the store for writers that bump no generation (registry/catalog.c,
 * registry/taglist.c), run one at a time on a worker of their own (an on-demand pool of one,
 * core/workpool.h), so that no request waits on a walk of the store: the request that finds a
 * look due answers from its snapshot and queues the look, which replaces the snapshot when done.
 * The worker lives while looks are queued and ends when the queue runs empty (looks come at
 * most every few seconds: an idle server keeps no thread for them); the next look starts another.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/util.h"
#include "core/workpool.h"
#include "registry/registry_int.h"

struct berth_looks {
	struct berth_workpool *pool;
	_Atomic int stopping;
};

struct berth_looks *berth_looks_new(void)
{
	struct berth_looks *l = berth_calloc(1, sizeof(*l));
	(void)berth_workpool_new_on_demand(&l->pool, 1); /* fails only for 0 workers */
	return l;
}

int berth_looks_submit(struct berth_registry *r, berth_look_fn fn, void *arg)
{
	struct berth_looks *l = r->looks;
	if (atomic_load(&l->stopping))
		return BERTH_ERROR;
	return berth_workpool_submit(l->pool, fn, arg);
}

int berth_looks_stopping(struct berth_registry *r)
{
	return atomic_load_explicit(&r->looks->stopping, memory_order_relaxed);
}

void berth_looks_wait(struct berth_registry *r)
{
	berth_workpool_wait_idle(r->looks->pool);
}

void berth_looks_free(struct berth_looks *l)
{
	if (!l)
		return;
	atomic_store(&l->stopping, 1);
	berth_workpool_free(l->pool); /* the looks queued run at once, and give up */
	free(l);
}

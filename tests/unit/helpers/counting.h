/*
 * A storage driver over the filesystem driver that counts what the test's own thread asks of
 * it (test_catalog, test_taglist): calls from other threads (the listings' background looks,
 * registry/looks.c) are counted apart, and their listings can be held at a gate, so that a test
 * makes a look run while a request is served and sees that the request did not wait on it.
 * As an object store (S3), its directories have no version and it lists a tree at once.
 * For garbage collection's mark phase (test_gc) it records every listing, fails the listings a
 * test names and holds the first revision listings at a barrier until so many have come.
 */
#ifndef BERTH_TEST_COUNTING_H
#define BERTH_TEST_COUNTING_H

#include <pthread.h>
#include <stdatomic.h>

#include "storage/driver.h"

struct berth_counting_driver {
	struct berth_storage_driver base;
	struct berth_storage_driver *inner;
	pthread_t owner; /* the thread whose calls are counted below */
	/* the owner's calls */
	_Atomic unsigned stats, lists, list_trees, gets;
	_Atomic unsigned catalog_generation_puts; /* puts of BERTH_CATALOG_GENERATION, any thread */
	_Atomic unsigned tags_generation_puts;    /* puts below BERTH_STATE_ROOT/tags, any thread */
	_Atomic unsigned background;              /* calls from other threads */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cv;
	int gate_closed;
	unsigned gate_held; /* listings of other threads waiting at the gate */
	/* The mark phase's reads (test_gc): fail and barrier are set before the run. */
	const char *const *fail; /* NULL-ended fnmatch patterns: such listings fail (BERTH_ERROR) */
	unsigned barrier;        /* the first this many revision listings wait for each other */
	unsigned met, met_failing, failed; /* at the barrier; of them failing; failures returned */
	char **listed;                     /* every listing's path, any thread, in order */
	size_t n_listed, listed_alloc;
};

/* A counting filesystem driver on root, as an object store when object_store is 1. The caller
 * owns it until a registry takes it over (frees it with ->free). NULL on failure. */
struct berth_counting_driver *berth_counting_driver_new(const char *root, int object_store);
/* Zeroes the owner's counters. */
void berth_counting_reset(struct berth_counting_driver *c);
/* Holds every listing (list, list_tree) of a thread other than the owner until opened. */
void berth_counting_gate_close(struct berth_counting_driver *c);
/* 1 once n listings are held at the gate, 0 if not within 30 s. */
int berth_counting_gate_wait(struct berth_counting_driver *c, unsigned n);
void berth_counting_gate_open(struct berth_counting_driver *c);
/* How many listings (any thread) were of paths starting with prefix. */
unsigned berth_counting_listed(struct berth_counting_driver *c, const char *prefix);

struct berth_registry;
/* A registry (deletes enabled) over a new counting driver on root, which *driver_out points
 * to (the registry owns it). NULL on failure. */
struct berth_registry *berth_counting_registry_new(struct berth_counting_driver **driver_out,
						   const char *root, int object_store);

/* Two registries on one new temporary root, each through its own counting driver: two berth
 * instances on one store. */
struct berth_counting_pair {
	char dir[256];
	struct berth_registry *a, *b;
	struct berth_counting_driver *da, *db;
};
/* NULL on failure. name names the temporary root. */
struct berth_counting_pair *berth_counting_pair_new(const char *name, int object_store);
/* Frees both registries and removes the root. Accepts NULL. */
void berth_counting_pair_free(struct berth_counting_pair *p);

#endif

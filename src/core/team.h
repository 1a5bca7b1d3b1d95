/*
 * A team of threads that runs one function over the items of a batch, batch after batch: the
 * threads start with the team and wait between batches, so that a caller with many small
 * batches (garbage collection deletes in batches of 64) creates its threads once, not for each
 * batch. The calling thread works on each batch too. Threads inherit the creating thread's
 * nice value (gc_online.c lowers it first). A batch can also be an ordered pipeline (each item
 * read on any thread, then used in order: garbage collection's mark phase reads repositories
 * so, berth_team_run_ordered).
 */
#ifndef BERTH_CORE_TEAM_H
#define BERTH_CORE_TEAM_H

#include <stddef.h>

struct berth_team;

/* Called once for each item of a batch, on any of the team's threads (or the caller's). */
typedef void (*berth_team_fn)(void *arg, size_t item);

/*
 * A team of the caller and up to helpers more threads. Never fails: helpers that cannot be
 * started are done without (with none, the caller runs every item alone).
 */
struct berth_team *berth_team_new(unsigned helpers);
/* Runs fn(arg, i) for each i in [0, n), spread over the team; returns once every call has
 * returned. One batch at a time: the team belongs to one thread. */
void berth_team_run(struct berth_team *t, berth_team_fn fn, void *arg, size_t n);

/* An item's first step, on any thread of the team: returns the weight of what it leaves for
 * its second step (bytes held, say). */
typedef size_t (*berth_team_step_fn)(void *arg, size_t item);
/* An item's second step: 0, or <0 to stop the run (that code is returned). */
typedef int (*berth_team_then_fn)(void *arg, size_t item);

/*
 * A pipeline over the items [0, n) on the team: step(arg, i) for each item, spread over the
 * team as berth_team_run does, and then(arg, i) for each item in order of i, one at a time, as
 * soon as step(i) and then(i - 1) have returned (on whichever thread finished the last of
 * them). An item starts its step as soon as a thread is free (a sliding window: one slow item
 * holds up only its own thread), but while the weights of the items whose step is done and
 * whose then is not add up to max_held or more, only the next item for then may start: what
 * waits for its turn stays bounded, whatever one slow item holds up. A then that fails stops
 * the run: no step starts after it (those under way finish) and no later then runs; the
 * caller releases what those items' steps left. Returns 0 or the failing then's code.
 */
int berth_team_run_ordered(struct berth_team *t, berth_team_step_fn step, berth_team_then_fn then,
			   void *arg, size_t n, size_t max_held);
/* Stops and joins the helpers, and frees t. Accepts NULL. */
void berth_team_free(struct berth_team *t);

#endif

/*
 * A team of threads that runs one function over the items of a batch, batch after batch: the
 * threads start with the team and wait between batches, so that a caller with many small
 * batches (garbage collection deletes in batches of 64) creates its threads once, not for each
 * batch. The calling thread works on each batch too. Threads inherit the creating thread's
 * nice value (gc_online.c lowers it first).
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
/* Stops and joins the helpers, and frees t. Accepts NULL. */
void berth_team_free(struct berth_team *t);

#endif

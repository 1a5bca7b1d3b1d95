/*
 * Coalesced stats (storage/coalesce.h). Each path with callers has an entry counting rounds:
 * a round is one call of the stat made for every caller that arrived before it was sent. A
 * caller's round is the first one not sent yet when it arrives (started + 1): the one it sends
 * itself when nothing is in flight, else the next, which the first of its waiters to wake
 * after the round in flight ends sends for all of them. Rounds start one at a time, so every
 * caller waiting for a round not sent has the same round number.
 */
#include "storage/coalesce.h"

#include "core/err.h"
#include "core/map.h"
#include "core/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct path_calls {
	pthread_cond_t changed; /* a round ended, or the table stops */
	unsigned users;         /* callers inside: waiting, or sending a round */
	unsigned waiting;       /* callers whose round is not sent yet */
	uint64_t started, finished; /* rounds sent, rounds answered */
	/* the answer of round `finished` */
	int rc;
	struct berth_stat st;
	struct berth_failure failure;
	char path[];
};

struct slot {
	const char *path; /* borrowed from calls->path */
	struct path_calls *calls;
};

struct berth_coalesce {
	pthread_mutex_t lock;
	pthread_cond_t left; /* a caller left (free waits for the last) */
	struct berth_map paths; /* of struct slot */
	size_t max_paths;
	size_t users;
	int stopping;
	struct berth_coalesce_counts counts;
};

struct berth_coalesce *berth_coalesce_new(size_t max_paths)
{
	struct berth_coalesce *c = berth_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->left, NULL);
	c->paths = (struct berth_map)BERTH_MAP_INIT_REF(sizeof(struct slot));
	c->max_paths = max_paths ? max_paths : 1;
	return c;
}

void berth_coalesce_free(struct berth_coalesce *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	struct slot *s;
	for (size_t i = 0; (s = berth_map_next(&c->paths, &i));)
		pthread_cond_broadcast(&s->calls->changed);
	while (c->users > 0)
		pthread_cond_wait(&c->left, &c->lock);
	pthread_mutex_unlock(&c->lock);
	berth_map_release(&c->paths);
	pthread_cond_destroy(&c->left);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The entry of path, made for its first caller; NULL when the table is full. Locked. */
static struct path_calls *enter(struct berth_coalesce *c, const char *path)
{
	struct slot *s = berth_map_find(&c->paths, path);
	if (!s) {
		if (c->paths.n >= c->max_paths)
			return NULL;
		size_t len = strlen(path);
		struct path_calls *pc = berth_calloc(1, sizeof(*pc) + len + 1);
		pthread_cond_init(&pc->changed, NULL);
		memcpy(pc->path, path, len + 1);
		s = berth_map_add(&c->paths, pc->path, NULL);
		s->calls = pc;
	}
	s->calls->users++;
	c->users++;
	return s->calls;
}

/* The caller leaves path's entry, which goes with its last caller. Locked. */
static void leave(struct berth_coalesce *c, struct path_calls *pc)
{
	if (--pc->users == 0) {
		berth_map_remove(&c->paths, pc->path);
		pthread_cond_destroy(&pc->changed);
		free(pc);
	}
	if (--c->users == 0 && c->stopping)
		pthread_cond_broadcast(&c->left);
}

/* Sends `round` for its waiters (the lock is let go meanwhile) and publishes the answer. */
static int send_round(struct berth_stat *out, struct berth_coalesce *c, struct path_calls *pc, uint64_t round,
		      berth_coalesce_stat_fn fn, void *payload)
{
	pc->started = round;
	pc->waiting = 0; /* every waiter is in this round now */
	c->counts.rounds++;
	pthread_mutex_unlock(&c->lock);
	struct berth_stat st;
	memset(&st, 0, sizeof(st));
	struct berth_failure failure = { .code = BERTH_OK };
	int rc = fn(&st, pc->path, payload);
	if (rc < 0) { /* a copy for the others: this thread keeps its own */
		berth_err_save(&failure);
		berth_err_restore(&failure);
	}
	pthread_mutex_lock(&c->lock);
	pc->rc = rc;
	pc->st = st;
	pc->failure = failure;
	pc->finished = round;
	if (pc->users > 1)
		pthread_cond_broadcast(&pc->changed);
	*out = st;
	return rc;
}

int berth_coalesce_stat(struct berth_stat *out, int *shared, struct berth_coalesce *c, const char *path,
			berth_coalesce_stat_fn fn, void *payload)
{
	*shared = 0;
	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return berth_err_set(BERTH_EUNAVAILABLE, "storage is stopping");
	}
	struct path_calls *pc = enter(c, path);
	if (!pc) { /* full: this caller's own stat, shared with nobody */
		c->counts.direct++;
		c->users++; /* counted, so that free waits for it too */
		pthread_mutex_unlock(&c->lock);
		int direct_rc = fn(out, path, payload);
		pthread_mutex_lock(&c->lock);
		if (--c->users == 0 && c->stopping)
			pthread_cond_broadcast(&c->left);
		pthread_mutex_unlock(&c->lock);
		return direct_rc;
	}
	/* The first round not sent yet: any answer to an earlier one may predate this caller. */
	uint64_t round = pc->started + 1;
	pc->waiting++;
	int rc;
	for (;;) {
		if (pc->finished >= round) { /* sent after this caller arrived, by another */
			*out = pc->st;
			rc = pc->rc;
			if (rc < 0) /* its message too */
				berth_err_restore(&pc->failure);
			*shared = 1;
			c->counts.shared++;
			break;
		}
		if (c->stopping) {
			if (pc->started < round)
				pc->waiting--;
			rc = berth_err_set(BERTH_EUNAVAILABLE, "storage is stopping");
			break;
		}
		if (pc->started == pc->finished) { /* nothing in flight: send this caller's round */
			rc = send_round(out, c, pc, round, fn, payload);
			break;
		}
		pthread_cond_wait(&pc->changed, &c->lock);
	}
	leave(c, pc);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

size_t berth_coalesce_waiting(struct berth_coalesce *c, const char *path)
{
	pthread_mutex_lock(&c->lock);
	struct slot *s = berth_map_find(&c->paths, path);
	size_t n = s ? s->calls->waiting : 0;
	pthread_mutex_unlock(&c->lock);
	return n;
}

size_t berth_coalesce_paths(struct berth_coalesce *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->paths.n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void berth_coalesce_counts(struct berth_coalesce_counts *out, struct berth_coalesce *c)
{
	pthread_mutex_lock(&c->lock);
	*out = c->counts;
	pthread_mutex_unlock(&c->lock);
}

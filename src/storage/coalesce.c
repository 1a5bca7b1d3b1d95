/*
 * Coalesced stats (storage/coalesce.h). Each path with callers has an entry. A round is one
 * call of the stat, made by one caller (its sender) for the callers in the round's list. While
 * a round is sent, the callers arriving join the list of the next one; once the round is
 * answered, its sender first wakes one caller of the next round (the last to arrive) to send it
 * for the others (a round picked but not sent yet still takes callers: it is sent after they
 * arrived), lets the table's lock go, and only then hands the answer to each caller of its own
 * list: the next round is on its way while they wake, instead of behind them (its sender woken
 * last, then kept waiting for the lock the waking held, started a round ~50 us later under a
 * load on one object, bench/README.md). Each waiting caller sleeps on a semaphore of its own and
 * finds its answer in its own struct waiter: a round's end wakes each of its callers once, and
 * none of them takes the table's lock again (a broadcast on one condition variable made every
 * waiter of the path queue for the lock, 32 of them under a load on one object).
 */
#include "storage/coalesce.h"

#include "core/err.h"
#include "core/map.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A caller waiting for a round, on its own stack. */
struct waiter {
	struct waiter *next;
	sem_t woken;  /* posted once: an answer is in, or this caller is to send its round */
	int send;     /* woken to send the round (its list is the entry's round) */
	int answered; /* woken with a round's answer (else: the table stops) */
	int rc;
	struct berth_stat st;
	struct berth_failure failure; /* with rc < 0: the round's message */
};

enum round_state {
	ROUND_NONE,   /* no round: the next caller sends one */
	ROUND_PICKED, /* a sender is woken to send the round: callers still join it */
	ROUND_SENT,   /* the round is in flight: callers wait for the next */
};

struct path_calls {
	enum round_state state;
	struct waiter *round, *next; /* the callers of the round (but its sender), of the next */
	size_t n_round, n_next;
	char path[];
};

struct slot {
	const char *path; /* borrowed from calls->path */
	struct path_calls *calls;
};

struct berth_coalesce {
	pthread_mutex_t lock;   /* guards paths, the entries and counts */
	struct berth_map paths; /* of struct slot */
	size_t max_paths;
	atomic_size_t users; /* callers inside berth_coalesce_stat (they leave without the lock) */
	atomic_int stopping;
	struct berth_coalesce_counts counts;
};

struct berth_coalesce *berth_coalesce_new(size_t max_paths)
{
	struct berth_coalesce *c = berth_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->paths = (struct berth_map)BERTH_MAP_INIT_REF(sizeof(struct slot));
	c->max_paths = max_paths ? max_paths : 1;
	return c;
}

/* Wakes every caller of the list with `rc` (and, when answered, the round's stat and failure).
 * Locked, or with a list no other thread reaches. A woken caller may return at once: nothing of
 * it is touched after its post. */
static void wake_all(struct waiter *list, int rc, const struct berth_stat *st, const struct berth_failure *failure,
		     int answered)
{
	while (list) {
		struct waiter *w = list;
		list = w->next;
		w->rc = rc;
		w->answered = answered;
		if (answered) {
			w->st = *st;
			if (rc < 0)
				w->failure = *failure;
		}
		sem_post(&w->woken);
	}
}

void berth_coalesce_free(struct berth_coalesce *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->stopping, 1);
	/* Every waiting caller goes now; a round in flight is waited for (its sender keeps its
	 * answer), and a sender picked but not woken yet finds the table stopping. */
	struct slot *s;
	for (size_t i = 0; (s = berth_map_next(&c->paths, &i));) {
		wake_all(s->calls->round, BERTH_EUNAVAILABLE, NULL, NULL, 0);
		wake_all(s->calls->next, BERTH_EUNAVAILABLE, NULL, NULL, 0);
		s->calls->round = s->calls->next = NULL;
		s->calls->n_round = s->calls->n_next = 0;
	}
	pthread_mutex_unlock(&c->lock);
	/* A caller's last touch of c is its decrement of users, without the lock (waking free under
	 * it would have the caller lock a table free may have released). A round in flight may last
	 * a network timeout: poll, once a millisecond, only while stopping. */
	while (atomic_load(&c->users) > 0)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	berth_map_release(&c->paths);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The entry of path, made for its first caller; NULL when the table is full. Locked. */
static struct path_calls *enter(struct berth_coalesce *c, const char *path)
{
	struct slot *s = berth_map_find(&c->paths, path);
	if (s)
		return s->calls;
	if (c->paths.n >= c->max_paths)
		return NULL;
	size_t len = strlen(path);
	struct path_calls *pc = berth_calloc(1, sizeof(*pc) + len + 1);
	memcpy(pc->path, path, len + 1);
	s = berth_map_add(&c->paths, pc->path, NULL);
	s->calls = pc;
	return pc;
}

/* The round ended: the next one gets its sender (the last caller to wait for it), or the
 * entry goes, with its last caller. Locked. */
static void next_round(struct berth_coalesce *c, struct path_calls *pc)
{
	struct waiter *sender = pc->next;
	if (!sender) {
		berth_map_remove(&c->paths, pc->path);
		free(pc);
		return;
	}
	pc->round = sender->next;
	pc->n_round = pc->n_next - 1;
	pc->next = NULL;
	pc->n_next = 0;
	pc->state = ROUND_PICKED;
	sender->send = 1;
	sem_post(&sender->woken);
}

/* Sends the entry's round for its callers, starts the next round and hands them the answer.
 * Called locked, returns unlocked. */
static int send_round(struct berth_stat *out, struct berth_coalesce *c, struct path_calls *pc,
		      berth_coalesce_stat_fn fn, void *payload)
{
	int rc;
	struct berth_stat st;
	memset(&st, 0, sizeof(st));
	struct berth_failure failure = { .code = BERTH_OK };
	if (atomic_load(&c->stopping)) { /* picked, then the table stopped: nothing is sent (free
					     * woke the round's callers already) */
		rc = berth_err_set(BERTH_EUNAVAILABLE, "storage is stopping");
	} else {
		pc->state = ROUND_SENT;
		c->counts.rounds++;
		pthread_mutex_unlock(&c->lock);
		rc = fn(&st, pc->path, payload);
		if (rc < 0) { /* a copy for the others: this thread keeps its own */
			berth_err_save(&failure);
			berth_err_restore(&failure);
		}
		pthread_mutex_lock(&c->lock);
		c->counts.shared += pc->n_round;
		*out = st;
	}
	/* Taken off the entry (which may go now): free no longer reaches them. */
	struct waiter *answered = pc->round;
	pc->round = NULL;
	pc->n_round = 0;
	next_round(c, pc);
	pthread_mutex_unlock(&c->lock);
	wake_all(answered, rc, &st, &failure, 1);
	return rc;
}

/* A caller of path waits for its round: the answer, or the round to send. Called locked,
 * returns unlocked. */
static int wait_round(struct berth_stat *out, int *shared, struct berth_coalesce *c, struct path_calls *pc,
		      berth_coalesce_stat_fn fn, void *payload)
{
	struct waiter w;
	memset(&w, 0, sizeof(w));
	sem_init(&w.woken, 0, 0);
	if (pc->state == ROUND_PICKED) { /* not sent yet: it will be after this caller came */
		w.next = pc->round;
		pc->round = &w;
		pc->n_round++;
	} else {
		w.next = pc->next;
		pc->next = &w;
		pc->n_next++;
	}
	pthread_mutex_unlock(&c->lock);
	while (sem_wait(&w.woken) != 0 && errno == EINTR)
		;
	sem_destroy(&w.woken);
	if (w.send) { /* the entry stays while its round has a sender */
		pthread_mutex_lock(&c->lock);
		return send_round(out, c, pc, fn, payload);
	}
	if (!w.answered)
		return berth_err_set(BERTH_EUNAVAILABLE, "storage is stopping");
	*out = w.st;
	*shared = 1;
	if (w.rc < 0) /* its message too */
		berth_err_restore(&w.failure);
	return w.rc;
}

int berth_coalesce_stat(struct berth_stat *out, int *shared, struct berth_coalesce *c, const char *path,
			berth_coalesce_stat_fn fn, void *payload)
{
	int rc;
	*shared = 0;
	atomic_fetch_add(&c->users, 1);
	pthread_mutex_lock(&c->lock);
	struct path_calls *pc = NULL;
	if (atomic_load(&c->stopping)) {
		pthread_mutex_unlock(&c->lock);
		rc = berth_err_set(BERTH_EUNAVAILABLE, "storage is stopping");
	} else if (!(pc = enter(c, path))) { /* full: this caller's own stat, shared with nobody */
		c->counts.direct++;
		pthread_mutex_unlock(&c->lock);
		rc = fn(out, path, payload);
	} else if (pc->state == ROUND_NONE) { /* nothing in flight: this caller's round */
		rc = send_round(out, c, pc, fn, payload);
	} else { /* a round in flight may predate this caller: the next one is its own */
		rc = wait_round(out, shared, c, pc, fn, payload);
	}
	atomic_fetch_sub(&c->users, 1); /* nothing of c is touched after this: free may go on */
	return rc;
}

size_t berth_coalesce_waiting(struct berth_coalesce *c, const char *path)
{
	pthread_mutex_lock(&c->lock);
	struct slot *s = berth_map_find(&c->paths, path);
	size_t n = 0;
	if (s) /* callers whose round is not sent yet */
		n = s->calls->n_next + (s->calls->state == ROUND_PICKED ? s->calls->n_round + 1 : 0);
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

/*
 * Blobs streamed from the upstream while they are stored (proxy/proxy.h). One fetch per
 * repository and blob at a time: the fetch thread writes each piece to an upload session and
 * into a bounded ring that every client reading along drains at its own pace (the thread waits
 * while the slowest one has the ring full), so memory stays flat in blob size and concurrent
 * pulls of one uncached blob make one upstream GET. A client that arrives once the ring has
 * wrapped (its first bytes are gone) waits for the end and is served from storage. The digest
 * is verified before any reader gets the last byte and before anything is linked; the readers
 * along then end their pulls while the upload is committed (made durable and linked), and a
 * late one is served from storage once it is. Readers are first woken with bytes to send, not
 * for the headers alone. A blob the ring holds whole (1 MiB or less) is hashed as it arrives,
 * verified from memory and handed to its readers in one wake-up before the upload session is
 * even opened; it is then written from the ring. A broken transfer or a wrong digest cancels it,
 * so nothing partial is ever linked. Readers that go away leave the fetch to finish storing
 * the blob for the others. The blob is written through the page cache: the next pull reads it.
 *
 * A prefetch (berth_proxy__prefetch: the blobs of a manifest just fetched, before any client asks
 * for them) is such a fetch with no reader yet. It fills the ring and, when the blob is larger,
 * holds there for a first reader (PREFETCH_HOLD_MS at most): past the ring's first bytes a
 * client asking would no longer read along but wait for the end. With nobody come, it goes on
 * alone and stores the blob, which the next pull then reads from storage.
 *
 * What the commit syncs (berth_upload_open_cached): a cache can always fetch again, so a crash
 * may lose what it stored but must never leave a name showing other bytes than the verified
 * ones. The data is made durable before it is moved into the blob store, and that move at once
 * (the blob store is shared: a push that finds the blob there links it without syncing its
 * name); the repository's link has its file synced before its rename, but not its directory
 * after it (that would make the link durable at once, which a cache does not need: a link a
 * crash loses is fetched again). Manifests are stored the same way (berth_manifest_put_fetched).
 * Distribution's proxy syncs nothing at all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "proxy/proxy_int.h"
#include "registry/reference.h"

#define RING (1u << 20)
/* libcurl's receive buffer for a blob: each read is a poll and a recv, and its 16 KiB default
 * made 6,400 of each for 100 MiB. */
#define RECV_BUFFER (256L << 10)
/* A reader along that drained the ring is woken once this much more is there for it (or the
 * transfer's outcome is known): each wake-up resumes its connection on a polling thread. */
#define WAKE_AFTER (64u << 10)
/* The store takes the ring's bytes in pieces this large: libcurl hands the body on 16 KiB at a
 * time whatever it reads, and each piece stored is a write and a hash update. Below RING. */
#define STORE_BATCH (256u << 10)
/* How long a prefetch with its ring full waits for a first reader before it goes on alone. */
#define PREFETCH_HOLD_MS 10000

enum fetch_state { FETCH_WAITING, FETCH_STREAMING, FETCH_DONE, FETCH_FAILED };

struct shared_fetch;

/* One client's view of a fetch: the handle berth_proxy_fetch_start gives out. */
struct berth_proxy_fetch {
	struct shared_fetch *sf;
	struct berth_proxy_fetch *next;
	berth_fetch_notify notify;
	void *payload;
	uint64_t head;  /* bytes this reader has taken */
	int joined;     /* reads along; 0: waits for the end, then is served from storage */
	int attached;
	int waiting;    /* answered BERTH_EBUSY: notify when news come */
};

struct shared_fetch {
	struct berth_proxy *p;
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2]; /* "<name>@<digest>" in p->inflight */
	char name[BERTH_NAME_MAX + 1];
	char digest[BERTH_DIGEST_STR_MAX];
	struct berth_proxy_target target; /* the upstream it comes from */

	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	int refs;             /* the readers' and the thread's */
	int notifying;        /* notify calls running (a release waits for them) */
	struct berth_proxy_fetch *readers;
	enum fetch_state state;
	int failure;          /* FETCH_FAILED: BERTH_ENOTFOUND or BERTH_ERROR */
	int verified;         /* the whole blob arrived and matches its digest: readers may end */
	int stored;           /* FETCH_DONE: the blob is linked in the repository */
	int prefetch;         /* started with no reader (berth_proxy__prefetch); set before the thread runs */
	int prefetch_joined;  /* a reader joined it along */
	int alone;            /* a prefetch no reader has joined yet: holds at the ring's end */
	atomic_int dropped;   /* dropped_at_stop, set for the upstream call's cancel: also ends a
			       * transfer waiting on a silent upstream */
	uint64_t size;
	uint64_t tail;        /* bytes put into the ring */
	char *ring;

	/* The fetch thread's own. */
	struct berth_hasher *hasher; /* a blob the ring holds whole: hashed as it arrives */
	struct berth_upload *upload; /* NULL: the blob is only streamed */
	int store_opened;            /* open_store ran (upload says how it went) */
	int store_failed;
	uint64_t store_head; /* bytes of the ring handed to the store (only this thread writes the
			      * ring: [store_head, tail) stays there until stored) */
};

struct inflight_entry {
	char *key;
	struct shared_fetch *sf;
};

const size_t berth_proxy__inflight_entry_size = sizeof(struct inflight_entry);

static void shared_unref(struct shared_fetch *sf)
{
	pthread_mutex_lock(&sf->lock);
	int last = --sf->refs == 0;
	pthread_mutex_unlock(&sf->lock);
	if (!last)
		return;
	pthread_cond_destroy(&sf->cond);
	pthread_mutex_destroy(&sf->lock);
	berth_hasher_free(sf->hasher);
	free(sf->ring);
	free(sf);
}

/* Tells every waiting reader (those waiting for the end only at the end; those reading along
 * once `more` bytes are there for them: 0 for any news); called with the lock held, dropped
 * around each call. */
static void wake_readers(struct shared_fetch *sf, uint64_t more)
{
	int ended = sf->state == FETCH_DONE || sf->state == FETCH_FAILED;
	for (;;) {
		struct berth_proxy_fetch *r = sf->readers;
		while (r && !(r->attached && r->waiting &&
			      (ended || (r->joined && sf->tail - r->head >= more))))
			r = r->next;
		if (!r)
			return;
		r->waiting = 0;
		sf->notifying++;
		pthread_mutex_unlock(&sf->lock);
		r->notify(r->payload);
		pthread_mutex_lock(&sf->lock);
		sf->notifying--;
		pthread_cond_broadcast(&sf->cond);
	}
}

/* 1 when the ring holds the whole blob: its digest is then checked from memory and the readers
 * get the last byte before the store is opened at all (finish_from_ring). */
static int held_whole(const struct shared_fetch *sf)
{
	return sf->size <= RING;
}

/* Bytes the slowest reader along, or the store, has not taken yet. */
static uint64_t unread(const struct shared_fetch *sf)
{
	uint64_t most = sf->tail - sf->store_head;
	for (const struct berth_proxy_fetch *r = sf->readers; r; r = r->next)
		if (r->attached && r->joined && sf->tail - r->head > most)
			most = sf->tail - r->head;
	return most;
}

/* The upload session the blob is stored in, opened once the readers along have the first
 * bytes to send (store_due), so that neither their answers' headers nor those bytes wait for its
 * directory and files to be made; a miss or a failure stores nothing. Without one, the transfer
 * fails (on_body, fetch_main). */
static void open_store(struct shared_fetch *sf)
{
	struct berth_proxy *p = sf->p;
	char uuid[37];
	sf->store_opened = 1;
	int rc = berth_upload_create(p->reg, sf->name, uuid);
	if (rc == 0 && (rc = berth_upload_open_cached(&sf->upload, p->reg, sf->name, uuid)) < 0)
		berth_upload_remove(p->reg, sf->name, uuid); /* the next pull reads it: cached */
	if (rc < 0) {
		berth_error("cannot cache blob %s@%s: %s", sf->name, sf->digest, berth_err_reason(rc));
		sf->upload = NULL;
	}
}

/* A blob the ring will hold whole is hashed as it arrives, on this thread (no hasher: its digest
 * cannot be checked, and finish_from_ring fails it). */
static void start_hasher(struct shared_fetch *sf)
{
	enum berth_digest_alg alg;
	if (held_whole(sf) && berth_digest_parse(sf->digest, &alg, NULL) == 0 && berth_hasher_new(&sf->hasher, alg) < 0)
		sf->hasher = NULL;
}

static void on_start(const struct berth_upstream_result *res, void *payload)
{
	struct shared_fetch *sf = payload;
	pthread_mutex_lock(&sf->lock);
	if (sf->state == FETCH_WAITING) {
		if (res->status == 200 && res->length >= 0) {
			sf->size = (uint64_t)res->length;
			sf->state = FETCH_STREAMING;
			start_hasher(sf);
			/* The readers are woken with the first bytes (on_body) or the verdict, not for
			 * the headers alone: one wake-up fewer, and no answer before its body can go. */
		} else {
			sf->state = FETCH_FAILED;
			sf->failure = res->status == 404 ? BERTH_ENOTFOUND : BERTH_ERROR;
			wake_readers(sf, 0);
		}
	}
	pthread_mutex_unlock(&sf->lock);
}

/* The store's copy of a piece, after the readers along have it: their sends overlap its write
 * and hash (the last byte still waits for the digest's verdict). */
static void store_piece(struct shared_fetch *sf, const void *data, size_t n)
{
	if (!sf->upload || sf->store_failed)
		return;
	int rc = berth_upload_write(sf->upload, data, n);
	if (rc < 0) {
		/* The clients still get their bytes; the blob is just not cached this time. */
		berth_error("cannot cache blob %s@%s: %s", sf->name, sf->digest, berth_err_reason(rc));
		sf->store_failed = 1;
	}
}

/* Stores the ring's bytes up to offset upto. Without the lock: the readers only read the ring,
 * and this thread, its only writer, is here. */
static void store_from_ring(struct shared_fetch *sf, uint64_t upto)
{
	while (sf->store_head < upto) {
		size_t at = (size_t)(sf->store_head % RING);
		size_t k = (size_t)(upto - sf->store_head);
		if (k > RING - at)
			k = RING - at;
		store_piece(sf, sf->ring + at, k);
		sf->store_head += k;
	}
}

/* 1 once the store of a blob larger than the ring is to be opened: the readers along were woken
 * for the first bytes. Until then the ring only fills, well below its size. */
static int store_due(const struct shared_fetch *sf, uint64_t tail)
{
	return !held_whole(sf) && tail >= WAKE_AFTER;
}

/* A prefetch that no reader joined, its ring full: waits for a first reader (berth_proxy_fetch_start
 * signals sf->cond) for PREFETCH_HOLD_MS at most, then goes on alone. BERTH_ERROR when the proxy
 * stops meanwhile: the transfer is dropped, nothing linked. Called with sf->lock held. */
static int hold_for_reader(struct shared_fetch *sf)
{
	struct timespec until = berth_monotonic_after_ms(PREFETCH_HOLD_MS);
	while (sf->alone && !atomic_load(&sf->p->stopping))
		if (pthread_cond_timedwait(&sf->cond, &sf->lock, &until) == ETIMEDOUT)
			break;
	if (sf->alone && atomic_load(&sf->p->stopping))
		return berth_err_set(BERTH_ERROR, "the proxy is stopping");
	if (sf->alone)
		berth_debug("prefetch of %s@%s: no client came, stored alone", sf->name, sf->digest);
	sf->alone = 0;
	return 0;
}

/* 1 for a prefetch no reader joined once the proxy stops: it is dropped. Called with sf->lock
 * held. */
static int dropped_at_stop(const struct shared_fetch *sf)
{
	return sf->prefetch && !sf->prefetch_joined && atomic_load(&sf->p->stopping);
}

static int on_body(const void *data, size_t n, void *payload)
{
	struct shared_fetch *sf = payload;
	const char *p = data;
	size_t len = n;

	if (sf->store_opened && !sf->upload) /* nothing would check the digest: stop at once */
		return BERTH_ERROR;
	pthread_mutex_lock(&sf->lock);
	/* A prefetch nobody joined is dropped at stop, wherever it is: it would otherwise hold up
	 * berth_jobs_stop for a whole blob nobody asked for (finish cancels its upload). */
	if (dropped_at_stop(sf)) {
		pthread_mutex_unlock(&sf->lock);
		return berth_err_set(BERTH_ERROR, "the proxy is stopping");
	}
	if (sf->tail + n > sf->size) { /* more than announced */
		pthread_mutex_unlock(&sf->lock);
		return BERTH_ERANGE;
	}
	while (n > 0) {
		uint64_t pending;
		while ((pending = unread(sf)) == RING) {
			if (sf->tail - sf->store_head >= STORE_BATCH) { /* room this thread makes itself */
				uint64_t upto = sf->tail;
				pthread_mutex_unlock(&sf->lock);
				store_from_ring(sf, upto);
				pthread_mutex_lock(&sf->lock);
				continue;
			}
			pthread_cond_wait(&sf->cond, &sf->lock);
		}
		size_t room = RING - (size_t)pending;
		size_t at = (size_t)(sf->tail % RING);
		size_t k = n < room ? n : room;
		if (k > RING - at)
			k = RING - at;
		/* Alone, the tail stops at the ring's end (k never passes it): a first reader could
		 * not read along past it. */
		if (sf->alone && sf->tail == RING) {
			if (hold_for_reader(sf) < 0) {
				pthread_mutex_unlock(&sf->lock);
				return BERTH_ERROR;
			}
			continue;
		}
		memcpy(sf->ring + at, p, k);
		sf->tail += k;
		p += k;
		n -= k;
		if (!held_whole(sf)) /* else woken once, verified, for the whole blob */
			wake_readers(sf, WAKE_AFTER);
	}
	uint64_t tail = sf->tail;
	pthread_mutex_unlock(&sf->lock);
	if (sf->hasher) /* outside the lock: readers along take what is there meanwhile */
		berth_hasher_update(sf->hasher, data, len);
	if (!sf->store_opened) {
		if (!store_due(sf, tail))
			return 0; /* a blob the ring holds whole is stored once verified (finish_from_ring) */
		open_store(sf);
		if (!sf->upload)
			return BERTH_ERROR;
	}
	if (tail - sf->store_head >= STORE_BATCH || tail == sf->size)
		store_from_ring(sf, tail);
	return 0;
}

/* The digest matched: the readers along may take the last byte while the blob is made durable
 * and linked (its fdatasync, rename and links are no part of their pulls). */
static void release_readers(struct shared_fetch *sf)
{
	pthread_mutex_lock(&sf->lock);
	sf->verified = 1;
	wake_readers(sf, 0);
	pthread_mutex_unlock(&sf->lock);
}

/* The blob is linked: pulls from now on are served from storage until it expires. */
static void note_stored(struct shared_fetch *sf)
{
	struct berth_proxy *p = sf->p;
	sf->stored = 1;
	if (p->scheduler && sf->target.route->ttl_ms > 0)
		berth_scheduler_add(p->scheduler, BERTH_SCHED_BLOB, sf->name, sf->digest, sf->target.route->ttl_ms);
}

static void log_mismatch(const struct shared_fetch *sf)
{
	berth_error("upstream %s: blob %s@%s does not match its digest: not stored",
		    berth_upstream_label(sf->target.route->upstream), sf->name, sf->digest);
}

/*
 * A store job (the store's work once the readers have the whole blob runs on the proxy's
 * low-priority threads, berth_jobs_run, serving going first on a busy machine; the fetch thread
 * waits for it; each job logs its own failure: the readers are served): makes a verified blob's
 * upload the blob and links it. A failed commit's session goes now, not at the next purge (the
 * commit removed it itself on a digest mismatch or a quota refusal).
 */
static void commit_upload(void *arg)
{
	struct shared_fetch *sf = arg;
	int rc = berth_upload_commit(sf->upload, sf->digest);
	if (rc == 0) {
		note_stored(sf);
		return;
	}
	berth_error("cannot cache blob %s@%s: %s", sf->name, sf->digest, berth_err_reason(rc));
	if (rc != BERTH_EDIGEST && rc != BERTH_EDENIED)
		berth_upload_cancel(sf->upload);
}

/* A store job: stores a verified blob the ring holds whole (the commit hashes what was written
 * again). */
static void store_whole(void *arg)
{
	struct shared_fetch *sf = arg;
	open_store(sf); /* logs its failure */
	if (!sf->upload)
		return;
	store_from_ring(sf, sf->size);
	if (!sf->store_failed)
		commit_upload(sf);
	else
		berth_upload_cancel(sf->upload);
	berth_upload_close(sf->upload);
	sf->upload = NULL;
}

/* A whole blob the ring holds (held_whole), arrived: its digest (hashed as it came) is checked
 * and the readers along get their last byte before the upload session is even made, so that
 * neither its directory and files nor the writes are any part of their pulls; then it is stored
 * from the ring. 0 when the blob is good, whether or not it could be cached. */
static int finish_from_ring(struct shared_fetch *sf)
{
	char got[BERTH_DIGEST_STR_MAX];
	if (!sf->hasher)
		return berth_err_set(BERTH_ERROR, "cannot check digest '%s'", sf->digest);
	berth_hasher_digest(sf->hasher, got);
	if (strcmp(got, sf->digest) != 0) {
		log_mismatch(sf);
		return berth_err_set(BERTH_EDIGEST, "does not match its digest");
	}
	release_readers(sf);
	berth_jobs_run(sf->p->stores, store_whole, sf);
	return 0;
}

/* After the transfer: verifies and links (or drops) what was stored. 0 when the blob is good. */
static int finish(struct shared_fetch *sf, int rc, const struct berth_upstream_result *res)
{
	if (rc == 0 && (res->status != 200 || res->bytes != sf->size))
		rc = berth_err_set(BERTH_ERROR, "short body");
	pthread_mutex_lock(&sf->lock);
	int dropped = dropped_at_stop(sf); /* as it should be: no warning */
	pthread_mutex_unlock(&sf->lock);
	if (rc < 0 && res->status == 200 && !dropped)
		berth_warn("upstream %s: blob %s@%s broke off after %llu of %llu bytes: %s",
			   berth_upstream_label(sf->target.route->upstream), sf->name, sf->digest, (unsigned long long)res->bytes,
			   (unsigned long long)sf->size, berth_err_reason(rc));
	if (rc == 0 && held_whole(sf))
		return finish_from_ring(sf);
	if (!sf->upload) {
		if (rc == 0) { /* its digest was checked nowhere: the last byte is not handed over */
			berth_error("blob %s@%s streamed but not cached: no upload session", sf->name, sf->digest);
			rc = BERTH_ERROR;
		}
		return rc;
	}
	if (rc == 0 && sf->store_failed) /* its digest was checked nowhere: not handed over as done */
		rc = berth_err_set(BERTH_ERROR, "not stored");
	if (rc == 0) {
		rc = berth_upload_verify(sf->upload, sf->digest);
		if (rc == 0) {
			release_readers(sf);
			berth_jobs_run(sf->p->stores, commit_upload, sf); /* a failure still serves the readers */
		} else {
			/* not verified (a mismatch, or the check itself failed): nothing reaches the
			 * readers as done, and the session's bytes go now, not at the next purge */
			if (rc == BERTH_EDIGEST)
				log_mismatch(sf);
			else
				berth_error("cannot verify blob %s@%s: %s", sf->name, sf->digest, berth_err_reason(rc));
			berth_upload_cancel(sf->upload);
		}
	} else {
		berth_upload_cancel(sf->upload);
	}
	berth_upload_close(sf->upload);
	sf->upload = NULL;
	return rc;
}

/* 1 once a reader along would have been woken for its status: at the end, once the ring's
 * whole blob is verified, or once a larger blob's first bytes are there (as on_body wakes).
 * Before, a reader joining waits (with headers alone it would get a 200 that a digest mismatch
 * then cuts short, where the first reader gets a 503). Called with sf->lock held. */
static int status_due(const struct shared_fetch *sf)
{
	return sf->state == FETCH_DONE || sf->state == FETCH_FAILED || sf->verified || store_due(sf, sf->tail);
}

static void forget(struct shared_fetch *sf)
{
	struct berth_proxy *p = sf->p;
	pthread_mutex_lock(&p->inflight_lock);
	berth_map_remove(&p->inflight, sf->key);
	pthread_mutex_unlock(&p->inflight_lock);
}

/* A prefetch ended: its slot is free again; a failure is counted (its clients, if any, got their
 * answers; one asking later starts a fetch of its own; finish or the upstream call warned of
 * what went wrong). */
static void note_prefetch_end(struct shared_fetch *sf, int rc)
{
	atomic_fetch_sub(&sf->p->prefetches, 1);
	if (rc == 0)
		return;
	atomic_fetch_add(&berth_proxy_stats.prefetch_failed, 1);
	berth_debug("prefetch of blob %s@%s failed: %s", sf->name, sf->digest, berth_err_reason(rc));
}

static void fetch_main(void *arg)
{
	struct shared_fetch *sf = arg;
	struct berth_upstream_result res;
	char path[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 32];

	snprintf(path, sizeof(path), "/v2/%s/blobs/%s", sf->target.remote, sf->digest);
	struct berth_upstream_call call = { .method = "GET", .path = path, .repo = sf->target.remote,
					    .on_body = on_body, .on_start = on_start, .payload = sf,
					    .recv_buffer = RECV_BUFFER };
	int rc;
	memset(&res, 0, sizeof(res));
	call.cancel = &sf->dropped;
	pthread_mutex_lock(&sf->lock);
	int drop = dropped_at_stop(sf);
	pthread_mutex_unlock(&sf->lock);
	if (drop) {                                      /* queued when the proxy began to stop */
		atomic_fetch_sub(&sf->p->prefetches, 1);     /* not started: no failure */
		rc = finish(sf, BERTH_ERROR, &res);
	} else {
		rc = berth_upstream_call(&res, sf->target.route->upstream, &call);
		rc = finish(sf, rc, &res);
		if (sf->prefetch)
			note_prefetch_end(sf, rc);
	}
	/* Out of the table before the verdict: a pull arriving now finds the blob stored (or
	 * starts afresh), never a finished fetch. */
	forget(sf);

	pthread_mutex_lock(&sf->lock);
	if (sf->state == FETCH_WAITING) { /* no answer at all */
		sf->state = FETCH_FAILED;
		sf->failure = BERTH_ERROR;
	} else if (sf->state == FETCH_STREAMING) {
		sf->state = rc == 0 ? FETCH_DONE : FETCH_FAILED;
		sf->failure = BERTH_ERROR;
	}
	wake_readers(sf, 0);
	pthread_mutex_unlock(&sf->lock);
	shared_unref(sf);
}

static struct berth_proxy_fetch *new_reader(struct shared_fetch *sf, berth_fetch_notify notify, void *payload)
{
	struct berth_proxy_fetch *r = berth_calloc(1, sizeof(*r));
	r->sf = sf;
	r->notify = notify;
	r->payload = payload;
	r->attached = 1;
	r->waiting = 1; /* the status is asked for once notify says */
	r->next = sf->readers;
	sf->readers = r;
	sf->refs++;
	return r;
}

/* A fetch not started yet, with the thread's reference only. */
static struct shared_fetch *new_shared(struct berth_proxy *p, const char *key, const char *name, const char *digest,
				       const struct berth_proxy_target *target)
{
	struct shared_fetch *sf = berth_calloc(1, sizeof(*sf));
	pthread_condattr_t attr;
	sf->p = p;
	snprintf(sf->key, sizeof(sf->key), "%s", key);
	snprintf(sf->name, sizeof(sf->name), "%s", name);
	snprintf(sf->digest, sizeof(sf->digest), "%s", digest);
	sf->target = *target;
	sf->ring = berth_malloc(RING);
	sf->refs = 1; /* the thread's */
	pthread_mutex_init(&sf->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* hold_for_reader's deadline */
	pthread_cond_init(&sf->cond, &attr);
	pthread_condattr_destroy(&attr);
	return sf;
}

/* A reader joining a prefetch along: the fetch holding for it goes on (counted once). Called
 * with sf->lock held. */
static void join_prefetch(struct shared_fetch *sf)
{
	if (!sf->prefetch || sf->prefetch_joined)
		return;
	sf->prefetch_joined = 1;
	sf->alone = 0;
	atomic_fetch_add(&berth_proxy_stats.prefetch_joined, 1);
	pthread_cond_broadcast(&sf->cond);
}

/* A reader joining sf, a fetch under way (found in p->inflight, inflight_lock held): it reads
 * along while the first bytes are still in the ring, else waits for the end. *self_notify: the
 * caller notifies it once the lock is dropped. */
static struct berth_proxy_fetch *join_fetch(struct shared_fetch *sf, berth_fetch_notify notify, void *payload,
					    int *self_notify)
{
	pthread_mutex_lock(&sf->lock);
	struct berth_proxy_fetch *r = new_reader(sf, notify, payload);
	r->joined = sf->tail <= RING && sf->state != FETCH_FAILED;
	if (r->joined)
		join_prefetch(sf);
	/* Its wake-up has passed: no notify would come for it, so it notifies itself. waiting is
	 * cleared under the lock that found it due, so a wake_readers running after the unlock
	 * cannot notify it a second time. */
	*self_notify = r->joined && status_due(sf);
	if (*self_notify)
		r->waiting = 0;
	pthread_mutex_unlock(&sf->lock);
	atomic_fetch_add(&berth_proxy_stats.blob_shared, 1);
	return r;
}

/*
 * Starts the fetch of name's blob digest from target, listed in p->inflight: with notify, for a
 * client (*out its reader; one already under way is joined instead), else a prefetch with no
 * reader. 0; BERTH_EEXISTS (a prefetch only) when a fetch of it is under way; BERTH_EBUSY with
 * no fetch thread to be had (nothing listed).
 */
static int start_fetch(struct berth_proxy_fetch **out, struct berth_proxy *p, const struct berth_proxy_target *target,
		       const char *name, const char *digest, berth_fetch_notify notify, void *payload)
{
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	struct berth_proxy_fetch *r = NULL;
	int added = 0;
	snprintf(key, sizeof(key), "%s@%s", name, digest);

	pthread_mutex_lock(&p->inflight_lock);
	struct inflight_entry *e = berth_map_add(&p->inflight, key, &added);
	if (!added) {
		int self_notify = 0;
		if (notify)
			*out = join_fetch(e->sf, notify, payload, &self_notify);
		pthread_mutex_unlock(&p->inflight_lock);
		if (self_notify)
			notify(payload);
		return notify ? 0 : BERTH_EEXISTS;
	}
	struct shared_fetch *sf = new_shared(p, key, name, digest, target);
	if (notify) {
		r = new_reader(sf, notify, payload);
		r->joined = 1;
	} else {
		sf->prefetch = 1;
		sf->alone = 1;
	}
	e->sf = sf;
	if (berth_jobs_submit(p->fetches, fetch_main, sf) < 0) {
		berth_map_remove(&p->inflight, key);
		pthread_mutex_unlock(&p->inflight_lock);
		free(r);
		sf->refs = 1;
		shared_unref(sf);
		return BERTH_EBUSY;
	}
	pthread_mutex_unlock(&p->inflight_lock);
	if (notify) {
		atomic_fetch_add(&berth_proxy_stats.blob_misses, 1);
		*out = r;
	}
	return 0;
}

int berth_proxy_fetch_start(struct berth_proxy_fetch **out, struct berth_proxy *p, const char *name,
			    const char *digest, berth_fetch_notify notify, void *payload)
{
	struct berth_proxy_target target;
	if (berth_proxy__target(&target, p, name) < 0)
		return BERTH_ENOTFOUND; /* no upstream serves name: the API never asks */
	return start_fetch(out, p, &target, name, digest, notify, payload);
}

int berth_proxy_fetch_status(struct berth_proxy_fetch *r, uint64_t *size)
{
	struct shared_fetch *sf = r->sf;
	int rc;
	pthread_mutex_lock(&sf->lock);
	*size = sf->size;
	if (!r->joined) { /* waits for the end, then storage serves it */
		if (sf->state == FETCH_DONE || sf->state == FETCH_FAILED)
			rc = sf->state == FETCH_DONE && sf->stored ? BERTH_EEXISTS : sf->failure ? sf->failure : BERTH_ERROR;
		else
			rc = BERTH_EBUSY;
	} else if (sf->state == FETCH_WAITING) {
		rc = BERTH_EBUSY;
	} else if (sf->state == FETCH_FAILED) {
		rc = sf->failure; /* known before the reader is answered: its answer (after, the reads tell) */
	} else {
		rc = 0;
	}
	if (rc == BERTH_EBUSY)
		r->waiting = 1;
	pthread_mutex_unlock(&sf->lock);
	return rc;
}

ssize_t berth_proxy_fetch_read(struct berth_proxy_fetch *r, char *buf, size_t max, berth_fetch_notify on_wait,
			       void *payload)
{
	struct shared_fetch *sf = r->sf;
	ssize_t n;
	pthread_mutex_lock(&sf->lock);
	/* The last byte waits for the digest's verdict. */
	int ended = sf->state == FETCH_DONE || sf->verified;
	uint64_t readable = ended ? sf->tail
			    : sf->tail == sf->size && sf->size ? sf->tail - 1
							       : sf->tail;
	if (sf->state == FETCH_FAILED || !r->joined) {
		n = BERTH_ERROR;
	} else if (r->head < readable) {
		size_t at = (size_t)(r->head % RING);
		size_t k = (size_t)(readable - r->head);
		if (k > max)
			k = max;
		if (k > RING - at)
			k = RING - at;
		memcpy(buf, sf->ring + at, k);
		r->head += k;
		n = (ssize_t)k;
		pthread_cond_broadcast(&sf->cond); /* room in the ring */
	} else if (ended) {
		n = 0;
	} else {
		r->waiting = 1;
		on_wait(payload);
		n = BERTH_EBUSY;
	}
	pthread_mutex_unlock(&sf->lock);
	return n;
}

void berth_proxy_fetch_release(struct berth_proxy_fetch *r)
{
	if (!r)
		return;
	struct shared_fetch *sf = r->sf;
	pthread_mutex_lock(&sf->lock);
	r->attached = 0;
	r->waiting = 0;
	while (sf->notifying)
		pthread_cond_wait(&sf->cond, &sf->lock);
	for (struct berth_proxy_fetch **pp = &sf->readers; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	pthread_cond_broadcast(&sf->cond); /* the thread may wait for this reader's room */
	pthread_mutex_unlock(&sf->lock);
	free(r);
	shared_unref(sf);
}

int berth_proxy__prefetch(struct berth_proxy *p, const struct berth_proxy_target *target, const char *name,
			  const char *digest)
{
	if (atomic_fetch_add(&p->prefetches, 1) >= BERTH_PROXY_PREFETCH_MAX) {
		atomic_fetch_sub(&p->prefetches, 1);
		return BERTH_EBUSY;
	}
	int rc = start_fetch(NULL, p, target, name, digest, NULL, NULL);
	if (rc < 0) {
		atomic_fetch_sub(&p->prefetches, 1);
		return rc;
	}
	atomic_fetch_add(&berth_proxy_stats.prefetch_started, 1);
	return 0;
}

void berth_proxy__wake_prefetches(struct berth_proxy *p)
{
	size_t pos = 0;
	struct inflight_entry *e;
	/* Under inflight_lock: a fetch leaves the table (forget) before it is freed. */
	pthread_mutex_lock(&p->inflight_lock);
	while ((e = berth_map_next(&p->inflight, &pos))) {
		pthread_mutex_lock(&e->sf->lock);
		if (dropped_at_stop(e->sf))
			atomic_store(&e->sf->dropped, 1);
		pthread_cond_broadcast(&e->sf->cond);
		pthread_mutex_unlock(&e->sf->lock);
	}
	pthread_mutex_unlock(&p->inflight_lock);
}

#include "core/bodypipe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/err.h"
#include "core/util.h"

/* A thread sleeps until this much waits for it (or the pipe stops). Woken for every piece
 * received (~128 KiB), it would cost a context switch, and on a virtual machine an interrupt,
 * that often; waiting for more leaves more to do once the body ends (a chunked upload's PATCH
 * answers only then). 256 KiB measured best of 128 KiB to 1 MiB, for both. */
#define WAKE_AT(p) ((p)->size / 16)
/* The most a thread takes per turn, so that room in the ring comes back in steps. */
#define STEP(p) ((p)->size / 8)

struct berth_body_pipe {
	unsigned char *ring; /* BERTH_BODY_PIPE_RING bytes mapped, page-aligned */
	uint64_t size;       /* of which the pipe uses the first size bytes */
	struct berth_hasher *hasher;
	berth_body_sink sink;
	void *sink_arg;
	uint64_t align_mask;
	pthread_t hash_thread, sink_thread;
	pthread_mutex_t lock;
	pthread_cond_t more; /* bytes came in, or stop: for the two threads */
	pthread_cond_t room; /* a thread moved on: for the caller */
	/* Object offsets: the end of the bytes copied in / hashed / handed to the sink. The ring
	 * holds [min(hashed, sunk), in); each thread reads its own stretch of it unlocked. */
	uint64_t in, hashed, sunk;
	int hash_waits, sink_waits, feeder_waits;
	int err; /* the sink's first error: bytes after it are dropped, not handed to the sink */
	int stop;
	int counted; /* holds one of the per-core slots (pipes_running) */
	/* A feeder that must not wait (berth_body_pipe_offer) and was refused: woken once the
	 * ring has wake_need bytes free. */
	berth_body_pipe_cb wake;
	void *wake_arg;
	uint64_t wake_need;
};

static _Atomic long pipes_running;

/* One ring kept from the last pipe for the next: a fresh one costs a page fault per 4 KiB
 * used (and on a virtual machine often a host fault too) on every upload request. Rings are
 * mapped, not allocated: an unmapped one gives its pages back at once, and a short body only
 * ever touches the start of its ring. */
static void *_Atomic spare_ring;

static unsigned char *ring_get(void)
{
	void *r = atomic_exchange(&spare_ring, NULL);
	if (r == NULL) {
		r = mmap(NULL, BERTH_BODY_PIPE_RING, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r == MAP_FAILED)
			abort(); /* as everywhere in berth: allocation failure is not recoverable */
	}
	return r;
}

static void ring_put(unsigned char *r)
{
	void *none = NULL;
	if (!atomic_compare_exchange_strong(&spare_ring, &none, (void *)r))
		munmap(r, BERTH_BODY_PIPE_RING);
}

static unsigned char *ring_at(const struct berth_body_pipe *p, uint64_t offset)
{
	return p->ring + offset % p->size;
}

/* How much a thread at `from` takes this turn: what is there, up to the ring's end and STEP. */
static size_t span(const struct berth_body_pipe *p, uint64_t from)
{
	uint64_t n = p->in - from;
	uint64_t to_end = p->size - from % p->size;
	if (n > to_end)
		n = to_end;
	return n > STEP(p) ? STEP(p) : (size_t)n;
}

/* Sleeps until WAKE_AT bytes past *pos are in, or the pipe stops. Called locked. */
static void wait_for_more(struct berth_body_pipe *p, const uint64_t *pos, int *waits)
{
	while (p->in - *pos < WAKE_AT(p) && !p->stop) {
		*waits = 1;
		pthread_cond_wait(&p->more, &p->lock);
	}
	*waits = 0;
}

static uint64_t ring_free(const struct berth_body_pipe *p)
{
	return p->size - (p->in - (p->hashed < p->sunk ? p->hashed : p->sunk));
}

/* Called locked, after a thread moved on: wakes a refused feeder once there is room for it.
 * The wake runs unlocked (it may resume a connection); the feeder parked under the lock
 * before it was refused, so the wake always follows its park. */
static void wake_feeder(struct berth_body_pipe *p)
{
	if (p->feeder_waits)
		pthread_cond_signal(&p->room);
	if (!p->wake || ring_free(p) < p->wake_need)
		return;
	berth_body_pipe_cb wake = p->wake;
	void *arg = p->wake_arg;
	p->wake = NULL;
	pthread_mutex_unlock(&p->lock);
	wake(arg);
	pthread_mutex_lock(&p->lock);
}

static void *hash_loop(void *arg)
{
	struct berth_body_pipe *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		wait_for_more(p, &p->hashed, &p->hash_waits);
		if (p->in == p->hashed)
			break; /* stopped, and everything given is hashed */
		size_t n = span(p, p->hashed);
		pthread_mutex_unlock(&p->lock);
		berth_hasher_update(p->hasher, ring_at(p, p->hashed), n);
		pthread_mutex_lock(&p->lock);
		p->hashed += n;
		wake_feeder(p);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void *sink_loop(void *arg)
{
	struct berth_body_pipe *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		wait_for_more(p, &p->sunk, &p->sink_waits);
		if (p->in == p->sunk)
			break; /* stopped, and everything given is handed over */
		uint64_t end = p->sunk + span(p, p->sunk);
		uint64_t cut = end & ~p->align_mask;
		if (cut > p->sunk)
			end = cut; /* only the last piece ends off the alignment */
		int failed = p->err != 0;
		pthread_mutex_unlock(&p->lock);
		int e = failed ? 0 : p->sink(p->sink_arg, ring_at(p, p->sunk), (size_t)(end - p->sunk));
		pthread_mutex_lock(&p->lock);
		if (e && !p->err)
			p->err = e;
		p->sunk = end;
		wake_feeder(p);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void stop_threads(struct berth_body_pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
}

static void free_pipe(struct berth_body_pipe *p)
{
	pthread_cond_destroy(&p->room);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->lock);
	ring_put(p->ring);
	if (p->counted)
		atomic_fetch_sub(&pipes_running, 1);
	free(p);
}

static int start(struct berth_body_pipe **out, struct berth_hasher *h, berth_body_sink sink,
		 void *sink_arg, uint64_t offset, size_t align, int counted, uint64_t size)
{
	struct berth_body_pipe *p = berth_calloc(1, sizeof(*p));
	p->counted = counted;
	p->ring = ring_get();
	p->size = size;
	p->hasher = h;
	p->sink = sink;
	p->sink_arg = sink_arg;
	p->align_mask = align - 1;
	p->in = p->hashed = p->sunk = offset;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	pthread_cond_init(&p->room, NULL);
	if (pthread_create(&p->hash_thread, NULL, hash_loop, p) != 0) {
		free_pipe(p);
		return BERTH_ERROR;
	}
	if (pthread_create(&p->sink_thread, NULL, sink_loop, p) != 0) {
		stop_threads(p);
		pthread_join(p->hash_thread, NULL);
		free_pipe(p);
		return BERTH_ERROR;
	}
	*out = p;
	return 0;
}

int berth_body_pipe_start(struct berth_body_pipe **out, struct berth_hasher *h,
			  berth_body_sink sink, void *sink_arg, uint64_t offset, size_t align)
{
	if (atomic_fetch_add(&pipes_running, 1) >= berth_online_cpus()) {
		atomic_fetch_sub(&pipes_running, 1);
		return BERTH_EBUSY;
	}
	return start(out, h, sink, sink_arg, offset, align, 1, BERTH_BODY_PIPE_RING);
}

int berth_body_pipe_start_waiting(struct berth_body_pipe **out, struct berth_hasher *h,
				  berth_body_sink sink, void *sink_arg, uint64_t offset, size_t align)
{
	return start(out, h, sink, sink_arg, offset, align, 0, BERTH_BODY_PIPE_RING_WAITING);
}

int berth_body_pipe_offer(struct berth_body_pipe *p, const void *buf, size_t n,
			  berth_body_pipe_cb park, berth_body_pipe_cb wake, void *arg)
{
	pthread_mutex_lock(&p->lock);
	if (!p->err && n <= BERTH_BODY_PIPE_OFFER_MAX && ring_free(p) < n) {
		p->wake = wake;
		p->wake_arg = arg;
		/* Room for a quarter of the ring before the feeder comes back: not once per piece. */
		p->wake_need = n > p->size / 4 ? n : p->size / 4;
		park(arg);
		pthread_mutex_unlock(&p->lock);
		return BERTH_EBUSY;
	}
	pthread_mutex_unlock(&p->lock);
	/* Room for all n now (only the feeder adds bytes): this does not wait. */
	return berth_body_pipe_write(p, buf, n);
}

int berth_body_pipe_write(struct berth_body_pipe *p, const void *buf, size_t n)
{
	const unsigned char *src = buf;
	pthread_mutex_lock(&p->lock);
	while (n > 0 && !p->err) {
		uint64_t used;
		while ((used = p->in - (p->hashed < p->sunk ? p->hashed : p->sunk)) == p->size) {
			p->feeder_waits = 1;
			pthread_cond_wait(&p->room, &p->lock);
		}
		p->feeder_waits = 0;
		size_t at = (size_t)(p->in % p->size);
		size_t k = (size_t)(p->size - used);
		if (k > p->size - at)
			k = (size_t)(p->size - at);
		if (k > n)
			k = n;
		/* The threads only read [min(hashed, sunk), in): this stretch is ours while unlocked. */
		pthread_mutex_unlock(&p->lock);
		memcpy(p->ring + at, src, k);
		pthread_mutex_lock(&p->lock);
		p->in += k;
		src += k;
		n -= k;
		if ((p->hash_waits && p->in - p->hashed >= WAKE_AT(p)) ||
		    (p->sink_waits && p->in - p->sunk >= WAKE_AT(p)))
			pthread_cond_broadcast(&p->more);
	}
	int e = p->err;
	pthread_mutex_unlock(&p->lock);
	return e;
}

int berth_body_pipe_finish(struct berth_body_pipe *p, struct berth_hasher **h)
{
	stop_threads(p);
	pthread_join(p->hash_thread, NULL);
	pthread_join(p->sink_thread, NULL);
	*h = p->hasher;
	int e = p->err;
	free_pipe(p);
	return e;
}

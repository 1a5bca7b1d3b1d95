/*
 * The body pipe: what it digests on its thread equals hashing the same bytes inline, and its
 * sink receives exactly the bytes given, in order, whatever the piece sizes (pieces larger
 * than the ring, pieces that wrap around it); the sink's pieces start and end on the alignment
 * (but for the first and the last), at addresses as aligned as their offsets; a sink error
 * stops the sink and comes back from write and finish; the hasher's state carries on after
 * finish; no more pipes run than there are cores. A waiting pipe (for a network sink) starts
 * whatever the slots, and offer never waits: a full ring parks the feeder, which is woken once,
 * from the pipe, when there is room again.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/bodypipe.h"
#include "core/digest.h"
#include "core/err.h"

#define ALIGN 4096u

static unsigned char *random_bytes(size_t n, unsigned seed)
{
	unsigned char *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	return b;
}

/* A sink that keeps what it is given and checks the pieces' alignment. */
struct record {
	unsigned char *got;
	uint64_t start, offset; /* object offsets: where the pipe began / the next byte goes */
	size_t calls, fail_at_call;
	size_t unaligned_starts; /* pieces after the first that start off the alignment */
	int ended_off;           /* the last piece so far ended off the alignment */
	size_t unaligned_ends;   /* pieces that ended off it and were not the last */
	size_t misplaced;        /* pieces whose address is not aligned as their offset */
	size_t after_error;      /* calls after the failing one */
};

static int record_sink(void *arg, const void *buf, size_t n)
{
	struct record *r = arg;
	if (r->fail_at_call && r->calls >= r->fail_at_call)
		r->after_error++;
	r->calls++;
	if (r->calls == r->fail_at_call)
		return BERTH_ENOSPC;
	if (r->calls > 1 && r->offset % ALIGN != 0)
		r->unaligned_starts++;
	if (r->ended_off)
		r->unaligned_ends++;
	r->ended_off = (r->offset + n) % ALIGN != 0;
	if ((uintptr_t)buf % ALIGN != r->offset % ALIGN)
		r->misplaced++;
	memcpy(r->got + (r->offset - r->start), buf, n);
	r->offset += n;
	return 0;
}

/* Feeds n bytes through a pipe starting at object offset start, in pieces of the given sizes
 * (cycled); returns the hasher. */
static struct berth_hasher *through_pipe(struct record *rec, const unsigned char *b, size_t n,
					 uint64_t start, const size_t *pieces, size_t npieces)
{
	struct berth_hasher *h = NULL;
	struct berth_body_pipe *p = NULL;
	memset(rec, 0, sizeof(*rec));
	rec->got = malloc(n ? n : 1);
	rec->start = rec->offset = start;
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_body_pipe_start(&p, h, record_sink, rec, start, ALIGN), 0);
	for (size_t off = 0, i = 0; off < n; i++) {
		size_t k = pieces[i % npieces];
		if (k > n - off)
			k = n - off;
		assert_int_equal(berth_body_pipe_write(p, b + off, k), 0);
		off += k;
	}
	assert_int_equal(berth_body_pipe_finish(p, &h), 0);
	return h;
}

static void test_same_bytes_and_digest_as_inline(void **state)
{
	(void)state;
	const size_t n = 3 * BERTH_BODY_PIPE_RING + 12345;
	unsigned char *b = random_bytes(n, 7);
	char want[BERTH_DIGEST_STR_MAX], got[BERTH_DIGEST_STR_MAX];
	berth_digest_bytes(BERTH_ALG_SHA256, b, n, want);
	static const size_t small[] = { 1, 63, 4096, 65537, 131072 };
	static const size_t big[] = { BERTH_BODY_PIPE_RING + 1, 2 * BERTH_BODY_PIPE_RING };
	static const size_t odd[] = { BERTH_BODY_PIPE_RING - 1, 2 };
	const size_t *sets[] = { small, big, odd };
	const size_t lens[] = { 5, 2, 2 };
	const uint64_t starts[] = { 0, 65536 + 5, (5u << 20) - 1 };
	for (size_t s = 0; s < 3; s++) {
		struct record rec;
		struct berth_hasher *h = through_pipe(&rec, b, n, starts[s], sets[s], lens[s]);
		assert_int_equal(berth_hasher_len(h), n);
		berth_hasher_digest(h, got);
		assert_string_equal(got, want);
		assert_int_equal(rec.offset - rec.start, n);
		assert_memory_equal(rec.got, b, n);
		assert_int_equal(rec.unaligned_starts, 0);
		assert_int_equal(rec.unaligned_ends, 0);
		assert_int_equal(rec.misplaced, 0);
		berth_hasher_free(h);
		free(rec.got);
	}
	free(b);
}

static void test_sink_error_stops_the_sink(void **state)
{
	(void)state;
	const size_t n = 4 * BERTH_BODY_PIPE_RING;
	unsigned char *b = random_bytes(n, 3);
	struct record rec = { .got = malloc(n), .fail_at_call = 3 };
	struct berth_hasher *h = NULL;
	struct berth_body_pipe *p = NULL;
	int rc = 0;
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_body_pipe_start(&p, h, record_sink, &rec, 0, ALIGN), 0);
	for (size_t off = 0; off < n && rc == 0; off += 65536)
		rc = berth_body_pipe_write(p, b + off, 65536);
	/* Reported by a later write, or else by finish. */
	assert_true(rc == 0 || rc == BERTH_ENOSPC);
	assert_int_equal(berth_body_pipe_finish(p, &h), BERTH_ENOSPC);
	assert_int_equal(rec.calls, 3);
	assert_int_equal(rec.after_error, 0);
	assert_memory_equal(rec.got, b, (size_t)rec.offset); /* what it took is a prefix */
	berth_hasher_free(h);
	free(rec.got);
	free(b);
}

static void test_empty_and_continued(void **state)
{
	(void)state;
	struct berth_hasher *h = NULL;
	struct berth_body_pipe *p = NULL;
	struct record rec = { 0 };
	char want[BERTH_DIGEST_STR_MAX], got[BERTH_DIGEST_STR_MAX];
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_body_pipe_start(&p, h, record_sink, &rec, 0, ALIGN), 0);
	assert_int_equal(berth_body_pipe_finish(p, &h), 0); /* nothing given */
	assert_int_equal(berth_hasher_len(h), 0);
	assert_int_equal(rec.calls, 0);
	/* Inline, then piped, then inline again: one stream. */
	unsigned char *b = random_bytes(3 << 20, 9);
	rec.got = malloc(3 << 20);
	rec.start = rec.offset = 1000;
	berth_hasher_update(h, b, 1000);
	assert_int_equal(berth_body_pipe_start(&p, h, record_sink, &rec, 1000, ALIGN), 0);
	assert_int_equal(berth_body_pipe_write(p, b + 1000, (2 << 20) - 1000), 0);
	assert_int_equal(berth_body_pipe_finish(p, &h), 0);
	assert_int_equal(rec.offset, 2 << 20);
	assert_memory_equal(rec.got, b + 1000, (2 << 20) - 1000);
	berth_hasher_update(h, b + (2 << 20), 1 << 20);
	berth_hasher_digest(h, got);
	berth_digest_bytes(BERTH_ALG_SHA256, b, 3 << 20, want);
	assert_string_equal(got, want);
	berth_hasher_free(h);
	free(rec.got);
	free(b);
}

static void test_at_most_one_per_core(void **state)
{
	(void)state;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct berth_body_pipe **pipes = calloc((size_t)cores + 1, sizeof(*pipes));
	struct record rec = { 0 };
	struct berth_hasher *extra = NULL, *h = NULL;
	for (long i = 0; i < cores; i++) {
		assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
		assert_int_equal(berth_body_pipe_start(&pipes[i], h, record_sink, &rec, 0, ALIGN), 0);
	}
	assert_int_equal(berth_hasher_new(&extra, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_body_pipe_start(&pipes[cores], extra, record_sink, &rec, 0, ALIGN),
			 BERTH_EBUSY);
	berth_hasher_update(extra, "abc", 3); /* still the caller's */
	for (long i = 0; i < cores; i++) {
		assert_int_equal(berth_body_pipe_finish(pipes[i], &h), 0);
		berth_hasher_free(h);
	}
	struct berth_body_pipe *p = NULL;
	assert_int_equal(berth_body_pipe_start(&p, extra, record_sink, &rec, 0, ALIGN), 0); /* a slot came back */
	assert_int_equal(berth_body_pipe_finish(p, &extra), 0);
	assert_int_equal(berth_hasher_len(extra), 3);
	berth_hasher_free(extra);
	free(pipes);
}

/* A sink held shut until the test opens it: the ring fills meanwhile. */
struct gated {
	struct record rec;
	pthread_mutex_t lock;
	pthread_cond_t opened;
	int open;
};

static int gated_sink(void *arg, const void *buf, size_t n)
{
	struct gated *g = arg;
	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->opened, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return record_sink(&g->rec, buf, n);
}

static _Atomic int parks, wakes;

static void count_park(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parks, 1);
}

static void count_wake(void *arg)
{
	(void)arg;
	atomic_fetch_add(&wakes, 1);
}

static void test_offer_parks_and_wakes(void **state)
{
	(void)state;
	const size_t piece = 256u << 10, n = 3 * BERTH_BODY_PIPE_RING;
	unsigned char *b = random_bytes(n, 7);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct berth_body_pipe **busy = calloc((size_t)cores, sizeof(*busy));
	struct berth_hasher *h = NULL;
	struct record none = { 0 };
	for (long i = 0; i < cores; i++) { /* every slot taken: a waiting pipe starts all the same */
		assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
		assert_int_equal(berth_body_pipe_start(&busy[i], h, record_sink, &none, 0, ALIGN), 0);
	}
	struct gated g = { .rec = { .got = malloc(n) } };
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.opened, NULL);
	struct berth_body_pipe *p = NULL;
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	assert_int_equal(berth_body_pipe_start_waiting(&p, h, gated_sink, &g, 0, ALIGN), 0);
	size_t off = 0;
	int rc;
	while ((rc = berth_body_pipe_offer(p, b + off, piece, count_park, count_wake, NULL)) == 0)
		off += piece;
	assert_int_equal(rc, BERTH_EBUSY);
	assert_int_equal(off, BERTH_BODY_PIPE_RING_WAITING); /* the ring was full: nothing taken past it */
	assert_int_equal(atomic_load(&parks), 1);
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&wakes), 0); /* no room came back */
	pthread_mutex_lock(&g.lock);
	g.open = 1;
	pthread_cond_broadcast(&g.opened);
	pthread_mutex_unlock(&g.lock);
	/* A parked feeder offers again only once woken. */
	for (int i = 0; i < 5000 && atomic_load(&wakes) == 0; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&wakes), 1);
	while (off < n) {
		int woken = atomic_load(&wakes);
		if (berth_body_pipe_offer(p, b + off, piece, count_park, count_wake, NULL) == 0) {
			off += piece;
			continue;
		}
		for (int i = 0; i < 5000 && atomic_load(&wakes) == woken; i++)
			usleep(1000);
		assert_int_equal(atomic_load(&wakes), woken + 1);
	}
	assert_int_equal(atomic_load(&parks), atomic_load(&wakes)); /* each park woken once */
	assert_int_equal(berth_body_pipe_finish(p, &h), 0);
	assert_int_equal(g.rec.offset, n);
	assert_memory_equal(g.rec.got, b, n);
	char got[BERTH_DIGEST_STR_MAX], want[BERTH_DIGEST_STR_MAX];
	berth_hasher_digest(h, got);
	berth_hasher_free(h);
	assert_int_equal(berth_hasher_new(&h, BERTH_ALG_SHA256), 0);
	berth_hasher_update(h, b, n);
	berth_hasher_digest(h, want);
	assert_string_equal(got, want);
	berth_hasher_free(h);
	for (long i = 0; i < cores; i++) {
		assert_int_equal(berth_body_pipe_finish(busy[i], &h), 0);
		berth_hasher_free(h);
	}
	pthread_cond_destroy(&g.opened);
	pthread_mutex_destroy(&g.lock);
	free(g.rec.got);
	free(busy);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_bytes_and_digest_as_inline),
		cmocka_unit_test(test_sink_error_stops_the_sink),
		cmocka_unit_test(test_empty_and_continued),
		cmocka_unit_test(test_at_most_one_per_core),
		cmocka_unit_test(test_offer_parks_and_wakes),
	};
	return cmocka_run_group_tests_name("body pipe", tests, NULL, NULL);
}

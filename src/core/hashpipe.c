#include "core/hashpipe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"

/* Hashed per turn of the thread, so that room in the ring comes back in steps. */
#define HASH_STEP (64u << 10)

struct berth_hash_pipe {
	struct berth_hasher *hasher;
	unsigned char *ring;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the ring changed: bytes came in, room came back, or stop */
	uint64_t in, out;    /* bytes ever copied in / ever hashed; the ring holds [out, in) */
	int stop;
};

static _Atomic long pipes_running;

static void *hash_loop(void *arg)
{
	struct berth_hash_pipe *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->in == p->out && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->in == p->out)
			break; /* stopped, and everything given is hashed */
		size_t at = (size_t)(p->out % BERTH_HASH_PIPE_RING);
		size_t n = (size_t)(p->in - p->out);
		if (n > BERTH_HASH_PIPE_RING - at)
			n = BERTH_HASH_PIPE_RING - at;
		if (n > HASH_STEP)
			n = HASH_STEP;
		/* The producer only writes outside [out, in): this stretch is ours while unlocked. */
		pthread_mutex_unlock(&p->lock);
		berth_hasher_update(p->hasher, p->ring + at, n);
		pthread_mutex_lock(&p->lock);
		p->out += n;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int berth_hash_pipe_start(struct berth_hash_pipe **out, struct berth_hasher *h)
{
	if (atomic_fetch_add(&pipes_running, 1) >= berth_online_cpus()) {
		atomic_fetch_sub(&pipes_running, 1);
		return BERTH_EBUSY;
	}
	struct berth_hash_pipe *p = berth_calloc(1, sizeof(*p));
	p->hasher = h;
	p->ring = berth_malloc(BERTH_HASH_PIPE_RING);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, hash_loop, p) != 0) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p->ring);
		free(p);
		atomic_fetch_sub(&pipes_running, 1);
		return BERTH_ERROR;
	}
	*out = p;
	return 0;
}

void berth_hash_pipe_update(struct berth_hash_pipe *p, const void *buf, size_t n)
{
	const unsigned char *src = buf;
	pthread_mutex_lock(&p->lock);
	while (n > 0) {
		while (p->in - p->out == BERTH_HASH_PIPE_RING)
			pthread_cond_wait(&p->cond, &p->lock);
		size_t at = (size_t)(p->in % BERTH_HASH_PIPE_RING);
		size_t room = BERTH_HASH_PIPE_RING - (size_t)(p->in - p->out);
		size_t k = n;
		if (k > room)
			k = room;
		if (k > BERTH_HASH_PIPE_RING - at)
			k = BERTH_HASH_PIPE_RING - at;
		/* The hasher only reads [out, in): this stretch is ours while unlocked. */
		pthread_mutex_unlock(&p->lock);
		memcpy(p->ring + at, src, k);
		pthread_mutex_lock(&p->lock);
		p->in += k;
		src += k;
		n -= k;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

struct berth_hasher *berth_hash_pipe_finish(struct berth_hash_pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	struct berth_hasher *h = p->hasher;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->ring);
	free(p);
	atomic_fetch_sub(&pipes_running, 1);
	return h;
}

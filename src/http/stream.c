/*
 * Response bodies from a source that may wait on a network (berth_resp_stream, http/request.h).
 * A worker fills a bounded ring from the source; libmicrohttpd's content reader takes what is
 * there and, when nothing is, suspends the connection (returning 0, as libmicrohttpd's docs
 * ask) until the worker has more. So a polling thread never waits for the source, and memory
 * per response is the ring, whatever the body's size.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/workpool.h"
#include "http/request.h"
#include "http/server_int.h"

#define RING_SIZE (1u << 20)  /* bytes read ahead of the client */
#define FILL_CHUNK (256u << 10) /* bytes the worker asks the source for at once */

struct stream {
	pthread_mutex_t lock;
	struct berth_server *server;
	struct MHD_Connection *conn;
	berth_stream_read_cb read;
	berth_stream_close_cb close;
	void *src;
	char *ring;
	size_t head, len;  /* bytes [head, head + len) mod RING_SIZE are ready */
	int filling;       /* a worker job owns the source */
	int waiting;       /* the connection is suspended until there are bytes */
	int eof, failed;
	int refs;          /* the response's, and the running fill job's */
};

static void release(struct stream *s)
{
	pthread_mutex_lock(&s->lock);
	int left = --s->refs;
	pthread_mutex_unlock(&s->lock);
	if (left)
		return;
	s->close(s->src);
	pthread_mutex_destroy(&s->lock);
	free(s->ring);
	free(s);
}

/* Under the lock: wakes the connection waiting for bytes (after the lock is let go). */
static int take_waiter(struct stream *s)
{
	int w = s->waiting;
	s->waiting = 0;
	return w;
}

/* On a worker: reads from the source while the ring has room for a chunk, waking the
 * connection whenever it waits for what arrived. */
static void fill(void *arg)
{
	struct stream *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		if (s->refs == 1 || s->eof || s->failed || RING_SIZE - s->len < FILL_CHUNK) {
			s->filling = 0;
			int wake = take_waiter(s);
			pthread_mutex_unlock(&s->lock);
			if (wake)
				berth_server__resume_parked(s->server, s->conn);
			break;
		}
		/* Straight into the free part of the ring, up to its end: only this job writes
		 * there, and the connection reads only the [head, head + len) it is told of. */
		size_t tail = (s->head + s->len) % RING_SIZE, room = RING_SIZE - s->len;
		if (room > RING_SIZE - tail)
			room = RING_SIZE - tail;
		pthread_mutex_unlock(&s->lock);
		ssize_t n = s->read(s->src, s->ring + tail, room < FILL_CHUNK ? room : FILL_CHUNK);
		pthread_mutex_lock(&s->lock);
		if (n <= 0) {
			s->eof = n == 0;
			s->failed = n < 0;
		} else {
			s->len += (size_t)n;
		}
		int wake = take_waiter(s);
		pthread_mutex_unlock(&s->lock);
		if (wake)
			berth_server__resume_parked(s->server, s->conn);
	}
	release(s);
}

/* Under the lock: starts a fill job unless one runs or there is nothing more to fetch. */
static void start_fill(struct stream *s)
{
	if (s->filling || s->eof || s->failed || RING_SIZE - s->len < FILL_CHUNK)
		return;
	s->filling = 1;
	s->refs++;
	berth_workpool_submit(berth_server__workers(s->server), fill, s);
}

/* libmicrohttpd's content reader, on a polling thread: never waits for the source. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	(void)pos;
	pthread_mutex_lock(&s->lock);
	if (s->len == 0) {
		ssize_t end = s->failed ? MHD_CONTENT_READER_END_WITH_ERROR
			      : s->eof  ? MHD_CONTENT_READER_END_OF_STREAM
					: 0;
		if (end == 0) {
			/* Only here (or in the access handler) may a connection be suspended; the
			 * worker resumes it once it has taken the lock after this. */
			s->waiting = 1;
			start_fill(s);
			berth_server__park(s->server, s->conn);
		}
		pthread_mutex_unlock(&s->lock);
		return end;
	}
	size_t n = s->len < max ? s->len : max;
	size_t first = RING_SIZE - s->head < n ? RING_SIZE - s->head : n;
	memcpy(buf, s->ring + s->head, first);
	memcpy(buf + first, s->ring, n - first);
	s->head = (s->head + n) % RING_SIZE;
	s->len -= n;
	start_fill(s);
	pthread_mutex_unlock(&s->lock);
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	release(cls);
}

/* Without workers the source is read on the polling thread, as it is quick (a local one). */
static ssize_t read_inline(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	(void)pos;
	ssize_t n = s->read(s->src, buf, max);
	return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

struct MHD_Response *berth_resp_stream(struct berth_request *req, uint64_t len,
				       berth_stream_read_cb read, berth_stream_close_cb close, void *src)
{
	struct MHD_Response *resp;
	int offload = berth_server__workers(req->server) != NULL;
	struct stream *s = berth_calloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->server = req->server;
	s->conn = req->conn;
	s->read = read;
	s->close = close;
	s->src = src;
	s->refs = 1;
	if (!offload) {
		resp = MHD_create_response_from_callback(len, 64 * 1024, read_inline, s, stream_free);
		if (!resp)
			release(s);
		return resp;
	}
	s->ring = berth_malloc(RING_SIZE);
	resp = MHD_create_response_from_callback(len, 64 * 1024, stream_read, s, stream_free);
	if (!resp) {
		release(s);
		return NULL;
	}
	pthread_mutex_lock(&s->lock);
	start_fill(s); /* read ahead while the headers go out */
	pthread_mutex_unlock(&s->lock);
	return resp;
}

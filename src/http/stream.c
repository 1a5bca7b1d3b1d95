/*
 * Response bodies from a source that may wait on a network (berth_resp_stream, http/request.h).
 * libmicrohttpd's content reader hands out its response's block buffer, the same one on every
 * call, and sends what was put there before asking again. When the block is empty the reader
 * parks the connection and a worker reads the source straight into that block (nobody else
 * touches it while the connection is parked), then resumes the connection, and the next call
 * hands the bytes over without copying them. So a body costs one copy in user space (the
 * source's own, from curl's buffer for S3) where a ring between worker and connection cost
 * two; a polling thread never waits for the source; memory per response is one block,
 * whatever the body's size. The read-ahead a ring gave comes from the kernel's socket buffers:
 * the S3 server keeps sending into the S3 connection's while the block goes out to the client.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"
#include "http/request.h"
#include "http/server_int.h"

#define SEND_BLOCK (1u << 20)   /* libmicrohttpd's block: bytes per fill and hand-over */
/* A fill stops once less than this is left in the block (the S3 reader takes one curl buffer,
 * 512 KiB, per piece, and pauses its transfer rather than receive a piece with less room). */
#define FILL_MIN (512u << 10)

struct stream {
	pthread_mutex_t lock;
	struct berth_server *server;
	struct MHD_Connection *conn;
	berth_stream_read_cb read;
	berth_stream_close_cb close;
	void *src;
	char *block;       /* libmicrohttpd's buffer, filled by the worker while the connection is parked */
	size_t want;       /* bytes the running fill may put there */
	size_t ready;      /* bytes filled and not handed over yet */
	uint64_t len;      /* the body's length */
	int eof, failed;
	int refs;          /* the response's, and the running fill job's (it owns the source and
			    * the block meanwhile) */
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
	free(s);
}

/* On a worker, the connection parked: reads from the source into the block until it is
 * nearly full (or the body ends), then resumes the connection. */
static void fill(void *arg)
{
	struct stream *s = arg;
	size_t got = 0;
	ssize_t n = 1;
	while (got < s->want && (got == 0 || s->want - got >= FILL_MIN)) {
		n = s->read(s->src, s->block + got, s->want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	pthread_mutex_lock(&s->lock);
	s->ready = got;
	s->eof = n == 0;
	s->failed = n < 0;
	pthread_mutex_unlock(&s->lock);
	berth_server__resume_parked(s->server, s->conn);
	release(s);
}

/* libmicrohttpd's content reader, on a polling thread: never waits for the source. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	ssize_t out = 0;
	uint64_t left = pos < s->len ? s->len - pos : 0; /* pos: bytes handed over so far */
	pthread_mutex_lock(&s->lock);
	if (s->ready) {
		/* The bytes are in buf already, if buf is the block the worker was given. */
		if (buf == s->block && s->ready <= max) {
			out = (ssize_t)s->ready;
		} else {
			berth_error("stream: the response's block moved (%zu bytes ready, %zu asked)", s->ready, max);
			out = MHD_CONTENT_READER_END_WITH_ERROR;
		}
		s->ready = 0;
	} else if (s->failed) {
		out = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (s->eof || left == 0) {
		out = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		/* Only here (or in the access handler) may a connection be suspended; the worker
		 * resumes it once it has taken the lock after this. */
		s->block = buf;
		s->want = max < left ? max : (size_t)left;
		s->refs++;
		berth_server__park(s->server, s->conn);
		berth_workpool_submit(berth_server__workers(s->server), fill, s);
	}
	pthread_mutex_unlock(&s->lock);
	return out;
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

/* The send block of a body of len bytes: at most cap, a small body's own size (libmicrohttpd
 * allocates the block with the response), never 0 (which it refuses). */
static size_t block_for(uint64_t len, size_t cap)
{
	return len < cap ? (size_t)(len ? len : 1) : cap;
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
	s->len = len;
	resp = MHD_create_response_from_callback(len, block_for(len, SEND_BLOCK), stream_read, s, stream_free);
	if (!resp)
		release(s);
	return resp;
}

/*
 * File bodies for a client on loopback or over TLS (berth_resp_fd): pread into the response's
 * buffer, then send, instead of libmicrohttpd's sendfile. Over loopback the segments sendfile
 * builds reach the client's socket as they are, each a string of references to 4 KiB
 * page-cache pages, and the client's kernel pays for that when it copies them out and
 * acknowledges them (on loopback the receive window stays small, so the sender's queue goes
 * out from the client's acknowledgements, on the client's CPU time). Segments built by send()
 * hold a few large page fragments, cheaper to receive; berth pays one copy per byte, less than
 * the client saves, and a client that is the bottleneck (skopeo pulling 4 layers at once,
 * writing and hashing them) gets faster. bench/README.md ("Blob bodies: not sendfile") has the
 * measurements. Over a network interface none of that holds: sendfile. libmicrohttpd's own
 * fallback for descriptors, under TLS, read 4 KiB at a time.
 */
#define FILE_BLOCK (128u << 10) /* as libmicrohttpd's sendfile chunk; 256 KiB gained nothing */

struct file_body {
	int fd;
	uint64_t offset; /* of the body's first byte in the file */
};

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct file_body *f = cls;
	ssize_t n;
	do
		n = pread(f->fd, buf, max, (off_t)(f->offset + pos));
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	/* libmicrohttpd asks only for bytes within the length: the file is shorter than it was, or
	 * unreadable; the connection is closed, the answer cut short */
	if (n == 0)
		berth_error("blob file ends at %" PRIu64 ", short of its length: answer cut short",
			    f->offset + pos);
	else
		berth_error("cannot read blob file at %" PRIu64 ": %s: answer cut short", f->offset + pos,
			    strerror(errno));
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void file_free(void *cls)
{
	struct file_body *f = cls;
	close(f->fd);
	free(f);
}

struct MHD_Response *berth_resp_file(int fd, uint64_t offset, uint64_t len)
{
	struct file_body *f = berth_calloc(1, sizeof(*f));
	f->fd = fd;
	f->offset = offset;
	struct MHD_Response *resp =
		MHD_create_response_from_callback(len, block_for(len, FILE_BLOCK), file_read, f, file_free);
	if (!resp)
		file_free(f);
	return resp;
}

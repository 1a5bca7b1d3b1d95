/*
 * One HTTP request as a handler sees it: method, target, headers and query arguments, a body
 * sink, the ways to answer, and the handler's own per-request data. Lives from the first byte
 * of the request until its response is sent (freed by the server). http knows nothing of what
 * the handler serves: main.c registers the handler (struct berth_http_handler, http/server.h).
 */
#ifndef BERTH_HTTP_REQUEST_H
#define BERTH_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <microhttpd.h>

struct berth_server;
struct berth_query;
struct berth_request;

/* Body sink: called for each piece of the request body. 0 to go on; anything else (a BERTH_E*
 * code) refuses the rest of the body, which is then read and dropped, and on_complete still runs
 * at its end. */
typedef int (*berth_body_cb)(struct berth_request *req, const char *data, size_t n);
/* Called once the whole body is in (or at once when there is none); must answer. */
typedef void (*berth_complete_cb)(struct berth_request *req);
typedef void (*berth_cleanup_cb)(struct berth_request *req);
/* Starts the thread that answers a request handed on (berth_req_hand_off). */
typedef void (*berth_hand_off_cb)(void *arg);

/*
 * Where a request stands between libmicrohttpd's calls of the access handler (one state instead
 * of a flag per fact: every call looks at it once).
 */
enum berth_req_state {
	BERTH_REQ_NEW = 0,    /* request line in; headers not looked at yet */
	BERTH_REQ_BAD_TARGET, /* the request line's target holds a space: refused on the first call */
	BERTH_REQ_DEFERRED,   /* no body announced: the handler runs on the last call, where an
			       * answer keeps the connection; stray body bytes are dropped */
	BERTH_REQ_READING,    /* the handler ran: body pieces go to on_body */
	BERTH_REQ_DRAINING,   /* on_body refused a piece: the rest is dropped, on_complete answers */
	BERTH_REQ_PENDING,    /* an answer libmicrohttpd refused to queue yet (it does in the call
			       * after a "100 Continue"): queued on the next call that allows it */
	BERTH_REQ_ANSWERED,   /* an answer is queued; the rest of any body is dropped */
	BERTH_REQ_SUSPENDED,  /* parked by berth_req_suspend: on_resume answers once resumed */
};

struct berth_request {
	struct berth_server *server;
	struct MHD_Connection *conn;
	const char *method;
	enum berth_req_state state;

	/* Set by a handler that reads a body. */
	berth_body_cb on_body;
	berth_complete_cb on_complete;
	berth_cleanup_cb cleanup;
	void *body_state; /* the body callbacks' own, released by cleanup */
	berth_complete_cb on_resume; /* set while suspended (berth_req_suspend) */
	berth_complete_cb offload_work; /* berth_req_offload's work, while it waits or runs */
	enum berth_req_state offload_state; /* the state the work runs in, then the one it left */
	int offloaded;      /* the work runs on a worker: answers wait in pending until resumed */
	int offload_at_headers; /* offloaded from the first call (a body follows) */
	berth_hand_off_cb hand_off; /* berth_req_hand_off's start, run once the worker let go */
	void *hand_off_arg;
	int in_first_call;  /* the handler runs in the call where the headers came in */
	int body_held;      /* on_body took none of this piece (berth_req_hold_body) */
	int parked;         /* suspended, until the polling thread takes it back (only polling
			     * threads read or write it: a worker may be changing state meanwhile) */

	void *data;         /* the handler's per-request data (berth_http_handler.request_data bytes,
			     * zeroed), allocated with the request */
	unsigned route;     /* the handler's route index, for the metrics (0: none) */
	int close_after;    /* the answer closes the connection (the request cannot be delimited) */

	struct MHD_Response *pending; /* BERTH_REQ_PENDING's answer, its status and length */
	unsigned pending_status;
	uint64_t pending_len;

	/* Bookkeeping for the access log. */
	unsigned status;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t start_ns;
	const char *url_prefix; /* http.prefix without its trailing '/', "" when none: every URL
				 * berth hands out (Location, Link) starts with it */
	char id[32];
	char user[128]; /* authenticated user or token subject, for the access log */
	char path[512];
	struct berth_query *query; /* the query's arguments, owned; NULL when there is no '?' */
};

/* Header or query value, NULL if absent. Borrowed for the request's lifetime. */
const char *berth_req_header(struct berth_request *req, const char *name);
const char *berth_req_query(struct berth_request *req, const char *name);
int berth_req_is_head(const struct berth_request *req);
/* 1 once an answer is queued or waits to be. */
int berth_req_answered(const struct berth_request *req);

/*
 * Sends resp with status, adding the headers every answer carries. Takes ownership of resp.
 * body_len is for the access log. A second answer to the same request is dropped.
 */
void berth_req_send(struct berth_request *req, unsigned status, struct MHD_Response *resp,
		    uint64_t body_len);
/*
 * Slow work off the polling threads: parks the request (its connection is not polled) so that
 * another thread can do the work, then call berth_req_resume. on_resume then runs on a polling
 * thread and must answer. Call from a handler, for a request whose body is all in (a GET).
 * Whoever suspends must resume within a bounded time: the server's shutdown waits for it.
 */
void berth_req_suspend(struct berth_request *req, berth_complete_cb on_resume);
/* From any thread, once per suspend. The request must not be touched after this call. */
void berth_req_resume(struct berth_request *req);
/*
 * Runs work(req) on the server's storage workers (berth_server_options.workers) with the
 * request parked meanwhile, or at once on this thread when the server has none. work does
 * what a handler (or on_complete) does: answers with berth_req_send (queued once the request
 * is back on a polling thread), or, in a handler of a request with a body, installs the body
 * callbacks, which then run on the polling threads as usual. Call from a handler or from
 * on_complete, as its last act; at most once per call. A client that leaves meanwhile is only
 * noticed once work is done (its answer is then dropped).
 */
void berth_req_offload(struct berth_request *req, berth_complete_cb work);

/*
 * Hands a request on to a thread of another pool (the pull-through cache's, whose calls wait on
 * an upstream): from a handler, or from work under berth_req_offload. The request stays parked
 * (also after that work returns); start(arg) runs once the server has let go of the request (at
 * once on a polling thread; on a worker, after the work returned) and gives it to that thread,
 * which must then call berth_req_continue once, within a bounded time (the server's shutdown
 * waits for it).
 */
void berth_req_hand_off(struct berth_request *req, berth_hand_off_cb start, void *arg);
/*
 * From any thread, once per hand-off: answer(req) runs where storage work runs (on a storage
 * worker when the request was offloaded, else on its polling thread) and must answer, or hand
 * the request off again. The request must not be touched after this call.
 */
void berth_req_continue(struct berth_request *req, berth_complete_cb answer);

/*
 * A response body whose next bytes are not there yet (a streaming content reader, as the
 * pull-through cache's): pauses the connection until berth_req_resume_body, from any thread,
 * once per pause. Call from the content reader, which then returns 0. The server's shutdown
 * waits for the resume, as for berth_req_suspend.
 */
void berth_req_pause_body(struct berth_request *req);
void berth_req_resume_body(struct berth_request *req);

/*
 * From on_body: it took none of this piece and the connection is suspended (as by
 * berth_req_pause_body) until berth_req_resume_body, from any thread, once; on_body is then
 * handed the same bytes again. Flow control for a body whose sink is full.
 */
void berth_req_hold_body(struct berth_request *req);

/* A body source for berth_resp_stream: read gives up to n bytes (> 0), 0 at the end, or a
 * negative code; close releases the source. */
typedef ssize_t (*berth_stream_read_cb)(void *src, void *buf, size_t n);
typedef void (*berth_stream_close_cb)(void *src);
/*
 * A response whose len body bytes come from src, which may wait on a network: with storage
 * workers (berth_req_offload), the connection is suspended while a worker reads src straight
 * into the response's send block (1 MiB), so no polling thread waits on src and no byte is
 * copied twice; without, src is read on the polling thread. Takes src (closed once the response is done,
 * or at once on failure). NULL on failure.
 */
struct MHD_Response *berth_resp_stream(struct berth_request *req, uint64_t len,
				       berth_stream_read_cb read, berth_stream_close_cb close, void *src);
/*
 * The same body for req's client: copied through a buffer when the client is on this host
 * (loopback, or one of this host's addresses) or the connection is TLS, else sent with sendfile (zero-copy, and on
 * a network interface the client receives it as any other data). Takes fd likewise.
 */
struct MHD_Response *berth_resp_fd(struct berth_request *req, int fd, uint64_t offset, uint64_t len);
/* An empty-bodied response, for the caller to add headers to and send with berth_req_send. */
struct MHD_Response *berth_resp_empty(void);
/* A response over a copy of buf. */
struct MHD_Response *berth_resp_copy(const void *buf, size_t len);
/* A response that takes ownership of a heap buffer (freed with free()). */
struct MHD_Response *berth_resp_take(void *buf, size_t len);
/* A response over buf without a copy: buf must stay valid until release(cls) is called, once,
 * when the response is done (or at once when none can be made; NULL is then returned). */
struct MHD_Response *berth_resp_borrow(const void *buf, size_t len, void (*release)(void *cls), void *cls);

#endif

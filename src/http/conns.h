/*
 * The live connections of one HTTP server, tracked for what libmicrohttpd does not do itself:
 *
 *  - Past berth's connection limit a new client is refused at once (accepted, then closed,
 *    by the listener: http/listener.h). MHD's own limit, set higher, would instead stop
 *    accepting and leave clients waiting in the listen backlog until some idle connection
 *    timed out.
 *  - A request's line and headers must be complete within the header timeout: MHD's timeout
 *    is one of inactivity, which a client sending a byte a second never trips. The first
 *    request's deadline counts from its first byte (the listener holds a client until then,
 *    for at most the header timeout); a keep-alive connection's next request gets
 *    the idle timeout plus the header timeout from the end of the previous one. Request bodies
 *    and responses have no deadline (a slow but steady upload goes on); only the idle timeout
 *    applies to them.
 *
 *  - A client that closes its connection in the middle of a request is noticed within a second
 *    (MHD can miss such a close until the idle timeout; see show_closes in conns.c).
 *
 * A watchdog thread checks the deadlines once a second and shuts the late sockets down, so that
 * MHD itself sees the end of the connection and closes it.
 */
#ifndef BERTH_HTTP_CONNS_H
#define BERTH_HTTP_CONNS_H

#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <microhttpd.h>

struct berth_conns;

struct berth_conns_options {
	unsigned limit;          /* connections served at once */
	unsigned idle_timeout;   /* seconds a keep-alive connection waits for its next request; 0 = no limit */
	unsigned header_timeout; /* seconds for a request line and its headers; 0 = no limit */
};

/* 0, or BERTH_ERROR when the watchdog thread cannot start. */
int berth_conns_new(struct berth_conns **out, const struct berth_conns_options *opts);
/* Stops the watchdog and frees. Call after MHD_stop_daemon. Accepts NULL. */
void berth_conns_free(struct berth_conns *c);

/* A new client (the listener's): 1 when it is under the limit, and counted from now; 0 when
 * it must be refused (noted for the log and metrics). */
int berth_conns_admit(struct berth_conns *c);
/* Milliseconds a new client may take to send its first byte: the header timeout, or the idle
 * timeout if that is shorter or there is no header timeout; 0 = no limit. */
uint64_t berth_conns_first_byte_ms(const struct berth_conns *c);
/* An admitted client the listener closed or handed to MHD (which counts it again). */
void berth_conns_release(struct berth_conns *c);
/* A client cut for sending no request in time (the metric berth_http_header_timeouts_total). */
void berth_conns_count_header_timeout(void);
/* A client answered for speaking the other protocol (berth_http_wrong_protocol_total). */
void berth_conns_count_wrong_protocol(void);
/* MHD_OPTION_NOTIFY_CONNECTION; cls is the struct berth_conns. */
void berth_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			enum MHD_ConnectionNotificationCode code);

/* Connections open now. */
unsigned berth_conns_live(const struct berth_conns *c);
/* A request's line and headers are in (the access handler's first call). */
void berth_conns_headers_in(struct MHD_Connection *conn);
/* A request is over; the connection may wait for the next one. */
void berth_conns_request_done(const struct berth_conns *c, struct MHD_Connection *conn);

/* The connection metrics (open, refused, header timeouts, closes noticed, wrong protocols) on
 * GET /metrics. */
void berth_conns_metrics_register(void);

/* Descriptors a server with this connection limit and polling threads may need at once. */
rlim_t berth_conns_fds_needed(unsigned limit, unsigned threads);
/* The largest connection limit (at least 1) whose needs fit in fds descriptors. */
unsigned berth_conns_limit_for_fds(rlim_t fds, unsigned threads);
/*
 * Raises RLIMIT_NOFILE's soft limit toward the hard limit so that the connection limit fits.
 * Returns the limit to use: the one asked for, or a lower one (with a warning in the log) when
 * the hard limit is too low for it.
 */
unsigned berth_conns_fit_fd_limit(unsigned limit, unsigned threads);

#endif

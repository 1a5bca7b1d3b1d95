/*
 * The API server's listening socket, served by a thread of berth's own rather than by
 * libmicrohttpd, so that a client's first bytes are seen before MHD reads them:
 *
 *  - A client past the connection limit is refused at once (accepted, then closed).
 *  - Every other client is held until its first bytes arrive. A client speaking the other
 *    protocol (a TLS handshake to a plain-HTTP server, plain HTTP to a TLS server) gets a 400
 *    that says so; Distribution's Go server answers both with a 400 too (the first as a bare
 *    "400 Bad Request"). MHD 0.9.75 drops some of them without a word: a TLS client hello
 *    with a line feed in its random bytes, before the first space, is to MHD a request line
 *    without a space, which it closes on. Clients that try HTTPS first and fall back to plain
 *    HTTP only on an HTTP answer (docker manifest --insecure) then fail.
 *  - The rest are handed to MHD (MHD_add_connection), their bytes still unread.
 *  - A client that sends nothing is closed when berth_conns_first_byte_ms has passed.
 */
#ifndef BERTH_HTTP_LISTENER_H
#define BERTH_HTTP_LISTENER_H

#include <microhttpd.h>

#include "http/conns.h"

struct berth_listener;

struct berth_listener_options {
	int fd;                     /* a listening socket, non-blocking; the listener owns it */
	int tls;                    /* the daemon speaks TLS */
	struct MHD_Daemon *daemon;  /* borrowed: takes the clients (started with MHD_USE_ITC) */
	struct berth_conns *conns;  /* borrowed: the connection limit, counts and timeouts */
};

/* Starts the listening thread. 0, or BERTH_ERROR (the socket is then closed). */
int berth_listener_start(struct berth_listener **out, const struct berth_listener_options *opts);
/* Stops accepting: closes the listening socket and the clients not yet handed to MHD, joins,
 * frees. Accepts NULL. */
void berth_listener_stop(struct berth_listener *l);

#endif

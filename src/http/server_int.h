/* What other parts of http/ (stream.c) use of the server's internals. */
#ifndef BERTH_HTTP_SERVER_INT_H
#define BERTH_HTTP_SERVER_INT_H

#include <microhttpd.h>

struct berth_server;

/* The storage workers (NULL: none). */
struct berth_workpool *berth_server__workers(struct berth_server *s);
/* Suspends conn, counted as berth_req_suspend counts (shutdown waits for it to be resumed);
 * only from libmicrohttpd's callbacks (a content reader's, here). */
void berth_server__park(struct berth_server *s, struct MHD_Connection *conn);
/* Resumes what berth_server__park suspended, from any thread. */
void berth_server__resume_parked(struct berth_server *s, struct MHD_Connection *conn);

/*
 * A response whose len body bytes are those of the file fd from offset on: read into the
 * response's buffer (128 KiB, or len if less) and sent from there, not with sendfile (see
 * stream.c for why; berth_resp_fd chooses). Takes fd (closed once the response is done, or at
 * once on failure). NULL on failure.
 */
struct MHD_Response *berth_resp_file(int fd, uint64_t offset, uint64_t len);

struct sockaddr;
/* 1 when a connection from peer to local (NULL: unknown) stays on this host: a unix socket,
 * a loopback address, or the peer's address is the local one (a host's own address is reached
 * through the loopback device too). */
int berth_http__same_host(const struct sockaddr *peer, const struct sockaddr *local);

#endif

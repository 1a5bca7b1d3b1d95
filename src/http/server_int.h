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

#endif

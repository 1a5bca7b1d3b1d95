/*
 * GET /ui/api/token[?scope=SCOPE]: a bearer token for the web interface, with token auth. The
 * token server (auth.token.realm) is usually another origin that browsers may not call (no
 * CORS, and the page's Content-Security-Policy allows its own origin only), so berth asks it
 * for the page: GET <realm>?service=<auth.token.service>&scope=SCOPE with the browser's Basic
 * credentials, if any, and answers {"token": ..., "expires_in": N} (or 401 when the token
 * server refuses the credentials, 503 when it cannot be reached).
 *
 * The call runs on a thread of its own, never on an HTTP polling thread: the request is
 * suspended meanwhile (berth_req_suspend). 10 s timeout, one retry on a connection failure or
 * a 5xx (not after a timeout), at most UI_TOKEN_CALLS at once (429 beyond). Only the
 * configured realm is ever called.
 */
#ifndef BERTH_UI_TOKEN_H
#define BERTH_UI_TOKEN_H

#include "http/request.h"

#define UI_TOKEN_CALLS 16

/* Answers (now or once the token server has answered) GET /ui/api/token. */
void berth_ui_token(struct berth_request *req);

#endif

#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workpool.h"
#include "http/conns.h"
#include "http/health.h"
#include "http/listener.h"
#include "http/metrics.h"
#include "http/query.h"
#include "http/request.h"
#include "http/server_int.h"
#include "http/tls.h"

#define LISTEN_BACKLOG 1024

struct berth_server {
	struct MHD_Daemon *daemon;
	struct berth_listener *listener;
	struct berth_conns *conns;
	const struct berth_http_handler *handler;
	struct berth_health *health;
	int access_log;
	unsigned port;
	char *prefix;             /* "/path" without its trailing '/', or NULL */
	size_t prefix_len;
	char *url_base;           /* http.host + prefix, no trailing '/': absolute URLs; or NULL */
	int tls;                   /* HTTPS, certificates from http/tls.c's store */
	int client_certs;          /* clientcas given: client certificates are asked for */
	int client_auth;           /* enum berth_client_auth */
	const struct berth_http_header *headers;
	size_t n_headers;
	struct berth_workpool *workers; /* berth_req_offload's; NULL: work runs inline */
	char id_prefix[9];        /* request ids: <random per process>-<counter> */
	_Atomic uint64_t next_id;
	_Atomic long in_flight;    /* requests begun and not yet completed */
	_Atomic long suspended;    /* requests parked by berth_req_suspend, not yet resumed */
};

/* ---- request helpers (http/request.h) ---- */

const char *berth_req_header(struct berth_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *berth_req_query(struct berth_request *req, const char *name)
{
	return berth_query_get(req->query, name);
}

int berth_req_is_head(const struct berth_request *req)
{
	return strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The IPv4 address a (network order) holds, IPv4-mapped IPv6 unwrapped: 1, or 0 for none. */
static int ipv4_of(const struct sockaddr *a, uint32_t *out)
{
	if (a->sa_family == AF_INET) {
		*out = ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr;
		return 1;
	}
	const struct in6_addr *v6 = &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
	if (a->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(v6)) {
		memcpy(out, &v6->s6_addr[12], 4);
		return 1;
	}
	return 0;
}

int berth_http__same_host(const struct sockaddr *peer, const struct sockaddr *local)
{
	uint32_t p4, l4;
	if (peer->sa_family == AF_UNIX)
		return 1;
	if (ipv4_of(peer, &p4))
		return (ntohl(p4) >> 24) == 127 || (local && ipv4_of(local, &l4) && p4 == l4);
	if (peer->sa_family != AF_INET6)
		return 0;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) ||
	       (local && local->sa_family == AF_INET6 &&
		memcmp(a, &((const struct sockaddr_in6 *)(const void *)local)->sin6_addr, sizeof(*a)) == 0);
}

/* 1 when the client is on this host (it connected to loopback or to one of this host's own
 * addresses: either way through the loopback device) or the connection is TLS: a file body is
 * then copied into the response's buffer rather than sendfile'd (see berth_resp_file). */
static int copies_file_bodies(const struct berth_request *req)
{
	if (req->server->tls)
		return 1; /* libmicrohttpd's own fallback for a descriptor under TLS reads 4 KiB at a time */
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return 0;
	const struct sockaddr *peer = ci->client_addr;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	const union MHD_ConnectionInfo *fdi =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int have_local = fdi && getsockname(fdi->connect_fd, (struct sockaddr *)&local, &len) == 0;
	return berth_http__same_host(peer, have_local ? (const struct sockaddr *)&local : NULL);
}

struct MHD_Response *berth_resp_fd(struct berth_request *req, int fd, uint64_t offset, uint64_t len)
{
	if (copies_file_bodies(req))
		return berth_resp_file(fd, offset, len);
	struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, offset);
	if (!resp)
		close(fd);
	return resp;
}

struct MHD_Response *berth_resp_empty(void)
{
	return MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
}

struct MHD_Response *berth_resp_copy(const void *buf, size_t len)
{
	return MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY);
}

struct MHD_Response *berth_resp_take(void *buf, size_t len)
{
	return MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
}

struct MHD_Response *berth_resp_borrow(const void *buf, size_t len, void (*release)(void *cls), void *cls)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)buf, release, cls);
	if (!resp)
		release(cls);
	return resp;
}

int berth_req_answered(const struct berth_request *req)
{
	return req->state == BERTH_REQ_ANSWERED || req->state == BERTH_REQ_PENDING;
}

static void answered(struct berth_request *req, unsigned status, uint64_t body_len)
{
	req->state = BERTH_REQ_ANSWERED;
	req->status = status;
	req->bytes_out = berth_req_is_head(req) ? 0 : body_len;
}

/* An answer made on a worker waits, as a pending one, for the request to be back on a polling
 * thread (only there may libmicrohttpd queue it). */
static void keep_pending(struct berth_request *req, unsigned status, struct MHD_Response *resp,
			 uint64_t body_len)
{
	req->state = BERTH_REQ_PENDING;
	req->pending = resp;
	req->pending_status = status;
	req->pending_len = body_len;
}

void berth_req_send(struct berth_request *req, unsigned status, struct MHD_Response *resp,
		    uint64_t body_len)
{
	if (berth_req_answered(req)) {
		MHD_destroy_response(resp);
		return;
	}
	/* Release what the request holds (an upload's claim above all) before the client can see
	 * the answer and send its next request. */
	if (req->cleanup) {
		req->cleanup(req);
		req->cleanup = NULL;
	}
	if (req->close_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	MHD_add_response_header(resp, "Docker-Distribution-API-Version", "registry/2.0");
	for (size_t i = 0; i < req->server->n_headers; i++)
		MHD_add_response_header(resp, req->server->headers[i].name, req->server->headers[i].value);
	if (req->offloaded) {
		keep_pending(req, status, resp, body_len);
		return;
	}
	if (MHD_queue_response(req->conn, status, resp) != MHD_YES) {
		berth_debug("cannot queue response %u for %s %s yet", status, req->method, req->path);
		keep_pending(req, status, resp, body_len);
		return;
	}
	MHD_destroy_response(resp);
	answered(req, status, body_len);
}

void berth_req_suspend(struct berth_request *req, berth_complete_cb on_resume)
{
	req->on_resume = on_resume;
	req->state = BERTH_REQ_SUSPENDED;
	req->parked = 1;
	atomic_fetch_add(&req->server->suspended, 1);
	MHD_suspend_connection(req->conn);
}

void berth_req_resume(struct berth_request *req)
{
	struct berth_server *srv = req->server;
	MHD_resume_connection(req->conn);
	/* The request may be answered and freed from here on: srv only. */
	atomic_fetch_sub(&srv->suspended, 1);
}

void berth_req_pause_body(struct berth_request *req)
{
	atomic_fetch_add(&req->server->suspended, 1);
	MHD_suspend_connection(req->conn);
}

void berth_req_hold_body(struct berth_request *req)
{
	req->body_held = 1;
	berth_req_pause_body(req);
}

void berth_req_resume_body(struct berth_request *req)
{
	struct berth_server *srv = req->server;
	MHD_resume_connection(req->conn);
	atomic_fetch_sub(&srv->suspended, 1);
}

static int queue_pending(struct berth_request *req);

/* Back on a polling thread after berth_req_offload: the request is as the work left it. */
static void offload_done(struct berth_request *req)
{
	req->offloaded = 0;
	req->offload_work = NULL;
	req->state = req->offload_state;
	if (req->state == BERTH_REQ_PENDING)
		queue_pending(req);
}

/* On a worker: the parked request's work, then back to the polling threads. */
static void run_offloaded(void *arg)
{
	struct berth_request *req = arg;
	berth_err_clear(); /* a failure left on this thread by another request's work */
	req->state = req->offload_state;
	req->offload_work(req);
	req->offload_state = req->state;
	req->state = BERTH_REQ_SUSPENDED;
	berth_hand_off_cb start = req->hand_off;
	if (start) {
		/* Handed on (berth_req_hand_off): still parked; continued from another thread. */
		req->hand_off = NULL;
		start(req->hand_off_arg);
		return;
	}
	berth_req_resume(req);
}

void berth_req_offload(struct berth_request *req, berth_complete_cb work)
{
	struct berth_server *srv = req->server;
	if (!srv->workers) {
		work(req);
		return;
	}
	enum berth_req_state state = req->state;
	req->offload_work = work;
	req->offloaded = 1;
	req->offload_at_headers = req->in_first_call;
	berth_req_suspend(req, offload_done);
	req->offload_state = state;
	berth_workpool_submit(srv->workers, run_offloaded, req);
}

void berth_req_hand_off(struct berth_request *req, berth_hand_off_cb start, void *arg)
{
	if (req->offloaded) {
		/* On a worker: run_offloaded starts it once it is done with the request, so the
		 * continuation can never run beside it. */
		req->hand_off = start;
		req->hand_off_arg = arg;
		return;
	}
	berth_req_suspend(req, NULL); /* on_resume: berth_req_continue's answer */
	start(arg);
}

void berth_req_continue(struct berth_request *req, berth_complete_cb answer)
{
	if (req->offloaded) {
		/* Parked since berth_req_offload: the answer is storage work like the rest. */
		req->offload_work = answer;
		berth_workpool_submit(req->server->workers, run_offloaded, req);
		return;
	}
	req->on_resume = answer;
	berth_req_resume(req);
}

struct berth_workpool *berth_server__workers(struct berth_server *s)
{
	return s->workers;
}

void berth_server__park(struct berth_server *s, struct MHD_Connection *conn)
{
	atomic_fetch_add(&s->suspended, 1);
	MHD_suspend_connection(conn);
}

void berth_server__resume_parked(struct berth_server *s, struct MHD_Connection *conn)
{
	MHD_resume_connection(conn);
	atomic_fetch_sub(&s->suspended, 1);
}

/* Queues an answer kept from an earlier call; 1 once it is queued. */
static int queue_pending(struct berth_request *req)
{
	if (MHD_queue_response(req->conn, req->pending_status, req->pending) != MHD_YES)
		return 0;
	MHD_destroy_response(req->pending);
	req->pending = NULL;
	answered(req, req->pending_status, req->pending_len);
	return 1;
}

/* Answers a condition the server found itself, in the handler's format. */
static void refuse(struct berth_request *req, enum berth_http_refusal why, unsigned status,
		   const char *message)
{
	const struct berth_http_handler *h = req->server->handler;
	h->refuse(req, why, status, message, h->payload);
}

static int request_has_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	return te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
}

/* The URL below http.prefix, or NULL when it is not below it. "/" (the liveness probe) is
 * answered whatever the prefix, as by Distribution. */
static const char *strip_prefix(const struct berth_server *srv, const char *url)
{
	if (!srv->prefix || strcmp(url, "/") == 0)
		return url;
	if (strncmp(url, srv->prefix, srv->prefix_len) != 0 || url[srv->prefix_len] != '/')
		return NULL;
	return url + srv->prefix_len;
}

/* What the framing checks need to know of a request's header fields. */
struct header_census {
	unsigned hosts;
	unsigned content_lengths;
	unsigned transfer_encodings;
	int te_chunked;          /* the (last) Transfer-Encoding is exactly "chunked" */
	int bad_name;            /* a field name that is not an RFC 9110 token */
	int bad_value;           /* a field value holding a control character other than HTAB */
};

/* RFC 9110 tchar: ALPHA, DIGIT and "!#$%&'*+-.^_`|~". A table: every byte of every field name
 * of every request goes through it. */
static const unsigned char token_char[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
	['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
	['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
	['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

/* 1 if the field name (key_size bytes) is name, ignoring case. */
static int field_is(const char *key, size_t key_size, const char *name, size_t name_len)
{
	return key_size == name_len && strncasecmp(key, name, name_len) == 0;
}

static enum MHD_Result census_field(void *cls, enum MHD_ValueKind kind, const char *key,
				    size_t key_size, const char *value, size_t value_size)
{
	struct header_census *c = cls;
	(void)kind;
	if (key_size == 0)
		c->bad_name = 1;
	for (size_t i = 0; i < key_size; i++) /* a NUL included: the sizes count past it */
		if (!token_char[(unsigned char)key[i]])
			c->bad_name = 1;
	for (size_t i = 0; value && i < value_size; i++) {
		unsigned char ch = (unsigned char)value[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			c->bad_value = 1;
	}
	if (field_is(key, key_size, MHD_HTTP_HEADER_HOST, strlen(MHD_HTTP_HEADER_HOST))) {
		c->hosts++;
	} else if (field_is(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH,
			    strlen(MHD_HTTP_HEADER_CONTENT_LENGTH))) {
		c->content_lengths++;
	} else if (field_is(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING,
			    strlen(MHD_HTTP_HEADER_TRANSFER_ENCODING))) {
		c->transfer_encodings++;
		c->te_chunked = value && strcasecmp(value, "chunked") == 0;
	}
	return MHD_YES;
}

/*
 * Refuses a request whose framing a proxy in front of berth could read differently (request
 * smuggling, RFC 9112 section 11.2), as Go's server (Distribution's) does: a field name that is
 * not a token (libmicrohttpd keeps "Content-Length : 5" as the name "Content-Length " and the
 * body as the next request), a field value with a control character, an HTTP/1.1 request with
 * no Host or several, a transfer coding
 * other than a single "chunked" (501), two Content-Lengths. The status to answer with and
 * message, or 0.
 */
static unsigned framing_error(struct MHD_Connection *conn, const char *version, const char **message)
{
	struct header_census c = { 0 };
	int http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, census_field, &c);
	if (c.bad_name) {
		*message = "invalid header name";
		return MHD_HTTP_BAD_REQUEST;
	}
	if (c.bad_value) {
		*message = "invalid header value";
		return MHD_HTTP_BAD_REQUEST;
	}
	if (http11 && c.hosts == 0) {
		*message = "missing required Host header";
		return MHD_HTTP_BAD_REQUEST;
	}
	if (c.hosts > 1) {
		*message = "too many Host headers";
		return MHD_HTTP_BAD_REQUEST;
	}
	if (c.transfer_encodings > 0 && (c.transfer_encodings > 1 || !c.te_chunked)) {
		*message = "unsupported transfer encoding";
		return MHD_HTTP_NOT_IMPLEMENTED;
	}
	if (c.content_lengths > 1) {
		*message = "more than one Content-Length header";
		return MHD_HTTP_BAD_REQUEST;
	}
	return 0;
}

/* An absolute-form target ("http://host/v2/", RFC 9112 3.2.2) names the resource by its path,
 * as in origin form. */
static const char *origin_form(const char *url)
{
	if (url[0] == '/')
		return url; /* origin form, nearly every request */
	size_t scheme = strncasecmp(url, "http://", 7) == 0 ? 7 : strncasecmp(url, "https://", 8) == 0 ? 8 : 0;
	if (!scheme)
		return url;
	const char *path = strchr(url + scheme, '/');
	return path ? path : "/";
}

/* With http.tls.clientcas, what http.tls.clientauth asks of the client's certificate (as Go's
 * tls.ClientAuthType): by default one is required and must chain to one of the CAs. */
static int client_cert_acceptable(struct MHD_Connection *conn, int mode)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	unsigned int status = 0, n = 0;
	if (mode == BERTH_CLIENT_AUTH_REQUEST)
		return 1;
	if (!ci || !ci->tls_session)
		return 0;
	gnutls_session_t session = (gnutls_session_t)ci->tls_session;
	if (!gnutls_certificate_get_peers(session, &n) || n == 0)
		return mode == BERTH_CLIENT_AUTH_VERIFY_IF_GIVEN;
	if (mode == BERTH_CLIENT_AUTH_REQUIRE_ANY)
		return 1;
	return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}

/*
 * Takes the query string away from libmicrohttpd. MHD 0.9.75 parses the arguments into the
 * connection's fixed memory pool right after this callback; a few thousand of them exhaust it,
 * and MHD then neither answers nor closes (the client waits for the header timeout, and one that
 * leaves first left its request behind). So berth keeps its own copy, and ends the text MHD is
 * about to parse just after the '?': MHD passes the URI in its writable read buffer and looks
 * for the '?' before calling, so it then finds no arguments. Should a later MHD parse them
 * first, this only shortens text berth no longer reads.
 */
static struct berth_query *take_query(const char *uri)
{
	char *mark = uri ? strchr(uri, '?') : NULL;
	if (!mark)
		return NULL;
	struct berth_query *q = berth_query_new(mark + 1);
	mark[1] = '\0';
	return q;
}

/* Called by MHD as soon as the request line is in, with the raw URI (query included, nothing
 * decoded): the request context starts here, and the raw URI is what the access log shows. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct berth_server *srv = cls;
	/* One allocation for the request and the handler's data (the per-request path gains none). */
	size_t head = (sizeof(struct berth_request) + _Alignof(max_align_t) - 1) /
		      _Alignof(max_align_t) * _Alignof(max_align_t);
	struct berth_request *req = berth_calloc(1, head + srv->handler->request_data);
	req->server = srv;
	req->data = srv->handler->request_data ? (char *)req + head : NULL;
	req->url_prefix = srv->url_base ? srv->url_base : srv->prefix ? srv->prefix : "";
	req->conn = conn;
	req->method = "";
	req->start_ns = berth_now_ns();
	atomic_fetch_add(&srv->in_flight, 1);
	snprintf(req->path, sizeof(req->path), "%s", uri);
	/* "GET /a b HTTP/1.1": MHD takes the URI up to the last space, Go (and RFC 9112) refuse it */
	req->state = uri && strchr(uri, ' ') != NULL ? BERTH_REQ_BAD_TARGET : BERTH_REQ_NEW;
	req->query = take_query(uri);
	snprintf(req->id, sizeof(req->id), "%s-%llu", srv->id_prefix,
		 (unsigned long long)atomic_fetch_add(&srv->next_id, 1));
	return req;
}

static void handle(struct berth_request *req, const char *url)
{
	const struct berth_http_handler *h = req->server->handler;
	req->state = BERTH_REQ_READING;
	h->handle(req, url, h->payload);
}

/* Runs the callback of a request parked and now resumed (libmicrohttpd calls again only once
 * berth_req_resume has been called). */
static void resume_parked(struct berth_request *req)
{
	berth_complete_cb resumed = req->on_resume;
	req->on_resume = NULL;
	req->parked = 0;
	req->state = BERTH_REQ_READING;
	resumed(req);
}

/* The first call, headers in: refuses what the server refuses itself, then hands the request
 * to the handler now (it has a body, which can be refused before it is read) or defers it. */
static void on_headers(struct berth_server *srv, struct berth_request *req, const char *url,
		       const char *version)
{
	int bad_target = req->state == BERTH_REQ_BAD_TARGET;
	req->state = BERTH_REQ_DEFERRED;
	if (srv->client_certs && !client_cert_acceptable(req->conn, srv->client_auth)) {
		refuse(req, BERTH_HTTP_REFUSE_CERTIFICATE, MHD_HTTP_UNAUTHORIZED,
		       "a verified client certificate is required");
		return;
	}
	const char *framing_message = "malformed request target";
	unsigned framing_status = bad_target ? MHD_HTTP_BAD_REQUEST
					     : framing_error(req->conn, version, &framing_message);
	if (framing_status) {
		req->close_after = 1; /* whatever follows is never read as a request */
		refuse(req, BERTH_HTTP_REFUSE_FRAMING, framing_status, framing_message);
		return;
	}
	url = strip_prefix(srv, origin_form(url));
	if (!url) {
		refuse(req, BERTH_HTTP_REFUSE_NO_ROUTE, MHD_HTTP_NOT_FOUND, "no such endpoint");
		return;
	}
	if (!berth_health_ok(srv->health)) {
		refuse(req, BERTH_HTTP_REFUSE_UNHEALTHY, MHD_HTTP_SERVICE_UNAVAILABLE,
		       "service unavailable");
		return;
	}
	/* Answering before MHD has seen the (absent) body would cost the keep-alive connection,
	 * so body-less requests are handled on the last call. */
	if (request_has_body(req->conn)) {
		req->in_first_call = 1;
		handle(req, url);
		req->in_first_call = 0;
	}
}

/* The last call, the body (if any) all in: the answer is made or queued now. */
static void on_end(struct berth_server *srv, struct berth_request *req, const char *url)
{
	if (req->parked) {
		resume_parked(req);
		if (req->parked)
			return;
	}
	switch (req->state) {
	case BERTH_REQ_PENDING:
		queue_pending(req);
		return;
	case BERTH_REQ_DEFERRED:
		handle(req, strip_prefix(srv, origin_form(url)));
		if (req->parked)
			return; /* answered once resumed */
		break;
	default:
		break;
	}
	if ((req->state == BERTH_REQ_READING || req->state == BERTH_REQ_DRAINING) && req->on_complete) {
		berth_complete_cb complete = req->on_complete;
		req->on_complete = NULL; /* once only, even if its answer could not be queued */
		complete(req);
		if (req->parked)
			return; /* complete offloaded its work: answered once resumed */
	}
	if (!berth_req_answered(req))
		refuse(req, BERTH_HTTP_REFUSE_NO_ANSWER, MHD_HTTP_INTERNAL_SERVER_ERROR, "no response");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct berth_server *srv = cls;
	struct berth_request *req = *con_cls;

	if (req->state == BERTH_REQ_NEW || req->state == BERTH_REQ_BAD_TARGET) {
		berth_conns_headers_in(conn);
		req->conn = conn;
		req->method = method;
		on_headers(srv, req, url, version);
		return MHD_YES;
	}
	if (req->parked && req->offload_at_headers) {
		/* Resumed from the first call: libmicrohttpd (0.9.75) makes that call again, with no
		 * data, before the body's; the handler's work is done, the body goes where it said. */
		resume_parked(req);
		if (*upload_data_size == 0)
			return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		req->bytes_in += n;
		*upload_data_size = 0;
		/* Only a handler reading the body gets it. A request that announced none can still be
		 * handed bytes (after an "Expect: 100-continue", say): they are dropped, and it is
		 * handled on the last call, where MHD accepts an answer. */
		if (req->state == BERTH_REQ_READING && req->on_body && req->on_body(req, upload_data, n) != 0 &&
		    req->state == BERTH_REQ_READING && !req->body_held)
			req->state = BERTH_REQ_DRAINING;
		if (req->body_held) {
			/* Suspended with the piece untaken: libmicrohttpd hands it again once resumed. */
			req->body_held = 0;
			req->bytes_in -= n;
			*upload_data_size = n;
		}
		return MHD_YES;
	}
	on_end(srv, req, url);
	return MHD_YES;
}

static void log_access(struct berth_request *req, double ms)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[64] = "-";
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_UNIX)
		snprintf(host, sizeof(host), "unix");
	else if (ci && ci->client_addr)
		getnameinfo(ci->client_addr,
			    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								   : sizeof(struct sockaddr_in),
			    host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	struct berth_access_entry e = {
		.request_id = req->id,
		.method = req->method,
		.uri = req->path,
		.status = req->status,
		.bytes_in = req->bytes_in,
		.bytes_out = req->bytes_out,
		.duration_ms = ms,
		.remote = host,
		.user_agent = berth_req_header(req, MHD_HTTP_HEADER_USER_AGENT),
		.user = req->user[0] ? req->user : NULL,
	};
	berth_log_access(&e);
}

/* The end of a request done with its connection: req->conn is not to be used. */
static void clean_up_and_free(void *arg)
{
	struct berth_request *req = arg;
	if (req->cleanup) {
		berth_err_clear(); /* a failure left on this thread by other work */
		req->cleanup(req);
	}
	if (req->pending)
		MHD_destroy_response(req->pending);
	berth_query_free(req->query);
	free(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct berth_server *srv = cls;
	struct berth_request *req = *con_cls;
	berth_conns_request_done(srv->conns, conn);
	if (!req)
		return;
	uint64_t ns = berth_now_ns() - req->start_ns;
	if (req->state != BERTH_REQ_ANSWERED)
		req->status = 499; /* the client went away before an answer */
	berth_http_observe(req->route, req->method, req->status, ns, req->bytes_in, req->bytes_out);
	if (srv->access_log)
		log_access(req, (double)ns / 1e6);
	*con_cls = NULL;
	if (req->cleanup && srv->workers)
		/* What the request holds may be a remote write to finish (an upload cut short):
		 * released where storage work runs, not on this polling thread. */
		berth_workpool_submit(srv->workers, clean_up_and_free, req);
	else
		clean_up_and_free(req);
	atomic_fetch_sub(&srv->in_flight, 1);
}

/* Decodes %XX in place, except %00, which stays encoded so a NUL can never cut a path short
 * (the name and reference grammars then reject it). */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return berth_http_unescape(s);
}

/* libmicrohttpd's own messages (for example a TLS client probing a plain-HTTP port) go to the
 * debug log: every condition a user must see is reported by berth itself. */
void berth_http_mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	if (!berth_log_enabled(BERTH_LOG_DEBUG))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	berth_debug("libmicrohttpd: %s", msg);
}

int berth_http_resolve_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { 0 }, *res = NULL;
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return BERTH_EINVALID;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		h++;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res) != 0 || !res)
		return BERTH_EINVALID;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void set_prefix(struct berth_server *s, const char *prefix)
{
	size_t n = prefix ? strlen(prefix) : 0;
	while (n > 0 && prefix[n - 1] == '/')
		n--;
	if (n == 0)
		return;
	s->prefix = prefix[0] == '/' ? berth_strndup(prefix, n) : berth_asprintf("/%.*s", (int)n, prefix);
	s->prefix_len = strlen(s->prefix);
}

/* Distribution's http.host: the URLs berth hands out are built on it (and the prefix). */
static void set_url_base(struct berth_server *s, const char *external_url)
{
	size_t n = external_url ? strlen(external_url) : 0;
	while (n > 0 && external_url[n - 1] == '/')
		n--;
	if (n > 0)
		s->url_base = berth_asprintf("%.*s%s", (int)n, external_url, s->prefix ? s->prefix : "");
}

/* Closes fd (when open) and fails with the errno behind the failure noted for the log. */
static int listen_failed(int fd)
{
	int err = errno;
	if (fd >= 0)
		close(fd);
	return berth_err_set_os(BERTH_ERROR, err);
}

/* http.net: unix: a listening socket at path (a stale socket file there is replaced). The
 * socket, BERTH_EINVALID for a path too long, or BERTH_ERROR with its reason noted. */
static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(sa.sun_path))
		return BERTH_EINVALID;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, LISTEN_BACKLOG) != 0)
		return listen_failed(fd);
	return fd;
}

/* A listening TCP socket on ss, set up as libmicrohttpd would (address reuse; an IPv6 address
 * takes IPv6 clients only). The socket, or BERTH_ERROR with its reason noted. */
static int listen_tcp(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int on = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
	    bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0)
		return listen_failed(fd);
	return fd;
}

/* The port a listening socket is bound to (0 for a unix socket). */
static unsigned bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/*
 * MHD's own connection limit is kept out of reach: at it, MHD would refuse clients the listener
 * has already admitted. berth's limit is enforced by the listener, which refuses new clients
 * at once (berth_conns_admit). MHD splits its limit between the polling threads (unevenly
 * filled), and berth's may be exceeded briefly by clients being handed over: hence the margin.
 */
static unsigned mhd_connection_limit(unsigned limit, unsigned threads)
{
	uint64_t n = 2 * (uint64_t)limit + threads;
	return n < UINT_MAX ? (unsigned)n : UINT_MAX;
}

/* Frees a server whose daemon and listener are stopped or never started, and closes the
 * listening socket it was given (-1: none left to close). */
static void discard(struct berth_server *s, int listen_fd)
{
	if (listen_fd >= 0)
		close(listen_fd);
	if (s->tls)
		berth_tls_certs_free();
	berth_conns_free(s->conns);
	free(s->prefix);
	free(s->url_base);
	free(s);
}

int berth_server_start(struct berth_server **out, const struct berth_server_options *opts)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	unsigned threads = opts->threads;
	/* the listener accepts clients and hands them over (MHD_add_connection): MHD needs its
	 * wake-up channel to take them at once */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC |
			 MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME;
	int listen_fd;

	if (opts->unix_socket) {
		listen_fd = listen_unix(opts->addr);
		if (listen_fd < 0) {
			berth_error("cannot listen on unix socket '%s': %s", opts->addr,
				    listen_fd == BERTH_EINVALID ? "path too long" : berth_err_reason(listen_fd));
			return listen_fd;
		}
	} else if (berth_http_resolve_addr(opts->addr, &ss, &sslen) < 0) {
		berth_error("invalid listen address '%s'", opts->addr);
		return BERTH_EINVALID;
	} else if ((listen_fd = listen_tcp(&ss, sslen)) < 0) {
		berth_error("cannot listen on %s: %s", opts->addr, berth_err_reason(listen_fd));
		return listen_fd;
	}
	if (!threads)
		threads = (unsigned)berth_online_cpus();
	struct berth_server *s = berth_calloc(1, sizeof(*s));
	s->handler = opts->handler;
	berth_http_metrics_routes(opts->handler->route_names, opts->handler->n_routes);
	s->health = opts->health;
	s->access_log = opts->access_log;
	s->headers = opts->headers;
	s->n_headers = opts->n_headers;
	s->workers = opts->workers;
	s->port = bound_port(listen_fd);
	set_prefix(s, opts->prefix);
	set_url_base(s, opts->external_url);
	char uuid[37];
	berth_uuid4(uuid);
	memcpy(s->id_prefix, uuid, 8);
	s->id_prefix[8] = '\0';
	if (opts->tls_cert_file) {
		int rc = berth_tls_certs_load(opts->tls_cert_file, opts->tls_key_file);
		if (rc < 0) {
			berth_error("%s", berth_err_reason(rc));
			discard(s, listen_fd);
			return BERTH_ERROR;
		}
		flags |= MHD_USE_TLS;
		s->tls = 1;
		s->client_certs = opts->tls_client_ca_pem != NULL;
		s->client_auth = opts->tls_client_auth;
	}
	unsigned limit = berth_conns_fit_fd_limit(opts->conn_limit ? opts->conn_limit : 1, threads);
	struct berth_conns_options co = { limit, opts->conn_timeout, opts->header_timeout };
	if (berth_conns_new(&s->conns, &co) < 0) {
		discard(s, listen_fd);
		return BERTH_ERROR;
	}
	s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				     MHD_OPTION_EXTERNAL_LOGGER, berth_http_mhd_logger, NULL,
				     MHD_OPTION_THREAD_POOL_SIZE, threads,
				     MHD_OPTION_CONNECTION_TIMEOUT, opts->conn_timeout,
				     MHD_OPTION_CONNECTION_LIMIT, mhd_connection_limit(limit, threads),
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, opts->conn_memory,
				     MHD_OPTION_NOTIFY_CONNECTION, berth_conns_notify, s->conns,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
				     MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
				     s->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, berth_tls_cert_callback(),
				     MHD_OPTION_HTTPS_PRIORITIES, opts->tls_priorities ? opts->tls_priorities : "NORMAL",
				     opts->tls_client_ca_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END,
				     opts->tls_client_ca_pem,
				     MHD_OPTION_END);
	if (!s->daemon) {
		berth_error("cannot start the HTTP server on %s", opts->addr);
		discard(s, listen_fd);
		return BERTH_ERROR;
	}
	struct berth_listener_options lo = { listen_fd, s->tls, s->daemon, s->conns };
	if (berth_listener_start(&s->listener, &lo) < 0) { /* it has closed listen_fd */
		MHD_stop_daemon(s->daemon);
		discard(s, -1);
		return BERTH_ERROR;
	}
	*out = s;
	return 0;
}

unsigned berth_server_connections(const struct berth_server *s)
{
	return berth_conns_live(s->conns);
}

int berth_server_reload_tls(struct berth_server *s)
{
	if (!s->tls)
		return berth_err_set(BERTH_EUNSUPPORTED, "not serving TLS");
	return berth_tls_certs_reload();
}

unsigned berth_server_port(const struct berth_server *s)
{
	return s->port;
}

void berth_server_drain_and_stop(struct berth_server *s, unsigned timeout_ms)
{
	if (!s)
		return;
	berth_listener_stop(s->listener);
	/* Idle keep-alive connections do not hold the drain up: only requests in flight do. */
	for (unsigned waited = 0; waited < timeout_ms && atomic_load(&s->in_flight) > 0; waited += 10)
		usleep(10 * 1000);
	/* MHD cannot stop with a connection suspended; whoever suspended one resumes it within
	 * its own bounded time (the web interface's token call has a timeout). */
	while (atomic_load(&s->suspended) > 0)
		usleep(10 * 1000);
	MHD_stop_daemon(s->daemon);
	discard(s, -1);
}

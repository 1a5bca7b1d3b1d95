/*
 * The HTTP server: a libmicrohttpd daemon with a pool of polling threads (epoll), each request
 * handed to the one handler registered in the options (main.c registers the OCI API's,
 * api/api.h), as h2o registers its handlers. Handlers run on the polling threads and do blocking
 * storage I/O, which on local filesystems is short (page cache); blob bodies go out with
 * sendfile, or through a buffer to a client on this host or over TLS (berth_resp_fd,
 * http/request.h).
 */
#ifndef BERTH_HTTP_SERVER_H
#define BERTH_HTTP_SERVER_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

struct berth_request;
struct berth_server;
struct berth_workpool;

struct berth_http_header {
	const char *name;
	const char *value;
};

/* Requests the server answers itself, before or instead of the handler. */
enum berth_http_refusal {
	BERTH_HTTP_REFUSE_CERTIFICATE, /* 401: http.tls.clientauth wants a certificate not given */
	BERTH_HTTP_REFUSE_FRAMING,     /* 400 or 501: a request berth cannot delimit (the connection
					* is closed after the answer) */
	BERTH_HTTP_REFUSE_NO_ROUTE,    /* 404: a target outside http.prefix */
	BERTH_HTTP_REFUSE_UNHEALTHY,   /* 503: a health check fails */
	BERTH_HTTP_REFUSE_NO_ANSWER,   /* 500: the handler left the request unanswered */
};

/*
 * What serves the requests. request_data zeroed bytes come with each request (req->data), in
 * the request's own allocation; route_names label the metrics by req->route (index 0 is the
 * requests no route took).
 */
struct berth_http_handler {
	/* Starts the answer to a request whose headers are in: answers at once, or installs the body
	 * callbacks. path is the decoded target below http.prefix, query excluded. */
	void (*handle)(struct berth_request *req, const char *path, void *payload);
	/* Answers a refusal in the handler's error format with status and message. */
	void (*refuse)(struct berth_request *req, enum berth_http_refusal why, unsigned status,
		       const char *message, void *payload);
	void *payload;
	size_t request_data;
	const char *const *route_names;
	size_t n_routes;
};

struct berth_server_options {
	const char *addr;          /* "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces) */
	unsigned threads;          /* polling threads; 0 = one per core */
	unsigned conn_timeout;     /* idle timeout: seconds of inactivity before a connection is
				    * closed; 0 = none */
	unsigned header_timeout;   /* seconds a request line and its headers may take; 0 = none
				    * (http/conns.h) */
	unsigned conn_limit;       /* connections served at once; past it new clients are refused
				    * as they connect (lowered when the open-file limit is too low) */
	size_t conn_memory;        /* per-connection buffer: bounds a request's line and headers
				    * and each body piece (BERTH_CONN_MEMORY) */
	int access_log;            /* one line per request */
	const char *prefix;        /* http.prefix: routes live below it ("/registry/"), or NULL */
	const char *external_url;  /* http.host (absolute URL) unless http.relativeurls: the URLs
				    * handed out (Location, Link) are absolute, below it; NULL: relative */
	const char *tls_cert_file; /* http.tls.certificate (PEM chain), or NULL for plain HTTP; it
				    * and tls_key_file are re-read by berth_server_reload_tls */
	const char *tls_key_file;  /* http.tls.key */
	const char *tls_priorities; /* GnuTLS priority string (http/tls.h), NULL = GnuTLS's default */
	const char *tls_client_ca_pem; /* http.tls.clientcas contents: ask clients for certificates */
	int tls_client_auth;       /* enum berth_client_auth: what a client's certificate must be */
	const struct berth_http_header *headers; /* http.headers added to every answer */
	size_t n_headers;
	const struct berth_http_handler *handler; /* borrowed; required */
	struct berth_health *health; /* borrowed; while its check fails every request gets 503 */
	int unix_socket;           /* http.net: unix: addr is a filesystem path to listen on */
	struct berth_workpool *workers; /* borrowed: where berth_req_offload runs work (http.workers);
					 * NULL: at once, on the polling thread. Must outlive the server */
};

/*
 * libmicrohttpd (0.9.75) zeroes a connection's whole buffer at the end of every request and the
 * unused half it read headers into after each request line: with 256 KiB that was 384 KiB of
 * memset per request, a third of the CPU of a small request. 128 KiB halves that and still takes
 * a request head (line and headers) of up to about 127 KB, where nginx and Apache refuse a line
 * over 8 KB by default (a longer head gets 414 or 431). 64 KiB would save more, but its smaller
 * body pieces measured slower monolithic uploads (bench/README.md, "Connection memory").
 */
#define BERTH_CONN_MEMORY (128 * 1024)
#define BERTH_SERVER_OPTIONS_INIT                                                              \
	{ .addr = "127.0.0.1:5000", .conn_timeout = 60, .header_timeout = 30, .conn_limit = 4096, \
	  .conn_memory = BERTH_CONN_MEMORY, .access_log = 1 }

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces) into a socket address.
 * 0 or BERTH_EINVALID. */
int berth_http_resolve_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len);

/* Routes libmicrohttpd's error messages into berth's log (MHD_OPTION_EXTERNAL_LOGGER). */
void berth_http_mhd_logger(void *cls, const char *fmt, va_list ap);

/* Starts listening. opts->handler (and its payload) and the strings in opts are borrowed and
 * must outlive the server. */
int berth_server_start(struct berth_server **out, const struct berth_server_options *opts);
/* Re-reads the TLS certificate and key files (SIGHUP): new handshakes use the new pair,
 * connections already open are left alone. On failure the old pair stays; a BERTH_E* code
 * with its message (core/err.h; BERTH_EUNSUPPORTED when not serving TLS). */
int berth_server_reload_tls(struct berth_server *s);
/* The bound port (useful with port 0). */
unsigned berth_server_port(const struct berth_server *s);
/* Client connections open now (those closing are counted until libmicrohttpd has let go). */
unsigned berth_server_connections(const struct berth_server *s);
/*
 * Stops accepting new connections and waits up to timeout_ms for the connections in flight to
 * finish their requests, then closes everything and frees. Accepts NULL.
 */
void berth_server_drain_and_stop(struct berth_server *s, unsigned timeout_ms);

#endif

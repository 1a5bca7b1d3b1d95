#include "http/debug.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "http/health.h"
#include "http/server.h"

struct berth_debug_server {
	struct MHD_Daemon *daemon;
	struct berth_health *health;
	char *metrics_path;
};

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
				 char *body, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* Distribution's health answer: {} when healthy, else 503 and {"<check>": "<error>"}. */
static enum MHD_Result health(struct berth_debug_server *d, struct MHD_Connection *c)
{
	char *body = berth_health_report(d->health);
	unsigned status = berth_health_ok(d->health) ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	return send_text(c, status, "application/json", body, strlen(body));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct berth_debug_server *d = cls;
	if (!*con_cls) {
		*con_cls = d;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", berth_strdup("method not allowed\n"), 19);
	if (strcmp(url, "/debug/health") == 0)
		return health(d, c);
	if (d->metrics_path && strcmp(url, d->metrics_path) == 0) {
		struct berth_buf out = BERTH_BUF_INIT(64u << 20);
		berth_metrics_render(&out);
		size_t len = 0;
		char *body = berth_buf_detach(&out, &len);
		return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", body, len);
	}
	return send_text(c, MHD_HTTP_NOT_FOUND, "text/plain", berth_strdup("404 page not found\n"), 19);
}

int berth_debug_start(struct berth_debug_server **out, const struct berth_debug_options *opts)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (berth_http_resolve_addr(opts->addr, &ss, &sslen) < 0) {
		berth_error("invalid debug address '%s'", opts->addr);
		return BERTH_EINVALID;
	}
	struct berth_debug_server *d = berth_calloc(1, sizeof(*d));
	d->health = opts->health;
	d->metrics_path = opts->metrics_path ? berth_strdup(opts->metrics_path) : NULL;
	/* AUTO: epoll, not select, which refuses descriptors past 1024 (the main port may hold thousands). */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	d->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d,
				     MHD_OPTION_EXTERNAL_LOGGER, berth_http_mhd_logger, NULL,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				     MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!d->daemon) {
		berth_error("cannot listen on debug address %s", opts->addr);
		free(d->metrics_path);
		free(d);
		return BERTH_ERROR;
	}
	*out = d;
	return 0;
}

void berth_debug_stop(struct berth_debug_server *d)
{
	if (!d)
		return;
	MHD_stop_daemon(d->daemon);
	free(d->metrics_path);
	free(d);
}

/* Notification events from the API handlers: the request's part of each event (notify/notify.h). */
#include "api/events.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "api/api_int.h"
#include "core/util.h"
#include "http/server.h"
#include "notify/notify.h"

/* Blob descriptors carry no media type of their own: Distribution's statter says this. */
#define BLOB_MEDIA_TYPE "application/octet-stream"

void berth_api__remote_addr(struct berth_request *req, char *out, size_t cap)
{
	const char *fwd = berth_req_header(req, "X-Forwarded-For");
	const char *real = berth_req_header(req, "X-Real-Ip");
	out[0] = '\0';
	if (fwd && *fwd) {
		size_t n = strcspn(fwd, ",");
		while (n > 0 && fwd[n - 1] == ' ')
			n--;
		snprintf(out, cap, "%.*s", (int)n, fwd + strspn(fwd, " "));
		return;
	}
	if (real && *real) {
		snprintf(out, cap, "%s", real);
		return;
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[64], port[16];
	if (!ci || !ci->client_addr || ci->client_addr->sa_family == AF_UNIX)
		return;
	int v6 = ci->client_addr->sa_family == AF_INET6;
	if (getnameinfo(ci->client_addr, v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
			host, sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(out, cap, v6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* target.url: absolute, as Distribution's URL builder (http.host, else the request's host). */
static char *target_url(struct berth_request *req, const char *kind, const char *digest)
{
	if (strncmp(req->url_prefix, "http", 4) == 0)
		return berth_asprintf("%s/v2/%s/%s/%s", req->url_prefix, berth_api_req(req)->name, kind, digest);
	const char *proto = berth_req_header(req, "X-Forwarded-Proto");
	const char *host = berth_req_header(req, "X-Forwarded-Host");
	if (!host)
		host = berth_req_header(req, MHD_HTTP_HEADER_HOST);
	if (!proto) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		proto = ci && ci->tls_session ? "https" : "http";
	}
	return berth_asprintf("%s://%s%s/v2/%s/%s/%s", proto, host ? host : "localhost", req->url_prefix,
			      berth_api_req(req)->name, kind, digest);
}

static void emit(struct berth_request *req, struct berth_notify_event *ev)
{
	char addr[128];
	berth_api__remote_addr(req, addr, sizeof(addr));
	ev->repository = berth_api_req(req)->name;
	ev->request_id = req->id;
	ev->request_addr = addr;
	ev->request_host = berth_req_header(req, MHD_HTTP_HEADER_HOST);
	ev->request_method = req->method;
	ev->request_useragent = berth_req_header(req, MHD_HTTP_HEADER_USER_AGENT);
	ev->actor = req->user;
	berth_notify_emit(berth_api_req(req)->notify, ev);
}

void berth_api_event_blob(struct berth_request *req, const char *action, const char *digest,
			  uint64_t size, const char *from)
{
	if (!berth_api_req(req)->notify)
		return;
	char *url = target_url(req, "blobs", digest);
	struct berth_notify_event ev = {
		.action = action, .media_type = BLOB_MEDIA_TYPE, .digest = digest,
		.size = (int64_t)size, .from_repository = from, .url = url,
	};
	emit(req, &ev);
	free(url);
}

/* The manifest's descriptors as Distribution's Manifest.References(): config then layers, or
 * an index's manifests. A JSON array text (heap), or NULL. */
static char *references_of(json_t *m)
{
	json_t *refs = json_array(), *config = json_object_get(m, "config");
	if (json_is_object(config))
		json_array_append(refs, config);
	json_t *list = json_object_get(m, "layers");
	if (!json_is_array(list))
		list = json_object_get(m, "manifests");
	size_t i;
	json_t *d;
	json_array_foreach(list, i, d)
		if (json_is_object(d))
			json_array_append(refs, d);
	char *text = json_array_size(refs) ? json_dumps(refs, JSON_COMPACT) : NULL;
	json_decref(refs);
	return text;
}

void berth_api_event_manifest(struct berth_request *req, const char *action, const char *digest,
			      const char *media_type, const char *body, size_t len)
{
	if (!berth_api_req(req)->notify)
		return;
	json_t *m = json_loadb(body, len, 0, NULL);
	const char *mt = json_string_value(json_object_get(m, "mediaType"));
	char *refs = berth_notify_include_references(berth_api_req(req)->notify) && m ? references_of(m) : NULL;
	char *url = target_url(req, "manifests", digest);
	struct berth_notify_event ev = {
		.action = action,
		.media_type = media_type && *media_type ? media_type
			      : mt ? mt : berth_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE),
		.digest = digest, .size = (int64_t)len, .url = url,
		.tag = strcmp(berth_api_req(req)->reference, digest) != 0 ? berth_api_req(req)->reference : NULL,
		.references_json = refs,
	};
	emit(req, &ev);
	free(url);
	free(refs); /* json_dumps allocates with malloc */
	json_decref(m);
}

void berth_api_event_delete(struct berth_request *req, const char *digest, const char *tag)
{
	if (!berth_api_req(req)->notify)
		return;
	struct berth_notify_event ev = { .action = "delete", .digest = digest, .tag = tag };
	emit(req, &ev);
}

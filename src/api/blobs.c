/* GET, HEAD and DELETE /v2/<name>/blobs/<digest>. Bodies go out from the file when the
 * storage is a file (berth_resp_fd: sendfile, or pieces through a buffer), else through a
 * streaming callback: a blob is never held in memory. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/events.h"
#include "core/err.h"
#include "http/range.h"
#include "proxy/proxy.h"

#define STREAM_BLOCK (64 * 1024)

static ssize_t stream_read(void *src, void *buf, size_t max)
{
	struct berth_reader *rd = src;
	return rd->read(rd, buf, max);
}

static void stream_free(void *src)
{
	struct berth_reader *rd = src;
	rd->close(rd);
}

/* A HEAD's response has no body to buffer; MHD allocates and zeroes the block size given with
 * each response (STREAM_BLOCK would cost every HEAD 64 KiB of zeroing). */
#define NO_BODY_BLOCK 1

/* Never called for HEAD: MHD sends the headers (with Content-Length) only. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

void berth_api_blob_headers(struct MHD_Response *resp, const char *digest)
{
	char etag[BERTH_DIGEST_STR_MAX + 2];
	/* digest is a valid one, so it fits; the precision lets the compiler see that too. */
	snprintf(etag, sizeof(etag), "\"%.*s\"", BERTH_DIGEST_STR_MAX - 1, digest);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	MHD_add_response_header(resp, "Docker-Content-Digest", digest);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "max-age=31536000");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
}

static void blob_unknown(struct berth_request *req, const char *digest)
{
	char detail[BERTH_DIGEST_STR_MAX + 16];
	berth_api_digest_detail(detail, sizeof(detail), digest);
	berth_api_answer(req, BERTH_API_BLOB_UNKNOWN, "blob unknown to registry", detail);
}

/* Wraps the reader in a response for [start, start+len); takes the reader. Without a
 * descriptor, the body streams (berth_resp_stream: read ahead on a storage worker when the
 * driver is remote). */
static struct MHD_Response *body_response(struct berth_request *req, struct berth_reader *rd,
					  uint64_t start, uint64_t len)
{
	struct MHD_Response *resp;
	if (rd->fd >= 0) {
		resp = berth_resp_fd(req, rd->fd, rd->offset + start, len);
		rd->fd = -1; /* the response's now, or closed */
		rd->close(rd);
		return resp;
	}
	/* No descriptor: skip to start, then stream. */
	char skip[STREAM_BLOCK];
	uint64_t left = start;
	while (left > 0) {
		ssize_t n = rd->read(rd, skip, left < sizeof(skip) ? (size_t)left : sizeof(skip));
		if (n <= 0) {
			rd->close(rd);
			return NULL;
		}
		left -= (uint64_t)n;
	}
	return berth_resp_stream(req, len, stream_read, stream_free, rd);
}

/* The client's IP, without a port, as Distribution's requestutil.RemoteIP gives it. */
static void client_ip(struct berth_request *req, char *out, size_t cap)
{
	char addr[128];
	berth_api__remote_addr(req, addr, sizeof(addr));
	const char *colon = strrchr(addr, ':');
	if (addr[0] == '[' && strchr(addr, ']'))  /* [v6]:port */
		snprintf(out, cap, "%.*s", (int)(strchr(addr, ']') - addr - 1), addr + 1);
	else if (colon && strchr(addr, ':') == colon) /* v4:port (a bare v6 has several ':') */
		snprintf(out, cap, "%.*s", (int)(colon - addr), addr);
	else
		snprintf(out, cap, "%s", addr);
}

/* With redirects on and a driver that has URLs (S3, or middleware.storage): 307 to its URL for
 * the blob, as Distribution answers a GET (a HEAD is answered here: S3's URL is signed for GET,
 * and berth's answer carries the registry's headers). 1 once answered (a 404 or a storage
 * error included); 0 to serve the bytes. */
static int redirect_blob(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	uint64_t size = 0;
	char *url = NULL, ip[128];
	client_ip(req, ip, sizeof(ip));
	int rc = berth_blob_url(&url, ar->registry, ar->name, ar->reference, ip[0] ? ip : NULL);
	if (rc == BERTH_EUNSUPPORTED)
		return 0;
	if (rc == 0)
		rc = berth_blob_stat(&size, ar->registry, ar->name, ar->reference);
	if (rc == BERTH_ENOTFOUND && ar->proxy)
		berth_api_proxied_blob(req); /* not cached: streamed from the upstream */
	else if (rc == BERTH_ENOTFOUND)
		blob_unknown(req, ar->reference);
	else if (rc < 0)
		berth_api_storage_error(req, rc, "cannot redirect to blob");
	if (rc < 0) {
		free(url);
		return 1;
	}
	if (ar->proxy)
		berth_proxy_note_hit(ar->proxy, 1);
	berth_api_event_blob(req, "pull", ar->reference, size, NULL);
	struct MHD_Response *resp = berth_resp_empty();
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, url);
	free(url);
	berth_req_send(req, MHD_HTTP_TEMPORARY_REDIRECT, resp, 0);
	return 1;
}

static void get_blob(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	const char *digest = ar->reference;
	struct berth_reader *rd = NULL;
	uint64_t size, start = 0, len;
	unsigned status = MHD_HTTP_OK;
	const char *range;
	int rc;

	if (!berth_req_is_head(req) && redirect_blob(req))
		return;
	if (berth_req_is_head(req)) {
		/* a pusher checking for a layer it will reference: its age restarts (online gc) */
		rc = berth_blob_stat_refresh(&size, ar->registry, ar->name, digest);
	} else if (berth_api_etag_matches(req, digest)) {
		rc = berth_blob_stat(&size, ar->registry, ar->name, digest);
	} else {
		rc = berth_blob_open(&rd, ar->registry, ar->name, digest, 0);
		size = rc == 0 ? rd->size : 0;
	}
	if (rc == BERTH_ENOTFOUND && ar->proxy) {
		berth_api_proxied_blob(req); /* not cached: from the upstream */
		return;
	}
	if (rc == BERTH_ENOTFOUND) {
		blob_unknown(req, digest);
		return;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot open blob");
		return;
	}
	if (ar->proxy)
		berth_proxy_note_hit(ar->proxy, 1);
	berth_api_event_blob(req, "pull", digest, size, NULL);
	if (berth_api_etag_matches(req, digest)) {
		if (rd)
			rd->close(rd);
		struct MHD_Response *resp = berth_resp_empty();
		berth_api_blob_headers(resp, digest);
		berth_req_send(req, MHD_HTTP_NOT_MODIFIED, resp, 0);
		return;
	}
	len = size;
	range = berth_req_header(req, MHD_HTTP_HEADER_RANGE);
	if (range) {
		rc = berth_range_parse(range, size, &start, &len);
		if (rc == BERTH_ERANGE) {
			char cr[64];
			if (rd)
				rd->close(rd);
			snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
			struct MHD_Response *resp = berth_resp_empty();
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
			berth_req_send(req, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp, 0);
			return;
		}
		if (rc == BERTH_EINVALID) { /* malformed: 416 without Content-Range, as from Go */
			if (rd)
				rd->close(rd);
			berth_req_send(req, MHD_HTTP_RANGE_NOT_SATISFIABLE, berth_resp_empty(), 0);
			return;
		}
		if (rc == 0)
			status = MHD_HTTP_PARTIAL_CONTENT;
		else /* several ranges: the whole body */
			start = 0, len = size;
	}

	uint64_t skip = start; /* bytes of the reader before the body */
	if (rd && rd->fd < 0 && start > 0) {
		/* A remote object: read from start rather than through what comes before it. */
		rd->close(rd);
		rd = NULL;
		rc = berth_blob_open(&rd, ar->registry, ar->name, digest, start);
		if (rc < 0) {
			berth_api_storage_error(req, rc, "cannot open blob");
			return;
		}
		skip = 0;
	}
	struct MHD_Response *resp = rd ? body_response(req, rd, skip, len)
				       : MHD_create_response_from_callback(len, NO_BODY_BLOCK, no_body, NULL, NULL);
	if (!resp) {
		berth_api_storage_error(req, BERTH_ERROR, "cannot stream blob");
		return;
	}
	berth_api_blob_headers(resp, digest);
	if (status == MHD_HTTP_PARTIAL_CONTENT) {
		char cr[96];
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, start + len - 1, size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	}
	berth_req_send(req, status, resp, len);
}

static void delete_blob(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	int rc;
	if (!berth_registry_delete_enabled(ar->registry) || ar->proxy) {
		berth_api_answer(req, BERTH_API_UNSUPPORTED,
				"the operation is unsupported", NULL);
		return;
	}
	rc = berth_blob_delete(ar->registry, ar->name, ar->reference);
	if (rc == BERTH_ENOTFOUND) {
		blob_unknown(req, ar->reference);
		return;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot delete blob");
		return;
	}
	berth_api_event_delete(req, ar->reference, NULL);
	struct MHD_Response *resp = berth_resp_empty();
	MHD_add_response_header(resp, "Docker-Content-Digest", ar->reference);
	berth_req_send(req, MHD_HTTP_ACCEPTED, resp, 0);
}

void berth_api_blob(struct berth_request *req)
{
	int is_get = strcmp(req->method, MHD_HTTP_METHOD_GET) == 0 || berth_req_is_head(req);
	int is_delete = strcmp(req->method, MHD_HTTP_METHOD_DELETE) == 0;
	if (!is_get && !is_delete) {
		berth_api_method_not_allowed(req);
		return;
	}
	if (!berth_api_check_digest(req, berth_api_req(req)->reference))
		return;
	if (is_get)
		get_blob(req);
	else
		delete_blob(req);
}

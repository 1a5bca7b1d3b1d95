/*
 * Blob uploads: POST /v2/<name>/blobs/uploads/ (start, monolithic with ?digest=, or mount with
 * ?mount=&from=) and GET / PATCH / PUT / DELETE /v2/<name>/blobs/uploads/<uuid>.
 * Bodies stream into the upload's data file while being hashed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/events.h"
#include "core/err.h"
#include "core/util.h"
#include "http/range.h"
#include "registry/reference.h"

struct upload_req {
	struct berth_upload *upload;
	const char *digest; /* PUT / monolithic POST: the digest to commit with */
	int one_shot;       /* a monolithic POST: the client never learns the session's id */
	int committed;
};

static void add_upload_headers(struct berth_request *req, struct MHD_Response *resp, const char *uuid,
			       uint64_t size)
{
	char location[BERTH_NAME_MAX + 320];
	char range[48];
	snprintf(location, sizeof(location), "%s/v2/%s/blobs/uploads/%s", req->url_prefix,
		 berth_api_req(req)->name, uuid);
	/* Distribution's form: inclusive end, and "0-0" for an empty upload. */
	snprintf(range, sizeof(range), "0-%" PRIu64, size > 0 ? size - 1 : 0);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_RANGE, range);
	MHD_add_response_header(resp, "Docker-Upload-UUID", uuid);
	MHD_add_response_header(resp, "Blob-Upload-Session-ID", uuid);
}

static void send_upload_status(struct berth_request *req, unsigned status, const char *uuid,
			       uint64_t size)
{
	struct MHD_Response *resp = berth_resp_empty();
	add_upload_headers(req, resp, uuid, size);
	berth_req_send(req, status, resp, 0);
}

static void send_blob_created(struct berth_request *req, const char *digest)
{
	char location[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 272];
	struct MHD_Response *resp = berth_resp_empty();
	snprintf(location, sizeof(location), "%s/v2/%s/blobs/%s", req->url_prefix,
		 berth_api_req(req)->name, digest);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	MHD_add_response_header(resp, "Docker-Content-Digest", digest);
	berth_req_send(req, MHD_HTTP_CREATED, resp, 0);
}

static void upload_unknown(struct berth_request *req)
{
	berth_api_answer(req, BERTH_API_UPLOAD_UNKNOWN, "blob upload unknown to registry",
			NULL);
}

static void range_invalid(struct berth_request *req, const char *uuid, uint64_t size)
{
	size_t len;
	struct MHD_Response *resp = berth_api_error_response(&len, req, BERTH_API_RANGE_INVALID, NULL,
							     NULL);
	add_upload_headers(req, resp, uuid, size);
	berth_req_send(req, berth_api_condition_status(BERTH_API_RANGE_INVALID), resp, len);
}

/* ---- body handling shared by PATCH, PUT and monolithic POST ---- */

/* Flow control of a body whose upload pipe is full (registry.h, berth_upload_offer): the
 * connection waits, suspended, for room, instead of the polling thread. */
static void hold_body(void *req)
{
	berth_req_hold_body(req);
}

static void release_body(void *req)
{
	berth_req_resume_body(req);
}

static int on_upload_body(struct berth_request *req, const char *data, size_t n)
{
	struct upload_req *st = req->body_state;
	int rc = berth_upload_offer(st->upload, data, n, hold_body, release_body, req);
	if (rc == BERTH_EBUSY)
		return rc; /* held: handed again once resumed */
	if (rc == BERTH_ERANGE)
		berth_api_fail(req, BERTH_API_RANGE_INVALID,
			       "the upload is complete: nothing can be appended");
	else if (rc < 0)
		berth_api_storage_fail(req, rc, "cannot write upload");
	return rc;
}

static void cleanup_upload(struct berth_request *req)
{
	struct upload_req *st = req->body_state;
	if (!st)
		return;
	/* A one-request upload that failed (its body cut short, no room for it, or its commit
	 * refused) cannot be resumed by anyone: its session goes at once, not at the purge. */
	if (st->one_shot && !st->committed)
		berth_upload_cancel(st->upload);
	berth_upload_close(st->upload);
	free(st);
	req->body_state = NULL;
}

static void on_patch_complete(struct berth_request *req)
{
	struct upload_req *st = req->body_state;
	int rc = berth_upload_checkpoint(st->upload);
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot save upload state");
		return;
	}
	send_upload_status(req, MHD_HTTP_ACCEPTED, berth_upload_uuid(st->upload),
			   berth_upload_size(st->upload));
}

static void on_commit_complete(struct berth_request *req)
{
	struct upload_req *st = req->body_state;
	uint64_t size = berth_upload_size(st->upload);
	int rc = berth_upload_commit(st->upload, st->digest);
	if (rc == BERTH_EDIGEST) {
		char detail[BERTH_DIGEST_STR_MAX + 16];
		berth_api_digest_detail(detail, sizeof(detail), st->digest);
		berth_api_answer(req, BERTH_API_DIGEST_INVALID,
				"provided digest did not match uploaded content", detail);
		return;
	}
	if (rc == BERTH_EDENIED) {
		berth_api_answer(req, BERTH_API_DENIED, berth_err_message(rc), NULL);
		return;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot commit upload");
		return;
	}
	st->committed = 1;
	berth_api_event_blob(req, "push", st->digest, size, NULL);
	send_blob_created(req, st->digest);
}

/* Opens the session for a body-carrying request and installs the callbacks. 0 if answered.
 * With a digest the body is the rest of the blob (a PUT, or with uuid NULL a monolithic POST):
 * it may go straight to the blob's place (berth_upload_open_whole). */
static int begin_body(struct berth_request *req, const char *uuid, const char *digest,
		      berth_complete_cb complete)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct berth_upload *up = NULL;
	/* A PUT without a body ends a chunked upload: its session holds the bytes already. */
	const char *cl = berth_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int has_body = cl ? strcmp(cl, "0") != 0
			  : berth_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	int whole = digest && (uuid == NULL || has_body);
	int rc = whole ? berth_upload_open_whole(&up, ar->registry, ar->name, uuid, digest)
		       : berth_upload_open(&up, ar->registry, ar->name, uuid);
	if (rc == BERTH_ENOTFOUND) {
		upload_unknown(req);
		return 0;
	}
	if (rc == BERTH_EBUSY && uuid) {
		uint64_t size = 0;
		berth_upload_stat(&size, ar->registry, ar->name, uuid);
		range_invalid(req, uuid, size);
		return 0;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot open upload");
		return 0;
	}
	uint64_t len = 0;
	if (cl && berth_parse_u64(cl, &len) == 0 && len > 0)
		berth_upload_expect(up, len);
	if ((rc = berth_upload_prepare_body(up)) < 0) {
		berth_upload_close(up);
		berth_api_storage_error(req, rc, "cannot open upload");
		return 0;
	}
	struct upload_req *st = berth_calloc(1, sizeof(*st));
	st->upload = up;
	st->digest = digest;
	berth_api_read_body(req, st, on_upload_body, complete, cleanup_upload);
	return 1;
}

/* A chunk's Content-Range must start where the upload ends and match its length. */
static int check_content_range(struct berth_request *req)
{
	struct upload_req *st = req->body_state;
	const char *cr = berth_req_header(req, MHD_HTTP_HEADER_CONTENT_RANGE);
	const char *cl = berth_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t size = berth_upload_size(st->upload), start, end, len;

	if (!cr)
		return 1;
	if (berth_content_range_parse(cr, &start, &end) < 0 || start != size ||
	    (cl && (berth_parse_u64(cl, &len) < 0 || len != end - start + 1))) {
		range_invalid(req, berth_upload_uuid(st->upload), size);
		return 0;
	}
	return 1;
}

/* ---- POST /v2/<name>/blobs/uploads/ ---- */

static int try_mount(struct berth_request *req, const char *digest, const char *from)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (!berth_digest_valid(digest) || (from && !berth_name_valid(from)))
		return 0;
	uint64_t size = 0;
	int rc = berth_blob_mount(&size, ar->registry, ar->name, digest, from);
	if (rc == BERTH_EDENIED) {
		berth_api_answer(req, BERTH_API_DENIED, berth_err_message(rc), NULL);
		return 1;
	}
	if (rc == 0) {
		berth_api_event_blob(req, "mount", digest, size, from);
		send_blob_created(req, digest);
		return 1;
	}
	if (rc != BERTH_ENOTFOUND) {
		berth_api_storage_error(req, rc, "cannot mount blob");
		return 1;
	}
	return 0;
}

void berth_api_uploads_post(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	const char *mount = berth_req_query(req, "mount");
	const char *from = berth_req_query(req, "from");
	const char *digest = berth_req_query(req, "digest");
	char uuid[37];
	int rc;

	if (strcmp(req->method, MHD_HTTP_METHOD_POST) != 0) {
		berth_api_method_not_allowed(req);
		return;
	}
	if (from && !*from)
		from = NULL;
	/* Credentials that do not reach the source make the mount impossible, not the upload:
	 * the spec's answer to a mount that cannot be done is a 202 upload session (Distribution
	 * answers 401, on which containerd before 2.1 and buildkit abort the whole push). Without
	 * `from` the blob would come from wherever it is, which auth cannot vouch for: with auth,
	 * only a named source is mounted from. */
	if (mount && (from ? berth_api_may_pull(req, from) : ar->auth == NULL) &&
	    try_mount(req, mount, from))
		return;
	if (digest && !berth_api_check_digest(req, digest))
		return;
	if (digest) {
		/* A monolithic upload: the session, if one is needed, is made by the open. */
		if (begin_body(req, NULL, digest, on_commit_complete))
			((struct upload_req *)req->body_state)->one_shot = 1;
		return;
	}
	if ((rc = berth_upload_create(ar->registry, ar->name, uuid)) < 0) {
		berth_api_storage_error(req, rc, "cannot create upload");
		return;
	}
	send_upload_status(req, MHD_HTTP_ACCEPTED, uuid, 0);
}

/* ---- /v2/<name>/blobs/uploads/<uuid> ---- */

static void get_status(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	uint64_t size = 0;
	int rc = berth_upload_stat(&size, ar->registry, ar->name, ar->reference);
	if (rc == BERTH_ENOTFOUND)
		upload_unknown(req);
	else if (rc < 0)
		berth_api_storage_error(req, rc, "cannot stat upload");
	else
		send_upload_status(req, MHD_HTTP_NO_CONTENT, ar->reference, size);
}

static void cancel(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct berth_upload *up = NULL;
	int rc = berth_upload_open(&up, ar->registry, ar->name, ar->reference);
	if (rc == BERTH_ENOTFOUND) {
		upload_unknown(req);
		return;
	}
	if (rc == 0)
		rc = berth_upload_cancel(up);
	berth_upload_close(up);
	if (rc < 0 && rc != BERTH_EBUSY) {
		berth_api_storage_error(req, rc, "cannot cancel upload");
		return;
	}
	if (rc == BERTH_EBUSY) {
		berth_api_answer(req, BERTH_API_UPLOAD_BUSY,
				"upload is in use by another request", NULL);
		return;
	}
	berth_req_send(req, MHD_HTTP_NO_CONTENT, berth_resp_empty(), 0);
}

void berth_api_upload(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	const char *m = req->method;
	if (strcmp(m, MHD_HTTP_METHOD_GET) == 0 || berth_req_is_head(req)) {
		get_status(req);
	} else if (strcmp(m, MHD_HTTP_METHOD_DELETE) == 0) {
		cancel(req);
	} else if (strcmp(m, MHD_HTTP_METHOD_PATCH) == 0) {
		if (begin_body(req, ar->reference, NULL, on_patch_complete))
			check_content_range(req);
	} else if (strcmp(m, MHD_HTTP_METHOD_PUT) == 0) {
		const char *digest = berth_req_query(req, "digest");
		if (!berth_api_check_digest(req, digest))
			return;
		if (begin_body(req, ar->reference, digest, on_commit_complete))
			check_content_range(req);
	} else {
		berth_api_method_not_allowed(req);
	}
}

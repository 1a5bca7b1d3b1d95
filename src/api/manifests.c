/* GET, HEAD, PUT and DELETE /v2/<name>/manifests/<reference>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "api/events.h"
#include "core/err.h"
#include "core/util.h"
#include "http/range.h"
#include "registry/manifest.h"
#include "registry/reference.h"
#include "registry/retention.h"

static void manifest_unknown(struct berth_request *req)
{
	berth_api_answer(req, BERTH_API_MANIFEST_UNKNOWN, "manifest unknown", NULL);
}

static void add_digest_headers(struct MHD_Response *resp, const char *digest)
{
	char etag[BERTH_DIGEST_STR_MAX + 2];
	snprintf(etag, sizeof(etag), "\"%s\"", digest);
	MHD_add_response_header(resp, "Docker-Content-Digest", digest);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
}

/* The manifest media types an Accept header names (several headers, comma-separated lists,
 * parameters such as q= ignored, as Distribution parses them). */
struct accepted_types {
	int oci_manifest, oci_index, docker_manifest, docker_list;
};

static int essence_is(const char *s, size_t n, const char *type)
{
	return n == strlen(type) && strncasecmp(s, type, n) == 0;
}

static void note_accepted(struct accepted_types *a, const char *item, size_t n)
{
	size_t len = strcspn(item, ";");
	if (len > n)
		len = n;
	while (len && (*item == ' ' || *item == '\t')) {
		item++;
		len--;
	}
	while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
		len--;
	a->oci_manifest |= essence_is(item, len, BERTH_MT_OCI_MANIFEST);
	a->oci_index |= essence_is(item, len, BERTH_MT_OCI_INDEX);
	a->docker_manifest |= essence_is(item, len, BERTH_MT_DOCKER_MANIFEST);
	a->docker_list |= essence_is(item, len, BERTH_MT_DOCKER_LIST);
}

static enum MHD_Result collect_accept(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_ACCEPT) != 0 || !value)
		return MHD_YES;
	for (const char *item = value;;) {
		size_t n = strcspn(item, ",");
		note_accepted(cls, item, n);
		if (!item[n])
			break;
		item += n + 1;
	}
	return MHD_YES;
}

/*
 * Why an OCI manifest or index may not be served to this client, or NULL. A client whose Accept
 * names manifest types but not the stored OCI one gets a 404, as from Distribution (an old
 * Docker client would fail on the OCI body). One whose Accept names no manifest type at all (or
 * that sends none) is served whatever is stored, where Distribution answers 404 to it as well.
 */
static const char *not_acceptable(struct berth_request *req, const char *media_type)
{
	struct accepted_types a = { 0 };
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_accept, &a);
	if (!(a.oci_manifest | a.oci_index | a.docker_manifest | a.docker_list))
		return NULL;
	if (strcmp(media_type, BERTH_MT_OCI_MANIFEST) == 0 && !a.oci_manifest)
		return "OCI manifest found, but accept header does not support OCI manifests";
	if (strcmp(media_type, BERTH_MT_OCI_INDEX) == 0 && !a.oci_index)
		return "OCI index found, but accept header does not support OCI indexes";
	return NULL;
}

static void get_manifest(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct berth_manifest_content mc;
	int rc = berth_manifest_get(&mc, ar->registry, ar->name, ar->reference);
	if (rc == BERTH_ENOTFOUND) {
		manifest_unknown(req);
		return;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot read manifest");
		return;
	}
	if (!berth_req_is_head(req))
		berth_retention_record_pull(ar->registry, ar->name, ar->reference);
	berth_api_send_manifest(req, &mc);
}

void berth_api_send_manifest(struct berth_request *req, struct berth_manifest_content *mc_in)
{
	struct berth_manifest_content mc = *mc_in;
	memset(mc_in, 0, sizeof(*mc_in));
	berth_api_event_manifest(req, "pull", mc.digest, mc.media_type, mc.body, mc.len);
	if (berth_api_etag_matches(req, mc.digest)) {
		struct MHD_Response *resp = berth_resp_empty();
		add_digest_headers(resp, mc.digest);
		berth_req_send(req, MHD_HTTP_NOT_MODIFIED, resp, 0);
		berth_manifest_content_release(&mc);
		return;
	}
	const char *refusal = not_acceptable(req, mc.media_type);
	if (refusal) {
		berth_api_answer(req, BERTH_API_MANIFEST_UNKNOWN, refusal, NULL);
		berth_manifest_content_release(&mc);
		return;
	}
	size_t len = mc.len;
	struct MHD_Response *resp = berth_resp_take(mc.body, len);
	mc.body = NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mc.media_type);
	add_digest_headers(resp, mc.digest);
	berth_req_send(req, MHD_HTTP_OK, resp, len);
}

/* ---- PUT ---- */

static int on_manifest_body(struct berth_request *req, const char *data, size_t n)
{
	struct berth_buf *body = req->body_state;
	if (berth_buf_append(body, data, n) < 0) {
		berth_api_fail(req, BERTH_API_MANIFEST_TOO_LARGE,
			       "manifest too large");
		return BERTH_ETOOLARGE;
	}
	return 0;
}

static void cleanup_manifest(struct berth_request *req)
{
	struct berth_buf *body = req->body_state;
	if (!body)
		return;
	berth_buf_release(body);
	free(body);
	req->body_state = NULL;
}

/* The answer to a failed put, with the message berth_manifest_put set (core/err.h). */
static void put_failed(struct berth_request *req, int rc, const struct berth_manifest_put_result *res)
{
	char detail[BERTH_DIGEST_STR_MAX + 16];
	switch (rc) {
	case BERTH_ENOTFOUND:
		berth_api_digest_detail(detail, sizeof(detail), res->missing);
		berth_api_answer(req, BERTH_API_MANIFEST_BLOB_UNKNOWN, berth_err_message(rc), detail);
		break;
	case BERTH_EDIGEST:
		berth_api_answer(req, BERTH_API_DIGEST_INVALID, berth_err_message(rc), NULL);
		break;
	case BERTH_EINVALID:
		berth_api_answer(req, BERTH_API_MANIFEST_INVALID, berth_err_message(rc), NULL);
		break;
	case BERTH_ETOOLARGE:
		berth_api_answer(req, BERTH_API_MANIFEST_TOO_LARGE, berth_err_message(rc), NULL);
		break;
	case BERTH_EDENIED:
		berth_api_answer(req, BERTH_API_DENIED, berth_err_message(rc), NULL);
		break;
	default:
		berth_api_storage_error(req, rc, "cannot store manifest");
		break;
	}
}

static void on_manifest_complete(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct berth_buf *body = req->body_state;
	struct berth_manifest_put_result res;
	char location[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 280];
	const char *ct = berth_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);

	int rc = berth_manifest_put(&res, ar->registry, ar->name, ar->reference, ct,
				    body->data ? body->data : "", body->len);
	if (rc < 0) {
		put_failed(req, rc, &res);
		return;
	}
	berth_api_event_manifest(req, "push", res.digest, NULL, body->data ? body->data : "", body->len);
	struct MHD_Response *resp = berth_resp_empty();
	snprintf(location, sizeof(location), "%s/v2/%s/manifests/%s", req->url_prefix, ar->name,
		 res.digest);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	MHD_add_response_header(resp, "Docker-Content-Digest", res.digest);
	if (res.subject[0])
		MHD_add_response_header(resp, "OCI-Subject", res.subject);
	berth_req_send(req, MHD_HTTP_CREATED, resp, 0);
}

static void put_manifest(struct berth_request *req)
{
	size_t max = berth_registry_manifest_max(berth_api_req(req)->registry);
	const char *cl = berth_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t declared;

	if (cl && berth_parse_u64(cl, &declared) == 0 && declared > max) {
		berth_api_answer(req, BERTH_API_MANIFEST_TOO_LARGE, "manifest too large",
				NULL);
		return;
	}
	struct berth_buf *body = berth_calloc(1, sizeof(*body));
	body->cap = max;
	berth_api_read_body(req, body, on_manifest_body, on_manifest_complete, cleanup_manifest);
}

/* ---- DELETE ---- */

/* Distribution untags a deleted manifest's tags one by one, each a tag delete event. */
struct untagged {
	size_t n;
	char **tags;
};

static void note_untagged(const char *tag, void *payload)
{
	struct untagged *u = payload;
	u->tags = berth_realloc(u->tags, (u->n + 1) * sizeof(*u->tags));
	u->tags[u->n++] = berth_strdup(tag);
}

static void delete_manifest(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	if (!berth_registry_delete_enabled(ar->registry)) {
		berth_api_answer(req, BERTH_API_UNSUPPORTED,
				"the operation is unsupported", NULL);
		return;
	}
	struct untagged untagged = { 0, NULL };
	int rc = berth_manifest_delete_untagging(ar->registry, ar->name, ar->reference,
						 ar->notify ? note_untagged : NULL, &untagged);
	if (rc == 0 && strchr(ar->reference, ':'))
		berth_api_event_delete(req, ar->reference, NULL);
	else if (rc == 0)
		berth_api_event_delete(req, NULL, ar->reference);
	for (size_t i = 0; i < untagged.n; i++) {
		if (rc == 0)
			berth_api_event_delete(req, NULL, untagged.tags[i]);
		free(untagged.tags[i]);
	}
	free(untagged.tags);
	if (rc == BERTH_ENOTFOUND) {
		manifest_unknown(req);
		return;
	}
	if (rc == BERTH_EDENIED) {
		berth_api_answer(req, BERTH_API_DENIED,
				 strchr(ar->reference, ':') ? "the manifest is named by an immutable tag"
							    : "the tag is immutable", NULL);
		return;
	}
	if (rc < 0) {
		berth_api_storage_error(req, rc, "cannot delete manifest");
		return;
	}
	berth_req_send(req, MHD_HTTP_ACCEPTED, berth_resp_empty(), 0);
}

/* A reference is a digest (contains ':') or a tag. When it is neither, a read or a delete
 * answers 404 MANIFEST_UNKNOWN, as Distribution (whose routes match no such reference) and the
 * OCI conformance suite expect; a push answers 400. Returns 0 when it has answered. */
static int check_reference(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	int is_digest = strchr(ar->reference, ':') != NULL;
	if (is_digest ? berth_digest_valid(ar->reference) : berth_tag_valid(ar->reference))
		return 1;
	if (strcmp(req->method, MHD_HTTP_METHOD_PUT) != 0) {
		manifest_unknown(req);
		return 0;
	}
	if (is_digest)
		return berth_api_check_digest(req, ar->reference);
	berth_api_answer(req, BERTH_API_TAG_INVALID, "manifest tag did not match URI", NULL);
	return 0;
}

void berth_api_manifest(struct berth_request *req)
{
	const char *m = req->method;
	if (!check_reference(req))
		return;
	if (berth_api_req(req)->proxy && strcmp(m, MHD_HTTP_METHOD_GET) != 0 && !berth_req_is_head(req))
		berth_api_answer(req, BERTH_API_UNSUPPORTED, "the operation is unsupported", NULL);
	else if (berth_api_req(req)->proxy)
		berth_api_proxied_manifest(req);
	else if (strcmp(m, MHD_HTTP_METHOD_GET) == 0 || berth_req_is_head(req))
		get_manifest(req);
	else if (strcmp(m, MHD_HTTP_METHOD_PUT) == 0)
		put_manifest(req);
	else if (strcmp(m, MHD_HTTP_METHOD_DELETE) == 0)
		delete_manifest(req);
	else
		berth_api_method_not_allowed(req);
}

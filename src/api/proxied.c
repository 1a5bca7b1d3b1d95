/*
 * The pull-through cache's answers (proxy/proxy.h). Whatever asks the upstream runs on the
 * proxy's threads, the request handed on to them (berth_req_hand_off) and parked meanwhile; the
 * answer is made where storage work runs (berth_req_continue: a storage worker with remote
 * storage or a Redis cache, else the request's polling thread), since it may read storage. A
 * blob not cached streams from the upstream as it arrives: the response's content reader takes
 * what the fetch has and pauses the connection when nothing is there yet
 * (berth_req_pause_body), to be resumed by the fetch.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/events.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "proxy/proxy.h"

#define STREAM_BLOCK (64 * 1024)

/* What a parked request's job hands back; the first member of each call. */
struct parked {
	struct berth_request *req;
	struct berth_proxy *proxy;
	berth_job_fn job;
	berth_complete_cb answer;
	int rc;
	char name[BERTH_NAME_MAX + 1];
	char reference[BERTH_TAG_MAX + BERTH_DIGEST_STR_MAX];
};

static void init_parked(struct parked *c, struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	c->req = req;
	c->proxy = ar->proxy;
	snprintf(c->name, sizeof(c->name), "%s", ar->name);
	snprintf(c->reference, sizeof(c->reference), "%s", ar->reference);
}

/* berth_req_hand_off's start: the job goes to the proxy's threads. */
static void submit_job(void *arg)
{
	struct parked *call = arg;
	if (berth_proxy_submit(call->proxy, call->job, call) < 0) {
		call->rc = BERTH_EBUSY;
		berth_req_continue(call->req, call->answer);
	}
}

/* Parks req and runs job(call) on the proxy's threads; answer runs once it is done (job ends
 * with job_done). */
static void park(struct berth_request *req, struct parked *call, berth_job_fn job, berth_complete_cb answer)
{
	call->job = job;
	call->answer = answer;
	req->body_state = call;
	berth_req_hand_off(req, submit_job, call);
}

/* The last act of a job: the request is answered from here on. */
static void job_done(struct parked *call)
{
	berth_req_continue(call->req, call->answer);
}

/* The answer to a failure to get something from the upstream. */
static void upstream_failed(struct berth_request *req, int rc)
{
	if (rc == BERTH_EBUSY)
		berth_api_answer(req, BERTH_API_TOO_MANY_REQUESTS, "too many requests to the upstream at once", NULL);
	else
		berth_api_answer(req, BERTH_API_UNAVAILABLE, "the upstream registry cannot be reached", NULL);
}

/* ---- manifests ---- */

struct manifest_call {
	struct parked base;
	struct berth_manifest_content mc;
	int head; /* a HEAD: no blob is prefetched for it */
};

static void manifest_job(void *arg)
{
	struct manifest_call *c = arg;
	struct berth_proxy *proxy = c->base.proxy;
	struct berth_proxy_pending *pending = NULL;
	const char *name = c->base.name, *reference = c->base.reference;
	c->base.rc = berth_proxy_manifest_get(&c->mc, proxy, name, reference, &pending);
	/* Before the answer: the GET by digest that may follow a HEAD finds its mark, and the
	 * blobs' fetches are under way when the client, answered, asks for them. */
	if (c->head)
		berth_proxy_mark_prefetch(proxy, pending);
	else if (pending)
		berth_proxy_prefetch(proxy, pending);
	else if (c->base.rc == 0 && strchr(reference, ':'))
		berth_proxy_prefetch_marked(proxy, name, reference, &c->mc); /* by digest, from the cache */
	job_done(&c->base);
	/* c is the answer's now: a manifest fetched is stored while the client has it already */
	berth_proxy_manifest_store(proxy, pending);
}

static void manifest_answer(struct berth_request *req)
{
	struct manifest_call *c = req->body_state;
	req->body_state = NULL;
	if (c->base.rc == 0)
		berth_api_send_manifest(req, &c->mc);
	else if (c->base.rc == BERTH_ENOTFOUND)
		berth_api_answer(req, BERTH_API_MANIFEST_UNKNOWN, "manifest unknown", NULL);
	else
		upstream_failed(req, c->base.rc);
	berth_manifest_content_release(&c->mc);
	free(c);
}

void berth_api_proxied_manifest(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	/* By digest and cached: no upstream call, served here at once. */
	if (strchr(ar->reference, ':')) {
		struct berth_manifest_content mc;
		int rc = berth_manifest_get(&mc, ar->registry, ar->name, ar->reference);
		if (rc == 0) {
			berth_proxy_note_hit(ar->proxy, 0);
			/* before the answer: its fetches are under way when the client asks */
			if (!berth_req_is_head(req))
				berth_proxy_prefetch_marked(ar->proxy, ar->name, ar->reference, &mc);
			berth_api_send_manifest(req, &mc);
			berth_manifest_content_release(&mc);
			return;
		}
	}
	struct manifest_call *c = berth_calloc(1, sizeof(*c));
	init_parked(&c->base, req);
	c->head = berth_req_is_head(req);
	park(req, &c->base, manifest_job, manifest_answer);
}

/* ---- tags ---- */

struct tags_call {
	struct parked base;
	struct berth_strvec tags;
};

static void tags_job(void *arg)
{
	struct tags_call *c = arg;
	c->base.rc = berth_proxy_tags(&c->tags, c->base.proxy, c->base.name);
	job_done(&c->base);
}

static void tags_answer(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct tags_call *c = req->body_state;
	req->body_state = NULL;
	if (c->base.rc == 0) {
		char link_path[BERTH_NAME_MAX + 32];
		snprintf(link_path, sizeof(link_path), "/v2/%s/tags/list", ar->name);
		berth_api_send_page(req, (const char *const *)c->tags.items, c->tags.n, "name", ar->name, "tags",
				    link_path, 0, berth_registry_tags_max(ar->registry));
	} else {
		/* The upstream cannot list them: the tags cached here, as Distribution does. */
		ar->proxy = NULL;
		berth_api_tags(req);
	}
	berth_strvec_release(&c->tags);
	free(c);
}

void berth_api_proxied_tags(struct berth_request *req)
{
	struct tags_call *c = berth_calloc(1, sizeof(*c));
	init_parked(&c->base, req);
	park(req, &c->base, tags_job, tags_answer);
}

/* ---- blobs not cached ---- */

static void blob_unknown(struct berth_request *req, const char *digest)
{
	char detail[BERTH_DIGEST_STR_MAX + 16];
	berth_api_digest_detail(detail, sizeof(detail), digest);
	berth_api_answer(req, BERTH_API_BLOB_UNKNOWN, "blob unknown to registry", detail);
}

struct stat_call {
	struct parked base;
	uint64_t size;
};

static void stat_job(void *arg)
{
	struct stat_call *c = arg;
	c->base.rc = berth_proxy_blob_stat(&c->size, c->base.proxy, c->base.name, c->base.reference);
	job_done(&c->base);
}

/* Never called for HEAD: MHD sends the headers (with Content-Length) only. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stat_answer(struct berth_request *req)
{
	struct stat_call *c = req->body_state;
	req->body_state = NULL;
	if (c->base.rc == 0) {
		struct MHD_Response *resp = MHD_create_response_from_callback(c->size, STREAM_BLOCK, no_body, NULL, NULL);
		berth_api_blob_headers(resp, c->base.reference);
		berth_req_send(req, MHD_HTTP_OK, resp, c->size);
	} else if (c->base.rc == BERTH_ENOTFOUND) {
		blob_unknown(req, c->base.reference);
	} else {
		upstream_failed(req, c->base.rc);
	}
	free(c);
}

struct blob_stream {
	struct berth_request *req;
	struct berth_proxy_fetch *fetch;
	_Atomic int streaming; /* the answer is sent: notify resumes the body, not the request */
	_Atomic int pending;   /* the fetch's first notify and berth_proxy_fetch_start's return: the
				* later of the two continues the request (notify may come first) */
};

static void stream_answer(struct berth_request *req);

/* One of the two events the answer waits for (blob_stream.pending). */
static void stream_ready(struct blob_stream *s)
{
	if (atomic_fetch_sub(&s->pending, 1) == 1)
		berth_req_continue(s->req, stream_answer);
}

/* From the fetch thread: news for a parked request or a paused body. */
static void stream_notify(void *payload)
{
	struct blob_stream *s = payload;
	if (atomic_load(&s->streaming))
		berth_req_resume_body(s->req);
	else
		stream_ready(s);
}

static void stream_pause(void *payload)
{
	struct blob_stream *s = payload;
	berth_req_pause_body(s->req);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct blob_stream *s = cls;
	ssize_t n = berth_proxy_fetch_read(s->fetch, buf, max, stream_pause, s);
	if (n > 0)
		return n;
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n == BERTH_EBUSY)
		return 0; /* paused: the fetch resumes the connection when bytes come */
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
	struct blob_stream *s = cls;
	berth_proxy_fetch_release(s->fetch);
	free(s);
}

static void stream_answer(struct berth_request *req)
{
	struct berth_api_request *ar = berth_api_req(req);
	struct blob_stream *s = req->body_state;
	uint64_t size = 0;
	req->body_state = NULL;
	int rc = s->fetch ? berth_proxy_fetch_status(s->fetch, &size) : BERTH_EBUSY;
	if (rc < 0) {
		berth_proxy_fetch_release(s->fetch);
		free(s);
		if (rc == BERTH_EEXISTS) /* another request's fetch has stored it meanwhile */
			berth_api_blob(req);
		else if (rc == BERTH_ENOTFOUND)
			blob_unknown(req, ar->reference);
		else
			upstream_failed(req, rc);
		return;
	}
	atomic_store(&s->streaming, 1);
	struct MHD_Response *resp = MHD_create_response_from_callback(size, STREAM_BLOCK, stream_read, s, stream_free);
	if (!resp) {
		stream_free(s);
		berth_api_storage_error(req, BERTH_ERROR, "cannot stream blob");
		return;
	}
	berth_api_blob_headers(resp, ar->reference);
	berth_api_event_blob(req, "pull", ar->reference, size, NULL);
	berth_req_send(req, MHD_HTTP_OK, resp, size);
}

/* berth_req_hand_off's start: joins or starts the blob's fetch, whose notify continues. */
static void start_stream(void *arg)
{
	struct blob_stream *s = arg;
	struct berth_api_request *ar = berth_api_req(s->req);
	atomic_store(&s->pending, 2);
	if (berth_proxy_fetch_start(&s->fetch, ar->proxy, ar->name, ar->reference, stream_notify, s) < 0) {
		s->fetch = NULL; /* no notify will come */
		berth_req_continue(s->req, stream_answer);
		return;
	}
	stream_ready(s);
}

void berth_api_proxied_blob(struct berth_request *req)
{
	if (berth_req_is_head(req)) {
		struct stat_call *c = berth_calloc(1, sizeof(*c));
		init_parked(&c->base, req);
		park(req, &c->base, stat_job, stat_answer);
		return;
	}
	struct blob_stream *s = berth_calloc(1, sizeof(*s));
	s->req = req;
	req->body_state = s;
	berth_req_hand_off(req, start_stream, s);
}

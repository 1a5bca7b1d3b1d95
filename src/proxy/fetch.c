/*
 * A blob streamed from the upstream to one client while it is stored (proxy/proxy.h). The
 * fetch thread writes each piece to an upload session and into a bounded ring the client's
 * reader drains, waiting while the ring is full (memory stays flat in blob size). The upload
 * is committed (its digest verified) before the last byte is handed over and before anything
 * is linked; a broken transfer or a wrong digest cancels it, so nothing partial is ever linked.
 * A reader that goes away leaves the fetch to finish storing the blob.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "proxy/proxy_int.h"
#include "registry/reference.h"

#define RING (1u << 20)

enum fetch_state { FETCH_WAITING, FETCH_STREAMING, FETCH_DONE, FETCH_FAILED };

struct berth_proxy_fetch {
	struct berth_proxy *p;
	char name[BERTH_NAME_MAX + 1];
	char digest[BERTH_DIGEST_STR_MAX];
	berth_fetch_notify notify;
	void *payload;

	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	int refs;          /* the reader's and the thread's */
	int attached;      /* the reader has not released it */
	int reader_waiting; /* a read or the status answered BERTH_EBUSY: notify when news come */
	int notifying;     /* notify calls running (release waits for them) */
	enum fetch_state state;
	int failure;       /* FETCH_FAILED: BERTH_ENOTFOUND or BERTH_ERROR */
	uint64_t size;
	int streamed;      /* the upstream began sending the blob */
	uint64_t head, tail; /* bytes read by the client, bytes put into the ring */
	char *ring;

	/* The fetch thread's own. */
	int storing;       /* this fetch claimed the digest: it stores the blob */
	struct berth_upload *upload;
	struct berth_hasher *hasher; /* when not storing: the digest is checked here */
	int store_failed;
};

static void fetch_unref(struct berth_proxy_fetch *f)
{
	pthread_mutex_lock(&f->lock);
	int last = --f->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (!last)
		return;
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f->ring);
	free(f);
}

/* Tells a waiting reader; called with the lock held, which it drops around the call. */
static void wake_reader(struct berth_proxy_fetch *f)
{
	if (!f->attached || !f->reader_waiting)
		return;
	f->reader_waiting = 0;
	f->notifying++;
	pthread_mutex_unlock(&f->lock);
	f->notify(f->payload);
	pthread_mutex_lock(&f->lock);
	f->notifying--;
	pthread_cond_broadcast(&f->cond);
}

static void on_start(const struct berth_upstream_result *res, void *payload)
{
	struct berth_proxy_fetch *f = payload;
	pthread_mutex_lock(&f->lock);
	if (f->state == FETCH_WAITING) {
		if (res->status == 200 && res->length >= 0) {
			f->size = (uint64_t)res->length;
			f->streamed = 1;
			f->state = FETCH_STREAMING;
		} else {
			f->state = FETCH_FAILED;
			f->failure = res->status == 404 ? BERTH_ENOTFOUND : BERTH_ERROR;
		}
		wake_reader(f);
	}
	pthread_mutex_unlock(&f->lock);
}

static int on_body(const void *data, size_t n, void *payload)
{
	struct berth_proxy_fetch *f = payload;
	const char *p = data;

	if (f->storing && !f->store_failed) {
		int rc = berth_upload_write(f->upload, data, n);
		if (rc < 0) {
			/* The client still gets its bytes; the blob is just not cached this time. */
			berth_error("cannot cache blob %s@%s: %s", f->name, f->digest, berth_err_reason(rc));
			f->store_failed = 1;
		}
	}
	if (f->hasher)
		berth_hasher_update(f->hasher, data, n);
	pthread_mutex_lock(&f->lock);
	if (f->tail + n > f->size) { /* more than announced */
		pthread_mutex_unlock(&f->lock);
		return BERTH_ERANGE;
	}
	while (n > 0) {
		while (f->attached && f->tail - f->head == RING)
			pthread_cond_wait(&f->cond, &f->lock);
		if (!f->attached) {
			f->tail += n; /* nobody reads: the bytes only go to storage */
			break;
		}
		size_t room = RING - (size_t)(f->tail - f->head);
		size_t at = (size_t)(f->tail % RING);
		size_t k = n < room ? n : room;
		if (k > RING - at)
			k = RING - at;
		memcpy(f->ring + at, p, k);
		f->tail += k;
		p += k;
		n -= k;
		wake_reader(f);
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* After the transfer: verifies and links (or drops) what was stored. 0 when the blob is good. */
static int finish(struct berth_proxy_fetch *f, int rc, const struct berth_upstream_result *res)
{
	struct berth_proxy *p = f->p;
	if (rc == 0 && (res->status != 200 || res->bytes != f->size))
		rc = BERTH_ERROR;
	if (rc < 0 && res->status == 200)
		berth_warn("upstream %s: blob %s@%s broke off after %llu of %llu bytes: %s",
			   berth_upstream_label(p->upstream), f->name, f->digest, (unsigned long long)res->bytes,
			   (unsigned long long)f->size, res->error[0] ? res->error : "short body");
	if (f->storing) {
		if (rc == 0 && !f->store_failed) {
			rc = berth_upload_commit(f->upload, f->digest);
			if (rc == BERTH_EDIGEST)
				berth_error("upstream %s: blob %s@%s does not match its digest: not stored",
					    berth_upstream_label(p->upstream), f->name, f->digest);
			else if (rc < 0)
				berth_error("cannot cache blob %s@%s: %s", f->name, f->digest, berth_err_reason(rc));
			else if (p->scheduler)
				berth_scheduler_add(p->scheduler, BERTH_SCHED_BLOB, f->name, f->digest, p->ttl_ms);
			/* a storage failure after a whole, verified transfer still serves the client */
			if (rc < 0 && rc != BERTH_EDIGEST)
				rc = 0;
		} else {
			berth_upload_cancel(f->upload);
		}
		berth_upload_close(f->upload);
		f->upload = NULL;
		berth_proxy__unclaim(p, f->digest);
	} else if (rc == 0) {
		char got[BERTH_DIGEST_STR_MAX];
		berth_hasher_digest(f->hasher, got);
		if (strcmp(got, f->digest) != 0) {
			berth_error("upstream %s: blob %s@%s does not match its digest (got %s)",
				    berth_upstream_label(p->upstream), f->name, f->digest, got);
			rc = BERTH_EDIGEST;
		}
	}
	return rc;
}

static void fetch_main(void *arg)
{
	struct berth_proxy_fetch *f = arg;
	struct berth_proxy *p = f->p;
	struct berth_upstream_result res;
	char path[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 32];
	char uuid[37];
	int rc = 0;

	f->storing = berth_proxy__claim(p, f->digest);
	if (f->storing) {
		rc = berth_upload_create(p->reg, f->name, uuid);
		if (rc == 0)
			rc = berth_upload_open(&f->upload, p->reg, f->name, uuid);
		if (rc < 0) {
			berth_error("cannot cache blob %s@%s: %s", f->name, f->digest, berth_err_reason(rc));
			berth_proxy__unclaim(p, f->digest);
			f->storing = 0;
		}
	}
	if (!f->storing) {
		enum berth_digest_alg alg = BERTH_ALG_SHA256;
		berth_digest_parse(f->digest, &alg, NULL);
		berth_hasher_new(&f->hasher, alg);
	}
	snprintf(path, sizeof(path), "/v2/%s/blobs/%s", f->name, f->digest);
	struct berth_upstream_call call = { .method = "GET", .path = path, .repo = f->name, .on_body = on_body,
					    .on_start = on_start, .payload = f };
	rc = berth_upstream_call(&res, p->upstream, &call);
	rc = finish(f, rc, &res);
	berth_hasher_free(f->hasher);
	f->hasher = NULL;

	pthread_mutex_lock(&f->lock);
	if (f->state == FETCH_WAITING) { /* no answer at all */
		f->state = FETCH_FAILED;
		f->failure = BERTH_ERROR;
	} else if (f->state == FETCH_STREAMING) {
		f->state = rc == 0 ? FETCH_DONE : FETCH_FAILED;
		f->failure = BERTH_ERROR;
	}
	wake_reader(f);
	pthread_mutex_unlock(&f->lock);
	fetch_unref(f);
}

int berth_proxy_fetch_start(struct berth_proxy_fetch **out, struct berth_proxy *p, const char *name,
			    const char *digest, berth_fetch_notify notify, void *payload)
{
	struct berth_proxy_fetch *f = berth_calloc(1, sizeof(*f));
	f->p = p;
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->digest, sizeof(f->digest), "%s", digest);
	f->notify = notify;
	f->payload = payload;
	f->refs = 2;
	f->attached = 1;
	f->reader_waiting = 1; /* the status is asked for once notify says */
	f->ring = berth_malloc(RING);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	atomic_fetch_add(&berth_proxy_stats.blob_misses, 1);
	if (berth_jobs_submit(p->fetches, fetch_main, f) < 0) {
		f->refs = 1;
		fetch_unref(f);
		return BERTH_EBUSY;
	}
	*out = f;
	return 0;
}

int berth_proxy_fetch_status(struct berth_proxy_fetch *f, uint64_t *size)
{
	int rc;
	pthread_mutex_lock(&f->lock);
	switch (f->state) {
	case FETCH_WAITING:
		f->reader_waiting = 1;
		rc = BERTH_EBUSY;
		break;
	case FETCH_FAILED: /* before the body began: the failure; after, the reads tell */
		*size = f->size;
		rc = f->streamed ? 0 : f->failure;
		break;
	default:
		*size = f->size;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

ssize_t berth_proxy_fetch_read(struct berth_proxy_fetch *f, char *buf, size_t max, berth_fetch_notify on_wait,
			       void *payload)
{
	ssize_t n;
	pthread_mutex_lock(&f->lock);
	/* The last byte waits for the digest's verdict. */
	uint64_t readable = f->state == FETCH_DONE ? f->tail : (f->tail == f->size && f->size ? f->tail - 1 : f->tail);
	if (f->state == FETCH_FAILED) {
		n = BERTH_ERROR;
	} else if (f->head < readable) {
		size_t at = (size_t)(f->head % RING);
		size_t k = (size_t)(readable - f->head);
		if (k > max)
			k = max;
		if (k > RING - at)
			k = RING - at;
		memcpy(buf, f->ring + at, k);
		f->head += k;
		n = (ssize_t)k;
		pthread_cond_broadcast(&f->cond); /* room in the ring */
	} else if (f->state == FETCH_DONE) {
		n = 0;
	} else {
		f->reader_waiting = 1;
		on_wait(payload);
		n = BERTH_EBUSY;
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

void berth_proxy_fetch_release(struct berth_proxy_fetch *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->attached = 0;
	f->reader_waiting = 0;
	pthread_cond_broadcast(&f->cond);
	while (f->notifying)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	fetch_unref(f);
}

/*
 * S3 storage driver on libcurl: requests are signed by curl (CURLOPT_AWS_SIGV4), connections
 * are kept by a pool of easy handles, and 500/503/SlowDown/timeouts are retried with backoff.
 *
 * Object keys are Distribution's: rootdirectory (without its leading '/') + the logical path,
 * so Distribution and berth read and write one bucket alike. Directories are key prefixes.
 *
 * Writers hold at most two parts (chunksize), in temporary files (s3_spool.c): the one filling
 * and the one being sent meanwhile. An object smaller than a part is written with
 * one PUT; a larger one with a multipart upload. flush/commit/close complete the upload, so
 * what was written is an object readers see (the driver contract); a later append continues
 * with a new multipart upload whose first parts are a server-side copy of the object (or, for
 * an object smaller than a part, its bytes read back into the buffer). An append-open first
 * looks for a multipart upload left open on the key (by ListMultipartUploads, as Distribution's
 * driver finds the uploads it leaves open between PATCHes) and continues that one. A resume
 * open (driver.h) skips that listing for an upload this process's own suspend left: one
 * ListParts shows whether it is still exactly as left (s3_resume.c).
 *
 * Readers fetch a first window, then stream the rest in one GET carrying If-Match with the first
 * answer's ETag, so a reader never mixes two versions of an object (the reader section).
 */
#include "storage/s3_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/coalesce.h"
#include "storage/s3_xml.h"
#include "storage/storage.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- keys and queries --------------------------------------------------------------------- */

static struct s3_driver *s3(struct berth_storage_driver *base)
{
	return (struct s3_driver *)base;
}

/* The key of a logical path ("/a/b" -> prefix + "a/b"); the root maps to the prefix itself. */
static char *key_of(const struct s3_driver *d, const char *path)
{
	return berth_asprintf("%s%s", d->prefix, path + 1);
}

/* The listing prefix of a directory: its key + "/" ("" or the root prefix for the root). */
static char *dir_prefix(const struct s3_driver *d, const char *path)
{
	if (strcmp(path, "/") == 0)
		return berth_strdup(d->prefix);
	return berth_asprintf("%s%s/", d->prefix, path + 1);
}

static int is_valid_object(const char *path)
{
	return berth_storage_path_valid(path) && strcmp(path, "/") != 0;
}

/* ---- listing ------------------------------------------------------------------------------ */

/* One entry of a listing: a key (below the prefix listed) or a common prefix. */
typedef int (*s3_entry_cb)(const char *key, size_t keylen, uint64_t size, int64_t mtime, int is_prefix,
			   void *payload);

/* Feeds every element `tag` of one ListObjectsV2 page to cb. */
static int list_page_entries(const char *xml, const char *end, const char *tag, int is_prefix,
			     s3_entry_cb cb, void *payload)
{
	const char *p = xml, *after;
	size_t n;
	const char *e;
	while ((e = s3_xml_find(p, end, tag, &n, &after)) != NULL) {
		size_t kn = 0, sn = 0, mn = 0;
		const char *k = s3_xml_find(e, e + n, is_prefix ? "Prefix" : "Key", &kn, NULL);
		const char *sz = is_prefix ? NULL : s3_xml_find(e, e + n, "Size", &sn, NULL);
		const char *mt = is_prefix ? NULL : s3_xml_find(e, e + n, "LastModified", &mn, NULL);
		if (k) {
			char *key = s3_xml_unescape(k, kn);
			int rc = cb(key, strlen(key), sz ? strtoull(sz, NULL, 10) : 0,
				    mt ? s3_xml_time(mt, mn) : 0, is_prefix, payload);
			free(key);
			if (rc)
				return rc;
		}
		p = after;
	}
	return 0;
}

/* ListObjectsV2 of prefix, with '/' as delimiter if delimited, every page (max_keys each, 0 for
 * the server's default). cb's non-zero return stops and is returned. */
static int list_objects(struct s3_driver *d, const char *prefix, int delimited, unsigned max_keys,
			s3_entry_cb cb, void *payload)
{
	char *token = NULL;
	int rc = 0;
	do {
		struct berth_buf query = BERTH_BUF_INIT(SIZE_MAX);
		if (token) {
			berth_buf_printf(&query, "continuation-token=");
			berth_s3__query_escape(&query, token);
			berth_buf_printf(&query, "&");
		}
		berth_buf_printf(&query, "%slist-type=2", delimited ? "delimiter=%2F&" : "");
		if (max_keys)
			berth_buf_printf(&query, "&max-keys=%u", max_keys);
		berth_buf_printf(&query, "&prefix=");
		berth_s3__query_escape(&query, prefix);
		struct s3_req q = { .method = "GET", .query = query.data, .out = BERTH_BUF_INIT(S3_META_CAP) };
		rc = berth_s3__call(d, &q);
		berth_buf_release(&query);
		berth_safefree(token);
		if (rc == 0) {
			const char *x = q.out.data ? q.out.data : "", *end = x + q.out.len;
			rc = list_page_entries(x, end, "Contents", 0, cb, payload);
			if (rc == 0)
				rc = list_page_entries(x, end, "CommonPrefixes", 1, cb, payload);
			size_t n = 0;
			const char *t = s3_xml_find(x, end, "IsTruncated", &n, NULL);
			if (rc == 0 && t && n == 4 && memcmp(t, "true", 4) == 0 && (!max_keys || max_keys > 1)) {
				t = s3_xml_find(x, end, "NextContinuationToken", &n, NULL);
				if (t)
					token = s3_xml_unescape(t, n);
			}
		}
		berth_s3__req_release(&q);
	} while (rc == 0 && token);
	free(token);
	return rc;
}

static int count_entry(const char *key, size_t keylen, uint64_t size, int64_t mtime, int is_prefix,
		       void *payload)
{
	(*(size_t *)payload)++;
	return 0;
}

/* 1 if something is stored below the directory path, 0 if not, or a BERTH_E* code. */
static int dir_exists(struct s3_driver *d, const char *path)
{
	char *prefix = dir_prefix(d, path);
	size_t n = 0;
	int rc = list_objects(d, prefix, 0, 1, count_entry, &n);
	free(prefix);
	return rc < 0 ? rc : n > 0;
}

/* ---- stat, get, put ----------------------------------------------------------------------- */

/* HEAD of one object: 0 with size and mtime (and etag into q), or ENOTFOUND. */
static int head_object(struct s3_driver *d, const char *key, struct s3_req *q)
{
	*q = (struct s3_req){ .method = "HEAD", .key = key, .out = BERTH_BUF_INIT(0) };
	int rc = berth_s3__call(d, q);
	berth_s3__req_release(q);
	return rc;
}

/* An object's version (storage/driver.h) from its ETag: S3 gives every write of new bytes a new
 * one (an MD5 of the bytes, or of the parts' MD5s), and a write of the same bytes changes nothing
 * derived from them. 0 (no version) when the server sent none. */
static uint64_t etag_version(const char *etag)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	if (etag[0] == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)etag; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h ? h : 1;
}

/* The stat itself: a HEAD of the object, else a one-key listing of the directory. */
static int stat_uncoalesced(struct berth_stat *out, const char *path, void *payload)
{
	struct s3_driver *d = payload;
	char *key = key_of(d, path);
	struct s3_req q;
	int rc = head_object(d, key, &q);
	free(key);
	if (rc == 0) {
		out->size = q.content_length;
		out->mtime = q.mtime;
		out->version = etag_version(q.etag);
		return 0;
	}
	if (rc != BERTH_ENOTFOUND)
		return rc;
	if ((rc = dir_exists(d, path)) < 0)
		return rc;
	if (rc == 0)
		return BERTH_ENOTFOUND;
	out->is_dir = 1;
	return 0;
}

/* Concurrent stats of one path share their requests (storage/coalesce.h): the registry checks
 * the same tag or link on every request, and RGW takes a few thousand HEADs a second. */
static int s3_stat(struct berth_stat *out, struct berth_storage_driver *base, const char *path)
{
	struct s3_driver *d = s3(base);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	memset(out, 0, sizeof(*out));
	if (strcmp(path, "/") == 0) {
		out->is_dir = 1;
		return 0;
	}
	int shared = 0;
	int rc = berth_coalesce_stat(out, &shared, d->stats, path, stat_uncoalesced, d);
	if (shared)
		berth_storage_count_coalesced();
	return rc;
}

static int s3_get_content(char **out, size_t *out_len, struct berth_storage_driver *base,
			  const char *path, size_t max)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	char *key = key_of(d, path);
	struct s3_req q = { .method = "GET", .key = key, .out = BERTH_BUF_INIT(max) };
	int rc = berth_s3__call(d, &q);
	if (rc == 0) {
		if (q.out.data == NULL)
			berth_buf_append(&q.out, "", 0);
		*out = berth_buf_detach(&q.out, out_len);
	}
	berth_s3__req_release(&q);
	free(key);
	return rc;
}

/* PUT of a whole object with the configured object headers: buf, or body_file if not NULL. */
static int put_object(struct s3_driver *d, const char *key, const void *buf, size_t n,
		      struct s3_body_file *body_file)
{
	struct s3_req q = { .method = "PUT", .key = key, .body = buf ? buf : "", .body_len = n,
			    .body_file = body_file, .headers = d->object_headers,
			    .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call(d, &q);
	berth_s3__req_release(&q);
	return rc;
}

static int s3_put_content(struct berth_storage_driver *base, const char *path, const void *buf, size_t n)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	char *key = key_of(d, path);
	int rc = put_object(d, key, buf, n, NULL);
	free(key);
	return rc;
}

static int delete_object(struct s3_driver *d, const char *key)
{
	struct s3_req q = { .method = "DELETE", .key = key, .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call(d, &q);
	berth_s3__req_release(&q);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* ---- reader ------------------------------------------------------------------------------- */

/*
 * A reader's first GET fetches a window of at most S3_READ_WINDOW bytes, which also gives the
 * object's size and ETag: a small object (a manifest, a config, a link) is read whole with it.
 * The rest of a larger object comes in one streamed GET (Range: bytes=pos-, If-Match the first
 * answer's ETag, so a reader never mixes two versions), driven through curl's multi interface
 * by the reader's own calls: a read takes what has arrived, and what nobody asked for yet waits
 * in the socket's buffers, where TCP's flow control holds the server back. So memory per reader
 * is the window and one curl buffer whatever the object's size, the object is fetched while
 * the previous bytes are sent, and a 100 MiB blob costs 2 requests, not 25 windows fetched one
 * after the other. A stream cut (the server closed it while the client was slow, a reset) is
 * resumed from where it stopped with the same If-Match.
 */

#define S3_STREAM_BUFFER (512L << 10) /* curl's receive buffer: bytes per write callback */

struct s3_reader {
	struct berth_reader base;
	struct s3_driver *d;
	char *key;
	char etag[130];
	struct berth_buf window; /* the first GET's bytes; [taken, len) not read yet */
	size_t taken;
	uint64_t pos;            /* object offset of the next byte fetched */
	/* The streamed GET of the rest, once the window is read. */
	CURLM *multi;
	struct s3_stream_req stream;
	struct s3_req q;         /* its answer's status, error body */
	int active;              /* stream.h is in multi */
	int paused;              /* ... and paused by stream_data */
	unsigned failures;       /* attempts failed since bytes last arrived */
	char *dst;               /* the caller's buffer, during a read */
	size_t dst_len, dst_cap;
	struct berth_buf spill;  /* bytes a callback brought past the caller's buffer */
	size_t spill_taken;
};

/* Fetches [r->pos, r->pos + S3_READ_WINDOW) into the window: the size and ETag with it. */
static int reader_fetch_window(struct s3_reader *r)
{
	char range[64];
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)r->pos,
		 (unsigned long long)(r->pos + S3_READ_WINDOW - 1));
	struct curl_slist *h = curl_slist_append(NULL, range);
	struct s3_req q = { .method = "GET", .key = r->key, .headers = h,
			    .out = BERTH_BUF_INIT(S3_READ_WINDOW) };
	int rc = berth_s3__call(r->d, &q);
	curl_slist_free_all(h);
	if (rc == 0) {
		snprintf(r->etag, sizeof(r->etag), "%s", q.etag);
		r->base.size = q.status == 206 ? q.range_total : q.content_length;
		r->window = q.out;
		q.out = (struct berth_buf)BERTH_BUF_INIT(0);
		r->pos += r->window.len;
	}
	berth_s3__req_release(&q);
	return rc;
}

/* curl's body callback of the stream: into the caller's buffer. Once less than a piece's
 * room is left, the transfer is paused (curl stops reading the socket); a piece that does not
 * fit all the same pauses it too (curl keeps a copy of it until resumed); only a piece larger
 * than the caller's whole buffer is split, its rest kept in the spill. */
static size_t stream_data(char *p, size_t size, size_t n, void *arg)
{
	struct s3_reader *r = arg;
	size_t len = size * n;
	if (r->q.status < 200 || r->q.status >= 300) {
		berth_buf_append(&r->q.err, p, len); /* past its cap: the first part is kept */
		return len;
	}
	if (r->q.status != 206) {
		berth_error("s3: GET %s: HTTP %ld to a ranged GET", r->key, r->q.status);
		return 0; /* the whole object, not the rest: never served as the rest */
	}
	size_t room = r->dst_cap - r->dst_len;
	if (len > room && (r->dst_len > 0 || r->spill.len > 0)) {
		r->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	size_t k = len < room ? len : room;
	memcpy(r->dst + r->dst_len, p, k);
	r->dst_len += k;
	if (k < len && berth_buf_append(&r->spill, p + k, len - k) < 0)
		return 0; /* a piece past curl's buffer size: cannot happen */
	r->pos += len;
	r->failures = 0;
	if (r->dst_cap - r->dst_len < S3_STREAM_BUFFER && r->pos < r->base.size) {
		/* The next piece may not fit: stop receiving now (curl stops reading the socket)
		 * rather than refuse that piece, which curl would copy aside until resumed. */
		r->paused = 1;
		curl_easy_pause(r->stream.h, CURLPAUSE_ALL);
	}
	return len;
}

static void stream_stop(struct s3_reader *r)
{
	if (!r->active)
		return;
	curl_multi_remove_handle(r->multi, r->stream.h);
	berth_s3__stream_release(&r->stream);
	berth_s3__req_release(&r->q);
	r->active = 0;
	r->paused = 0;
}

/* Starts the GET of [r->pos, end) with If-Match. */
static void stream_start(struct s3_reader *r)
{
	char range[64], match[160];
	snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)r->pos);
	snprintf(match, sizeof(match), "If-Match: %s", r->etag);
	struct curl_slist *h = curl_slist_append(curl_slist_append(NULL, range), match);
	if (r->multi == NULL) {
		r->multi = curl_multi_init();
		r->stream.h = curl_easy_init();
	}
	r->q = (struct s3_req){ .method = "GET", .key = r->key, .headers = h, .out = BERTH_BUF_INIT(0) };
	berth_s3__stream_setup(&r->stream, r->d, &r->q, stream_data, r);
	r->q.headers = NULL; /* copied into the request */
	curl_slist_free_all(h);
	curl_easy_setopt(r->stream.h, CURLOPT_BUFFERSIZE, S3_STREAM_BUFFER);
	curl_multi_add_handle(r->multi, r->stream.h);
	r->active = 1;
}

/* The stream ended with cc: 0 when the object is complete, 1 to start it again from r->pos
 * (after a back-off), or a BERTH_E* code. */
static int stream_ended(struct s3_reader *r, CURLcode cc)
{
	long status = r->q.status;
	int ok = cc == CURLE_OK && status >= 200 && status < 300;
	if (ok && r->pos >= r->base.size)
		return 0;
	int retry = (cc != CURLE_OK && cc != CURLE_WRITE_ERROR) ||
		    (cc == CURLE_OK && (status == 500 || status == 502 || status == 503 || status == 504));
	if (retry && r->failures++ < r->d->retries) {
		berth_debug("s3: GET %s: resuming at %llu (%s, HTTP %ld)", r->key, (unsigned long long)r->pos,
			    cc == CURLE_OK ? "server busy" : curl_easy_strerror(cc), status);
		return 1;
	}
	if (ok) {
		berth_error("s3: object %s ended at %llu of %llu bytes", r->key, (unsigned long long)r->pos,
			    (unsigned long long)r->base.size);
		return BERTH_ERROR;
	}
	if (cc != CURLE_OK) {
		berth_error("s3: GET %s: %s after %u attempts", r->key, curl_easy_strerror(cc), r->failures);
		return retry ? BERTH_EUNAVAILABLE : BERTH_ERROR;
	}
	if (status == 412) {
		berth_error("s3: object %s changed while being read", r->key);
		return BERTH_ERROR;
	}
	int rc = berth_s3__status(&r->q);
	return rc == 0 ? BERTH_ERROR : retry ? BERTH_EUNAVAILABLE : rc;
}

/* Runs the stream until buf is full or the object ends: bytes put in buf, or a BERTH_E* code. */
static ssize_t stream_read(struct s3_reader *r, char *buf, size_t n)
{
	int rc = 0;
	uint64_t stall_ns = (uint64_t)r->d->stall_timeout_s * 1000000000ull, last = berth_now_ns();
	r->dst = buf;
	r->dst_len = 0;
	r->dst_cap = n;
	if (r->active && r->paused) {
		r->paused = 0;
		curl_easy_pause(r->stream.h, CURLPAUSE_CONT); /* may give the held piece at once */
	}
	while (r->dst_len < n && r->pos < r->base.size) {
		if (!r->active)
			stream_start(r);
		int running = 0, left = 0;
		size_t before = r->dst_len + r->spill.len;
		curl_multi_perform(r->multi, &running);
		CURLMsg *msg = curl_multi_info_read(r->multi, &left);
		if (msg && msg->msg == CURLMSG_DONE) {
			rc = stream_ended(r, msg->data.result);
			stream_stop(r);
			if (rc < 0 || (rc == 0 && (r->dst_len || r->spill.len)))
				break;
			if (rc == 1)
				berth_s3__backoff(r->failures - 1);
			rc = 0;
			continue;
		}
		if (r->dst_len + r->spill.len != before) {
			last = berth_now_ns();
		} else if (stall_ns && berth_now_ns() - last > stall_ns) {
			stream_stop(r); /* no byte for the stall timeout: as a transfer that failed */
			if ((rc = stream_ended(r, CURLE_OPERATION_TIMEDOUT)) < 0)
				break;
			rc = 0;
			last = berth_now_ns();
			continue;
		}
		if (r->paused || r->spill.len)
			break; /* buf is full */
		curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
	}
	r->dst = NULL;
	if (rc < 0 && r->dst_len == 0)
		return rc;
	return (ssize_t)r->dst_len;
}

static ssize_t s3_reader_read(struct berth_reader *base, void *buf, size_t n)
{
	struct s3_reader *r = (struct s3_reader *)base;
	size_t k;
	if (r->taken < r->window.len) {
		k = r->window.len - r->taken < n ? r->window.len - r->taken : n;
		memcpy(buf, r->window.data + r->taken, k);
		r->taken += k;
		return (ssize_t)k;
	}
	if (r->spill_taken < r->spill.len) {
		k = r->spill.len - r->spill_taken < n ? r->spill.len - r->spill_taken : n;
		memcpy(buf, r->spill.data + r->spill_taken, k);
		if ((r->spill_taken += k) == r->spill.len)
			r->spill.len = r->spill_taken = 0;
		return (ssize_t)k;
	}
	if (r->window.data)
		berth_buf_release(&r->window); /* read: the stream goes on without it */
	return r->pos >= r->base.size ? 0 : stream_read(r, buf, n);
}

static void s3_reader_close(struct berth_reader *base)
{
	struct s3_reader *r = (struct s3_reader *)base;
	if (r == NULL)
		return;
	stream_stop(r);
	if (r->multi) {
		curl_multi_cleanup(r->multi);
		curl_easy_cleanup(r->stream.h);
	}
	berth_buf_release(&r->spill);
	berth_buf_release(&r->window);
	free(r->key);
	free(r);
}

static int s3_reader_open(struct berth_reader **out, struct berth_storage_driver *base,
			  const char *path, uint64_t offset)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	struct s3_reader *r = berth_calloc(1, sizeof(*r));
	r->base = (struct berth_reader){ .read = s3_reader_read, .close = s3_reader_close, .fd = -1,
					 .offset = offset };
	r->d = d;
	r->key = key_of(d, path);
	r->pos = offset;
	r->spill = (struct berth_buf)BERTH_BUF_INIT(S3_STREAM_BUFFER);
	/* The first window comes now: it gives the size, and the version the reader keeps. */
	int rc = reader_fetch_window(r);
	if (rc == BERTH_ERANGE) { /* at or past the end (S3 answers 416 even for offset == size) */
		struct s3_req q;
		if ((rc = head_object(d, r->key, &q)) == 0) {
			r->base.size = q.content_length;
			snprintf(r->etag, sizeof(r->etag), "%s", q.etag);
			rc = offset == q.content_length ? 0 : BERTH_ERANGE;
		}
	}
	if (rc < 0) {
		s3_reader_close(&r->base);
		return rc;
	}
	*out = &r->base;
	return 0;
}

/* ---- writer ------------------------------------------------------------------------------- */

struct s3_writer {
	struct berth_writer base;
	struct s3_driver *d;
	char *key;
	struct s3_mpu mpu;     /* open upload, if id is set */
	uint64_t copy_base;    /* bytes of the stored object to copy in when an upload starts */
	struct s3_parts parts; /* bytes not in a stored part yet (spooled, s3_spool.c) */
	int dirty;             /* something written is not stored yet (or the object is to be
				* created or replaced) */
	int mpu_found;         /* mpu was left open by an earlier writer (it holds their bytes) */
	int mpu_closed;        /* ... and takes no more parts (a part under 5 MiB, or a gap): it
				* is completed before anything is appended */
	char *stale_id;        /* an empty upload left open on the key: aborted before storing */
	int suspended;
	int cancelled;
	int staged;            /* a staged writer (driver.h): only commit makes the object */
	uint64_t expect_end;   /* the size at which the bytes announced (expect) end; 0: none */
	size_t copied_parts;   /* parts of the upload this writer started that copy the object */
};

static uint64_t s3_writer_size(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	return w->copy_base + w->mpu.bytes + berth_s3__parts_pending(&w->parts) +
	       berth_s3__parts_filling(&w->parts);
}

/* Starts a multipart upload whose first parts are the stored object's copy_base bytes. */
static int writer_start_upload(struct s3_writer *w)
{
	int rc = berth_s3__mpu_create(w->d, w->key, &w->mpu);
	if (rc == 0 && w->copy_base > 0 &&
	    (rc = berth_s3__mpu_copy_parts(w->d, w->key, &w->mpu, w->key, w->copy_base)) == 0) {
		w->copy_base = 0;
		w->copied_parts = w->mpu.n_parts;
	}
	if (rc < 0 && w->mpu.id)
		berth_s3__mpu_abort(w->d, w->key, &w->mpu);
	return rc;
}

/* Sends the part being filled as the next part: now (sync), or on its own thread while the
 * next one fills. */
static int writer_send_part(struct s3_writer *w, int sync)
{
	int rc = 0;
	if (w->mpu.id == NULL && (rc = writer_start_upload(w)) < 0)
		return rc;
	return sync ? berth_s3__parts_send_now(&w->parts, &w->mpu) : berth_s3__parts_send(&w->parts, &w->mpu);
}

/* Stores the part being filled as the whole object (one PUT). */
static int writer_put_object(struct s3_writer *w)
{
	struct s3_body_file body = berth_s3__parts_filling_body(&w->parts);
	return put_object(w->d, w->key, NULL, 0, body.len ? &body : NULL);
}

#define S3_READ_BACK_PIECE ((size_t)2 * S3_STREAM_BUFFER) /* room for a whole curl piece */

/* Streams the object on the writer's key into the part being filled (it is smaller than a
 * part), through the driver's reader: no more than the reader's window in memory. */
static int writer_read_back(struct s3_writer *w)
{
	char *path = berth_asprintf("/%s", w->key + strlen(w->d->prefix));
	struct berth_reader *rd = NULL;
	int rc = s3_reader_open(&rd, &w->d->base, path, 0);
	free(path);
	if (rc < 0)
		return rc;
	char *buf = berth_malloc(S3_READ_BACK_PIECE);
	ssize_t n;
	while ((n = rd->read(rd, buf, S3_READ_BACK_PIECE)) > 0 &&
	       (rc = berth_s3__parts_append(&w->parts, buf, (size_t)n)) == 0)
		;
	if (n < 0)
		rc = (int)n;
	free(buf);
	rd->close(rd);
	return rc;
}

/* Positions the writer after the object stored on the key: one of a part or more is copied in
 * server-side when an upload starts, a smaller one is read back into the part being filled;
 * none is created (by the next flush, suspend or close). */
static int writer_continue_object(struct s3_writer *w)
{
	struct s3_driver *d = w->d;
	struct s3_req q;
	int rc = head_object(d, w->key, &q);
	if (rc == BERTH_ENOTFOUND) {
		w->dirty = 1;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (q.content_length >= d->chunksize) {
		w->copy_base = q.content_length;
		return 0;
	}
	return q.content_length > 0 ? writer_read_back(w) : 0;
}

/* Before the first byte is appended or stored: an empty upload found is aborted, one that
 * takes no more parts is completed and its object continued (Distribution's writer does the
 * same with the short last part its Close leaves). */
static int writer_prepare_append(struct s3_writer *w)
{
	int rc = 0;
	if (w->stale_id) {
		struct s3_mpu stale = { .id = w->stale_id };
		w->stale_id = NULL;
		if ((rc = berth_s3__mpu_abort(w->d, w->key, &stale)) < 0)
			return rc;
	}
	if (!w->mpu_closed)
		return 0;
	if ((rc = berth_s3__mpu_complete(w->d, w->key, &w->mpu)) < 0)
		return rc;
	w->mpu_closed = 0;
	w->mpu_found = 0;
	return writer_continue_object(w);
}

/* With bytes announced (expect): starts sending the part being filled once its final size is
 * known and no other part is in transfer, so that it goes up while its bytes come. A part
 * under S3's smallest is left for the end of the request (it may become a plain object). */
static int writer_stream_part(struct s3_writer *w)
{
	struct s3_parts *p = &w->parts;
	uint64_t size = s3_writer_size(&w->base);
	if (w->expect_end <= size || berth_s3__parts_streaming(p))
		return 0;
	/* Not for a body that a single PUT can store whole (a fresh writer and at most one
	 * part): sending it early would cost an upload's three requests for the PUT's one. */
	if (w->mpu.id == NULL && w->copy_base == 0 && w->expect_end <= w->d->chunksize)
		return 0;
	uint64_t len = w->expect_end - (size - berth_s3__parts_filling(p));
	if (len > w->d->chunksize)
		len = w->d->chunksize;
	int rc = berth_s3__parts_poll(p, &w->mpu);
	if (rc < 0 || len < S3_MIN_PART || berth_s3__parts_pending(p))
		return rc;
	if (w->mpu.id == NULL && (rc = writer_start_upload(w)) < 0)
		return rc;
	return berth_s3__parts_stream(p, &w->mpu, len);
}

static void s3_writer_expect(struct berth_writer *base, uint64_t n)
{
	struct s3_writer *w = (struct s3_writer *)base;
	w->expect_end = n ? s3_writer_size(base) + n : 0;
}

/* 1 if bytes were announced and not all came. */
static int writer_short(struct s3_writer *w)
{
	return w->expect_end && s3_writer_size(&w->base) < w->expect_end;
}

static int s3_writer_write(struct berth_writer *base, const void *data, size_t n)
{
	struct s3_writer *w = (struct s3_writer *)base;
	const char *p = data;
	if (w->cancelled || w->suspended)
		return BERTH_EINVALID;
	if (n == 0)
		return 0;
	int rc = writer_prepare_append(w);
	if (rc < 0)
		return rc;
	while (n > 0) {
		if ((rc = writer_stream_part(w)) < 0)
			return rc;
		uint64_t room = berth_s3__parts_target(&w->parts) - berth_s3__parts_filling(&w->parts);
		size_t k = room < n ? (size_t)room : n;
		if ((rc = berth_s3__parts_append(&w->parts, p, k)) < 0)
			return rc;
		w->dirty = 1;
		p += k;
		n -= k;
		if (berth_s3__parts_filling(&w->parts) == w->d->chunksize && (rc = writer_send_part(w, 0)) < 0)
			return rc;
	}
	return 0;
}

/*
 * Makes the object hold every byte written: a PUT while everything fits in the buffer, else
 * the last part and CompleteMultipartUpload (also of an upload found open and not written
 * to). The buffer is kept when it holds the whole object (small objects are rewritten whole);
 * otherwise the next upload starts with a copy.
 */
static int s3_writer_flush(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	if (w->cancelled || w->suspended)
		return BERTH_EINVALID;
	if (!w->dirty && w->mpu.id == NULL)
		return 0;
	int rc = writer_prepare_append(w);
	if (rc < 0)
		return rc;
	if (!w->dirty && w->mpu.id == NULL)
		return 0; /* an upload found closed became the object */
	if ((rc = berth_s3__parts_wait(&w->parts, &w->mpu)) < 0)
		return rc;
	if (w->mpu.id == NULL && w->copy_base == 0) {
		if ((rc = writer_put_object(w)) == 0)
			w->dirty = 0;
		return rc;
	}
	if (berth_s3__parts_filling(&w->parts) > 0 || w->mpu.id == NULL) {
		if ((rc = writer_send_part(w, 1)) < 0)
			return rc;
	}
	uint64_t size = w->mpu.bytes;
	if ((rc = berth_s3__mpu_complete(w->d, w->key, &w->mpu)) < 0)
		return rc;
	w->mpu_found = 0;
	w->copy_base = size;
	w->dirty = 0;
	return 0;
}

/*
 * Stores what was written for the next append-open without completing anything: a PUT while
 * no upload is open and the buffer holds less than S3's smallest part, else the buffer as the
 * upload's next part (started now if need be), however short (it is then its last: the next
 * writer completes it before appending). Distribution's writer Close does the same. A part,
 * not an object, as soon as it can be one: an object would be read back by the next writer
 * (a 5 MiB PATCH under 10 MiB parts: 5 MiB more each way).
 */
static int s3_writer_suspend(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	if (w->cancelled || w->suspended)
		return BERTH_EINVALID;
	w->suspended = 1;
	if (!w->dirty)
		return 0;
	int rc = writer_prepare_append(w);
	if (rc < 0)
		return rc;
	if ((rc = berth_s3__parts_wait(&w->parts, &w->mpu)) < 0)
		return rc;
	uint64_t filling = berth_s3__parts_filling(&w->parts);
	if (w->mpu.id == NULL && w->copy_base == 0 && filling < S3_MIN_PART)
		rc = writer_put_object(w);
	else if (filling > 0)
		rc = writer_send_part(w, 1);
	if (rc == 0)
		w->dirty = 0;
	return rc;
}

/* The suspend slot: suspend, then note where the upload is left for the next resume open
 * (s3_resume.c). An object, or a failure, leaves no note: that open lists. */
static int s3_writer_suspend_noted(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	int rc = s3_writer_suspend(base);
	w->base.suspend_noted = rc == 0 && w->mpu.id && w->mpu.n_parts > 0 && w->copy_base == 0;
	if (w->base.suspend_noted)
		berth_s3__resume_note(w->d, w->key, &w->mpu);
	else
		berth_s3__resume_forget(w->d, w->key);
	return rc;
}

static int s3_writer_cancel(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	int rc = 0;
	berth_s3__parts_discard(&w->parts); /* a part in flight ends before its upload is aborted */
	if (w->mpu.id)
		rc = berth_s3__mpu_abort(w->d, w->key, &w->mpu);
	/* A staged writer never stored the object: what is there is someone else's. */
	int rc2 = w->staged ? 0 : delete_object(w->d, w->key);
	w->cancelled = 1;
	w->copy_base = 0;
	w->dirty = 0;
	return rc < 0 ? rc : rc2;
}

static void s3_writer_close(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	if (w == NULL)
		return;
	/* The contract keeps what was written. If that fails, an upload this writer started is
	 * aborted (its parts would stay billed); one found open holds an earlier writer's bytes
	 * and stays. A staged writer keeps only what its commit made. */
	if (w->staged) {
		berth_s3__parts_discard(&w->parts);
		if (w->mpu.id)
			berth_s3__mpu_abort(w->d, w->key, &w->mpu);
	} else if (!w->cancelled && !w->suspended && writer_short(w)) {
		/* A body cut short (driver.h, expect): the stored parts stay, the rest goes; an
		 * upload this writer started and stored nothing in is not left open. */
		berth_s3__parts_discard(&w->parts);
		if (w->mpu.id && !w->mpu_found && w->mpu.n_parts == w->copied_parts)
			berth_s3__mpu_abort(w->d, w->key, &w->mpu);
	} else if (!w->cancelled && !w->suspended && w->dirty && s3_writer_flush(base) < 0) {
		berth_error("s3: cannot store the bytes written to %s", w->key);
		berth_s3__parts_discard(&w->parts);
		if (w->mpu.id && !w->mpu_found)
			berth_s3__mpu_abort(w->d, w->key, &w->mpu);
	}
	berth_s3__parts_release(&w->parts);
	berth_s3__mpu_release(&w->mpu);
	free(w->stale_id);
	free(w->key);
	free(w);
}

/* More parts can follow only if every part is >= 5 MiB and they are numbered 1..n. */
static int mpu_continuable(const struct s3_mpu *m)
{
	for (size_t i = 0; i < m->n_parts; i++) {
		if (m->parts[i].number != i + 1 || m->parts[i].size < S3_MIN_PART)
			return 0;
	}
	return 1;
}

/* Positions an append-open writer after what is stored: an upload left open on the key (as
 * Distribution's writer and suspend leave them), else the object. Stores nothing: what must
 * change before appending waits for the first write (writer_prepare_append), so an open that
 * writes nothing changes nothing. */
static int writer_resume(struct s3_writer *w)
{
	struct s3_driver *d = w->d;
	int rc = berth_s3__mpu_find(d, w->key, &w->mpu);
	if (rc < 0 || w->mpu.id == NULL)
		return rc < 0 ? rc : writer_continue_object(w);
	if ((rc = berth_s3__mpu_list_parts(d, w->key, &w->mpu)) < 0)
		return rc;
	if (w->mpu.n_parts == 0) {
		/* Nothing in it (Distribution opens one per upload session, before any byte): the
		 * object, if any, is what is stored. */
		w->stale_id = w->mpu.id;
		w->mpu.id = NULL;
		berth_s3__mpu_release(&w->mpu);
		return writer_continue_object(w);
	}
	w->mpu_found = 1;
	w->mpu_closed = !mpu_continuable(&w->mpu);
	return 0;
}

/* A writer on path's key, positioned nowhere yet. */
static struct s3_writer *writer_new(struct s3_driver *d, const char *path)
{
	struct s3_writer *w = berth_calloc(1, sizeof(*w));
	w->base = (struct berth_writer){ .write = s3_writer_write, .size = s3_writer_size,
					 .flush = s3_writer_flush, .commit = s3_writer_flush,
					 .cancel = s3_writer_cancel, .close = s3_writer_close,
					 .suspend = s3_writer_suspend_noted, .expect = s3_writer_expect };
	w->d = d;
	w->key = key_of(d, path);
	berth_s3__parts_init(&w->parts, d, w->key);
	return w;
}

static int s3_writer_open(struct berth_writer **out, struct berth_storage_driver *base,
			  const char *path, int append)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	struct s3_writer *w = writer_new(d, path);
	/* Whatever this writer does, the key's note no longer tells where its suspend left it. */
	berth_s3__resume_forget(d, w->key);
	int rc = 0;
	if (append) {
		rc = writer_resume(w);
	} else {
		w->dirty = 1; /* truncating: the object is replaced even if nothing is written */
		struct s3_mpu stale = { 0 };
		if ((rc = berth_s3__mpu_find(d, w->key, &stale)) == 0 && stale.id)
			rc = berth_s3__mpu_abort(d, w->key, &stale);
		berth_s3__mpu_release(&stale);
	}
	if (rc < 0) {
		w->cancelled = 1; /* close must not store anything */
		s3_writer_close(&w->base);
		return rc;
	}
	*out = &w->base;
	return 0;
}

/*
 * The resume slot (driver.h): the upload this process's last suspend left on the key, if one
 * ListParts of it shows exactly the parts it held then. Why that listing is enough, across
 * instances (and Distribution) on one bucket: an upload that is still listable was neither
 * completed nor aborted (a commit completes it, a cancel or purge aborts it, a PATCH after a
 * short part completes it before going on); whoever appends to it adds a part (Distribution
 * too), and whoever rewrites a part changes its ETag, so the fingerprint differs; and nobody
 * starts a second upload on a key whose upload holds parts (every appending writer, berth's
 * or Distribution's, continues the one it finds by listing). So the ListMultipartUploads an
 * append-open starts with would find this same upload, with these same parts. For the same
 * reason a changed upload that is still listed with parts is the one that listing would find:
 * the writer continues it, flagged as not vouched for (1).
 */
static int s3_resume_writer_open(struct berth_writer **out, struct berth_storage_driver *base,
				 const char *path)
{
	struct s3_driver *d = s3(base);
	char fingerprint[BERTH_DIGEST_STR_MAX], now[BERTH_DIGEST_STR_MAX];
	char *upload_id = NULL;
	*out = NULL;
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	char *key = key_of(d, path);
	int noted = berth_s3__resume_take(d, key, &upload_id, fingerprint);
	free(key);
	if (!noted)
		return 0;
	struct s3_writer *w = writer_new(d, path);
	w->mpu.id = upload_id;
	int rc = berth_s3__mpu_list_parts(d, w->key, &w->mpu);
	if (rc == 0)
		berth_s3__resume_fingerprint(&w->mpu, now);
	int vouched = rc == 0 && strcmp(now, fingerprint) == 0;
	if (rc == BERTH_ENOTFOUND || (rc == 0 && w->mpu.n_parts == 0))
		rc = 1; /* gone (completed, aborted): the caller opens as usual */
	if (rc != 0) {
		w->cancelled = 1; /* close must not store anything */
		s3_writer_close(&w->base);
		return rc < 0 ? rc : 0;
	}
	/* Still listed with parts, whoever added them: the upload an append-open's listing would
	 * find (see above), so the writer continues it without listing again. */
	w->mpu_found = 1;
	w->mpu_closed = !mpu_continuable(&w->mpu);
	*out = &w->base;
	return vouched ? 0 : 1;
}

static int s3_writer_unsupported(struct berth_writer *base)
{
	return BERTH_EUNSUPPORTED;
}

/* A staged writer's commit: the object appears whole, by one PUT (all of it fits the buffer)
 * or by the last part and CompleteMultipartUpload. Nothing can be written afterwards. */
static int s3_staged_commit(struct berth_writer *base)
{
	struct s3_writer *w = (struct s3_writer *)base;
	int rc = s3_writer_flush(base);
	if (rc == 0)
		w->suspended = 1;
	return rc;
}

/* Parts go to a multipart upload on the key itself, which is not an object until completed
 * (driver.h, staged_writer). No upload left open on the key is looked for or aborted: it may
 * be another writer's, staged too. */
static int s3_staged_writer_open(struct berth_writer **out, struct berth_storage_driver *base,
				 const char *path)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	struct s3_writer *w = berth_calloc(1, sizeof(*w));
	w->base = (struct berth_writer){ .write = s3_writer_write, .size = s3_writer_size,
					 .flush = s3_writer_unsupported, .commit = s3_staged_commit,
					 .cancel = s3_writer_cancel, .close = s3_writer_close,
					 .suspend = s3_writer_unsupported, .expect = s3_writer_expect };
	w->d = d;
	w->key = key_of(d, path);
	berth_s3__parts_init(&w->parts, d, w->key);
	w->staged = 1;
	w->dirty = 1; /* a commit stores the object even if nothing was written */
	*out = &w->base;
	return 0;
}

struct stale_staged {
	struct s3_driver *d;
	int64_t before;
	size_t purged;
};

static int abort_if_stale(const char *key, const char *upload_id, int64_t initiated, void *payload)
{
	struct stale_staged *s = payload;
	if (initiated == 0 || initiated >= s->before)
		return 0;
	struct s3_mpu m = { .id = berth_strdup(upload_id) };
	int rc = berth_s3__mpu_abort(s->d, key, &m);
	s->purged += rc == 0;
	return rc;
}

/* Aborts the multipart uploads below path started before `before`: staged writers cut off by
 * a crash (a copy in progress is younger than any purge age). */
static int s3_purge_staged(struct berth_storage_driver *base, const char *path, int64_t before,
			   size_t *purged)
{
	struct s3_driver *d = s3(base);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	char *prefix = dir_prefix(d, path);
	struct stale_staged s = { .d = d, .before = before };
	int rc = berth_s3__mpu_list(d, prefix, abort_if_stale, &s);
	free(prefix);
	*purged = s.purged;
	return rc;
}

/* The size an append-open writer would start at (see writer_resume), without opening one:
 * the parts of an upload left open on the key, else the object's size. */
static int s3_append_size(uint64_t *out, struct berth_storage_driver *base, const char *path)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	char *key = key_of(d, path);
	struct s3_mpu m = { 0 };
	int rc = berth_s3__mpu_find(d, key, &m);
	if (rc == 0 && m.id && (rc = berth_s3__mpu_list_parts(d, key, &m)) == 0 && m.n_parts > 0) {
		*out = m.bytes;
	} else if (rc == 0) {
		struct s3_req q;
		if ((rc = head_object(d, key, &q)) == 0)
			*out = q.content_length;
	}
	berth_s3__mpu_release(&m);
	free(key);
	return rc;
}

/* ---- list --------------------------------------------------------------------------------- */

struct child_list {
	size_t prefix_len;
	const char *path; /* the directory listed */
	char **v;
	size_t n, cap;
};

static int add_child(const char *key, size_t keylen, uint64_t size, int64_t mtime, int is_prefix,
		     void *payload)
{
	struct child_list *c = payload;
	if (keylen <= c->prefix_len)
		return 0; /* a "directory marker" object named like the prefix itself */
	size_t n = keylen - c->prefix_len - (is_prefix ? 1 : 0);
	const char *name = key + c->prefix_len;
	if (n == 0 || memchr(name, '/', n))
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->v = berth_realloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = berth_asprintf("%s%s%.*s", strcmp(c->path, "/") == 0 ? "" : c->path, "/", (int)n,
				      name);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s3_list(struct berth_storage_driver *base, const char *path, berth_list_cb cb, void *payload)
{
	struct s3_driver *d = s3(base);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	char *prefix = dir_prefix(d, path);
	struct child_list c = { .prefix_len = strlen(prefix), .path = path };
	int rc = list_objects(d, prefix, 1, 0, add_child, &c);
	free(prefix);
	/* S3 orders keys, where "a-b" < "a/": the contract's order is by name. */
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), cmp_str);
	if (rc == 0 && c.n == 0 && strcmp(path, "/") != 0)
		rc = BERTH_ENOTFOUND;
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		if (i == 0 || strcmp(c.v[i], c.v[i - 1]) != 0) /* a name both object and prefix */
			rc = cb(c.v[i], payload);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i]);
	free(c.v);
	return rc;
}

struct tree_list {
	const struct s3_driver *d;
	berth_walk_cb cb;
	void *payload;
	size_t n;
};

/* One key of an undelimited listing, as its logical path ("/" + the key below the root). */
static int tree_entry(const char *key, size_t keylen, uint64_t size, int64_t mtime, int is_prefix,
		      void *payload)
{
	struct tree_list *t = payload;
	size_t root = strlen(t->d->prefix);
	if (is_prefix || keylen <= root)
		return 0;
	char *path = berth_asprintf("/%.*s", (int)(keylen - root), key + root);
	int rc = 0;
	if (berth_storage_path_valid(path)) { /* keys the layout cannot name are not objects */
		struct berth_stat st = { .size = size, .mtime = mtime };
		t->n++;
		rc = t->cb(path, &st, t->payload);
	}
	free(path);
	return rc;
}

static int s3_list_tree(struct berth_storage_driver *base, const char *path, berth_walk_cb cb,
			void *payload)
{
	struct s3_driver *d = s3(base);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	char *prefix = dir_prefix(d, path);
	struct tree_list t = { .d = d, .cb = cb, .payload = payload };
	int rc = list_objects(d, prefix, 0, 0, tree_entry, &t);
	free(prefix);
	return rc == 0 && t.n == 0 ? BERTH_ENOTFOUND : rc;
}

/* ---- move, remove ------------------------------------------------------------------------- */

int berth_s3__copy_object_in_parts(struct s3_driver *d, const char *from_key, const char *to_key,
				   uint64_t size)
{
	struct s3_mpu m = { 0 };
	int rc = berth_s3__mpu_create(d, to_key, &m);
	if (rc == 0 && (rc = berth_s3__mpu_copy_parts(d, to_key, &m, from_key, size)) == 0)
		rc = berth_s3__mpu_complete(d, to_key, &m);
	if (rc < 0 && m.id)
		berth_s3__mpu_abort(d, to_key, &m);
	berth_s3__mpu_release(&m);
	return rc;
}

int berth_s3__copy_object(struct s3_driver *d, const char *from_key, const char *to_key, char *error_code,
			  size_t error_code_len)
{
	char *src = berth_asprintf("x-amz-copy-source: /%s/%s", d->bucket, from_key);
	struct curl_slist *h = curl_slist_append(NULL, src);
	for (struct curl_slist *o = d->object_headers; o; o = o->next)
		h = curl_slist_append(h, o->data);
	h = curl_slist_append(h, "x-amz-metadata-directive: REPLACE");
	struct s3_req q = { .method = "PUT", .key = to_key, .body = "", .headers = h,
			    .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call_checked(d, &q);
	if (error_code) {
		error_code[0] = '\0';
		if (rc == BERTH_ERROR && q.status == 400)
			berth_s3__error_code(&q, error_code, error_code_len);
	}
	berth_s3__req_release(&q);
	curl_slist_free_all(h);
	free(src);
	return rc;
}

/* Server-side copy of one object of `size` bytes: CopyObject, or a multipart copy past the
 * threshold (CopyObject is limited to 5 GiB and is slow on large objects). */
static int copy_object(struct s3_driver *d, const char *from_key, const char *to_key, uint64_t size)
{
	if (size > d->copy_threshold)
		return berth_s3__copy_object_in_parts(d, from_key, to_key, size);
	return berth_s3__copy_object(d, from_key, to_key, NULL, 0);
}

struct key_list {
	char *match;       /* remove: keep only this key and keys below match + "/" */
	size_t match_len;
	char **keys;
	uint64_t *sizes;
	size_t n, cap;
};

static int add_key(const char *key, size_t keylen, uint64_t size, int64_t mtime, int is_prefix,
		   void *payload)
{
	struct key_list *k = payload;
	if (k->match && !(keylen == k->match_len ||
			  (keylen > k->match_len && key[k->match_len] == '/')))
		return 0; /* "a/bc" when removing "a/b" */
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 64;
		k->keys = berth_realloc(k->keys, k->cap * sizeof(*k->keys));
		k->sizes = berth_realloc(k->sizes, k->cap * sizeof(*k->sizes));
	}
	k->keys[k->n] = berth_strndup(key, keylen);
	k->sizes[k->n++] = size;
	return 0;
}

static void key_list_release(struct key_list *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->keys[i]);
	free(k->keys);
	free(k->sizes);
	memset(k, 0, sizeof(*k));
}

/* DeleteObjects for keys[from, to). */
static int delete_batch(struct s3_driver *d, char **keys, size_t n)
{
	struct berth_buf body = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_printf(&body, "<Delete><Quiet>true</Quiet>");
	for (size_t i = 0; i < n; i++)
		berth_buf_printf(&body, "<Object><Key>%s</Key></Object>", keys[i]);
	berth_buf_printf(&body, "</Delete>");
	/* DeleteObjects requires Content-MD5. */
	unsigned char md5[EVP_MAX_MD_SIZE];
	unsigned md5_len = 0;
	EVP_Digest(body.data, body.len, md5, &md5_len, EVP_md5(), NULL);
	char b64[64], hdr[96];
	EVP_EncodeBlock((unsigned char *)b64, md5, (int)md5_len);
	snprintf(hdr, sizeof(hdr), "Content-MD5: %s", b64);
	struct curl_slist *h = curl_slist_append(curl_slist_append(NULL, hdr), "Content-Type: application/xml");
	struct s3_req q = { .method = "POST", .query = "delete=", .body = body.data, .body_len = body.len,
			    .headers = h, .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call(d, &q);
	if (rc == 0 && q.out.data && strstr(q.out.data, "<Error>")) {
		berth_error("s3: some objects could not be deleted");
		rc = BERTH_ERROR;
	}
	berth_s3__req_release(&q);
	curl_slist_free_all(h);
	berth_buf_release(&body);
	return rc;
}

static int delete_keys(struct s3_driver *d, struct key_list *k)
{
	for (size_t i = 0; i < k->n; i += S3_DELETE_BATCH) {
		size_t n = k->n - i < S3_DELETE_BATCH ? k->n - i : S3_DELETE_BATCH;
		int rc = delete_batch(d, k->keys + i, n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Moves every object below the directory from to below to (not atomic: S3 has no rename). */
static int move_dir(struct s3_driver *d, const char *from, const char *to)
{
	size_t fl = strlen(from);
	if (strncmp(to, from, fl) == 0 && to[fl] == '/')
		return BERTH_EINVALID;
	char *from_prefix = dir_prefix(d, from), *to_prefix = dir_prefix(d, to);
	struct key_list k = { 0 };
	int rc = list_objects(d, from_prefix, 0, 0, add_key, &k);
	if (rc == 0 && k.n == 0)
		rc = BERTH_ENOTFOUND;
	size_t pl = strlen(from_prefix);
	for (size_t i = 0; rc == 0 && i < k.n; i++) {
		char *dst = berth_asprintf("%s%s", to_prefix, k.keys[i] + pl);
		rc = copy_object(d, k.keys[i], dst, k.sizes[i]);
		free(dst);
	}
	if (rc == 0)
		rc = delete_keys(d, &k);
	key_list_release(&k);
	free(from_prefix);
	free(to_prefix);
	return rc;
}

static int s3_move(struct berth_storage_driver *base, const char *from, const char *to)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(from) || !is_valid_object(to))
		return BERTH_EINVALID;
	char *from_key = key_of(d, from), *to_key = key_of(d, to);
	struct s3_req q;
	int rc = head_object(d, from_key, &q);
	if (rc == BERTH_ENOTFOUND) {
		struct s3_req t;
		int to_is_file = head_object(d, to_key, &t) == 0;
		rc = to_is_file ? BERTH_EEXISTS : move_dir(d, from, to);
	} else if (rc == 0 && strcmp(from, to) != 0) {
		int to_is_dir = dir_exists(d, to);
		if (to_is_dir < 0)
			rc = to_is_dir;
		else if (to_is_dir)
			rc = BERTH_EEXISTS;
		else if ((rc = copy_object(d, from_key, to_key, q.content_length)) == 0)
			rc = delete_object(d, from_key);
	}
	free(from_key);
	free(to_key);
	return rc;
}

struct open_uploads {
	struct s3_driver *d;
	const char *match;
	size_t match_len;
	size_t aborted;
};

/* Aborts an upload on the key removed or below it. */
static int abort_if_below(const char *key, const char *upload_id, int64_t initiated, void *payload)
{
	struct open_uploads *u = payload;
	size_t n = strlen(key);
	if (!(n == u->match_len || (n > u->match_len && key[u->match_len] == '/')))
		return 0;
	struct s3_mpu m = { .id = berth_strdup(upload_id) };
	int rc = berth_s3__mpu_abort(u->d, key, &m);
	u->aborted += rc == 0;
	return rc;
}

static int s3_remove(struct berth_storage_driver *base, const char *path)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	/* One listing finds the object and everything below it (the prefix without '/'). */
	struct key_list k = { .match = key_of(d, path) };
	k.match_len = strlen(k.match);
	int rc = list_objects(d, k.match, 0, 0, add_key, &k);
	if (rc == 0 && k.n > 0)
		rc = delete_keys(d, &k);
	/* Uploads left open below (a writer that died, Distribution's upload in progress) would
	 * keep their parts billed forever: abort them too. */
	struct open_uploads u = { .d = d, .match = k.match, .match_len = k.match_len };
	if (rc == 0)
		rc = berth_s3__mpu_list(d, k.match, abort_if_below, &u);
	if (rc == 0 && k.n == 0 && u.aborted == 0)
		rc = BERTH_ENOTFOUND;
	free(k.match);
	key_list_release(&k);
	return rc;
}

/* ---- presigned URLs ---------------------------------------------------------------------- */

/* A GET URL valid S3_PRESIGN_SECONDS, signed with SigV4 query parameters (curl signs only the
 * requests it sends, so this is the one place berth signs itself). */
static int s3_url_for(char **out, struct berth_storage_driver *base, const char *path)
{
	struct s3_driver *d = s3(base);
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char date[9], stamp[17];
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	char *key = key_of(d, path);
	char *scope = berth_asprintf("%s/%s/s3/aws4_request", date, d->region);
	struct berth_buf query = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_printf(&query, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
	char *cred = berth_asprintf("%s/%s", d->accesskey, scope);
	berth_s3__query_escape(&query, cred);
	berth_buf_printf(&query, "&X-Amz-Date=%s&X-Amz-Expires=%d", stamp, S3_PRESIGN_SECONDS);
	if (d->sessiontoken) {
		berth_buf_printf(&query, "&X-Amz-Security-Token=");
		berth_s3__query_escape(&query, d->sessiontoken);
	}
	berth_buf_printf(&query, "&X-Amz-SignedHeaders=host");
	char *uri = berth_s3__canonical_uri(d, key);
	char *canonical = berth_asprintf("GET\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", uri, query.data,
					 d->host);
	unsigned char h[32];
	char hh[65], sighex[65];
	EVP_Digest(canonical, strlen(canonical), h, NULL, EVP_sha256(), NULL);
	berth_s3__hex(hh, h, 32);
	char *to_sign = berth_asprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", stamp, scope, hh);
	berth_s3__sigv4_signature(d, date, to_sign, sighex);
	*out = berth_asprintf("%s/%s?%s&X-Amz-Signature=%s", d->url_base, key, query.data, sighex);
	free(uri);
	free(to_sign);
	free(canonical);
	free(cred);
	berth_buf_release(&query);
	free(scope);
	free(key);
	return 0;
}

/* The object's key, for a CDN in front of the bucket (Distribution's S3BucketKey). */
static int s3_object_key(char **out, struct berth_storage_driver *base, const char *path)
{
	if (!is_valid_object(path))
		return BERTH_EINVALID;
	*out = key_of(s3(base), path);
	return 0;
}

/* ---- driver ------------------------------------------------------------------------------- */

int berth_s3_driver_check(struct berth_storage_driver *base)
{
	struct s3_driver *d = s3(base);
	struct s3_req q = { .method = "GET", .query = "list-type=2&max-keys=1",
			    .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__send(d, &q);
	char code[64] = "";
	if (rc == 0 && (q.status < 200 || q.status >= 300)) {
		berth_s3__error_code(&q, code, sizeof(code));
		rc = q.status == 404 ? BERTH_ENOTFOUND : q.status == 403 ? BERTH_EDENIED : BERTH_ERROR;
	}
	if (rc == BERTH_ENOTFOUND)
		berth_err_set(rc, "bucket '%s' does not exist at %s (%s)", d->bucket, d->endpoint,
			      code[0] ? code : "404");
	else if (rc == BERTH_EDENIED)
		berth_err_set(rc, "credentials refused by %s for bucket '%s' (%s)", d->endpoint, d->bucket,
			      code[0] ? code : "403");
	else if (rc < 0)
		berth_err_set(rc, "cannot list bucket '%s' at %s (%s)", d->bucket, d->endpoint,
			      code[0] ? code : q.status ? "server error" : "unreachable");
	berth_s3__req_release(&q);
	return rc;
}

static void s3_free(struct berth_storage_driver *base)
{
	struct s3_driver *d = s3(base);
	berth_coalesce_free(d->stats); /* first: it waits for a stat in flight */
	for (size_t i = 0; i < d->n_idle; i++)
		curl_easy_cleanup(d->idle[i]);
	pthread_mutex_destroy(&d->pool_lock);
	berth_s3__resume_release(d);
	pthread_mutex_destroy(&d->resume_lock);
	curl_slist_free_all(d->object_headers);
	free(d->endpoint);
	free(d->bucket);
	free(d->host);
	free(d->region);
	free(d->prefix);
	free(d->url_base);
	free(d->userpwd);
	free(d->sigv4);
	free(d->useragent);
	free(d->accesskey);
	free(d->secretkey);
	free(d->sessiontoken);
	free(d);
}

static struct curl_slist *header_if(struct curl_slist *h, const char *name, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return h;
	char *line = berth_asprintf("%s: %s", name, value);
	h = curl_slist_append(h, line);
	free(line);
	return h;
}

int berth_s3_driver_new(struct berth_storage_driver **out, const struct berth_s3_options *o)
{
	berth_s3__global_init();
	struct s3_driver *d = berth_calloc(1, sizeof(*d));
	d->base = (struct berth_storage_driver){
		.version = BERTH_STORAGE_DRIVER_VERSION, .name = "s3", .get_content = s3_get_content,
		.put_content = s3_put_content, .reader = s3_reader_open, .writer = s3_writer_open,
		.stat = s3_stat, .list = s3_list, .move = s3_move, .remove = s3_remove,
		.walk = berth_storage_walk_generic, .url_for = s3_url_for, .free = s3_free,
		.append_size = s3_append_size,
		.remote = 1, .touch = berth_s3__touch, .object_key = s3_object_key,
		.list_tree = s3_list_tree,
		.staged_writer = s3_staged_writer_open, .purge_staged = s3_purge_staged,
		.resume_writer = s3_resume_writer_open,
	};
	d->endpoint = berth_strdup(o->endpoint);
	d->bucket = berth_strdup(o->bucket);
	d->region = berth_strdup(o->region);
	const char *rest = strstr(o->endpoint, "://");
	const char *scheme_end = rest ? rest + 3 : o->endpoint;
	d->path_style = o->path_style;
	if (o->path_style) {
		d->host = berth_strdup(scheme_end);
		d->url_base = berth_asprintf("%s/%s", o->endpoint, o->bucket);
	} else {
		d->host = berth_asprintf("%s.%s", o->bucket, scheme_end);
		d->url_base = berth_asprintf("%.*s%s", (int)(scheme_end - o->endpoint), o->endpoint, d->host);
	}
	const char *root = o->rootdirectory;
	while (*root == '/')
		root++;
	size_t rl = strlen(root);
	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	d->prefix = rl ? berth_asprintf("%.*s/", (int)rl, root) : berth_strdup("");
	d->accesskey = berth_strdup(o->accesskey);
	d->secretkey = berth_strdup(o->secretkey);
	d->sessiontoken = o->sessiontoken && o->sessiontoken[0] ? berth_strdup(o->sessiontoken) : NULL;
	d->userpwd = berth_asprintf("%s:%s", o->accesskey, o->secretkey);
	d->sigv4 = berth_asprintf("aws:amz:%s:s3", o->region);
	d->useragent = berth_strdup(o->useragent && o->useragent[0] ? o->useragent : "berth/" BERTH_VERSION);
	d->skipverify = o->skipverify;
	d->chunksize = o->chunksize;
	d->copy_chunksize = o->copy_chunksize;
	d->copy_threshold = o->copy_threshold;
	d->retries = o->retries;
	d->connect_timeout_ms = o->connect_timeout_ms;
	d->stall_timeout_s = o->stall_timeout_s;
	d->object_headers = header_if(NULL, "x-amz-storage-class", o->storageclass);
	d->object_headers = header_if(d->object_headers, "x-amz-acl", o->objectacl);
	d->object_headers = header_if(d->object_headers, "x-amz-server-side-encryption", o->encrypt_header);
	d->object_headers =
		header_if(d->object_headers, "x-amz-server-side-encryption-aws-kms-key-id", o->keyid);
	pthread_mutex_init(&d->pool_lock, NULL);
	pthread_mutex_init(&d->resume_lock, NULL);
	berth_s3__resume_init(d);
	d->stats = berth_coalesce_new(S3_STAT_PATHS);
	*out = &d->base;
	return 0;
}

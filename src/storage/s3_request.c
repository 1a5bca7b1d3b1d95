/*
 * The S3 driver's requests: a pool of curl easy handles (each keeps its connection), SigV4
 * signing by curl (CURLOPT_AWS_SIGV4) or, where curl 7.88 gets it wrong, here; retries with
 * backoff on 500/502/503/504 and transport failures.
 */
#include "storage/s3_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/s3_xml.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void berth_s3__global_init(void)
{
	pthread_once(&curl_once, curl_init);
}

static CURL *handle_take(struct s3_driver *d)
{
	CURL *h = NULL;
	pthread_mutex_lock(&d->pool_lock);
	if (d->n_idle)
		h = d->idle[--d->n_idle];
	pthread_mutex_unlock(&d->pool_lock);
	return h ? h : curl_easy_init();
}

/* Returns a handle to the pool; its connection stays open for the next request. */
static void handle_give(struct s3_driver *d, CURL *h)
{
	pthread_mutex_lock(&d->pool_lock);
	if (d->n_idle < S3_IDLE_HANDLES) {
		d->idle[d->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&d->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t len = size * n;
	struct berth_buf *b = q->status >= 200 && q->status < 300 ? &q->out : &q->err;
	if (berth_buf_append(b, p, len) < 0) {
		if (b == &q->out) {
			q->too_large = 1;
			return 0; /* aborts the transfer */
		}
		return len; /* an error body past its cap: keep the first part */
	}
	return len;
}

static int header_is(const char *line, size_t n, const char *name, const char **value)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return 0;
	*value = line + k + 1;
	while (**value == ' ')
		(*value)++;
	return 1;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t len = size * n;
	const char *v;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (after a 100) */
		q->etag[0] = '\0';
		q->range_total = 0;
		sscanf(p, "HTTP/%*s %ld", &q->status);
	} else if (header_is(p, len, "ETag", &v)) {
		size_t m = 0;
		while (v + m < p + len && v[m] != '\r' && v[m] != '\n' && m < sizeof(q->etag) - 1)
			m++;
		memcpy(q->etag, v, m);
		q->etag[m] = '\0';
	} else if (header_is(p, len, "Content-Range", &v)) {
		const char *slash = memchr(v, '/', (size_t)(p + len - v));
		if (slash)
			q->range_total = strtoull(slash + 1, NULL, 10);
	}
	return len;
}

/* 1 if the list has a header of that name. */
static int has_header(const struct curl_slist *h, const char *name)
{
	size_t n = strlen(name);
	for (; h; h = h->next) {
		if (strncasecmp(h->data, name, n) == 0 && h->data[n] == ':')
			return 1;
	}
	return 0;
}

static char *object_url(const struct s3_driver *d, const char *key, const char *query)
{
	return berth_asprintf("%s/%s%s%s", d->url_base, key ? key : "", query ? "?" : "",
			      query ? query : "");
}

static int retryable(CURLcode cc, long status)
{
	if (cc == CURLE_OK)
		return status == 500 || status == 502 || status == 503 || status == 504;
	return cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_COULDNT_CONNECT || cc == CURLE_SEND_ERROR ||
	       cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING || cc == CURLE_PARTIAL_FILE;
}

/* The <Code> of an S3 error body, or "" (into out). */
void berth_s3__error_code(const struct s3_req *q, char *out, size_t outlen)
{
	size_t n = 0;
	const char *c = q->err.data ? s3_xml_find(q->err.data, q->err.data + q->err.len, "Code", &n, NULL)
				    : NULL;
	if (c == NULL)
		n = 0;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, c ? c : "", n);
	out[n] = '\0';
}

/* curl's read callback of a body from a file (or memory), a streamed part's as its bytes come. */
static size_t on_read_file(char *buf, size_t size, size_t n, void *arg)
{
	struct s3_body_file *f = arg;
	size_t want = size * n;
	uint64_t end = f->len;
	if (f->stream && f->pos < f->len && (end = berth_s3__parts_ready(f->stream, f->pos)) == 0)
		return CURL_READFUNC_ABORT; /* abandoned: its bytes will not come */
	if (want > end - f->pos)
		want = (size_t)(end - f->pos);
	if (want == 0)
		return 0;
	if (f->mem) {
		memcpy(buf, f->mem + f->pos, want);
		f->pos += want;
		return want;
	}
	ssize_t got;
	do
		got = pread(f->fd, buf, want, (off_t)f->pos);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		berth_error("s3: cannot read a spooled part: %s", got < 0 ? berth_err_os_text(errno) : "short file");
		return CURL_READFUNC_ABORT;
	}
	f->pos += (uint64_t)got;
	return (size_t)got;
}

/* curl rewinds a body it must send again (a connection closed under a reused handle). */
static int on_seek_file(void *arg, curl_off_t offset, int origin)
{
	struct s3_body_file *f = arg;
	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > f->len)
		return CURL_SEEKFUNC_CANTSEEK;
	f->pos = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static void setup_handle(struct s3_driver *d, CURL *h, struct s3_req *q, const char *url,
			 struct curl_slist *hdrs)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (!q->self_sign) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, d->sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, d->userpwd);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, d->useragent);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, d->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, d->stall_timeout_s);
	curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
	/* Bodies go at once: an "Expect:" header to turn 100-continue off would be signed by curl. */
	curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
	if (d->skipverify) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (q->body_file) {
		q->body_file->pos = 0;
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_file->len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read_file);
		curl_easy_setopt(h, CURLOPT_READDATA, q->body_file);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek_file);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, q->body_file);
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, S3_UPLOAD_BUFFER);
	} else if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		if (strcmp(q->method, "DELETE") != 0) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
		}
	}
}

void berth_s3__hex(char *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void hmac(unsigned char out[32], const void *key, size_t keylen, const char *msg)
{
	unsigned len = 32;
	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len);
}

/* The SigV4 signature (hex) of a string to sign for this date (YYYYMMDD). */
void berth_s3__sigv4_signature(const struct s3_driver *d, const char *date, const char *to_sign, char out[65])
{
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	char *secret = berth_asprintf("AWS4%s", d->secretkey);
	hmac(k1, secret, strlen(secret), date);
	hmac(k2, k1, 32, d->region);
	hmac(k3, k2, 32, "s3");
	hmac(k4, k3, 32, "aws4_request");
	hmac(sig, k4, 32, to_sign);
	berth_s3__hex(out, sig, 32);
	free(secret);
}

/* The canonical URI of a key: /bucket/key (path style) or /key. Keys hold unreserved
 * characters and '/' only (the storage path grammar), so nothing needs encoding. */
char *berth_s3__canonical_uri(const struct s3_driver *d, const char *key)
{
	return d->path_style ? berth_asprintf("/%s/%s", d->bucket, key ? key : "")
			     : berth_asprintf("/%s", key ? key : "");
}

static int cmp_header_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t nx = strcspn(x, ":"), ny = strcspn(y, ":");
	int c = strncmp(x, y, nx < ny ? nx : ny);
	return c ? c : (nx > ny) - (nx < ny);
}

/* Adds x-amz-date and an Authorization header (SigV4, every x-amz-* header and host signed)
 * to hdrs, for a request curl does not sign. */
static struct curl_slist *sign_headers(const struct s3_driver *d, const struct s3_req *q,
				       struct curl_slist *hdrs)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char date[9], stamp[17], line[64];
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(line, sizeof(line), "x-amz-date: %s", stamp);
	hdrs = curl_slist_append(hdrs, line);

	/* "name:value" lines, names lowercased, values trimmed, sorted by name. */
	char *lines[32];
	size_t n = 0;
	lines[n++] = berth_asprintf("host:%s", d->host);
	for (struct curl_slist *h = hdrs; h && n < 32; h = h->next) {
		if (strncasecmp(h->data, "x-amz-", 6) != 0)
			continue;
		size_t nl = strcspn(h->data, ":");
		const char *v = h->data + nl + (h->data[nl] ? 1 : 0);
		while (*v == ' ')
			v++;
		char *l = berth_asprintf("%.*s:%s", (int)nl, h->data, v);
		for (size_t i = 0; i < nl; i++)
			l[i] = (char)tolower((unsigned char)l[i]);
		lines[n++] = l;
	}
	qsort(lines, n, sizeof(lines[0]), cmp_header_name);
	struct berth_buf canon = BERTH_BUF_INIT(SIZE_MAX), names = BERTH_BUF_INIT(SIZE_MAX);
	char *uri = berth_s3__canonical_uri(d, q->key);
	berth_buf_printf(&canon, "%s\n%s\n%s\n", q->method, uri, q->query ? q->query : "");
	for (size_t i = 0; i < n; i++) {
		berth_buf_printf(&canon, "%s\n", lines[i]);
		berth_buf_printf(&names, "%s%.*s", i ? ";" : "", (int)strcspn(lines[i], ":"), lines[i]);
		free(lines[i]);
	}
	berth_buf_printf(&canon, "\n%s\nUNSIGNED-PAYLOAD", names.data);
	unsigned char digest[32];
	char digest_hex[65], sig[65];
	EVP_Digest(canon.data, canon.len, digest, NULL, EVP_sha256(), NULL);
	berth_s3__hex(digest_hex, digest, 32);
	char *to_sign = berth_asprintf("AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", stamp, date,
				       d->region, digest_hex);
	berth_s3__sigv4_signature(d, date, to_sign, sig);
	char *auth = berth_asprintf("Authorization: AWS4-HMAC-SHA256 Credential=%s/%s/%s/s3/aws4_request, "
				    "SignedHeaders=%s, Signature=%s", d->accesskey, date, d->region, names.data, sig);
	hdrs = curl_slist_append(hdrs, auth);
	free(auth);
	free(to_sign);
	free(uri);
	berth_buf_release(&canon);
	berth_buf_release(&names);
	return hdrs;
}

/*
 * Sends one request, retrying 500/502/503/504 (SlowDown is a 503) and transport failures with
 * backoff. 0 when an answer came (q->status says which), BERTH_ETOOLARGE if the body passed
 * q->out's cap, BERTH_EUNAVAILABLE (logged) when the server could not be reached or was still
 * busy after the last retry (clients get a 503).
 */
static int s3_status(struct s3_req *q);

/* The headers every request carries, then q's own. */
static struct curl_slist *request_headers(const struct s3_driver *d, const struct s3_req *q)
{
	/* Signed as unsigned payload (curl 7.88 signs a body only when told so). */
	struct curl_slist *hdrs = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (d->sessiontoken) {
		char *t = berth_asprintf("x-amz-security-token: %s", d->sessiontoken);
		hdrs = curl_slist_append(hdrs, t);
		free(t);
	}
	for (struct curl_slist *h = q->headers; h; h = h->next)
		hdrs = curl_slist_append(hdrs, h->data);
	if ((q->body || q->body_file) && !has_header(q->headers, "Content-Type"))
		hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	return hdrs;
}

void berth_s3__backoff(unsigned attempt)
{
	/* 50 ms, 100 ms, ... capped at 2 s, with jitter so retries of many clients spread. */
	unsigned ms = 50u << (attempt < 6 ? attempt : 6);
	if (ms > 2000)
		ms = 2000;
	ms = ms / 2 + (unsigned)(berth_now_ns() % (ms / 2 + 1));
	usleep(ms * 1000u);
}

void berth_s3__stream_setup(struct s3_stream_req *s, struct s3_driver *d, struct s3_req *q,
			    curl_write_callback on_data, void *arg)
{
	s->url = object_url(d, q->key, q->query);
	s->headers = request_headers(d, q);
	curl_easy_reset(s->h);
	berth_buf_release(&q->err);
	q->err.cap = 64u << 10;
	q->status = 0;
	setup_handle(d, s->h, q, s->url, s->headers);
	/* The reader watches for stalls itself: curl's low-speed check would count the time the
	 * transfer waits for the reader (its client) as a stall. */
	curl_easy_setopt(s->h, CURLOPT_LOW_SPEED_LIMIT, 0L);
	curl_easy_setopt(s->h, CURLOPT_LOW_SPEED_TIME, 0L);
	curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s->h, CURLOPT_WRITEDATA, arg);
}

void berth_s3__stream_release(struct s3_stream_req *s)
{
	curl_slist_free_all(s->headers);
	s->headers = NULL;
	berth_safefree(s->url);
}

int berth_s3__status(struct s3_req *q)
{
	return s3_status(q);
}

int berth_s3__send(struct s3_driver *d, struct s3_req *q)
{
	char *url = object_url(d, q->key, q->query);
	struct curl_slist *hdrs = request_headers(d, q);

	CURL *h = handle_take(d);
	int rc = BERTH_ERROR;
	CURLcode cc = CURLE_FAILED_INIT;
	size_t out_cap = q->out.cap;
	for (unsigned attempt = 0; h; attempt++) {
		curl_easy_reset(h);
		berth_buf_release(&q->out);
		q->out.cap = out_cap;
		berth_buf_release(&q->err);
		q->err.cap = 64u << 10;
		q->status = 0;
		q->too_large = 0;
		struct curl_slist *signed_hdrs = NULL;
		if (q->self_sign) { /* signed again each attempt: the signature carries the time */
			for (struct curl_slist *x = hdrs; x; x = x->next)
				signed_hdrs = curl_slist_append(signed_hdrs, x->data);
			signed_hdrs = sign_headers(d, q, signed_hdrs);
		}
		setup_handle(d, h, q, url, signed_hdrs ? signed_hdrs : hdrs);
		cc = curl_easy_perform(h);
		curl_slist_free_all(signed_hdrs);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		q->status = status;
		if (q->too_large) {
			rc = BERTH_ETOOLARGE;
			break;
		}
		if (cc == CURLE_OK) {
			curl_off_t ft = -1, cl = -1;
			curl_easy_getinfo(h, CURLINFO_FILETIME_T, &ft);
			curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
			q->mtime = ft >= 0 ? (int64_t)ft : (int64_t)time(NULL);
			q->content_length = cl >= 0 ? (uint64_t)cl : 0;
		}
		if (!retryable(cc, status) || attempt >= d->retries) {
			if (cc == CURLE_OK && retryable(cc, status)) {
				char code[64];
				berth_s3__error_code(q, code, sizeof(code));
				berth_error("s3: %s %s: HTTP %ld %s after %u attempts", q->method,
					    q->key ? q->key : "/", status, code, attempt + 1);
				rc = BERTH_EUNAVAILABLE;
			} else if (cc == CURLE_ABORTED_BY_CALLBACK) {
				/* a streamed part given up by its writer, or a spool file that could not be
				 * read (logged by on_read_file) */
				berth_debug("s3: %s %s: body abandoned", q->method, q->key ? q->key : "/");
				rc = BERTH_ERROR;
			} else if (cc != CURLE_OK) {
				berth_error("s3: %s %s: %s after %u attempts", q->method, q->key ? q->key : "/",
					    curl_easy_strerror(cc), attempt + 1);
				rc = BERTH_EUNAVAILABLE;
			} else {
				rc = 0;
			}
			break;
		}
		berth_debug("s3: %s %s: retrying (%s, HTTP %ld)", q->method, q->key ? q->key : "/",
			    cc == CURLE_OK ? "server busy" : curl_easy_strerror(cc), status);
		berth_s3__backoff(attempt);
	}
	if (h)
		handle_give(d, h);
	curl_slist_free_all(hdrs);
	free(url);
	return rc;
}

/* Maps a final answer to a code: 2xx 0, 404 ENOTFOUND, 416 ERANGE, quota ENOSPC, else an
 * error logged with the S3 code. */
static int s3_status(struct s3_req *q)
{
	if (q->status >= 200 && q->status < 300)
		return 0;
	if (q->status == 404)
		return BERTH_ENOTFOUND;
	if (q->status == 416)
		return BERTH_ERANGE;
	char code[64];
	berth_s3__error_code(q, code, sizeof(code));
	if (strcmp(code, "QuotaExceeded") == 0 || q->status == 507)
		return BERTH_ENOSPC;
	berth_error("s3: %s %s: HTTP %ld %s", q->method, q->key ? q->key : "/", q->status,
		    code[0] ? code : "(no error code)");
	return BERTH_ERROR;
}

void berth_s3__req_release(struct s3_req *q)
{
	berth_buf_release(&q->out);
	berth_buf_release(&q->err);
}

/* Sends and maps the status: the common case. */
int berth_s3__call(struct s3_driver *d, struct s3_req *q)
{
	int rc = berth_s3__send(d, q);
	return rc < 0 ? rc : s3_status(q);
}

/* Some answers are 200 with an <Error> body (CopyObject, CompleteMultipartUpload). */
int berth_s3__call_checked(struct s3_driver *d, struct s3_req *q)
{
	int rc = berth_s3__call(d, q);
	if (rc == 0 && q->out.data && strstr(q->out.data, "<Error>")) {
		size_t n = 0;
		const char *c = s3_xml_find(q->out.data, q->out.data + q->out.len, "Code", &n, NULL);
		berth_error("s3: %s %s: %.*s", q->method, q->key ? q->key : "/", (int)(c ? n : 0),
			    c ? c : "");
		rc = BERTH_ERROR;
	}
	return rc;
}

/* AWS URI encoding of a query value: unreserved characters stay, the rest become %XX. */
void berth_s3__query_escape(struct berth_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '~')
			berth_buf_append(b, s, 1);
		else
			berth_buf_printf(b, "%%%02X", c);
	}
}

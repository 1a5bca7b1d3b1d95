/*
 * Inside the S3 driver: the driver's state, one request and its answer, multipart uploads.
 * s3_request.c sends signed requests with retries; s3_multipart.c drives multipart uploads;
 * s3.c is the driver itself. Not for use outside src/storage/s3*.c.
 */
#ifndef BERTH_STORAGE_S3_INT_H
#define BERTH_STORAGE_S3_INT_H

#include "core/digest.h"
#include "core/lru.h"
#include "core/map.h"
#include "core/util.h"
#include "storage/driver.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define S3_MIN_PART (5ull << 20)          /* S3's smallest part but the last */
#define S3_MAX_PARTS 10000u
#define S3_READ_WINDOW ((1u << 20) - 1)   /* bytes of a reader's first GET (fits a 1 MiB buffer) */
#define S3_META_CAP (64u << 20)           /* largest XML answer read */
#define S3_DELETE_BATCH 1000u             /* DeleteObjects' limit */
#define S3_IDLE_HANDLES 16u
#define S3_UPLOAD_BUFFER (128L << 10)     /* curl's buffer for a body sent from a file */
#define S3_PRESIGN_SECONDS 1200           /* Distribution's 20 minutes */
#define S3_STAT_PATHS 4096u               /* paths whose concurrent stats share requests at once */

struct berth_coalesce;
struct s3_resume_note;

struct s3_driver {
	struct berth_storage_driver base;
	char *endpoint, *bucket, *host, *region, *prefix; /* prefix: "" or "root/dir/" */
	char *url_base;   /* endpoint + "/" + bucket (path style) or the virtual host */
	char *userpwd, *sigv4, *useragent, *accesskey, *secretkey, *sessiontoken;
	struct curl_slist *object_headers; /* storage class, acl, encryption: on every new object */
	int skipverify, path_style;
	uint64_t chunksize, copy_chunksize, copy_threshold;
	unsigned retries;
	long connect_timeout_ms, stall_timeout_s;
	pthread_mutex_t pool_lock;
	CURL *idle[S3_IDLE_HANDLES];
	size_t n_idle;
	struct berth_coalesce *stats; /* concurrent stats of one path share a HEAD (coalesce.h) */
	pthread_mutex_t resume_lock;  /* guards the two below (s3_resume.c) */
	struct berth_lru resume_notes; /* where suspends left uploads, newest first */
	struct berth_map resume_index; /* a key's note */
};

struct s3_parts;

/* A request body read from a file (a writer's spooled part, s3_spool.c) rather than memory. */
struct s3_body_file {
	int fd;
	const char *mem; /* instead of fd: the bytes are in memory */
	uint64_t len;  /* the body is bytes [0, len) of fd */
	uint64_t pos;  /* the next byte curl reads (back to 0 on every attempt) */
	/* Not NULL: a part sent while its bytes still arrive (berth_s3__parts_ready). */
	struct s3_parts *stream;
};

/* One request and what came back. */
struct s3_req {
	const char *method;     /* "GET", "HEAD", "PUT", "POST", "DELETE" */
	const char *key;        /* object key, or NULL for the bucket */
	const char *query;      /* canonical (sorted, encoded) query string, or NULL */
	const void *body;
	size_t body_len;
	struct s3_body_file *body_file; /* instead of body (a PUT): borrowed */
	struct curl_slist *headers; /* borrowed, extra request headers */
	/* Signed by berth, not curl: curl 7.88 sorts the canonical headers as "name:value" lines,
	 * so x-amz-copy-source-range lands before x-amz-copy-source and the signature is wrong. */
	int self_sign;
	/* Where a 2xx body goes (capped: BERTH_ETOOLARGE past it). */
	struct berth_buf out;
	int too_large;
	/* response */
	long status;
	struct berth_buf err;   /* a non-2xx body (capped), for the error code */
	char etag[130];
	uint64_t range_total;   /* from Content-Range: a-b/TOTAL; 0 if none */
	int64_t mtime;
	uint64_t content_length;
};

struct s3_part {
	unsigned number;
	uint64_t size;
	char etag[130];
};

/* An open multipart upload and its parts so far. */
struct s3_mpu {
	char *id;
	struct s3_part *parts;
	size_t n_parts;
	uint64_t bytes; /* in the parts */
};

/* A request whose transfer its caller drives (curl multi): the S3 reader's streamed GET. */
struct s3_stream_req {
	CURL *h;                   /* the caller's */
	struct curl_slist *headers;
	char *url;
};

/* ---- s3_request.c ---- */

/* curl_global_init, once per process. */
void berth_s3__global_init(void);
/*
 * Sends one request, retrying 500/502/503/504 (SlowDown is a 503) and transport failures with
 * backoff. 0 when an answer came (q->status says which), BERTH_ETOOLARGE if the body passed
 * q->out's cap, BERTH_EUNAVAILABLE (logged) when the server could not be reached or stayed
 * busy. Blocks.
 */
int berth_s3__send(struct s3_driver *d, struct s3_req *q);
/* Sends and maps the status: 2xx 0, 404 ENOTFOUND, 416 ERANGE, quota ENOSPC, else BERTH_ERROR
 * (logged with S3's error code). */
int berth_s3__call(struct s3_driver *d, struct s3_req *q);
/* berth_s3__call, and a 200 whose body is an <Error> (CopyObject, CompleteMultipartUpload) is
 * BERTH_ERROR too. */
int berth_s3__call_checked(struct s3_driver *d, struct s3_req *q);
/* Sets s->h up for q as berth_s3__send does (URL, signature, timeouts; the answer's status and
 * headers into q, an error body into q->err) but with the body going to on_data(arg) and no
 * low-speed limit: the caller drives the transfer, and retries. Release with
 * berth_s3__stream_release once the transfer is over. */
void berth_s3__stream_setup(struct s3_stream_req *s, struct s3_driver *d, struct s3_req *q,
			    curl_write_callback on_data, void *arg);
void berth_s3__stream_release(struct s3_stream_req *s);
/* berth_s3__call's mapping of q->status to a code (logged when it is an error). */
int berth_s3__status(struct s3_req *q);
/* Sleeps before retry number attempt + 1 (50 ms doubling to 2 s, with jitter). */
void berth_s3__backoff(unsigned attempt);
/* Frees the answer's buffers. */
void berth_s3__req_release(struct s3_req *q);
/* The <Code> of an S3 error answer, or "" (into out). */
void berth_s3__error_code(const struct s3_req *q, char *out, size_t outlen);
/* Appends s with AWS's URI encoding of query values (unreserved characters stay). */
void berth_s3__query_escape(struct berth_buf *b, const char *s);
/* /bucket/key (path style) or /key: a new string. */
char *berth_s3__canonical_uri(const struct s3_driver *d, const char *key);
/* n bytes as 2n lowercase hex digits and a NUL. */
void berth_s3__hex(char *out, const unsigned char *p, size_t n);
/* The SigV4 signature (hex) of to_sign for date (YYYYMMDD), with the driver's secret and region. */
void berth_s3__sigv4_signature(const struct s3_driver *d, const char *date, const char *to_sign, char out[65]);

/* ---- s3_multipart.c ---- */

void berth_s3__mpu_release(struct s3_mpu *m);
/* CreateMultipartUpload with the driver's object headers: sets m->id. */
int berth_s3__mpu_create(struct s3_driver *d, const char *key, struct s3_mpu *m);
/* UploadPart of body as part `number` (at most S3_MAX_PARTS: the caller checks) of the upload
 * upload_id on key: 0 with the part's ETag, or a BERTH_E* code. Touches no struct s3_mpu, so it
 * may run on a thread of its own (s3_spool.c). Blocks. */
int berth_s3__mpu_put_part(struct s3_driver *d, const char *key, const char *upload_id, unsigned number,
			   struct s3_body_file *body, char etag[130]);
/* Records a part stored (its number, ETag and size) in m. */
void berth_s3__mpu_add_part(struct s3_mpu *m, unsigned number, const char *etag, uint64_t size);
/* Copies bytes [0, size) of src_key as the next parts (UploadPartCopy), in pieces of the
 * driver's copy_chunksize. */
int berth_s3__mpu_copy_parts(struct s3_driver *d, const char *key, struct s3_mpu *m, const char *src_key,
			     uint64_t size);
/* CompleteMultipartUpload; on success m is released. */
int berth_s3__mpu_complete(struct s3_driver *d, const char *key, struct s3_mpu *m);
/* AbortMultipartUpload (an upload already gone is fine); m is released. */
int berth_s3__mpu_abort(struct s3_driver *d, const char *key, struct s3_mpu *m);
/* Called per open multipart upload listed (initiated: seconds since the epoch, 0 if not
 * given); non-zero stops the listing (and is returned). */
typedef int (*berth_s3_upload_cb)(const char *key, const char *upload_id, int64_t initiated,
				  void *payload);
/* ListMultipartUploads of every upload whose key starts with prefix, all pages. */
int berth_s3__mpu_list(struct s3_driver *d, const char *prefix, berth_s3_upload_cb cb, void *payload);
/* Finds a multipart upload left open on exactly this key (the last listed): 0 with m->id set,
 * 0 with m->id NULL if there is none, or a BERTH_E* code. */
int berth_s3__mpu_find(struct s3_driver *d, const char *key, struct s3_mpu *m);
/* Lists the parts of m->id into m. */
int berth_s3__mpu_list_parts(struct s3_driver *d, const char *key, struct s3_mpu *m);

/* ---- s3_spool.c ---- */

/* Bytes waiting in an unlinked temporary file (see s3_spool.c). */
#define S3_SPOOL_MEMORY (256u << 10) /* bytes a spool keeps in memory before it makes its file */

struct s3_spool {
	int fd;        /* -1 until the bytes pass S3_SPOOL_MEMORY */
	uint64_t len;
	char *mem;     /* while fd is -1: the bytes */
	size_t mem_cap;
};

/*
 * A writer's bytes not in a stored part yet: the part being filled, and at most one part in
 * transfer on a thread of its own meanwhile (the "pending" part: sent, or sent again by
 * berth_s3__parts_wait after a failure, and only then recorded in the upload). Both wait in
 * spool files, not in memory. A pending part is either full (spool[sending] with sending !=
 * filling) or streamed: sent while it still fills (sending == filling), its final size known
 * in advance (berth_s3__parts_stream), the request body read from the file as the bytes land
 * in it. Used by one thread at a time (the writer's), but for the sender's reads of a streamed
 * part (berth_s3__parts_ready), which lock.
 */
struct s3_parts {
	struct s3_driver *d;
	const char *key;       /* borrowed from the writer */
	struct s3_spool spool[2];
	int filling;           /* spool[filling] is filled */
	int pending;
	int sending;           /* spool[sending] holds the pending part */
	unsigned pending_number;
	/* Borrowed: the upload's id, which stays until the pending part is waited for or
	 * discarded (nothing completes or aborts an upload with a part in transfer). */
	const char *pending_upload;
	uint64_t stream_len;   /* a streamed part's final size */
	int streamed;          /* the pending part is sent while it fills: set before its sender
				* starts, which must not infer it from `filling` (the filler seals
				* the part, flipping it, while the sender runs) */
	pthread_mutex_t lock;  /* a streamed part's spool length and `abandoned` */
	pthread_cond_t grown;
	int abandoned;         /* the streamed part's sender gives up (no more bytes will come) */
	pthread_t thread;
	int running;           /* the thread was started and is not joined yet */
	_Atomic int sent;      /* ... and has finished */
	int sent_rc;           /* its answer */
	char sent_etag[130];
};

void berth_s3__parts_init(struct s3_parts *p, struct s3_driver *d, const char *key);
/* Bytes in the part being filled / in a full part in transfer (a streamed part's are the
 * filling part's). */
uint64_t berth_s3__parts_filling(const struct s3_parts *p);
uint64_t berth_s3__parts_pending(const struct s3_parts *p);
/* 1 while the part being filled is also being sent (berth_s3__parts_stream). */
int berth_s3__parts_streaming(const struct s3_parts *p);
/* The size at which the part being filled is complete: a streamed part's final size, else
 * the driver's chunksize. */
uint64_t berth_s3__parts_target(const struct s3_parts *p);
/* Appends n bytes (no more than the target allows) to the part being filled: 0, or
 * BERTH_ERROR / BERTH_ENOSPC (logged) when the temporary file cannot be created or written.
 * A streamed part that reaches its size is sealed: the next bytes fill the other spool. */
int berth_s3__parts_append(struct s3_parts *p, const void *buf, size_t n);
/* The part being filled as a request body (borrowed; valid until the next call on p). */
struct s3_body_file berth_s3__parts_filling_body(struct s3_parts *p);
/* Waits for the pending part (a part that failed is sent again now) and records it in m: 0,
 * or the send's error (the part stays pending). A streamed part whose bytes have not all come
 * is abandoned instead (its transfer stopped): its bytes stay the part being filled. Blocks. */
int berth_s3__parts_wait(struct s3_parts *p, struct s3_mpu *m);
/* berth_s3__parts_wait for a full part whose transfer has ended; otherwise nothing. */
int berth_s3__parts_poll(struct s3_parts *p, struct s3_mpu *m);
/* Makes the part being filled the next part of m, sent on a thread of its own while the next
 * one fills (after waiting for the previous one: one part at most is in flight). 0 or the
 * error of the previous part. */
int berth_s3__parts_send(struct s3_parts *p, struct s3_mpu *m);
/* Sends the part being filled as the next part of m now (after the pending one). Blocks. */
int berth_s3__parts_send_now(struct s3_parts *p, struct s3_mpu *m);
/* With no part pending: starts sending the part being filled as the next part of m, of final
 * size len (more than it holds), on a thread of its own while the bytes still come. 0 (also
 * when no thread could be started: the part is then sent as any other), or the error of the
 * spool file. */
int berth_s3__parts_stream(struct s3_parts *p, struct s3_mpu *m, uint64_t len);
/* For the sender of a streamed part: waits until the part holds more than pos bytes; the
 * bytes it holds, or 0 once it is abandoned. */
uint64_t berth_s3__parts_ready(struct s3_parts *p, uint64_t pos);
/* Forgets both parts (a transfer in progress is stopped and its part not recorded). */
void berth_s3__parts_discard(struct s3_parts *p);
/* berth_s3__parts_discard, and the temporary files are closed. */
void berth_s3__parts_release(struct s3_parts *p);

/* ---- s3_resume.c ---- */

/* A suspended writer's upload as this process left it (the resume slot, driver.h): the key's
 * upload id and a fingerprint of its parts, taken by the next resume open of the key, which
 * checks it with one ListParts. Thread-safe.
 * The fingerprint: SHA-256 of the parts' numbers, sizes and ETags (unquoted), "sha256:<hex>". */
void berth_s3__resume_fingerprint(const struct s3_mpu *m, char out[BERTH_DIGEST_STR_MAX]);
/* Notes m (with an id) as the upload a suspend left on key, replacing an older note. */
void berth_s3__resume_note(struct s3_driver *d, const char *key, const struct s3_mpu *m);
/* Forgets the note of key, if any. */
void berth_s3__resume_forget(struct s3_driver *d, const char *key);
/* Takes (removes) the note of key: 1 with *upload_id (owned) and its fingerprint, 0 if none. */
int berth_s3__resume_take(struct s3_driver *d, const char *key, char **upload_id,
			  char fingerprint[BERTH_DIGEST_STR_MAX]);
/* Frees every note (the driver's end). */
void berth_s3__resume_release(struct s3_driver *d);
/* Readies the notes of a new driver (before any of the calls above). */
void berth_s3__resume_init(struct s3_driver *d);

/* ---- s3.c ---- */

/* CopyObject of from_key to to_key (the same key: a touch, s3_touch.c), with the driver's object
 * headers and x-amz-metadata-directive: REPLACE. berth_s3__call_checked's codes; on a 400, S3's
 * error code into error_code when not NULL ("" otherwise). Blocks. */
int berth_s3__copy_object(struct s3_driver *d, const char *from_key, const char *to_key, char *error_code,
			  size_t error_code_len);
/* The same copy of an object of `size` bytes as a multipart upload of UploadPartCopy parts
 * (past CopyObject's 5 GiB, or the copy threshold); aborted on failure. Blocks. */
int berth_s3__copy_object_in_parts(struct s3_driver *d, const char *from_key, const char *to_key,
				   uint64_t size);

/* ---- s3_touch.c ---- */

/* The driver's touch slot (driver.h): LastModified set to now by a copy of the object onto
 * itself. BERTH_ENOTFOUND if absent. Blocks. */
int berth_s3__touch(struct berth_storage_driver *base, const char *path);

#endif

/* S3 multipart uploads for the S3 driver's writers and large copies (see s3_int.h). */
#include "storage/s3_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/s3_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void berth_s3__mpu_release(struct s3_mpu *m)
{
	berth_safefree(m->id);
	berth_safefree(m->parts);
	m->n_parts = 0;
	m->bytes = 0;
}

void berth_s3__mpu_add_part(struct s3_mpu *m, unsigned number, const char *etag, uint64_t size)
{
	m->parts = berth_realloc(m->parts, (m->n_parts + 1) * sizeof(*m->parts));
	struct s3_part *p = &m->parts[m->n_parts++];
	p->number = number;
	p->size = size;
	snprintf(p->etag, sizeof(p->etag), "%s", etag);
	m->bytes += size;
}

int berth_s3__mpu_create(struct s3_driver *d, const char *key, struct s3_mpu *m)
{
	struct s3_req q = { .method = "POST", .key = key, .query = "uploads=", .body = "",
			    .headers = d->object_headers, .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call_checked(d, &q);
	if (rc == 0) {
		size_t n = 0;
		const char *id = s3_xml_find(q.out.data, q.out.data + q.out.len, "UploadId", &n, NULL);
		if (id)
			m->id = s3_xml_unescape(id, n);
		else
			rc = BERTH_ERROR;
	}
	berth_s3__req_release(&q);
	return rc;
}

static char *upload_query(const char *upload_id, unsigned part)
{
	struct berth_buf b = BERTH_BUF_INIT(SIZE_MAX);
	if (part)
		berth_buf_printf(&b, "partNumber=%u&", part);
	berth_buf_printf(&b, "uploadId=");
	berth_s3__query_escape(&b, upload_id);
	return berth_buf_detach(&b, NULL);
}

int berth_s3__mpu_put_part(struct s3_driver *d, const char *key, const char *upload_id, unsigned number,
			   struct s3_body_file *body, char etag[130])
{
	char *query = upload_query(upload_id, number);
	struct s3_req q = { .method = "PUT", .key = key, .query = query, .body_file = body,
			    .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call(d, &q);
	if (rc == 0)
		snprintf(etag, 130, "%s", q.etag);
	berth_s3__req_release(&q);
	free(query);
	return rc;
}

/* Copies bytes [from, to) of src_key as the next part. */
static int mpu_copy_part(struct s3_driver *d, const char *key, struct s3_mpu *m, const char *src_key,
			 uint64_t from, uint64_t to)
{
	if (m->n_parts >= S3_MAX_PARTS)
		return BERTH_ETOOLARGE;
	unsigned number = (unsigned)m->n_parts + 1;
	char *query = upload_query(m->id, number);
	char *src = berth_asprintf("x-amz-copy-source: /%s/%s", d->bucket, src_key);
	char *range = berth_asprintf("x-amz-copy-source-range: bytes=%llu-%llu", (unsigned long long)from,
				     (unsigned long long)(to - 1));
	struct curl_slist *h = curl_slist_append(curl_slist_append(NULL, src), range);
	struct s3_req q = { .method = "PUT", .key = key, .query = query, .body = "", .headers = h,
			    .self_sign = 1, .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call_checked(d, &q);
	if (rc == 0) {
		size_t n = 0;
		const char *etag = s3_xml_find(q.out.data, q.out.data + q.out.len, "ETag", &n, NULL);
		char *e = etag ? s3_xml_unescape(etag, n) : NULL;
		if (e)
			berth_s3__mpu_add_part(m, number, e, to - from);
		else
			rc = BERTH_ERROR;
		free(e);
	}
	curl_slist_free_all(h);
	berth_s3__req_release(&q);
	free(range);
	free(src);
	free(query);
	return rc;
}

/* Copies [0, size) of src_key as the next parts, in pieces of copy_chunksize (a short last piece
 * joins the one before: every part but the last must be >= 5 MiB). */
int berth_s3__mpu_copy_parts(struct s3_driver *d, const char *key, struct s3_mpu *m, const char *src_key,
			  uint64_t size)
{
	uint64_t from = 0;
	while (from < size) {
		uint64_t to = from + d->copy_chunksize;
		if (to > size || size - to < S3_MIN_PART)
			to = size;
		int rc = mpu_copy_part(d, key, m, src_key, from, to);
		if (rc < 0)
			return rc;
		from = to;
	}
	return 0;
}

int berth_s3__mpu_complete(struct s3_driver *d, const char *key, struct s3_mpu *m)
{
	struct berth_buf body = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_printf(&body, "<CompleteMultipartUpload>");
	for (size_t i = 0; i < m->n_parts; i++)
		berth_buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
				 m->parts[i].number, m->parts[i].etag);
	berth_buf_printf(&body, "</CompleteMultipartUpload>");
	char *query = upload_query(m->id, 0);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/xml");
	struct s3_req q = { .method = "POST", .key = key, .query = query, .body = body.data,
			    .body_len = body.len, .headers = h, .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call_checked(d, &q);
	curl_slist_free_all(h);
	berth_s3__req_release(&q);
	free(query);
	berth_buf_release(&body);
	if (rc == 0)
		berth_s3__mpu_release(m);
	return rc;
}

int berth_s3__mpu_abort(struct s3_driver *d, const char *key, struct s3_mpu *m)
{
	char *query = upload_query(m->id, 0);
	struct s3_req q = { .method = "DELETE", .key = key, .query = query, .out = BERTH_BUF_INIT(S3_META_CAP) };
	int rc = berth_s3__call(d, &q);
	berth_s3__req_release(&q);
	free(query);
	berth_s3__mpu_release(m);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

int berth_s3__mpu_list(struct s3_driver *d, const char *prefix, berth_s3_upload_cb cb, void *payload)
{
	char *key_marker = NULL, *id_marker = NULL;
	int rc = 0;
	do {
		struct berth_buf query = BERTH_BUF_INIT(SIZE_MAX);
		if (key_marker) {
			berth_buf_printf(&query, "key-marker=");
			berth_s3__query_escape(&query, key_marker);
			berth_buf_printf(&query, "&");
		}
		berth_buf_printf(&query, "prefix=");
		berth_s3__query_escape(&query, prefix);
		if (id_marker) {
			berth_buf_printf(&query, "&upload-id-marker=");
			berth_s3__query_escape(&query, id_marker);
		}
		berth_buf_printf(&query, "&uploads=");
		berth_safefree(key_marker);
		berth_safefree(id_marker);
		struct s3_req q = { .method = "GET", .query = query.data, .out = BERTH_BUF_INIT(S3_META_CAP) };
		rc = berth_s3__call(d, &q);
		berth_buf_release(&query);
		if (rc == 0 && q.out.data) {
			const char *p = q.out.data, *end = p + q.out.len, *after, *u;
			size_t n;
			while (rc == 0 && (u = s3_xml_find(p, end, "Upload", &n, &after)) != NULL) {
				size_t kn = 0, in = 0, tn = 0;
				const char *k = s3_xml_find(u, u + n, "Key", &kn, NULL);
				const char *id = s3_xml_find(u, u + n, "UploadId", &in, NULL);
				const char *t = s3_xml_find(u, u + n, "Initiated", &tn, NULL);
				if (k && id) {
					char *kk = s3_xml_unescape(k, kn), *ii = s3_xml_unescape(id, in);
					rc = cb(kk, ii, t ? s3_xml_time(t, tn) : 0, payload);
					free(kk);
					free(ii);
				}
				p = after;
			}
			const char *t = s3_xml_find(q.out.data, end, "IsTruncated", &n, NULL);
			if (rc == 0 && t && n == 4 && memcmp(t, "true", 4) == 0) {
				const char *km = s3_xml_find(q.out.data, end, "NextKeyMarker", &n, NULL);
				key_marker = km ? s3_xml_unescape(km, n) : NULL;
				const char *im = s3_xml_find(q.out.data, end, "NextUploadIdMarker", &n, NULL);
				id_marker = im ? s3_xml_unescape(im, n) : NULL;
			}
		}
		berth_s3__req_release(&q);
	} while (rc == 0 && key_marker);
	free(key_marker);
	free(id_marker);
	return rc;
}

struct exact_key {
	const char *key;
	struct s3_mpu *m;
};

static int take_if_exact(const char *key, const char *upload_id, int64_t initiated, void *payload)
{
	struct exact_key *e = payload;
	if (strcmp(key, e->key) == 0) {
		free(e->m->id);
		e->m->id = berth_strdup(upload_id);
	}
	return 0;
}

int berth_s3__mpu_find(struct s3_driver *d, const char *key, struct s3_mpu *m)
{
	struct exact_key e = { .key = key, .m = m };
	return berth_s3__mpu_list(d, key, take_if_exact, &e);
}

/* Lists the parts of m->id into m. */
int berth_s3__mpu_list_parts(struct s3_driver *d, const char *key, struct s3_mpu *m)
{
	unsigned marker = 0;
	for (;;) {
		struct berth_buf query = BERTH_BUF_INIT(SIZE_MAX);
		if (marker)
			berth_buf_printf(&query, "part-number-marker=%u&", marker);
		berth_buf_printf(&query, "uploadId=");
		berth_s3__query_escape(&query, m->id);
		struct s3_req q = { .method = "GET", .key = key, .query = query.data,
				    .out = BERTH_BUF_INIT(S3_META_CAP) };
		int rc = berth_s3__call(d, &q);
		berth_buf_release(&query);
		int more = 0;
		if (rc == 0 && q.out.data) {
			const char *p = q.out.data, *end = p + q.out.len, *after, *e;
			size_t n;
			while ((e = s3_xml_find(p, end, "Part", &n, &after)) != NULL) {
				size_t nn = 0, en = 0, sn = 0;
				const char *num = s3_xml_find(e, e + n, "PartNumber", &nn, NULL);
				const char *etag = s3_xml_find(e, e + n, "ETag", &en, NULL);
				const char *size = s3_xml_find(e, e + n, "Size", &sn, NULL);
				if (num && etag && size) {
					char *et = s3_xml_unescape(etag, en);
					marker = (unsigned)strtoul(num, NULL, 10);
					berth_s3__mpu_add_part(m, marker, et, strtoull(size, NULL, 10));
					free(et);
				}
				p = after;
			}
			const char *t = s3_xml_find(q.out.data, end, "IsTruncated", &n, NULL);
			more = t && n == 4 && memcmp(t, "true", 4) == 0;
		}
		berth_s3__req_release(&q);
		if (rc < 0 || !more)
			return rc;
	}
}

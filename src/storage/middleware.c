/*
 * Storage middleware: a wrapping driver that forwards every slot to the driver below and
 * answers url_for itself (redirect, cloudfront). See storage/middleware.h.
 */
#include "storage/middleware.h"

#include "config/config.h"
#include "core/err.h"
#include "core/util.h"
#include "storage/awsips.h"
#include "storage/storage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* Distribution's cloudfront default, and its S3 driver's presigned URLs'. */
#define DEFAULT_DURATION_MS (20 * 60 * 1000LL)
/* cloudfront's ipfilteredby defaults, Distribution's */
#define DEFAULT_IP_RANGES_URL "https://ip-ranges.amazonaws.com/ip-ranges.json"
#define DEFAULT_UPDATE_MS (12 * 3600 * 1000LL)

struct mw_driver {
	struct berth_storage_driver base; /* first: the slots get &base */
	struct berth_storage_driver *inner;
	/* redirect: scheme://host plus the baseurl's cleaned, escaped path ("" or "/a/b") */
	char *url_prefix;
	/* cloudfront: baseurl ending in '/', the key pair's id, its RSA key, URLs' lifetime */
	char *cf_baseurl;
	char *cf_keypairid;
	EVP_PKEY *cf_key;
	int64_t cf_duration_ms;
	/* cloudfront's ipfilteredby aws/awsregion: clients inside these ranges get S3's URL */
	struct berth_awsips *cf_ips;
};

static struct berth_storage_driver *inner(struct berth_storage_driver *d)
{
	return ((struct mw_driver *)d)->inner;
}

/* ---- forwarding ----------------------------------------------------------------------------- */

static int fw_get_content(char **out, size_t *out_len, struct berth_storage_driver *d, const char *path,
			  size_t max)
{
	return inner(d)->get_content(out, out_len, inner(d), path, max);
}

static int fw_put_content(struct berth_storage_driver *d, const char *path, const void *buf, size_t n)
{
	return inner(d)->put_content(inner(d), path, buf, n);
}

static int fw_put_content_as(struct berth_storage_driver *d, const char *path, const void *buf,
			     size_t n, enum berth_sync sync)
{
	return inner(d)->put_content_as(inner(d), path, buf, n, sync);
}

static int fw_move_as(struct berth_storage_driver *d, const char *from, const char *to,
		      enum berth_sync sync)
{
	return inner(d)->move_as(inner(d), from, to, sync);
}

static int fw_reader(struct berth_reader **out, struct berth_storage_driver *d, const char *path,
		     uint64_t offset)
{
	return inner(d)->reader(out, inner(d), path, offset);
}

static int fw_writer(struct berth_writer **out, struct berth_storage_driver *d, const char *path, int append)
{
	return inner(d)->writer(out, inner(d), path, append);
}

static int fw_stat(struct berth_stat *out, struct berth_storage_driver *d, const char *path)
{
	return inner(d)->stat(out, inner(d), path);
}

static int fw_list(struct berth_storage_driver *d, const char *path, berth_list_cb cb, void *payload)
{
	return inner(d)->list(inner(d), path, cb, payload);
}

static int fw_move(struct berth_storage_driver *d, const char *from, const char *to)
{
	return inner(d)->move(inner(d), from, to);
}

static int fw_remove(struct berth_storage_driver *d, const char *path)
{
	return inner(d)->remove(inner(d), path);
}

static int fw_walk(struct berth_storage_driver *d, const char *path, berth_walk_cb cb, void *payload)
{
	return inner(d)->walk(inner(d), path, cb, payload);
}

static int fw_find_debris(struct berth_storage_driver *d, const char *path, const char *skip,
			  berth_debris_cb cb, void *payload)
{
	return inner(d)->find_debris(inner(d), path, skip, cb, payload);
}

static int fw_remove_debris(struct berth_storage_driver *d, const char *path)
{
	return inner(d)->remove_debris(inner(d), path);
}

static int fw_quarantine(char **where_out, struct berth_storage_driver *d, const char *path,
			 const char *path_aside, const char *name)
{
	return inner(d)->quarantine(where_out, inner(d), path, path_aside, name);
}

static int fw_append_size(uint64_t *out, struct berth_storage_driver *d, const char *path)
{
	return inner(d)->append_size(out, inner(d), path);
}

static int fw_touch(struct berth_storage_driver *d, const char *path)
{
	return inner(d)->touch(inner(d), path);
}

static int fw_object_key(char **out, struct berth_storage_driver *d, const char *path)
{
	return inner(d)->object_key(out, inner(d), path);
}

static int fw_list_tree(struct berth_storage_driver *d, const char *path, berth_walk_cb cb, void *payload)
{
	return inner(d)->list_tree(inner(d), path, cb, payload);
}

static int fw_staged_writer(struct berth_writer **out, struct berth_storage_driver *d, const char *path)
{
	return inner(d)->staged_writer(out, inner(d), path);
}

static int fw_resume_writer(struct berth_writer **out, struct berth_storage_driver *d, const char *path)
{
	return inner(d)->resume_writer(out, inner(d), path);
}

static int fw_purge_staged(struct berth_storage_driver *d, const char *path, int64_t before, size_t *purged)
{
	return inner(d)->purge_staged(inner(d), path, before, purged);
}

static void mw_free(struct berth_storage_driver *d)
{
	struct mw_driver *m = (struct mw_driver *)d;
	berth_storage_free(m->inner);
	free(m->url_prefix);
	free(m->cf_baseurl);
	free(m->cf_keypairid);
	EVP_PKEY_free(m->cf_key);
	berth_awsips_free(m->cf_ips);
	free(m);
}

/* A middleware not yet over a driver: only free works (berth_storage_middleware_wrap sets the rest). */
static struct mw_driver *mw_new(int (*url_for)(char **, struct berth_storage_driver *, const char *))
{
	struct mw_driver *m = berth_calloc(1, sizeof(*m));
	m->base.version = BERTH_STORAGE_DRIVER_VERSION;
	m->base.url_for = url_for;
	m->base.free = mw_free;
	return m;
}

/* Forwards every slot of m to in (optional ones only where in has them). */
static void mw_over(struct mw_driver *m, struct berth_storage_driver *in)
{
	m->inner = in;
	m->base = (struct berth_storage_driver){
		.version = BERTH_STORAGE_DRIVER_VERSION, .name = in->name,
		.get_content = fw_get_content, .put_content = fw_put_content, .reader = fw_reader,
		.writer = fw_writer, .stat = fw_stat, .list = fw_list, .move = fw_move,
		.remove = fw_remove, .walk = fw_walk, .url_for = m->base.url_for, .free = mw_free,
		.url_for_client = m->base.url_for_client,
		.find_debris = in->find_debris ? fw_find_debris : NULL,
		.remove_debris = in->remove_debris ? fw_remove_debris : NULL,
		.quarantine = in->quarantine ? fw_quarantine : NULL,
		.append_size = in->append_size ? fw_append_size : NULL,
		.remote = in->remote,
		.touch = in->touch ? fw_touch : NULL,
		.object_key = in->object_key ? fw_object_key : NULL,
		.list_tree = in->list_tree ? fw_list_tree : NULL,
		.staged_writer = in->staged_writer ? fw_staged_writer : NULL,
		.purge_staged = in->purge_staged ? fw_purge_staged : NULL,
		.put_content_as = in->put_content_as ? fw_put_content_as : NULL,
		.move_as = in->move_as ? fw_move_as : NULL,
		.resume_writer = in->resume_writer ? fw_resume_writer : NULL,
	};
}

/* ---- baseurl ------------------------------------------------------------------------------- */

#define REFUSE(...) return berth_err_set(BERTH_EINVALID, __VA_ARGS__)

/* 1 if s is printable ASCII without spaces: what a URL is made of. */
static int url_chars(const char *s)
{
	for (; *s; s++)
		if (*s <= ' ' || *s > '~')
			return 0;
	return 1;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Go's url.PathUnescape: %XX decoded; a bad escape fails (url.Parse refuses the URL). */
static int unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
		if (lo < 0 || hi * 16 + lo < ' ' || hi * 16 + lo == 0x7f)
			return BERTH_EINVALID; /* a control byte would cut or bend the URL */
		*w++ = (char)(hi * 16 + lo);
		r += 2;
	}
	*w = '\0';
	return 0;
}

/* path (rooted) as Go's path.Clean leaves it, without the root's lone '/': "" for "/". In place. */
static void clean_path(char *path)
{
	size_t len = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && path[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* the '/' before the dropped segment */
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			/* the segment moves left (or stays): len never passes p */
			path[len++] = '/';
			memmove(path + len, p, n);
			len += n;
		}
		p += n;
	}
	path[len] = '\0';
}

/* Appends s escaped as Go's url.URL.EscapedPath escapes a path. */
static void escape_path(struct berth_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-_.~$&+,/:;=@", c))
			berth_buf_append(b, s, 1);
		else
			berth_buf_printf(b, "%%%02X", c);
	}
}

/* redirect's baseurl as Distribution 3 reads it (url.Parse: a scheme and a host are required)
 * into scheme://host + the cleaned, escaped path. What Distribution would drop without a word
 * (user info, a query, a fragment) is refused. */
static int redirect_prefix(char **out, const char *key, const char *baseurl)
{
	if (!url_chars(baseurl))
		REFUSE("%s: not a URL (spaces, control or non-ASCII characters): '%s'", key, baseurl);
	const char *sep = strstr(baseurl, "://");
	size_t sl = sep ? (size_t)(sep - baseurl) : 0;
	if (sl == 0 || strspn(baseurl, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") < sl ||
	    !((baseurl[0] | 0x20) >= 'a' && (baseurl[0] | 0x20) <= 'z'))
		REFUSE("%s: no scheme specified for redirect baseurl '%s'", key, baseurl);
	const char *host = sep + 3;
	size_t hl = strcspn(host, "/?#");
	if (hl == 0)
		REFUSE("%s: no host specified for redirect baseurl '%s'", key, baseurl);
	if (memchr(host, '@', hl))
		REFUSE("%s: user information in '%s' is not supported (Distribution drops it)", key, baseurl);
	if (strpbrk(host, "?#"))
		REFUSE("%s: a query or fragment in '%s' is not supported (Distribution drops it)", key, baseurl);

	char *path = berth_strdup(host + hl);
	if (unescape(path) < 0) {
		free(path);
		REFUSE("%s: invalid %%-escape (or an escaped control character) in '%s'", key, baseurl);
	}
	clean_path(path);
	struct berth_buf url = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_printf(&url, "%.*s://%.*s", (int)sl, baseurl, (int)hl, host);
	for (size_t i = 0; i < sl; i++) /* Go's url.Parse lowercases the scheme */
		url.data[i] = (char)((url.data[i] >= 'A' && url.data[i] <= 'Z') ? url.data[i] - 'A' + 'a' : url.data[i]);
	escape_path(&url, path);
	free(path);
	*out = berth_buf_detach(&url, NULL);
	return 0;
}

/* cloudfront's baseurl as Distribution reads it: "https://" in front when it has no scheme, a
 * '/' at its end. Only http and https are signed (AWS's SDK also takes rtmp and wildcards). */
static int cloudfront_baseurl(char **out, const char *key, const char *baseurl)
{
	if (!url_chars(baseurl))
		REFUSE("%s: not a URL (spaces, control or non-ASCII characters): '%s'", key, baseurl);
	if (strpbrk(baseurl, "?#"))
		REFUSE("%s: a query or fragment in '%s' would come before the object's key", key, baseurl);
	const char *sep = strstr(baseurl, "://");
	if (sep && !(sep - baseurl == 4 && strncasecmp(baseurl, "http", 4) == 0) &&
	    !(sep - baseurl == 5 && strncasecmp(baseurl, "https", 5) == 0))
		REFUSE("%s: only http:// and https:// URLs are signed, got '%s'", key, baseurl);
	if (sep && (sep[3] == '\0' || sep[3] == '/'))
		REFUSE("%s: no host in '%s'", key, baseurl);
	size_t n = strlen(baseurl);
	*out = berth_asprintf("%s%s%s", sep ? "" : "https://", baseurl, baseurl[n - 1] == '/' ? "" : "/");
	return 0;
}

/* ---- redirect ------------------------------------------------------------------------------ */

static int redirect_url_for(char **out, struct berth_storage_driver *d, const char *path)
{
	if (!berth_storage_path_valid(path) || strcmp(path, "/") == 0)
		return BERTH_EINVALID;
	*out = berth_asprintf("%s%s", ((struct mw_driver *)d)->url_prefix, path);
	return 0;
}

/* ---- cloudfront ---------------------------------------------------------------------------- */

char *berth_cloudfront_policy(const char *resource, int64_t expires)
{
	struct berth_buf b = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_printf(&b, "{\"Statement\":[{\"Resource\":\"");
	for (const char *s = resource; *s; s++) {
		if (*s == '"' || *s == '\\')
			berth_buf_append(&b, "\\", 1);
		berth_buf_append(&b, s, 1);
	}
	berth_buf_printf(&b, "\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":%lld}}}]}", (long long)expires);
	return berth_buf_detach(&b, NULL);
}

/* Standard base64 with CloudFront's substitutions for a query string: '+' '-', '=' '_', '/' '~'. */
static char *cloudfront_b64(const unsigned char *in, size_t n)
{
	char *out = berth_malloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '=' ? '_' : *p == '/' ? '~' : *p;
	return out;
}

/* PKCS#1 v1.5 RSA-SHA1 signature of msg, as CloudFront wants it. */
static int rsa_sha1_sign(unsigned char **sig_out, size_t *sig_len, EVP_PKEY *key, const char *msg)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = 0;
	unsigned char *sig = NULL;
	int ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL, key) == 1 &&
		 EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)msg, strlen(msg)) == 1;
	if (ok) {
		sig = berth_malloc(len);
		ok = EVP_DigestSign(ctx, sig, &len, (const unsigned char *)msg, strlen(msg)) == 1;
	}
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		free(sig);
		return berth_err_set(BERTH_ERROR, "cloudfront: cannot sign the policy (RSA-SHA1)");
	}
	*sig_out = sig;
	*sig_len = len;
	return 0;
}

/* AWS SDK's URLSigner.Sign with a canned policy: baseurl + key, ?Expires=&Signature=&Key-Pair-Id=. */
static int cloudfront_url_for(char **out, struct berth_storage_driver *d, const char *path)
{
	struct mw_driver *m = (struct mw_driver *)d;
	char *key = NULL;
	int rc = m->inner->object_key(&key, m->inner, path);
	if (rc < 0)
		return rc;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t expires = (int64_t)now.tv_sec + (now.tv_nsec / 1000000 + m->cf_duration_ms) / 1000;
	char *resource = berth_asprintf("%s%s", m->cf_baseurl, key);
	char *policy = berth_cloudfront_policy(resource, expires);
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	if ((rc = rsa_sha1_sign(&sig, &sig_len, m->cf_key, policy)) == 0) {
		char *b64 = cloudfront_b64(sig, sig_len);
		*out = berth_asprintf("%s?Expires=%lld&Signature=%s&Key-Pair-Id=%s", resource, (long long)expires,
				      b64, m->cf_keypairid);
		free(b64);
	}
	free(sig);
	free(policy);
	free(resource);
	free(key);
	return rc;
}

/* Distribution's eligibleForS3: a client inside the AWS ranges (of the regions listed) fetches
 * from S3 itself (the driver's presigned URL); any other, or one whose address is unknown, from
 * CloudFront. */
static int cloudfront_url_for_client(char **out, struct berth_storage_driver *d, const char *path,
				     const char *client_ip)
{
	struct mw_driver *m = (struct mw_driver *)d;
	if (client_ip && berth_awsips_contains(m->cf_ips, client_ip))
		return berth_storage_url_for(out, m->inner, path);
	return cloudfront_url_for(out, d, path);
}

/* pem_password_cb: no passphrase (berth never prompts); notes that one was asked for. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)asked = 1;
	return -1;
}

/* The RSA private key in a PEM file (PKCS#1 "RSA PRIVATE KEY", as CloudFront's key pairs come,
 * or PKCS#8 "PRIVATE KEY"). */
static int read_rsa_key(EVP_PKEY **out, const char *key, const char *file)
{
	BIO *bio = BIO_new_file(file, "rb");
	if (!bio) {
		int e = errno;
		REFUSE("%s: cannot read '%s': %s", key, file, e ? strerror(e) : "cannot open");
	}
	int asked = 0;
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	if (!pk && asked)
		REFUSE("%s: '%s' is encrypted: berth takes no passphrase (write it out with openssl rsa)",
		       key, file);
	if (!pk)
		REFUSE("%s: '%s' holds no PEM private key", key, file);
	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		REFUSE("%s: '%s' is not an RSA key (CloudFront signs with RSA)", key, file);
	}
	*out = pk;
	return 0;
}

/* CloudFront key pair ids are letters and digits (APKA..., K2JCJMDEHXQW5F): nothing to escape. */
static int keypairid_ok(const char *s)
{
	return s[0] && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(s);
}

static int cloudfront_new(struct mw_driver **out, const struct berth_storage_middleware *c)
{
	int rc;
	EVP_PKEY *pk = NULL;
	char *baseurl = NULL;
	if (!keypairid_ok(c->keypairid))
		REFUSE("middleware.storage[0].options.keypairid: expected letters and digits, got '%s'",
		       c->keypairid);
	if ((rc = cloudfront_baseurl(&baseurl, "middleware.storage[0].options.baseurl", c->baseurl)) < 0)
		return rc;
	if ((rc = read_rsa_key(&pk, "middleware.storage[0].options.privatekey", c->privatekey)) < 0) {
		free(baseurl);
		return rc;
	}
	struct mw_driver *m = mw_new(cloudfront_url_for);
	m->cf_baseurl = baseurl;
	m->cf_key = pk;
	m->cf_keypairid = berth_strdup(c->keypairid);
	m->cf_duration_ms = c->duration_ms > 0 ? c->duration_ms : DEFAULT_DURATION_MS;
	if (strcmp(c->ipfilteredby, "aws") == 0 || strcmp(c->ipfilteredby, "awsregion") == 0) {
		int by_region = strcmp(c->ipfilteredby, "awsregion") == 0;
		berth_awsips_new(&m->cf_ips, c->iprangesurl[0] ? c->iprangesurl : DEFAULT_IP_RANGES_URL,
				 c->updatefrequency_ms > 0 ? c->updatefrequency_ms : DEFAULT_UPDATE_MS,
				 by_region ? c->awsregion : NULL);
		m->base.url_for_client = cloudfront_url_for_client;
	}
	*out = m;
	return 0;
}

/* ---- the interface ------------------------------------------------------------------------- */

int berth_storage_middleware_new(struct berth_storage_driver **out, const struct berth_config *cfg)
{
	*out = NULL;
	if (cfg->n_storage_middleware == 0)
		return 0;
	if (cfg->n_storage_middleware > 1) /* config.c refuses it; never stack silently */
		REFUSE("middleware.storage: only one storage middleware is supported");
	const struct berth_storage_middleware *c = &cfg->storage_middleware[0];
	struct mw_driver *m = NULL;
	int rc;
	if (strcmp(c->name, "redirect") == 0) {
		char *prefix = NULL;
		if ((rc = redirect_prefix(&prefix, "middleware.storage[0].options.baseurl", c->baseurl)) < 0)
			return rc;
		m = mw_new(redirect_url_for);
		m->url_prefix = prefix;
	} else if (strcmp(c->name, "cloudfront") == 0) {
		if ((rc = cloudfront_new(&m, c)) < 0)
			return rc;
	} else {
		REFUSE("middleware.storage[0].name: unknown storage middleware '%s'", c->name);
	}
	*out = &m->base;
	return 0;
}

int berth_storage_middleware_wrap(struct berth_storage_driver **driver, struct berth_storage_driver *mw)
{
	struct mw_driver *m = (struct mw_driver *)mw;
	if (m->base.url_for == cloudfront_url_for && !(*driver)->object_key)
		REFUSE("middleware.storage[0].name: cloudfront signs URLs of storage.s3 objects only, not of "
		       "the %s driver", (*driver)->name);
	mw_over(m, *driver);
	*driver = mw;
	return 0;
}

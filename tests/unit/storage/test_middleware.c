/*
 * storage/middleware.c: the wrapping driver forwards every call to the driver below (an
 * in-memory one here); redirect's URL is baseurl + path as Distribution 3 builds it (url.Parse,
 * path.Join, EscapedPath); cloudfront's is AWS's canned-policy signed URL, whose signature
 * verifies with the public key over the policy byte for byte; what cannot work is refused with
 * one line naming the key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config/config.h"
#include "core/err.h"
#include "core/util.h"
#include "storage/middleware.h"
#include "storage/storage.h"

static struct berth_config cfg; /* large: not on the stack */
static struct berth_storage_middleware mw;
static char tmpdir[64], keyfile[128];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/berth-mw-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(keyfile, sizeof(keyfile), "%s/key.pem", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(keyfile);
	rmdir(tmpdir);
	return 0;
}

static void use(const char *name, const char *baseurl)
{
	berth_config_defaults(&cfg);
	memset(&mw, 0, sizeof(mw));
	snprintf(mw.name, sizeof(mw.name), "%s", name);
	snprintf(mw.baseurl, sizeof(mw.baseurl), "%s", baseurl);
	mw.duration_ms = -1;
	mw.updatefrequency_ms = -1;
	cfg.n_storage_middleware = 1;
	cfg.storage_middleware = &mw;
}

/* An in-memory driver under the middleware cfg names. */
static struct berth_storage_driver *wrapped(void)
{
	struct berth_storage_driver *m = NULL, *d = NULL;
	assert_int_equal(berth_storage_middleware_new(&m, &cfg), 0);
	assert_non_null(m);
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	assert_int_equal(berth_storage_middleware_wrap(&d, m), 0);
	assert_ptr_equal(d, m);
	return d;
}

static void expect_refused(const char *want)
{
	struct berth_storage_driver *m = (struct berth_storage_driver *)1;
	int rc = berth_storage_middleware_new(&m, &cfg);
	assert_int_equal(rc, BERTH_EINVALID);
	assert_null(m);
	const char *msg = berth_err_message(rc);
	if (!strstr(msg, want))
		fail_msg("'%s' does not contain '%s'", msg, want);
	assert_null(strchr(msg, '\n'));
}

static char *url_of(struct berth_storage_driver *d, const char *path)
{
	char *url = NULL;
	assert_int_equal(berth_storage_url_for(&url, d, path), 0);
	return url;
}

#define BLOB "/docker/registry/v2/blobs/sha256/ab/abcdef/data"

static void test_no_middleware(void **state)
{
	(void)state;
	berth_config_defaults(&cfg);
	struct berth_storage_driver *m = (struct berth_storage_driver *)1;
	assert_int_equal(berth_storage_middleware_new(&m, &cfg), 0);
	assert_null(m);
}

static void test_forwards_every_call(void **state)
{
	(void)state;
	use("redirect", "https://cdn.example.com");
	struct berth_storage_driver *d = wrapped();
	assert_string_equal(d->name, "inmemory");
	assert_int_equal(berth_storage_is_remote(d), 0);
	assert_int_equal(berth_storage_put_content(d, "/a/b", "hello", 5), 0);
	char *got = NULL;
	size_t n = 0;
	assert_int_equal(berth_storage_get_content(&got, &n, d, "/a/b", 100), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(got, "hello", 5);
	free(got);
	struct berth_stat st;
	assert_int_equal(berth_storage_stat(&st, d, "/a/b"), 0);
	assert_int_equal(st.size, 5);
	struct berth_writer *w = NULL;
	assert_int_equal(berth_storage_writer(&w, d, "/a/c", 0), 0);
	assert_int_equal(w->write(w, "xyz", 3), 0);
	assert_int_equal(w->commit(w), 0);
	w->close(w);
	struct berth_reader *r = NULL;
	char buf[8];
	assert_int_equal(berth_storage_reader(&r, d, "/a/c", 1), 0);
	assert_int_equal(r->read(r, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "yz", 2);
	r->close(r);
	assert_int_equal(berth_storage_move(d, "/a/c", "/a/d"), 0);
	assert_int_equal(berth_storage_stat(&st, d, "/a/c"), BERTH_ENOTFOUND);
	uint64_t size = 0;
	assert_int_equal(berth_storage_append_size(&size, d, "/a/d"), 0);
	assert_int_equal(size, 3);
	assert_int_equal(berth_storage_remove(d, "/a"), 0);
	assert_int_equal(berth_storage_stat(&st, d, "/a/b"), BERTH_ENOTFOUND);
	/* the in-memory driver keeps no bucket: no object keys through the wrapper either */
	assert_null(d->object_key);
	berth_storage_free(d);
}

/* Distribution 3: scheme://host + path.Join(baseurl's path, path), escaped as Go escapes a path. */
static void test_redirect_url(void **state)
{
	static const struct { const char *baseurl, *want; } cases[] = {
		{ "https://cdn.example.com", "https://cdn.example.com" BLOB },
		{ "https://cdn.example.com/", "https://cdn.example.com" BLOB },
		{ "HTTPS://CDN.example.com:8443", "https://CDN.example.com:8443" BLOB },
		{ "http://cdn/layers/", "http://cdn/layers" BLOB },
		{ "http://cdn//a/./b/../c//", "http://cdn/a/c" BLOB },
		{ "http://cdn/../..", "http://cdn" BLOB },
		{ "http://cdn/a%20b/%7Ex/%2F", "http://cdn/a%20b/~x" BLOB },
		{ "http://cdn/a!b(c)*'/$&+,;=:@", "http://cdn/a%21b%28c%29%2A%27/$&+,;=:@" BLOB },
		{ "http://[::1]:5000/p", "http://[::1]:5000/p" BLOB },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		use("redirect", cases[i].baseurl);
		struct berth_storage_driver *d = wrapped();
		char *url = url_of(d, BLOB);
		if (strcmp(url, cases[i].want) != 0)
			fail_msg("%s: got %s, want %s", cases[i].baseurl, url, cases[i].want);
		free(url);
		char *bad = NULL;
		assert_int_equal(berth_storage_url_for(&bad, d, "/a/../b"), BERTH_EINVALID);
		berth_storage_free(d);
	}
}

static void test_redirect_refusals(void **state)
{
	(void)state;
	const char *key = "middleware.storage[0].options.baseurl: ";
	char want[256];
	static const struct { const char *baseurl, *want; } cases[] = {
		{ "cdn.example.com", "no scheme specified" },
		{ "://cdn.example.com", "no scheme specified" },
		{ "1http://cdn", "no scheme specified" },
		{ "https://", "no host specified" },
		{ "https:///path", "no host specified" },
		{ "https://user:pw@cdn/", "user information" },
		{ "https://cdn/?x=1", "a query or fragment" },
		{ "https://cdn/#f", "a query or fragment" },
		{ "https://cdn/a b", "not a URL" },
		{ "https://cdn/%zz", "invalid %-escape" },
		{ "https://cdn/%00", "invalid %-escape" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		use("redirect", cases[i].baseurl);
		snprintf(want, sizeof(want), "%s%s", key, cases[i].want);
		expect_refused(want);
	}
}

/* ---- cloudfront ---- */

/* An in-memory driver that also names its objects' keys, as the S3 driver does. */
struct keyed {
	struct berth_storage_driver base;
	struct berth_storage_driver *mem;
	void (*mem_free)(struct berth_storage_driver *);
};

static int keyed_object_key(char **out, struct berth_storage_driver *d, const char *path)
{
	(void)d;
	*out = berth_asprintf("root%s", path);
	return 0;
}

static void keyed_free(struct berth_storage_driver *d)
{
	struct keyed *k = (struct keyed *)d;
	k->mem_free(k->mem);
	free(k);
}

static struct berth_storage_driver *keyed_new(void)
{
	struct keyed *k = calloc(1, sizeof(*k));
	assert_int_equal(berth_inmem_driver_new(&k->mem), 0);
	k->base = *k->mem; /* slots of the in-memory driver, never called here */
	k->mem_free = k->mem->free;
	k->base.object_key = keyed_object_key;
	k->base.free = keyed_free;
	return &k->base;
}

static EVP_PKEY *write_key(const char *type)
{
	EVP_PKEY *pk = strcmp(type, "RSA") == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	assert_non_null(pk);
	FILE *f = fopen(keyfile, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1); /* PKCS#8 */
	fclose(f);
	return pk;
}

static void use_cloudfront(const char *baseurl, int64_t duration_ms)
{
	use("cloudfront", baseurl);
	snprintf(mw.privatekey, sizeof(mw.privatekey), "%s", keyfile);
	snprintf(mw.keypairid, sizeof(mw.keypairid), "K2JCJMDEHXQW5F");
	mw.duration_ms = duration_ms;
	cfg.storage = BERTH_STORAGE_S3;
}

static size_t unb64(unsigned char *out, const char *in, size_t n)
{
	char std[1024];
	assert_true(n < sizeof(std));
	for (size_t i = 0; i < n; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '=' : in[i] == '~' ? '/' : in[i];
	std[n] = '\0';
	int len = EVP_DecodeBlock(out, (const unsigned char *)std, (int)n);
	assert_true(len > 0);
	while (n > 0 && std[n - 1] == '=') /* DecodeBlock counts padding as bytes */
		len--, n--;
	return (size_t)len;
}

static int verifies(EVP_PKEY *pk, const char *msg, const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha1(), NULL, pk) == 1 &&
		 EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, strlen(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

static void test_cloudfront_policy_bytes(void **state)
{
	(void)state;
	char *p = berth_cloudfront_policy("https://d1.cloudfront.net/a/b", 1700000000);
	assert_string_equal(p, "{\"Statement\":[{\"Resource\":\"https://d1.cloudfront.net/a/b\",\"Condition\":"
			       "{\"DateLessThan\":{\"AWS:EpochTime\":1700000000}}}]}");
	free(p);
	p = berth_cloudfront_policy("https://d1/\"q\\", 1);
	assert_string_equal(p, "{\"Statement\":[{\"Resource\":\"https://d1/\\\"q\\\\\",\"Condition\":"
			       "{\"DateLessThan\":{\"AWS:EpochTime\":1}}}]}");
	free(p);
}

static void test_cloudfront_signed_url(void **state)
{
	(void)state;
	EVP_PKEY *pk = write_key("RSA");
	use_cloudfront("d1.cloudfront.net/cdn", 3000 * 1000);
	struct berth_storage_driver *m = NULL, *d = keyed_new();
	assert_int_equal(berth_storage_middleware_new(&m, &cfg), 0);
	assert_int_equal(berth_storage_middleware_wrap(&d, m), 0);
	time_t t0 = time(NULL);
	char *url = url_of(d, BLOB);
	time_t t1 = time(NULL);

	const char *resource = "https://d1.cloudfront.net/cdn/root" BLOB;
	size_t rl = strlen(resource);
	if (strncmp(url, resource, rl) != 0 || strncmp(url + rl, "?Expires=", 9) != 0)
		fail_msg("unexpected URL %s", url);
	char *end;
	long long expires = strtoll(url + rl + 9, &end, 10);
	assert_true(expires >= t0 + 3000 && expires <= t1 + 3000);
	assert_true(strncmp(end, "&Signature=", 11) == 0);
	const char *sig64 = end + 11;
	const char *kp = strstr(sig64, "&Key-Pair-Id=");
	assert_non_null(kp);
	assert_string_equal(kp, "&Key-Pair-Id=K2JCJMDEHXQW5F");
	assert_int_equal(strspn(sig64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~"),
			 (size_t)(kp - sig64));
	unsigned char sig[512];
	size_t sig_len = unb64(sig, sig64, (size_t)(kp - sig64));
	assert_int_equal(sig_len, 256);
	char *policy = berth_cloudfront_policy(resource, expires);
	assert_true(verifies(pk, policy, sig, sig_len));
	free(policy);
	policy = berth_cloudfront_policy(resource, expires + 1);
	assert_false(verifies(pk, policy, sig, sig_len));
	free(policy);
	free(url);
	berth_storage_free(d);
	EVP_PKEY_free(pk);

	/* duration unset: Distribution's 20 minutes; a baseurl's own '/' end is kept once */
	pk = write_key("RSA");
	use_cloudfront("http://d1.cloudfront.net/", -1);
	d = keyed_new();
	assert_int_equal(berth_storage_middleware_new(&m, &cfg), 0);
	assert_int_equal(berth_storage_middleware_wrap(&d, m), 0);
	t0 = time(NULL);
	url = url_of(d, BLOB);
	t1 = time(NULL);
	rl = strlen("http://d1.cloudfront.net/root" BLOB "?Expires=");
	assert_memory_equal(url, "http://d1.cloudfront.net/root" BLOB "?Expires=", rl);
	expires = strtoll(url + rl, NULL, 10);
	assert_true(expires >= t0 + 1200 && expires <= t1 + 1200);
	free(url);
	berth_storage_free(d);
	EVP_PKEY_free(pk);
}

static void test_cloudfront_refusals(void **state)
{
	(void)state;
	EVP_PKEY *pk = write_key("RSA");
	EVP_PKEY_free(pk);
	use_cloudfront("ftp://d1", -1);
	expect_refused("middleware.storage[0].options.baseurl: only http:// and https://");
	use_cloudfront("https://d1/?a=b", -1);
	expect_refused("middleware.storage[0].options.baseurl: a query or fragment");
	use_cloudfront("https://", -1);
	expect_refused("middleware.storage[0].options.baseurl: no host");
	use_cloudfront("https://d1", -1);
	snprintf(mw.keypairid, sizeof(mw.keypairid), "K&x=1");
	expect_refused("middleware.storage[0].options.keypairid: expected letters and digits");

	/* not over a driver without object keys: both stay the caller's */
	use_cloudfront("https://d1", -1);
	struct berth_storage_driver *m = NULL, *d = NULL;
	assert_int_equal(berth_storage_middleware_new(&m, &cfg), 0);
	assert_int_equal(berth_inmem_driver_new(&d), 0);
	struct berth_storage_driver *before = d;
	assert_int_equal(berth_storage_middleware_wrap(&d, m), BERTH_EINVALID);
	assert_ptr_equal(d, before);
	assert_non_null(strstr(berth_err_message(BERTH_EINVALID), "cloudfront signs URLs of storage.s3 objects only"));
	berth_storage_free(m);
	berth_storage_free(d);

	pk = write_key("EC");
	EVP_PKEY_free(pk);
	use_cloudfront("https://d1", -1);
	expect_refused("is not an RSA key");
	unlink(keyfile);
	expect_refused("middleware.storage[0].options.privatekey: cannot read");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_middleware),
		cmocka_unit_test(test_forwards_every_call),
		cmocka_unit_test(test_redirect_url),
		cmocka_unit_test(test_redirect_refusals),
		cmocka_unit_test(test_cloudfront_policy_bytes),
		cmocka_unit_test_setup_teardown(test_cloudfront_signed_url, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cloudfront_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

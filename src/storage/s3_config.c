/*
 * storage.s3.* as Distribution reads them, checked and turned into the S3 driver's options.
 * Keys berth does not implement are refused by name (a value that asks for Distribution's
 * default behaviour, such as `accelerate: false`, is accepted: it changes nothing).
 */
#include "storage/storage.h"

#include "config/config.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIB (1ull << 20)

/* Strings the options point into, for the duration of the driver's construction. */
struct s3_strings {
	char endpoint[1100];
	char rootdirectory[1100];
};

/* Go's strconv.ParseBool plus YAML's yes/no/on/off; absent ("") gives dflt. */
static int parse_bool(const char *s, int dflt, int *out)
{
	static const char *const yes[] = { "1", "t", "true", "yes", "on", "y" };
	static const char *const no[] = { "0", "f", "false", "no", "off", "n" };
	if (s[0] == '\0') {
		*out = dflt;
		return 0;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return BERTH_ERROR;
}

/* A byte count within [lo, hi]; absent ("") gives dflt. */
static int parse_size(const char *s, uint64_t dflt, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (s[0] == '\0') {
		*out = dflt;
		return 0;
	}
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || v < lo || v > hi)
		return BERTH_ERROR;
	*out = v;
	return 0;
}

static int one_of(const char *s, const char *const *list)
{
	for (; *list; list++) {
		if (strcmp(s, *list) == 0)
			return 1;
	}
	return 0;
}

static const char *const storage_classes[] = { "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
					       "INTELLIGENT_TIERING", "OUTPOSTS", "GLACIER_IR", "NONE", NULL };
static const char *const canned_acls[] = { "private", "public-read", "public-read-write", "authenticated-read",
					   "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control",
					   "log-delivery-write", NULL };

#define REFUSE(...) return berth_err_set(BERTH_EINVALID, __VA_ARGS__)

/* Keys berth does not implement: refused unless they ask for what berth does anyway. */
static int check_unimplemented(const struct berth_s3_config *c)
{
	const struct { const char *key, *value; } flags[] = {
		{ "usedualstack", c->usedualstack }, { "accelerate", c->accelerate },
		{ "usefipsendpoint", c->usefipsendpoint },
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		int b;
		if (parse_bool(flags[i].value, 0, &b) < 0 || b)
			REFUSE("storage.s3.%s is not supported (only false)", flags[i].key);
	}
	if (c->loglevel[0] && strcmp(c->loglevel, "off") != 0)
		REFUSE("storage.s3.loglevel is not supported (only off)");
	if (c->redirectendpoint[0])
		REFUSE("storage.s3.redirectendpoint is not supported");
	if (c->multipartcopymaxconcurrency[0] && strcmp(c->multipartcopymaxconcurrency, "1") != 0)
		REFUSE("storage.s3.multipartcopymaxconcurrency is not supported (berth copies one part at "
		       "a time: only 1)");
	return 0;
}

static int build_endpoint(struct s3_strings *st, const struct berth_s3_config *c, int secure)
{
	const char *scheme = secure ? "https://" : "http://";
	if (c->regionendpoint[0] == '\0') {
		snprintf(st->endpoint, sizeof(st->endpoint), "%ss3.%s.amazonaws.com", scheme, c->region);
		return 0;
	}
	const char *e = c->regionendpoint;
	int has_scheme = strncmp(e, "http://", 7) == 0 || strncmp(e, "https://", 8) == 0;
	if (!has_scheme && strstr(e, "://"))
		REFUSE("storage.s3.regionendpoint: only http:// and https:// are supported");
	if (strpbrk(e, " ?#"))
		REFUSE("storage.s3.regionendpoint: not a URL: '%s'", e);
	snprintf(st->endpoint, sizeof(st->endpoint), "%s%s", has_scheme ? "" : scheme, e);
	size_t n = strlen(st->endpoint);
	while (n > 0 && st->endpoint[n - 1] == '/')
		st->endpoint[--n] = '\0';
	return 0;
}

static int parse_options(struct berth_s3_options *o, struct s3_strings *st, const struct berth_s3_config *c)
{
	int rc, secure, v4auth, encrypt;
	if ((rc = check_unimplemented(c)) < 0)
		return rc;
	if (c->bucket[0] == '\0')
		REFUSE("storage.s3.bucket is required");
	if (c->region[0] == '\0')
		REFUSE("storage.s3.region is required");
	if (parse_bool(c->secure, 1, &secure) < 0)
		REFUSE("storage.s3.secure: expected a boolean, got '%s'", c->secure);
	if (parse_bool(c->v4auth, 1, &v4auth) < 0 || !v4auth)
		REFUSE("storage.s3.v4auth: only true is supported (berth signs with AWS signature v4)");
	if (parse_bool(c->skipverify, 0, &o->skipverify) < 0)
		REFUSE("storage.s3.skipverify: expected a boolean, got '%s'", c->skipverify);
	if (parse_bool(c->forcepathstyle, c->regionendpoint[0] != '\0', &o->path_style) < 0)
		REFUSE("storage.s3.forcepathstyle: expected a boolean, got '%s'", c->forcepathstyle);
	if (parse_bool(c->encrypt, 0, &encrypt) < 0)
		REFUSE("storage.s3.encrypt: expected a boolean, got '%s'", c->encrypt);
	if (c->keyid[0] && !encrypt)
		REFUSE("storage.s3.keyid needs storage.s3.encrypt: true");
	if (parse_size(c->chunksize, 10 * MIB, 5 * MIB, 5ull << 30, &o->chunksize) < 0)
		REFUSE("storage.s3.chunksize: expected bytes from 5242880 to 5368709120, got '%s'", c->chunksize);
	if (parse_size(c->multipartcopychunksize, 32 * MIB, 5 * MIB, 5ull << 30, &o->copy_chunksize) < 0)
		REFUSE("storage.s3.multipartcopychunksize: expected bytes from 5242880 to 5368709120, got '%s'",
		       c->multipartcopychunksize);
	if (parse_size(c->multipartcopythresholdsize, 32 * MIB, 0, 5ull << 30, &o->copy_threshold) < 0)
		REFUSE("storage.s3.multipartcopythresholdsize: expected bytes up to 5368709120, got '%s'",
		       c->multipartcopythresholdsize);
	o->storageclass = c->storageclass[0] ? c->storageclass : "STANDARD";
	if (!one_of(o->storageclass, storage_classes))
		REFUSE("storage.s3.storageclass: unknown storage class '%s'", c->storageclass);
	if (strcmp(o->storageclass, "NONE") == 0)
		o->storageclass = "";
	o->objectacl = c->objectacl[0] ? c->objectacl : "private";
	if (!one_of(o->objectacl, canned_acls))
		REFUSE("storage.s3.objectacl: unknown canned ACL '%s'", c->objectacl);

	const char *root = c->rootdirectory;
	while (root[0] == '/')
		root++;
	snprintf(st->rootdirectory, sizeof(st->rootdirectory), "/%s", root);
	size_t n = strlen(st->rootdirectory);
	while (n > 1 && st->rootdirectory[n - 1] == '/')
		st->rootdirectory[--n] = '\0';
	if (!berth_storage_path_valid(st->rootdirectory))
		REFUSE("storage.s3.rootdirectory: '%s' is not a path of [A-Za-z0-9._-] components",
		       c->rootdirectory);
	o->rootdirectory = st->rootdirectory;

	o->accesskey = c->accesskey[0] ? c->accesskey : getenv("AWS_ACCESS_KEY_ID");
	o->secretkey = c->secretkey[0] ? c->secretkey : getenv("AWS_SECRET_ACCESS_KEY");
	o->sessiontoken = c->sessiontoken[0] ? c->sessiontoken : getenv("AWS_SESSION_TOKEN");
	if (!o->accesskey || !o->accesskey[0] || !o->secretkey || !o->secretkey[0])
		REFUSE("storage.s3: no credentials: set accesskey and secretkey (or AWS_ACCESS_KEY_ID and "
		       "AWS_SECRET_ACCESS_KEY); instance-role credentials are not supported");
	if (!o->sessiontoken)
		o->sessiontoken = "";
	if ((rc = build_endpoint(st, c, secure)) < 0)
		return rc;
	o->endpoint = st->endpoint;
	o->bucket = c->bucket;
	o->region = c->region;
	o->encrypt_header = encrypt ? (c->keyid[0] ? "aws:kms" : "AES256") : "";
	o->keyid = c->keyid;
	o->useragent = c->useragent;
	o->retries = 5;
	o->connect_timeout_ms = 10000;
	o->stall_timeout_s = 60;
	return 0;
}

int berth_storage__open_s3(struct berth_storage_driver **out, const struct berth_config *cfg)
{
	struct berth_s3_options o = { 0 };
	struct s3_strings st;
	int rc = parse_options(&o, &st, &cfg->s3);
	if (rc < 0)
		return rc;
	if ((rc = berth_s3_driver_new(out, &o)) < 0)
		return berth_err_set(rc, "cannot create the s3 driver: %s", berth_strerror(rc));
	/* A missing bucket or refused credentials are told now, in one line, not at the first push. */
	if ((rc = berth_s3_driver_check(*out)) < 0) {
		berth_storage_free(*out);
		*out = NULL;
	}
	return rc;
}

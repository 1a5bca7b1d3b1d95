/*
 * Storage middleware (middleware.storage in a Distribution config): a driver that wraps the
 * driver berth serve uses, forwards every call to it, and gives its own URLs for blob
 * redirects (the url_for slot), as Distribution's storage middleware wraps its StorageDriver
 * and overrides RedirectURL. Only berth serve applies them, as only Distribution's registry
 * application does (its garbage collector opens the bare driver).
 *
 *   redirect    baseurl + the object's path in the storage (Distribution 3: the baseurl's own
 *               path is kept in front, path.Join; 2.8 dropped it); any driver
 *   cloudfront  a CloudFront signed URL (canned policy, RSA-SHA1) for baseurl + the object's
 *               key in the bucket, valid `duration`; storage.s3 only
 */
#ifndef BERTH_STORAGE_MIDDLEWARE_H
#define BERTH_STORAGE_MIDDLEWARE_H

#include <stdint.h>

struct berth_config;
struct berth_storage_driver;

/* The middleware cfg->storage_middleware names (config.c allows one), with what it needs read
 * and checked (baseurl; cloudfront's private key), before the storage is opened: *out is NULL
 * when none is configured, else owned by the caller (berth_storage_free) until it is wrapped
 * around a driver. 0, or a BERTH_E* code with a one-line reason naming the key as its message
 * (core/err.h). Blocks (reads a file). */
int berth_storage_middleware_new(struct berth_storage_driver **out, const struct berth_config *cfg);

/* Puts mw (from berth_storage_middleware_new) over *driver: on success *driver is mw, which
 * owns and forwards every call to the driver below (freed with it). BERTH_EINVALID (cloudfront
 * over a driver without object keys), nothing changed, and both still the caller's. */
int berth_storage_middleware_wrap(struct berth_storage_driver **driver, struct berth_storage_driver *mw);

/* CloudFront's canned policy for resource expiring at expires (seconds since the epoch),
 * byte for byte as AWS's SDK writes it (and CloudFront checks the signature over):
 * {"Statement":[{"Resource":"<resource>","Condition":{"DateLessThan":{"AWS:EpochTime":<expires>}}}]}
 * resource must be printable ASCII (it is JSON-escaped). The string is the caller's. */
char *berth_cloudfront_policy(const char *resource, int64_t expires);

#endif

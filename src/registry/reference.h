/*
 * The grammar of what clients name: repository names, tags and digests
 * (OCI distribution-spec v1.1 and Distribution's reference package).
 * Pure functions, no allocation unless stated; safe on any input (NUL-terminated strings).
 */
#ifndef BERTH_REGISTRY_REFERENCE_H
#define BERTH_REGISTRY_REFERENCE_H

#include <stddef.h>

#define BERTH_NAME_MAX 255 /* total length of a repository name */
#define BERTH_TAG_MAX 128

#include "core/digest.h"

/* 1 if name is a valid repository name: path components separated by '/', each matching
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, total length at most BERTH_NAME_MAX. */
int berth_name_valid(const char *name);

/* 1 if tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. */
int berth_tag_valid(const char *tag);

/*
 * Parses a digest "<alg>:<hex>". Supported algorithms: sha256 (64 lowercase hex chars) and
 * sha512 (128 lowercase hex chars). On success returns 0 and sets *alg and *hex (pointing into
 * the input, just after the colon). Returns BERTH_EINVALID for anything malformed and
 * BERTH_EUNSUPPORTED for a well-formed digest (per the OCI grammar
 * [a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+) with an algorithm berth does not support.
 * alg and hex may be NULL.
 */
int berth_digest_parse(const char *digest, enum berth_digest_alg *alg, const char **hex);

/* 1 if berth_digest_parse succeeds. */
int berth_digest_valid(const char *digest);

/* "sha256" / "sha512"; NULL for BERTH_ALG_NONE. */
const char *berth_digest_alg_name(enum berth_digest_alg alg);

/* Hex length of a digest of that algorithm (64 or 128), 0 for none. */
size_t berth_digest_hex_len(enum berth_digest_alg alg);

#endif

/*
 * Binary digests (as libgit2's git_oid): the algorithm and the raw hash bytes, 32 for sha256
 * and 64 for sha512, the rest zero, so two oids compare with memcmp and hash by their bytes.
 * Half the memory of the "<alg>:<hex>" string, for tables of every blob in a store.
 */
#ifndef BERTH_CORE_OID_H
#define BERTH_CORE_OID_H

#include <stddef.h>
#include <stdint.h>

#include "core/digest.h"

#define BERTH_OID_MAX_BYTES 64

struct berth_oid {
	uint8_t alg; /* enum berth_digest_alg */
	uint8_t id[BERTH_OID_MAX_BYTES];
};

/* Raw bytes of alg's hash: 32 or 64; 0 for BERTH_ALG_NONE. */
size_t berth_oid_size(enum berth_digest_alg alg);

/* Parses "<alg>:<hex>" (sha256 or sha512, lowercase hex of exactly the right length).
 * 0, or BERTH_EINVALID with *out zeroed. */
int berth_oid_parse(struct berth_oid *out, const char *digest);

/* Parses an algorithm name of alg_len bytes ("sha256", "sha512") and its hex, which must be
 * NUL-terminated and exactly the right length (as the path components of the layout are).
 * 0, or BERTH_EINVALID with *out zeroed. */
int berth_oid_from_parts(struct berth_oid *out, const char *alg, size_t alg_len, const char *hex);

/* The lowercase hex of the hash, NUL-terminated (out holds 2 * BERTH_OID_MAX_BYTES + 1). */
void berth_oid_hex(char *out, const struct berth_oid *oid);

/* "<alg>:<hex>". */
void berth_oid_fmt(char out[BERTH_DIGEST_STR_MAX], const struct berth_oid *oid);

/* Total order (algorithm, then bytes); 0 when equal. Fits qsort and bsearch. */
int berth_oid_cmp(const void *a, const void *b);

#endif

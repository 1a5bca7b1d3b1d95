/*
 * Content digests: streaming SHA-256 / SHA-512 hashers (OpenSSL libcrypto) whose state can be
 * saved and restored in exactly the format Distribution writes to
 * _uploads/<id>/hashstates/<alg>/<offset> (Go's encoding.BinaryMarshaler for crypto/sha256 and
 * crypto/sha512), so a chunked upload resumes without re-reading its data, and an upload
 * begun by Distribution can be finished by berth and vice versa.
 *
 * Go formats (big-endian throughout):
 *   sha256, 108 bytes: "sha\x03", h[0..7] as u32, 64-byte block buffer (pending bytes then
 *                      zeros), u64 total length in bytes.
 *   sha512, 204 bytes: "sha\x07", h[0..7] as u64, 128-byte block buffer, u64 total length.
 */
#ifndef BERTH_CORE_DIGEST_H
#define BERTH_CORE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

enum berth_digest_alg { BERTH_ALG_NONE = 0, BERTH_ALG_SHA256, BERTH_ALG_SHA512 };

/* "sha512:" + 128 hex + NUL */
#define BERTH_DIGEST_STR_MAX 136
/* Largest marshalled state (sha512). */
#define BERTH_HASHSTATE_MAX 204

struct berth_hasher;

/* New hasher for alg. 0, or BERTH_EINVALID for BERTH_ALG_NONE. *out owned by the caller. */
int berth_hasher_new(struct berth_hasher **out, enum berth_digest_alg alg);
void berth_hasher_update(struct berth_hasher *h, const void *buf, size_t n);
/* Bytes hashed so far. */
uint64_t berth_hasher_len(const struct berth_hasher *h);
enum berth_digest_alg berth_hasher_alg(const struct berth_hasher *h);
/* Writes "<alg>:<hex>" of everything hashed so far into out; the hasher stays usable. */
void berth_hasher_digest(const struct berth_hasher *h, char out[BERTH_DIGEST_STR_MAX]);
/* Serialises the state in Go's format into out (cap >= BERTH_HASHSTATE_MAX); sets *len.
 * BERTH_EINVALID if cap is smaller than the state (108 or 204 bytes). */
int berth_hasher_marshal(const struct berth_hasher *h, unsigned char *out, size_t cap, size_t *len);
/* Restores a hasher from Go's format. BERTH_EINVALID if the bytes are not a valid state of alg:
 * wrong length or magic, or block-buffer bytes past the pending ones (total length modulo the
 * block size) that are not zero, which Go's MarshalBinary never writes. */
int berth_hasher_unmarshal(struct berth_hasher **out, enum berth_digest_alg alg,
			   const unsigned char *buf, size_t n);
/* Accepts NULL. */
void berth_hasher_free(struct berth_hasher *h);

/* One-shot: "<alg>:<hex>" of buf ("" for BERTH_ALG_NONE). */
void berth_digest_bytes(enum berth_digest_alg alg, const void *buf, size_t n,
			char out[BERTH_DIGEST_STR_MAX]);

#endif

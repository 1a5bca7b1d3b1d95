/*
 * SHA-256 / SHA-512 on OpenSSL's low-level contexts, whose fields are converted to and from
 * Go's crypto/sha256 and crypto/sha512 MarshalBinary layout (see digest.h).
 *
 * OpenSSL keeps: h[8] (native words), the pending input bytes at the start of its block buffer
 * (`num` of them), and the total length in *bits* split over Nl (low) and Nh (high) -- 32-bit
 * halves for SHA-256, 64-bit halves for SHA-512. Go keeps the same h[8] and block buffer, and
 * the total length in *bytes*; its pending count is that length modulo the block size.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "core/digest.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"

#define MAGIC_LEN 4
#define SHA256_STATE_LEN (MAGIC_LEN + 8 * 4 + SHA256_CBLOCK + 8) /* 108 */
#define SHA512_STATE_LEN (MAGIC_LEN + 8 * 8 + SHA512_CBLOCK + 8) /* 204 */

static const unsigned char magic_sha256[MAGIC_LEN] = { 's', 'h', 'a', 0x03 };
static const unsigned char magic_sha512[MAGIC_LEN] = { 's', 'h', 'a', 0x07 };

struct berth_hasher {
	enum berth_digest_alg alg;
	union {
		SHA256_CTX sha256;
		SHA512_CTX sha512;
	} ctx;
};

/* Big-endian helpers. */

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static int all_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] != 0)
			return 0;
	}
	return 1;
}

/* Total bytes hashed, from OpenSSL's bit counters. */

static uint64_t sha256_total(const SHA256_CTX *c)
{
	return ((uint64_t)c->Nh << 32 | c->Nl) >> 3;
}

static uint64_t sha512_total(const SHA512_CTX *c)
{
	return (uint64_t)(c->Nl >> 3) | (uint64_t)(c->Nh << 61);
}

/* Go layout: magic, h[8] as u32 BE, 64-byte block (pending bytes, then zeros), u64 BE length. */
static void sha256_marshal(const SHA256_CTX *c, unsigned char *out)
{
	unsigned char *p = out;
	int i;

	memcpy(p, magic_sha256, MAGIC_LEN);
	p += MAGIC_LEN;
	for (i = 0; i < 8; i++, p += 4)
		put_be32(p, c->h[i]);
	memset(p, 0, SHA256_CBLOCK);
	memcpy(p, c->data, c->num);
	p += SHA256_CBLOCK;
	put_be64(p, sha256_total(c));
}

static int sha256_unmarshal(SHA256_CTX *c, const unsigned char *buf, size_t n)
{
	const unsigned char *block = buf + MAGIC_LEN + 8 * 4;
	uint64_t total;
	size_t pending;
	int i;

	if (n != SHA256_STATE_LEN || memcmp(buf, magic_sha256, MAGIC_LEN) != 0)
		return BERTH_EINVALID;
	total = get_be64(block + SHA256_CBLOCK);
	/* OpenSSL counts SHA-256 input in a 64-bit count of bits: 2^61 bytes and more would wrap. */
	if (total >> 61)
		return BERTH_EINVALID;
	pending = (size_t)(total % SHA256_CBLOCK);
	if (!all_zero(block + pending, SHA256_CBLOCK - pending))
		return BERTH_EINVALID;

	SHA256_Init(c);
	for (i = 0; i < 8; i++)
		c->h[i] = get_be32(buf + MAGIC_LEN + 4 * i);
	memcpy(c->data, block, SHA256_CBLOCK);
	c->num = (unsigned int)pending;
	c->Nl = (SHA_LONG)(total << 3);
	c->Nh = (SHA_LONG)(total >> 29);
	return 0;
}

/* Go layout: magic, h[8] as u64 BE, 128-byte block, u64 BE length. */
static void sha512_marshal(const SHA512_CTX *c, unsigned char *out)
{
	unsigned char *p = out;
	int i;

	memcpy(p, magic_sha512, MAGIC_LEN);
	p += MAGIC_LEN;
	for (i = 0; i < 8; i++, p += 8)
		put_be64(p, c->h[i]);
	memset(p, 0, SHA512_CBLOCK);
	memcpy(p, c->u.p, c->num);
	p += SHA512_CBLOCK;
	put_be64(p, sha512_total(c));
}

static int sha512_unmarshal(SHA512_CTX *c, const unsigned char *buf, size_t n)
{
	const unsigned char *block = buf + MAGIC_LEN + 8 * 8;
	uint64_t total;
	size_t pending;
	int i;

	if (n != SHA512_STATE_LEN || memcmp(buf, magic_sha512, MAGIC_LEN) != 0)
		return BERTH_EINVALID;
	total = get_be64(block + SHA512_CBLOCK);
	pending = (size_t)(total % SHA512_CBLOCK);
	if (!all_zero(block + pending, SHA512_CBLOCK - pending))
		return BERTH_EINVALID;

	SHA512_Init(c);
	for (i = 0; i < 8; i++)
		c->h[i] = get_be64(buf + MAGIC_LEN + 8 * i);
	memcpy(c->u.p, block, SHA512_CBLOCK);
	c->num = (unsigned int)pending;
	c->Nl = total << 3;
	c->Nh = total >> 61;
	return 0;
}

static void hex_encode(const unsigned char *bin, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/* Writes "<name>:<hex of md>" into out. */
static void format_digest(const char *name, const unsigned char *md, size_t md_len,
			  char out[BERTH_DIGEST_STR_MAX])
{
	size_t name_len = strlen(name);

	memcpy(out, name, name_len);
	out[name_len] = ':';
	hex_encode(md, md_len, out + name_len + 1);
}

static int hasher_init(struct berth_hasher *h, enum berth_digest_alg alg)
{
	h->alg = alg;
	switch (alg) {
	case BERTH_ALG_SHA256:
		SHA256_Init(&h->ctx.sha256);
		return 0;
	case BERTH_ALG_SHA512:
		SHA512_Init(&h->ctx.sha512);
		return 0;
	default:
		return BERTH_EINVALID;
	}
}

int berth_hasher_new(struct berth_hasher **out, enum berth_digest_alg alg)
{
	struct berth_hasher *h;
	int rc;

	*out = NULL;
	h = berth_try_calloc(1, sizeof(*h));
	if (!h)
		return BERTH_ERROR;
	rc = hasher_init(h, alg);
	if (rc != 0) {
		free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void berth_hasher_update(struct berth_hasher *h, const void *buf, size_t n)
{
	if (n == 0)
		return;
	if (h->alg == BERTH_ALG_SHA256)
		SHA256_Update(&h->ctx.sha256, buf, n);
	else
		SHA512_Update(&h->ctx.sha512, buf, n);
}

uint64_t berth_hasher_len(const struct berth_hasher *h)
{
	if (h->alg == BERTH_ALG_SHA256)
		return sha256_total(&h->ctx.sha256);
	return sha512_total(&h->ctx.sha512);
}

enum berth_digest_alg berth_hasher_alg(const struct berth_hasher *h)
{
	return h->alg;
}

void berth_hasher_digest(const struct berth_hasher *h, char out[BERTH_DIGEST_STR_MAX])
{
	unsigned char md[SHA512_DIGEST_LENGTH];

	if (h->alg == BERTH_ALG_SHA256) {
		SHA256_CTX c = h->ctx.sha256;

		SHA256_Final(md, &c);
		format_digest("sha256", md, SHA256_DIGEST_LENGTH, out);
	} else {
		SHA512_CTX c = h->ctx.sha512;

		SHA512_Final(md, &c);
		format_digest("sha512", md, SHA512_DIGEST_LENGTH, out);
	}
}

int berth_hasher_marshal(const struct berth_hasher *h, unsigned char *out, size_t cap, size_t *len)
{
	size_t need = h->alg == BERTH_ALG_SHA256 ? SHA256_STATE_LEN : SHA512_STATE_LEN;

	if (cap < need)
		return BERTH_EINVALID;
	if (h->alg == BERTH_ALG_SHA256)
		sha256_marshal(&h->ctx.sha256, out);
	else
		sha512_marshal(&h->ctx.sha512, out);
	*len = need;
	return 0;
}

int berth_hasher_unmarshal(struct berth_hasher **out, enum berth_digest_alg alg,
			   const unsigned char *buf, size_t n)
{
	struct berth_hasher *h = NULL;
	int rc;

	*out = NULL;
	if (!buf)
		return BERTH_EINVALID;
	rc = berth_hasher_new(&h, alg);
	if (rc != 0)
		return rc;
	if (alg == BERTH_ALG_SHA256)
		rc = sha256_unmarshal(&h->ctx.sha256, buf, n);
	else
		rc = sha512_unmarshal(&h->ctx.sha512, buf, n);
	if (rc != 0) {
		berth_hasher_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void berth_hasher_free(struct berth_hasher *h)
{
	free(h);
}

void berth_digest_bytes(enum berth_digest_alg alg, const void *buf, size_t n,
			char out[BERTH_DIGEST_STR_MAX])
{
	struct berth_hasher h;

	if (hasher_init(&h, alg) != 0) {
		out[0] = '\0';
		return;
	}
	berth_hasher_update(&h, buf, n);
	berth_hasher_digest(&h, out);
}

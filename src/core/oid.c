#include "core/oid.h"

#include <string.h>

#include "core/err.h"

size_t berth_oid_size(enum berth_digest_alg alg)
{
	return alg == BERTH_ALG_SHA512 ? 64 : alg == BERTH_ALG_SHA256 ? 32 : 0;
}

static const char *alg_name(uint8_t alg)
{
	return alg == BERTH_ALG_SHA512 ? "sha512" : "sha256";
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int berth_oid_from_parts(struct berth_oid *out, const char *alg, size_t alg_len, const char *hex)
{
	memset(out, 0, sizeof(*out));
	uint8_t a;
	if (alg_len == 6 && memcmp(alg, "sha256", 6) == 0)
		a = BERTH_ALG_SHA256;
	else if (alg_len == 6 && memcmp(alg, "sha512", 6) == 0)
		a = BERTH_ALG_SHA512;
	else
		return BERTH_EINVALID;
	size_t n = berth_oid_size(a);
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			memset(out, 0, sizeof(*out));
			return BERTH_EINVALID;
		}
		out->id[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[2 * n] != '\0') {
		memset(out, 0, sizeof(*out));
		return BERTH_EINVALID;
	}
	out->alg = a;
	return 0;
}

int berth_oid_parse(struct berth_oid *out, const char *digest)
{
	const char *colon = digest ? strchr(digest, ':') : NULL;
	if (!colon) {
		memset(out, 0, sizeof(*out));
		return BERTH_EINVALID;
	}
	return berth_oid_from_parts(out, digest, (size_t)(colon - digest), colon + 1);
}

void berth_oid_hex(char *out, const struct berth_oid *oid)
{
	static const char hx[] = "0123456789abcdef";
	size_t n = berth_oid_size(oid->alg);
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[oid->id[i] >> 4];
		out[2 * i + 1] = hx[oid->id[i] & 15];
	}
	out[2 * n] = '\0';
}

void berth_oid_fmt(char out[BERTH_DIGEST_STR_MAX], const struct berth_oid *oid)
{
	memcpy(out, alg_name(oid->alg), 6);
	out[6] = ':';
	berth_oid_hex(out + 7, oid);
}

int berth_oid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct berth_oid));
}

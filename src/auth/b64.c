/*
 * Base64 as the auth code needs it: strict standard base64 for HTTP Basic credentials and x5c
 * certificates (like Go's base64.StdEncoding), and base64url with optional padding for JOSE
 * (like Distribution's joseBase64UrlDecode). Input is untrusted: every byte is checked.
 */
#include "auth/auth_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of c in the variant's alphabet, or -1. */
static int sextet(enum berth_b64 variant, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (variant == BERTH_B64_STD)
		return c == '+' ? 62 : c == '/' ? 63 : -1;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* How many data characters precede the padding; -1 if the padding is malformed. */
static long data_length(enum berth_b64 variant, const char *in, size_t len)
{
	size_t pad = 0;
	while (pad < len && pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	if (pad > 0 || variant == BERTH_B64_STD) {
		/* Padded input must come in whole quads. */
		if (len % 4 != 0)
			return -1;
	}
	size_t n = len - pad;
	/* One leftover character can't carry a byte. */
	if (n % 4 == 1)
		return -1;
	return (long)n;
}

int berth_b64_decode(enum berth_b64 variant, const char *in, size_t len, unsigned char **out,
		     size_t *outlen)
{
	long n = data_length(variant, in, len);
	if (n < 0)
		return BERTH_EINVALID;
	unsigned char *buf = berth_malloc((size_t)n / 4 * 3 + 3);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (long i = 0; i < n; i++) {
		int v = sextet(variant, (unsigned char)in[i]);
		if (v < 0)
			goto err_free;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
err_free:
	free(buf);
	return BERTH_EINVALID;
}

char *berth_b64_encode(enum berth_b64 variant, const unsigned char *in, size_t len)
{
	const char *abc = variant == BERTH_B64_STD ? std_alphabet : url_alphabet;
	char *out = berth_malloc((len + 2) / 3 * 4 + 1);
	size_t o = 0;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = abc[(v >> 6) & 63];
		out[o++] = abc[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		if (i + 1 < len)
			out[o++] = abc[(v >> 6) & 63];
		if (variant == BERTH_B64_STD) {
			if (i + 1 >= len)
				out[o++] = '=';
			out[o++] = '=';
		}
	}
	out[o] = '\0';
	return out;
}

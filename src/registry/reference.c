#include "registry/reference.h"

#include <string.h>

#include "core/err.h"

#define SHA256_HEX_LEN 64
#define SHA512_HEX_LEN 128

/* Character classes, spelled out so that the locale and non-ASCII bytes never matter. */

static int is_lower_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(unsigned char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int is_lower_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* [a-zA-Z0-9=_-], the OCI digest "encoded" alphabet. */
static int is_encoded_char(unsigned char c)
{
	return is_alnum(c) || c == '=' || c == '_' || c == '-';
}

/* Length of the name-component separator (\.|_|__|-+) at s, 0 if there is none. */
static size_t name_separator_len(const char *s)
{
	size_t n = 0;

	if (s[0] == '.')
		return 1;
	if (s[0] == '_')
		return s[1] == '_' ? 2 : 1;
	while (s[n] == '-')
		n++;
	return n;
}

/* Length of the longest run of [a-z0-9] at s. */
static size_t lower_alnum_run(const char *s)
{
	size_t n = 0;

	while (is_lower_alnum((unsigned char)s[n]))
		n++;
	return n;
}

/*
 * Matches one path component [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* at s. Returns its length, or 0
 * when s does not start with a complete component (a separator must be followed by [a-z0-9]).
 */
static size_t match_name_component(const char *s)
{
	size_t i = 0;

	for (;;) {
		size_t run = lower_alnum_run(s + i);
		size_t sep;

		if (run == 0)
			return 0;
		i += run;
		sep = name_separator_len(s + i);
		if (sep == 0)
			return i;
		i += sep;
	}
}

int berth_name_valid(const char *name)
{
	size_t len;
	const char *p = name;

	if (!name)
		return 0;
	len = strnlen(name, BERTH_NAME_MAX + 1);
	if (len == 0 || len > BERTH_NAME_MAX)
		return 0;
	for (;;) {
		size_t n = match_name_component(p);

		if (n == 0)
			return 0;
		p += n;
		if (*p == '\0')
			return 1;
		if (*p != '/')
			return 0;
		p++;
	}
}

int berth_tag_valid(const char *tag)
{
	size_t len;
	size_t i;

	if (!tag)
		return 0;
	len = strnlen(tag, BERTH_TAG_MAX + 1);
	if (len == 0 || len > BERTH_TAG_MAX)
		return 0;
	if (!is_alnum((unsigned char)tag[0]) && tag[0] != '_')
		return 0;
	for (i = 1; i < len; i++) {
		unsigned char c = (unsigned char)tag[i];

		if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

/*
 * Matches the OCI digest algorithm grammar [a-z0-9]+([+._-][a-z0-9]+)* at s.
 * Returns its length, or 0 when s does not start with a complete algorithm.
 */
static size_t match_algorithm(const char *s)
{
	size_t i = 0;

	for (;;) {
		size_t run = lower_alnum_run(s + i);

		if (run == 0)
			return 0;
		i += run;
		if (s[i] != '+' && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return i;
		i++;
	}
}

/* Length of the encoded part at s if all of s (to the NUL) is [a-zA-Z0-9=_-]; 0 otherwise. */
static size_t match_encoded(const char *s)
{
	size_t n = 0;

	while (is_encoded_char((unsigned char)s[n]))
		n++;
	return s[n] == '\0' ? n : 0;
}

static enum berth_digest_alg alg_from_name(const char *name, size_t len)
{
	if (len == 6 && memcmp(name, "sha256", 6) == 0)
		return BERTH_ALG_SHA256;
	if (len == 6 && memcmp(name, "sha512", 6) == 0)
		return BERTH_ALG_SHA512;
	return BERTH_ALG_NONE;
}

static int all_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!is_lower_hex((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

int berth_digest_parse(const char *digest, enum berth_digest_alg *alg, const char **hex)
{
	size_t alg_len;
	size_t enc_len;
	const char *enc;
	enum berth_digest_alg a;

	if (!digest)
		return BERTH_EINVALID;
	alg_len = match_algorithm(digest);
	if (alg_len == 0 || digest[alg_len] != ':')
		return BERTH_EINVALID;
	enc = digest + alg_len + 1;
	enc_len = match_encoded(enc);
	if (enc_len == 0)
		return BERTH_EINVALID;
	a = alg_from_name(digest, alg_len);
	if (a == BERTH_ALG_NONE)
		return BERTH_EUNSUPPORTED;
	if (enc_len != berth_digest_hex_len(a) || !all_lower_hex(enc, enc_len))
		return BERTH_EINVALID;
	if (alg)
		*alg = a;
	if (hex)
		*hex = enc;
	return 0;
}

int berth_digest_valid(const char *digest)
{
	return berth_digest_parse(digest, NULL, NULL) == 0;
}

const char *berth_digest_alg_name(enum berth_digest_alg alg)
{
	switch (alg) {
	case BERTH_ALG_SHA256: return "sha256";
	case BERTH_ALG_SHA512: return "sha512";
	default: return NULL;
	}
}

size_t berth_digest_hex_len(enum berth_digest_alg alg)
{
	switch (alg) {
	case BERTH_ALG_SHA256: return SHA256_HEX_LEN;
	case BERTH_ALG_SHA512: return SHA512_HEX_LEN;
	default: return 0;
	}
}

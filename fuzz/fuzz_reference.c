/*
 * Manifest references: tags (berth_tag_valid) and digests (berth_digest_parse, berth_digest_valid),
 * as they arrive in /v2/<name>/manifests/<reference>, /blobs/<digest>, /referrers/<digest> and
 * the digest= and mount= query arguments.
 * Properties: no crash; the tag verdict equals [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}; a parsed digest
 * is "sha256:" + 64 or "sha512:" + 128 lowercase hex with *hex just after the colon;
 * BERTH_EUNSUPPORTED only for a well-formed OCI digest whose algorithm is neither.
 */
#include <regex.h>

#include "core/err.h"
#include "fuzz_common.h"
#include "registry/reference.h"

static regex_t tag_re, oci_digest_re, strict_digest_re;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (regcomp(&tag_re, "^[a-zA-Z0-9_][a-zA-Z0-9._-]*$", REG_EXTENDED | REG_NOSUB) ||
	    regcomp(&oci_digest_re, "^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
		    REG_EXTENDED | REG_NOSUB) ||
	    regcomp(&strict_digest_re, "^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$",
		    REG_EXTENDED | REG_NOSUB))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	size_t len = strlen(s);

	int tag = berth_tag_valid(s);
	if (len > BERTH_TAG_MAX)
		FUZZ_CHECK(!tag, "accepted a %zu-byte tag", len);
	else
		FUZZ_CHECK(tag == (regexec(&tag_re, s, 0, NULL, 0) == 0), "berth_tag_valid(\"%s\") = %d", s, tag);

	enum berth_digest_alg alg = BERTH_ALG_NONE;
	const char *hex = NULL;
	int rc = berth_digest_parse(s, &alg, &hex);
	FUZZ_CHECK(rc == 0 || rc == BERTH_EINVALID || rc == BERTH_EUNSUPPORTED, "rc %d", rc);
	FUZZ_CHECK((rc == 0) == berth_digest_valid(s), "berth_digest_valid disagrees on \"%s\"", s);
	if (len <= 1024) { /* the strict forms are at most 135 bytes; keep regexec off huge inputs */
		int strict = regexec(&strict_digest_re, s, 0, NULL, 0) == 0;
		int oci = regexec(&oci_digest_re, s, 0, NULL, 0) == 0;
		FUZZ_CHECK((rc == 0) == strict, "berth_digest_parse(\"%s\") = %d", s, rc);
		if (rc == BERTH_EUNSUPPORTED)
			FUZZ_CHECK(oci && strncmp(s, "sha256:", 7) != 0 && strncmp(s, "sha512:", 7) != 0,
				   "EUNSUPPORTED for \"%s\"", s);
		if (oci && rc == BERTH_EINVALID)
			FUZZ_CHECK(strncmp(s, "sha256:", 7) == 0 || strncmp(s, "sha512:", 7) == 0,
				   "EINVALID for well-formed \"%s\"", s);
	}
	if (rc == 0) {
		FUZZ_CHECK(alg == BERTH_ALG_SHA256 || alg == BERTH_ALG_SHA512, "alg %d", (int)alg);
		const char *name = berth_digest_alg_name(alg);
		FUZZ_CHECK(name && strncmp(s, name, 6) == 0 && s[6] == ':', "alg name");
		FUZZ_CHECK(hex == s + 7, "hex points at offset %td", hex - s);
		FUZZ_CHECK(strlen(hex) == berth_digest_hex_len(alg), "hex length %zu", strlen(hex));
		FUZZ_CHECK(len < BERTH_DIGEST_STR_MAX, "digest longer than BERTH_DIGEST_STR_MAX");
	}
	free(s);
	return 0;
}

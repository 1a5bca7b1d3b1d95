/*
 * The hash-state unmarshaller (berth_hasher_unmarshal): it reads
 * _uploads/<id>/hashstates/<alg>/<offset>, which another process (Distribution, an older berth,
 * a torn write) may have written. Go's encoding.BinaryMarshaler format of crypto/sha256 and
 * crypto/sha512 (src/core/digest.h).
 *
 * Input: the state file's bytes; each input is tried as a sha256 and as a sha512 state.
 * Properties: no crash; a refused state leaves *out NULL; an accepted state marshals back to
 * exactly the input bytes, reports the total length it stores, and can be updated and
 * finalised. And, with the input as data: hashing a prefix, marshalling, unmarshalling and
 * hashing the rest gives the one-shot digest (the resume path of a chunked upload).
 */
#include "core/digest.h"
#include "core/err.h"
#include "fuzz_common.h"
#include "registry/reference.h"

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void try_state(enum berth_digest_alg alg, const uint8_t *data, size_t size)
{
	struct berth_hasher *h = (struct berth_hasher *)1;
	unsigned char out[BERTH_HASHSTATE_MAX];
	size_t len = 0;
	char dig[BERTH_DIGEST_STR_MAX];

	int rc = berth_hasher_unmarshal(&h, alg, data, size);
	if (rc != 0) {
		FUZZ_CHECK(rc == BERTH_EINVALID, "rc %d", rc);
		FUZZ_CHECK(h == NULL, "*out not NULL after a refusal");
		return;
	}
	FUZZ_CHECK(h && berth_hasher_alg(h) == alg, "alg");
	FUZZ_CHECK(berth_hasher_marshal(h, out, sizeof(out), &len) == 0, "marshal failed");
	FUZZ_CHECK(len == size && memcmp(out, data, size) == 0,
		   "state does not round-trip (%zu bytes in, %zu out)", size, len);
	FUZZ_CHECK(berth_hasher_len(h) == be64(data + size - 8), "total length %llu",
		   (unsigned long long)berth_hasher_len(h));
	berth_hasher_digest(h, dig);
	berth_hasher_update(h, data, size);
	berth_hasher_digest(h, dig);
	FUZZ_CHECK(berth_digest_valid(dig), "digest \"%s\"", dig);
	berth_hasher_free(h);
}

static void resume(enum berth_digest_alg alg, const uint8_t *data, size_t size)
{
	struct berth_hasher *h = NULL, *h2 = NULL;
	unsigned char state[BERTH_HASHSTATE_MAX];
	size_t len = 0, k = size ? data[0] % (size + 1) : 0;
	char want[BERTH_DIGEST_STR_MAX], got[BERTH_DIGEST_STR_MAX];

	FUZZ_CHECK(berth_hasher_new(&h, alg) == 0, "new");
	berth_hasher_update(h, data, k);
	FUZZ_CHECK(berth_hasher_marshal(h, state, sizeof(state), &len) == 0, "marshal");
	FUZZ_CHECK(berth_hasher_unmarshal(&h2, alg, state, len) == 0, "own state refused (k=%zu)", k);
	FUZZ_CHECK(berth_hasher_len(h2) == k, "resumed length");
	berth_hasher_update(h2, data + k, size - k);
	berth_hasher_digest(h2, got);
	berth_digest_bytes(alg, data, size, want);
	FUZZ_CHECK(strcmp(got, want) == 0, "resumed %s, one-shot %s", got, want);
	/* A state truncated by one byte must be refused. */
	berth_hasher_free(h2);
	h2 = (struct berth_hasher *)1;
	FUZZ_CHECK(berth_hasher_unmarshal(&h2, alg, state, len - 1) == BERTH_EINVALID && !h2,
		   "truncated state accepted");
	berth_hasher_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copy so that an over-read hits ASan's redzone. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	try_state(BERTH_ALG_SHA256, buf, size);
	try_state(BERTH_ALG_SHA512, buf, size);
	resume(BERTH_ALG_SHA256, buf, size);
	resume(BERTH_ALG_SHA512, buf, size);
	free(buf);
	return 0;
}

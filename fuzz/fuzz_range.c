/*
 * The byte-range headers and the number parser of src/http/range.h: Range on blob GETs
 * (berth_range_parse), Content-Range on upload PATCH/PUT (berth_content_range_parse) and
 * berth_parse_u64 (the n= query argument, Content-Length-like values).
 *
 * Input: "<resource size>\n<header value>"; without a newline the whole input is the header and
 * the size is 1000. The same header goes to all three parsers.
 * Properties: no crash; a Range listing several ranges (or none) is told apart from a malformed
 * one (BERTH_EUNSUPPORTED); a satisfiable Range lies inside the resource (start < size, len >= 1,
 * start + len <= size); Content-Range has start <= end; berth_parse_u64 accepts exactly the
 * strings of decimal digits whose value fits in 64 bits, and returns that value.
 */
#include "core/err.h"
#include "fuzz_common.h"
#include "http/range.h"

/* Reference for berth_parse_u64: 1 and *v if s is [0-9]+ with a value < 2^64. */
static int ref_u64(const char *s, uint64_t *v)
{
	unsigned __int128 acc = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		acc = acc * 10 + (unsigned)(*s - '0');
		if (acc > UINT64_MAX)
			return 0;
	}
	*v = (uint64_t)acc;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size);
	char *header = in;
	uint64_t res_size = 1000;
	char *nl = memchr(in, '\n', size);
	if (nl) {
		*nl = '\0';
		header = nl + 1;
		ref_u64(in, &res_size); /* an unparsable size line leaves 1000 */
	}

	uint64_t start = 0, len = 0;
	int rc = berth_range_parse(header, res_size, &start, &len);
	FUZZ_CHECK(rc == 0 || rc == BERTH_EINVALID || rc == BERTH_ERANGE || rc == BERTH_EUNSUPPORTED,
		   "range rc %d", rc);
	if (rc == BERTH_EUNSUPPORTED) /* several ranges, or none */
		FUZZ_CHECK(strchr(header, ',') || !strpbrk(header, "0123456789"), "EUNSUPPORTED for \"%s\"",
			   header);
	if (rc == 0) {
		FUZZ_CHECK(res_size > 0 && start < res_size, "start %llu size %llu",
			   (unsigned long long)start, (unsigned long long)res_size);
		FUZZ_CHECK(len >= 1 && len <= res_size - start, "len %llu start %llu size %llu",
			   (unsigned long long)len, (unsigned long long)start,
			   (unsigned long long)res_size);
	}
	if (res_size == 0)
		FUZZ_CHECK(rc != 0, "a range of an empty resource");

	uint64_t first = 0, last = 0;
	rc = berth_content_range_parse(header, &first, &last);
	FUZZ_CHECK(rc == 0 || rc == BERTH_EINVALID, "content-range rc %d", rc);
	if (rc == 0)
		FUZZ_CHECK(first <= last, "content-range %llu-%llu", (unsigned long long)first,
			   (unsigned long long)last);

	uint64_t got = 0, want = 0;
	rc = berth_parse_u64(header, &got);
	int ok = ref_u64(header, &want);
	FUZZ_CHECK((rc == 0) == ok, "berth_parse_u64(\"%s\") = %d", header, rc);
	if (ok)
		FUZZ_CHECK(got == want, "berth_parse_u64(\"%s\") -> %llu", header, (unsigned long long)got);
	FUZZ_CHECK(berth_parse_u64(header, NULL) == rc, "NULL out changes the verdict");
	free(in);
	return 0;
}

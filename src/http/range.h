/*
 * Parsers for the byte-range headers clients send.
 * Safe on any input; never allocate. Numbers are decimal without sign, no overflow accepted.
 */
#ifndef BERTH_HTTP_RANGE_H
#define BERTH_HTTP_RANGE_H

#include <stdint.h>

/*
 * Parses a request Range header (RFC 9110) for a resource of `size` bytes, single range only:
 * "bytes=A-B", "bytes=A-" and "bytes=-N" (suffix). Whitespace around tokens is tolerated.
 * On success returns 0 and sets *start and *len (the resolved, clamped range: B past the end is
 * clamped to size-1).
 * Returns BERTH_ERANGE when the range is syntactically valid but not satisfiable (A >= size, or a
 * suffix of 0, or size == 0) -> the caller answers 416.
 * Returns BERTH_EUNSUPPORTED when it lists several well-formed ranges (or none): berth sends
 * no multipart answers, so the caller ignores it and serves the whole body, as RFC 9110 allows.
 * Returns BERTH_EINVALID when the header is malformed or has another unit: the caller answers
 * 416, as Go's http.ServeContent does for Distribution.
 */
int berth_range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len);

/*
 * Parses an upload Content-Range header as the distribution-spec uses it: "A-B" (inclusive),
 * also accepting the "bytes=A-B" and "bytes A-B/total" forms some clients send (in the latter
 * "/total" is optional and total is either a number > B or an asterisk).
 * Requires A <= B. On success returns 0 and sets *start and *end (inclusive).
 * Returns BERTH_EINVALID for anything else.
 */
int berth_content_range_parse(const char *header, uint64_t *start, uint64_t *end);

/*
 * Parses a non-negative decimal integer that must fit in uint64 (no sign, no spaces, at least one
 * digit, no trailing garbage). 0 or BERTH_EINVALID.
 */
int berth_parse_u64(const char *s, uint64_t *out);

#endif

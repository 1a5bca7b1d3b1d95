/*
 * The little XML reading the S3 driver needs: S3's answers are flat, machine-written documents
 * (no attributes read, no CDATA, no comments), so finding an element's text and decoding the
 * five predefined entities is enough. Not a general XML parser.
 */
#ifndef BERTH_STORAGE_S3_XML_H
#define BERTH_STORAGE_S3_XML_H

#include <stddef.h>
#include <stdint.h>

/* The text of the first element <tag>...</tag> (or <tag attr=...>) in [s, end): returns its
 * start and sets *len; *after (if not NULL) points past the closing tag. NULL if absent. */
const char *s3_xml_find(const char *s, const char *end, const char *tag, size_t *len, const char **after);
/* A new NUL-terminated copy of [s, s + n) with &amp; &lt; &gt; &quot; &apos; decoded. */
char *s3_xml_unescape(const char *s, size_t n);
/* An ISO 8601 UTC time of [s, s + n) ("2026-12-06T11:52:14.000Z": LastModified, Initiated) as
 * seconds since the epoch; 0 if unreadable. */
int64_t s3_xml_time(const char *s, size_t n);

#endif

/* Element text lookup and entity decoding for S3's XML answers (see s3_xml.h). */
#include "storage/s3_xml.h"

#include "core/util.h"

#include <string.h>
#include <time.h>

int64_t s3_xml_time(const char *s, size_t n)
{
	struct tm tm = { 0 };
	char tmp[40];
	if (n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (strptime(tmp, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
		return 0;
	return (int64_t)timegm(&tm);
}

/* The first occurrence of needle (n bytes) in [s, end), or NULL. */
static const char *find_bytes(const char *s, const char *end, const char *needle, size_t n)
{
	if (end < s || (size_t)(end - s) < n)
		return NULL;
	return memmem(s, (size_t)(end - s), needle, n);
}

const char *s3_xml_find(const char *s, const char *end, const char *tag, size_t *len, const char **after)
{
	size_t tl = strlen(tag);
	const char *p = s;
	for (;;) {
		const char *open = find_bytes(p, end, "<", 1);
		if (open == NULL || (size_t)(end - open) < tl + 2)
			return NULL;
		p = open + 1;
		if (memcmp(p, tag, tl) != 0 || (p[tl] != '>' && p[tl] != ' '))
			continue;
		const char *gt = find_bytes(p + tl, end, ">", 1);
		if (gt == NULL)
			return NULL;
		if (gt[-1] == '/') { /* <tag/>: empty */
			*len = 0;
			if (after)
				*after = gt + 1;
			return gt + 1;
		}
		const char *text = gt + 1;
		char closing[80];
		if (tl + 4 > sizeof(closing))
			return NULL;
		closing[0] = '<';
		closing[1] = '/';
		memcpy(closing + 2, tag, tl);
		closing[tl + 2] = '>';
		/* Nested elements of the same name do not occur in S3's answers. */
		const char *close = find_bytes(text, end, closing, tl + 3);
		if (close == NULL)
			return NULL;
		*len = (size_t)(close - text);
		if (after)
			*after = close + tl + 3;
		return text;
	}
}

char *s3_xml_unescape(const char *s, size_t n)
{
	static const struct {
		const char *entity;
		char c;
	} entities[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' } };
	char *out = berth_malloc(n + 1), *o = out;
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		if (s[i] == '&') {
			for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]); e++) {
				size_t el = strlen(entities[e].entity);
				if (n - i >= el && memcmp(s + i, entities[e].entity, el) == 0) {
					*o++ = entities[e].c;
					k = el;
					break;
				}
			}
		}
		if (k == 0) {
			*o++ = s[i];
			k = 1;
		}
		i += k;
	}
	*o = '\0';
	return out;
}

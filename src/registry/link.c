/* Link file content: one digest, whitespace around it tolerated (registry/link.h). */
#include "registry/link.h"

#include <string.h>

#include "core/err.h"
#include "registry/reference.h"

static int is_link_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int berth_link_parse(char out[BERTH_DIGEST_STR_MAX], const char *content, size_t len)
{
	while (len && is_link_space(*content)) {
		content++;
		len--;
	}
	while (len && is_link_space(content[len - 1]))
		len--;
	char digest[BERTH_DIGEST_STR_MAX];
	if (len == 0 || len >= sizeof(digest) || memchr(content, '\0', len))
		return BERTH_EINVALID;
	memcpy(digest, content, len);
	digest[len] = '\0';
	if (!berth_digest_valid(digest))
		return BERTH_EINVALID;
	memcpy(out, digest, len + 1);
	return 0;
}

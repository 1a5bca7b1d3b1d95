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

int berth_link_path_oid(struct berth_oid *out, const char *path)
{
	const char *end = strrchr(path, '/');
	if (!end || strcmp(end, "/link") != 0)
		return BERTH_EINVALID;
	const char *hex = end;
	while (hex > path && hex[-1] != '/')
		hex--;
	if (hex == path)
		return BERTH_EINVALID;
	const char *alg = hex - 1;
	while (alg > path && alg[-1] != '/')
		alg--;
	char hexbuf[2 * BERTH_OID_MAX_BYTES + 1];
	if ((size_t)(end - hex) >= sizeof(hexbuf))
		return BERTH_EINVALID;
	memcpy(hexbuf, hex, (size_t)(end - hex));
	hexbuf[end - hex] = '\0';
	return berth_oid_from_parts(out, alg, (size_t)(hex - 1 - alg), hexbuf);
}

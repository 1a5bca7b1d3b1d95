/*
 * The logical path grammar every storage driver accepts: Distribution's
 * ^(/[A-Za-z0-9._-]+)+$ plus the root "/", with "." and ".." components refused so that no
 * path can name anything outside the driver's root.
 */
#include "storage/driver.h"

#include <string.h>

static int path_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Checks one component [s, s + n): non-empty, grammar characters only, not "." or "..". */
static int path_component_ok(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!path_char_ok(s[i]))
			return 0;
	}
	return 1;
}

int berth_storage_path_valid(const char *path)
{
	if (path == NULL || path[0] != '/')
		return 0;
	if (strcmp(path, "/") == 0)
		return 1;

	const char *p = path + 1;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (!path_component_ok(p, n))
			return 0; /* also catches "//" and a trailing '/' (empty component) */
		if (end == NULL)
			return 1;
		p = end + 1;
	}
}

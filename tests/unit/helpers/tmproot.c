#include "helpers/tmproot.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

int berth_test_root_new(char *out, size_t cap, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(out, cap, "%s/berth-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return mkdtemp(out) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int berth_test_root_remove(const char *path)
{
	if (!path || !*path)
		return 0;
	return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 || errno == ENOENT ? 0 : -1;
}

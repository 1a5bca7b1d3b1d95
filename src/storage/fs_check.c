/* The start-up check of a filesystem storage root (fs_check.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"
#include "storage/fs_check.h"

/* "what: reason", the reason lowercase as the rest of berth's messages. */
static int fail(const char *what, int e)
{
	if (!*what)
		return berth_err_set_os(BERTH_ERROR, e);
	return berth_err_set(BERTH_ERROR, "%s: %s", what, berth_err_os_text(e));
}

/* mkdir -p: each missing component is created in turn. */
static int make_dirs(const char *root)
{
	char *path = berth_strdup(root);
	int rc = 0;
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			char what[64];
			snprintf(what, sizeof(what), "cannot create %s", c ? "a parent directory" : "it");
			rc = fail(what, errno);
			break;
		}
		*p = c;
		if (!c)
			break;
	}
	free(path);
	return rc;
}

static int write_probe(const char *root)
{
	char *probe = berth_asprintf("%s/.berth-write-check.%ld", root, (long)getpid());
	int rc = 0;
	int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = fail("cannot create a file in it", errno);
		free(probe);
		return rc;
	}
	/* A byte, synced: an empty file can still be created on a full disk. */
	if (write(fd, "x", 1) != 1 || fsync(fd) != 0)
		rc = fail("cannot write a file in it", errno ? errno : EIO);
	close(fd);
	if (unlink(probe) != 0 && rc == 0)
		rc = fail("cannot remove a file from it", errno);
	free(probe);
	return rc;
}

int berth_fs_check_root(const char *root, int read_only)
{
	struct stat st;
	if (!root || !*root)
		return berth_err_set(BERTH_ERROR, "no directory given");
	if (make_dirs(root) < 0)
		return BERTH_ERROR;
	if (stat(root, &st) != 0)
		return fail("", errno);
	if (!S_ISDIR(st.st_mode))
		return fail("", ENOTDIR);
	return read_only ? 0 : write_probe(root);
}

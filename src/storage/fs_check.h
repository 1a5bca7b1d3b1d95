/*
 * The start-up check of a filesystem storage root: berth refuses to start on a root it could not
 * write to, rather than failing every push later with a bare 500. The reason (permission denied,
 * not a directory, no space left on device, read-only file system) is what an operator needs.
 */
#ifndef BERTH_STORAGE_FS_CHECK_H
#define BERTH_STORAGE_FS_CHECK_H

#include <stddef.h>

/*
 * Creates root (and its parents) if missing, as the driver would, and checks that it is a
 * directory; unless read_only (a read-only registry may run on a read-only mount), also
 * creates, writes a byte to, syncs and removes a file directly under it.
 * 0 when all went well; BERTH_ERROR (-1) with one line as its message (core/err.h: "not a
 * directory", "cannot create a file in it: permission denied", ...) otherwise.
 */
int berth_fs_check_root(const char *root, int read_only);

#endif

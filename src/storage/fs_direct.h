/*
 * Direct (O_DIRECT) writes for the filesystem driver's large objects (upload bodies).
 *
 * Why: a buffered write() copies every byte into freshly allocated page-cache pages and leaves
 * them to writeback. On a virtual machine whose host reclaims the guest's free pages (balloon,
 * free page reporting) each fresh page costs a host fault first, and a 100 MiB write() then takes
 * anywhere from 30 to 450 ms (measured here). A direct write goes from the caller's memory
 * straight to the device: an upload's pipe hands its ring to the driver in aligned pieces
 * (core/bodypipe.h), from a thread of its own, and nothing is copied again.
 *
 * The driver writes a piece directly when it starts at an aligned offset of a file already
 * past its DIRECT_AFTER, from an aligned address, and only its whole aligned blocks; anything
 * else (the head, the tail, unaligned callers) goes through the page cache with O_DIRECT
 * cleared. Errors are errno values, for the driver to translate.
 */
#ifndef BERTH_STORAGE_FS_DIRECT_H
#define BERTH_STORAGE_FS_DIRECT_H

#include <stddef.h>
#include <stdint.h>

#define FS_DIRECT_ALIGN 4096u

/* Whether fd's file system is one direct writes are used on: local disk file systems measured
 * to gain from them (ext4, XFS) and tmpfs, when the kernel says they take FS_DIRECT_ALIGN.
 * Others (NFS and other network file systems, overlayfs, FUSE, ...) stay buffered: a direct
 * write there may be a synchronous round trip each. */
int fs_direct_supported(int fd);
/* Sets (on) or clears O_DIRECT on fd. 0 or errno. */
int fs_direct_set(int fd, int on);
/* Appends n bytes to fd, which has O_DIRECT set, adding what lands to *written. A write the
 * file system refuses (EINVAL: an alignment it does not take, or a write the file size limit
 * cut to an odd length) is redone buffered, and so is the rest: O_DIRECT is cleared and
 * *fell_back set. 0 or errno. */
int fs_direct_write_all(int fd, const void *buf, size_t n, uint64_t *written, int *fell_back);

#endif

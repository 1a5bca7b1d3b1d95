/*
 * Direct (O_DIRECT) streaming of the rest of an append-only file, for the filesystem driver's
 * large writes (upload bodies).
 *
 * Why: a buffered write() copies every byte into freshly allocated page-cache pages and leaves
 * them to writeback. On a virtual machine whose host reclaims the guest's free pages (balloon,
 * free page reporting) each fresh page costs a host fault first, and a 100 MiB write() then takes
 * anywhere from 30 to 450 ms (measured here). Direct writes go from a few reused, aligned blocks
 * straight to the device, on a thread of their own, so the receiving thread only copies the
 * bytes into a block and goes on.
 *
 * The caller brings the file to an aligned offset (FS_DIRECT_ALIGN) with ordinary writes, then
 * hands the rest here; fs_direct_finish writes the last, partial block with O_DIRECT cleared.
 * Bytes are in the file (visible, not yet durable) once finish returns 0.
 *
 * At most one direct stream per online core runs at once; each holds FS_DIRECT_BLOCKS blocks of
 * FS_DIRECT_BLOCK bytes, so memory stays bounded whatever the number of uploads. (4 MiB in all:
 * with 2 MiB a 100 MiB upload here went 15-20% slower, waiting on the device; 8 MiB gained
 * nothing more.) Queued blocks that lie next to each other go out in one write.
 */
#ifndef BERTH_STORAGE_FS_DIRECT_H
#define BERTH_STORAGE_FS_DIRECT_H

#include <stddef.h>

#define FS_DIRECT_ALIGN 4096u
#define FS_DIRECT_BLOCK (512u << 10)
#define FS_DIRECT_BLOCKS 8u

struct fs_direct;

/* Errors are errno values, for the driver to translate. */

/* Whether fd's file system is one direct writes are used on: local disk file systems measured
 * to gain from them (ext4, XFS) and tmpfs, when the kernel says they take FS_DIRECT_ALIGN.
 * Others (NFS and other network file systems, overlayfs, FUSE, ...) stay buffered: a direct
 * write there may be a synchronous round trip each. */
int fs_direct_supported(int fd);

/* Starts streaming to fd (opened for writing with O_APPEND, its size a multiple of
 * FS_DIRECT_ALIGN). 0; EBUSY when every slot is in use; EINVAL when the file system does not
 * take direct writes at this alignment; EAGAIN without a thread. On error fd is as it was. */
int fs_direct_start(struct fs_direct **out, int fd);
/* Takes n bytes, waiting while every block is being written. 0, or the errno of an earlier
 * block's write (after which nothing more is written). */
int fs_direct_write(struct fs_direct *d, const void *buf, size_t n);
/* Writes out everything taken, stops the thread, clears O_DIRECT on fd and frees d. 0, or the
 * first write's errno (the file then holds some prefix of the bytes taken). */
int fs_direct_finish(struct fs_direct *d);

#endif

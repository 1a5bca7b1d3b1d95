#include "storage/fs_direct.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

int fs_direct_supported(int fd)
{
	struct statfs sfs;
	struct statx stx;
	if (fstatfs(fd, &sfs) != 0)
		return 0;
	switch (sfs.f_type) {
	case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		break;
	default:
		return 0;
	}
	/* Kernels before 6.1 do not say (no DIOALIGN): try; a refused write falls back. */
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0 || !(stx.stx_mask & STATX_DIOALIGN))
		return 1;
	return stx.stx_dio_offset_align != 0 && FS_DIRECT_ALIGN % stx.stx_dio_offset_align == 0 &&
	       stx.stx_dio_mem_align != 0 && FS_DIRECT_ALIGN % stx.stx_dio_mem_align == 0;
}

int fs_direct_set(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return errno;
	fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
	return fcntl(fd, F_SETFL, fl) == 0 ? 0 : errno;
}

int fs_direct_write_all(int fd, const void *buf, size_t n, uint64_t *written, int *fell_back)
{
	const unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EINVAL && !*fell_back) {
				*fell_back = 1;
				int e = fs_direct_set(fd, 0);
				if (e)
					return e;
				continue;
			}
			return errno;
		}
		p += r;
		n -= (size_t)r;
		*written += (uint64_t)r;
	}
	return 0;
}

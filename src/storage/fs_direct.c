#include "storage/fs_direct.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/util.h"

struct fs_direct {
	int fd;
	unsigned char *blocks; /* FS_DIRECT_BLOCKS blocks of FS_DIRECT_BLOCK bytes, aligned */
	size_t fill;           /* bytes in the block being filled: block number `queued` */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a block was queued or written, or stop */
	uint64_t queued, written; /* full blocks ever handed to the thread / written by it */
	int err;                  /* the first write's errno; nothing is written after it */
	int stop;
};

static _Atomic long streams_running;

/* One set of blocks kept from the last stream for the next: a fresh set would cost a page
 * fault per 4 KiB (and on a virtual machine often a host fault too) on every upload request. */
static void *_Atomic spare_blocks;

static void *blocks_get(void)
{
	void *b = atomic_exchange(&spare_blocks, NULL);
	if (b == NULL && posix_memalign(&b, FS_DIRECT_ALIGN, FS_DIRECT_BLOCKS * FS_DIRECT_BLOCK) != 0)
		abort(); /* as everywhere in berth: allocation failure is not recoverable */
	return b;
}

static void blocks_put(void *b)
{
	void *none = NULL;
	if (!atomic_compare_exchange_strong(&spare_blocks, &none, b))
		free(b);
}

static unsigned char *block_at(struct fs_direct *d, uint64_t number)
{
	return d->blocks + (size_t)(number % FS_DIRECT_BLOCKS) * FS_DIRECT_BLOCK;
}

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

static int set_direct(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return errno;
	fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
	return fcntl(fd, F_SETFL, fl) == 0 ? 0 : errno;
}

/* Writes n bytes (appending). A direct write the file system refuses (EINVAL: an alignment it
 * does not take, or a write the file size limit cut to an odd length) is redone buffered, and
 * so is everything after it: O_DIRECT stays off. */
static int write_out(int fd, const unsigned char *p, size_t n)
{
	int fell_back = 0;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EINVAL && !fell_back) {
				fell_back = 1;
				int e = set_direct(fd, 0);
				if (e)
					return e;
				continue;
			}
			return errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *direct_loop(void *arg)
{
	struct fs_direct *d = arg;
	pthread_mutex_lock(&d->lock);
	for (;;) {
		while (d->written == d->queued && !d->stop)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->written == d->queued)
			break; /* stopped, and every queued block is written */
		/* Every queued block up to the end of the ring, in one write. */
		uint64_t n = d->queued - d->written;
		uint64_t to_end = FS_DIRECT_BLOCKS - d->written % FS_DIRECT_BLOCKS;
		if (n > to_end)
			n = to_end;
		int failed = d->err != 0;
		/* The producer never touches a queued block until it is written: ours while unlocked. */
		pthread_mutex_unlock(&d->lock);
		int e = failed ? 0 : write_out(d->fd, block_at(d, d->written), (size_t)n * FS_DIRECT_BLOCK);
		pthread_mutex_lock(&d->lock);
		if (e && !d->err)
			d->err = e;
		d->written += n;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int fs_direct_start(struct fs_direct **out, int fd)
{
	/* The slot first: a writer that finds none asks again on its next write, and that should
	 * cost an atomic, not the two system calls of the file system check. */
	if (atomic_fetch_add(&streams_running, 1) >= berth_online_cpus()) {
		atomic_fetch_sub(&streams_running, 1);
		return EBUSY;
	}
	if (!fs_direct_supported(fd) || set_direct(fd, 1) != 0) {
		atomic_fetch_sub(&streams_running, 1);
		return EINVAL;
	}
	struct fs_direct *d = berth_calloc(1, sizeof(*d));
	d->fd = fd;
	d->blocks = blocks_get();
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	if (pthread_create(&d->thread, NULL, direct_loop, d) != 0) {
		set_direct(fd, 0);
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		blocks_put(d->blocks);
		free(d);
		atomic_fetch_sub(&streams_running, 1);
		return EAGAIN;
	}
	*out = d;
	return 0;
}

int fs_direct_write(struct fs_direct *d, const void *buf, size_t n)
{
	const unsigned char *src = buf;
	int e;
	while (n > 0) {
		size_t k = FS_DIRECT_BLOCK - d->fill;
		if (k > n)
			k = n;
		memcpy(block_at(d, d->queued) + d->fill, src, k);
		d->fill += k;
		src += k;
		n -= k;
		if (d->fill < FS_DIRECT_BLOCK)
			break;
		pthread_mutex_lock(&d->lock);
		d->queued++;
		d->fill = 0;
		pthread_cond_broadcast(&d->cond);
		/* The next block to fill is free once fewer than all of them are queued. */
		while (d->queued - d->written == FS_DIRECT_BLOCKS)
			pthread_cond_wait(&d->cond, &d->lock);
		e = d->err;
		pthread_mutex_unlock(&d->lock);
		if (e)
			return e;
	}
	pthread_mutex_lock(&d->lock);
	e = d->err;
	pthread_mutex_unlock(&d->lock);
	return e;
}

int fs_direct_finish(struct fs_direct *d)
{
	pthread_mutex_lock(&d->lock);
	d->stop = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);

	int e = d->err;
	int e_flags = set_direct(d->fd, 0);
	if (!e)
		e = e_flags;
	/* The last, partial block goes through the page cache: any length, any offset. */
	if (!e && d->fill > 0)
		e = write_out(d->fd, block_at(d, d->queued), d->fill);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	blocks_put(d->blocks);
	free(d);
	atomic_fetch_sub(&streams_running, 1);
	return e;
}

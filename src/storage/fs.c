/*
 * Filesystem storage driver. Logical path /a/b is the file <root>/a/b, byte for byte, so a
 * tree written by Distribution's filesystem driver can be served as is and vice versa.
 *
 * Atomic replacement (put_content) writes a temp file next to the target and renames it over.
 * Temp files are named ".tmp~XXXXXX": '~' is outside the path grammar, so no logical path can
 * ever name one, and list/walk skip every name the grammar cannot express.
 *
 * The driver keeps no mutable state after construction, so every slot is thread-safe.
 */
#include "storage/driver.h"

#include "core/err.h"
#include "core/util.h"
#include "core/vec.h"
#include "storage/fs_direct.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FS_TMP_TEMPLATE "/.tmp~XXXXXX"

struct fs_driver {
	struct berth_storage_driver base;
	char *root; /* absolute, without trailing '/': "" when the root is "/" itself */
	size_t root_len;
};

struct fs_writer {
	struct berth_writer base;
	int fd;
	uint64_t size;   /* the file's size: every byte taken is written */
	char *host;      /* for cancel and for syncing the parent directory */
	int cancelled;
	uint64_t kicked; /* bytes already handed to writeback (sync_file_range) */
	int direct_on;   /* O_DIRECT is set on fd (fs_direct.h) */
	int no_direct;   /* direct writes were refused, or the object is kept cached: stay buffered */
	int cached;      /* BERTH_WRITER_APPEND_CACHED: nothing handed to writeback as it comes */
};

/* Start writeback of every WRITEBACK_STEP bytes as they arrive, without waiting for it, so
 * that the fdatasync at commit finds little left to do and a large upload's commit does not
 * stall on flushing all of it at once. */
#define WRITEBACK_STEP (8u << 20)

/* Size an object reaches through the page cache before aligned pieces go with direct writes:
 * small objects (links, manifests, small blobs) never do. */
#define DIRECT_AFTER (1u << 20)

/* Allocation failure is not recoverable in berth: the project's allocator aborts. */
static void *fs_xmalloc(size_t n)
{
	return berth_malloc(n);
}

static char *fs_concat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = fs_xmalloc(la + lb + lc + 1);
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

static struct fs_driver *fs_from(struct berth_storage_driver *drv)
{
	return (struct fs_driver *)drv;
}

/* errno of a failed lookup/read to a BERTH_E* code. */
static int fs_err(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR: /* a parent is a file: the path does not exist */
		return BERTH_ENOTFOUND;
	case ENOSPC:
	case EDQUOT:
		return berth_err_set_os(BERTH_ENOSPC, e);
	case ENAMETOOLONG:
		return BERTH_EINVALID;
	default:
		/* permission denied, read-only file system, I/O error: the log says which */
		return berth_err_set_os(BERTH_ERROR, e);
	}
}

/* errno of a failed create/rename: a clash between a file and a directory is EEXISTS. */
static int fs_err_create(int e)
{
	switch (e) {
	case EEXIST:
	case ENOTDIR:
	case EISDIR:
	case ENOTEMPTY:
		return BERTH_EEXISTS;
	case EINVAL:
		return BERTH_EINVALID;
	default:
		return fs_err(e);
	}
}

/* Paths naming an object: valid and not the root itself. */
static int fs_object_path_ok(const char *path)
{
	return berth_storage_path_valid(path) && strcmp(path, "/") != 0;
}

static char *fs_host_path(const struct fs_driver *d, const char *path)
{
	if (strcmp(path, "/") == 0)
		return fs_concat3(d->root_len ? d->root : "/", "", "");
	return fs_concat3(d->root, path, "");
}

static char *fs_child_path(const char *parent, const char *name)
{
	return fs_concat3(strcmp(parent, "/") == 0 ? "" : parent, "/", name);
}

/* The directory part of an absolute host path ("/" for "/x"). */
static char *fs_dirname(const char *host)
{
	const char *slash = strrchr(host, '/');
	size_t n = slash > host ? (size_t)(slash - host) : 1;
	char *s = fs_xmalloc(n + 1);
	memcpy(s, host, n);
	s[n] = '\0';
	return s;
}

/* mkdir -p for dir, creating only the components after its first `skip` bytes. */
/* Creates dir and its missing parents, never above the first `skip` bytes (the root). Tries
 * the deepest first: usually only the last component or two are missing. */
static int fs_mkdir_all(char *dir, size_t skip)
{
	size_t len = strlen(dir);
	if (len <= skip)
		return 0;
	if (mkdir(dir, 0755) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return fs_err_create(errno);
	char *slash = strrchr(dir, '/');
	if (!slash || (size_t)(slash - dir) <= skip)
		return fs_err_create(ENOENT);
	*slash = '\0';
	int rc = fs_mkdir_all(dir, skip);
	*slash = '/';
	if (rc != 0)
		return rc;
	return mkdir(dir, 0755) == 0 || errno == EEXIST ? 0 : fs_err_create(errno);
}

/* Creates the parent directories of a host path below the root. */
static int fs_mkdir_parents(const struct fs_driver *d, const char *host)
{
	char *dir = fs_dirname(host);
	struct stat st;
	int rc = 0;

	/* Usually the parent exists already: one stat instead of a mkdir per component. */
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		rc = fs_mkdir_all(dir, d->root_len);
	free(dir);
	return rc;
}

static int fs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fs_err(errno);
	int rc = fsync(fd) == 0 ? 0 : fs_err(errno);
	close(fd);
	return rc;
}

/* Writes all n bytes, riding out partial writes and EINTR. *written counts what landed. */
static int fs_write_all(int fd, const void *buf, size_t n, uint64_t *written)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return fs_err(errno);
		}
		p += r;
		n -= (size_t)r;
		if (written)
			*written += (uint64_t)r;
	}
	return 0;
}

static ssize_t fs_read_some(int fd, void *buf, size_t n)
{
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	for (;;) {
		ssize_t r = read(fd, buf, n);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return fs_err(errno);
	}
}

static int fs_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void fs_names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* A directory is read in pieces of this size (getdents64): one call for the small directories
 * of the layout (a blob's, a link's), a second one to see the end. */
#define FS_DIRENTS_BUF 32768 /* as glibc's readdir: large directories in few calls */

/*
 * Reads the names in the open directory fd from its current offset to its end, "." and ".."
 * excluded, unsorted, with getdents64 on fd itself (readdir would need fdopendir's fcntl and
 * fstat calls, and a descriptor of its own). fd stays open. When types is not NULL, (*types)[i]
 * is the d_type of names[i] (DT_UNKNOWN where the filesystem does not say). The caller frees
 * *names with fs_names_free and *types with free.
 */
static int fs_read_dir(int fd, char ***names, unsigned char **types, size_t *count)
{
	size_t n = 0, cap = 16, tcap = 16;
	char **v = fs_xmalloc(cap * sizeof(*v));
	unsigned char *t = types ? fs_xmalloc(tcap) : NULL;
	char *buf = fs_xmalloc(FS_DIRENTS_BUF);
	int rc = 0;
	for (;;) {
		ssize_t got = getdents64(fd, buf, FS_DIRENTS_BUF);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			rc = got < 0 ? fs_err(errno) : 0;
			break;
		}
		for (ssize_t off = 0; off < got;) {
			const struct dirent64 *ent = (const struct dirent64 *)(buf + off);
			off += ent->d_reclen;
			if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
				continue;
			BERTH_VEC_GROW(v, n + 1, cap);
			if (t) {
				BERTH_VEC_GROW(t, n + 1, tcap);
				t[n] = ent->d_type;
			}
			v[n++] = fs_concat3(ent->d_name, "", "");
		}
	}
	free(buf);
	if (rc != 0) {
		fs_names_free(v, n);
		free(t);
		return rc;
	}
	*names = v;
	if (types)
		*types = t;
	*count = n;
	return 0;
}

/*
 * Reads the names in an open directory (consuming fd), sorted by strcmp, "." and ".."
 * excluded. The caller frees *names with fs_names_free.
 */
static int fs_read_names_fd(int fd, char ***names, size_t *count)
{
	int rc = fs_read_dir(fd, names, NULL, count);
	close(fd);
	if (rc == 0)
		qsort(*names, *count, sizeof(**names), fs_names_cmp);
	return rc;
}

/* Names in the directory at a host path. BERTH_ENOTFOUND if it is absent or not a directory. */
static int fs_read_names(const char *host, char ***names, size_t *count)
{
	int fd = open(host, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fs_err(errno);
	return fs_read_names_fd(fd, names, count);
}

/* ---- get_content / put_content ---- */

/* Opens the file at an object path for reading; a directory is not an object (ENOTFOUND). */
static int fs_open_object(const struct fs_driver *d, const char *path, int *fd, struct stat *st)
{
	if (!fs_object_path_ok(path))
		return BERTH_EINVALID;
	char *host = fs_host_path(d, path);
	int f = open(host, O_RDONLY | O_CLOEXEC);
	int rc = f >= 0 ? 0 : fs_err(errno);
	free(host);
	if (rc != 0)
		return rc;

	if (fstat(f, st) != 0)
		rc = fs_err(errno);
	else if (S_ISDIR(st->st_mode))
		rc = BERTH_ENOTFOUND;
	if (rc != 0) {
		close(f);
		return rc;
	}
	*fd = f;
	return 0;
}

/* Reads up to n bytes, stopping early only at end of file. */
static ssize_t fs_read_full(int fd, char *buf, size_t n)
{
	size_t len = 0;
	while (len < n) {
		ssize_t r = fs_read_some(fd, buf + len, n - len);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	return (ssize_t)len;
}

static int fs_get_content(char **out, size_t *out_len, struct berth_storage_driver *drv,
			  const char *path, size_t max)
{
	struct stat st;
	int fd;
	int rc = fs_open_object(fs_from(drv), path, &fd, &st);
	if (rc != 0)
		return rc;
	if ((uint64_t)st.st_size > max) {
		rc = BERTH_ETOOLARGE;
		goto out_close;
	}

	/* Reads what fstat saw: put_content replaces files by rename, never in place. */
	char *buf = fs_xmalloc((size_t)st.st_size + 1);
	ssize_t len = fs_read_full(fd, buf, (size_t)st.st_size);
	if (len < 0) {
		rc = (int)len;
		free(buf);
		goto out_close;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = (size_t)len;

out_close:
	close(fd);
	return rc;
}

/* Creates a fresh temp file (mode 0644) in dir. */
static int fs_tmp_create(const char *dir, char **tmp, int *fd)
{
	char *name = fs_concat3(dir, FS_TMP_TEMPLATE, "");
	int f = mkostemp(name, O_CLOEXEC);
	if (f < 0) {
		int rc = fs_err_create(errno);
		free(name);
		return rc;
	}
	(void)fchmod(f, 0644); /* mkostemp creates 0600; objects are world-readable like Distribution's */
	*tmp = name;
	*fd = f;
	return 0;
}

/*
 * How often an object write starts over when its directory vanished under it: a concurrent
 * remove of that directory (a DELETE of the same tag or layer link) may take it away between
 * its creation and the temporary file's creation or rename. Each retry creates it again; the
 * write then simply comes after the remove.
 */
#define FS_VANISHED_DIR_RETRIES 16

/* One attempt of fs_put_content_as: BERTH_ENOTFOUND when the directory vanished meanwhile. */
static int fs_put_content_once(const struct fs_driver *d, const char *host, const char *dir,
			       const void *buf, size_t n, enum berth_sync sync)
{
	char *tmp = NULL;
	int fd = -1;

	int rc = fs_mkdir_parents(d, host);
	if (rc != 0)
		return rc;
	rc = fs_tmp_create(dir, &tmp, &fd);
	if (rc != 0)
		return rc;

	rc = fs_write_all(fd, buf, n, NULL);
	if (rc == 0 && sync != BERTH_SYNC_NONE && fsync(fd) != 0)
		rc = fs_err(errno);
	if (close(fd) != 0 && rc == 0)
		rc = fs_err(errno);
	if (rc != 0)
		goto out_unlink_tmp;

	if (rename(tmp, host) != 0) {
		rc = fs_err_create(errno);
		goto out_unlink_tmp;
	}
	/* Makes the rename itself durable. A directory removed since took the object with it:
	 * the write happened, and the remove came after it. */
	rc = sync == BERTH_SYNC_ALL ? fs_fsync_dir(dir) : 0;
	if (rc == BERTH_ENOTFOUND)
		rc = 0;
	goto out_free;

out_unlink_tmp:
	unlink(tmp);
out_free:
	free(tmp);
	return rc;
}

static int fs_put_content_as(struct berth_storage_driver *drv, const char *path, const void *buf,
			     size_t n, enum berth_sync sync)
{
	struct fs_driver *d = fs_from(drv);
	if (!fs_object_path_ok(path))
		return BERTH_EINVALID;

	char *host = fs_host_path(d, path);
	char *dir = fs_dirname(host);
	int rc;
	for (int attempt = 0;; attempt++) {
		rc = fs_put_content_once(d, host, dir, buf, n, sync);
		if (rc != BERTH_ENOTFOUND || attempt == FS_VANISHED_DIR_RETRIES)
			break;
	}
	free(dir);
	free(host);
	return rc;
}

static int fs_put_content(struct berth_storage_driver *drv, const char *path, const void *buf,
			  size_t n)
{
	return fs_put_content_as(drv, path, buf, n, BERTH_SYNC_ALL);
}

/* ---- reader ---- */

static ssize_t fs_reader_read(struct berth_reader *r, void *buf, size_t n)
{
	if (r->fd < 0)
		return BERTH_EINVALID; /* the descriptor was taken by the caller */
	return fs_read_some(r->fd, buf, n);
}

static void fs_reader_close(struct berth_reader *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static int fs_reader(struct berth_reader **out, struct berth_storage_driver *drv, const char *path,
		     uint64_t offset)
{
	struct stat st;
	int fd;
	int rc = fs_open_object(fs_from(drv), path, &fd, &st);
	if (rc != 0)
		return rc;
	if (offset > (uint64_t)st.st_size) {
		rc = BERTH_ERANGE;
		goto err_close;
	}
	if (lseek(fd, (off_t)offset, SEEK_SET) < 0) {
		rc = fs_err(errno);
		goto err_close;
	}

	struct berth_reader *r = fs_xmalloc(sizeof(*r));
	*r = (struct berth_reader){
		.read = fs_reader_read,
		.close = fs_reader_close,
		.fd = fd,
		.size = (uint64_t)st.st_size,
		.offset = offset,
	};
	*out = r;
	return 0;

err_close:
	close(fd);
	return rc;
}

/* ---- writer ---- */

static int fs_write_buffered(struct fs_writer *w, const void *buf, size_t n)
{
	int rc = fs_write_all(w->fd, buf, n, &w->size);
	/* Not for an object read again soon: its writer is the thread that hands the bytes on to
	 * the clients (the pull-through cache's fetch), and the kick may wait on the disk (block
	 * allocation, a full device queue). Its commit comes after the clients have the bytes. */
	if (rc == 0 && !w->cached && w->size - w->kicked >= WRITEBACK_STEP) {
		/* Advisory: an error here resurfaces at commit's fdatasync. */
		sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->size - w->kicked), SYNC_FILE_RANGE_WRITE);
		w->kicked = w->size;
	}
	return rc;
}

/* Writes the whole aligned blocks at the start of p directly, when they may be (fs_direct.h),
 * and says through *done how much of p is written. */
static int fs_write_direct(struct fs_writer *w, const char *p, size_t n, size_t *done)
{
	*done = 0;
	if (w->no_direct || w->size < DIRECT_AFTER || w->size % FS_DIRECT_ALIGN != 0 ||
	    (uintptr_t)p % FS_DIRECT_ALIGN != 0 || n < FS_DIRECT_ALIGN)
		return 0;
	if (!w->direct_on) {
		if (!fs_direct_supported(w->fd) || fs_direct_set(w->fd, 1) != 0) {
			w->no_direct = 1;
			return 0;
		}
		w->direct_on = 1;
	}
	uint64_t before = w->size;
	int fell_back = 0;
	int e = fs_direct_write_all(w->fd, p, n - n % FS_DIRECT_ALIGN, &w->size, &fell_back);
	if (fell_back) {
		w->direct_on = 0;
		w->no_direct = 1;
	}
	*done = (size_t)(w->size - before);
	w->kicked = w->size; /* nothing of it waits for writeback (what fell back, commit syncs) */
	return e ? fs_err(e) : 0;
}

static int fs_writer_write(struct berth_writer *bw, const void *buf, size_t n)
{
	struct fs_writer *w = (struct fs_writer *)bw;
	const char *p = buf;
	size_t done;
	if (w->cancelled)
		return BERTH_EINVALID;
	int rc = fs_write_direct(w, p, n, &done);
	if (rc < 0 || done == n)
		return rc;
	if (w->direct_on) {
		int e = fs_direct_set(w->fd, 0);
		if (e)
			return fs_err(e);
		w->direct_on = 0;
	}
	return fs_write_buffered(w, p + done, n - done);
}

static uint64_t fs_writer_size(struct berth_writer *bw)
{
	return ((struct fs_writer *)bw)->size;
}

static int fs_writer_flush(struct berth_writer *bw)
{
	struct fs_writer *w = (struct fs_writer *)bw;
	return w->cancelled ? BERTH_EINVALID : 0; /* nothing is held back: every write is done */
}

static int fs_writer_commit(struct berth_writer *bw)
{
	struct fs_writer *w = (struct fs_writer *)bw;
	int rc = fs_writer_flush(bw);
	if (rc < 0)
		return rc;
	/* The name is made durable by the move into the blob store (fs_move), not here. */
	return fdatasync(w->fd) == 0 ? 0 : fs_err(errno);
}

static int fs_writer_cancel(struct berth_writer *bw)
{
	struct fs_writer *w = (struct fs_writer *)bw;
	w->cancelled = 1;
	if (unlink(w->host) != 0 && errno != ENOENT)
		return fs_err(errno);
	return 0;
}

static void fs_writer_close(struct berth_writer *bw)
{
	struct fs_writer *w = (struct fs_writer *)bw;
	if (w == NULL)
		return;
	close(w->fd);
	free(w->host);
	free(w);
}

static int fs_writer(struct berth_writer **out, struct berth_storage_driver *drv, const char *path,
		     int append)
{
	struct fs_driver *d = fs_from(drv);
	if (!fs_object_path_ok(path))
		return BERTH_EINVALID;

	char *host = fs_host_path(d, path);
	struct stat st;
	int rc = fs_mkdir_parents(d, host);
	if (rc != 0)
		goto err_free_host;

	int flags = O_CREAT | O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
	int fd = open(host, flags, 0644);
	if (fd < 0) {
		rc = fs_err_create(errno);
		goto err_free_host;
	}
	if (fstat(fd, &st) != 0) {
		rc = fs_err(errno);
		goto err_close;
	}

	struct fs_writer *w = fs_xmalloc(sizeof(*w));
	w->base.write = fs_writer_write;
	w->base.size = fs_writer_size;
	w->base.flush = fs_writer_flush;
	w->base.commit = fs_writer_commit;
	w->base.cancel = fs_writer_cancel;
	w->base.close = fs_writer_close;
	w->base.suspend = NULL; /* flush: the bytes are in the file already */
	w->base.expect = NULL;
	w->base.suspend_noted = 0;
	w->fd = fd;
	w->size = (uint64_t)st.st_size;
	w->direct_on = 0;
	/* An object read again soon (a blob the pull-through cache fetched, which the next pull
	 * reads) stays in the page cache: direct writes would leave it to be read from the disk. */
	w->no_direct = append == BERTH_WRITER_APPEND_CACHED;
	w->cached = append == BERTH_WRITER_APPEND_CACHED;
	w->host = host;
	w->cancelled = 0;
	/* From the last step boundary: a file appended to in pieces smaller than a step (a chunked
	 * upload, one writer per PATCH) still has its bytes handed to writeback as they come. */
	w->kicked = w->size - w->size % WRITEBACK_STEP;
	*out = &w->base;
	return 0;

err_close:
	close(fd);
err_free_host:
	free(host);
	return rc;
}

/* ---- stat / list / walk ---- */

/*
 * A change stamps ctime from the kernel's clock, which may tick coarsely (milliseconds, a second
 * on some filesystems): a second change within the same tick would leave every field as it was.
 * So an object changed within the last FS_RACY_NS has no version yet (as git treats "racily
 * clean" index entries).
 */
#define FS_RACY_NS 1000000000ll

static uint64_t fs_version(const struct stat *st)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000ll + st->st_ctim.tv_nsec;
	int64_t now_ns = (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec;
	if (now_ns - ctime_ns < FS_RACY_NS)
		return 0;
	const uint64_t fields[] = { (uint64_t)st->st_ino, (uint64_t)st->st_dev, (uint64_t)ctime_ns,
				    (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec,
				    (uint64_t)st->st_size, (uint64_t)st->st_nlink };
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the fields' bytes */
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		for (int b = 0; b < 64; b += 8)
			h = (h ^ ((fields[i] >> b) & 0xff)) * 0x100000001b3ull;
	return h ? h : 1;
}

static void fs_stat_fill(const struct stat *st, struct berth_stat *out)
{
	out->is_dir = S_ISDIR(st->st_mode);
	out->size = out->is_dir ? 0 : (uint64_t)st->st_size;
	out->mtime = (int64_t)st->st_mtim.tv_sec;
	out->version = fs_version(st);
}

static int fs_stat(struct berth_stat *out, struct berth_storage_driver *drv, const char *path)
{
	struct fs_driver *d = fs_from(drv);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;

	char *host = fs_host_path(d, path);
	struct stat st;
	int rc = stat(host, &st) == 0 ? 0 : fs_err(errno);
	if (rc == 0)
		fs_stat_fill(&st, out);
	free(host);
	return rc;
}

static int fs_list(struct berth_storage_driver *drv, const char *path, berth_list_cb cb,
		   void *payload)
{
	struct fs_driver *d = fs_from(drv);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;

	char *host = fs_host_path(d, path);
	char **names = NULL;
	size_t count = 0;
	int rc = fs_read_names(host, &names, &count);
	free(host);
	if (rc != 0)
		return rc;

	for (size_t i = 0; i < count && rc == 0; i++) {
		char *child = fs_child_path(path, names[i]);
		if (berth_storage_path_valid(child)) /* skips temp files and foreign names */
			rc = cb(child, payload);
		free(child);
	}
	fs_names_free(names, count);
	return rc;
}

/* Walks the directory at logical path; `nested` tolerates it vanishing mid-walk. */
static int fs_walk_dir(struct fs_driver *d, const char *path, int nested, berth_walk_cb cb,
		       void *payload)
{
	char *host = fs_host_path(d, path);
	char **names = NULL;
	size_t count = 0;
	int rc = fs_read_names(host, &names, &count);
	free(host);
	if (rc != 0)
		return nested && rc == BERTH_ENOTFOUND ? 0 : rc;

	for (size_t i = 0; i < count && rc == 0; i++) {
		char *child = fs_child_path(path, names[i]);
		char *child_host = fs_host_path(d, child);
		struct stat st;
		/* lstat: a symlink is reported as a file and never followed out of the tree. */
		if (berth_storage_path_valid(child) && lstat(child_host, &st) == 0) {
			struct berth_stat bst;
			fs_stat_fill(&st, &bst);
			rc = cb(child, &bst, payload);
			if (rc == 0 && bst.is_dir)
				rc = fs_walk_dir(d, child, 1, cb, payload);
		}
		free(child_host);
		free(child);
	}
	fs_names_free(names, count);
	return rc;
}

static int fs_walk(struct berth_storage_driver *drv, const char *path, berth_walk_cb cb,
		   void *payload)
{
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	return fs_walk_dir(fs_from(drv), path, 0, cb, payload);
}

/* ---- move / remove ---- */

/* 1 if `to` lies strictly inside the tree rooted at `from`. */
static int fs_path_inside(const char *from, const char *to)
{
	size_t n = strlen(from);
	return strncmp(from, to, n) == 0 && to[n] == '/';
}

/* sync other than BERTH_SYNC_ALL: the rename is left to the filesystem to make durable. */
static int fs_move_as(struct berth_storage_driver *drv, const char *from, const char *to,
		      enum berth_sync sync)
{
	struct fs_driver *d = fs_from(drv);
	if (!fs_object_path_ok(from) || !fs_object_path_ok(to) || fs_path_inside(from, to))
		return BERTH_EINVALID;

	char *src = fs_host_path(d, from);
	char *dst = fs_host_path(d, to);
	char *dst_dir = fs_dirname(dst);
	struct stat st;
	int rc = 0;

	/* Checked first so that a missing source does not leave destination parents behind. */
	if (lstat(src, &st) != 0) {
		rc = fs_err(errno);
		goto out;
	}
	if (strcmp(from, to) == 0)
		goto out;
	rc = fs_mkdir_parents(d, dst);
	if (rc != 0)
		goto out;
	if (rename(src, dst) != 0) {
		rc = fs_err_create(errno);
		goto out;
	}
	/* The source directory is not synced: a power cut could at worst bring the source name
	 * back beside the destination (an upload's data file, which purging removes). */
	rc = sync == BERTH_SYNC_ALL ? fs_fsync_dir(dst_dir) : 0;

out:
	free(dst_dir);
	free(dst);
	free(src);
	return rc;
}

static int fs_move(struct berth_storage_driver *drv, const char *from, const char *to)
{
	return fs_move_as(drv, from, to, BERTH_SYNC_ALL);
}

/*
 * How often a recursive remove reads a directory again when it is not empty after all its
 * entries went: a concurrent writer (a PUT of the same tag or layer link) added one meanwhile.
 * Past this many rounds whatever is left arrived after the remove began: the remove is then
 * taken as having come first, and succeeds.
 */
#define FS_REFILLED_DIR_RETRIES 16

static int fs_remove_at(int dirfd, const char *name, unsigned char type);

/*
 * Removes the directory name in dirfd, open as keep (consumed): its entries, then itself (so a
 * crash leaves the directory, maybe emptied in part, never entries without it). Each entry
 * goes as its d_type says: a blob's or a link's directory, holding one file, is a listing, an
 * unlink and a rmdir.
 */
static int fs_remove_dir(int dirfd, const char *name, int keep)
{
	int rc = 0;
	for (int round = 0; rc == 0; round++) {
		/* the previous round read to the end: read again from the start */
		char **names;
		unsigned char *types;
		size_t count;
		if (round > 0 && lseek(keep, 0, SEEK_SET) != 0) {
			rc = fs_err(errno);
			break;
		}
		if ((rc = fs_read_dir(keep, &names, &types, &count)) != 0)
			break;
		for (size_t i = 0; i < count && rc == 0; i++)
			rc = fs_remove_at(keep, names[i], types[i]);
		fs_names_free(names, count);
		free(types);
		if (rc != 0 || unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			break;
		if (errno != ENOTEMPTY && errno != EEXIST)
			rc = fs_err(errno);
		else if (round == FS_REFILLED_DIR_RETRIES)
			break;
	}
	close(keep);
	return rc;
}

/* Removes name in dirfd, recursively if it is a directory; type: its d_type, or DT_UNKNOWN.
 * Never follows symlinks. Whatever a concurrent remove took first counts as removed. */
static int fs_remove_at(int dirfd, const char *name, unsigned char type)
{
	if (type == DT_UNKNOWN) {
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return errno == ENOENT ? 0 : fs_err(errno); /* already gone: fine */
		type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
	}
	if (type != DT_DIR) {
		if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
			return 0;
		if (errno != EISDIR)
			return fs_err(errno);
		/* a directory took its place meanwhile */
	}
	int keep = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (keep >= 0)
		return fs_remove_dir(dirfd, name, keep);
	if (errno == ENOENT)
		return 0;
	if (errno == ENOTDIR || errno == ELOOP) /* a file (or symlink) took its place */
		return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : fs_err(errno);
	return fs_err(errno);
}

static int fs_remove(struct berth_storage_driver *drv, const char *path)
{
	struct fs_driver *d = fs_from(drv);
	if (!fs_object_path_ok(path))
		return BERTH_EINVALID;

	/* Opened as a directory first: what gc and deletes remove are directories. Absent at the
	 * start: BERTH_ENOTFOUND; gone during the remove: removed. */
	char *host = fs_host_path(d, path);
	int rc, keep = open(host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (keep >= 0)
		rc = fs_remove_dir(AT_FDCWD, host, keep);
	else if (errno == ENOTDIR || errno == ELOOP)
		rc = unlink(host) == 0 || errno == ENOENT ? 0 : fs_err(errno);
	else
		rc = fs_err(errno);
	free(host);
	return rc;
}

/* Only the times change: never opens (nor creates) the file. */
static int fs_touch(struct berth_storage_driver *drv, const char *path)
{
	struct fs_driver *d = fs_from(drv);
	if (!fs_object_path_ok(path))
		return BERTH_EINVALID;

	char *host = fs_host_path(d, path);
	int rc = utimensat(AT_FDCWD, host, NULL, 0) == 0 ? 0 : fs_err(errno);
	free(host);
	return rc;
}

/* ---- what only the filesystem shows (fsck) ---- */

static int fs_name_expressible(const char *name)
{
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* rel: the directory's path below the root. */
static void fs_debris_dir(const struct fs_driver *d, const char *rel, const char *skip, int depth,
			  berth_debris_cb cb, void *payload)
{
	char *host = fs_host_path(d, rel);
	DIR *dir = opendir(host);
	if (!dir) {
		if (errno != ENOENT) {
			struct berth_debris e = { BERTH_DEBRIS_UNREADABLE, rel, 1, 0, strerror(errno) };
			cb(&e, payload);
		}
		free(host);
		return;
	}
	free(host);
	struct dirent *ent;
	while ((ent = readdir(dir)) != NULL) {
		const char *name = ent->d_name;
		struct stat st;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    (skip && strcmp(name, skip) == 0) ||
		    fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		char *child = berth_asprintf("%s/%s", strcmp(rel, "/") == 0 ? "" : rel, name);
		struct berth_debris e = { BERTH_DEBRIS_TEMP_FILE, child, S_ISDIR(st.st_mode),
					  (uint64_t)st.st_size, NULL };
		if (strncmp(name, &FS_TMP_TEMPLATE[1], 5) == 0 && S_ISREG(st.st_mode)) {
			cb(&e, payload);
		} else if (!fs_name_expressible(name)) {
			e.kind = BERTH_DEBRIS_UNEXPRESSIBLE;
			cb(&e, payload);
		} else if (S_ISDIR(st.st_mode) && depth < 64) {
			fs_debris_dir(d, child, NULL, depth + 1, cb, payload);
		} else if (S_ISLNK(st.st_mode)) {
			e.kind = BERTH_DEBRIS_SYMLINK;
			cb(&e, payload);
		}
		free(child);
	}
	closedir(dir);
}

static int fs_find_debris(struct berth_storage_driver *drv, const char *path, const char *skip,
			  berth_debris_cb cb, void *payload)
{
	fs_debris_dir(fs_from(drv), path, skip, 0, cb, payload);
	return 0;
}

static int fs_remove_debris(struct berth_storage_driver *drv, const char *path)
{
	const char *name = strrchr(path, '/');
	if (!name || strncmp(name + 1, &FS_TMP_TEMPLATE[1], 5) != 0 || strstr(path, "/../"))
		return BERTH_EINVALID; /* only temp files, which the grammar cannot name */
	char *host = fs_host_path(fs_from(drv), path);
	int rc = unlink(host) == 0 ? 0 : fs_err(errno);
	free(host);
	return rc;
}

static int fs_quarantine(char **where_out, struct berth_storage_driver *drv, const char *path,
			 const char *path_aside, const char *name)
{
	struct fs_driver *d = fs_from(drv);
	char *src = fs_host_path(d, path);
	char *dstdir = fs_host_path(d, path_aside);
	char *dst = NULL;
	int rc = fs_mkdir_all(dstdir, d->root_len);
	if (rc != 0)
		goto out;
	for (int i = 0; i < 1000; i++) {
		struct stat st;
		free(dst);
		dst = i ? berth_asprintf("%s/%s.%d", dstdir, name, i) : berth_asprintf("%s/%s", dstdir, name);
		if (lstat(dst, &st) != 0 && errno == ENOENT)
			break;
	}
	if (rename(src, dst) != 0) {
		rc = fs_err(errno);
		goto out;
	}
	fs_fsync_dir(dstdir);
	/* The object's now empty directory goes (rmdir: only if nothing else is in it). */
	char *dir = fs_dirname(src);
	if (rmdir(dir) == 0) {
		char *parent = fs_dirname(dir);
		fs_fsync_dir(parent);
		free(parent);
	}
	free(dir);
	*where_out = berth_strdup(dst + d->root_len);
	rc = 0;
out:
	free(src);
	free(dstdir);
	free(dst);
	return rc;
}

/* ---- construction ---- */

static void fs_free(struct berth_storage_driver *drv)
{
	struct fs_driver *d = fs_from(drv);
	if (d == NULL)
		return;
	free(d->root);
	free(d);
}

int berth_fs_driver_new(struct berth_storage_driver **out, const char *rootdir)
{
	if (rootdir == NULL || rootdir[0] == '\0')
		return BERTH_EINVALID;

	char *dir = fs_concat3(rootdir, "", "");
	int rc = fs_mkdir_all(dir, 0);
	free(dir);
	if (rc != 0)
		return rc;

	/* Absolute, so that the driver does not depend on the working directory. */
	char *root = realpath(rootdir, NULL);
	if (root == NULL)
		return fs_err(errno);
	struct stat st;
	if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(root);
		return BERTH_EINVALID;
	}
	if (strcmp(root, "/") == 0)
		root[0] = '\0';

	struct fs_driver *d = fs_xmalloc(sizeof(*d));
	*d = (struct fs_driver){
		.base = {
			.version = BERTH_STORAGE_DRIVER_VERSION,
			.name = "filesystem",
			.get_content = fs_get_content,
			.put_content = fs_put_content,
			.reader = fs_reader,
			.writer = fs_writer,
			.stat = fs_stat,
			.list = fs_list,
			.move = fs_move,
			.remove = fs_remove,
			.walk = fs_walk,
			.url_for = NULL,
			.free = fs_free,
			.find_debris = fs_find_debris,
			.remove_debris = fs_remove_debris,
			.quarantine = fs_quarantine,
			.touch = fs_touch,
			.put_content_as = fs_put_content_as,
			.move_as = fs_move_as,
		},
		.root = root,
		.root_len = strlen(root),
	};
	*out = &d->base;
	return 0;
}

/*
 * The storage driver interface: what a backend (filesystem, in-memory, S3) implements.
 * Mirrors Distribution's storagedriver.StorageDriver so that the same logical paths map to
 * the same objects: paths are absolute, '/'-separated, and match ^(/[A-Za-z0-9._-]+)+$
 * (the root itself is "/"). Drivers never see HTTP and never interpret paths beyond that.
 *
 * Contract shared by every slot:
 *  - return 0 or a negative BERTH_E* code (core/err.h); BERTH_ENOTFOUND when the path (or, for
 *    list/walk, the directory) does not exist; BERTH_EINVALID for a path outside the grammar;
 *    BERTH_ENOSPC when the backend is full.
 *  - thread-safe: any slot may be called from several threads at once.
 *  - blocking: drivers are synchronous.
 *  - "directories" are implicit: they exist while something below them exists, and writing a
 *    file creates its parents.
 *
 * Callers use the berth_storage_* wrappers in storage/storage.h, never the slots directly.
 */
#ifndef BERTH_STORAGE_DRIVER_H
#define BERTH_STORAGE_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BERTH_STORAGE_DRIVER_VERSION 1

/* The alignment of address and object offset at which a writer may take bytes without a copy
 * (see struct berth_writer). */
#define BERTH_WRITER_ALIGN 4096u

/* writer()'s append value that appends and hints that the object is read again soon. */
#define BERTH_WRITER_APPEND_CACHED 2

struct berth_storage_driver;

/* What a write or a move must have made durable when it returns (put_content_as, move_as). */
enum berth_sync {
	BERTH_SYNC_ALL,  /* the bytes and the name (put_content, move) */
	BERTH_SYNC_FILE, /* the bytes, before the name can show them; the name later: a crash may
			  * lose the name, never make it show part of the bytes (content that can
			  * be fetched again: the pull-through cache's repository links) */
	BERTH_SYNC_NONE, /* nothing: after a crash the old content, the new, or nothing readable
			  * (what must be visible but need not survive: gc's sweep notices) */
};

struct berth_stat {
	uint64_t size;   /* bytes; 0 for directories */
	int64_t mtime;   /* seconds since the epoch */
	int is_dir;
	/* Changes whenever the object changes (a directory: whenever a child is added or removed),
	 * in this process or another; 0 when the driver cannot promise that (callers then treat
	 * anything derived from the object as possibly stale). Lets listings be cached. */
	uint64_t version;
};

/*
 * A sequential reader over one object, from the offset it was opened at.
 * If `fd` is >= 0 the object is a plain file: the caller may instead take the descriptor
 * (set r->fd = -1 after taking it, so close() does not close it) and serve bytes
 * [offset, size) from it with pread. `size` is the whole object's size, `offset` where reading starts.
 */
struct berth_reader {
	/* Reads up to n bytes into buf. Returns bytes read (> 0), 0 at end, or a BERTH_E* code. */
	ssize_t (*read)(struct berth_reader *r, void *buf, size_t n);
	/* Releases the reader (and its fd, unless taken). Accepts NULL. */
	void (*close)(struct berth_reader *r);
	int fd;
	uint64_t size;
	uint64_t offset;
};

/*
 * An appending writer. Bytes written are not guaranteed visible to readers until flush() or
 * commit();
 * after a crash, a committed writer's bytes are all on storage, an uncommitted one's may be
 * partially there (the caller tracks the valid length itself, as uploads do).
 * A writer is used by one thread at a time, not necessarily the one that opened it.
 */
struct berth_writer {
	/* Appends n bytes. 0 or a BERTH_E* code (BERTH_ENOSPC when full). Bytes whose address and
	 * place in the object are multiples of BERTH_WRITER_ALIGN may go to storage with no copy
	 * (the filesystem driver writes a large object's aligned pieces directly to the device):
	 * large writers should hand their bytes so. */
	int (*write)(struct berth_writer *w, const void *buf, size_t n);
	/* Current total size of the object (including bytes present before an append open). */
	uint64_t (*size)(struct berth_writer *w);
	/* Puts every byte written so far into the object, so readers and later writers see them
	 * (not necessarily durable): a driver may take bytes before it has written them. 0, or the
	 * error of a write that failed after it was taken; size() then tells what is there. */
	int (*flush)(struct berth_writer *w);
	/* Flushes, then makes the bytes written durable on stable storage. The object's name is
	 * not necessarily durable yet: a writer's object is made durable where it belongs by
	 * move(), which makes its destination durable. The writer stays usable. */
	int (*commit)(struct berth_writer *w);
	/* Discards the object being written (removes it). The writer must still be closed. */
	int (*cancel)(struct berth_writer *w);
	/* Releases the writer without committing or cancelling. Accepts NULL. */
	void (*close)(struct berth_writer *w);
	/* Optional (NULL: flush does it; appended). Ends the writing: every byte written is
	 * stored where a later append-open of the same path, in this process or another,
	 * continues after it, but not necessarily as the object readers see (the S3 driver leaves
	 * them the parts of an open multipart upload, as Distribution's driver does between
	 * PATCHes; the next flush or commit makes the object). As durable as flush: S3 parts are
	 * stored, filesystem bytes written, not synced. 0 or a BERTH_E* code; afterwards only
	 * close(), which then stores nothing more. */
	int (*suspend)(struct berth_writer *w);
	/* Optional (NULL: nothing; appended). Announces that n more bytes are coming (a request
	 * body of known length), before the first of them: the driver may start storing them
	 * before they have all come (S3: a part is sent as it fills). If fewer come, close()
	 * stores none of the bytes written since that were not stored already (S3: the part
	 * being sent is abandoned; whole parts stored stay, as after a crash). A hint only: it
	 * cannot fail (a failure to store shows in the write or flush that stores). */
	void (*expect)(struct berth_writer *w, uint64_t n);
	/* Set by suspend() when the driver noted where it left the bytes, so that the next
	 * resume_writer of the path may open it (S3: an upload with parts, of this writer's
	 * own); 0 otherwise (nothing to vouch for: a caller keeps nothing for it). */
	int suspend_noted;
};

/* Called once per entry; return non-zero to stop early (that value is returned by the caller). */
typedef int (*berth_list_cb)(const char *path, void *payload);
typedef int (*berth_walk_cb)(const char *path, const struct berth_stat *st, void *payload);

/* What only the storage medium shows, beyond the objects (find_debris). */
enum berth_debris_kind {
	BERTH_DEBRIS_TEMP_FILE,     /* a temp file an interrupted atomic write left (removable) */
	BERTH_DEBRIS_UNEXPRESSIBLE, /* a file or directory whose name the path grammar cannot
				     * express: invisible to the registry */
	BERTH_DEBRIS_SYMLINK,       /* a symbolic link among the objects */
	BERTH_DEBRIS_UNREADABLE,    /* a directory that cannot be read (reason says why) */
};
struct berth_debris {
	enum berth_debris_kind kind;
	const char *path;   /* below the driver's root, starting with '/'; for TEMP_FILE the
			     * handle remove_debris takes */
	int is_dir;
	uint64_t size;
	const char *reason; /* UNREADABLE: the operating system's reason; else NULL */
};
typedef void (*berth_debris_cb)(const struct berth_debris *e, void *payload);

/* Slots take their outputs first, then the driver, then the inputs (STYLE.md). */
struct berth_storage_driver {
	unsigned version; /* BERTH_STORAGE_DRIVER_VERSION; the struct only ever grows at the end */
	const char *name; /* "filesystem", "inmemory", ... */

	/* Reads a whole object into a new heap buffer (*out, NUL-terminated for convenience,
	 * *out_len excludes the NUL). BERTH_ETOOLARGE (and nothing allocated) if it exceeds max. */
	int (*get_content)(char **out, size_t *out_len, struct berth_storage_driver *d,
			   const char *path, size_t max);
	/* Atomically replaces an object with these bytes: readers see the old or the new content,
	 * never a mix, and a crash leaves one or the other. Durable when it returns. */
	int (*put_content)(struct berth_storage_driver *d, const char *path, const void *buf, size_t n);
	/* Opens a reader at offset. BERTH_ERANGE if offset > size. */
	int (*reader)(struct berth_reader **out, struct berth_storage_driver *d, const char *path,
		      uint64_t offset);
	/* Opens a writer: truncating (append = 0) or appending to an existing object (append = 1,
	 * creating it if absent; BERTH_WRITER_APPEND_CACHED, 2, appends too, with the hint that the
	 * object is read again soon: a driver that can keeps its bytes in memory then, as the
	 * filesystem driver keeps them in the page cache rather than writing them directly). Any
	 * non-zero value appends. */
	int (*writer)(struct berth_writer **out, struct berth_storage_driver *d, const char *path,
		      int append);
	int (*stat)(struct berth_stat *out, struct berth_storage_driver *d, const char *path);
	/* Lists the immediate children of a directory, as full paths, in lexical (strcmp) order of
	 * their names: callers rely on it (a tag list is served in that order without sorting). */
	int (*list)(struct berth_storage_driver *d, const char *path, berth_list_cb cb, void *payload);
	/* Moves an object to a new path, atomically, replacing what is there; the destination's
	 * parents are created. The object is durable at its destination when it returns (that the
	 * source name is gone may not be yet: a crash can at worst leave it behind as well). */
	int (*move)(struct berth_storage_driver *d, const char *from, const char *to);
	/* Removes an object or a whole directory tree. BERTH_ENOTFOUND if absent. */
	int (*remove)(struct berth_storage_driver *d, const char *path);
	/* Visits every file and directory below path (not path itself), depth first, parents
	 * before children, siblings in lexical order. */
	int (*walk)(struct berth_storage_driver *d, const char *path, berth_walk_cb cb, void *payload);
	/* Optional (may be NULL): a URL a client can fetch the object from directly. */
	int (*url_for)(char **out, struct berth_storage_driver *d, const char *path);
	/* Releases the driver. Required. */
	void (*free)(struct berth_storage_driver *d);

	/* Optional slots for fsck, appended (NULL: the driver has nothing of the kind; a caller
	 * gets BERTH_EUNSUPPORTED from the storage.h wrapper). */

	/* Reports the debris below path (depth first), not descending into path's child named
	 * skip (NULL: none). 0, or a BERTH_E* code when path itself cannot be read. */
	int (*find_debris)(struct berth_storage_driver *d, const char *path, const char *skip,
			   berth_debris_cb cb, void *payload);
	/* Removes a temp file find_debris reported (its path). BERTH_ENOTFOUND if gone. */
	int (*remove_debris)(struct berth_storage_driver *d, const char *path);
	/* Moves the object at path aside, below path_aside (a place outside the path grammar the
	 * registry never reads, such as lost+found), as name or, when taken, name.1, name.2, ...;
	 * never deletes anything; the object's now empty directory goes. *where_out (owned): where
	 * it went, below the driver's root. */
	int (*quarantine)(char **where_out, struct berth_storage_driver *d, const char *path,
			  const char *path_aside, const char *name);

	/* Optional (NULL: stat's size; appended). The size a writer append-opened on path would
	 * start at, without opening one: what a suspended writer left (S3: the parts of an
	 * upload left open), else the object's size. BERTH_ENOTFOUND if there is neither. */
	int (*append_size)(uint64_t *out, struct berth_storage_driver *d, const char *path);

	/* 1: every call may wait on a network (s3): the server runs them on its storage workers,
	 * never on the HTTP polling threads. 0: calls are short (local disk, memory) and run
	 * inline, which is faster. */
	int remote;

	/* Optional slot for online garbage collection, appended (NULL: not supported, and
	 * storage.maintenance.gc is refused at start-up with this driver). */

	/* Sets the object's mtime (berth_stat.mtime) to now, without changing its bytes: a later
	 * stat, or walk, in any process reports an mtime no earlier than the clock
	 * (CLOCK_REALTIME_COARSE) read before this call. BERTH_ENOTFOUND if the object is absent
	 * (never creates it). */
	int (*touch)(struct berth_storage_driver *d, const char *path);

	/* Optional (NULL: callers list and stat; appended). Calls cb for every object below path
	 * (objects only, no directories), in no particular order, with its stat (size and mtime;
	 * no version), in as few calls as the medium allows: for S3 one listing without delimiter,
	 * 1,000 keys a request, where list and stat cost a request per directory and per object.
	 * cb's non-zero return stops and is returned. BERTH_ENOTFOUND if nothing is below path. */
	int (*list_tree)(struct berth_storage_driver *d, const char *path, berth_walk_cb cb, void *payload);

	/* Optional slot for a CDN in front of the bucket (middleware.storage cloudfront), appended
	 * (NULL: the driver keeps no objects in a bucket). *out (owned): path's object key in the
	 * bucket, as Distribution's S3BucketKey gives it (rootdirectory + path, no leading '/'). */
	int (*object_key)(char **out, struct berth_storage_driver *d, const char *path);

	/* Optional (NULL: url_for; appended). url_for for one client, whose URL may depend on
	 * where it is (cloudfront's ipfilteredby sends clients inside AWS to S3): client_ip is its
	 * address as the request tells it (X-Forwarded-For, X-Real-Ip, the peer), or NULL. */
	int (*url_for_client)(char **out, struct berth_storage_driver *d, const char *path,
			      const char *client_ip);

	/* Optional slots for uploads whose destination is known before their first byte,
	 * appended (NULL: not supported; callers write elsewhere and move). */

	/* Opens a writer whose bytes become the object at path only when its commit() succeeds,
	 * all at once, replacing what is there: until then, and after cancel(), close() without
	 * a commit, or a crash at any point, path shows what it showed before (never part of the
	 * new bytes). flush() and suspend() answer BERTH_EUNSUPPORTED; commit() may be called
	 * once. Several staged writers may target one path at once (the last commit wins). S3: a
	 * multipart upload on the key itself, completed by commit, aborted by cancel and close;
	 * one a crash left open is invisible, and purge_staged removes it. */
	int (*staged_writer)(struct berth_writer **out, struct berth_storage_driver *d, const char *path);
	/* Discards what staged writers below the directory path left behind (a crash), if they
	 * started before `before` (seconds since the epoch). *purged: how many. */
	int (*purge_staged)(struct berth_storage_driver *d, const char *path, int64_t before,
			    size_t *purged);

	/* Optional (NULL: put_content and move; appended). put_content and move that make durable
	 * on return only what sync says (enum berth_sync): readers, in this process or another,
	 * see the old or the new content, never a mix, as soon as it returns, whatever sync is.
	 * The filesystem driver skips the fsync of the directory after the rename (FILE), and of
	 * the file too (NONE); a move syncs no bytes, so move_as takes NONE as FILE. */
	int (*put_content_as)(struct berth_storage_driver *d, const char *path, const void *buf,
			      size_t n, enum berth_sync sync);
	int (*move_as)(struct berth_storage_driver *d, const char *from, const char *to,
		       enum berth_sync sync);

	/* Optional (NULL: never resumes; appended). An appending writer on path, opened only if
	 * what is stored there is exactly what this process's own last suspend() of a writer on
	 * path left, as the storage shows it now (nothing appended, completed, aborted or
	 * replaced since, by this process or another): 0 with *out, whose size() is what that
	 * suspend left; 0 with *out NULL (nothing opened) when the driver cannot vouch for that
	 * (no such suspend, or it changed); 1 with *out when it changed but the driver can still
	 * position an appending writer as an append-open would (S3: the noted upload, listed
	 * again, holds parts another writer added): the caller's memory no longer holds, the
	 * writer does; or a BERTH_E* code. So what the caller kept in memory at that suspend
	 * (an upload's hash state) still describes the stored bytes when 0 comes back. Each
	 * suspend is vouched for at most once (the next open of path, of any kind, ends it). S3:
	 * one ListParts of the multipart upload the suspend left, compared with the parts it
	 * held, where an append-open lists the key's uploads first. */
	int (*resume_writer)(struct berth_writer **out, struct berth_storage_driver *d, const char *path);
};

/* Constructors (each in its own .c). On success *out belongs to the caller (free via ->free). */

/* Filesystem driver rooted at rootdir (created if missing). Logical path /a/b is rootdir/a/b. */
int berth_fs_driver_new(struct berth_storage_driver **out, const char *rootdir);
/* In-memory driver: everything lives in the process, lost at exit. */
int berth_inmem_driver_new(struct berth_storage_driver **out);

/* What the S3 driver needs, already validated (storage/s3_config.c builds it from storage.s3.*).
 * Strings are borrowed for the call to berth_s3_driver_new only (the driver copies them). */
struct berth_s3_options {
	const char *endpoint;      /* scheme://host[:port], no trailing '/' */
	const char *bucket;
	int path_style;            /* 1: endpoint/bucket/key; 0: bucket.host/key */
	const char *region;
	const char *accesskey, *secretkey, *sessiontoken; /* sessiontoken may be "" */
	const char *rootdirectory; /* "" or a path in the storage grammar */
	int skipverify;            /* do not verify the server's TLS certificate */
	uint64_t chunksize;        /* multipart part size, >= 5 MiB: the one part a writer buffers */
	uint64_t copy_chunksize;   /* part size of a multipart copy, >= 5 MiB */
	uint64_t copy_threshold;   /* objects larger than this are copied by multipart copy */
	const char *encrypt_header;   /* x-amz-server-side-encryption value, or "" */
	const char *keyid;            /* x-amz-server-side-encryption-aws-kms-key-id, or "" */
	const char *storageclass;     /* x-amz-storage-class value, or "" for none */
	const char *objectacl;        /* x-amz-acl value, or "" */
	const char *useragent;        /* or "" for berth's */
	unsigned retries;             /* attempts after the first on 500/503/SlowDown/timeouts */
	long connect_timeout_ms;
	long stall_timeout_s;         /* a transfer making no progress this long fails */
};
/* S3 driver on libcurl (storage/s3.c): the keys are Distribution's (rootdirectory +
 * /docker/registry/v2/...). Does not contact the server: see berth_s3_driver_check. */
int berth_s3_driver_new(struct berth_storage_driver **out, const struct berth_s3_options *opt);
/* One request to the bucket (a one-key listing): 0, or a BERTH_E* code with a one-line reason as
 * its message (core/err.h: bucket missing, credentials refused, server unreachable). Blocks. */
int berth_s3_driver_check(struct berth_storage_driver *d);

/* A walk slot for drivers that only have list and stat (storage/storage.c): one list per
 * directory and one stat per entry, in the order walk promises. */
int berth_storage_walk_generic(struct berth_storage_driver *d, const char *path, berth_walk_cb cb,
			       void *payload);

/* 1 if path matches ^(/[A-Za-z0-9._-]+)+$ or is "/", and has no "." or ".." component. */
int berth_storage_path_valid(const char *path);

#endif

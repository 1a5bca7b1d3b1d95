/*
 * In-memory storage driver: a tree of directory and file nodes behind one mutex, with the
 * filesystem driver's semantics (directories are created by writing below them and, as on
 * disk, stay behind when their last child is removed).
 *
 * File bytes live in reference-counted blobs so that they behave like inodes: put_content
 * swaps in a new blob (open readers keep the old one), a truncating writer empties the blob
 * in place, and readers and writers keep working on their blob across move and remove.
 *
 * Callbacks (list, walk) are never called with the lock held, so they may use the driver.
 */
#include "storage/driver.h"

#include "core/err.h"
#include "core/util.h"
#include "core/vec.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct inmem_blob {
	size_t refs; /* the file node holding it, plus open readers and writers */
	char *data;
	size_t len, cap;
	int64_t mtime;
	uint64_t version;
};

struct inmem_node {
	char *name;
	int is_dir;
	int64_t mtime;            /* directories; a file's mtime lives in its blob */
	uint64_t version;         /* directories: changes with the list of kids */
	struct inmem_blob *blob;  /* files */
	struct inmem_node **kids; /* directories: sorted by strcmp on name */
	size_t nkids, capkids;
};

struct inmem_driver {
	struct berth_storage_driver base;
	pthread_mutex_t lock; /* guards the whole tree and every blob */
	struct inmem_node *root;
};

struct inmem_reader {
	struct berth_reader base;
	struct inmem_driver *d;
	struct inmem_blob *blob;
	uint64_t pos;
};

struct inmem_writer {
	struct berth_writer base;
	struct inmem_driver *d;
	struct inmem_blob *blob;
	char *path; /* for cancel */
	int cancelled;
};

/* A child's logical path and stat, copied out so callbacks run without the lock. */
struct inmem_entry {
	char *path;
	struct berth_stat st;
};

/* ---- allocation ---- */

/* Allocation failure is not recoverable in berth: the project's allocator aborts. */
static void *inmem_xrealloc(void *p, size_t n)
{
	return berth_realloc(p, n);
}

static void *inmem_xmalloc(size_t n)
{
	return inmem_xrealloc(NULL, n);
}

static char *inmem_xstrndup(const char *s, size_t n)
{
	char *c = inmem_xmalloc(n + 1);
	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

static char *inmem_child_path(const char *parent, const char *name)
{
	size_t lp = strcmp(parent, "/") == 0 ? 0 : strlen(parent), ln = strlen(name);
	char *s = inmem_xmalloc(lp + ln + 2);
	memcpy(s, parent, lp);
	s[lp] = '/';
	memcpy(s + lp + 1, name, ln + 1);
	return s;
}

static int64_t inmem_now(void)
{
	return (int64_t)time(NULL);
}

/* Versions are unique across every inmemory driver of the process, so never reused. */
static uint64_t inmem_next_version(void)
{
	static _Atomic uint64_t last;
	return atomic_fetch_add_explicit(&last, 1, memory_order_relaxed) + 1;
}

static struct inmem_driver *inmem_from(struct berth_storage_driver *drv)
{
	return (struct inmem_driver *)drv;
}

/* ---- blobs (all under the driver lock once shared) ---- */

static struct inmem_blob *inmem_blob_new(const void *data, size_t n)
{
	struct inmem_blob *b = inmem_xmalloc(sizeof(*b));
	b->refs = 1;
	b->data = n ? inmem_xmalloc(n) : NULL;
	if (n)
		memcpy(b->data, data, n);
	b->len = b->cap = n;
	b->mtime = inmem_now();
	b->version = inmem_next_version();
	return b;
}

static void inmem_blob_unref(struct inmem_blob *b)
{
	if (--b->refs > 0)
		return;
	free(b->data);
	free(b);
}

static void inmem_blob_append(struct inmem_blob *b, const void *buf, size_t n)
{
	if (n == 0)
		return; /* data may still be NULL: memcpy must not see it */
	if (n > SIZE_MAX - b->len)
		abort(); /* more bytes than memory holds */
	BERTH_VEC_GROW(b->data, b->len + n, b->cap); /* doubling: appends stay amortised O(1) */
	memcpy(b->data + b->len, buf, n);
	b->len += n;
	b->mtime = inmem_now();
	b->version = inmem_next_version();
}

/* ---- tree nodes ---- */

static struct inmem_node *inmem_node_new(const char *name, size_t len, struct inmem_blob *blob)
{
	struct inmem_node *n = inmem_xmalloc(sizeof(*n));
	*n = (struct inmem_node){
		.name = inmem_xstrndup(name, len),
		.is_dir = blob == NULL,
		.mtime = inmem_now(),
		.version = inmem_next_version(),
		.blob = blob,
	};
	return n;
}

static void inmem_node_free(struct inmem_node *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		inmem_node_free(n->kids[i]);
	if (n->blob)
		inmem_blob_unref(n->blob);
	free(n->kids);
	free(n->name);
	free(n);
}

/* strcmp(kid name, name[0..len)) without copying the component. */
static int inmem_name_cmp(const char *kid, const char *name, size_t len)
{
	int c = strncmp(kid, name, len);
	return c != 0 ? c : (kid[len] != '\0');
}

/* Binary search of dir's kids: 1 and *pos = index if found, else 0 and *pos = insertion point. */
static int inmem_kid_find(const struct inmem_node *dir, const char *name, size_t len, size_t *pos)
{
	size_t lo = 0, hi = dir->nkids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = inmem_name_cmp(dir->kids[mid]->name, name, len);
		if (c == 0) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

static void inmem_kid_insert(struct inmem_node *dir, size_t pos, struct inmem_node *kid)
{
	BERTH_VEC_GROW(dir->kids, dir->nkids + 1, dir->capkids);
	memmove(dir->kids + pos + 1, dir->kids + pos, (dir->nkids - pos) * sizeof(*dir->kids));
	dir->kids[pos] = kid;
	dir->nkids++;
	dir->mtime = inmem_now();
	dir->version = inmem_next_version();
}

/* Unlinks and returns the kid called name (which must exist). */
static struct inmem_node *inmem_kid_detach(struct inmem_node *dir, const char *name)
{
	size_t pos;
	inmem_kid_find(dir, name, strlen(name), &pos);
	struct inmem_node *kid = dir->kids[pos];
	memmove(dir->kids + pos, dir->kids + pos + 1, (dir->nkids - pos - 1) * sizeof(*dir->kids));
	dir->nkids--;
	dir->mtime = inmem_now();
	dir->version = inmem_next_version();
	return kid;
}

/* The node at a valid path, or NULL; *parent (if asked) gets its directory (NULL for root). */
static struct inmem_node *inmem_lookup(struct inmem_driver *d, const char *path,
				       struct inmem_node **parent)
{
	struct inmem_node *dir = NULL, *node = d->root;
	for (const char *p = path + 1; *p != '\0';) {
		const char *end = strchrnul(p, '/');
		size_t pos;
		if (!node->is_dir || !inmem_kid_find(node, p, (size_t)(end - p), &pos))
			return NULL;
		dir = node;
		node = node->kids[pos];
		p = *end ? end + 1 : end;
	}
	if (parent)
		*parent = dir;
	return node;
}

/*
 * mkdir -p for the parents of a valid object path: *dir gets the directory that will hold
 * the last component, *leaf that component. BERTH_EEXISTS if a parent is a file.
 */
static int inmem_make_parents(struct inmem_driver *d, const char *path, struct inmem_node **dir,
			      const char **leaf)
{
	struct inmem_node *cur = d->root;
	const char *p = path + 1;
	for (const char *end; (end = strchr(p, '/')) != NULL; p = end + 1) {
		size_t pos, len = (size_t)(end - p);
		if (inmem_kid_find(cur, p, len, &pos)) {
			cur = cur->kids[pos];
			if (!cur->is_dir)
				return BERTH_EEXISTS;
		} else {
			struct inmem_node *n = inmem_node_new(p, len, NULL);
			inmem_kid_insert(cur, pos, n);
			cur = n;
		}
	}
	*dir = cur;
	*leaf = p;
	return 0;
}

/*
 * The file at a valid object path (d->lock held), in *file: 0 when it was there, 1 when it was
 * made (with its parents), holding fresh (the tree then owns it; NULL: an empty blob).
 * BERTH_EEXISTS when the path is a directory or a parent a file.
 */
static int inmem_file_at(struct inmem_node **file, struct inmem_driver *d, const char *path,
			 struct inmem_blob *fresh)
{
	struct inmem_node *dir;
	const char *leaf;
	size_t pos;
	int rc = inmem_make_parents(d, path, &dir, &leaf);
	if (rc != 0)
		return rc;
	if (inmem_kid_find(dir, leaf, strlen(leaf), &pos)) {
		if (dir->kids[pos]->is_dir)
			return BERTH_EEXISTS;
		*file = dir->kids[pos];
		return 0;
	}
	struct inmem_blob *blob = fresh ? fresh : inmem_blob_new(NULL, 0);
	inmem_kid_insert(dir, pos, inmem_node_new(leaf, strlen(leaf), blob));
	*file = dir->kids[pos];
	return 1;
}

/* Paths naming an object: valid and not the root itself. */
static int inmem_object_path_ok(const char *path)
{
	return berth_storage_path_valid(path) && strcmp(path, "/") != 0;
}

static void inmem_stat_fill(const struct inmem_node *n, struct berth_stat *st)
{
	st->is_dir = n->is_dir;
	st->size = n->is_dir ? 0 : n->blob->len;
	st->mtime = n->is_dir ? n->mtime : n->blob->mtime;
	st->version = n->is_dir ? n->version : n->blob->version;
}

/* ---- get_content / put_content ---- */

static int inmem_get_content(char **out, size_t *out_len, struct berth_storage_driver *drv,
			     const char *path, size_t max)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(path))
		return BERTH_EINVALID;

	int rc = 0;
	pthread_mutex_lock(&d->lock);
	struct inmem_node *n = inmem_lookup(d, path, NULL);
	if (n == NULL || n->is_dir) {
		rc = BERTH_ENOTFOUND;
	} else if (n->blob->len > max) {
		rc = BERTH_ETOOLARGE;
	} else {
		char *buf = inmem_xmalloc(n->blob->len + 1);
		if (n->blob->len)
			memcpy(buf, n->blob->data, n->blob->len);
		buf[n->blob->len] = '\0';
		*out = buf;
		*out_len = n->blob->len;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int inmem_put_content(struct berth_storage_driver *drv, const char *path, const void *buf,
			     size_t n)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(path))
		return BERTH_EINVALID;

	/* Copied outside the lock; swapped in whole, so readers see old or new, never a mix. */
	struct inmem_blob *blob = inmem_blob_new(buf, n);
	struct inmem_node *file;

	pthread_mutex_lock(&d->lock);
	int rc = inmem_file_at(&file, d, path, blob);
	if (rc < 0) {
		inmem_blob_unref(blob);
	} else if (rc == 0) { /* the file was there: blob replaces its bytes */
		inmem_blob_unref(file->blob);
		file->blob = blob;
	}
	pthread_mutex_unlock(&d->lock);
	return rc < 0 ? rc : 0;
}

/* ---- reader ---- */

static ssize_t inmem_reader_read(struct berth_reader *br, void *buf, size_t n)
{
	struct inmem_reader *r = (struct inmem_reader *)br;
	pthread_mutex_lock(&r->d->lock);
	size_t avail = r->pos < r->blob->len ? r->blob->len - (size_t)r->pos : 0;
	if (n > avail)
		n = avail;
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (n)
		memcpy(buf, r->blob->data + r->pos, n);
	r->pos += n;
	pthread_mutex_unlock(&r->d->lock);
	return (ssize_t)n;
}

static void inmem_reader_close(struct berth_reader *br)
{
	struct inmem_reader *r = (struct inmem_reader *)br;
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->d->lock);
	inmem_blob_unref(r->blob);
	pthread_mutex_unlock(&r->d->lock);
	free(r);
}

static int inmem_reader(struct berth_reader **out, struct berth_storage_driver *drv,
			const char *path, uint64_t offset)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(path))
		return BERTH_EINVALID;

	int rc = 0;
	pthread_mutex_lock(&d->lock);
	struct inmem_node *n = inmem_lookup(d, path, NULL);
	if (n == NULL || n->is_dir) {
		rc = BERTH_ENOTFOUND;
	} else if (offset > n->blob->len) {
		rc = BERTH_ERANGE;
	} else {
		struct inmem_reader *r = inmem_xmalloc(sizeof(*r));
		r->base.read = inmem_reader_read;
		r->base.close = inmem_reader_close;
		r->base.fd = -1; /* not a plain file: no sendfile */
		r->base.size = n->blob->len;
		r->base.offset = offset;
		r->d = d;
		r->blob = n->blob;
		r->blob->refs++;
		r->pos = offset;
		*out = &r->base;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* ---- writer ---- */

static int inmem_writer_write(struct berth_writer *bw, const void *buf, size_t n)
{
	struct inmem_writer *w = (struct inmem_writer *)bw;
	if (w->cancelled)
		return BERTH_EINVALID;
	/* Appends in place, so readers opened after write() returns see the bytes. */
	pthread_mutex_lock(&w->d->lock);
	inmem_blob_append(w->blob, buf, n);
	pthread_mutex_unlock(&w->d->lock);
	return 0;
}

static uint64_t inmem_writer_size(struct berth_writer *bw)
{
	struct inmem_writer *w = (struct inmem_writer *)bw;
	pthread_mutex_lock(&w->d->lock);
	uint64_t size = w->blob->len;
	pthread_mutex_unlock(&w->d->lock);
	return size;
}

static int inmem_writer_commit(struct berth_writer *bw)
{
	return ((struct inmem_writer *)bw)->cancelled ? BERTH_EINVALID : 0;
}

static int inmem_writer_flush(struct berth_writer *bw)
{
	return ((struct inmem_writer *)bw)->cancelled ? BERTH_EINVALID : 0;
}

static int inmem_writer_cancel(struct berth_writer *bw)
{
	struct inmem_writer *w = (struct inmem_writer *)bw;
	struct inmem_node *dir;
	w->cancelled = 1;
	/* Like unlink(2) on the path: removes whatever file is there now. */
	pthread_mutex_lock(&w->d->lock);
	struct inmem_node *n = inmem_lookup(w->d, w->path, &dir);
	if (n != NULL && !n->is_dir)
		inmem_node_free(inmem_kid_detach(dir, n->name));
	pthread_mutex_unlock(&w->d->lock);
	return 0;
}

static void inmem_writer_close(struct berth_writer *bw)
{
	struct inmem_writer *w = (struct inmem_writer *)bw;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->d->lock);
	inmem_blob_unref(w->blob);
	pthread_mutex_unlock(&w->d->lock);
	free(w->path);
	free(w);
}

static int inmem_writer(struct berth_writer **out, struct berth_storage_driver *drv,
			const char *path, int append)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(path))
		return BERTH_EINVALID;

	struct inmem_node *file;

	pthread_mutex_lock(&d->lock);
	int rc = inmem_file_at(&file, d, path, NULL);
	if (rc < 0)
		goto out_unlock;
	int made = rc;
	rc = 0;
	struct inmem_blob *blob = file->blob;
	if (!append && !made) { /* O_TRUNC: same object, emptied; its memory is released */
		free(blob->data);
		blob->data = NULL;
		blob->len = blob->cap = 0;
		blob->mtime = inmem_now();
		blob->version = inmem_next_version();
	}
	blob->refs++;

	struct inmem_writer *w = inmem_xmalloc(sizeof(*w));
	w->base.write = inmem_writer_write;
	w->base.size = inmem_writer_size;
	w->base.flush = inmem_writer_flush;
	w->base.commit = inmem_writer_commit;
	w->base.cancel = inmem_writer_cancel;
	w->base.close = inmem_writer_close;
	w->base.suspend = NULL;
	w->base.expect = NULL;
	w->base.suspend_noted = 0;
	w->d = d;
	w->blob = blob;
	w->path = inmem_xstrndup(path, strlen(path));
	w->cancelled = 0;
	*out = &w->base;

out_unlock:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* ---- stat / list / walk ---- */

static int inmem_stat(struct berth_stat *out, struct berth_storage_driver *drv, const char *path)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;

	pthread_mutex_lock(&d->lock);
	struct inmem_node *n = inmem_lookup(d, path, NULL);
	if (n != NULL)
		inmem_stat_fill(n, out);
	pthread_mutex_unlock(&d->lock);
	return n != NULL ? 0 : BERTH_ENOTFOUND;
}

static int inmem_touch(struct berth_storage_driver *drv, const char *path)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(path))
		return BERTH_EINVALID;

	pthread_mutex_lock(&d->lock);
	struct inmem_node *n = inmem_lookup(d, path, NULL);
	if (n != NULL) {
		if (n->is_dir)
			n->mtime = inmem_now();
		else
			n->blob->mtime = inmem_now();
	}
	pthread_mutex_unlock(&d->lock);
	return n != NULL ? 0 : BERTH_ENOTFOUND;
}

static void inmem_entries_free(struct inmem_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].path);
	free(e);
}

/* Copies out the children of the directory at path, in lexical order. */
static int inmem_snapshot(struct inmem_driver *d, const char *path, struct inmem_entry **out,
			  size_t *count)
{
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	struct inmem_node *dir = inmem_lookup(d, path, NULL);
	if (dir == NULL || !dir->is_dir) {
		rc = BERTH_ENOTFOUND;
		goto out_unlock;
	}
	struct inmem_entry *e = inmem_xmalloc(dir->nkids * sizeof(*e));
	for (size_t i = 0; i < dir->nkids; i++) {
		e[i].path = inmem_child_path(path, dir->kids[i]->name);
		inmem_stat_fill(dir->kids[i], &e[i].st);
	}
	*out = e;
	*count = dir->nkids;

out_unlock:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int inmem_list(struct berth_storage_driver *drv, const char *path, berth_list_cb cb,
		      void *payload)
{
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;

	struct inmem_entry *e;
	size_t n;
	int rc = inmem_snapshot(inmem_from(drv), path, &e, &n);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cb(e[i].path, payload);
	inmem_entries_free(e, n);
	return rc;
}

/* Walks one directory level at a time; `nested` tolerates a directory vanishing mid-walk. */
static int inmem_walk_dir(struct inmem_driver *d, const char *path, int nested, berth_walk_cb cb,
			  void *payload)
{
	struct inmem_entry *e;
	size_t n;
	int rc = inmem_snapshot(d, path, &e, &n);
	if (rc != 0)
		return nested && rc == BERTH_ENOTFOUND ? 0 : rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = cb(e[i].path, &e[i].st, payload);
		if (rc == 0 && e[i].st.is_dir)
			rc = inmem_walk_dir(d, e[i].path, 1, cb, payload);
	}
	inmem_entries_free(e, n);
	return rc;
}

static int inmem_walk(struct berth_storage_driver *drv, const char *path, berth_walk_cb cb,
		      void *payload)
{
	if (!berth_storage_path_valid(path))
		return BERTH_EINVALID;
	return inmem_walk_dir(inmem_from(drv), path, 0, cb, payload);
}

/* ---- move / remove ---- */

/* 1 if `to` lies strictly inside the tree rooted at `from`. */
static int inmem_path_inside(const char *from, const char *to)
{
	size_t n = strlen(from);
	return strncmp(from, to, n) == 0 && to[n] == '/';
}

/* rename(2)'s rule: a file replaces a file, a directory replaces an empty directory. */
static int inmem_can_replace(const struct inmem_node *src, const struct inmem_node *dst)
{
	return src->is_dir == dst->is_dir && (!dst->is_dir || dst->nkids == 0);
}

static int inmem_move(struct berth_storage_driver *drv, const char *from, const char *to)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(from) || !inmem_object_path_ok(to) || inmem_path_inside(from, to))
		return BERTH_EINVALID;

	struct inmem_node *src_dir, *dst_dir;
	const char *leaf;
	size_t pos;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	struct inmem_node *src = inmem_lookup(d, from, &src_dir);
	if (src == NULL) {
		rc = BERTH_ENOTFOUND;
		goto out_unlock;
	}
	if (strcmp(from, to) == 0)
		goto out_unlock;
	rc = inmem_make_parents(d, to, &dst_dir, &leaf);
	if (rc != 0)
		goto out_unlock;
	if (inmem_kid_find(dst_dir, leaf, strlen(leaf), &pos)) {
		/* Cannot be src or one of its ancestors: those are never empty or a file. */
		if (!inmem_can_replace(src, dst_dir->kids[pos])) {
			rc = BERTH_EEXISTS;
			goto out_unlock;
		}
		inmem_node_free(inmem_kid_detach(dst_dir, leaf));
	}

	/* Positions are looked up again: make_parents and the replace may have shifted them. */
	inmem_kid_detach(src_dir, src->name);
	free(src->name);
	src->name = inmem_xstrndup(leaf, strlen(leaf));
	inmem_kid_find(dst_dir, leaf, strlen(leaf), &pos);
	inmem_kid_insert(dst_dir, pos, src);

out_unlock:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int inmem_remove(struct berth_storage_driver *drv, const char *path)
{
	struct inmem_driver *d = inmem_from(drv);
	if (!inmem_object_path_ok(path))
		return BERTH_EINVALID;

	struct inmem_node *dir;
	pthread_mutex_lock(&d->lock);
	struct inmem_node *n = inmem_lookup(d, path, &dir);
	if (n != NULL)
		inmem_node_free(inmem_kid_detach(dir, n->name));
	pthread_mutex_unlock(&d->lock);
	return n != NULL ? 0 : BERTH_ENOTFOUND;
}

/* ---- construction ---- */

static void inmem_free(struct berth_storage_driver *drv)
{
	struct inmem_driver *d = inmem_from(drv);
	if (d == NULL)
		return;
	inmem_node_free(d->root);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int berth_inmem_driver_new(struct berth_storage_driver **out)
{
	struct inmem_driver *d = inmem_xmalloc(sizeof(*d));
	*d = (struct inmem_driver){
		.base = {
			.version = BERTH_STORAGE_DRIVER_VERSION,
			.name = "inmemory",
			.get_content = inmem_get_content,
			.put_content = inmem_put_content,
			.reader = inmem_reader,
			.writer = inmem_writer,
			.stat = inmem_stat,
			.list = inmem_list,
			.move = inmem_move,
			.remove = inmem_remove,
			.walk = inmem_walk,
			.url_for = NULL,
			.free = inmem_free,
			.touch = inmem_touch,
		},
		.root = inmem_node_new("", 0, NULL),
	};
	if (pthread_mutex_init(&d->lock, NULL) != 0) {
		inmem_node_free(d->root);
		free(d);
		return BERTH_ERROR;
	}
	*out = &d->base;
	return 0;
}

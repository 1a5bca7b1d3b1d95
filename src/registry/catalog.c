/*
 * The registry's catalog of repositories (tag lists: taglist.c), served from a snapshot of the
 * repositories tree that several berth instances on one store keep valid:
 *  - each instance bumps the store's catalog generation (BERTH_CATALOG_GENERATION, one durable
 *    write) when a repository may have appeared (a link written into a repository it does not
 *    know to exist) or gone (a repository delete), so a catalog request checks the snapshot
 *    with one stat (filesystem) or one HEAD (S3) of that object, however many repositories;
 *  - writers that do not bump it (Distribution on the same store) are seen by a look at the
 *    directories the walk listed (their versions; a new walk where the driver has none) at
 *    most every foreign_ns. The look runs in the background (registry/looks.c): the request
 *    that finds it due answers from the snapshot, which the look replaces when it is done, so
 *    such writers are seen within foreign_ns and one walk (two, when one began just before).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "registry/repo_walk.h"
#include "storage/storage.h"

/* How often the directories are looked at for writers that do not bump the generation. */
#define CATALOG_FOREIGN_NS (2ull * 1000000000ull)

/* The directories a walk listed and their versions (storage/driver.h) before listing. */
struct catalog_walk {
	struct berth_strvec dirs;
	uint64_t *versions;
	size_t alloc;
	int unversioned; /* some directory had none: the walk cannot be checked later */
};

struct known_repo {
	char *name;
};

/* A snapshot's names, shared with the readers still sending a page of it (and the look). */
struct catalog_snap {
	struct berth_catalog_list pub; /* first: the public view is the snapshot */
	_Atomic unsigned refs;
	struct berth_strvec names;
	struct catalog_walk walked; /* what the look checks */
};

static void walk_release(struct catalog_walk *w)
{
	berth_strvec_release(&w->dirs);
	free(w->versions);
	memset(w, 0, sizeof(*w));
}

static void snap_unref(struct catalog_snap *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	berth_strvec_release(&s->names);
	walk_release(&s->walked);
	free(s);
}

void berth_catalog_list_release(const struct berth_catalog_list *l)
{
	snap_unref((struct catalog_snap *)l);
}

struct berth_catalog_cache {
	pthread_mutex_t lock; /* guards the snapshot, and serializes walks */
	struct catalog_snap *snap; /* NULL until the first walk */
	uint64_t snap_seq;                  /* when the snapshot's walk began (next_seq) */
	uint64_t next_seq;
	int looking;                        /* a look is queued or running */
	uint64_t changes_seen;              /* changes when the snapshot was taken */
	struct berth_generation generation; /* the store's, read before the walk */
	uint64_t checked_ns;                /* when the directories were last seen unchanged */
	uint64_t foreign_ns;
	/* Repositories this process made appear (or wrote into), while no repository delete
	 * happened anywhere since: writing into them again changes no catalog. */
	_Atomic uint64_t changes; /* this process's appearances and deletes */
	pthread_mutex_t known_lock;
	struct berth_map known;             /* struct known_repo */
	struct berth_generation deletions;  /* BERTH_REPO_DELETIONS when `known` was started */
};

struct berth_catalog_cache *berth_catalog_cache_new(void)
{
	struct berth_catalog_cache *c = berth_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->known_lock, NULL);
	c->known = (struct berth_map)BERTH_MAP_INIT(sizeof(struct known_repo), 0);
	c->foreign_ns = CATALOG_FOREIGN_NS;
	return c;
}

void berth_catalog_cache_free(struct berth_catalog_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->known_lock);
	snap_unref(c->snap);
	berth_map_release(&c->known);
	free(c);
}

void berth_catalog_set_foreign_interval(struct berth_registry *r, uint64_t ns)
{
	pthread_mutex_lock(&r->catalog->lock);
	r->catalog->foreign_ns = ns;
	pthread_mutex_unlock(&r->catalog->lock);
}

/* ---- telling the other instances ---- */

/* The repository a link below a repository's _layers or _manifests belongs to, into name
 * (BERTH_PATH_MAX bytes); 0 for any other path (an _uploads staging link). */
static int repo_of(char *name, const char *path)
{
	const char *root = BERTH_REPOS_ROOT "/";
	if (strncmp(path, root, strlen(root)) != 0)
		return 0;
	const char *rel = path + strlen(root), *p = rel;
	while ((p = strchr(p, '/')) != NULL) {
		p++;
		if (*p != '_')
			continue;
		if (strncmp(p, "_layers/", 8) != 0 && strncmp(p, "_manifests/", 11) != 0)
			return 0;
		size_t n = (size_t)(p - 1 - rel);
		if (n == 0 || n >= BERTH_PATH_MAX)
			return 0;
		memcpy(name, rel, n);
		name[n] = '\0';
		return 1;
	}
	return 0;
}

static void catalog_changed(struct berth_registry *r)
{
	atomic_fetch_add_explicit(&r->catalog->changes, 1, memory_order_relaxed);
	berth_generation_bump(r->driver, BERTH_CATALOG_GENERATION);
}

/*
 * Called after the link is written. The repository is known to exist while no repository
 * delete happened since this process saw it exist; the deletions generation is checked after
 * the write, so a delete that came before the write is always seen: either here, or by its
 * own bump of the catalog generation coming after this write. One stat per link written, and
 * a durable write only when the repository may be new to the catalog.
 */
void berth_catalog_link_written(struct berth_registry *r, const char *path)
{
	struct berth_catalog_cache *c = r->catalog;
	char name[BERTH_PATH_MAX];
	if (!repo_of(name, path))
		return;
	pthread_mutex_lock(&c->known_lock);
	int known = berth_map_find(&c->known, name) != NULL;
	struct berth_generation seen = c->deletions;
	pthread_mutex_unlock(&c->known_lock);

	int none_deleted = berth_generation_unchanged(&seen, r->driver, BERTH_REPO_DELETIONS);
	struct berth_generation fresh = { 0 };
	if (!none_deleted && berth_generation_read(&fresh, r->driver, BERTH_REPO_DELETIONS) < 0)
		fresh.present = -1; /* unreadable: matches nothing, so the set restarts next time */
	if (!known || !none_deleted)
		catalog_changed(r);

	pthread_mutex_lock(&c->known_lock);
	if (!berth_generation_equal(&seen, &c->deletions)) {
		/* another thread restarted the set meanwhile: leave it to it */
	} else if (none_deleted) {
		c->deletions.version = seen.version;
		berth_map_add(&c->known, name, NULL);
	} else {
		/* Start again from the deletions seen now; name is not added: a delete may have come
		 * between this write and that read. */
		berth_map_release(&c->known);
		c->deletions = fresh;
	}
	pthread_mutex_unlock(&c->known_lock);
}

void berth_catalog_repo_deleted(struct berth_registry *r)
{
	/* Deletions first: a writer that misses this bump writes before the catalog's bump. */
	berth_generation_bump(r->driver, BERTH_REPO_DELETIONS);
	catalog_changed(r);
}

/* ---- the walk ---- */

/* Records dir's version, taken before it is listed: a child added after the stat changes it. */
static int note_dir(struct catalog_walk *w, struct berth_registry *r, const char *dir)
{
	struct berth_stat st;
	int rc = berth_storage_stat(&st, r->driver, dir);
	if (rc < 0)
		return rc;
	BERTH_VEC_GROW(w->versions, w->dirs.n + 1, w->alloc);
	w->versions[w->dirs.n] = st.version;
	berth_strvec_push(&w->dirs, dir);
	w->unversioned |= st.version == 0;
	return 0;
}

/* The walk of the repositories tree (registry/repo_walk.h), noting each directory's version. */
struct dir_walk {
	struct berth_registry *r;
	struct berth_strvec *out;
	struct catalog_walk *w;
};

static int enter_dir(const char *dir, void *payload)
{
	struct dir_walk *c = payload;
	/* a look's walk gives up at shutdown */
	if (strcmp(dir, BERTH_REPOS_ROOT) != 0 && berth_looks_stopping(c->r))
		return BERTH_ERROR;
	return note_dir(c->w, c->r, dir);
}

static void found_repo(const char *name, void *payload)
{
	struct dir_walk *c = payload;
	berth_strvec_push(c->out, name);
}

struct tree_ctx {
	struct berth_registry *reg;
	struct berth_strvec *out;
};

/* A file listed below the repositories root: the repository it is in, when below _layers or
 * _manifests (as the directory walk finds them), pushed once for a run of files in one
 * repository. */

static int collect_file(const char *path, const struct berth_stat *st, void *payload)
{
	(void)st;
	struct tree_ctx *t = payload;
	struct berth_strvec *out = t->out;
	char name[BERTH_PATH_MAX];
	if (berth_looks_stopping(t->reg)) /* a look's walk gives up at shutdown */
		return BERTH_ERROR;
	if (!repo_of(name, path))
		return 0;
	if (out->n == 0 || strcmp(out->items[out->n - 1], name) != 0)
		berth_strvec_push(out, name);
	return 0;
}

static int catalog_walk(struct berth_strvec *out, struct catalog_walk *w, struct berth_registry *r)
{
	int rc;
	if (berth_storage_can_list_tree(r->driver)) {
		/* One listing of every object (S3: ~1,000 keys a request) instead of one per
		 * directory; it gives no directory versions, so the next look walks again. */
		struct tree_ctx t = { r, out };
		w->unversioned = 1;
		rc = berth_storage_list_tree(r->driver, BERTH_REPOS_ROOT, collect_file, &t);
	} else {
		struct dir_walk c = { r, out, w };
		struct berth_repo_walk walk = { .entering = enter_dir, .found = found_repo,
						.payload = &c };
		rc = berth_repo_walk(r->driver, &walk);
	}
	if (rc == BERTH_ENOTFOUND) {
		/* No repositories yet: the root's appearance is what will change. */
		walk_release(w);
		w->unversioned = 1;
		rc = 0;
	}
	if (rc < 0)
		return rc;
	berth_strvec_sort_unique(out);
	return 0;
}

/* ---- the snapshot ---- */

/*
 * Whether the directories the walk listed all keep their versions. A repository appearing or
 * going, through any process on the same store, adds or removes an entry in one of them; a
 * stat per directory costs less than listing it.
 */
static int dirs_unchanged(struct berth_registry *r, const struct catalog_walk *w)
{
	struct berth_stat st;
	if (w->unversioned)
		return 0;
	for (size_t i = 0; i < w->dirs.n; i++)
		if (berth_looks_stopping(r) || berth_storage_stat(&st, r->driver, w->dirs.items[i]) < 0 ||
		    st.version != w->versions[i])
			return 0;
	return 1;
}

/* Whether the snapshot holds against this process and the other berth instances (c->lock
 * held): one stat of the generation. Other writers are the look's. */
static int snapshot_holds(struct berth_registry *r, uint64_t changes)
{
	struct berth_catalog_cache *c = r->catalog;
	if (!c->snap || changes != c->changes_seen)
		return 0;
	return berth_generation_unchanged(&c->generation, r->driver, BERTH_CATALOG_GENERATION);
}

/* Walks the store into a new snapshot; the generation is read first, so a bump during the walk
 * is seen by the next request. Needs no lock. */
static int snapshot_walk(struct catalog_snap **out, struct berth_generation *gen, struct berth_registry *r)
{
	struct berth_strvec fresh = { 0 };
	struct catalog_walk w = { 0 };
	int rc = berth_generation_read(gen, r->driver, BERTH_CATALOG_GENERATION);
	if (rc == 0)
		rc = catalog_walk(&fresh, &w, r);
	if (rc < 0) {
		berth_strvec_release(&fresh);
		walk_release(&w);
		return rc;
	}
	struct catalog_snap *snap = berth_calloc(1, sizeof(*snap));
	snap->names = fresh;
	snap->pub.n = fresh.n;
	snap->pub.names = (const char *const *)snap->names.items;
	snap->walked = w;
	atomic_init(&snap->refs, 1);
	*out = snap;
	return 0;
}

/* Makes snap the snapshot (c->lock held), taking over its reference. */
static void snapshot_install(struct berth_catalog_cache *c, struct catalog_snap *snap,
			     const struct berth_generation *gen, uint64_t changes, uint64_t seq)
{
	snap_unref(c->snap);
	c->snap = snap;
	c->snap_seq = seq;
	c->changes_seen = changes;
	c->generation = *gen;
	/* Counted from the walk's end: a walk longer than foreign_ns (a large bucket) would
	 * otherwise follow the last at once. */
	c->checked_ns = berth_now_ns();
}

/* Walks again, in the request (c->lock held): the snapshot does not hold. */
static int snapshot_take(struct berth_registry *r, uint64_t changes)
{
	struct berth_catalog_cache *c = r->catalog;
	struct catalog_snap *snap;
	struct berth_generation gen;
	uint64_t seq = ++c->next_seq;
	int rc = snapshot_walk(&snap, &gen, r);
	if (rc == 0)
		snapshot_install(c, snap, &gen, changes, seq);
	return rc;
}

/*
 * The look for writers that bump no generation, on the looks' thread: the directories' versions
 * (one stat each) or, where they have none, a new walk, whose snapshot replaces the one served
 * unless a newer walk (a request's, after a bump) replaced it meanwhile.
 */
static void catalog_look(void *arg)
{
	struct berth_registry *r = arg;
	struct berth_catalog_cache *c = r->catalog;
	pthread_mutex_lock(&c->lock);
	if (berth_looks_stopping(r)) {
		c->looking = 0;
		pthread_mutex_unlock(&c->lock);
		return;
	}
	struct catalog_snap *seen = c->snap, *fresh = NULL;
	atomic_fetch_add_explicit(&seen->refs, 1, memory_order_relaxed);
	uint64_t seq = ++c->next_seq;
	uint64_t changes = atomic_load_explicit(&c->changes, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);

	struct berth_generation gen;
	int same = dirs_unchanged(r, &seen->walked), rc = 0;
	if (!same)
		rc = snapshot_walk(&fresh, &gen, r);

	pthread_mutex_lock(&c->lock);
	if (same) {
		if (c->snap == seen)
			c->checked_ns = berth_now_ns();
	} else if (rc == 0) {
		if (seq > c->snap_seq) {
			snapshot_install(c, fresh, &gen, changes, seq);
			fresh = NULL;
		}
	} else if (!berth_looks_stopping(r)) {
		berth_warn("catalog: cannot walk the repositories: %s", berth_strerror(rc));
		c->checked_ns = berth_now_ns(); /* the next look after the interval */
	}
	c->looking = 0;
	pthread_mutex_unlock(&c->lock);
	snap_unref(seen);
	snap_unref(fresh);
}

/* 1 when the look is due, and then marks it taken (c->lock held, the snapshot holds): the
 * caller queues it once the lock is released (look_queue). */
static int look_due(struct berth_catalog_cache *c)
{
	if (c->looking || berth_now_ns() - c->checked_ns < c->foreign_ns)
		return 0;
	c->looking = 1;
	return 1;
}

/* Queues the look look_due marked (no lock held: the queue may start its thread). */
static void look_queue(struct berth_registry *r)
{
	struct berth_catalog_cache *c = r->catalog;
	if (berth_looks_submit(r, catalog_look, r) == 0)
		return;
	pthread_mutex_lock(&c->lock);
	c->looking = 0;
	pthread_mutex_unlock(&c->lock);
}

int berth_catalog_get(const struct berth_catalog_list **out, struct berth_registry *r)
{
	struct berth_catalog_cache *c = r->catalog;
	int rc = 0, look = 0;
	uint64_t changes = atomic_load_explicit(&c->changes, memory_order_relaxed);

	pthread_mutex_lock(&c->lock);
	if (!snapshot_holds(r, changes))
		rc = snapshot_take(r, changes);
	else
		look = look_due(c);
	if (rc == 0) {
		atomic_fetch_add_explicit(&c->snap->refs, 1, memory_order_relaxed);
		*out = &c->snap->pub;
	}
	pthread_mutex_unlock(&c->lock);
	if (look)
		look_queue(r);
	return rc;
}

int berth_catalog(struct berth_strvec *out, struct berth_registry *r)
{
	const struct berth_catalog_list *l;
	int rc = berth_catalog_get(&l, r);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < l->n; i++)
		berth_strvec_push(out, l->names[i]);
	berth_catalog_list_release(l);
	return 0;
}

/*
 * A repository's tag list, cached.
 *
 * Listing 10,000 tags means reading a directory of 10,000 entries and checking that each tag
 * has its current link, so the result is kept per repository and served again while it still
 * holds. It holds while the tags directory's version (storage/driver.h: it changes whenever a
 * tag directory comes or goes, whoever did it) is the one seen when the list was built, and
 * this process has not written the repository's tags since (a tag moving to another manifest
 * leaves the directory as it was, and so does the current link of a half-written tag arriving).
 * When the driver gives no version (the filesystem, for a second after a change; S3 never), the
 * list is kept with Redis: every berth instance bumps the repository's generation there
 * after changing its tags, and a list is used while the generation is unchanged, for at most
 * FOREIGN_NS (writers that do not bump it: Distribution). Without Redis, on a driver whose
 * directories never have a version (S3), the same is done with a generation kept in the store
 * (registry/generation.c), one per repository, which berth instances bump when a tag appears or
 * is deleted (a tag moving leaves the list as it was): an unchanged list costs one stat (one
 * HEAD) of it, and at most every foreign_ns a look in the background (registry/looks.c) lists
 * the tags again for writers that do not bump it, the request answering from the list it has.
 * Without either, nothing would tell that another process changed the tags, and the list is
 * not served again; it is kept only for
 * the next build, which takes its tags as complete (a tag keeps its current link until the tag
 * is deleted, which removes its whole directory) and checks only new ones. A first build, with
 * a driver that lists every object below a directory at once (S3), reads the current links
 * from that one listing: no request per tag. Tag directories left without a current link are
 * re-checked on every use, so one whose link another process writes later appears at once.
 *
 * Only tags whose current link exists are listed: a tag write cut short by a crash leaves a
 * tag directory without it, and such a tag resolves to nothing (Distribution lists it anyway).
 *
 * Entries are shared: readers take a reference, so an entry replaced or evicted meanwhile stays
 * valid until they are done. The cache is bounded in entries and bytes (LRU).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/lru.h"
#include "core/map.h"
#include "core/util.h"
#include "registry/paths.h"
#include "registry/reference.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

#define FOREIGN_NS (2ull * 1000000000ull)
#define MAX_ENTRIES 1024
#define MAX_BYTES (32u << 20)

struct tag_entry {
	struct berth_tag_list pub; /* first: the public view is the entry */
	_Atomic unsigned refs;     /* the cache's own reference plus readers' */
	char *name;
	uint64_t version;          /* of the tags directory when listed; 0 if unknown */
	uint64_t generation;       /* the shared one (Redis) read before listing */
	int has_generation;
	uint64_t taken_ns;
	int servable;              /* else kept only to speed up the next build (build's known) */
	/* Checked against the store's generation of the repository's tags (drivers whose
	 * directories have no version, without Redis): */
	int has_stored;
	struct berth_generation stored; /* read before listing */
	int looking;               /* a look at it is queued or running (under the cache's lock) */
	uint64_t looked_ns;        /* when it was last listed or looked at (under the lock) */
	size_t bytes;
	char *strings;             /* the tags, NUL-separated, which pub.tags points into */
	struct berth_strvec incomplete; /* tag directories without a current link */
	struct berth_lru_node lru;
};

/* A table slot: the name lives in the entry. */
struct slot {
	const char *name;
	struct tag_entry *e;
};

struct berth_taglist_cache {
	pthread_mutex_t lock;
	struct berth_map table; /* struct slot */
	struct berth_lru lru;
	size_t count, bytes;
	/* Bumped whenever this process changes some repository's tags: a list built while it
	 * moved may predate the change and is served but not kept. */
	_Atomic uint64_t changes;
	_Atomic uint64_t foreign_ns; /* how often a stored-generation list is looked at again */
};

struct berth_taglist_cache *berth_taglist_cache_new(void)
{
	struct berth_taglist_cache *c = berth_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->table = (struct berth_map)BERTH_MAP_INIT_REF(sizeof(struct slot));
	atomic_init(&c->foreign_ns, FOREIGN_NS);
	return c;
}

void berth_tags_set_foreign_interval(struct berth_registry *r, uint64_t ns)
{
	atomic_store(&r->tag_lists->foreign_ns, ns);
}

static void entry_unref(struct tag_entry *e)
{
	if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(e->name);
	free(e->strings);
	berth_strvec_release(&e->incomplete);
	free((void *)e->pub.tags);
	free((void *)e->pub.json);
	free(e);
}

void berth_taglist_cache_free(struct berth_taglist_cache *c)
{
	if (!c)
		return;
	for (struct berth_lru_node *n = c->lru.head, *next; n; n = next) {
		next = n->next;
		entry_unref(BERTH_LRU_ENTRY(n, struct tag_entry, lru));
	}
	berth_map_release(&c->table);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void berth_tag_list_release(const struct berth_tag_list *l)
{
	entry_unref((struct tag_entry *)l);
}

/* ---- the table and the LRU (caller holds the lock) ---- */

static struct tag_entry *find(struct berth_taglist_cache *c, const char *name)
{
	struct slot *sl = berth_map_find(&c->table, name);
	return sl ? sl->e : NULL;
}

static void detach(struct berth_taglist_cache *c, struct tag_entry *e)
{
	berth_map_remove(&c->table, e->name);
	berth_lru_unlink(&c->lru, &e->lru);
	c->count--;
	c->bytes -= e->bytes;
	entry_unref(e);
}

static void insert(struct berth_taglist_cache *c, struct tag_entry *e)
{
	struct tag_entry *old = find(c, e->name);
	if (old)
		detach(c, old);
	while (c->lru.tail && (c->count >= MAX_ENTRIES || c->bytes + e->bytes > MAX_BYTES))
		detach(c, BERTH_LRU_ENTRY(c->lru.tail, struct tag_entry, lru));
	atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	((struct slot *)berth_map_add(&c->table, e->name, NULL))->e = e;
	berth_lru_push_front(&c->lru, &e->lru);
	c->count++;
	c->bytes += e->bytes;
}

/* Keeps a list just built, unless it would take more than a quarter of the budget. */
static void keep(struct berth_taglist_cache *c, struct tag_entry *e)
{
	pthread_mutex_lock(&c->lock);
	if (e->bytes <= MAX_BYTES / 4)
		insert(c, e);
	pthread_mutex_unlock(&c->lock);
}

/* ---- building a list ---- */

struct collect_ctx {
	struct berth_registry *reg;
	const char *name;
	const struct tag_entry *known; /* a list built before: its tags had their current link */
	struct berth_strvec tags, incomplete;
	int rc;
};

static int cmp_key_str(const void *key, const void *item)
{
	return strcmp(key, *(const char *const *)item);
}

/* 1 if the sorted strings hold s. */
static int sorted_has(const char *const *v, size_t n, const char *s)
{
	return n && bsearch(s, v, n, sizeof(*v), cmp_key_str) != NULL;
}

/* 1 if the earlier list has the tag. */
static int known_complete(const struct tag_entry *known, const char *tag)
{
	return known && sorted_has(known->pub.tags, known->pub.n, tag);
}

int berth_tag_current_stat(struct berth_stat *out, struct berth_registry *r, const char *name,
			   const char *tag)
{
	char link[BERTH_PATH_MAX];
	int rc = berth_path_tag_current(link, name, tag);
	if (rc == 0)
		rc = berth_storage_stat(out, r->driver, link);
	if (rc == 0 && out->is_dir)
		rc = BERTH_ENOTFOUND;
	return rc;
}

int berth_tag_pushed(int64_t *mtime_out, struct berth_registry *r, const char *name, const char *tag)
{
	struct berth_stat st;
	/* The link is rewritten on every push of the tag, never otherwise. */
	int rc = berth_tag_current_stat(&st, r, name, tag);
	if (rc == 0)
		*mtime_out = st.mtime;
	return rc;
}

/* 1 if the tag has its current link, 0 if not, or a BERTH_E* code. */
static int tag_complete(struct berth_registry *r, const char *name, const char *tag)
{
	struct berth_stat st;
	int rc = berth_tag_current_stat(&st, r, name, tag);
	if (rc == BERTH_ENOTFOUND || rc == BERTH_EINVALID)
		return 0;
	return rc < 0 ? rc : 1;
}

/* Keeps a tag directory that names a valid tag and holds its current link. */
static int collect_tag(const char *path, void *payload)
{
	struct collect_ctx *ctx = payload;
	const char *tag = strrchr(path, '/') + 1;
	if (berth_looks_stopping(ctx->reg)) { /* a look's build gives up at shutdown */
		ctx->rc = BERTH_ERROR;
		return ctx->rc;
	}
	if (!berth_tag_valid(tag))
		return 0;
	/* A tag with its current link keeps it until the tag is deleted (its whole directory goes). */
	int rc = known_complete(ctx->known, tag) ? 1 : tag_complete(ctx->reg, ctx->name, tag);
	if (rc < 0)
		ctx->rc = rc;
	else
		berth_strvec_push(rc ? &ctx->tags : &ctx->incomplete, tag);
	return ctx->rc;
}

/* The entry's strings, pointer array and JSON ({"name":...,"tags":[...]}) from sorted tags.
 * Names and tags need no JSON escaping: their grammars allow none of '"', '\\' or controls. */
static struct tag_entry *entry_from(const char *name, const struct berth_strvec *tags)
{
	struct tag_entry *e = berth_calloc(1, sizeof(*e));
	size_t chars = 0;
	for (size_t i = 0; i < tags->n; i++)
		chars += strlen(tags->items[i]) + 1;
	e->strings = berth_malloc(chars ? chars : 1);
	const char **ptrs = berth_calloc(tags->n ? tags->n : 1, sizeof(*ptrs));
	struct berth_buf json = BERTH_BUF_INIT(SIZE_MAX);
	berth_buf_printf(&json, "{\"name\":\"%s\",\"tags\":[", name);
	char *p = e->strings;
	for (size_t i = 0; i < tags->n; i++) {
		size_t len = strlen(tags->items[i]);
		memcpy(p, tags->items[i], len + 1);
		ptrs[i] = p;
		p += len + 1;
		berth_buf_printf(&json, i ? ",\"%s\"" : "\"%s\"", tags->items[i]);
	}
	berth_buf_append(&json, "]}", 2);
	e->pub.n = tags->n;
	e->pub.tags = ptrs;
	e->pub.json = berth_buf_detach(&json, &e->pub.json_len);
	e->name = berth_strdup(name);
	e->bytes = sizeof(*e) + strlen(name) + chars + tags->n * sizeof(*ptrs) + e->pub.json_len;
	atomic_init(&e->refs, 1);
	return e;
}

struct tree_ctx {
	struct berth_registry *reg;
	size_t dir_len;
	struct berth_strvec complete, seen; /* tags with a current link; every tag directory */
};

/* One object below the tags directory: <dir>/<tag>/current/link, or another file of a tag. */
static int tree_file(const char *path, const struct berth_stat *st, void *payload)
{
	struct tree_ctx *t = payload;
	(void)st;
	const char *tag = path + t->dir_len + 1, *slash = strchr(tag, '/');
	char name[BERTH_PATH_MAX];
	if (berth_looks_stopping(t->reg)) /* a build gives up at shutdown (before the next page) */
		return BERTH_ERROR;
	if (slash == NULL || (size_t)(slash - tag) >= sizeof(name))
		return 0;
	memcpy(name, tag, (size_t)(slash - tag));
	name[slash - tag] = '\0';
	if (berth_tag_valid(name))
		berth_strvec_push(strcmp(slash, "/current/link") == 0 ? &t->complete : &t->seen, name);
	return 0;
}

/*
 * Collects the tags from every object below the tags directory at once (a driver with
 * list_tree: on S3, one listing of 1,000 keys a request instead of a listing and then a HEAD of
 * each tag's current link, which made a cold list of 10,000 tags take 10,000 requests).
 */
static int collect_tree(struct collect_ctx *ctx, const char *dir)
{
	struct tree_ctx t = { .reg = ctx->reg, .dir_len = strlen(dir) };
	int rc = berth_storage_list_tree(ctx->reg->driver, dir, tree_file, &t);
	if (rc == 0) {
		berth_strvec_sort_unique(&t.complete);
		berth_strvec_sort_unique(&t.seen);
		ctx->tags = t.complete;
		t.complete = (struct berth_strvec){ 0 };
		for (size_t i = 0; i < t.seen.n; i++) {
			if (!sorted_has((const char *const *)ctx->tags.items, ctx->tags.n, t.seen.items[i]))
				berth_strvec_push(&ctx->incomplete, t.seen.items[i]);
		}
	}
	berth_strvec_release(&t.complete);
	berth_strvec_release(&t.seen);
	return rc;
}

/* Lists the tags directory (whose version was seen before listing began). known, if not NULL,
 * is a list built before whose tags need no check of their current link. */
static int build(struct tag_entry **out, struct berth_registry *r, const char *name, const char *dir,
		 const struct tag_entry *known, uint64_t version, int has_generation, uint64_t generation)
{
	struct collect_ctx ctx = { r, name, known, { 0 }, { 0 }, 0 };
	int rc;
	if (known == NULL && berth_storage_can_list_tree(r->driver))
		rc = collect_tree(&ctx, dir);
	else
		rc = berth_storage_list(r->driver, dir, collect_tag, &ctx);
	if (rc == 0 && ctx.rc < 0)
		rc = ctx.rc;
	if (rc == 0) {
		*out = entry_from(name, &ctx.tags); /* drivers list in strcmp order: already sorted */
		(*out)->version = version;
		(*out)->has_generation = has_generation;
		(*out)->generation = generation;
		(*out)->taken_ns = berth_now_ns();
		(*out)->incomplete = ctx.incomplete;
		ctx.incomplete = (struct berth_strvec){ 0 };
	}
	berth_strvec_release(&ctx.tags);
	berth_strvec_release(&ctx.incomplete);
	return rc;
}

/* Whether the entry may be kept: a version to check against, or a shared generation. */
static int checkable(uint64_t version, int has_generation)
{
	return version || has_generation;
}

/* Whether the tag directories without a current link still have none (a stat of each). */
static int incomplete_unchanged(struct berth_registry *r, const struct tag_entry *e)
{
	for (size_t i = 0; i < e->incomplete.n; i++)
		if (tag_complete(r, e->name, e->incomplete.items[i]) != 0)
			return 0;
	return 1;
}

static int still_valid(struct berth_registry *r, const struct tag_entry *e, const struct berth_stat *st,
		       int has_generation, uint64_t generation)
{
	if (!e->servable)
		return 0;
	if (e->version ? e->version != st->version
		       : !e->has_generation || !has_generation || e->generation != generation ||
				 berth_now_ns() - e->taken_ns >=
					 atomic_load_explicit(&r->tag_lists->foreign_ns, memory_order_relaxed))
		return 0;
	return incomplete_unchanged(r, e);
}

/* ---- where the store's generation tells (no directory versions, no Redis) ---- */

/* Drivers whose directories never have a version: those that list a whole tree at once, the
 * object stores (S3), where a directory is only a key prefix. */
static int dirs_unversioned(struct berth_registry *r)
{
	return berth_storage_can_list_tree(r->driver);
}

/* Builds name's list afresh, after reading the generation (so a bump during the build is seen
 * by the next check). known as for build(). */
static int build_stored(struct tag_entry **out, struct berth_registry *r, const char *name,
			const struct tag_entry *known)
{
	char dir[BERTH_PATH_MAX], gpath[BERTH_PATH_MAX];
	struct berth_generation gen;
	int rc;
	if ((rc = berth_path_tags_dir(dir, name)) < 0 || (rc = berth_path_tags_generation(gpath, name)) < 0 ||
	    (rc = berth_generation_read(&gen, r->driver, gpath)) < 0 ||
	    (rc = build(out, r, name, dir, known, 0, 0, 0)) < 0)
		return rc;
	(*out)->has_stored = 1;
	(*out)->stored = gen;
	(*out)->looked_ns = (*out)->taken_ns;
	return 0;
}

struct tags_look {
	struct berth_registry *reg;
	char *name;
};

/*
 * The look at a kept list for writers that bump no generation (on the looks' thread): the tags
 * are listed again, as a build that knows the kept list, and the new list replaces it unless
 * something replaced or dropped it meanwhile (this process changing the repository's tags
 * drops it first). A repository whose tags are gone loses its list.
 */
static void tags_look(void *arg)
{
	struct tags_look *k = arg;
	struct berth_registry *r = k->reg;
	struct berth_taglist_cache *c = r->tag_lists;
	struct tag_entry *e = NULL, *fresh = NULL;

	pthread_mutex_lock(&c->lock);
	if (!berth_looks_stopping(r) && (e = find(c, k->name)) != NULL)
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	if (e) {
		int rc = build_stored(&fresh, r, k->name, e);
		pthread_mutex_lock(&c->lock);
		if (find(c, k->name) == e) {
			if (rc == 0 && fresh->bytes <= MAX_BYTES / 4) {
				fresh->servable = 1;
				insert(c, fresh); /* replaces e */
			} else if (rc == 0 || rc == BERTH_ENOTFOUND) {
				detach(c, e); /* too large to keep now, or gone */
			} else {
				e->looked_ns = berth_now_ns(); /* the next look after the interval */
			}
		}
		e->looking = 0;
		pthread_mutex_unlock(&c->lock);
		entry_unref(fresh);
		entry_unref(e);
	}
	free(k->name);
	free(k);
}

/* Queues the look at e (the caller holds a reference) when it is due; outside the cache's lock,
 * since the queue may start its thread. */
static void look_if_due(struct berth_registry *r, struct tag_entry *e)
{
	struct berth_taglist_cache *c = r->tag_lists;
	uint64_t interval = atomic_load_explicit(&c->foreign_ns, memory_order_relaxed);
	pthread_mutex_lock(&c->lock);
	int due = !e->looking && find(c, e->name) == e && berth_now_ns() - e->looked_ns >= interval;
	if (due)
		e->looking = 1;
	pthread_mutex_unlock(&c->lock);
	if (!due)
		return;
	struct tags_look *k = berth_calloc(1, sizeof(*k));
	k->reg = r;
	k->name = berth_strdup(e->name);
	if (berth_looks_submit(r, tags_look, k) == 0)
		return;
	pthread_mutex_lock(&c->lock);
	e->looking = 0;
	pthread_mutex_unlock(&c->lock);
	free(k->name);
	free(k);
}

/* berth_tags_get where the store's generation tells: one stat of it while the list holds. */
static int get_stored(const struct berth_tag_list **out, struct berth_registry *r, const char *name)
{
	struct berth_taglist_cache *c = r->tag_lists;
	char gpath[BERTH_PATH_MAX];
	struct berth_generation seen = { 0 };
	int rc;

	if ((rc = berth_path_tags_generation(gpath, name)) < 0)
		return rc;
	uint64_t changes = atomic_load_explicit(&c->changes, memory_order_acquire);
	pthread_mutex_lock(&c->lock);
	struct tag_entry *e = find(c, name);
	if (e) {
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
		seen = e->stored;
	}
	pthread_mutex_unlock(&c->lock);
	if (e && e->servable && e->has_stored && berth_generation_unchanged(&seen, r->driver, gpath) &&
	    incomplete_unchanged(r, e)) {
		look_if_due(r, e);
		pthread_mutex_lock(&c->lock);
		if (find(c, name) == e)
			berth_lru_touch(&c->lru, &e->lru);
		pthread_mutex_unlock(&c->lock);
		*out = &e->pub;
		return 0;
	}
	struct tag_entry *fresh;
	rc = build_stored(&fresh, r, name, e);
	entry_unref(e);
	if (rc < 0)
		return rc;
	fresh->servable = atomic_load_explicit(&c->changes, memory_order_acquire) == changes;
	keep(c, fresh);
	*out = &fresh->pub;
	return 0;
}

void berth_tags_added_or_removed(struct berth_registry *r, const char *name)
{
	char path[BERTH_PATH_MAX];
	if (dirs_unversioned(r) && berth_path_tags_generation(path, name) == 0)
		berth_generation_bump(r->driver, path);
}

void berth_tags_repo_deleted(struct berth_registry *r, const char *name)
{
	char path[BERTH_PATH_MAX];
	/* gone rather than bumped (nothing else would remove it): an instance holding a list with
	 * the generation present sees the change; one that saw it absent, at its next look */
	if (dirs_unversioned(r) && berth_path_tags_generation(path, name) == 0)
		(void)berth_storage_remove(r->driver, path);
}

int berth_tags_get(const struct berth_tag_list **out, struct berth_registry *r, const char *name)
{
	struct berth_taglist_cache *c = r->tag_lists;
	char dir[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc;

	if ((rc = berth_path_tags_dir(dir, name)) < 0)
		return rc;
	uint64_t changes = atomic_load_explicit(&c->changes, memory_order_acquire);
	uint64_t generation = 0;
	int has_generation = berth_reg_redis_tags_generation(r, name, &generation);
	if (!has_generation && dirs_unversioned(r))
		return get_stored(out, r, name);
	if ((rc = berth_storage_stat(&st, r->driver, dir)) < 0)
		return rc;
	if (!st.is_dir)
		return BERTH_ENOTFOUND;

	pthread_mutex_lock(&c->lock);
	struct tag_entry *e = find(c, name);
	if (e && still_valid(r, e, &st, has_generation, generation)) {
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
		berth_lru_touch(&c->lru, &e->lru);
		pthread_mutex_unlock(&c->lock);
		*out = &e->pub;
		return 0;
	}
	struct tag_entry *known = e;
	if (known)
		atomic_fetch_add_explicit(&known->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);

	rc = build(&e, r, name, dir, known, st.version, has_generation, generation);
	entry_unref(known);
	if (rc < 0)
		return rc;
	/* Kept even when it cannot be checked (S3 without Redis): then never served again, but
	 * the next build takes its tags as complete and checks only new ones. */
	e->servable = atomic_load_explicit(&c->changes, memory_order_acquire) == changes &&
		      checkable(st.version, has_generation);
	keep(c, e);
	*out = &e->pub;
	return 0;
}

void berth_tags_changed(struct berth_registry *r, const char *name)
{
	struct berth_taglist_cache *c = r->tag_lists;
	berth_reg_redis_tags_changed(r, name); /* every other instance's list goes too */
	atomic_fetch_add_explicit(&c->changes, 1, memory_order_acq_rel);
	pthread_mutex_lock(&c->lock);
	struct tag_entry *e = find(c, name);
	if (e)
		detach(c, e);
	pthread_mutex_unlock(&c->lock);
}

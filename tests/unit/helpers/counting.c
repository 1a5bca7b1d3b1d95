/* The counting driver (helpers/counting.h). */
#include "helpers/counting.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/vec.h"
#include "helpers/tmproot.h"
#include "registry/paths.h"
#include "registry/registry.h"

static struct berth_counting_driver *counting(struct berth_storage_driver *d)
{
	return (struct berth_counting_driver *)d;
}

static struct berth_storage_driver *inner(struct berth_storage_driver *d)
{
	return counting(d)->inner;
}

/* Counts a call of the owner in *counter, any other thread's as background. */
static void count(struct berth_storage_driver *d, _Atomic unsigned *counter)
{
	if (pthread_equal(pthread_self(), counting(d)->owner))
		atomic_fetch_add(counter, 1);
	else
		atomic_fetch_add(&counting(d)->background, 1);
}

/* Holds another thread's listing while the gate is closed. */
static void gate(struct berth_storage_driver *d)
{
	struct berth_counting_driver *c = counting(d);
	if (pthread_equal(pthread_self(), c->owner))
		return;
	pthread_mutex_lock(&c->gate_lock);
	if (c->gate_closed) {
		c->gate_held++;
		pthread_cond_broadcast(&c->gate_cv);
		while (c->gate_closed)
			pthread_cond_wait(&c->gate_cv, &c->gate_lock);
		c->gate_held--;
	}
	pthread_mutex_unlock(&c->gate_lock);
}

static int c_get(char **o, size_t *l, struct berth_storage_driver *d, const char *p, size_t m)
{
	count(d, &counting(d)->gets);
	return inner(d)->get_content(o, l, inner(d), p, m);
}

static int c_put(struct berth_storage_driver *d, const char *p, const void *b, size_t n)
{
	if (strcmp(p, BERTH_CATALOG_GENERATION) == 0)
		atomic_fetch_add(&counting(d)->catalog_generation_puts, 1);
	if (strncmp(p, BERTH_STATE_ROOT "/tags/", strlen(BERTH_STATE_ROOT "/tags/")) == 0)
		atomic_fetch_add(&counting(d)->tags_generation_puts, 1);
	return inner(d)->put_content(inner(d), p, b, n);
}

static int c_reader(struct berth_reader **o, struct berth_storage_driver *d, const char *p, uint64_t off)
{
	return inner(d)->reader(o, inner(d), p, off);
}

static int c_writer(struct berth_writer **o, struct berth_storage_driver *d, const char *p, int a)
{
	return inner(d)->writer(o, inner(d), p, a);
}

static int c_stat(struct berth_stat *o, struct berth_storage_driver *d, const char *p)
{
	count(d, &counting(d)->stats);
	int rc = inner(d)->stat(o, inner(d), p);
	if (rc == 0 && o->is_dir && d->list_tree)
		o->version = 0; /* an object store's directory is only a key prefix */
	return rc;
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Waits on gate_cv until *n reaches want (gate_lock held); 0 if not within 30 s. */
static int wait_count(struct berth_counting_driver *c, const unsigned *n, unsigned want)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	int rc = 0;
	while (*n < want && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&c->gate_cv, &c->gate_lock, &until);
	return *n >= want;
}

/* Keeps p among the paths listed (berth_counting_listed). */
static void record_listing(struct berth_counting_driver *c, const char *p)
{
	char *copy = strdup(p);
	if (!copy)
		return;
	pthread_mutex_lock(&c->gate_lock);
	BERTH_VEC_GROW(c->listed, c->n_listed + 1, c->listed_alloc);
	c->listed[c->n_listed++] = copy;
	pthread_mutex_unlock(&c->gate_lock);
}

/*
 * Holds one of the first c->barrier listings of a repository's revisions until all of them
 * have come: so many repositories are being read at once (one per thread of the mark phase's
 * team), and no thread has started another. One that will not fail is held on until every
 * failing one has returned its error.
 */
static void meet(struct berth_counting_driver *c, int failing)
{
	pthread_mutex_lock(&c->gate_lock);
	if (c->met < c->barrier) {
		c->met++;
		c->met_failing += failing;
		pthread_cond_broadcast(&c->gate_cv);
		wait_count(c, &c->met, c->barrier);
		if (!failing)
			wait_count(c, &c->failed, c->met_failing);
	}
	pthread_mutex_unlock(&c->gate_lock);
}

/* A failing listing has returned its error (see meet). */
static int listing_failed(struct berth_storage_driver *d)
{
	struct berth_counting_driver *c = counting(d);
	pthread_mutex_lock(&c->gate_lock);
	c->failed++;
	pthread_cond_broadcast(&c->gate_cv);
	pthread_mutex_unlock(&c->gate_lock);
	return BERTH_ERROR;
}

static int c_list(struct berth_storage_driver *d, const char *p, berth_list_cb cb, void *pl)
{
	count(d, &counting(d)->lists);
	gate(d);
	int failing = 0;
	for (const char *const *f = counting(d)->fail; f && *f && !failing; f++)
		failing = fnmatch(*f, p, 0) == 0;
	record_listing(counting(d), p);
	if (strstr(p, "/_manifests/revisions/"))
		meet(counting(d), failing);
	if (failing)
		return listing_failed(d);
	return inner(d)->list(inner(d), p, cb, pl);
}

struct tree_ctx {
	berth_walk_cb cb;
	void *payload;
	int any;
};

static int tree_file(const char *path, const struct berth_stat *st, void *payload)
{
	struct tree_ctx *t = payload;
	if (st->is_dir)
		return 0;
	t->any = 1;
	return t->cb(path, st, t->payload);
}

/* list_tree as an object store answers it: every object below path, from the walk. */
static int c_list_tree(struct berth_storage_driver *d, const char *p, berth_walk_cb cb, void *pl)
{
	count(d, &counting(d)->list_trees);
	gate(d);
	struct tree_ctx t = { cb, pl, 0 };
	int rc = inner(d)->walk(inner(d), p, tree_file, &t);
	return rc == 0 && !t.any ? BERTH_ENOTFOUND : rc;
}

static int c_move(struct berth_storage_driver *d, const char *f, const char *t)
{
	return inner(d)->move(inner(d), f, t);
}

static int c_remove(struct berth_storage_driver *d, const char *p)
{
	return inner(d)->remove(inner(d), p);
}

static int c_walk(struct berth_storage_driver *d, const char *p, berth_walk_cb cb, void *pl)
{
	return inner(d)->walk(inner(d), p, cb, pl);
}

static void c_free(struct berth_storage_driver *d)
{
	struct berth_counting_driver *c = counting(d);
	inner(d)->free(inner(d));
	for (size_t i = 0; i < c->n_listed; i++)
		free(c->listed[i]);
	free(c->listed);
	pthread_cond_destroy(&c->gate_cv);
	pthread_mutex_destroy(&c->gate_lock);
	free(c);
}

struct berth_counting_driver *berth_counting_driver_new(const char *root, int object_store)
{
	struct berth_storage_driver *fs = NULL;
	if (berth_fs_driver_new(&fs, root) < 0)
		return NULL;
	struct berth_counting_driver *c = calloc(1, sizeof(*c));
	if (!c) {
		fs->free(fs);
		return NULL;
	}
	c->base = (struct berth_storage_driver){
		.version = BERTH_STORAGE_DRIVER_VERSION, .name = "counting", .get_content = c_get,
		.put_content = c_put, .reader = c_reader, .writer = c_writer, .stat = c_stat,
		.list = c_list, .move = c_move, .remove = c_remove, .walk = c_walk, .free = c_free,
		.list_tree = object_store ? c_list_tree : NULL,
	};
	c->inner = fs;
	c->owner = pthread_self();
	pthread_mutex_init(&c->gate_lock, NULL);
	pthread_cond_init(&c->gate_cv, NULL);
	return c;
}

void berth_counting_reset(struct berth_counting_driver *c)
{
	atomic_store(&c->stats, 0);
	atomic_store(&c->lists, 0);
	atomic_store(&c->list_trees, 0);
	atomic_store(&c->gets, 0);
}

void berth_counting_gate_close(struct berth_counting_driver *c)
{
	pthread_mutex_lock(&c->gate_lock);
	c->gate_closed = 1;
	pthread_mutex_unlock(&c->gate_lock);
}

int berth_counting_gate_wait(struct berth_counting_driver *c, unsigned n)
{
	pthread_mutex_lock(&c->gate_lock);
	int held = wait_count(c, &c->gate_held, n);
	pthread_mutex_unlock(&c->gate_lock);
	return held;
}

void berth_counting_gate_open(struct berth_counting_driver *c)
{
	pthread_mutex_lock(&c->gate_lock);
	c->gate_closed = 0;
	pthread_cond_broadcast(&c->gate_cv);
	pthread_mutex_unlock(&c->gate_lock);
}

unsigned berth_counting_listed(struct berth_counting_driver *c, const char *prefix)
{
	unsigned n = 0;
	pthread_mutex_lock(&c->gate_lock);
	for (size_t i = 0; i < c->n_listed; i++)
		n += starts_with(c->listed[i], prefix);
	pthread_mutex_unlock(&c->gate_lock);
	return n;
}

struct berth_registry *berth_counting_registry_new(struct berth_counting_driver **driver_out,
						   const char *root, int object_store)
{
	struct berth_counting_driver *c = berth_counting_driver_new(root, object_store);
	if (!c)
		return NULL;
	struct berth_registry *r = NULL;
	struct berth_registry_config cfg = { .driver = &c->base, .delete_enabled = 1 };
	if (berth_registry_new(&r, &cfg) < 0)
		return NULL; /* the registry freed the driver */
	*driver_out = c;
	return r;
}

struct berth_counting_pair *berth_counting_pair_new(const char *name, int object_store)
{
	struct berth_counting_pair *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (berth_test_root_new(p->dir, sizeof(p->dir), name) < 0 ||
	    !(p->a = berth_counting_registry_new(&p->da, p->dir, object_store)) ||
	    !(p->b = berth_counting_registry_new(&p->db, p->dir, object_store))) {
		berth_counting_pair_free(p);
		return NULL;
	}
	return p;
}

void berth_counting_pair_free(struct berth_counting_pair *p)
{
	if (!p)
		return;
	berth_registry_free(p->a);
	berth_registry_free(p->b);
	berth_test_root_remove(p->dir);
	free(p);
}

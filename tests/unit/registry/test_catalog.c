/*
 * The catalog across instances (registry/catalog.c): two registries on one filesystem root,
 * as two berth processes behind a load balancer, each with its own driver wrapped to count
 * the storage calls it makes. The directories are never looked at for foreign writers (the
 * interval is made endless) unless a test says so, so only the store's generation can tell
 * one instance what the other changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/vec.h"
#include "helpers/tmproot.h"
#include "helpers/upload.h"
#include "registry/paths.h"
#include "registry/registry.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

#define REPOS 24

/* A filesystem driver that counts what it is asked. */
struct counting_driver {
	struct berth_storage_driver base;
	struct berth_storage_driver *inner;
	unsigned stats, lists, generation_puts;
};

static struct counting_driver *counting(struct berth_storage_driver *d)
{
	return (struct counting_driver *)d;
}
static struct berth_storage_driver *inner(struct berth_storage_driver *d)
{
	return counting(d)->inner;
}
static int c_get(char **o, size_t *l, struct berth_storage_driver *d, const char *p, size_t m)
{
	return inner(d)->get_content(o, l, inner(d), p, m);
}
static int c_put(struct berth_storage_driver *d, const char *p, const void *b, size_t n)
{
	if (strcmp(p, BERTH_CATALOG_GENERATION) == 0)
		counting(d)->generation_puts++;
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
	counting(d)->stats++;
	return inner(d)->stat(o, inner(d), p);
}
static int c_list(struct berth_storage_driver *d, const char *p, berth_list_cb cb, void *pl)
{
	counting(d)->lists++;
	return inner(d)->list(inner(d), p, cb, pl);
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
	inner(d)->free(inner(d));
	free(d);
}

struct fixture {
	char dir[256];
	struct berth_registry *a, *b;
	struct counting_driver *da, *db;
};

static struct berth_registry *instance(struct fixture *f, struct counting_driver **out)
{
	struct berth_storage_driver *fs = NULL;
	assert_int_equal(berth_fs_driver_new(&fs, f->dir), 0);
	struct counting_driver *c = calloc(1, sizeof(*c));
	c->base = (struct berth_storage_driver){
		.version = BERTH_STORAGE_DRIVER_VERSION, .name = "counting", .get_content = c_get,
		.put_content = c_put, .reader = c_reader, .writer = c_writer, .stat = c_stat,
		.list = c_list, .move = c_move, .remove = c_remove, .walk = c_walk, .free = c_free,
	};
	c->inner = fs;
	struct berth_registry *r = NULL;
	struct berth_registry_config cfg = { .driver = &c->base, .delete_enabled = 1 };
	assert_int_equal(berth_registry_new(&r, &cfg), 0);
	berth_catalog_set_foreign_interval(r, UINT64_MAX);
	*out = c;
	return r;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (berth_test_root_new(f->dir, sizeof(f->dir), "test-catalog") < 0)
		return -1;
	f->a = instance(f, &f->da);
	f->b = instance(f, &f->db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	berth_registry_free(f->a);
	berth_registry_free(f->b);
	berth_test_root_remove(f->dir);
	free(f);
	return 0;
}

static void push(struct berth_registry *r, const char *repo, const char *content)
{
	char digest[BERTH_DIGEST_STR_MAX];
	assert_int_equal(berth_test_upload(digest, r, repo, content, strlen(content)), 0);
}

/* 1 if the registry's catalog lists name. */
static int listed(struct berth_registry *r, const char *name)
{
	struct berth_strvec v = { 0 };
	assert_int_equal(berth_catalog(&v, r), 0);
	int found = 0;
	for (size_t i = 0; i < v.n; i++)
		found |= strcmp(v.items[i], name) == 0;
	berth_strvec_release(&v);
	return found;
}

static size_t catalog_size(struct berth_registry *r)
{
	struct berth_strvec v = { 0 };
	assert_int_equal(berth_catalog(&v, r), 0);
	size_t n = v.n;
	berth_strvec_release(&v);
	return n;
}

/* An unchanged catalog costs one stat of the generation, never one per repository. */
static void test_unchanged_catalog_is_one_stat(void **state)
{
	struct fixture *f = *state;
	char name[64];
	for (int i = 0; i < REPOS; i++) {
		snprintf(name, sizeof(name), "team/repo%02d", i);
		push(f->a, name, "layer");
	}
	assert_int_equal(catalog_size(f->b), REPOS);
	f->db->stats = f->db->lists = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(catalog_size(f->b), REPOS);
	assert_int_equal(f->db->lists, 0);
	assert_int_equal(f->db->stats, 3);
}

/* A repository made through one instance is in the other's next catalog. */
static void test_repository_made_through_the_other_is_listed_at_once(void **state)
{
	struct fixture *f = *state;
	push(f->a, "first", "one");
	assert_true(listed(f->b, "first"));
	assert_false(listed(f->b, "second"));
	push(f->a, "second", "two");
	assert_true(listed(f->b, "second"));
	assert_true(listed(f->a, "second"));
}

/* Pushing into a repository the instance knows exists writes no generation. */
static void test_push_into_a_known_repository_bumps_nothing(void **state)
{
	struct fixture *f = *state;
	push(f->a, "known", "one");
	unsigned bumps = f->da->generation_puts;
	assert_true(bumps >= 1);
	push(f->a, "known", "two");
	push(f->a, "known", "three");
	assert_int_equal(f->da->generation_puts, bumps);
	push(f->a, "other", "four"); /* a new one does */
	assert_int_equal(f->da->generation_puts, bumps + 1);
}

/* a knows the repository; b deletes it; a pushes it again: a sees the delete and tells b. */
static void test_repository_deleted_then_pushed_again_through_the_other(void **state)
{
	struct fixture *f = *state;
	push(f->a, "again", "one");
	push(f->a, "again", "two");
	assert_true(listed(f->b, "again"));
	assert_int_equal(berth_repo_delete(f->b, "again"), 0);
	assert_false(listed(f->a, "again"));
	assert_false(listed(f->b, "again"));
	push(f->a, "again", "three");
	assert_true(listed(f->b, "again"));
	assert_true(listed(f->a, "again"));
	/* It is known again once a push found no delete since the last one (the push that saw
	 * the delete cannot tell whether another came after its write): then pushes bump nothing. */
	push(f->a, "again", "four");
	unsigned bumps = f->da->generation_puts;
	push(f->a, "again", "five");
	assert_int_equal(f->da->generation_puts, bumps);
}

/* A writer that bumps no generation (Distribution) is seen when the directories are looked at. */
static void test_foreign_writer_seen_by_the_directories(void **state)
{
	struct fixture *f = *state;
	push(f->a, "mine", "one");
	assert_false(listed(f->b, "foreign"));
	char path[512];
	snprintf(path, sizeof(path), "%s" BERTH_REPOS_ROOT "/foreign", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s" BERTH_REPOS_ROOT "/foreign/_layers", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	berth_catalog_set_foreign_interval(f->b, 0);
	assert_true(listed(f->b, "foreign"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unchanged_catalog_is_one_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repository_made_through_the_other_is_listed_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_into_a_known_repository_bumps_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_repository_deleted_then_pushed_again_through_the_other,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_writer_seen_by_the_directories, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The repositories tree's walk (registry/repo_walk.c), shared by the catalog and garbage
 * collection, on the in-memory and the filesystem driver: which directories are repositories,
 * which are entered, and how errors stop it or are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/vec.h"
#include "helpers/tmproot.h"
#include "registry/paths.h"
#include "registry/repo_walk.h"
#include "storage/storage.h"

struct fixture {
	struct berth_storage_driver *d;
	char dir[256]; /* filesystem root, "" for in-memory */
};

static int setup_mem(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || berth_inmem_driver_new(&f->d) < 0)
		return -1;
	*state = f;
	return 0;
}

static int setup_fs(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || berth_test_root_new(f->dir, sizeof(f->dir), "repo-walk") < 0 ||
	    berth_fs_driver_new(&f->d, f->dir) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	f->d->free(f->d);
	berth_test_root_remove(f->dir);
	free(f);
	return 0;
}

static void put(struct fixture *f, const char *below_repos)
{
	char path[BERTH_PATH_MAX];
	snprintf(path, sizeof(path), BERTH_REPOS_ROOT "/%s", below_repos);
	assert_int_equal(berth_storage_put_content(f->d, path, "x", 1), 0);
}

/* What a walk saw: the repositories (sorted) and the directories entered. */
struct seen {
	struct berth_strvec repos, entered;
	const char *skip; /* entering this directory answers BERTH_ENOTFOUND */
	const char *stop; /* entering this directory answers BERTH_EINVALID */
};

static int entering(const char *dir, void *payload)
{
	struct seen *s = payload;
	berth_strvec_push(&s->entered, dir);
	if (s->skip && strcmp(dir, s->skip) == 0)
		return BERTH_ENOTFOUND;
	if (s->stop && strcmp(dir, s->stop) == 0)
		return BERTH_EINVALID;
	return 0;
}

static void found(const char *name, void *payload)
{
	struct seen *s = payload;
	berth_strvec_push(&s->repos, name);
}

static int walk(struct fixture *f, struct seen *s, char *failed)
{
	struct berth_repo_walk w = { .entering = entering, .found = found, .payload = s };
	int rc = berth_repo_walk(f->d, &w);
	berth_strvec_sort(&s->repos);
	berth_strvec_sort(&s->entered);
	if (failed)
		snprintf(failed, BERTH_PATH_MAX, "%s", w.failed);
	return rc;
}

static void seen_release(struct seen *s)
{
	berth_strvec_release(&s->repos);
	berth_strvec_release(&s->entered);
}

static void assert_list(const struct berth_strvec *l, const char *const *want, size_t n)
{
	if (l->n != n)
		fail_msg("%zu entries, expected %zu (first: %s)", l->n, n,
			 l->n ? l->items[0] : "-");
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->items[i], want[i]);
}

#define R BERTH_REPOS_ROOT

/* a (a repository) holding a/b (another), c/d/e, an upload-only x, a plain file, and an
 * underscore directory that is never entered. */
static void build(struct fixture *f)
{
	put(f, "a/_manifests/revisions/sha256/00/link");
	put(f, "a/b/_layers/sha256/00/link");
	put(f, "c/d/e/_manifests/tags/t/current/link");
	put(f, "x/_uploads/u/data");
	put(f, "plainfile");
	put(f, "_hidden/z/_layers/sha256/00/link");
}

static void test_finds_repositories_as_the_catalog(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	build(f);
	assert_int_equal(walk(f, &s, NULL), 0);
	const char *repos[] = { "a", "a/b", "c/d/e" };
	assert_list(&s.repos, repos, 3);
	/* every directory but those starting with '_' (the plain file: listed, found empty) */
	const char *entered[] = { R,        R "/a",     R "/a/b",       R "/c",
				  R "/c/d", R "/c/d/e", R "/plainfile", R "/x" };
	assert_list(&s.entered, entered, 8);
	seen_release(&s);
}

static void test_missing_root(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	char failed[BERTH_PATH_MAX];
	assert_int_equal(walk(f, &s, failed), BERTH_ENOTFOUND);
	assert_string_equal(failed, R);
	assert_int_equal(s.repos.n, 0);
	seen_release(&s);
}

/* A directory below the root that vanishes is skipped; any other error stops the walk there. */
static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	char failed[BERTH_PATH_MAX];
	build(f);
	s.skip = R "/c/d";
	assert_int_equal(walk(f, &s, NULL), 0);
	const char *repos[] = { "a", "a/b" };
	assert_list(&s.repos, repos, 2);
	seen_release(&s);

	memset(&s, 0, sizeof(s));
	s.stop = R "/c";
	assert_int_equal(walk(f, &s, failed), BERTH_EINVALID);
	assert_string_equal(failed, R "/c");
	for (size_t i = 0; i < s.repos.n; i++)
		assert_null(strstr(s.repos.items[i], "c/"));
	seen_release(&s);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup_mem, teardown), \
		cmocka_unit_test_setup_teardown(t, setup_fs, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_finds_repositories_as_the_catalog),
		BOTH(test_missing_root),
		BOTH(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

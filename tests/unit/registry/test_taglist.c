/*
 * Tag lists across instances on an object store (registry/taglist.c): two registries on one
 * root through drivers that act as S3 does (directories without a version, a tree listed at
 * once) and count the calls the test's thread makes. Without Redis, a kept list is checked
 * against the repository's tag generation in the store (one stat), which an instance bumps when
 * a tag appears or goes; writers that bump nothing are seen by a look in the background.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/err.h"
#include "helpers/counting.h"
#include "helpers/tmproot.h"
#include "helpers/upload.h"
#include "registry/paths.h"
#include "registry/registry.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"

static int setup(void **state)
{
	struct berth_counting_pair *f = berth_counting_pair_new("test-taglist", 1);
	if (!f)
		return -1;
	/* no look unless a test says so */
	berth_tags_set_foreign_interval(f->a, UINT64_MAX);
	berth_tags_set_foreign_interval(f->b, UINT64_MAX);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	berth_counting_pair_free(*state);
	return 0;
}

/* Pushes an image (its config names it: one manifest per content) as repo:ref, or by digest
 * when ref is NULL. */
static void push(struct berth_registry *r, const char *repo, const char *ref, const char *content,
		 char digest[BERTH_DIGEST_STR_MAX])
{
	char config[BERTH_DIGEST_STR_MAX], layer[BERTH_DIGEST_STR_MAX], body[1024];
	struct berth_manifest_put_result res;
	assert_int_equal(berth_test_upload(config, r, repo, content, strlen(content)), 0);
	assert_int_equal(berth_test_upload(layer, r, repo, "layer", 5), 0);
	snprintf(body, sizeof(body),
		 "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\",\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
		 "\"digest\":\"%s\",\"size\":5}]}",
		 config, strlen(content), layer);
	char by_digest[BERTH_DIGEST_STR_MAX];
	berth_digest_bytes(BERTH_ALG_SHA256, body, strlen(body), by_digest);
	assert_int_equal(berth_manifest_put(&res, r, repo, ref ? ref : by_digest, MT_MANIFEST, body,
					    strlen(body)),
			 0);
	if (digest)
		memcpy(digest, res.digest, BERTH_DIGEST_STR_MAX);
}

/* The registry's tags of repo, comma-separated, into out; or "404". */
static const char *tags(char *out, size_t cap, struct berth_registry *r, const char *repo)
{
	const struct berth_tag_list *l;
	int rc = berth_tags_get(&l, r, repo);
	if (rc == BERTH_ENOTFOUND) {
		snprintf(out, cap, "404");
		return out;
	}
	assert_int_equal(rc, 0);
	out[0] = '\0';
	for (size_t i = 0; i < l->n; i++)
		snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", l->tags[i]);
	berth_tag_list_release(l);
	return out;
}

#define assert_tags(r, repo, want)                                                                 \
	do {                                                                                       \
		char got_[512];                                                                    \
		assert_string_equal(tags(got_, sizeof(got_), (r), (repo)), (want));                \
	} while (0)

/* An unchanged list costs one stat (S3: one HEAD) of its generation: no listing. */
static void test_unchanged_list_is_one_stat(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "app", "v1", "one", NULL);
	push(f->a, "app", "v2", "two", NULL);
	assert_tags(f->b, "app", "v1,v2");
	berth_counting_reset(f->db);
	for (int i = 0; i < 3; i++)
		assert_tags(f->b, "app", "v1,v2");
	assert_int_equal(f->db->stats, 3);
	assert_int_equal(f->db->lists, 0);
	assert_int_equal(f->db->list_trees, 0);
}

/* A tag made or deleted through one instance is in (or gone from) the other's next list. */
static void test_tag_made_or_deleted_through_the_other_is_seen_at_once(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "app", "v1", "one", NULL);
	assert_tags(f->b, "app", "v1");
	push(f->a, "app", "v2", "two", NULL);
	assert_tags(f->b, "app", "v1,v2");
	assert_int_equal(berth_manifest_delete(f->a, "app", "v1"), 0);
	assert_tags(f->b, "app", "v2");
	char digest[BERTH_DIGEST_STR_MAX];
	push(f->a, "app", "v3", "three", digest);
	assert_tags(f->b, "app", "v2,v3");
	assert_int_equal(berth_manifest_delete(f->a, "app", digest), 0); /* untags v3 */
	assert_tags(f->b, "app", "v2");
	assert_int_equal(berth_repo_delete(f->a, "app"), 0);
	assert_tags(f->b, "app", "404");
}

/* The generation is written when a tag appears or goes, never when it moves. */
static void test_only_a_new_or_deleted_tag_writes_the_generation(void **state)
{
	struct berth_counting_pair *f = *state;
	push(f->a, "app", "v1", "one", NULL);
	assert_int_equal(f->da->tags_generation_puts, 1);
	assert_tags(f->b, "app", "v1");
	push(f->a, "app", "v1", "two", NULL); /* moved */
	char digest[BERTH_DIGEST_STR_MAX];
	push(f->a, "app", NULL, "three", digest); /* by digest: untagged */
	(void)digest;
	assert_int_equal(f->da->tags_generation_puts, 1);
	berth_counting_reset(f->db);
	assert_tags(f->b, "app", "v1"); /* still held: one stat */
	assert_int_equal(f->db->stats, 1);
	assert_int_equal(f->db->lists + f->db->list_trees, 0);
	push(f->a, "app", "v2", "four", NULL);
	assert_int_equal(f->da->tags_generation_puts, 2);
	assert_int_equal(berth_manifest_delete(f->a, "app", "v2"), 0);
	assert_int_equal(f->da->tags_generation_puts, 3);
}

/* Writes tag `tag` of repo naming digest, as a writer that bumps no generation would. */
static void foreign_tag(struct berth_counting_pair *f, const char *repo, const char *tag, const char *digest)
{
	char path[1024];
	size_t n = (size_t)snprintf(path, sizeof(path), "%s" BERTH_REPOS_ROOT "/%s/_manifests/tags/%s",
				    f->dir, repo, tag);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path + n, sizeof(path) - n, "/current");
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path + n, sizeof(path) - n, "/current/link");
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(digest, fp);
	fclose(fp);
}

/*
 * A tag written by a writer that bumps no generation (Distribution) is seen by the look, which
 * runs in the background: requests that find it due, or come while it lists, answer from the
 * list they have (one stat) rather than wait on it.
 */
static void test_foreign_tag_seen_by_a_look_no_request_waits_on(void **state)
{
	struct berth_counting_pair *f = *state;
	char digest[BERTH_DIGEST_STR_MAX];
	push(f->a, "app", "v1", "one", digest);
	assert_tags(f->b, "app", "v1");
	foreign_tag(f, "app", "zz", digest);
	berth_counting_gate_close(f->db);
	berth_tags_set_foreign_interval(f->b, 0);
	berth_counting_reset(f->db);
	assert_tags(f->b, "app", "v1"); /* the look is due: queued */
	assert_true(berth_counting_gate_wait(f->db, 1)); /* the look is listing */
	assert_tags(f->b, "app", "v1");
	assert_int_equal(f->db->stats, 2);
	assert_int_equal(f->db->lists + f->db->list_trees, 0);
	berth_tags_set_foreign_interval(f->b, UINT64_MAX);
	berth_counting_gate_open(f->db);
	berth_looks_wait(f->b);
	assert_tags(f->b, "app", "v1,zz");
	assert_true(atomic_load(&f->db->background) > 0);
}

static void *free_looks(void *arg)
{
	berth_looks_free(arg);
	return NULL;
}

/*
 * At shutdown a look building a long list stops at its next storage call: the look is held at
 * the gate while it lists a repository with many tags it has not seen (each a stat of its
 * current link), the looks are stopped meanwhile, and once the gate opens the look makes no
 * further call before its thread ends (the build used to stat every new tag first).
 */
static void test_look_building_a_long_list_stops_at_shutdown(void **state)
{
	struct berth_counting_pair *f = *state;
	char digest[BERTH_DIGEST_STR_MAX], tag[16];
	push(f->a, "app", "v1", "one", digest);
	assert_tags(f->b, "app", "v1");
	for (int i = 0; i < 64; i++) {
		snprintf(tag, sizeof(tag), "zz%02d", i);
		foreign_tag(f, "app", tag, digest);
	}
	berth_counting_gate_close(f->db);
	berth_tags_set_foreign_interval(f->b, 0);
	assert_tags(f->b, "app", "v1"); /* the look is due: queued */
	assert_true(berth_counting_gate_wait(f->db, 1)); /* the look is listing */

	pthread_t stopper;
	assert_int_equal(pthread_create(&stopper, NULL, free_looks, f->b->looks), 0);
	while (!berth_looks_stopping(f->b)) /* the looks are stopping: it joins the held look */
		sched_yield();
	unsigned before = atomic_load(&f->db->background);
	berth_counting_gate_open(f->db);
	assert_int_equal(pthread_join(stopper, NULL), 0);
	f->b->looks = NULL; /* freed: the registry's free accepts NULL */
	assert_int_equal(atomic_load(&f->db->background) - before, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unchanged_list_is_one_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tag_made_or_deleted_through_the_other_is_seen_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_only_a_new_or_deleted_tag_writes_the_generation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_tag_seen_by_a_look_no_request_waits_on,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_look_building_a_long_list_stops_at_shutdown, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

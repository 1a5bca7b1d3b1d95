/*
 * Allocation torture of the manifest parser (as curl's torture tests): every allocation a
 * parse makes, jansson's included, is failed in turn (core/util.h test mode). Each time the
 * parse must fail cleanly (an error, no manifest) and give back every byte it took: the heap
 * in use (glibc mallinfo2, without the per-thread cache) is the same after as before; under
 * the sanitizers LeakSanitizer checks the same.
 * Found so far: jansson 2.14's json_dumps leaves a key out of its output when an allocation
 * fails mid-dump (manifest_parse.c now reads the dump back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "helpers/heap.h"
#include "registry/manifest.h"

#define D(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	c c c c c c c c c c c c c c c c c c c c c c c c

static const char oci_image[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"artifactType\":\"application/example\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D("a") "\",\"size\":7},"
	"\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D("b") "\",\"size\":9},"
	"{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip\",\"digest\":\"" D("c") "\","
	"\"size\":3,\"urls\":[\"https://example.com/1\",\"http://example.com/2\"]}],"
	"\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D("d") "\",\"size\":5},"
	"\"annotations\":{\"org.opencontainers.image.created\":\"2026-01-01T00:00:00Z\",\"b\":\"2\"}}";

static const char oci_index[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D("e") "\",\"size\":1,"
	"\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D("f") "\",\"size\":2,"
	"\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}}]}";

static const char docker_list[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\","
	"\"manifests\":[{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
	"\"digest\":\"" D("1") "\",\"size\":10,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}";

/* Not valid: the error path of a bad descriptor, after allocations were made. */
static const char bad_layer[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D("a") "\",\"size\":7},"
	"\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D("b") "\",\"size\":9},"
	"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:nothex\",\"size\":1}]}";

/* Parses body once per allocation it makes, failing that allocation; returns how many. */
static size_t torture(const char *ct, const char *body, int valid)
{
	struct berth_manifest *m = NULL;
	/* A first parse, unfailed: the expected outcome, and whatever jansson sets up once. */
	int want = berth_manifest_parse(&m, ct, body, strlen(body));
	assert_int_equal(want == 0, valid);
	berth_manifest_free(m);

	size_t n;
	for (n = 1;; n++) {
		size_t before = berth_test_heap_in_use();
		berth_alloc_fail_at(n);
		m = NULL;
		int rc = berth_manifest_parse(&m, ct, body, strlen(body));
		int failed = !berth_alloc_fail_pending();
		berth_alloc_fail_at(0);
		if (!failed) {
			assert_int_equal(rc, want);
			berth_manifest_free(m);
			break;
		}
		if (rc == 0)
			fail_msg("allocation %zu failed, yet the parse succeeded", n);
		assert_null(m);
		if (berth_test_heap_in_use() != before)
			fail_msg("allocation %zu failed: %zu bytes not given back", n,
				 berth_test_heap_in_use() - before);
	}
	return n - 1;
}

static void test_oci_image(void **state)
{
	size_t n = torture(BERTH_MT_OCI_MANIFEST, oci_image, 1);
	/* config, two layers with urls, subject, annotations, jansson's objects */
	assert_true(n >= 20);
}

static void test_oci_index(void **state)
{
	assert_true(torture(BERTH_MT_OCI_INDEX, oci_index, 1) >= 10);
}

static void test_docker_list(void **state)
{
	assert_true(torture(BERTH_MT_DOCKER_LIST, docker_list, 1) >= 5);
}

static void test_invalid_after_allocations(void **state)
{
	assert_true(torture(BERTH_MT_OCI_MANIFEST, bad_layer, 0) >= 10);
}

int main(int argc, char **argv)
{
	(void)argc;
	berth_test_heap_exact(argv);
	berth_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_image),
		cmocka_unit_test(test_oci_index),
		cmocka_unit_test(test_docker_list),
		cmocka_unit_test(test_invalid_after_allocations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

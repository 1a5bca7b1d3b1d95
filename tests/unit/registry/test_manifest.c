/*
 * Manifest parsing and validation. Bodies are built with jansson from a valid template and then
 * damaged one defect at a time, so each test states only what it changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/err.h"
#include "registry/manifest.h"

#define DIGEST_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIGEST_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DIGEST_C "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DIGEST_512                                                                              \
	"sha512:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"                 \
	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
/* sha256 of "{}", the OCI empty descriptor */
#define DIGEST_EMPTY "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_EMPTY "application/vnd.oci.empty.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_DOCKER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define MT_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define MT_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

/* ---- building bodies ---- */

static json_t *descriptor(const char *media_type, const char *digest, json_int_t size)
{
	json_t *d = json_pack("{s:s, s:I}", "digest", digest, "size", size);

	assert_non_null(d);
	if (media_type)
		json_object_set_new(d, "mediaType", json_string(media_type));
	return d;
}

static json_t *oci_manifest(void)
{
	json_t *m = json_pack("{s:i, s:s, s:o, s:[o, o]}", "schemaVersion", 2, "mediaType",
			      BERTH_MT_OCI_MANIFEST, "config",
			      descriptor(MT_OCI_CONFIG, DIGEST_A, 1234), "layers",
			      descriptor(MT_OCI_LAYER, DIGEST_B, 100),
			      descriptor(MT_OCI_LAYER, DIGEST_C, 0));

	assert_non_null(m);
	return m;
}

static json_t *docker_manifest(void)
{
	json_t *m = json_pack("{s:i, s:s, s:o, s:[o]}", "schemaVersion", 2, "mediaType",
			      BERTH_MT_DOCKER_MANIFEST, "config",
			      descriptor(MT_DOCKER_CONFIG, DIGEST_A, 7023), "layers",
			      descriptor(MT_DOCKER_LAYER, DIGEST_B, 32654));

	assert_non_null(m);
	return m;
}

static json_t *platform_descriptor(const char *media_type, const char *digest, const char *arch)
{
	json_t *d = descriptor(media_type, digest, 528);

	json_object_set_new(d, "platform", json_pack("{s:s, s:s}", "architecture", arch, "os",
						     "linux"));
	return d;
}

static json_t *index_of(const char *index_type, const char *child_type)
{
	json_t *m = json_pack("{s:i, s:s, s:[o, o]}", "schemaVersion", 2, "mediaType", index_type,
			      "manifests", platform_descriptor(child_type, DIGEST_A, "amd64"),
			      platform_descriptor(child_type, DIGEST_B, "arm64"));

	assert_non_null(m);
	return m;
}

static json_t *oci_index(void)
{
	return index_of(BERTH_MT_OCI_INDEX, BERTH_MT_OCI_MANIFEST);
}

static json_t *docker_list(void)
{
	return index_of(BERTH_MT_DOCKER_LIST, BERTH_MT_DOCKER_MANIFEST);
}

/* The descriptor at json path "config", "layers[i]" (key "layers", i) etc. */
static json_t *member_at(json_t *root, const char *key, int i)
{
	json_t *v = json_object_get(root, key);

	assert_non_null(v);
	return i < 0 ? v : json_array_get(v, (size_t)i);
}

/* ---- parsing ---- */

/* Parses a raw body; returns the rc and leaves the manifest in *out (NULL on failure) and the
 * thread's failure in *err (core/err.h). */
static int parse_raw(const char *ct, const void *body, size_t len, struct berth_manifest **out,
		     struct berth_failure *err)
{
	struct berth_manifest *m = (struct berth_manifest *)&m; /* must be reset */
	int rc;

	berth_err_clear();
	rc = berth_manifest_parse(&m, ct, body, len);
	berth_err_save(err);
	if (rc != 0)
		assert_null(m);
	*out = m;
	return rc;
}

/* Parses root (consumed), which must succeed; free the result with berth_manifest_free. */
static struct berth_manifest *parse_ok(const char *ct, json_t *root)
{
	struct berth_failure err;
	struct berth_manifest *m;
	char *body = json_dumps(root, JSON_COMPACT);
	int rc;

	assert_non_null(body);
	json_decref(root);
	rc = parse_raw(ct, body, strlen(body), &m, &err);
	if (rc != 0)
		fail_msg("parse failed (%d): %s\nbody: %s", rc, err.message, body);
	free(body);
	assert_non_null(m);
	return m;
}

static void expect_raw_error(const char *ct, const void *body, size_t len,
			     int code, const char *message)
{
	struct berth_failure err;
	struct berth_manifest *m;
	int rc = parse_raw(ct, body, len, &m, &err);

	if (rc != code)
		fail_msg("expected failure %d, got %d, for body %.*s", code, rc,
			 (int)(len < 200 ? len : 200), (const char *)body);
	assert_int_equal(err.code, code);
	if (strstr(err.message, message) == NULL)
		fail_msg("error message '%s' does not contain '%s'", err.message, message);
	/* the same failure again */
	assert_int_equal(berth_manifest_parse(&m, ct, body, len), code);
	assert_null(m);
}

static void expect_text_error(const char *ct, const char *body,
			      int code, const char *message)
{
	expect_raw_error(ct, body, strlen(body), code, message);
}

/* Parses root (consumed), which must fail with code and a message containing `message`. */
static void expect_error(const char *ct, json_t *root, int code,
			 const char *message)
{
	char *body = json_dumps(root, JSON_COMPACT);

	assert_non_null(body);
	json_decref(root);
	expect_raw_error(ct, body, strlen(body), code, message);
	free(body);
}

static void assert_descriptor(const struct berth_descriptor *d, const char *media_type,
			      const char *digest, int64_t size)
{
	if (media_type)
		assert_string_equal(d->media_type, media_type);
	else
		assert_null(d->media_type);
	assert_string_equal(d->digest, digest);
	assert_true(d->size == size);
}

/* ---- valid manifests of each type ---- */

static void test_oci_manifest_valid(void **state)
{
	struct berth_manifest *m = parse_ok(BERTH_MT_OCI_MANIFEST, oci_manifest());

	(void)state;
	assert_int_equal(m->kind, BERTH_MANIFEST_OCI_MANIFEST);
	assert_string_equal(m->media_type, BERTH_MT_OCI_MANIFEST);
	assert_int_equal(m->has_config, 1);
	assert_descriptor(&m->config, MT_OCI_CONFIG, DIGEST_A, 1234);
	assert_int_equal(m->n_layers, 2);
	assert_descriptor(&m->layers[0], MT_OCI_LAYER, DIGEST_B, 100);
	assert_descriptor(&m->layers[1], MT_OCI_LAYER, DIGEST_C, 0);
	assert_int_equal(m->layers[0].n_urls, 0);
	assert_null(m->layers[0].artifact_type);
	assert_null(m->manifests);
	assert_int_equal(m->n_manifests, 0);
	assert_int_equal(m->has_subject, 0);
	assert_null(m->artifact_type);
	assert_null(m->annotations_json);
	berth_manifest_free(m);
}

static void test_oci_index_valid(void **state)
{
	struct berth_manifest *m = parse_ok(BERTH_MT_OCI_INDEX, oci_index());

	(void)state;
	assert_int_equal(m->kind, BERTH_MANIFEST_OCI_INDEX);
	assert_string_equal(m->media_type, BERTH_MT_OCI_INDEX);
	assert_int_equal(m->has_config, 0);
	assert_null(m->layers);
	assert_int_equal(m->n_manifests, 2);
	assert_descriptor(&m->manifests[0], BERTH_MT_OCI_MANIFEST, DIGEST_A, 528);
	assert_descriptor(&m->manifests[1], BERTH_MT_OCI_MANIFEST, DIGEST_B, 528);
	berth_manifest_free(m);
}

static void test_docker_manifest_valid(void **state)
{
	struct berth_manifest *m = parse_ok(BERTH_MT_DOCKER_MANIFEST, docker_manifest());

	(void)state;
	assert_int_equal(m->kind, BERTH_MANIFEST_DOCKER_MANIFEST);
	assert_string_equal(m->media_type, BERTH_MT_DOCKER_MANIFEST);
	assert_int_equal(m->has_config, 1);
	assert_descriptor(&m->config, MT_DOCKER_CONFIG, DIGEST_A, 7023);
	assert_int_equal(m->n_layers, 1);
	assert_descriptor(&m->layers[0], MT_DOCKER_LAYER, DIGEST_B, 32654);
	berth_manifest_free(m);
}

static void test_docker_list_valid(void **state)
{
	struct berth_manifest *m = parse_ok(BERTH_MT_DOCKER_LIST, docker_list());

	(void)state;
	assert_int_equal(m->kind, BERTH_MANIFEST_DOCKER_LIST);
	assert_string_equal(m->media_type, BERTH_MT_DOCKER_LIST);
	assert_int_equal(m->n_manifests, 2);
	assert_descriptor(&m->manifests[1], BERTH_MT_DOCKER_MANIFEST, DIGEST_B, 528);
	berth_manifest_free(m);
}

static void test_empty_arrays(void **state)
{
	json_t *root;
	struct berth_manifest *m;

	(void)state;
	root = oci_index();
	json_object_set_new(root, "manifests", json_array());
	m = parse_ok(BERTH_MT_OCI_INDEX, root);
	assert_int_equal(m->n_manifests, 0);
	assert_null(m->manifests);
	berth_manifest_free(m);

	root = docker_list();
	json_object_set_new(root, "manifests", json_array());
	m = parse_ok(NULL, root);
	assert_int_equal(m->kind, BERTH_MANIFEST_DOCKER_LIST);
	assert_int_equal(m->n_manifests, 0);
	berth_manifest_free(m);

	root = docker_manifest();
	json_object_set_new(root, "layers", json_array());
	m = parse_ok(BERTH_MT_DOCKER_MANIFEST, root);
	assert_int_equal(m->n_layers, 0);
	assert_null(m->layers);
	berth_manifest_free(m);
}

static void test_optional_descriptor_fields(void **state)
{
	json_t *root = oci_manifest();
	json_t *layer = member_at(root, "layers", 0);
	struct berth_manifest *m;

	(void)state;
	json_object_del(member_at(root, "config", -1), "mediaType");
	json_object_set_new(layer, "artifactType", json_string("application/x.test"));
	json_object_set_new(layer, "annotations", json_pack("{s:s}", "k", "v"));
	json_object_set_new(layer, "data", json_string("e30="));
	json_object_set_new(layer, "x-unknown", json_pack("{s:[i]}", "nested", 1));
	json_array_append_new(json_object_get(root, "layers"),
			      descriptor(MT_OCI_LAYER, DIGEST_512, INT64_MAX));
	m = parse_ok(BERTH_MT_OCI_MANIFEST, root);
	assert_null(m->config.media_type);
	assert_string_equal(m->layers[0].artifact_type, "application/x.test");
	assert_int_equal(m->n_layers, 3);
	assert_descriptor(&m->layers[2], MT_OCI_LAYER, DIGEST_512, INT64_MAX);
	berth_manifest_free(m);
}

/* ---- how the media type is decided ---- */

static void expect_kind(const char *ct, json_t *root, enum berth_manifest_kind kind)
{
	struct berth_manifest *m = parse_ok(ct, root);

	if (m->kind != kind)
		fail_msg("content type '%s': kind %d, want %d", ct ? ct : "(null)", m->kind, kind);
	berth_manifest_free(m);
}

static void test_content_type_forms(void **state)
{
	(void)state;
	expect_kind(BERTH_MT_OCI_MANIFEST "; charset=utf-8", oci_manifest(),
		    BERTH_MANIFEST_OCI_MANIFEST);
	expect_kind("  application/VND.OCI.image.manifest.v1+JSON  ;x=y", oci_manifest(),
		    BERTH_MANIFEST_OCI_MANIFEST);
	expect_kind("\t" BERTH_MT_OCI_INDEX "\t", oci_index(), BERTH_MANIFEST_OCI_INDEX);
	expect_kind("Application/Vnd.Docker.Distribution.Manifest.V2+Json", docker_manifest(),
		    BERTH_MANIFEST_DOCKER_MANIFEST);
	expect_kind(BERTH_MT_DOCKER_LIST ";", docker_list(), BERTH_MANIFEST_DOCKER_LIST);
}

static void test_body_decides_for_generic_content_type(void **state)
{
	static const char *const generic[] = {
		NULL, "", "   ", ";charset=utf-8", "application/json", "APPLICATION/JSON",
		"application/json; charset=utf-8", "text/plain", "text/plain; charset=us-ascii",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(generic) / sizeof(generic[0]); i++) {
		expect_kind(generic[i], oci_manifest(), BERTH_MANIFEST_OCI_MANIFEST);
		expect_kind(generic[i], oci_index(), BERTH_MANIFEST_OCI_INDEX);
		expect_kind(generic[i], docker_manifest(), BERTH_MANIFEST_DOCKER_MANIFEST);
		expect_kind(generic[i], docker_list(), BERTH_MANIFEST_DOCKER_LIST);
	}
}

static void test_shape_decides_without_media_type(void **state)
{
	json_t *root;

	(void)state;
	root = oci_manifest();
	json_object_del(root, "mediaType");
	expect_kind(NULL, root, BERTH_MANIFEST_OCI_MANIFEST);
	root = oci_index();
	json_object_del(root, "mediaType");
	expect_kind("application/json", root, BERTH_MANIFEST_OCI_INDEX);
	/* an empty mediaType counts as absent */
	root = oci_index();
	json_object_set_new(root, "mediaType", json_string(""));
	expect_kind(NULL, root, BERTH_MANIFEST_OCI_INDEX);
	/* a specific Content-Type needs no body mediaType for the OCI types */
	root = oci_manifest();
	json_object_del(root, "mediaType");
	expect_kind(BERTH_MT_OCI_MANIFEST, root, BERTH_MANIFEST_OCI_MANIFEST);
	root = oci_index();
	json_object_set_new(root, "mediaType", json_string(""));
	expect_kind(BERTH_MT_OCI_INDEX, root, BERTH_MANIFEST_OCI_INDEX);
}

static void test_media_type_conflicts(void **state)
{
	json_t *root;

	(void)state;
	expect_error(BERTH_MT_OCI_INDEX, oci_manifest(), BERTH_EINVALID,
		     "manifest mediaType does not match the content type");
	expect_error(BERTH_MT_DOCKER_MANIFEST, oci_manifest(), BERTH_EINVALID,
		     "does not match");
	expect_error(BERTH_MT_OCI_MANIFEST, docker_manifest(), BERTH_EINVALID,
		     "does not match");
	expect_error(BERTH_MT_DOCKER_LIST, oci_index(), BERTH_EINVALID,
		     "does not match");
	/* the body mediaType is compared exactly */
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_string("Application/vnd.oci.image.manifest.v1+json"));
	expect_error(BERTH_MT_OCI_MANIFEST, root, BERTH_EINVALID, "does not match");
	/* an unknown body mediaType under a specific Content-Type is a conflict too */
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_string("application/x.other"));
	expect_error(BERTH_MT_OCI_MANIFEST, root, BERTH_EINVALID, "does not match");
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_integer(1));
	expect_error(NULL, root, BERTH_EINVALID, "manifest mediaType must be a string");
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_null());
	expect_error(BERTH_MT_OCI_MANIFEST, root, BERTH_EINVALID,
		     "mediaType must be a string");
}

static void test_docker_requires_media_type(void **state)
{
	json_t *root;

	(void)state;
	root = docker_manifest();
	json_object_del(root, "mediaType");
	expect_error(BERTH_MT_DOCKER_MANIFEST, root, BERTH_EINVALID,
		     "manifest mediaType is missing");
	root = docker_list();
	json_object_set_new(root, "mediaType", json_string(""));
	expect_error(BERTH_MT_DOCKER_LIST, root, BERTH_EINVALID,
		     "manifest mediaType is missing");
}

static void test_schema1_unsupported(void **state)
{
	static const char schema1_body[] =
		"{\"schemaVersion\":1,\"name\":\"library/x\",\"tag\":\"latest\","
		"\"architecture\":\"amd64\",\"fsLayers\":[{\"blobSum\":\"" DIGEST_A "\"}],"
		"\"history\":[{\"v1Compatibility\":\"{}\"}]}";
	json_t *root;

	(void)state;
	expect_text_error(MT_SCHEMA1, schema1_body, BERTH_EUNSUPPORTED, "schema1");
	expect_text_error(MT_SCHEMA1_SIGNED, schema1_body, BERTH_EUNSUPPORTED,
			  "schema1");
	expect_text_error("Application/Vnd.Docker.Distribution.Manifest.V1+Prettyjws; x=1",
			  schema1_body, BERTH_EUNSUPPORTED, "schema1");
	/* refused on the Content-Type alone, even for a body that is not JSON */
	expect_text_error(MT_SCHEMA1_SIGNED, "not json", BERTH_EUNSUPPORTED, "schema1");
	expect_text_error(NULL, schema1_body, BERTH_EUNSUPPORTED,
			  "manifest schema version 1 is not supported");
	expect_text_error(BERTH_MT_DOCKER_MANIFEST, schema1_body, BERTH_EUNSUPPORTED,
			  "schema version 1");
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_string(MT_SCHEMA1));
	expect_error("application/json", root, BERTH_EUNSUPPORTED, "schema1");
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_string(MT_SCHEMA1_SIGNED));
	expect_error(NULL, root, BERTH_EUNSUPPORTED, "schema1");
}

static void test_unknown_media_types_unsupported(void **state)
{
	json_t *root;

	(void)state;
	expect_error("application/octet-stream", oci_manifest(), BERTH_EUNSUPPORTED,
		     "manifest media type application/octet-stream is not supported");
	expect_error("application/vnd.oci.image.manifest.v2+json", oci_manifest(),
		     BERTH_EUNSUPPORTED, "is not supported");
	expect_error("application/vnd.oci.artifact.manifest.v1+json", oci_manifest(),
		     BERTH_EUNSUPPORTED, "is not supported");
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_string("application/x.custom+json"));
	expect_error(NULL, root, BERTH_EUNSUPPORTED,
		     "manifest media type application/x.custom+json is not supported");
}

/* Untrusted text quoted in messages is cut short and reduced to printable ASCII. */
static void test_error_message_quoting(void **state)
{
	struct berth_failure err;
	struct berth_manifest *m;
	char ct[600];

	(void)state;
	memset(ct, 'x', sizeof(ct) - 1);
	ct[sizeof(ct) - 1] = '\0';
	assert_int_equal(parse_raw(ct, "{}", 2, &m, &err), BERTH_EUNSUPPORTED);
	assert_int_equal(err.code, BERTH_EUNSUPPORTED);
	assert_non_null(strstr(err.message, "xxx... is not supported"));
	assert_true(strlen(err.message) < 150);

	assert_int_equal(parse_raw("application/caf\xc3\xa9\x01", "{}", 2, &m, &err),
			 BERTH_EUNSUPPORTED);
	assert_string_equal(err.message, "manifest media type application/caf??? is not supported");
}

/* ---- bodies that are not a JSON object ---- */

static void test_body_not_an_object(void **state)
{
	static const char *const bodies[] = {
		"[]", "[{\"schemaVersion\":2}]", "\"string\"", "42", "-1.5", "null", "true", "false",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		expect_text_error(NULL, bodies[i], BERTH_EINVALID,
				  "manifest must be a json object");
		expect_text_error(BERTH_MT_OCI_MANIFEST, bodies[i], BERTH_EINVALID,
				  "manifest must be a json object");
	}
}

static void test_body_not_json(void **state)
{
	static const char *const bodies[] = {
		"",
		" ",
		"{",
		"{\"schemaVersion\":2,",
		"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:aa",
		"{\"schemaVersion\":2}}",
		"{\"schemaVersion\":2} x",
		"{\"schemaVersion\":2}{}",
		"{schemaVersion:2}",
		"{'schemaVersion':2}",
		"{\"schemaVersion\":2,}",
		"{\"schemaVersion\":02}",
		"{\"a\":\"\\u0000\"}",
		"{\"a\":\"\xff\"}",
		"{\"a\":\"\xc3\"}",
		"\xef\xbb\xbf{}",
		"not json at all",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_text_error(NULL, bodies[i], BERTH_EINVALID,
				  "manifest is not valid json");
	/* an embedded NUL byte */
	expect_raw_error(NULL, "{\"schemaVersion\":2}\0", 20, BERTH_EINVALID,
			 "manifest is not valid json");
	expect_raw_error(NULL, NULL, 0, BERTH_EINVALID, "manifest is not valid json");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_text_error(NULL,
			  "{\"schemaVersion\":2,\"schemaVersion\":2,\"config\":{},\"layers\":[]}",
			  BERTH_EINVALID, "manifest is not valid json");
	expect_text_error(NULL,
			  "{\"schemaVersion\":2,\"config\":{\"digest\":\"" DIGEST_A "\","
			  "\"size\":1,\"size\":2},\"layers\":[]}",
			  BERTH_EINVALID, "manifest is not valid json");
	expect_text_error(BERTH_MT_OCI_MANIFEST,
			  "{\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"mediaType\":\""
			  BERTH_MT_OCI_INDEX "\",\"schemaVersion\":2}",
			  BERTH_EINVALID, "manifest is not valid json");
}

/* Nesting deeper than jansson's limit is refused without exhausting the stack. */
static void test_deep_nesting(void **state)
{
	const size_t depth = 100000;
	size_t len = 2 * depth + 64;
	char *body = malloc(len);
	char *p = body;
	size_t i;

	(void)state;
	assert_non_null(body);
	p += sprintf(p, "{\"schemaVersion\":2,\"x\":");
	for (i = 0; i < depth; i++)
		*p++ = '[';
	for (i = 0; i < depth; i++)
		*p++ = ']';
	*p++ = '}';
	expect_raw_error(NULL, body, (size_t)(p - body), BERTH_EINVALID,
			 "manifest is not valid json");
	free(body);

	/* modest nesting in an unknown member is fine */
	{
		json_t *root = oci_manifest();
		json_t *inner = json_array();
		int d;

		for (d = 0; d < 100; d++)
			inner = json_pack("[o]", inner);
		json_object_set_new(root, "x-extra", inner);
		berth_manifest_free(parse_ok(NULL, root));
	}
}

/* ---- schemaVersion ---- */

static void test_schema_version(void **state)
{
	json_t *root;
	json_t *bad[6];
	size_t i;

	(void)state;
	root = oci_manifest();
	json_object_del(root, "schemaVersion");
	expect_error(NULL, root, BERTH_EINVALID, "manifest schemaVersion is missing");

	bad[0] = json_integer(3);
	bad[1] = json_integer(0);
	bad[2] = json_integer(-2);
	bad[3] = json_string("2");
	bad[4] = json_real(2.0);
	bad[5] = json_true();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		root = oci_manifest();
		json_object_set_new(root, "schemaVersion", bad[i]);
		expect_error(NULL, root, BERTH_EINVALID,
			     "manifest schemaVersion must be 2");
	}
	expect_text_error(NULL, "{\"schemaVersion\":2.0,\"layers\":[]}",
			  BERTH_EINVALID, "manifest schemaVersion must be 2");
	expect_text_error(NULL, "{\"schemaVersion\":1e0}", BERTH_EINVALID,
			  "manifest schemaVersion must be 2");
}

/* ---- required members ---- */

static void test_image_manifest_members(void **state)
{
	json_t *root;

	(void)state;
	root = oci_manifest();
	json_object_del(root, "config");
	expect_error(NULL, root, BERTH_EINVALID, "manifest config is missing");
	root = docker_manifest();
	json_object_del(root, "config");
	expect_error(NULL, root, BERTH_EINVALID, "manifest config is missing");
	root = oci_manifest();
	json_object_set_new(root, "config", json_string(DIGEST_A));
	expect_error(NULL, root, BERTH_EINVALID, "manifest config: must be an object");
	root = oci_manifest();
	json_object_set_new(root, "config", json_null());
	expect_error(NULL, root, BERTH_EINVALID, "manifest config: must be an object");

	root = oci_manifest();
	json_object_del(root, "layers");
	expect_error(NULL, root, BERTH_EINVALID, "manifest layers is missing");
	root = docker_manifest();
	json_object_del(root, "layers");
	expect_error(NULL, root, BERTH_EINVALID, "manifest layers is missing");
	root = oci_manifest();
	json_object_set_new(root, "layers", json_object());
	expect_error(NULL, root, BERTH_EINVALID, "manifest layers must be an array");
	root = oci_manifest();
	json_object_set_new(root, "layers", json_null());
	expect_error(NULL, root, BERTH_EINVALID, "manifest layers must be an array");
	root = oci_manifest();
	json_array_append_new(json_object_get(root, "layers"), json_string(DIGEST_A));
	expect_error(NULL, root, BERTH_EINVALID,
		     "manifest layers[2]: must be an object");
	root = oci_manifest();
	json_array_insert_new(json_object_get(root, "layers"), 0, json_array());
	expect_error(NULL, root, BERTH_EINVALID,
		     "manifest layers[0]: must be an object");
}

static void test_index_members(void **state)
{
	json_t *root;

	(void)state;
	root = oci_index();
	json_object_del(root, "manifests");
	expect_error(BERTH_MT_OCI_INDEX, root, BERTH_EINVALID,
		     "manifest manifests is missing");
	root = docker_list();
	json_object_del(root, "manifests");
	expect_error(NULL, root, BERTH_EINVALID, "manifest manifests is missing");
	root = oci_index();
	json_object_set_new(root, "manifests", json_string("x"));
	expect_error(NULL, root, BERTH_EINVALID, "manifest manifests must be an array");
	root = docker_list();
	json_array_append_new(json_object_get(root, "manifests"), json_integer(5));
	expect_error(NULL, root, BERTH_EINVALID,
		     "manifest manifests[2]: must be an object");
}

/* An OCI manifest must not look like an index and vice versa (ambiguous manifests). */
static void test_ambiguous_oci(void **state)
{
	json_t *root;

	(void)state;
	root = oci_manifest();
	json_object_set_new(root, "manifests", json_array());
	expect_error(NULL, root, BERTH_EINVALID,
		     "manifest has manifests but is not an index");
	root = oci_manifest();
	json_object_del(root, "mediaType");
	json_object_set_new(root, "manifests", json_array());
	expect_error(BERTH_MT_OCI_MANIFEST, root, BERTH_EINVALID,
		     "manifest has manifests but is not an index");
	root = oci_index();
	json_object_set_new(root, "config", descriptor(MT_OCI_CONFIG, DIGEST_A, 1));
	expect_error(NULL, root, BERTH_EINVALID, "manifest index has config or layers");
	root = oci_index();
	json_object_del(root, "mediaType");
	json_object_set_new(root, "layers", json_array());
	expect_error(NULL, root, BERTH_EINVALID, "manifest index has config or layers");
}

/* ---- descriptor defects, at every place a descriptor can be ---- */

struct place {
	json_t *(*make)(void);
	const char *key; /* "config", "layers", "manifests", "subject" */
	int index;       /* -1 for a single descriptor */
	const char *where;
};

static json_t *oci_manifest_with_subject(void)
{
	json_t *root = oci_manifest();

	json_object_set_new(root, "subject", descriptor(BERTH_MT_OCI_MANIFEST, DIGEST_C, 10));
	return root;
}

static const struct place places[] = {
	{ oci_manifest, "config", -1, "manifest config: " },
	{ oci_manifest, "layers", 1, "manifest layers[1]: " },
	{ docker_manifest, "config", -1, "manifest config: " },
	{ docker_manifest, "layers", 0, "manifest layers[0]: " },
	{ oci_index, "manifests", 1, "manifest manifests[1]: " },
	{ docker_list, "manifests", 0, "manifest manifests[0]: " },
	{ oci_manifest_with_subject, "subject", -1, "manifest subject: " },
};

/* Sets (or with value NULL deletes) member `field` of the descriptor at place p. */
static void damage(const struct place *p, const char *field, json_t *value,
		   int code, const char *what)
{
	json_t *root = p->make();
	json_t *d = member_at(root, p->key, p->index);
	char message[160];

	assert_non_null(d);
	if (value)
		json_object_set_new(d, field, value);
	else
		json_object_del(d, field);
	snprintf(message, sizeof(message), "%s%s", p->where, what);
	expect_error(NULL, root, code, message);
}

static void test_descriptor_digest(void **state)
{
	static const char *const malformed[] = {
		"",
		"sha256:",
		"sha256:abc",
		"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha384:abc",
		"not a digest",
		DIGEST_A "\n",
	};
	size_t i;
	size_t j;

	(void)state;
	for (i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		const struct place *p = &places[i];

		damage(p, "digest", NULL, BERTH_EDIGEST, "digest is missing");
		damage(p, "digest", json_integer(1), BERTH_EINVALID,
		       "digest must be a string");
		damage(p, "digest", json_null(), BERTH_EINVALID,
		       "digest must be a string");
		for (j = 0; j < sizeof(malformed) / sizeof(malformed[0]); j++)
			damage(p, "digest", json_string(malformed[j]), BERTH_EDIGEST,
			       "digest is invalid");
	}
}

static void test_descriptor_size(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		const struct place *p = &places[i];

		damage(p, "size", NULL, BERTH_EINVALID, "size is missing");
		damage(p, "size", json_integer(-1), BERTH_EINVALID,
		       "size must not be negative");
		damage(p, "size", json_integer(INT64_MIN), BERTH_EINVALID,
		       "size must not be negative");
		damage(p, "size", json_real(1.5), BERTH_EINVALID,
		       "size must be an integer");
		damage(p, "size", json_real(100.0), BERTH_EINVALID,
		       "size must be an integer");
		damage(p, "size", json_string("100"), BERTH_EINVALID,
		       "size must be an integer");
		damage(p, "size", json_null(), BERTH_EINVALID,
		       "size must be an integer");
		damage(p, "size", json_false(), BERTH_EINVALID,
		       "size must be an integer");
	}
	/* beyond int64: jansson refuses the number itself */
	expect_text_error(NULL,
			  "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\","
			  "\"config\":{\"digest\":\"" DIGEST_A "\",\"size\":9223372036854775808},"
			  "\"layers\":[]}",
			  BERTH_EINVALID, "manifest is not valid json");
	expect_text_error(NULL,
			  "{\"schemaVersion\":2,\"config\":{\"digest\":\"" DIGEST_A "\","
			  "\"size\":1e3},\"layers\":[]}",
			  BERTH_EINVALID, "manifest config: size must be an integer");
}

static void test_descriptor_other_fields(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		const struct place *p = &places[i];

		damage(p, "mediaType", json_integer(3), BERTH_EINVALID,
		       "mediaType must be a string");
		damage(p, "artifactType", json_array(), BERTH_EINVALID,
		       "artifactType must be a string");
		damage(p, "annotations", json_string("k=v"), BERTH_EINVALID,
		       "annotations must be an object");
		damage(p, "annotations", json_pack("{s:s, s:i}", "a", "b", "c", 1),
		       BERTH_EINVALID, "annotations values must be strings");
		damage(p, "platform", json_string("linux/amd64"), BERTH_EINVALID,
		       "platform must be an object");
		damage(p, "urls", json_string("https://example.com/x"), BERTH_EINVALID,
		       "urls must be an array");
		damage(p, "urls", json_pack("[s, i]", "https://example.com/x", 1),
		       BERTH_EINVALID, "urls[1] is not an http or https url");
	}
}

static void test_descriptor_urls(void **state)
{
	static const char *const bad[] = {
		"", "example.com/x", "ftp://example.com/x", "file:///etc/passwd", "http://",
		"https://", "http:///path", "http://?q", "https://example.com/x#frag",
		"https://example.com/a b", "https://example.com/\x01", "javascript:alert(1)",
		"http:/example.com", "//example.com/x",
	};
	json_t *root;
	json_t *layer;
	struct berth_manifest *m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		damage(&places[3], "urls", json_pack("[s]", bad[i]), BERTH_EINVALID,
		       "urls[0] is not an http or https url");

	root = docker_manifest();
	layer = member_at(root, "layers", 0);
	json_object_set_new(layer, "urls", json_pack("[s, s, s]", "https://mcr.microsoft.com/x",
						     "http://example.com:8080/a?b=c",
						     "HTTPS://EXAMPLE.COM/"));
	m = parse_ok(NULL, root);
	assert_int_equal(m->layers[0].n_urls, 3);
	berth_manifest_free(m);

	root = docker_manifest();
	json_object_set_new(member_at(root, "layers", 0), "urls", json_array());
	m = parse_ok(NULL, root);
	assert_int_equal(m->layers[0].n_urls, 0);
	berth_manifest_free(m);
}

/* The message names the exact element. */
static void test_error_message_format(void **state)
{
	json_t *root = oci_manifest();
	json_t *layers = json_object_get(root, "layers");

	(void)state;
	json_array_append_new(layers, descriptor(MT_OCI_LAYER, "sha256:nothex", 1));
	expect_error(NULL, root, BERTH_EDIGEST, "manifest layers[2]: digest is invalid");

	root = oci_manifest();
	json_object_set_new(member_at(root, "layers", 1), "size", json_integer(-5));
	{
		struct berth_failure err;
		struct berth_manifest *m;
		char *body = json_dumps(root, 0);

		json_decref(root);
		assert_int_equal(parse_raw(NULL, body, strlen(body), &m, &err), BERTH_EINVALID);
		assert_string_equal(err.message, "manifest layers[1]: size must not be negative");
		free(body);
	}
}

/* ---- OCI 1.1 fields ---- */

static void test_oci_artifact(void **state)
{
	json_t *root = oci_manifest();
	struct berth_manifest *m;

	(void)state;
	json_object_set_new(root, "artifactType", json_string("application/vnd.example.sbom"));
	json_object_set_new(root, "config", descriptor(MT_OCI_EMPTY, DIGEST_EMPTY, 2));
	json_object_set_new(root, "layers", json_array());
	m = parse_ok(BERTH_MT_OCI_MANIFEST, root);
	assert_int_equal(m->kind, BERTH_MANIFEST_OCI_MANIFEST);
	assert_string_equal(m->artifact_type, "application/vnd.example.sbom");
	assert_descriptor(&m->config, MT_OCI_EMPTY, DIGEST_EMPTY, 2);
	assert_int_equal(m->n_layers, 0);
	assert_null(m->layers);
	berth_manifest_free(m);

	root = oci_index();
	json_object_set_new(root, "artifactType", json_string("application/x.collection"));
	m = parse_ok(NULL, root);
	assert_string_equal(m->artifact_type, "application/x.collection");
	berth_manifest_free(m);

	root = oci_manifest();
	json_object_set_new(root, "artifactType", json_integer(7));
	expect_error(NULL, root, BERTH_EINVALID, "manifest artifactType must be a string");
	root = oci_index();
	json_object_set_new(root, "artifactType", json_null());
	expect_error(NULL, root, BERTH_EINVALID, "manifest artifactType must be a string");
}

static void test_subject(void **state)
{
	json_t *root;
	struct berth_manifest *m;

	(void)state;
	m = parse_ok(NULL, oci_manifest_with_subject());
	assert_int_equal(m->has_subject, 1);
	assert_descriptor(&m->subject, BERTH_MT_OCI_MANIFEST, DIGEST_C, 10);
	berth_manifest_free(m);

	root = oci_index();
	json_object_set_new(root, "subject", descriptor(NULL, DIGEST_512, 99));
	m = parse_ok(BERTH_MT_OCI_INDEX, root);
	assert_int_equal(m->has_subject, 1);
	assert_descriptor(&m->subject, NULL, DIGEST_512, 99);
	berth_manifest_free(m);

	root = oci_manifest();
	json_object_set_new(root, "subject", json_string(DIGEST_C));
	expect_error(NULL, root, BERTH_EINVALID, "manifest subject: must be an object");
	root = oci_manifest();
	json_object_set_new(root, "subject", json_null());
	expect_error(NULL, root, BERTH_EINVALID, "manifest subject: must be an object");

	/* Docker types know no subject, artifactType or annotations: ignored */
	root = docker_manifest();
	json_object_set_new(root, "subject", json_string("garbage"));
	json_object_set_new(root, "artifactType", json_integer(1));
	json_object_set_new(root, "annotations", json_integer(1));
	m = parse_ok(NULL, root);
	assert_int_equal(m->has_subject, 0);
	assert_null(m->artifact_type);
	assert_null(m->annotations_json);
	berth_manifest_free(m);
}

static void test_annotations(void **state)
{
	json_t *root;
	struct berth_manifest *m;

	(void)state;
	root = oci_manifest();
	json_object_set_new(root, "annotations",
			    json_pack("{s:s, s:s, s:s}", "org.opencontainers.image.title", "t \"q\"",
				      "b", "2", "a", "caf\xc3\xa9"));
	m = parse_ok(NULL, root);
	assert_string_equal(m->annotations_json,
			    "{\"a\":\"caf\xc3\xa9\",\"b\":\"2\","
			    "\"org.opencontainers.image.title\":\"t \\\"q\\\"\"}");
	berth_manifest_free(m);

	root = oci_index();
	json_object_set_new(root, "annotations", json_object());
	m = parse_ok(NULL, root);
	assert_string_equal(m->annotations_json, "{}");
	berth_manifest_free(m);

	root = oci_manifest();
	json_object_set_new(root, "annotations", json_pack("[s]", "a"));
	expect_error(NULL, root, BERTH_EINVALID, "manifest annotations must be an object");
	root = oci_index();
	json_object_set_new(root, "annotations", json_pack("{s:s, s:n}", "a", "b", "c"));
	expect_error(NULL, root, BERTH_EINVALID,
		     "manifest annotations values must be strings");
	root = oci_manifest();
	json_object_set_new(root, "annotations", json_pack("{s:{}}", "a"));
	expect_error(NULL, root, BERTH_EINVALID,
		     "manifest annotations values must be strings");
}

/* ---- foreign layers ---- */

static void test_foreign_layers(void **state)
{
	static const char *const foreign[] = {
		MT_DOCKER_FOREIGN,
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	};
	json_t *root = oci_manifest();
	json_t *layers = json_object_get(root, "layers");
	struct berth_manifest *m;
	size_t i;

	(void)state;
	json_array_clear(layers);
	for (i = 0; i < 4; i++) {
		json_t *d = descriptor(foreign[i], DIGEST_A, 10);

		json_object_set_new(d, "urls", json_pack("[s]", "https://example.com/layer"));
		json_array_append_new(layers, d);
	}
	json_array_append_new(layers, descriptor(MT_DOCKER_FOREIGN, DIGEST_B, 1)); /* no urls */
	{
		json_t *d = descriptor(MT_OCI_LAYER, DIGEST_C, 1); /* urls, not foreign */

		json_object_set_new(d, "urls", json_pack("[s]", "https://example.com/layer"));
		json_array_append_new(layers, d);
	}
	{
		json_t *d = descriptor(NULL, DIGEST_C, 1); /* urls, no media type */

		json_object_set_new(d, "urls", json_pack("[s]", "https://example.com/layer"));
		json_array_append_new(layers, d);
	}
	m = parse_ok(NULL, root);
	assert_int_equal(m->n_layers, 7);
	for (i = 0; i < 4; i++) {
		assert_int_equal(m->layers[i].n_urls, 1);
		assert_true(berth_descriptor_is_foreign(&m->layers[i]));
	}
	assert_false(berth_descriptor_is_foreign(&m->layers[4]));
	assert_false(berth_descriptor_is_foreign(&m->layers[5]));
	assert_false(berth_descriptor_is_foreign(&m->layers[6]));
	assert_false(berth_descriptor_is_foreign(&m->config));
	assert_false(berth_descriptor_is_foreign(NULL));
	berth_manifest_free(m);

	/* a Docker manifest with a Windows-style foreign layer */
	root = docker_manifest();
	{
		json_t *d = descriptor(MT_DOCKER_FOREIGN, DIGEST_C, 5);

		json_object_set_new(d, "urls", json_pack("[s, s]", "https://a.example/x",
							 "https://b.example/x"));
		json_array_append_new(json_object_get(root, "layers"), d);
	}
	m = parse_ok(BERTH_MT_DOCKER_MANIFEST, root);
	assert_int_equal(m->layers[1].n_urls, 2);
	assert_true(berth_descriptor_is_foreign(&m->layers[1]));
	assert_false(berth_descriptor_is_foreign(&m->layers[0]));
	berth_manifest_free(m);
}

/* ---- size ---- */

/* A near-4 MiB manifest with many layers parses, and its last defect is still found. */
static void test_large_manifest(void **state)
{
	json_t *root = oci_manifest();
	json_t *layers = json_object_get(root, "layers");
	struct berth_manifest *m;
	char *body;
	size_t i;

	(void)state;
	for (i = 0; i < 24000; i++)
		json_array_append_new(layers, descriptor(MT_OCI_LAYER, DIGEST_B, (json_int_t)i));
	body = json_dumps(root, JSON_COMPACT);
	assert_non_null(body);
	assert_true(strlen(body) < 4 * 1024 * 1024);
	m = parse_ok(NULL, json_incref(root));
	assert_int_equal(m->n_layers, 24002);
	assert_true(m->layers[24001].size == 23999);
	berth_manifest_free(m);
	free(body);

	json_object_set_new(json_array_get(layers, 24001), "digest", json_string("sha256:x"));
	expect_error(NULL, root, BERTH_EDIGEST,
		     "manifest layers[24001]: digest is invalid");
}

/* ---- sniffing ---- */

static const char *sniff_json(json_t *root)
{
	char *body = json_dumps(root, JSON_COMPACT);
	const char *mt;

	assert_non_null(body);
	json_decref(root);
	mt = berth_manifest_sniff_media_type(body, strlen(body));
	free(body);
	return mt;
}

static const char *sniff_text(const char *body)
{
	return berth_manifest_sniff_media_type(body, strlen(body));
}

static void test_sniff_media_type(void **state)
{
	json_t *root;

	(void)state;
	assert_string_equal(sniff_json(oci_manifest()), BERTH_MT_OCI_MANIFEST);
	assert_string_equal(sniff_json(oci_index()), BERTH_MT_OCI_INDEX);
	assert_string_equal(sniff_json(docker_manifest()), BERTH_MT_DOCKER_MANIFEST);
	assert_string_equal(sniff_json(docker_list()), BERTH_MT_DOCKER_LIST);
	/* the body's mediaType wins over the shape */
	root = oci_index();
	json_object_set_new(root, "mediaType", json_string(BERTH_MT_DOCKER_MANIFEST));
	assert_string_equal(sniff_json(root), BERTH_MT_DOCKER_MANIFEST);
	/* no, unknown or non-string mediaType: the shape decides */
	root = oci_index();
	json_object_del(root, "mediaType");
	assert_string_equal(sniff_json(root), BERTH_MT_OCI_INDEX);
	root = oci_index();
	json_object_set_new(root, "mediaType", json_string("application/x.unknown"));
	assert_string_equal(sniff_json(root), BERTH_MT_OCI_INDEX);
	root = oci_manifest();
	json_object_set_new(root, "mediaType", json_string(MT_SCHEMA1));
	assert_string_equal(sniff_json(root), BERTH_MT_OCI_MANIFEST);
	root = oci_index();
	json_object_set_new(root, "mediaType", json_integer(2));
	assert_string_equal(sniff_json(root), BERTH_MT_OCI_INDEX);
	assert_string_equal(sniff_text("{\"manifests\":null}"), BERTH_MT_OCI_INDEX);
	/* schema1 left by an older Distribution keeps its own type, signed or not */
	assert_string_equal(sniff_text("{\"schemaVersion\":1,\"name\":\"a\",\"tag\":\"t\","
				       "\"fsLayers\":[],\"signatures\":[]}"),
			    BERTH_MT_DOCKER_SCHEMA1_SIGNED);
	assert_string_equal(sniff_text("{\"schemaVersion\":1,\"name\":\"a\",\"fsLayers\":[]}"),
			    BERTH_MT_DOCKER_SCHEMA1);
	assert_string_equal(sniff_text("{\"schemaVersion\":1,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST
				       "\",\"signatures\":[]}"),
			    BERTH_MT_DOCKER_SCHEMA1_SIGNED);
	/* not a JSON object at all */
	assert_string_equal(sniff_text(""), BERTH_MT_OCI_MANIFEST);
	assert_string_equal(sniff_text("{"), BERTH_MT_OCI_MANIFEST);
	assert_string_equal(sniff_text("[{\"manifests\":[]}]"), BERTH_MT_OCI_MANIFEST);
	assert_string_equal(sniff_text("\"" BERTH_MT_OCI_INDEX "\""), BERTH_MT_OCI_MANIFEST);
	assert_string_equal(berth_manifest_sniff_media_type(NULL, 0), BERTH_MT_OCI_MANIFEST);
	assert_string_equal(berth_manifest_sniff_media_type("\xff\xfe", 2), BERTH_MT_OCI_MANIFEST);
}

static void test_free_null(void **state)
{
	(void)state;
	berth_manifest_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_manifest_valid),
		cmocka_unit_test(test_oci_index_valid),
		cmocka_unit_test(test_docker_manifest_valid),
		cmocka_unit_test(test_docker_list_valid),
		cmocka_unit_test(test_empty_arrays),
		cmocka_unit_test(test_optional_descriptor_fields),
		cmocka_unit_test(test_content_type_forms),
		cmocka_unit_test(test_body_decides_for_generic_content_type),
		cmocka_unit_test(test_shape_decides_without_media_type),
		cmocka_unit_test(test_media_type_conflicts),
		cmocka_unit_test(test_docker_requires_media_type),
		cmocka_unit_test(test_schema1_unsupported),
		cmocka_unit_test(test_unknown_media_types_unsupported),
		cmocka_unit_test(test_error_message_quoting),
		cmocka_unit_test(test_body_not_an_object),
		cmocka_unit_test(test_body_not_json),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_schema_version),
		cmocka_unit_test(test_image_manifest_members),
		cmocka_unit_test(test_index_members),
		cmocka_unit_test(test_ambiguous_oci),
		cmocka_unit_test(test_descriptor_digest),
		cmocka_unit_test(test_descriptor_size),
		cmocka_unit_test(test_descriptor_other_fields),
		cmocka_unit_test(test_descriptor_urls),
		cmocka_unit_test(test_error_message_format),
		cmocka_unit_test(test_oci_artifact),
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_annotations),
		cmocka_unit_test(test_foreign_layers),
		cmocka_unit_test(test_large_manifest),
		cmocka_unit_test(test_sniff_media_type),
		cmocka_unit_test(test_free_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

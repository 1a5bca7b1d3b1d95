/* Manifest parsing and validation (registry/manifest.h); storing them: manifest_store.c. */
#include "registry/manifest.h"
#include "core/util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "registry/reference.h"

#define MT_SCHEMA1 BERTH_MT_DOCKER_SCHEMA1
#define MT_SCHEMA1_SIGNED BERTH_MT_DOCKER_SCHEMA1_SIGNED

/* Longest excerpt of client-supplied text quoted in an error message. */
#define QUOTE_MAX 80

static const struct {
	const char *media_type;
	enum berth_manifest_kind kind;
} known_types[] = {
	{ BERTH_MT_OCI_MANIFEST, BERTH_MANIFEST_OCI_MANIFEST },
	{ BERTH_MT_OCI_INDEX, BERTH_MANIFEST_OCI_INDEX },
	{ BERTH_MT_DOCKER_MANIFEST, BERTH_MANIFEST_DOCKER_MANIFEST },
	{ BERTH_MT_DOCKER_LIST, BERTH_MANIFEST_DOCKER_LIST },
};

#define N_KNOWN_TYPES (sizeof(known_types) / sizeof(known_types[0]))

static const char *const foreign_types[] = {
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
};

/* How the request's Content-Type steers the decision. */
enum ct_class {
	CT_GENERIC, /* absent, empty, application/json or text/plain: the body decides */
	CT_KNOWN,   /* one of the four accepted types */
	CT_SCHEMA1,
	CT_UNKNOWN,
};

/* ---- errors ---- */

/* Failures are set as the thread's (core/err.h): BERTH_EINVALID, BERTH_EDIGEST or
 * BERTH_EUNSUPPORTED with the message the API answers with. */
static int fail_oom(void)
{
	return berth_err_set(BERTH_ERROR, "out of memory");
}

/*
 * Copies at most cap - 4 bytes of untrusted text into dst (then "..." if it was cut), replacing
 * anything but printable ASCII with '?', so error messages stay short, valid UTF-8 and safe to
 * log.
 */
static void quote_text(char *dst, size_t cap, const char *src, size_t n)
{
	size_t i;
	size_t max = cap - 4;

	for (i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (i < n) {
		memcpy(dst + i, "...", 3);
		i += 3;
	}
	dst[i] = '\0';
}

/* ---- media types ---- */

static const char *kind_media_type(enum berth_manifest_kind kind)
{
	size_t i;

	for (i = 0; i < N_KNOWN_TYPES; i++) {
		if (known_types[i].kind == kind)
			return known_types[i].media_type;
	}
	return BERTH_MT_OCI_MANIFEST;
}

/* Exact (case-sensitive) lookup, as for a body "mediaType". 0 or BERTH_ENOTFOUND. */
static int lookup_media_type(const char *mt, enum berth_manifest_kind *kind)
{
	size_t i;

	for (i = 0; i < N_KNOWN_TYPES; i++) {
		if (strcmp(mt, known_types[i].media_type) == 0) {
			*kind = known_types[i].kind;
			return 0;
		}
	}
	return BERTH_ENOTFOUND;
}

static int is_oci_kind(enum berth_manifest_kind kind)
{
	return kind == BERTH_MANIFEST_OCI_MANIFEST || kind == BERTH_MANIFEST_OCI_INDEX;
}

static int is_index_kind(enum berth_manifest_kind kind)
{
	return kind == BERTH_MANIFEST_OCI_INDEX || kind == BERTH_MANIFEST_DOCKER_LIST;
}

static int is_schema1(const char *mt, size_t n)
{
	return (n == strlen(MT_SCHEMA1) && strncasecmp(mt, MT_SCHEMA1, n) == 0) ||
	       (n == strlen(MT_SCHEMA1_SIGNED) && strncasecmp(mt, MT_SCHEMA1_SIGNED, n) == 0);
}

static int type_equals(const char *s, size_t n, const char *type)
{
	return n == strlen(type) && strncasecmp(s, type, n) == 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The type/subtype of a Content-Type value: parameters after ';' and surrounding blanks
 * dropped. Sets *start and returns its length (0 when there is none). */
static size_t content_type_essence(const char *ct, const char **start)
{
	const char *end;

	while (is_space(*ct))
		ct++;
	end = ct + strcspn(ct, ";");
	while (end > ct && is_space(end[-1]))
		end--;
	*start = ct;
	return (size_t)(end - ct);
}

static enum ct_class classify_content_type(const char *ct, const char **type, size_t *type_len,
					   enum berth_manifest_kind *kind)
{
	size_t i;

	*type_len = ct ? content_type_essence(ct, type) : 0;
	if (*type_len == 0 || type_equals(*type, *type_len, "application/json") ||
	    type_equals(*type, *type_len, "text/plain"))
		return CT_GENERIC;
	for (i = 0; i < N_KNOWN_TYPES; i++) {
		if (type_equals(*type, *type_len, known_types[i].media_type)) {
			*kind = known_types[i].kind;
			return CT_KNOWN;
		}
	}
	return is_schema1(*type, *type_len) ? CT_SCHEMA1 : CT_UNKNOWN;
}

int berth_manifest_content_type_generic(const char *ct)
{
	const char *type;
	size_t type_len;
	enum berth_manifest_kind kind;
	return classify_content_type(ct, &type, &type_len, &kind) == CT_GENERIC;
}

/* Rejects a Content-Type that names a type berth does not accept. */
static int check_content_type(enum ct_class ct, const char *type, size_t type_len)
{
	char quoted[QUOTE_MAX + 4];

	if (ct == CT_SCHEMA1)
		return berth_err_set(BERTH_EUNSUPPORTED,
				     "manifest schema1 is not supported");
	if (ct == CT_UNKNOWN) {
		quote_text(quoted, sizeof(quoted), type, type_len);
		return berth_err_set(BERTH_EUNSUPPORTED,
				     "manifest media type %s is not supported", quoted);
	}
	return 0;
}

/* The body's "mediaType": NULL when absent or empty, BERTH_EINVALID when not a string. */
static int body_media_type(json_t *root, const char **mt)
{
	json_t *v = json_object_get(root, "mediaType");

	*mt = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return berth_err_set(BERTH_EINVALID, "manifest mediaType must be a string");
	if (json_string_length(v) > 0)
		*mt = json_string_value(v);
	return 0;
}

/* Decides the kind from the body alone: its "mediaType", else its shape. */
static int kind_from_body(json_t *root, const char *body_mt, enum berth_manifest_kind *kind)
{
	char quoted[QUOTE_MAX + 4];

	if (!body_mt) {
		*kind = json_object_get(root, "manifests") ? BERTH_MANIFEST_OCI_INDEX
							   : BERTH_MANIFEST_OCI_MANIFEST;
		return 0;
	}
	if (lookup_media_type(body_mt, kind) == 0)
		return 0;
	if (is_schema1(body_mt, strlen(body_mt)))
		return berth_err_set(BERTH_EUNSUPPORTED,
				     "manifest schema1 is not supported");
	quote_text(quoted, sizeof(quoted), body_mt, strlen(body_mt));
	return berth_err_set(BERTH_EUNSUPPORTED, "manifest media type %s is not supported",
			     quoted);
}

static int decide_kind(json_t *root, enum ct_class ct, enum berth_manifest_kind ct_kind,
		       enum berth_manifest_kind *kind)
{
	const char *body_mt;
	int rc;

	rc = body_media_type(root, &body_mt);
	if (rc != 0)
		return rc;
	if (ct == CT_KNOWN) {
		if (body_mt && strcmp(body_mt, kind_media_type(ct_kind)) != 0)
			return berth_err_set(BERTH_EINVALID,
					     "manifest mediaType does not match the content type %s",
					     kind_media_type(ct_kind));
		*kind = ct_kind;
	} else {
		rc = kind_from_body(root, body_mt, kind);
		if (rc != 0)
			return rc;
	}
	/* Docker schema2 manifests and lists carry their mediaType (Distribution requires it). */
	if (!is_oci_kind(*kind) && !body_mt)
		return berth_err_set(BERTH_EINVALID, "manifest mediaType is missing");
	return 0;
}

/* ---- JSON shape ---- */

/*
 * In the helpers below, `where` prefixes the member named in error messages: "" at the top
 * level, "config: ", "layers[2]: " etc. inside a descriptor.
 */

static int check_schema_version(json_t *root)
{
	json_t *v = json_object_get(root, "schemaVersion");

	if (!v)
		return berth_err_set(BERTH_EINVALID, "manifest schemaVersion is missing");
	if (json_is_integer(v) && json_integer_value(v) == 1)
		return berth_err_set(BERTH_EUNSUPPORTED,
				     "manifest schema version 1 is not supported");
	if (!json_is_integer(v) || json_integer_value(v) != 2)
		return berth_err_set(BERTH_EINVALID, "manifest schemaVersion must be 2");
	return 0;
}

/* An optional string member: *out is NULL when absent. */
static int optional_string(json_t *obj, const char *key, const char *where, const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return berth_err_set(BERTH_EINVALID, "manifest %s%s must be a string", where,
				     key);
	*out = json_string_value(v);
	return 0;
}

/* An optional member that must be an object whose values are all strings. */
static int optional_string_map(json_t *obj, const char *key, const char *where)
{
	json_t *map = json_object_get(obj, key);
	const char *k;
	json_t *v;

	if (!map)
		return 0;
	if (!json_is_object(map))
		return berth_err_set(BERTH_EINVALID, "manifest %s%s must be an object",
				     where, key);
	json_object_foreach(map, k, v) {
		if (!json_is_string(v))
			return berth_err_set(BERTH_EINVALID,
					     "manifest %s%s values must be strings", where, key);
	}
	return 0;
}

/* An absolute http or https URL with a host, and no fragment, blanks or control characters. */
static int url_valid(const char *url)
{
	const char *rest;
	const char *p;

	if (strncasecmp(url, "http://", 7) == 0)
		rest = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		rest = url + 8;
	else
		return 0;
	if (*rest == '\0' || *rest == '/' || *rest == '?' || *rest == '#')
		return 0;
	for (p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c == 0x7f || c == '#')
			return 0;
	}
	return 1;
}

/* The optional "urls" array, copied into d->urls. */
static int check_urls(json_t *desc, const char *where, struct berth_descriptor *d)
{
	json_t *urls = json_object_get(desc, "urls");
	json_t *u;
	size_t i;

	d->n_urls = 0;
	if (!urls)
		return 0;
	if (!json_is_array(urls))
		return berth_err_set(BERTH_EINVALID, "manifest %surls must be an array",
				     where);
	json_array_foreach(urls, i, u) {
		if (!json_is_string(u) || !url_valid(json_string_value(u)))
			return berth_err_set(BERTH_EINVALID,
					     "manifest %surls[%zu] is not an http or https url", where, i);
	}
	d->urls = berth_try_calloc(json_array_size(urls), sizeof(*d->urls));
	if (!d->urls)
		return fail_oom();
	json_array_foreach(urls, i, u) {
		if (!(d->urls[d->n_urls] = berth_try_strdup(json_string_value(u))))
			return fail_oom();
		d->n_urls++;
	}
	return 0;
}

/* A missing or malformed digest is DIGEST_INVALID (as Distribution reports it); a digest that
 * is not even a string makes the manifest itself invalid. */
static int check_digest(json_t *desc, const char *where)
{
	json_t *v = json_object_get(desc, "digest");

	if (!v)
		return berth_err_set(BERTH_EDIGEST, "manifest %sdigest is missing", where);
	if (!json_is_string(v))
		return berth_err_set(BERTH_EINVALID, "manifest %sdigest must be a string",
				     where);
	if (!berth_digest_valid(json_string_value(v)))
		return berth_err_set(BERTH_EDIGEST, "manifest %sdigest is invalid", where);
	return 0;
}

static int check_size(json_t *desc, const char *where)
{
	json_t *v = json_object_get(desc, "size");

	if (!v)
		return berth_err_set(BERTH_EINVALID, "manifest %ssize is missing", where);
	if (!json_is_integer(v))
		return berth_err_set(BERTH_EINVALID, "manifest %ssize must be an integer",
				     where);
	if (json_integer_value(v) < 0)
		return berth_err_set(BERTH_EINVALID, "manifest %ssize must not be negative",
				     where);
	return 0;
}

/* The members berth does not keep but whose type Distribution's decoder would enforce. */
static int check_descriptor_extras(json_t *desc, const char *where)
{
	json_t *platform = json_object_get(desc, "platform");
	int rc;

	rc = optional_string_map(desc, "annotations", where);
	if (rc != 0)
		return rc;
	if (platform && !json_is_object(platform))
		return berth_err_set(BERTH_EINVALID, "manifest %splatform must be an object",
				     where);
	return 0;
}

/* Copies src (may be NULL) into *dst. 0, or BERTH_ERROR when out of memory. */
static int copy_string(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = berth_try_strdup(src);
	return *dst ? 0 : BERTH_ERROR;
}

/* Validates one descriptor and fills *d (whose strings the manifest then owns). */
static int parse_descriptor(json_t *desc, const char *where, struct berth_descriptor *d)
{
	const char *media_type = NULL;
	const char *artifact_type = NULL;
	int rc;

	if (!json_is_object(desc))
		return berth_err_set(BERTH_EINVALID, "manifest %smust be an object", where);
	rc = check_digest(desc, where);
	if (rc == 0)
		rc = check_size(desc, where);
	if (rc == 0)
		rc = optional_string(desc, "mediaType", where, &media_type);
	if (rc == 0)
		rc = optional_string(desc, "artifactType", where, &artifact_type);
	if (rc == 0)
		rc = check_urls(desc, where, d);
	if (rc == 0)
		rc = check_descriptor_extras(desc, where);
	if (rc != 0)
		return rc;
	d->size = (int64_t)json_integer_value(json_object_get(desc, "size"));
	json_t *platform = json_object_get(desc, "platform"); /* an object, if any (checked above) */
	if (copy_string(&d->digest, json_string_value(json_object_get(desc, "digest"))) != 0 ||
	    copy_string(&d->media_type, media_type) != 0 ||
	    copy_string(&d->artifact_type, artifact_type) != 0 ||
	    copy_string(&d->platform_os, json_string_value(json_object_get(platform, "os"))) != 0 ||
	    copy_string(&d->platform_arch, json_string_value(json_object_get(platform, "architecture"))) != 0)
		return fail_oom();
	return 0;
}

/* A required member of root that must be an array of descriptors. */
static int parse_descriptor_array(json_t *root, const char *key, struct berth_descriptor **out,
				  size_t *n_out)
{
	json_t *arr = json_object_get(root, key);
	struct berth_descriptor *descs;
	char where[48];
	size_t n;
	size_t i;
	int rc;

	if (!arr)
		return berth_err_set(BERTH_EINVALID, "manifest %s is missing", key);
	if (!json_is_array(arr))
		return berth_err_set(BERTH_EINVALID, "manifest %s must be an array", key);
	n = json_array_size(arr);
	if (n == 0)
		return 0;
	descs = berth_try_calloc(n, sizeof(*descs));
	if (!descs)
		return fail_oom();
	/* Owned by the manifest from here on, so a failure below frees what was filled. */
	*out = descs;
	*n_out = n;
	for (i = 0; i < n; i++) {
		snprintf(where, sizeof(where), "%s[%zu]: ", key, i);
		rc = parse_descriptor(json_array_get(arr, i), where, &descs[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* OCI types must not look like the other OCI type (Distribution's ambiguity check). */
static int check_not_ambiguous(json_t *root, enum berth_manifest_kind kind)
{
	if (kind == BERTH_MANIFEST_OCI_MANIFEST && json_object_get(root, "manifests"))
		return berth_err_set(BERTH_EINVALID,
				     "manifest has manifests but is not an index");
	if (kind == BERTH_MANIFEST_OCI_INDEX &&
	    (json_object_get(root, "config") || json_object_get(root, "layers")))
		return berth_err_set(BERTH_EINVALID,
				     "manifest index has config or layers");
	return 0;
}

static int parse_image_manifest(json_t *root, struct berth_manifest *m)
{
	json_t *config = json_object_get(root, "config");
	int rc;

	if (!config)
		return berth_err_set(BERTH_EINVALID, "manifest config is missing");
	rc = parse_descriptor(config, "config: ", &m->config);
	if (rc != 0)
		return rc;
	m->has_config = 1;
	return parse_descriptor_array(root, "layers", &m->layers, &m->n_layers);
}

static int parse_index(json_t *root, struct berth_manifest *m)
{
	return parse_descriptor_array(root, "manifests", &m->manifests, &m->n_manifests);
}

/*
 * json_dumps, compact with sorted keys, or NULL. jansson 2.14 can return text with a key left
 * out when an allocation fails inside the dump (found by the allocation torture test), so what
 * it wrote is read back and compared: NULL unless it says exactly what v says.
 */
static char *dump_checked(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	json_t *back = s ? json_loads(s, 0, NULL) : NULL;
	int same = back && json_equal(back, v);
	json_decref(back);
	if (!same)
		berth_safefree(s);
	return s;
}

/* The re-encoded top-level "annotations", if any. */
static int parse_annotations(json_t *root, struct berth_manifest *m)
{
	json_t *ann = json_object_get(root, "annotations");
	int rc;

	rc = optional_string_map(root, "annotations", "");
	if (rc != 0 || !ann)
		return rc;
	m->annotations_json = dump_checked(ann);
	return m->annotations_json ? 0 : fail_oom();
}

/* "subject", "artifactType" and "annotations", which only the OCI types define. */
static int parse_oci_fields(json_t *root, struct berth_manifest *m)
{
	json_t *subject = json_object_get(root, "subject");
	const char *artifact_type;
	int rc;

	if (subject) {
		rc = parse_descriptor(subject, "subject: ", &m->subject);
		if (rc != 0)
			return rc;
		m->has_subject = 1;
	}
	rc = optional_string(root, "artifactType", "", &artifact_type);
	if (rc != 0)
		return rc;
	if (copy_string(&m->artifact_type, artifact_type) != 0)
		return fail_oom();
	return parse_annotations(root, m);
}

/* Checks the shape of a manifest whose kind is decided and fills m. */
static int parse_body(json_t *root, enum berth_manifest_kind kind, struct berth_manifest *m)
{
	int rc;

	m->kind = kind;
	m->media_type = kind_media_type(kind);
	rc = check_not_ambiguous(root, kind);
	if (rc != 0)
		return rc;
	if (is_index_kind(kind))
		rc = parse_index(root, m);
	else
		rc = parse_image_manifest(root, m);
	if (rc == 0 && is_oci_kind(kind))
		rc = parse_oci_fields(root, m);
	return rc;
}

static json_t *load_json(const void *body, size_t len)
{
	json_error_t jerr;
	json_t *root;
	char quoted[QUOTE_MAX + 4];

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		quote_text(quoted, sizeof(quoted), jerr.text, strlen(jerr.text));
		berth_err_set(BERTH_EINVALID, "manifest is not valid json: %s", quoted);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		berth_err_set(BERTH_EINVALID, "manifest must be a json object");
		return NULL;
	}
	return root;
}

int berth_manifest_parse(struct berth_manifest **out, const char *content_type, const void *body,
			 size_t len)
{
	struct berth_manifest *m = NULL;
	json_t *root = NULL;
	enum berth_manifest_kind ct_kind = BERTH_MANIFEST_OCI_MANIFEST;
	enum berth_manifest_kind kind = BERTH_MANIFEST_OCI_MANIFEST;
	enum ct_class ct;
	const char *ct_type = NULL;
	size_t ct_len;
	int rc;

	*out = NULL;
	ct = classify_content_type(content_type, &ct_type, &ct_len, &ct_kind);
	rc = check_content_type(ct, ct_type, ct_len);
	if (rc != 0)
		goto cleanup;
	root = load_json(body, len);
	if (!root) {
		rc = BERTH_EINVALID;
		goto cleanup;
	}
	rc = check_schema_version(root);
	if (rc != 0)
		goto cleanup;
	rc = decide_kind(root, ct, ct_kind, &kind);
	if (rc != 0)
		goto cleanup;
	m = berth_try_calloc(1, sizeof(*m));
	if (!m) {
		rc = fail_oom();
		goto cleanup;
	}
	rc = parse_body(root, kind, m);
	if (rc != 0)
		goto cleanup;
	*out = m;
	m = NULL;
cleanup:
	berth_manifest_free(m);
	json_decref(root);
	return rc;
}

const char *berth_manifest_sniff_media_type(const void *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *result = BERTH_MT_OCI_MANIFEST;
	enum berth_manifest_kind kind;
	json_t *mt;

	if (json_is_object(root)) {
		mt = json_object_get(root, "mediaType");
		if (json_integer_value(json_object_get(root, "schemaVersion")) == 1)
			/* Distribution 2.8 serves any schema1 as a signed one; one without
			 * signatures (which it cannot parse) keeps the unsigned type. */
			result = json_object_get(root, "signatures") ? MT_SCHEMA1_SIGNED : MT_SCHEMA1;
		else if (json_is_string(mt) && lookup_media_type(json_string_value(mt), &kind) == 0)
			result = kind_media_type(kind);
		else if (json_object_get(root, "manifests"))
			result = BERTH_MT_OCI_INDEX;
	}
	json_decref(root);
	return result;
}

int berth_descriptor_is_foreign(const struct berth_descriptor *d)
{
	size_t i;

	if (!d || !d->media_type || d->n_urls == 0)
		return 0;
	for (i = 0; i < sizeof(foreign_types) / sizeof(foreign_types[0]); i++) {
		if (strcmp(d->media_type, foreign_types[i]) == 0)
			return 1;
	}
	return 0;
}

static void descriptor_free(struct berth_descriptor *d)
{
	free(d->media_type);
	free(d->digest);
	free(d->artifact_type);
	free(d->platform_os);
	free(d->platform_arch);
	for (size_t i = 0; i < d->n_urls; i++)
		free(d->urls[i]);
	free(d->urls);
}

static void descriptor_array_free(struct berth_descriptor *descs, size_t n)
{
	size_t i;

	if (!descs)
		return;
	for (i = 0; i < n; i++)
		descriptor_free(&descs[i]);
	free(descs);
}

void berth_manifest_free(struct berth_manifest *m)
{
	if (!m)
		return;
	descriptor_free(&m->config);
	descriptor_array_free(m->layers, m->n_layers);
	descriptor_array_free(m->manifests, m->n_manifests);
	descriptor_free(&m->subject);
	free(m->artifact_type);
	free(m->annotations_json);
	free(m);
}

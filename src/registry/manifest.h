/*
 * Manifest parsing and validation, without storage: decides the media type of a pushed
 * manifest, checks its JSON shape for that type, and lists what it references so the
 * manifest store can check that those blobs and manifests exist.
 *
 * Accepted media types (schema1 is refused, as Distribution does by default):
 *   application/vnd.oci.image.manifest.v1+json
 *   application/vnd.oci.image.index.v1+json
 *   application/vnd.docker.distribution.manifest.v2+json
 *   application/vnd.docker.distribution.manifest.list.v2+json
 */
#ifndef BERTH_REGISTRY_MANIFEST_H
#define BERTH_REGISTRY_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define BERTH_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define BERTH_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define BERTH_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define BERTH_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
/* Schema1: never accepted on push, but served when an older Distribution left one in storage. */
#define BERTH_MT_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define BERTH_MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

enum berth_manifest_kind {
	BERTH_MANIFEST_OCI_MANIFEST,
	BERTH_MANIFEST_OCI_INDEX,
	BERTH_MANIFEST_DOCKER_MANIFEST,
	BERTH_MANIFEST_DOCKER_LIST,
};

struct berth_descriptor {
	char *media_type;    /* may be NULL when the JSON had none */
	char *digest;        /* always a valid digest (berth_digest_valid) */
	int64_t size;        /* >= 0 */
	char *artifact_type; /* may be NULL */
	size_t n_urls;       /* number of entries in "urls" */
	char **urls;         /* the "urls" entries (http/https), n_urls of them */
	char *platform_os;   /* "platform": {"os"}, when a string; else NULL */
	char *platform_arch; /* "platform": {"architecture"}, when a string; else NULL */
};

struct berth_manifest {
	enum berth_manifest_kind kind;
	const char *media_type;          /* static string, one of BERTH_MT_* */
	int has_config;                  /* image manifests: always 1 */
	struct berth_descriptor config;
	struct berth_descriptor *layers; /* image manifests */
	size_t n_layers;
	struct berth_descriptor *manifests; /* indexes / lists */
	size_t n_manifests;
	int has_subject;                 /* OCI manifest or index with "subject" */
	struct berth_descriptor subject;
	char *artifact_type;             /* top-level "artifactType", may be NULL */
	char *annotations_json;          /* top-level "annotations" re-encoded compactly, or NULL */
};

/*
 * Parses and validates a manifest body.
 * content_type: the request's Content-Type header (parameters after ';' ignored), may be NULL.
 * The media type is the Content-Type when it names one of the four accepted types; when it is
 * absent, "application/json" or "text/plain", the body's "mediaType" decides; when that is absent
 * too, the shape decides ("manifests" -> OCI index, else OCI manifest). A body "mediaType" that
 * contradicts a specific Content-Type is MANIFEST_INVALID. schemaVersion must be 2
 * (schemaVersion 1 / schema1 media types -> BERTH_EUNSUPPORTED).
 * Checks: valid JSON object; config (image manifests) and every layer / manifest / subject is a
 * descriptor with a valid digest (BERTH_EDIGEST otherwise), an integer size >= 0,
 * string mediaType if present; "urls" if present is an array of http/https URL strings.
 * Any other Content-Type, or (when the body decides) any other body "mediaType", is
 * BERTH_EUNSUPPORTED.
 * Details, following Distribution: the Content-Type is compared case-insensitively, the body
 * "mediaType" exactly (an empty one counts as absent); Docker manifests and lists must carry
 * their "mediaType"; an OCI manifest must not have "manifests", nor an OCI index "config" or
 * "layers"; a descriptor without "digest" is BERTH_EDIGEST, one whose digest is not
 * a string MANIFEST_INVALID; "size" is required; descriptor "annotations" must be an object of
 * strings and "platform" an object. "subject", "artifactType" and "annotations" are read for
 * the OCI types only (ignored in Docker ones).
 * On success returns 0 and *out (free with berth_manifest_free). On failure returns
 * BERTH_EINVALID (answered MANIFEST_INVALID), BERTH_EDIGEST (DIGEST_INVALID) or
 * BERTH_EUNSUPPORTED (MANIFEST_INVALID), with the detail message set as the thread's failure
 * (core/err.h, berth_err_message); BERTH_ERROR if out of memory.
 */
int berth_manifest_parse(struct berth_manifest **out, const char *content_type, const void *body,
			 size_t len);

/*
 * The media type of a stored manifest, for the Content-Type of a GET: a schema1 manifest
 * ("schemaVersion": 1, left by an older Distribution) is BERTH_MT_DOCKER_SCHEMA1_SIGNED when it
 * has "signatures", else BERTH_MT_DOCKER_SCHEMA1; otherwise the BERTH_MT_* equal to the body's
 * "mediaType" when it is one of the four accepted types; otherwise (no, unknown or non-string
 * mediaType, or a body that is not a JSON object) the shape decides: a "manifests" member ->
 * BERTH_MT_OCI_INDEX, else BERTH_MT_OCI_MANIFEST. Always one of the BERTH_MT_* static strings,
 * never NULL. Does not validate; never fails.
 */
const char *berth_manifest_sniff_media_type(const void *body, size_t len);

/*
 * 1 when a Content-Type names no manifest type at all: NULL, empty, or the generic
 * "application/json" or "text/plain" (parameters ignored), from which berth_manifest_parse
 * tells the kind by the body. A PUT refuses these, as Distribution does.
 */
int berth_manifest_content_type_generic(const char *ct);

/* 1 if this layer may be absent from the registry: a foreign (Docker) or non-distributable (OCI)
 * layer media type that carries at least one URL. */
int berth_descriptor_is_foreign(const struct berth_descriptor *d);

/* Accepts NULL. */
void berth_manifest_free(struct berth_manifest *m);

#endif

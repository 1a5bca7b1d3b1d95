/*
 * Manifest validation (berth_manifest_parse) and media-type sniffing
 * (berth_manifest_sniff_media_type): the body of PUT /v2/<name>/manifests/<reference>.
 *
 * Input: the manifest body. Each input is parsed once per Content-Type below: none, the four
 * accepted types, the generic ones and a few spellings a client may send.
 * Properties: no crash or leak; on success the result is consistent (one of the four media
 * types, the one the Content-Type names when it names one, every descriptor with a valid digest
 * and a size >= 0, URLs http(s)); without a Content-Type the sniffed type of an accepted body is
 * the parsed one; on failure the error message is a terminated string.
 */
#include <strings.h>

#include "core/err.h"
#include "fuzz_common.h"
#include "registry/manifest.h"
#include "registry/reference.h"

static const char *const content_types[] = {
	NULL,
	BERTH_MT_OCI_MANIFEST,
	BERTH_MT_OCI_INDEX,
	BERTH_MT_DOCKER_MANIFEST,
	BERTH_MT_DOCKER_LIST,
	"application/json",
	"text/plain",
	"",
	"APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON; charset=utf-8",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/octet-stream",
};

static int is_accepted_type(const char *mt)
{
	return mt && (strcmp(mt, BERTH_MT_OCI_MANIFEST) == 0 || strcmp(mt, BERTH_MT_OCI_INDEX) == 0 ||
		      strcmp(mt, BERTH_MT_DOCKER_MANIFEST) == 0 || strcmp(mt, BERTH_MT_DOCKER_LIST) == 0);
}

static void check_descriptor(const struct berth_descriptor *d)
{
	FUZZ_CHECK(d->digest && berth_digest_valid(d->digest), "descriptor digest \"%s\"",
		   d->digest ? d->digest : "(null)");
	FUZZ_CHECK(d->size >= 0, "descriptor size %lld", (long long)d->size);
	FUZZ_CHECK(d->n_urls == 0 || d->urls, "n_urls without urls");
	for (size_t i = 0; i < d->n_urls; i++)
		FUZZ_CHECK(d->urls[i] && (strncasecmp(d->urls[i], "http://", 7) == 0 ||
					  strncasecmp(d->urls[i], "https://", 8) == 0),
			   "url \"%s\"", d->urls[i] ? d->urls[i] : "(null)");
	(void)berth_descriptor_is_foreign(d);
}

static void check(const struct berth_manifest *m, const char *ct)
{
	FUZZ_CHECK(is_accepted_type(m->media_type), "media type %p", (const void *)m->media_type);
	static const char *const by_kind[] = { BERTH_MT_OCI_MANIFEST, BERTH_MT_OCI_INDEX,
					       BERTH_MT_DOCKER_MANIFEST, BERTH_MT_DOCKER_LIST };
	FUZZ_CHECK((unsigned)m->kind < 4 && strcmp(by_kind[m->kind], m->media_type) == 0,
		   "kind %d vs %s", (int)m->kind, m->media_type);
	for (size_t i = 1; i <= 4; i++)
		if (ct == content_types[i])
			FUZZ_CHECK(strcmp(m->media_type, ct) == 0, "Content-Type %s parsed as %s", ct,
				   m->media_type);
	int image = m->kind == BERTH_MANIFEST_OCI_MANIFEST || m->kind == BERTH_MANIFEST_DOCKER_MANIFEST;
	if (image) {
		FUZZ_CHECK(m->has_config, "image manifest without config");
		FUZZ_CHECK(m->n_manifests == 0, "image manifest with %zu manifests", m->n_manifests);
	} else {
		FUZZ_CHECK(m->n_layers == 0, "index with %zu layers", m->n_layers);
	}
	if (m->has_config)
		check_descriptor(&m->config);
	FUZZ_CHECK(m->n_layers == 0 || m->layers, "n_layers without layers");
	for (size_t i = 0; i < m->n_layers; i++)
		check_descriptor(&m->layers[i]);
	FUZZ_CHECK(m->n_manifests == 0 || m->manifests, "n_manifests without manifests");
	for (size_t i = 0; i < m->n_manifests; i++)
		check_descriptor(&m->manifests[i]);
	if (m->has_subject)
		check_descriptor(&m->subject);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: the parser gets (body, len) and must not read past len. */
	void *body = malloc(size ? size : 1);
	if (!body)
		abort();
	memcpy(body, data, size);

	/* One of the four pushable types, or schema1 for a manifest an older Distribution stored. */
	const char *sniffed = berth_manifest_sniff_media_type(body, size);
	FUZZ_CHECK(is_accepted_type(sniffed) || strcmp(sniffed, BERTH_MT_DOCKER_SCHEMA1) == 0 ||
			   strcmp(sniffed, BERTH_MT_DOCKER_SCHEMA1_SIGNED) == 0,
		   "sniffed %p", (const void *)sniffed);

	for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
		const char *ct = content_types[i];
		struct berth_manifest *m = NULL;
		berth_err_clear();
		int rc = berth_manifest_parse(&m, ct, body, size);
		if (rc == 0) {
			FUZZ_CHECK(m != NULL, "success without a manifest");
			check(m, ct);
			if (!ct)
				FUZZ_CHECK(strcmp(sniffed, m->media_type) == 0,
					   "sniffed %s, parsed %s", sniffed, m->media_type);
		} else {
			FUZZ_CHECK(rc == BERTH_EINVALID || rc == BERTH_EDIGEST || rc == BERTH_EUNSUPPORTED,
				   "rc %d", rc);
			const struct berth_failure *err = berth_err_last();
			FUZZ_CHECK(err && err->code == rc, "failure without its message");
			FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL,
				   "unterminated error message");
		}
		berth_manifest_free(m);
	}
	free(body);
	return 0;
}

#include "registry/paths.h"
#include "core/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fmt(char *out, const char *f, ...) __attribute__((format(printf, 2, 3)));

static int fmt(char *out, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(out, BERTH_PATH_MAX, f, ap);
	va_end(ap);
	return (n < 0 || n >= BERTH_PATH_MAX) ? BERTH_EINVALID : 0;
}

/* Splits "<alg>:<hex>" into its parts; the algorithm is at most 15 characters. */
static int split_digest(const char *digest, char alg[16], const char **hex)
{
	const char *colon = strchr(digest, ':');
	if (!colon || colon == digest || (size_t)(colon - digest) >= 16 || !colon[1])
		return BERTH_EINVALID;
	memcpy(alg, digest, (size_t)(colon - digest));
	alg[colon - digest] = '\0';
	*hex = colon + 1;
	return 0;
}

int berth_path_blob_dir(char *out, const char *digest)
{
	char alg[16];
	const char *hex;
	if (split_digest(digest, alg, &hex) < 0 || strlen(hex) < 2)
		return BERTH_EINVALID;
	return fmt(out, BERTH_BLOBS_ROOT "/%s/%.2s/%s", alg, hex, hex);
}

int berth_path_blob_data(char *out, const char *digest)
{
	int rc = berth_path_blob_dir(out, digest);
	if (rc < 0)
		return rc;
	size_t n = strlen(out);
	if (n + sizeof("/data") > BERTH_PATH_MAX)
		return BERTH_EINVALID;
	memcpy(out + n, "/data", sizeof("/data"));
	return 0;
}

int berth_path_repo(char *out, const char *name)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s", name);
}

static int repo_digest_link(char *out, const char *name, const char *kind, const char *digest)
{
	char alg[16];
	const char *hex;
	if (split_digest(digest, alg, &hex) < 0)
		return BERTH_EINVALID;
	return fmt(out, BERTH_REPOS_ROOT "/%s/%s/%s/%s/link", name, kind, alg, hex);
}

int berth_path_layer_link(char *out, const char *name, const char *digest)
{
	return repo_digest_link(out, name, "_layers", digest);
}

int berth_path_revision_link(char *out, const char *name, const char *digest)
{
	return repo_digest_link(out, name, "_manifests/revisions", digest);
}

int berth_path_revisions_dir(char *out, const char *name, const char *alg)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_manifests/revisions/%s", name, alg);
}

int berth_path_tags_dir(char *out, const char *name)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_manifests/tags", name);
}

int berth_path_tag_dir(char *out, const char *name, const char *tag)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_manifests/tags/%s", name, tag);
}

int berth_path_tag_current(char *out, const char *name, const char *tag)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_manifests/tags/%s/current/link", name, tag);
}

int berth_path_tag_index_link(char *out, const char *name, const char *tag, const char *digest)
{
	char alg[16];
	const char *hex;
	if (split_digest(digest, alg, &hex) < 0)
		return BERTH_EINVALID;
	return fmt(out, BERTH_REPOS_ROOT "/%s/_manifests/tags/%s/index/%s/%s/link", name, tag, alg, hex);
}

int berth_path_upload_dir(char *out, const char *name, const char *uuid)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_uploads/%s", name, uuid);
}

int berth_path_upload_data(char *out, const char *name, const char *uuid)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_uploads/%s/data", name, uuid);
}

int berth_path_upload_startedat(char *out, const char *name, const char *uuid)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_uploads/%s/startedat", name, uuid);
}

int berth_path_upload_committed(char *out, const char *name, const char *uuid)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_uploads/%s/committed", name, uuid);
}

int berth_path_upload_hashstate(char *out, const char *name, const char *uuid, const char *alg,
				uint64_t offset)
{
	return fmt(out, BERTH_REPOS_ROOT "/%s/_uploads/%s/hashstates/%s/%" PRIu64, name, uuid, alg,
		   offset);
}

int berth_path_tags_generation(char *out, const char *name)
{
	return fmt(out, BERTH_STATE_ROOT "/tags/%s/_generation", name);
}

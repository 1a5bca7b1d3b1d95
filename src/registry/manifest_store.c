/*
 * Manifests: stored as blobs (byte for byte as pushed), linked into a repository under
 * _manifests/revisions/<alg>/<hex>/link, and named by tags under
 * _manifests/tags/<tag>/{current/link,index/<alg>/<hex>/link} (Distribution's layout).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/util.h"
#include "registry/manifest.h"
#include "registry/paths.h"
#include "registry/pulls.h"
#include "registry/reference.h"
#include "registry/registry_int.h"
#include "registry/retention.h"
#include "storage/storage.h"

static int is_digest_ref(const char *reference)
{
	return strchr(reference, ':') != NULL;
}

/* 0 if `name` has a revision link for digest. */
static int revision_exists(struct berth_registry *r, const char *name, const char *digest)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_revision_link(path, name, digest);
	if (rc < 0)
		return rc;
	return berth_link_check(r, path, 'r', name, digest);
}

/* 1 if this process has found name's revision link for digest before (and not deleted it). */
static int revision_seen(struct berth_registry *r, const char *name, const char *digest)
{
	char key[BERTH_PATH_MAX];
	berth_reg_cache_key(key, sizeof(key), 'r', name, digest);
	return berth_reg_cache_get(r->descriptors, key, NULL, NULL, NULL);
}

/*
 * Resolves a tag or digest to the digest of a manifest present in the repository. A tag's
 * current link is read every time (another instance may have moved it), but the revision link
 * it names is checked only the first time: a tag is written after its manifest's revision link,
 * and a manifest delete, here or through any other instance or Distribution, removes the tags
 * naming it with its revision link, so a tag found still names a present manifest. One storage
 * call instead of two for a cached manifest pulled by tag (on S3, one request instead of two).
 */
static int resolve(struct berth_registry *r, const char *name, const char *reference,
		   char digest[BERTH_DIGEST_STR_MAX])
{
	char path[BERTH_PATH_MAX];
	int rc;

	if (is_digest_ref(reference)) {
		if (strlen(reference) >= BERTH_DIGEST_STR_MAX)
			return BERTH_ENOTFOUND;
		memcpy(digest, reference, strlen(reference) + 1);
	} else {
		if ((rc = berth_path_tag_current(path, name, reference)) < 0)
			return rc;
		rc = berth_link_read_versioned(r, path, digest);
		if (rc < 0)
			return rc == BERTH_EINVALID ? BERTH_ENOTFOUND : rc;
		if (revision_seen(r, name, digest))
			return 0;
	}
	return revision_exists(r, name, digest);
}

static int read_manifest_blob(struct berth_registry *r, const char *digest, char **body, size_t *len)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_blob_data(path, digest);
	if (rc < 0)
		return rc;
	/* Accept stored manifests somewhat larger than what we take on push (other writers). */
	return berth_storage_get_content(body, len, r->driver, path, r->manifest_max * 4);
}

static const char *const media_types[] = {
	BERTH_MT_OCI_MANIFEST, BERTH_MT_OCI_INDEX, BERTH_MT_DOCKER_MANIFEST, BERTH_MT_DOCKER_LIST,
	BERTH_MT_DOCKER_SCHEMA1, BERTH_MT_DOCKER_SCHEMA1_SIGNED,
};

static uint64_t media_type_index(const char *mt)
{
	for (uint64_t i = 0; i < sizeof(media_types) / sizeof(media_types[0]); i++) {
		if (strcmp(mt, media_types[i]) == 0)
			return i;
	}
	return 0;
}

int berth_manifest_get(struct berth_manifest_content *out, struct berth_registry *r,
		       const char *name, const char *reference)
{
	char key[BERTH_DIGEST_STR_MAX + 8];
	uint64_t mt = 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = resolve(r, name, reference, out->digest)) < 0)
		return rc;
	/* Manifests are content-addressed: their bytes and media type never change. */
	berth_reg_cache_key(key, sizeof(key), 'm', NULL, out->digest);
	if (berth_reg_cache_get(r->manifests, key, &mt, &out->body, &out->len)) {
		out->media_type = media_types[mt];
		return 0;
	}
	if ((rc = read_manifest_blob(r, out->digest, &out->body, &out->len)) < 0)
		return rc;
	out->media_type = berth_manifest_sniff_media_type(out->body, out->len);
	berth_reg_cache_put(r->manifests, key, media_type_index(out->media_type), out->body, out->len);
	return 0;
}

void berth_manifest_content_release(struct berth_manifest_content *c)
{
	berth_safefree(c->body);
	c->len = 0;
}

/* Records the first missing reference and returns BERTH_ENOTFOUND. */
static int missing(struct berth_manifest_put_result *res, const char *digest, int is_manifest)
{
	snprintf(res->missing, sizeof(res->missing), "%s", digest);
	res->missing_is_manifest = is_manifest;
	return berth_err_set(BERTH_ENOTFOUND, "%s %s unknown to repository",
			     is_manifest ? "manifest" : "blob", digest);
}

static int is_manifest_media_type(const char *mt)
{
	return mt && (strcmp(mt, BERTH_MT_OCI_MANIFEST) == 0 || strcmp(mt, BERTH_MT_DOCKER_MANIFEST) == 0 ||
		      strcmp(mt, BERTH_MT_OCI_INDEX) == 0 || strcmp(mt, BERTH_MT_DOCKER_LIST) == 0);
}

static int child_must_exist(const struct berth_registry *r, const struct berth_descriptor *d);

/*
 * With online garbage collection, a child's own references (its config and layers, or its
 * children) are referenced anew too: a collection that found the child untagged and old may be
 * running, and it keeps the child once the refresh makes it young, but it did not mark what the
 * child references. BERTH_ENOTFOUND if one of them is gone (the child must be pushed again).
 */
static int refresh_child_refs(struct berth_registry *r, const char *name, const char *digest, int depth)
{
	struct berth_manifest_content mc;
	struct berth_manifest *m = NULL;
	int rc = berth_manifest_get(&mc, r, name, digest);
	if (rc < 0)
		return rc;
	if (berth_manifest_parse(&m, NULL, mc.body, mc.len) < 0) {
		berth_manifest_content_release(&mc);
		return 0; /* nothing it names can be read: the collection keeps it too (gc.c) */
	}
	if (m->has_config)
		rc = berth_blob_refresh(r, m->config.digest);
	for (size_t i = 0; rc == 0 && i < m->n_layers; i++)
		if (!berth_descriptor_is_foreign(&m->layers[i]))
			rc = berth_blob_refresh(r, m->layers[i].digest);
	for (size_t i = 0; rc == 0 && depth < 2 && i < m->n_manifests; i++) {
		rc = revision_exists(r, name, m->manifests[i].digest);
		if (rc == 0)
			rc = berth_blob_refresh(r, m->manifests[i].digest);
		if (rc == 0)
			rc = refresh_child_refs(r, name, m->manifests[i].digest, depth + 1);
		if (rc == BERTH_ENOTFOUND && !child_must_exist(r, &m->manifests[i]))
			rc = 0;
	}
	berth_manifest_free(m);
	berth_manifest_content_release(&mc);
	return rc;
}

/* revision_exists, and with online garbage collection, the child's age starts again (it is
 * referenced now: see verify_references), and so do the ages of what it references. */
static int child_exists(struct berth_registry *r, const char *name, const char *digest)
{
	int rc = revision_exists(r, name, digest);
	if (rc == 0 && r->gc_refresh)
		rc = berth_blob_refresh(r, digest);
	if (rc == 0 && r->gc_refresh)
		rc = refresh_child_refs(r, name, digest, 0);
	return rc;
}

/* Whether validation.manifests.indexes asks for this index child to exist (as Distribution's
 * platformMustExist: with a platform list, only children of a listed os and architecture). */
static int child_must_exist(const struct berth_registry *r, const struct berth_descriptor *d)
{
	if (r->index_children == BERTH_INDEX_CHILDREN_NONE)
		return 0;
	if (r->index_children == BERTH_INDEX_CHILDREN_ALL || r->n_platforms == 0)
		return 1;
	for (size_t i = 0; i < r->n_platforms; i++)
		if (strcmp(d->platform_os ? d->platform_os : "", r->platform_os[i]) == 0 &&
		    strcmp(d->platform_arch ? d->platform_arch : "", r->platform_arch[i]) == 0)
			return 1;
	return 0;
}

/* Every config, layer and child (as validation.manifests.indexes asks) the manifest names must
 * be in the repository. Called with gc_lock held shared: with online garbage collection each
 * check also refreshes the blob's age, so the collection either deleted it before (the PUT
 * answers MANIFEST_BLOB_UNKNOWN) or sees it young until this manifest is stored. */
static int verify_references(struct berth_manifest_put_result *res, struct berth_registry *r,
			     const char *name, const struct berth_manifest *m)
{
	int rc;
	if (m->has_config) {
		rc = berth_blob_stat_locked(NULL, r, name, m->config.digest);
		if (rc == BERTH_ENOTFOUND)
			return missing(res, m->config.digest, 0);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < m->n_layers; i++) {
		const struct berth_descriptor *d = &m->layers[i];
		if (berth_descriptor_is_foreign(d)) {
			for (size_t u = 0; u < d->n_urls; u++) {
				if (!berth_registry_url_allowed(r, d->urls[u]))
					return berth_err_set(BERTH_EINVALID,
							     "layer %s: url not allowed by validation.manifests.urls",
							     d->digest);
			}
			continue;
		}
		rc = berth_blob_stat_locked(NULL, r, name, d->digest);
		if (rc == BERTH_ENOTFOUND && is_manifest_media_type(d->media_type))
			rc = child_exists(r, name, d->digest);
		if (rc == BERTH_ENOTFOUND)
			return missing(res, d->digest, 0);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < m->n_manifests; i++) {
		if (!child_must_exist(r, &m->manifests[i]))
			continue;
		rc = child_exists(r, name, m->manifests[i].digest);
		if (rc == BERTH_ENOTFOUND)
			return missing(res, m->manifests[i].digest, 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Creates a new tag's directory whole: Distribution lists every directory under tags/ as a
 * tag, so one must never be seen (nor left by a crash) without its current link. The link is
 * written in a staging directory under the repository's _uploads (a random name; a crash leaves
 * it to upload purging, like an abandoned upload) which is then renamed into place.
 * BERTH_EEXISTS when the tag's directory exists already; any failure leaves the caller to
 * write the link in place. The fs and inmem drivers move a directory whole; a driver without
 * directories (S3: there a tag exists only once its link does) fails that move, and a driver
 * that reported success without moving would be caught by write_tag's final check.
 * sync BERTH_SYNC_FILE (a manifest the pull-through cache fetched): the link and the move into
 * place are made durable lazily; a crash may leave the tag's directory without its current link,
 * which reads as no tag (taglist.c's tag_complete) and which write_tag fills in (EEXISTS).
 */
static int create_tag_dir(struct berth_registry *r, const char *name, const char *tag,
			  const char *digest, enum berth_sync sync)
{
	char tag_dir[BERTH_PATH_MAX], staging[BERTH_PATH_MAX], link[BERTH_PATH_MAX + 32];
	char uuid[37];
	struct berth_stat st;
	int rc;

	if ((rc = berth_path_tag_dir(tag_dir, name, tag)) < 0)
		return rc;
	rc = berth_storage_stat(&st, r->driver, tag_dir);
	if (rc != BERTH_ENOTFOUND)
		return rc < 0 ? rc : BERTH_EEXISTS;
	berth_uuid4(uuid);
	if ((rc = berth_path_upload_dir(staging, name, uuid)) < 0)
		return rc;
	size_t n = strlen(staging);
	snprintf(link, sizeof(link), "%s/tag/current/link", staging);
	if ((rc = berth_link_write_as(r, link, digest, sync)) == 0) {
		link[n + strlen("/tag")] = '\0';
		rc = berth_storage_move_as(r->driver, link, tag_dir, sync);
	}
	berth_storage_remove(r->driver, staging);
	return rc;
}

/*
 * Points tag at digest: the current link first (in a new directory made whole, see above),
 * then the index link, so that a crash in between leaves a tag that resolves; a missing index
 * link costs nothing, as tags resolve through current links. A DELETE of the tag may remove the
 * directory between the two writes and leave the index link alone: the current link is checked
 * afterwards and written again if it went, so that this PUT comes after that DELETE.
 * sync: the links' (berth_link_write_as).
 */
static int write_tag(int *created, struct berth_registry *r, const char *name, const char *tag,
		     const char *digest, enum berth_sync sync)
{
	char current[BERTH_PATH_MAX], index[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc;

	if ((rc = berth_path_tag_current(current, name, tag)) < 0 ||
	    (rc = berth_path_tag_index_link(index, name, tag, digest)) < 0)
		return rc;
	int made = create_tag_dir(r, name, tag, digest, sync);
	/* (a failed look counts as new: telling the other instances costs only a listing) */
	*created = made != BERTH_EEXISTS;
	if (made < 0 && (rc = berth_link_write_as(r, current, digest, sync)) < 0)
		return rc;
	if ((rc = berth_link_write_as(r, index, digest, sync)) < 0)
		return rc;
	rc = berth_storage_stat(&st, r->driver, current);
	if (rc == BERTH_ENOTFOUND)
		rc = berth_link_write_as(r, current, digest, sync);
	return rc;
}

/* Stores the manifest bytes as a blob (unless present) and links the revision and the tag.
 * Never BERTH_ENOTFOUND: that answer is kept for a missing reference. link_sync: the links'
 * (berth_manifest_put_fetched); the bytes are always durable at once, the blob store is shared
 * and a push that finds them there links them without syncing their name. */
static int store_manifest(struct berth_registry *r, const char *name, const char *tag,
			  const char *digest, const void *body, size_t len,
			  enum berth_sync link_sync)
{
	char path[BERTH_PATH_MAX];
	int rc;

	/* (present: its age starts again, for the online garbage collection) */
	if (berth_blob_refresh(r, digest) < 0) {
		if ((rc = berth_path_blob_data(path, digest)) < 0 ||
		    (rc = berth_storage_put_content(r->driver, path, body, len)) < 0)
			goto out;
		/* written: a sweep of another instance that found the old copy must be over */
		if (r->gc_refresh && (rc = berth_blob_refresh(r, digest)) < 0)
			goto out;
	}
	if ((rc = berth_path_revision_link(path, name, digest)) < 0 ||
	    (rc = berth_link_write_as(r, path, digest, link_sync)) < 0)
		goto out;
	if (!tag)
		return 0;
	int created = 0;
	rc = write_tag(&created, r, name, tag, digest, link_sync);
	berth_tags_changed(r, name);
	if (created) /* a tag moving changes no list */
		berth_tags_added_or_removed(r, name);
	/* A DELETE by digest may have removed the revision link since, and looked for tags to
	 * untag before this one was written: the link goes back, so this PUT comes after it. */
	if (rc == 0 && revision_exists(r, name, digest) == BERTH_ENOTFOUND)
		rc = berth_link_write_as(r, path, digest, link_sync);
out:
	return rc == BERTH_ENOTFOUND ? BERTH_ERROR : rc;
}

/* fetched 1: a manifest the pull-through cache fetched (berth_manifest_put_fetched): the
 * referenced blobs and children need not be in the repository (its blobs come on demand), and
 * its links' names are made durable lazily. */
static int put_manifest(struct berth_manifest_put_result *res, struct berth_registry *r,
			const char *name, const char *reference, const char *content_type,
			const void *body, size_t len, int fetched)
{
	struct berth_manifest *m = NULL;
	enum berth_digest_alg alg = BERTH_ALG_SHA256;
	int by_digest = is_digest_ref(reference);
	int rc;

	memset(res, 0, sizeof(*res));
	if (len > r->manifest_max)
		return berth_err_set(BERTH_ETOOLARGE, "manifest is larger than %zu bytes", r->manifest_max);
	/* Distribution (2.8 and 3) has no parser to pick for these, whatever the body says */
	if (berth_manifest_content_type_generic(content_type))
		return berth_err_set(BERTH_EINVALID,
				     "unsupported manifest media type and no default available: %.64s",
				     content_type ? content_type : "");
	if (by_digest && berth_digest_parse(reference, &alg, NULL) < 0)
		return berth_err_set(BERTH_EDIGEST, "invalid digest reference");
	berth_digest_bytes(alg, body, len, res->digest);
	if (by_digest && strcmp(res->digest, reference) != 0)
		return berth_err_set(BERTH_EDIGEST, "manifest content does not match digest %s", reference);
	if ((rc = berth_manifest_parse(&m, content_type, body, len)) < 0) {
		/* an unsupported media type is answered as any other invalid manifest */
		if (rc == BERTH_EUNSUPPORTED)
			rc = berth_err_set(BERTH_EINVALID, "%s", berth_err_message(rc));
		return rc;
	}
	/* held until the tag is written: a repository delete waits (registry/repo_delete.c) */
	berth_repo_lock_shared(r, name);
	/* and until the manifest is stored, the online garbage collection deletes nothing */
	berth_gc_lock_shared(r);
	if (!fetched && (rc = verify_references(res, r, name, m)) < 0)
		goto out_unlock;
	struct berth_tag_guard guard = { NULL };
	if (!by_digest && (rc = berth_tag_guard_enter(&guard, r, name, reference, res->digest)) < 0)
		goto out_unlock;
	struct berth_quota_guard quota = { NULL };
	if ((rc = berth_quota_enter(&quota, r, name, by_digest ? NULL : reference)) < 0) {
		berth_tag_guard_leave(&guard);
		goto out_unlock;
	}
	/* the manifest's own bytes, against a bytes quota, before they are stored */
	struct berth_bytes_guard bytes;
	if ((rc = berth_bytes_link_enter(&bytes, r, name, BERTH_LINK_REVISION, res->digest, len)) < 0) {
		berth_quota_leave(&quota);
		berth_tag_guard_leave(&guard);
		goto out_unlock;
	}
	rc = store_manifest(r, name, by_digest ? NULL : reference, res->digest, body, len,
			    fetched ? BERTH_SYNC_FILE : BERTH_SYNC_ALL);
	berth_bytes_link_leave(&bytes, rc == 0 || revision_exists(r, name, res->digest) == 0);
	berth_quota_leave(&quota);
	berth_tag_guard_leave(&guard);
	if (rc < 0)
		goto out_unlock;
	if (m->has_subject)
		snprintf(res->subject, sizeof(res->subject), "%s", m->subject.digest);
out_unlock:
	berth_gc_unlock(r);
	berth_repo_unlock(r, name);
	berth_manifest_free(m);
	return rc;
}

int berth_manifest_put(struct berth_manifest_put_result *res, struct berth_registry *r,
		       const char *name, const char *reference, const char *content_type,
		       const void *body, size_t len)
{
	return put_manifest(res, r, name, reference, content_type, body, len, 0);
}

int berth_manifest_put_fetched(struct berth_manifest_put_result *res, struct berth_registry *r,
			       const char *name, const char *reference, const char *content_type,
			       const void *body, size_t len)
{
	return put_manifest(res, r, name, reference, content_type, body, len, 1);
}

/* Parent directory of a link path ("<...>/<hex>/link" -> "<...>/<hex>"). */
static void strip_link(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
}

struct untag_ctx {
	struct berth_registry *reg;
	const char *digest;
	int rc;
	berth_untag_cb on_untag;
	void *on_untag_payload;
	int untagged; /* tags removed (or maybe removed: a failed remove) */
};

static int untag_if_current(const char *tag_dir, void *payload)
{
	struct untag_ctx *ctx = payload;
	char path[BERTH_PATH_MAX];
	char current[BERTH_DIGEST_STR_MAX];
	int n = snprintf(path, sizeof(path), "%s/current/link", tag_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return 0;
	if (berth_link_read(ctx->reg, path, current) == 0 && strcmp(current, ctx->digest) == 0) {
		int rc = berth_storage_remove(ctx->reg->driver, tag_dir);
		ctx->untagged++;
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			ctx->rc = rc;
		else if (ctx->on_untag)
			ctx->on_untag(strrchr(tag_dir, '/') ? strrchr(tag_dir, '/') + 1 : tag_dir,
				      ctx->on_untag_payload);
	}
	return 0;
}

/* berth_manifest_delete_untagging, once immutable tags allowed it. */
static int delete_reference(struct berth_registry *r, const char *name, const char *reference,
			    berth_untag_cb on_untag, void *payload)
{
	char path[BERTH_PATH_MAX];
	int rc;

	if (!is_digest_ref(reference)) {
		if ((rc = berth_path_tag_current(path, name, reference)) < 0)
			return rc;
		struct berth_stat st;
		if ((rc = berth_storage_stat(&st, r->driver, path)) < 0)
			return rc;
		if ((rc = berth_path_tag_dir(path, name, reference)) < 0)
			return rc;
		rc = berth_storage_remove(r->driver, path);
		berth_tags_changed(r, name);
		berth_tags_added_or_removed(r, name);
		if (rc == 0) /* a tag pushed again later starts with no pulls (retention's keeppulledwithin) */
			(void)berth_pulls_forget(berth_retention_pulls(r), r->driver, name, reference);
		return rc;
	}
	if ((rc = revision_exists(r, name, reference)) < 0)
		return rc;
	if ((rc = berth_path_revision_link(path, name, reference)) < 0)
		return rc;
	char key[BERTH_PATH_MAX];
	berth_reg_cache_key(key, sizeof(key), 'r', name, reference);
	berth_reg_cache_remove(r->descriptors, key);
	strip_link(path);
	struct berth_bytes_guard bytes;
	if ((rc = berth_bytes_unlink_enter(&bytes, r, name, BERTH_LINK_REVISION, reference)) < 0)
		return rc;
	rc = berth_storage_remove(r->driver, path);
	berth_bytes_unlink_leave(&bytes, rc == 0);
	if (rc < 0)
		return rc;
	/* its pull record (retention's keeppulledwithin) goes with it; one left is harmless */
	(void)berth_pulls_forget(berth_retention_pulls(r), r->driver, name, reference);
	struct untag_ctx ctx = { r, reference, 0, on_untag, payload, 0 };
	if ((rc = berth_path_tags_dir(path, name)) < 0)
		return rc;
	rc = berth_storage_list(r->driver, path, untag_if_current, &ctx);
	berth_tags_changed(r, name);
	if (ctx.untagged)
		berth_tags_added_or_removed(r, name);
	if (rc < 0 && rc != BERTH_ENOTFOUND)
		return rc;
	return ctx.rc;
}

int berth_manifest_delete_untagging(struct berth_registry *r, const char *name,
				    const char *reference, berth_untag_cb on_untag, void *payload)
{
	struct berth_tag_guard guard;
	int rc = berth_tag_guard_enter_delete(&guard, r, name, reference);
	if (rc < 0)
		return rc;
	rc = delete_reference(r, name, reference, on_untag, payload);
	berth_tag_guard_leave(&guard);
	return rc;
}

int berth_manifest_delete(struct berth_registry *r, const char *name, const char *reference)
{
	return berth_manifest_delete_untagging(r, name, reference, NULL, NULL);
}

/* ---- referrers ---- */

struct referrers_ctx {
	struct berth_registry *reg;
	const char *subject;
	const char *artifact_type;
	const char *alg;
	json_t *manifests;
	int rc;
};

static json_t *referrer_descriptor(const struct berth_manifest *m, const char *digest, size_t len)
{
	const char *artifact_type = m->artifact_type;
	if (!artifact_type && m->kind == BERTH_MANIFEST_OCI_MANIFEST && m->has_config)
		artifact_type = m->config.media_type;
	json_t *d = json_object();
	json_object_set_new(d, "mediaType", json_string(m->media_type));
	json_object_set_new(d, "digest", json_string(digest));
	json_object_set_new(d, "size", json_integer((json_int_t)len));
	if (artifact_type)
		json_object_set_new(d, "artifactType", json_string(artifact_type));
	if (m->annotations_json) {
		json_t *a = json_loads(m->annotations_json, 0, NULL);
		if (a)
			json_object_set_new(d, "annotations", a);
	}
	return d;
}

static int visit_revision(const char *path, void *payload)
{
	struct referrers_ctx *ctx = payload;
	const char *hex = strrchr(path, '/');
	char digest[BERTH_DIGEST_STR_MAX];
	char *body = NULL;
	size_t len = 0;
	struct berth_manifest *m = NULL;

	if (!hex)
		return 0;
	int n = snprintf(digest, sizeof(digest), "%s:%s", ctx->alg, hex + 1);
	if (n < 0 || (size_t)n >= sizeof(digest) || !berth_digest_valid(digest))
		return 0;
	if (read_manifest_blob(ctx->reg, digest, &body, &len) < 0)
		return 0;
	/* Cheap filter before parsing: a referrer must mention its subject's digest. */
	if (strstr(body, ctx->subject) && berth_manifest_parse(&m, NULL, body, len) == 0 &&
	    m->has_subject && strcmp(m->subject.digest, ctx->subject) == 0) {
		json_t *d = referrer_descriptor(m, digest, len);
		json_t *at = json_object_get(d, "artifactType");
		if (!ctx->artifact_type || (at && strcmp(json_string_value(at), ctx->artifact_type) == 0))
			json_array_append_new(ctx->manifests, d);
		else
			json_decref(d);
	}
	berth_manifest_free(m);
	free(body);
	return 0;
}

static int cmp_by_digest(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	return strcmp(json_string_value(json_object_get(*x, "digest")),
		      json_string_value(json_object_get(*y, "digest")));
}

int berth_referrers(char **json_out, size_t *len_out, struct berth_registry *r, const char *name,
		    const char *digest, const char *artifact_type)
{
	static const char *const algs[] = { "sha256", "sha512" };
	char path[BERTH_PATH_MAX];
	struct referrers_ctx ctx = { r, digest, artifact_type, NULL, json_array(), 0 };
	int rc;

	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		ctx.alg = algs[i];
		if ((rc = berth_path_revisions_dir(path, name, algs[i])) < 0)
			goto out;
		rc = berth_storage_list(r->driver, path, visit_revision, &ctx);
		if (rc < 0 && rc != BERTH_ENOTFOUND)
			goto out;
	}
	/* Sort for a stable answer: storage lists in no particular order. */
	size_t n = json_array_size(ctx.manifests);
	json_t **items = berth_calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(ctx.manifests, i));
	qsort(items, n, sizeof(*items), cmp_by_digest);
	json_array_clear(ctx.manifests);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ctx.manifests, items[i]);
	free(items);

	json_t *index = json_object();
	json_object_set_new(index, "schemaVersion", json_integer(2));
	json_object_set_new(index, "mediaType", json_string(BERTH_MT_OCI_INDEX));
	json_object_set(index, "manifests", ctx.manifests);
	*json_out = json_dumps(index, JSON_COMPACT);
	*len_out = strlen(*json_out);
	json_decref(index);
	rc = 0;
out:
	json_decref(ctx.manifests);
	return rc;
}

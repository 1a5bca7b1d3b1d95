/*
 * The registry core: repositories, blobs, uploads, manifests and tags over a storage driver,
 * in Distribution's layout (registry/paths.h). No HTTP here: callers pass validated names,
 * references and digests, and translate the returned BERTH_E* codes (api/errors.c).
 *
 * Every function is thread-safe and blocking (it does storage I/O).
 */
#ifndef BERTH_REGISTRY_REGISTRY_H
#define BERTH_REGISTRY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "core/bodypipe.h"
#include "core/digest.h"
#include "core/vec.h"
#include "storage/driver.h"

struct berth_registry;
struct berth_tag_rule;
struct berth_quota_rule;
struct berth_retention_rule;

struct berth_registry_config {
	struct berth_storage_driver *driver; /* taken over by the registry */
	int delete_enabled;                  /* storage.delete.enabled */
	size_t manifest_max;                 /* largest manifest accepted, bytes */
	int readonly;                        /* storage.maintenance.readonly.enabled */
	int redirect;                        /* not storage.redirect.disable: a blob GET may send the
					      * client to the driver's URL for the blob (S3) */
	size_t descriptor_cache_size;        /* storage.cache.blobdescriptorsize; 0 = no cache */
	/* storage.cache.blobdescriptor: redis (registry/cache_redis.h), taken over by the registry
	 * (freed by it on failure too); NULL: none. Its calls block the request's thread (bounded by its timeouts). */
	struct berth_redis_cache *redis;
	size_t catalog_max;                  /* catalog.maxentries: most repositories a catalog page
					      * holds; 0 = 1000 */
	size_t tags_max;                     /* tags.maxtags: most tags a page holds when n asks for
					      * more; 0 = 1000 */
	/* validation.manifests.urls: POSIX extended regular expressions a foreign layer's URLs
	 * must match (any of allow, when given) and must not match (none of deny). */
	const char *const *urls_allow;
	size_t n_urls_allow;
	const char *const *urls_deny;
	size_t n_urls_deny;
	/* validation.manifests.indexes: which children of an index must exist in the repository
	 * before it is accepted; with BERTH_INDEX_CHILDREN_LIST, those whose platform is one of
	 * the n_platforms (os, architecture) pairs (every child when n_platforms is 0). */
	int index_children;                  /* enum berth_index_children */
	const char *const *platform_os;
	const char *const *platform_arch;
	size_t n_platforms;
	/* policies.immutabletags (registry/policy.h): strings copied (compiled) by the registry. */
	const struct berth_tag_rule *immutable_tags;
	size_t n_immutable_tags;
	/* policies.quotas (registry/quota.h): patterns compiled, copied by the registry. */
	const struct berth_quota_rule *quotas;
	size_t n_quotas;
	/* policies.retention (registry/retention.h): patterns compiled by the registry. */
	const struct berth_retention_rule *retention_rules;
	size_t n_retention_rules;
	int retention_dry_run;
	/* storage.maintenance.gc.enabled: links and references refresh blob ages, under the lock
	 * online garbage collection deletes with (registry/gc_online.h). Needs a driver with
	 * `touch`. */
	int gc_online;
};

enum berth_index_children { BERTH_INDEX_CHILDREN_ALL, BERTH_INDEX_CHILDREN_NONE, BERTH_INDEX_CHILDREN_LIST };

int berth_registry_new(struct berth_registry **out, const struct berth_registry_config *cfg);
/* Frees the registry and its driver. Accepts NULL. */
void berth_registry_free(struct berth_registry *r);
/* Register the registry's metrics: uploads in progress; cache hits and misses. */
void berth_registry_metrics_register(void);
void berth_registry_cache_metrics_register(void);
int berth_registry_delete_enabled(const struct berth_registry *r);
int berth_registry_readonly(const struct berth_registry *r);
size_t berth_registry_manifest_max(const struct berth_registry *r);
/* catalog.maxentries and tags.maxtags (berth_registry_config). */
size_t berth_registry_catalog_max(const struct berth_registry *r);
size_t berth_registry_tags_max(const struct berth_registry *r);
struct berth_storage_driver *berth_registry_driver(struct berth_registry *r);

/* ---- blobs (layers and configs, linked per repository under _layers) ---- */

/* Size of a blob linked into repository `name`. BERTH_ENOTFOUND if not linked or gone. For
 * pulls (a GET): the blob's age is left alone. */
int berth_blob_stat(uint64_t *size, struct berth_registry *r, const char *name, const char *digest);
/* berth_blob_stat for a client that may reference the blob next (a HEAD: a pusher that finds a
 * layer so skips pushing it, then PUTs its manifest): with online garbage collection the blob's
 * age restarts too, so it stays for `delay` after the check (registry/gc_online.h). Costs a
 * storage write then (on S3 a CopyObject). */
int berth_blob_stat_refresh(uint64_t *size, struct berth_registry *r, const char *name, const char *digest);
/* A URL the client can fetch a linked blob from itself (a presigned S3 URL, a storage
 * middleware's), owned by the caller: BERTH_EUNSUPPORTED when redirects are off or the driver
 * has none. client_ip: the client's address (X-Forwarded-For & co.), or NULL. */
int berth_blob_url(char **out, struct berth_registry *r, const char *name, const char *digest,
		   const char *client_ip);
/* Opens a linked blob for reading at offset. *out is the caller's (close with ->close). */
int berth_blob_open(struct berth_reader **out, struct berth_registry *r, const char *name,
		    const char *digest, uint64_t offset);
/* Unlinks a blob from a repository (the data stays until garbage collection). */
int berth_blob_delete(struct berth_registry *r, const char *name, const char *digest);
/*
 * Links an existing blob into `name`: from repository `from`, or (from == NULL) from wherever it
 * is in the registry; its size into *size (when not NULL). BERTH_ENOTFOUND if the source does
 * not have it; BERTH_EDENIED (with its message, core/err.h) if it would pass a bytes quota
 * (registry/quota.h).
 */
int berth_blob_mount(uint64_t *size, struct berth_registry *r, const char *name, const char *digest,
		     const char *from);

/* ---- uploads (resumable, under _uploads/<uuid>) ---- */

struct berth_upload;

/* Creates an upload session and writes its startedat file. uuid_out receives its id. */
int berth_upload_create(struct berth_registry *r, const char *name, char uuid_out[37]);
/* Removes a session that was never opened (or whose open failed), best effort. */
void berth_upload_remove(struct berth_registry *r, const char *name, const char *uuid);
/*
 * Opens an existing upload for exclusive use by the caller until berth_upload_close.
 * BERTH_ENOTFOUND if there is no such upload in this repository, BERTH_EBUSY if another request
 * holds it.
 */
int berth_upload_open(struct berth_upload **out, struct berth_registry *r, const char *name,
		      const char *uuid);
/* berth_upload_open for data that is read again soon after its commit (a blob the pull-through
 * cache fetches): storage keeps it in memory where it can (BERTH_WRITER_APPEND_CACHED). On a
 * local driver berth_upload_write then hashes and writes on the caller's thread (no body pipe,
 * core/bodypipe.h): for a caller that is a thread of its own, not an HTTP polling thread.
 * Content that can be fetched again: its commit makes the data and the blob's name durable (the
 * blob store is shared with hosted repositories) before the repository's link shows it, and that
 * link's name durable lazily (BERTH_SYNC_FILE): a crash may lose it, never leave it torn. */
int berth_upload_open_cached(struct berth_upload **out, struct berth_registry *r, const char *name,
			     const char *uuid);
/*
 * Opens an upload whose whole body comes in one request, with the digest it is to have: a
 * session's (uuid, as berth_upload_open) or, with uuid NULL, a monolithic POST's. Where the
 * driver stages writes (storage/driver.h: S3) and the digest is sha256, the bytes of a
 * monolithic POST, or of a session that holds none yet, go straight to the blob's own place
 * and appear there only on a commit whose digest matches (berth_upload_commit with `digest`;
 * nothing else can be committed then); a monolithic POST then stores no session either.
 * Otherwise as berth_upload_open (a monolithic POST's session is created first).
 */
int berth_upload_open_whole(struct berth_upload **out, struct berth_registry *r, const char *name,
			    const char *uuid, const char *digest);
/* Size of an upload without opening it. BERTH_ENOTFOUND if there is no such upload. */
int berth_upload_stat(uint64_t *size, struct berth_registry *r, const char *name, const char *uuid);
/* Bytes received so far: before a body, or after a checkpoint or a commit. */
uint64_t berth_upload_size(const struct berth_upload *u);
const char *berth_upload_uuid(const struct berth_upload *u);
/* Appends bytes (hashing them as they go). BERTH_ENOSPC when storage is full. */
int berth_upload_write(struct berth_upload *u, const void *buf, size_t n);
/*
 * For a body fed from a thread that must not wait on storage (an HTTP polling thread), called
 * before the body where storage work runs: on a remote driver, reads the saved hash state and
 * starts the upload's body pipe (core/bodypipe.h), so that berth_upload_offer never calls the
 * driver. Nothing to do (0) on a local driver.
 */
int berth_upload_prepare_body(struct berth_upload *u);
/* Announces a body of n bytes, before it (storage/driver.h, the writer's expect): storage may
 * store it as it comes; a body cut short then leaves the upload as it was before, but for
 * whole parts stored (S3). A hint: it cannot fail. */
void berth_upload_expect(struct berth_upload *u, uint64_t n);
/*
 * berth_upload_write for such a thread: on a remote driver (once prepared) the bytes go to the
 * pipe, and when its ring is full none are taken: park(arg) is called at once and BERTH_EBUSY
 * answered, and wake(arg) comes later from another thread, when the same bytes may be offered
 * again (berth_body_pipe_offer). Elsewhere, berth_upload_write.
 */
int berth_upload_offer(struct berth_upload *u, const void *buf, size_t n,
		       berth_body_pipe_cb park, berth_body_pipe_cb wake, void *arg);
/* Saves the hash state at the current offset so a later request resumes without re-reading. */
int berth_upload_checkpoint(struct berth_upload *u);
/*
 * Completes the upload: verifies the bytes hash to `digest`, moves them into the blob store
 * (unless that blob already exists), links the blob into the repository and removes the session.
 * BERTH_EDIGEST if the content does not match (the session is then removed: nothing is stored);
 * BERTH_EDENIED (with its message, core/err.h) if linking it would pass a bytes quota (likewise
 * removed).
 */
int berth_upload_commit(struct berth_upload *u, const char *digest);
/*
 * Checks that the bytes written hash to digest, storing nothing (berth_upload_commit then
 * stores them; it checks again, at no cost once the bytes are hashed). 0, BERTH_EDIGEST (the
 * session stays, to be cancelled) or the error of a write that failed. Blocks on storage.
 */
int berth_upload_verify(struct berth_upload *u, const char *digest);
/* Removes the session and its data. */
int berth_upload_cancel(struct berth_upload *u);
/* Releases the session (does not remove it). Accepts NULL. */
void berth_upload_close(struct berth_upload *u);

/* ---- manifests ---- */

struct berth_manifest_content {
	char *body;         /* heap, owned; release with berth_manifest_content_release */
	size_t len;
	char digest[BERTH_DIGEST_STR_MAX];
	const char *media_type; /* static */
};

/* Reads a manifest by tag or digest. BERTH_ENOTFOUND when unknown. */
int berth_manifest_get(struct berth_manifest_content *out, struct berth_registry *r,
		       const char *name, const char *reference);
void berth_manifest_content_release(struct berth_manifest_content *c);

struct berth_manifest_put_result {
	char digest[BERTH_DIGEST_STR_MAX];  /* the stored manifest's digest */
	char subject[BERTH_DIGEST_STR_MAX]; /* its subject's digest, or "" */
	char missing[BERTH_DIGEST_STR_MAX]; /* on BERTH_ENOTFOUND: the first unknown reference */
	int missing_is_manifest;            /* that reference was an index child */
};

/*
 * Validates and stores a manifest, byte for byte, and points the tag at it when reference is a
 * tag. Errors: BERTH_EINVALID (malformed / unsupported), BERTH_EDIGEST (reference is a digest
 * the body does not hash to, or a descriptor digest is malformed), BERTH_ENOTFOUND (a referenced
 * blob or child manifest is not in the repository), BERTH_ETOOLARGE, BERTH_EDENIED (reference is
 * an immutable tag that names another manifest, registry/policy.h; or a quota would be passed,
 * registry/quota.h). Every failure but a storage one has its message for the answer (core/err.h,
 * berth_err_message).
 */
int berth_manifest_put(struct berth_manifest_put_result *res, struct berth_registry *r,
		       const char *name, const char *reference, const char *content_type,
		       const void *body, size_t len);
/*
 * berth_manifest_put for a manifest the pull-through cache fetched from its upstream: the same
 * checks of the bytes, but the blobs and children it references need not be in the repository
 * yet (they are fetched when pulled), as Distribution's proxy stores with SkipLayerVerification.
 * Its bytes, stored as a blob, are durable at once (the blob store is shared with hosted
 * repositories); its links are durable before their names show them, but the names (the
 * revision, the tag) are made durable lazily (BERTH_SYNC_FILE): a crash may lose them, and the
 * manifest is then fetched again.
 */
int berth_manifest_put_fetched(struct berth_manifest_put_result *res, struct berth_registry *r,
			       const char *name, const char *reference, const char *content_type,
			       const void *body, size_t len);
/* By tag: removes the tag. By digest: removes the manifest and every tag pointing at it.
 * BERTH_EDENIED for an immutable tag, or a digest an immutable tag names (registry/policy.h). */
int berth_manifest_delete(struct berth_registry *r, const char *name, const char *reference);
/* Called with the name of each tag a delete by digest removed (notification events). */
typedef void (*berth_untag_cb)(const char *tag, void *payload);
/* berth_manifest_delete, reporting each tag removed along with a manifest deleted by digest. */
int berth_manifest_delete_untagging(struct berth_registry *r, const char *name,
				    const char *reference, berth_untag_cb on_untag, void *payload);
/*
 * The OCI image index (JSON) of the manifests in `name` whose subject is `digest`, filtered by
 * artifact_type when not NULL. *json_out is heap, the caller's.
 */
int berth_referrers(char **json_out, size_t *len_out, struct berth_registry *r, const char *name,
		    const char *digest, const char *artifact_type);

/* ---- expiry of cached content (the pull-through cache's TTL, proxy/scheduler.h) ---- */

/*
 * What Distribution's proxy does when a cached blob expires: unlinks it from `name` and removes
 * its data from the blob store (other repositories' links to it then dangle, as there).
 * BERTH_ENOTFOUND when neither was there.
 */
int berth_blob_expire(struct berth_registry *r, const char *name, const char *digest);
/* When a cached manifest expires: removes its revision link from `name` (tags naming it are
 * left, and no longer resolve, as in Distribution). BERTH_ENOTFOUND when it was not there. */
int berth_manifest_expire(struct berth_registry *r, const char *name, const char *digest);

/* ---- repositories ---- */

/*
 * Deletes repository `name`: its tags, manifest revisions, blob links and uploads (nested
 * repositories stay; blob data stays for the garbage collection). Consistent with concurrent
 * manifest pushes in this process (registry/repo_delete.c). Errors: BERTH_ENOTFOUND (no such
 * repository), BERTH_EUNSUPPORTED (storage.delete.enabled is off), BERTH_EDENIED (it has an
 * immutable tag, registry/policy.h).
 */
int berth_repo_delete(struct berth_registry *r, const char *name);

/* ---- listings ---- */

/* Listings come back as a struct berth_strvec (core/vec.h). */

/* A repository's tags, shared and read-only: sorted (strcmp), only tags that resolve. */
struct berth_tag_list {
	size_t n;
	const char *const *tags;
	const char *json; /* the whole list as the API serves it: {"name":"<name>","tags":[...]} */
	size_t json_len;
};
/* The tag list, from a cache kept valid against storage (registry/taglist.c). BERTH_ENOTFOUND
 * if the repository has no tags directory. Release with berth_tag_list_release. */
int berth_tags_get(const struct berth_tag_list **out, struct berth_registry *r, const char *name);
void berth_tag_list_release(const struct berth_tag_list *l);
/* Every repository, shared and read-only, sorted (strcmp). */
struct berth_catalog_list {
	size_t n;
	const char *const *names;
};
/* The catalog, from a snapshot kept while the store's catalog generation is unchanged (every
 * berth on the store bumps it when a repository appears or goes) and, every 2 s, the
 * directories it listed too (other writers); taken anew otherwise (registry/catalog.c).
 * Release with berth_catalog_list_release. Blocks on storage. */
int berth_catalog_get(const struct berth_catalog_list **out, struct berth_registry *r);
void berth_catalog_list_release(const struct berth_catalog_list *l);
/* berth_catalog_get's names, copied into out. */
int berth_catalog(struct berth_strvec *out, struct berth_registry *r);
/* When tag was last pushed: the mtime of its current link (Distribution stores no push date),
 * seconds since the epoch. BERTH_ENOTFOUND if the tag does not exist. Blocks on storage. */
int berth_tag_pushed(int64_t *mtime_out, struct berth_registry *r, const char *name, const char *tag);

#endif

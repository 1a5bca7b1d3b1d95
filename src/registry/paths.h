/*
 * Distribution's storage layout (registry/storage/paths.go), path for path. Every function
 * writes a logical storage path into out (BERTH_PATH_MAX bytes) and returns 0, or BERTH_EINVALID
 * if it would not fit. Inputs must already be validated (names, tags, digests, upload ids).
 */
#ifndef BERTH_REGISTRY_PATHS_H
#define BERTH_REGISTRY_PATHS_H

#include <stdint.h>

#define BERTH_PATH_MAX 1024
#define BERTH_ROOT "/docker/registry/v2"
#define BERTH_REPOS_ROOT BERTH_ROOT "/repositories"
#define BERTH_BLOBS_ROOT BERTH_ROOT "/blobs"
/* berth's own objects (registry/generation.c), outside the two trees Distribution walks. */
#define BERTH_STATE_ROOT BERTH_ROOT "/_berth"
/* Bumped when a repository appears or goes: what the catalog snapshot is checked against. */
#define BERTH_CATALOG_GENERATION BERTH_STATE_ROOT "/catalog/generation"
/* Bumped when a repository goes: what the repositories known to exist are checked against. */
#define BERTH_REPO_DELETIONS BERTH_STATE_ROOT "/catalog/deletions"

/* A digest is passed as the full "<alg>:<hex>" string. */
int berth_path_blob_data(char *out, const char *digest);
int berth_path_blob_dir(char *out, const char *digest);
int berth_path_repo(char *out, const char *name);
int berth_path_layer_link(char *out, const char *name, const char *digest);
int berth_path_revision_link(char *out, const char *name, const char *digest);
int berth_path_revisions_dir(char *out, const char *name, const char *alg);
int berth_path_tags_dir(char *out, const char *name);
int berth_path_tag_dir(char *out, const char *name, const char *tag);
int berth_path_tag_current(char *out, const char *name, const char *tag);
int berth_path_tag_index_link(char *out, const char *name, const char *tag, const char *digest);
int berth_path_upload_dir(char *out, const char *name, const char *uuid);
int berth_path_upload_data(char *out, const char *name, const char *uuid);
int berth_path_upload_startedat(char *out, const char *name, const char *uuid);
int berth_path_upload_committed(char *out, const char *name, const char *uuid);
int berth_path_upload_hashstate(char *out, const char *name, const char *uuid, const char *alg,
				uint64_t offset);
/* berth's generation of name's tags (registry/taglist.c), below BERTH_STATE_ROOT/tags/, under a
 * last component no repository name can have (none starts with '_'). */
int berth_path_tags_generation(char *out, const char *name);

#endif

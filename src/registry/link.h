/*
 * Link files: the small files under repositories/<name>/ (_layers/.../link,
 * _manifests/revisions/.../link, _manifests/tags/<tag>/current/link, .../index/.../link) that
 * hold one digest. Distribution writes the bare digest; a link edited by hand may carry
 * surrounding whitespace (a trailing newline). Serving, garbage collection and fsck all read
 * links through berth_link_parse, so they agree on what a link names.
 */
#ifndef BERTH_REGISTRY_LINK_H
#define BERTH_REGISTRY_LINK_H

#include <stddef.h>

#include "core/digest.h"
#include "core/oid.h"

/* Link files larger than this are not links: callers read at most this many bytes. */
#define BERTH_LINK_MAX 1024

/*
 * Parses a link file's content (len bytes, not NUL-terminated): a valid digest, optionally
 * surrounded by spaces, tabs, CR or LF. 0 with the digest in out; BERTH_EINVALID otherwise
 * (out untouched). Never allocates.
 */
int berth_link_parse(char out[BERTH_DIGEST_STR_MAX], const char *content, size_t len);

/*
 * The digest a link file's path names: ".../<alg>/<hex>/link" (a _layers or revisions link, as
 * a walk finds them). 0, or BERTH_EINVALID when the path is not of that shape.
 */
int berth_link_path_oid(struct berth_oid *out, const char *path);

#endif

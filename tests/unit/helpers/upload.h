/*
 * Pushing a blob through the registry API in unit tests (test_gc, test_fsck, test_gc_online,
 * test_catalog, ...): create an upload, write the bytes, commit. Linked into every unit test
 * (tests/CMakeLists.txt); needs only the registry.
 */
#ifndef BERTH_TEST_UPLOAD_H
#define BERTH_TEST_UPLOAD_H

#include <stddef.h>

#include "core/digest.h"

struct berth_registry;

/* Uploads the n bytes at content to repo and commits them under their sha256 digest, written
 * into digest. 0, or the BERTH_E* code of the first step that failed. */
int berth_test_upload(char digest[BERTH_DIGEST_STR_MAX], struct berth_registry *r, const char *repo,
		      const void *content, size_t n);

#endif

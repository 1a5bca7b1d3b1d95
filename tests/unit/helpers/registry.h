/*
 * A registry on a fresh store for unit tests (test_gc, test_fsck, test_uploads, ...): on a
 * temporary filesystem root (helpers/tmproot.h) or in memory. Linked into every unit test
 * (tests/CMakeLists.txt).
 */
#ifndef BERTH_TEST_REGISTRY_H
#define BERTH_TEST_REGISTRY_H

#include <stddef.h>

struct berth_registry;
struct berth_registry_config;

/* A registry into *out on a filesystem root made by berth_test_root_new(dir, dir_cap, root_name)
 * when root_name is given, else in memory (dir is then ""). The other keys of cfg (NULL: every
 * default) are used as they are; its driver is the new store. 0, or -1. */
int berth_test_registry_new(struct berth_registry **out, char *dir, size_t dir_cap,
			    const char *root_name, const struct berth_registry_config *cfg);

/* Frees r (NULL accepted) and removes its root dir ("" for one in memory). */
void berth_test_registry_free(struct berth_registry *r, const char *dir);

#endif

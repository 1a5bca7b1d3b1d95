/*
 * Temporary storage roots for unit tests (test_fsck, test_gc, test_conformance, ...): a fresh
 * directory under $TMPDIR (default /tmp), removed with all it holds when the test is done.
 * Linked into every unit test (tests/CMakeLists.txt).
 */
#ifndef BERTH_TEST_TMPROOT_H
#define BERTH_TEST_TMPROOT_H

#include <stddef.h>

/* Creates "<tmp>/berth-<name>.XXXXXX" into out (cap bytes). 0, or -1 (errno set). */
int berth_test_root_new(char *out, size_t cap, const char *name);

/* Removes path and everything under it, never following symbolic links. Accepts "" (nothing to
 * do). 0, or -1 if something could not be removed. */
int berth_test_root_remove(const char *path);

#endif

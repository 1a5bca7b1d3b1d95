/*
 * Exact heap accounting for leak checks in the normal build (the torture tests): the bytes the
 * process has in use, from glibc's mallinfo2. Freed chunks that glibc keeps in its per-thread
 * cache still count as in use, so a test calls berth_test_heap_exact() first thing in main: it
 * re-executes the test with that cache off. Under the sanitizers LeakSanitizer does the job
 * and the numbers do not move.
 */
#ifndef BERTH_TEST_HEAP_H
#define BERTH_TEST_HEAP_H

#include <stddef.h>

/* Re-executes the program (argv) without glibc's per-thread cache, once. */
void berth_test_heap_exact(char **argv);

/* Bytes of heap in use now. */
size_t berth_test_heap_in_use(void);

#endif

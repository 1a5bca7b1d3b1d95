/*
 * Small process-wide helpers: the project's allocator (every allocation in berth goes through
 * it; it aborts on exhaustion, as every allocation is capped by the caller, so running out of
 * memory is not a condition berth recovers from, but for the fallible berth_try_* used by the
 * parsers that report it, and a test mode that fails the n-th allocation), random ids,
 * and a growable byte buffer with a hard cap for untrusted input.
 */
#ifndef BERTH_CORE_UTIL_H
#define BERTH_CORE_UTIL_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Abort with "berth: out of memory" when the memory is not there. */
void *berth_malloc(size_t n);
void *berth_calloc(size_t n, size_t size);
void *berth_realloc(void *p, size_t n);
char *berth_strdup(const char *s);
char *berth_strndup(const char *s, size_t n);
/* printf into a new heap string. */
char *berth_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define berth_safefree(p) do { free(p); (p) = NULL; } while (0)

/* Fallible allocation, for code that reports running out of memory as an error (the manifest
 * parser, jansson): NULL on failure. Free with free(). */
void *berth_try_malloc(size_t n);
void *berth_try_calloc(size_t n, size_t size);
void *berth_try_realloc(void *p, size_t n);
char *berth_try_strdup(const char *s);
/* Routes jansson's allocations through berth_try_malloc; call once, before any JSON is made. */
void berth_alloc_init(void);

/*
 * Test mode, as curl's torture tests: the n-th allocation through this allocator from now on
 * fails (n = 1: the next one); 0 turns it off. A failing berth_try_* returns NULL; a failing
 * berth_malloc & co. calls the OOM handler, then prints and aborts. Tests only: the countdown
 * is shared by all threads.
 */
void berth_alloc_fail_at(uint64_t n);
/* 1 while the failure armed by berth_alloc_fail_at has not happened yet. */
int berth_alloc_fail_pending(void);
/* Called when an aborting allocation fails, before the abort (a test can _exit or longjmp).
 * NULL restores the default. */
typedef void (*berth_oom_handler)(void);
void berth_alloc_set_oom_handler(berth_oom_handler h);

/* Fills out with a random RFC 4122 version 4 UUID, lowercase: 36 chars + NUL. */
void berth_uuid4(char out[37]);
/* 1 if s is a lowercase UUID in 8-4-4-4-12 hex form. */
int berth_uuid_valid(const char *s);

/* Growable buffer that refuses to grow past cap (berth_buf_append returns BERTH_ETOOLARGE). */
struct berth_buf {
	char *data;  /* NUL-terminated when non-NULL */
	size_t len;
	size_t alloc;
	size_t cap;
};
#define BERTH_BUF_INIT(cap_) { NULL, 0, 0, (cap_) }
int berth_buf_append(struct berth_buf *b, const void *p, size_t n);
int berth_buf_printf(struct berth_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the data and resets to empty, keeping cap. */
void berth_buf_release(struct berth_buf *b);
/* Hands the data to the caller (who frees it) and resets the buffer. */
char *berth_buf_detach(struct berth_buf *b, size_t *len);

/*
 * 1 if compiling this POSIX extended regular expression could take unbounded memory: glibc's
 * regcomp copies an atom for each repetition it expands ("x+" is "x x*", "x{1000}" is 1000
 * copies), so stacked and nested repetitions multiply. The estimate follows that expansion
 * (groups sum their contents, operators multiply); real patterns (URL prefixes) are far below
 * the budget.
 */
int berth_regex_too_complex(const char *re);

/* Compiles pattern (a POSIX ERE) to match whole strings only, as if written ^(pattern)$ (the
 * policies' patterns); NULL or "" matches everything. 0, or BERTH_EINVALID (nothing to free)
 * when it does not compile or is too complex. */
int berth_regex_compile_whole(regex_t *out, const char *pattern);

/* Online CPUs (at least 1), read once: sysconf reads /sys on every call. */
long berth_online_cpus(void);

/* Makes the calling thread delta nicer than it is (Linux: each thread has its own nice value;
 * at most 19): work that must leave the CPU to serving on a busy machine. 0, or -1 with errno. */
int berth_thread_lower_priority(int delta);

/* Monotonic clock in nanoseconds. */
uint64_t berth_now_ns(void);
/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait on a condition variable set
 * to that clock (pthread_condattr_setclock). */
struct timespec berth_monotonic_after_ms(int64_t ms);

#endif

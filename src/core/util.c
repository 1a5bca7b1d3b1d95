#include "core/util.h"
#include "core/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <jansson.h>
#include <malloc.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

/* ---- allocation ---- */

/* Test mode: allocations left before the one that fails; 0 when off. One relaxed load per
 * allocation otherwise. */
static _Atomic uint64_t fail_countdown;
static berth_oom_handler oom_handler;

static void oom(void)
{
	if (oom_handler)
		oom_handler();
	fputs("berth: out of memory\n", stderr);
	abort();
}

/* 1 if the test mode says this allocation fails. */
static int injected_failure(void)
{
	uint64_t left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
	while (left) {
		if (atomic_compare_exchange_weak_explicit(&fail_countdown, &left, left - 1,
							  memory_order_relaxed, memory_order_relaxed))
			return left == 1;
	}
	return 0;
}

void berth_alloc_fail_at(uint64_t n)
{
	atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

int berth_alloc_fail_pending(void)
{
	return atomic_load_explicit(&fail_countdown, memory_order_relaxed) != 0;
}

void berth_alloc_set_oom_handler(berth_oom_handler h)
{
	oom_handler = h;
}

void *berth_try_malloc(size_t n)
{
	return injected_failure() ? NULL : malloc(n ? n : 1);
}

void *berth_try_calloc(size_t n, size_t size)
{
	return injected_failure() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *berth_try_realloc(void *p, size_t n)
{
	return injected_failure() ? NULL : realloc(p, n ? n : 1);
}

char *berth_try_strdup(const char *s)
{
	size_t n = strlen(s);
	char *p = berth_try_malloc(n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

static void *json_alloc(size_t n)
{
	return berth_try_malloc(n);
}

void berth_alloc_init(void)
{
	json_set_alloc_funcs(json_alloc, free);
	/* Blocks of 1 MiB or more are mapped, and unmapped when freed. By default glibc raises
	 * its threshold to the largest block freed (up to 32 MiB), and from then on such blocks
	 * stay in the arena of the thread that freed them, one arena per thread up to 8 per core:
	 * measured on S3, a 100 MiB blob GET left 50-70 MiB of RSS behind (4 MiB read windows), a
	 * chunked upload 190 MiB (10 MiB part buffers), 10 concurrent uploads 287 MiB. */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

void *berth_malloc(size_t n)
{
	void *p = berth_try_malloc(n);
	if (!p)
		oom();
	return p;
}

void *berth_calloc(size_t n, size_t size)
{
	void *p = berth_try_calloc(n, size);
	if (!p)
		oom();
	return p;
}

void *berth_realloc(void *p, size_t n)
{
	void *q = berth_try_realloc(p, n);
	if (!q)
		oom();
	return q;
}

char *berth_strdup(const char *s)
{
	return berth_strndup(s, strlen(s));
}

char *berth_strndup(const char *s, size_t n)
{
	char *p = berth_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *vformat(const char *fmt, va_list ap)
{
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	if (n < 0)
		oom();
	char *out = berth_malloc((size_t)n + 1);
	vsnprintf(out, (size_t)n + 1, fmt, again);
	va_end(again);
	return out;
}

char *berth_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *out = vformat(fmt, ap);
	va_end(ap);
	return out;
}

void berth_uuid4(char out[37])
{
	unsigned char r[16];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n > 0)
			got += (size_t)n;
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
		 r[13], r[14], r[15]);
}

int berth_uuid_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return 0;
		}
	}
	return s[36] == '\0';
}

int berth_buf_append(struct berth_buf *b, const void *p, size_t n)
{
	if (n > b->cap || b->len > b->cap - n)
		return BERTH_ETOOLARGE;
	if (b->len + n + 1 > b->alloc) {
		size_t want = b->alloc ? b->alloc : 256;
		while (want < b->len + n + 1)
			want *= 2;
		b->data = berth_realloc(b->data, want);
		b->alloc = want;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int berth_buf_printf(struct berth_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = vformat(fmt, ap);
	va_end(ap);
	int rc = berth_buf_append(b, s, strlen(s));
	free(s);
	return rc;
}

void berth_buf_release(struct berth_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

char *berth_buf_detach(struct berth_buf *b, size_t *len)
{
	char *d = b->data;
	if (!d)
		d = berth_strdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->alloc = 0;
	return d;
}

/* Copies glibc's regcomp makes of the atom before a repetition operator at *p ("x+" is expanded
 * to "x x*", "x{n,m}" to m copies); advances *p past the operator. 0 if *p is not one. */
static uint64_t repetition_copies(const char **p)
{
	const char *q = *p;
	uint64_t n = 0, m = 0;
	switch (*q) {
	case '+':
		*p = q + 1;
		return 2;
	case '*':
	case '?':
		*p = q + 1;
		return 1;
	case '{':
		break;
	default:
		return 0;
	}
	q++;
	if (*q < '0' || *q > '9')
		return 0; /* a literal '{' */
	while (*q >= '0' && *q <= '9' && n < 100000)
		n = n * 10 + (uint64_t)(*q++ - '0');
	m = n + 1;
	if (*q == ',') {
		q++;
		uint64_t upper = 0;
		while (*q >= '0' && *q <= '9' && upper < 100000)
			upper = upper * 10 + (uint64_t)(*q++ - '0');
		if (upper > m)
			m = upper;
	}
	if (*q == '}')
		q++;
	*p = q;
	return m ? m : 1;
}

int berth_regex_too_complex(const char *re)
{
	enum { MAX_DEPTH = 64 };
	const uint64_t budget = 100000; /* parse-tree nodes after expansion, roughly */
	uint64_t sum[MAX_DEPTH + 1] = { 0 }; /* cost of the group being read at each depth */
	int depth = 0;

	if (strlen(re) > 4096)
		return 1;
	for (const char *p = re; *p;) {
		uint64_t atom;
		if (*p == '(') {
			if (++depth > MAX_DEPTH)
				return 1;
			sum[depth] = 0;
			p++;
			continue;
		}
		if (*p == ')' && depth > 0) {
			atom = sum[depth--] + 1;
			p++;
		} else if (*p == '[') {
			/* a bracket expression is one atom: skip to its closing ']' */
			const char *q = p + 1;
			if (*q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q && *q != ']')
				q++;
			p = *q ? q + 1 : q;
			atom = 1;
		} else {
			p += (*p == '\\' && p[1]) ? 2 : 1;
			atom = 1;
		}
		for (uint64_t copies; (copies = repetition_copies(&p)) != 0;) {
			atom *= copies;
			if (atom > budget)
				return 1;
		}
		sum[depth] += atom;
		if (sum[depth] > budget)
			return 1;
	}
	return 0;
}

uint64_t berth_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct timespec berth_monotonic_after_ms(int64_t ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

int berth_thread_lower_priority(int delta)
{
	pid_t tid = gettid();
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno != 0)
		return -1;
	nice = nice + delta > 19 ? 19 : nice + delta;
	return setpriority(PRIO_PROCESS, (id_t)tid, nice);
}

long berth_online_cpus(void)
{
	static _Atomic long cached;
	long n = atomic_load_explicit(&cached, memory_order_relaxed);
	if (n == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		atomic_store_explicit(&cached, n, memory_order_relaxed);
	}
	return n;
}

int berth_regex_compile_whole(regex_t *out, const char *pattern)
{
	const char *p = pattern && *pattern ? pattern : ".*";
	if (berth_regex_too_complex(p))
		return BERTH_EINVALID;
	size_t n = strlen(p) + 5;
	char *anchored = berth_malloc(n);
	snprintf(anchored, n, "^(%s)$", p);
	int rc = regcomp(out, anchored, REG_EXTENDED | REG_NOSUB);
	free(anchored);
	return rc != 0 ? BERTH_EINVALID : 0;
}

/*
 * Online garbage collection across instances (gc_shared.h): the sweep notices and the lease,
 * small objects at the driver's root.
 */
#include "registry/gc_shared.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

#define NOTICE_MAGIC "berth-gc-notice 1\n"
#define NOTICE_MAX (1u << 20)
#define NOTICE_POLL_MS 20
#define LEASE_MAX 256

int64_t berth_gc_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void notice_path(char out[BERTH_PATH_MAX], const char *instance)
{
	snprintf(out, BERTH_PATH_MAX, BERTH_GC_NOTICES_DIR "/%s", instance);
}

/* ---- notices ---- */

int berth_gc_notice_post(int64_t *deadline_ms, struct berth_registry *r, const struct berth_oid *d,
			 size_t n)
{
	char path[BERTH_PATH_MAX], ds[BERTH_DIGEST_STR_MAX];
	struct berth_buf b = BERTH_BUF_INIT(NOTICE_MAX);
	int64_t now = berth_gc_wall_ms();
	berth_buf_printf(&b, NOTICE_MAGIC "instance %s\nexpires %" PRId64 "\n", r->gc_instance,
			 now + BERTH_GC_NOTICE_TTL_MS);
	for (size_t i = 0; i < n; i++) {
		berth_oid_fmt(ds, &d[i]);
		berth_buf_printf(&b, "%s\n", ds);
	}
	notice_path(path, r->gc_instance);
	/* visible at once is all it needs (gc_shared.h): no fsync */
	int rc = berth_storage_put_content_as(r->driver, path, b.data, b.len, BERTH_SYNC_NONE);
	berth_buf_release(&b);
	/* counted from before the write: the notice may have been seen from then on */
	*deadline_ms = now + BERTH_GC_NOTICE_TTL_MS - BERTH_GC_NOTICE_MARGIN_MS;
	return rc;
}

void berth_gc_notice_clear(struct berth_registry *r)
{
	char path[BERTH_PATH_MAX];
	notice_path(path, r->gc_instance);
	int rc = berth_storage_remove(r->driver, path);
	if (rc < 0 && rc != BERTH_ENOTFOUND)
		berth_warn("garbage collection: cannot remove the sweep notice %s: %s (it lapses in %d s)",
			   path, berth_strerror(rc), BERTH_GC_NOTICE_TTL_MS / 1000);
}

/* get_content of a small object as a string (drivers do not terminate what they return). */
static int read_text(char **out, struct berth_registry *r, const char *path, size_t max)
{
	char *body = NULL;
	size_t len = 0;
	int rc = berth_storage_get_content(&body, &len, r->driver, path, max);
	if (rc < 0)
		return rc;
	*out = berth_strndup(body, len);
	free(body);
	return 0;
}

/* A notice's expiry (0 if it has none: unreadable, treated as lapsed). */
static int64_t notice_expiry(const char *body)
{
	if (strncmp(body, NOTICE_MAGIC, strlen(NOTICE_MAGIC)) != 0)
		return 0;
	const char *e = strstr(body, "\nexpires ");
	return e ? strtoll(e + strlen("\nexpires "), NULL, 10) : 0;
}

/* 1 if the notice names digest on a line of its own. */
static int notice_names(const char *body, const char *digest)
{
	size_t n = strlen(digest);
	for (const char *p = strstr(body, digest); p; p = strstr(p + 1, digest))
		if (p > body && p[-1] == '\n' && p[n] == '\n')
			return 1;
	return 0;
}

static int push_name(const char *path, void *payload)
{
	berth_strvec_push(payload, path);
	return 0;
}

/* The paths of the notices of other instances. */
static int other_notices(struct berth_strvec *out, struct berth_registry *r)
{
	char own[BERTH_PATH_MAX];
	notice_path(own, r->gc_instance);
	int rc = berth_storage_list(r->driver, BERTH_GC_NOTICES_DIR, push_name, out);
	if (rc == BERTH_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (strcmp(out->items[i], own) == 0)
			free(out->items[i]);
		else
			out->items[kept++] = out->items[i];
	}
	out->n = kept;
	return 0;
}

/* Waits while the notice at path is live and names digest: 1 if it did, 0 if not, or an error. */
static int wait_one(struct berth_registry *r, const char *path, const char *digest)
{
	/* bounded on the monotonic clock too, should the wall clock jump */
	uint64_t give_up = berth_now_ns() + (uint64_t)(BERTH_GC_NOTICE_TTL_MS + 5000) * 1000000u;
	int waited = 0;
	for (;;) {
		char *body = NULL;
		int rc = read_text(&body, r, path, NOTICE_MAX);
		if (rc == BERTH_ENOTFOUND)
			return waited;
		if (rc < 0)
			return rc;
		int live = notice_expiry(body) > berth_gc_wall_ms() && notice_names(body, digest);
		free(body);
		if (!live)
			return waited;
		if (!waited)
			berth_debug("garbage collection: %s is in another instance's sweep (%s): waiting",
				    digest, path);
		if (berth_now_ns() > give_up)
			return BERTH_EUNAVAILABLE;
		waited = 1;
		sleep_ms(NOTICE_POLL_MS);
	}
}

int berth_gc_notice_wait(struct berth_registry *r, const char *digest)
{
	struct berth_strvec notices = { 0 };
	int rc = other_notices(&notices, r);
	int waited = 0;
	for (size_t i = 0; rc >= 0 && i < notices.n; i++) {
		rc = wait_one(r, notices.items[i], digest);
		waited |= rc == 1;
	}
	berth_strvec_release(&notices);
	return rc < 0 ? rc : waited;
}

void berth_gc_notice_prune(struct berth_registry *r)
{
	struct berth_strvec notices = { 0 };
	if (other_notices(&notices, r) < 0) {
		berth_strvec_release(&notices);
		return;
	}
	for (size_t i = 0; i < notices.n; i++) {
		char *body = NULL;
		if (read_text(&body, r, notices.items[i], NOTICE_MAX) < 0)
			continue;
		int64_t expires = notice_expiry(body);
		free(body);
		if (expires + 60000 < berth_gc_wall_ms())
			berth_storage_remove(r->driver, notices.items[i]);
	}
	berth_strvec_release(&notices);
}

/* ---- the lease ---- */

/* "<instance> <until ms>\n": 0 with holder and until, or BERTH_ENOTFOUND (absent or unreadable). */
static int read_lease(struct berth_registry *r, char holder[64], int64_t *until_ms)
{
	char *body = NULL;
	int rc = read_text(&body, r, BERTH_GC_LEASE_PATH, LEASE_MAX);
	if (rc == BERTH_ETOOLARGE)
		return BERTH_ENOTFOUND;
	if (rc < 0)
		return rc;
	long long until = 0;
	rc = sscanf(body, "%63s %lld", holder, &until) == 2 ? 0 : BERTH_ENOTFOUND;
	*until_ms = until;
	free(body);
	return rc;
}

int berth_gc_lease_take(struct berth_registry *r, int64_t hold_ms, char holder[64], int64_t *until_ms)
{
	int rc = read_lease(r, holder, until_ms);
	if (rc < 0 && rc != BERTH_ENOTFOUND)
		return rc;
	if (rc == 0 && strcmp(holder, r->gc_instance) != 0 && *until_ms > berth_gc_wall_ms())
		return 0;
	char body[LEASE_MAX];
	int64_t until = berth_gc_wall_ms() + hold_ms;
	int n = snprintf(body, sizeof(body), "%s %" PRId64 "\n", r->gc_instance, until);
	if ((rc = berth_storage_put_content(r->driver, BERTH_GC_LEASE_PATH, body, (size_t)n)) < 0)
		return rc;
	/* Two instances that found it lapsed both wrote: the one read back keeps it (the other
	 * may have read its own before being overwritten; both collecting is still safe). */
	if ((rc = read_lease(r, holder, until_ms)) < 0)
		return rc == BERTH_ENOTFOUND ? 0 : rc;
	return strcmp(holder, r->gc_instance) == 0;
}

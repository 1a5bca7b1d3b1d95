#include "registry/purge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/periodic.h"
#include "core/util.h"
#include "registry/paths.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

/* Parses RFC 3339 UTC ("2026-08-18T18:55:22Z", fractional seconds allowed) to Unix seconds. */
static int parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return BERTH_EINVALID;
	if (*end == '.')
		while (*++end >= '0' && *end <= '9')
			;
	if (*end != 'Z' && *end != '+' && *end != '-')
		return BERTH_EINVALID;
	*out = (int64_t)timegm(&tm);
	return 0;
}

struct purge_ctx {
	struct berth_registry *reg;
	int64_t before;
	int dry_run;
	size_t purged;
	struct berth_strvec dirs;
};

static int collect(const char *path, void *payload)
{
	berth_strvec_push(payload, path);
	return 0;
}

static int dir_mtime(struct purge_ctx *ctx, const char *dir, int64_t *out)
{
	struct berth_stat st;
	int rc = berth_storage_stat(&st, ctx->reg->driver, dir);
	if (rc == 0)
		*out = st.mtime;
	return rc;
}

/* Checks each upload directory of one repository's _uploads. */
static void purge_uploads_dir(struct purge_ctx *ctx, const char *uploads_dir)
{
	struct berth_strvec uploads = { 0 };
	if (berth_storage_list(ctx->reg->driver, uploads_dir, collect, &uploads) < 0)
		return;
	for (size_t i = 0; i < uploads.n; i++) {
		char path[BERTH_PATH_MAX];
		char *content = NULL;
		size_t len;
		int64_t started = 0;
		snprintf(path, sizeof(path), "%s/startedat", uploads.items[i]);
		int rc = berth_storage_get_content(&content, &len, ctx->reg->driver, path, 64);
		if (rc == 0) {
			rc = parse_rfc3339(content, &started);
			free(content);
		}
		/* No readable startedat: a torn one (it is not synced) or what a crash left of a
		 * removal. Such a directory is aged by its own mtime, or it would stay forever. */
		if (rc < 0 && (rc = dir_mtime(ctx, uploads.items[i], &started)) < 0)
			continue;
		if (started >= ctx->before)
			continue;
		ctx->purged++;
		if (ctx->dry_run) {
			berth_info("upload purge (dry run): would delete %s", uploads.items[i]);
			continue;
		}
		if ((rc = berth_storage_remove(ctx->reg->driver, uploads.items[i])) < 0 && rc != BERTH_ENOTFOUND)
			berth_warn("upload purge: cannot delete %s: %s", uploads.items[i], berth_strerror(rc));
		else
			berth_info("upload purge: deleted %s", uploads.items[i]);
	}
	berth_strvec_release(&uploads);
}

/* Walks the repositories tree: any _uploads directory is checked; other _* are skipped. */
static void purge_dir(struct purge_ctx *ctx, const char *dir)
{
	struct berth_strvec children = { 0 };
	if (berth_storage_list(ctx->reg->driver, dir, collect, &children) < 0)
		return;
	for (size_t i = 0; i < children.n; i++) {
		const char *base = strrchr(children.items[i], '/') + 1;
		if (strcmp(base, "_uploads") == 0)
			purge_uploads_dir(ctx, children.items[i]);
		else if (base[0] != '_')
			purge_dir(ctx, children.items[i]);
	}
	berth_strvec_release(&children);
}

int berth_purge_uploads(struct berth_registry *r, int64_t before, int dry_run, size_t *purged)
{
	struct purge_ctx ctx = { r, before, dry_run, 0, { 0 } };
	purge_dir(&ctx, BERTH_REPOS_ROOT);
	/* Uploads staged on their blob's place (S3: a multipart upload on the blob's key) have no
	 * session when their POST was monolithic: what a crash left of them goes by the same age. */
	size_t staged = 0;
	int rc = dry_run ? 0 : berth_storage_purge_staged(r->driver, BERTH_BLOBS_ROOT, before, &staged);
	if (rc < 0)
		berth_warn("upload purge: cannot purge staged uploads: %s", berth_strerror(rc));
	else if (staged)
		berth_info("upload purge: discarded %zu staged upload(s) of blobs", staged);
	ctx.purged += staged;
	if (purged)
		*purged = ctx.purged;
	return 0;
}

struct berth_purger {
	struct berth_registry *reg;
	int64_t age_ms;
	int dry_run;
	struct berth_periodic *task;
};

static void purge_pass(void *arg)
{
	struct berth_purger *p = arg;
	size_t n = 0;
	berth_purge_uploads(p->reg, (int64_t)time(NULL) - p->age_ms / 1000, p->dry_run, &n);
	berth_info("upload purge: %zu upload(s) older than %llds %s", n, (long long)(p->age_ms / 1000),
		   p->dry_run ? "found (dry run)" : "deleted");
}

int berth_purger_start(struct berth_purger **out, struct berth_registry *r, int64_t age_ms,
		       int64_t interval_ms, int dry_run)
{
	struct berth_purger *p = berth_calloc(1, sizeof(*p));
	p->reg = r;
	p->age_ms = age_ms;
	p->dry_run = dry_run;
	if (interval_ms <= 0)
		interval_ms = 24 * 3600 * 1000LL;
	/* Jitter so that replicas sharing storage do not all walk it at once (Distribution uses up
	 * to an hour; a short interval gets a proportionally short jitter). */
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = 0;
	int64_t max_jitter = interval_ms / 10 < 3600000 ? interval_ms / 10 : 3600000;
	int64_t jitter = max_jitter > 0 ? (int64_t)(rnd % (uint64_t)max_jitter) : 0;
	if (berth_periodic_start(&p->task, jitter, interval_ms, purge_pass, p) < 0) {
		free(p);
		return BERTH_ERROR;
	}
	*out = p;
	return 0;
}

void berth_purger_stop(struct berth_purger *p)
{
	if (!p)
		return;
	berth_periodic_stop(p->task);
	free(p);
}

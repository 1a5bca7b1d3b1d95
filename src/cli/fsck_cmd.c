/*
 * berth fsck [--repair] ROOT | CONFIG.yml: the command line around registry/fsck.c, over a
 * filesystem storage root (the directory holding docker/registry/v2) or the storage a
 * configuration file names (S3 included).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "config/config.h"
#include "core/err.h"
#include "core/util.h"
#include "registry/fsck.h"
#include "storage/storage.h"

static void usage(FILE *out)
{
	fputs("usage: berth fsck [options] ROOT | CONFIG.yml\n"
	      "\n"
	      "Checks the storage under the filesystem root ROOT (the directory holding\n"
	      "docker/registry/v2, Distribution's filesystem.rootdirectory), or the storage\n"
	      "CONFIG.yml configures (a filesystem root or an S3 bucket): every blob hashes to\n"
	      "its name; every link holds a valid digest (the one its path names) and points to an\n"
	      "existing blob, every tag to a manifest of its repository; every manifest parses and\n"
	      "its blobs and child manifests are in its repository. Also reported: blobs that\n"
	      "garbage-collect would delete (orphans: no manifest references them), temp files\n"
	      "left by interrupted writes, upload sessions that can never complete, and files\n"
	      "that are not part of the layout. Layer links whose blob garbage collection deleted\n"
	      "(Distribution's garbage-collect leaves them) are counted, not reported.\n"
	      "Run it with the registry stopped or read-only.\n"
	      "\n"
	      "options:\n"
	      "  -r, --repair   move corrupt blobs to ROOT/docker/registry/v2/lost+found/, remove\n"
	      "                 dangling links, rewrite links whose content is wrong, remove temp\n"
	      "                 files, stale upload sessions and incomplete tags (orphan blobs\n"
	      "                 are left alone)\n"
	      "  -q, --quiet    print only the summary (no problem lines, no progress)\n"
	      "  -h, --help     show this text\n"
	      "\n"
	      "One line per problem on stdout, \"KIND PATH: DETAIL\" (with --repair followed by\n"
	      "what was done), KIND one of corrupt-blob, bad-link, dangling-link, corrupt-manifest,\n"
	      "missing-reference, orphan-blob, temp-file, stale-upload, incomplete-tag,\n"
	      "unknown-file, unreadable; then a summary.\n"
	      "Exit status: 0 no problem found, 1 problems found (or the check failed), 2 usage error.\n",
	      out);
}

struct report_ctx {
	int quiet;
};

static void report(const struct berth_fsck_problem *p, void *payload)
{
	struct report_ctx *ctx = payload;
	if (ctx->quiet)
		return;
	printf("%s %s: %s", berth_fsck_kind_name(p->kind), p->path, p->detail);
	if (p->action == BERTH_FSCK_REPAIRED)
		printf(" [repaired: %s]", p->repair ? p->repair : "done");
	else if (p->action == BERTH_FSCK_REPAIR_FAILED)
		printf(" [not repaired: %s]", p->repair ? p->repair : "failed");
	putchar('\n');
}

static void human_size(char *out, size_t cap, uint64_t n)
{
	if (n < 1024)
		snprintf(out, cap, "%" PRIu64 " bytes", n);
	else if (n < (1u << 20))
		snprintf(out, cap, "%.1f KiB", (double)n / 1024);
	else if (n < (1ull << 30))
		snprintf(out, cap, "%.1f MiB", (double)n / (1 << 20));
	else
		snprintf(out, cap, "%.2f GiB", (double)n / (1ull << 30));
}

static void summary(const struct berth_fsck_stats *s, int repair)
{
	char blobs[32], uploads[32];
	human_size(blobs, sizeof(blobs), s->blob_bytes);
	human_size(uploads, sizeof(uploads), s->upload_bytes);
	printf("fsck: checked %" PRIu64 " blobs (%s), %" PRIu64 " repositories, %" PRIu64
	       " links, %" PRIu64 " manifests, %" PRIu64 " tags; %" PRIu64 " upload session%s (%s)\n",
	       s->blobs, blobs, s->repositories, s->links, s->manifests, s->tags, s->uploads,
	       s->uploads == 1 ? "" : "s", uploads);
	if (s->collected_layer_links)
		printf("fsck: %" PRIu64 " layer link%s to blobs garbage collection deleted (harmless; "
		       "berth garbage-collect removes them)\n", s->collected_layer_links,
		       s->collected_layer_links == 1 ? "" : "s");
	if (s->total_problems == 0) {
		puts("fsck: no problems found");
		return;
	}
	printf("fsck: %" PRIu64 " problem%s:", s->total_problems, s->total_problems == 1 ? "" : "s");
	const char *sep = " ";
	for (int k = 0; k < BERTH_FSCK_KIND_COUNT; k++) {
		if (!s->problems[k])
			continue;
		printf("%s%" PRIu64 " %s", sep, s->problems[k], berth_fsck_kind_name((enum berth_fsck_kind)k));
		sep = ", ";
	}
	putchar('\n');
	if (repair)
		printf("fsck: %" PRIu64 " repaired, %" PRIu64 " could not be repaired, %" PRIu64
		       " left as they are\n",
		       s->repaired, s->repair_failed, s->total_problems - s->repaired - s->repair_failed);
}

int berth_cmd_fsck(int argc, char **argv)
{
	struct berth_fsck_options o = { 0 };
	struct report_ctx ctx = { 0 };
	const char *root = NULL;
	int help = 0, only_args = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (root) {
				fprintf(stderr, "berth fsck: unexpected argument '%s'\n\n", a);
				goto usage_error;
			}
			root = a;
		} else if (strcmp(a, "--") == 0) {
			only_args = 1;
		} else if (strcmp(a, "--repair") == 0 || strcmp(a, "-r") == 0) {
			o.repair = 1;
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			ctx.quiet = 1;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = 1;
		} else {
			fprintf(stderr, "berth fsck: unknown option '%s'\n\n", a);
			goto usage_error;
		}
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (!root || !*root) {
		fputs("berth fsck: the storage root directory is required\n\n", stderr);
		goto usage_error;
	}

	/* ROOT, or (a regular file) Distribution's config.yml naming the storage (S3 too). */
	static struct berth_config cfg; /* large: not on the stack */
	struct stat st;
	char *abs = NULL;
	if (stat(root, &st) == 0 && S_ISREG(st.st_mode)) {
		char err[512] = "";
		if (berth_config_load(&cfg, root, err, sizeof(err)) < 0) {
			fprintf(stderr, "berth fsck: %s\n", err[0] ? err : "cannot load the configuration");
			berth_config_release(&cfg);
			return 1;
		}
		if (cfg.storage == BERTH_STORAGE_FILESYSTEM)
			root = cfg.rootdirectory;
	} else {
		berth_config_defaults(&cfg);
		cfg.storage = BERTH_STORAGE_FILESYSTEM;
	}
	if (cfg.storage == BERTH_STORAGE_FILESYSTEM) {
		/* The driver would create a missing root: a typo must not pass for an empty registry. */
		if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "berth fsck: storage root '%s' is not a directory\n", root);
			berth_config_release(&cfg);
			return 1;
		}
		abs = realpath(root, NULL);
		if (!abs) {
			perror("berth fsck: realpath");
			berth_config_release(&cfg);
			return 1;
		}
		char *v2 = berth_asprintf("%s/docker/registry/v2", abs);
		if (stat(v2, &st) != 0 && !ctx.quiet)
			fprintf(stderr, "berth fsck: warning: '%s' holds no docker/registry/v2: an empty store, "
					"or not a storage root\n", root);
		free(v2);
		snprintf(cfg.rootdirectory, sizeof(cfg.rootdirectory), "%s", abs);
	}
	/* Opened through the driver table, as serving opens it (storage/storage.c). */
	struct berth_storage_driver *d = NULL;
	int rc = berth_storage_open(&d, &cfg);
	berth_config_release(&cfg);
	if (rc < 0) {
		fprintf(stderr, "berth fsck: cannot open storage '%s': %s\n", root, berth_err_reason(rc));
		free(abs);
		return 1;
	}
	o.report = report;
	o.payload = &ctx;
	o.progress = ctx.quiet ? NULL : stderr;

	struct berth_fsck_stats stats;
	rc = berth_fsck_run(d, &o, &stats);
	d->free(d);
	free(abs);
	if (rc < 0) {
		fflush(stdout);
		fprintf(stderr, "berth fsck: the check could not complete: %s (nothing was repaired)\n",
			berth_strerror(rc));
		return 1;
	}
	summary(&stats, o.repair);
	if (fflush(stdout) != 0) {
		perror("berth fsck: stdout");
		return 1;
	}
	return stats.total_problems ? 1 : 0;

usage_error:
	usage(stderr);
	return 2;
}

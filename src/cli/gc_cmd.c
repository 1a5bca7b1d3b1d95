/*
 * berth garbage-collect: the command line around registry/gc.c, taking the same arguments as
 * Distribution's `registry garbage-collect [--dry-run] [--delete-untagged] config.yml`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "config/config.h"
#include "core/err.h"
#include "registry/gc.h"
#include "storage/driver.h"
#include "storage/storage.h"

static void usage(FILE *out)
{
	fputs("usage: berth garbage-collect [options] CONFIG.yml\n"
	      "       berth garbage-collect [options] --root DIR\n"
	      "\n"
	      "Deletes the blobs no manifest references, from the storage configured in CONFIG.yml\n"
	      "(Distribution's config file) or in the filesystem root DIR. Run it with the registry\n"
	      "stopped or read-only: blobs pushed during a collection may be deleted. (berth serve\n"
	      "collects while it serves with storage.maintenance.gc: see README.)\n"
	      "\n"
	      "options:\n"
	      "  -d, --dry-run          report what would be deleted, delete nothing\n"
	      "  -m, --delete-untagged  also delete manifests no tag reaches (keeping the children\n"
	      "                         of kept indexes and the referrers of kept manifests)\n"
	      "  -q, --quiet            print only errors and the summary\n"
	      "      --root DIR         filesystem storage root, instead of CONFIG.yml\n"
	      "  -h, --help             show this text\n"
	      "\n"
	      "Report lines and the summary go to stdout, progress and errors to stderr.\n"
	      "Exit status: 0 done, 1 error, 2 usage error.\n",
	      out);
}

/* Sets the flag for one short option letter; -1 if unknown. */
static int short_flag(char c, struct berth_gc_options *o, int *help)
{
	switch (c) {
	case 'd': o->dry_run = 1; return 0;
	case 'm': o->delete_untagged = 1; return 0;
	case 'q': o->quiet = 1; return 0;
	case 'h': *help = 1; return 0;
	default: return -1;
	}
}

int berth_cmd_garbage_collect(int argc, char **argv)
{
	struct berth_gc_options o = { 0 };
	const char *config = NULL, *root = NULL;
	int help = 0, only_args = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (config || root) {
				fprintf(stderr, "berth garbage-collect: unexpected argument '%s'\n\n", a);
				goto usage_error;
			}
			config = a;
		} else if (strcmp(a, "--") == 0) {
			only_args = 1;
		} else if (strcmp(a, "--dry-run") == 0) {
			o.dry_run = 1;
		} else if (strcmp(a, "--delete-untagged") == 0) {
			o.delete_untagged = 1;
		} else if (strcmp(a, "--quiet") == 0) {
			o.quiet = 1;
		} else if (strcmp(a, "--help") == 0) {
			help = 1;
		} else if (strcmp(a, "--root") == 0 || strncmp(a, "--root=", 7) == 0) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v || !*v) {
				fputs("berth garbage-collect: --root needs a directory\n\n", stderr);
				goto usage_error;
			}
			if (config || root) {
				fprintf(stderr, "berth garbage-collect: give either CONFIG.yml or --root, once\n\n");
				goto usage_error;
			}
			root = v;
		} else if (a[1] != '-') {
			for (const char *p = a + 1; *p; p++) {
				if (short_flag(*p, &o, &help) < 0) {
					fprintf(stderr, "berth garbage-collect: unknown option '-%c'\n\n", *p);
					goto usage_error;
				}
			}
		} else {
			fprintf(stderr, "berth garbage-collect: unknown option '%s'\n\n", a);
			goto usage_error;
		}
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (!config && !root) {
		fputs("berth garbage-collect: a configuration file (or --root DIR) is required\n\n", stderr);
		goto usage_error;
	}

	/* The storage, from Distribution's config.yml (with its REGISTRY_* overrides) or --root. */
	static struct berth_config cfg; /* large: not on the stack */
	char err[512] = "";
	if (config) {
		int lrc = berth_config_load(&cfg, config, err, sizeof(err));
		if (lrc < 0) {
			fprintf(stderr, "berth garbage-collect: %s\n", err[0] ? err : "cannot load the configuration");
			berth_config_release(&cfg);
			return 1;
		}
	} else {
		berth_config_defaults(&cfg);
		cfg.storage = BERTH_STORAGE_FILESYSTEM;
		snprintf(cfg.rootdirectory, sizeof(cfg.rootdirectory), "%s", root);
	}

	/* The filesystem driver would create a missing root: refuse instead, a typo must not pass
	 * for an empty registry (and a dry run must not create anything). An inmemory store is
	 * empty in a new process: nothing to collect. */
	struct stat st;
	if (cfg.storage == BERTH_STORAGE_FILESYSTEM &&
	    (stat(cfg.rootdirectory, &st) != 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "berth garbage-collect: storage root '%s' is not a directory\n", cfg.rootdirectory);
		berth_config_release(&cfg);
		return 1;
	}
	struct berth_storage_driver *d = NULL;
	int rc = berth_storage_open(&d, &cfg);
	if (rc < 0) {
		fprintf(stderr, "berth garbage-collect: %s\n", berth_err_reason(rc));
		berth_config_release(&cfg);
		return 1;
	}
	berth_config_release(&cfg);

	o.out = stdout;
	o.progress = stderr;
	struct berth_gc_stats stats;
	rc = berth_gc_run(d, &o, &stats);
	d->free(d);
	if (fflush(stdout) != 0 && rc == 0) {
		perror("berth garbage-collect: stdout");
		return 1;
	}
	return rc < 0 ? 1 : 0;

usage_error:
	usage(stderr);
	return 2;
}

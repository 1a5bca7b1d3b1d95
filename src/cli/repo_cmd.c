/*
 * berth repo delete CONFIG.yml NAME: deletes a repository from the storage CONFIG.yml names
 * (registry/repo_delete.c), as DELETE /v2/_berth/repositories/<name> does on a running berth.
 * Blob data stays for the garbage collection.
 * berth usage CONFIG.yml: the usage of each of its policies.quotas rules (registry/quota.h).
 * berth retention CONFIG.yml [--dry-run]: applies its policies.retention rules once
 * (registry/retention.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/serve_setup.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "registry/quota.h"
#include "registry/reference.h"
#include "registry/registry.h"
#include "registry/retention.h"
#include "storage/storage.h"

static void usage(FILE *out)
{
	fputs("usage: berth repo delete CONFIG.yml NAME\n"
	      "\n"
	      "Deletes repository NAME (its tags, manifests, blob links and uploads; repositories\n"
	      "nested below it stay) from the storage configured in CONFIG.yml, which must enable\n"
	      "storage.delete. Blob data stays until a garbage collection. A repository with an\n"
	      "immutable tag (policies.immutabletags) is refused. On a running registry, prefer\n"
	      "DELETE /v2/_berth/repositories/NAME: berth then orders it with concurrent pushes.\n"
	      "\n"
	      "Exit status: 0 deleted, 1 error (no such repository, refused, storage), 2 usage error.\n",
	      out);
}

/* Opens the registry of the storage cfg configures; 0 or -1 (printed). */
static int open_registry(struct berth_registry **out, const struct berth_config *cfg)
{
	struct stat st;
	/* The filesystem driver would create a missing root: a typo must not pass for an empty store. */
	if (cfg->storage == BERTH_STORAGE_FILESYSTEM &&
	    (stat(cfg->rootdirectory, &st) != 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "berth repo: storage root '%s' is not a directory\n", cfg->rootdirectory);
		return BERTH_ERROR;
	}
	struct berth_storage_driver *d = NULL;
	int rc = berth_storage_open(&d, cfg);
	if (rc < 0) {
		fprintf(stderr, "berth repo: %s\n", berth_err_reason(rc));
		return BERTH_ERROR;
	}
	/* A repository deleted here must be forgotten by the Redis the servers share too. */
	struct berth_redis_cache *redis = NULL;
	if (berth_serve_redis_cache(&redis, cfg) < 0) {
		berth_storage_free(d);
		return BERTH_ERROR;
	}
	struct berth_registry_config rcfg = { .driver = d, .delete_enabled = cfg->delete_enabled,
					      .redis = redis };
	berth_serve_policies(&rcfg, cfg);
	rc = berth_registry_new(out, &rcfg);
	berth_serve_release_policies(&rcfg);
	if (rc < 0) {
		fprintf(stderr, "berth repo: cannot open the registry: %s\n", berth_strerror(rc));
		berth_storage_free(d);
		return BERTH_ERROR;
	}
	return 0;
}

static int repo_delete(const char *config, const char *name)
{
	static struct berth_config cfg; /* large: not on the stack */
	char err[512] = "";
	struct berth_registry *reg = NULL;
	int status = 1;

	if (!berth_name_valid(name)) {
		fprintf(stderr, "berth repo delete: invalid repository name '%s'\n", name);
		return 2;
	}
	if (berth_config_load(&cfg, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "berth repo delete: %s\n", err[0] ? err : "cannot load the configuration");
		goto out_release_config;
	}
	if (open_registry(&reg, &cfg) < 0)
		goto out_release_config;
	int rc = berth_repo_delete(reg, name);
	if (rc == 0) {
		printf("deleted repository %s (its blobs stay until a garbage collection)\n", name);
		status = 0;
	} else if (rc == BERTH_ENOTFOUND) {
		fprintf(stderr, "berth repo delete: no repository '%s'\n", name);
	} else if (rc == BERTH_EUNSUPPORTED) {
		fprintf(stderr, "berth repo delete: refused: storage.delete.enabled is off in %s\n", config);
	} else if (rc == BERTH_EDENIED) {
		fprintf(stderr, "berth repo delete: refused: repository '%s' has an immutable tag\n", name);
	} else {
		fprintf(stderr, "berth repo delete: cannot delete repository '%s': %s\n", name,
			berth_err_reason(rc));
	}
	berth_registry_free(reg);
out_release_config:
	berth_config_release(&cfg);
	return status;
}

int berth_cmd_repo(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc != 4 || strcmp(argv[1], "delete") != 0) {
		usage(stderr);
		return 2;
	}
	return repo_delete(argv[2], argv[3]);
}

/* One line per quota rule: its pattern, then each count with its limit ("-" for none); bytes
 * only for a rule that limits them. */
static void print_usage_line(const struct berth_quota_usage *u)
{
	char tl[32] = "-", rl[32] = "-", bytes[64] = "";
	if (u->tags_limit)
		snprintf(tl, sizeof(tl), "%lld", (long long)u->tags_limit);
	if (u->repositories_limit)
		snprintf(rl, sizeof(rl), "%lld", (long long)u->repositories_limit);
	if (u->bytes_limit)
		snprintf(bytes, sizeof(bytes), " bytes %lld/%lld", (long long)u->bytes, (long long)u->bytes_limit);
	printf("repository '%s': tags %lld/%s repositories %lld/%s%s\n", u->repository, (long long)u->tags, tl,
	       (long long)u->repositories, rl, bytes);
}

int berth_cmd_usage(int argc, char **argv)
{
	static struct berth_config cfg; /* large: not on the stack */
	char err[512] = "";
	struct berth_registry *reg = NULL;
	int status = 1;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		puts("usage: berth usage CONFIG.yml\n\nPrints, for each policies.quotas rule of CONFIG.yml, the tags "
		     "and repositories\nof the repositories it covers, with its limits ('-': none), and for a rule "
		     "with a\nbytes limit the bytes of the distinct blobs linked into them.");
		return 0;
	}
	if (argc != 2) {
		fputs("usage: berth usage CONFIG.yml\n", stderr);
		return 2;
	}
	if (berth_config_load(&cfg, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "berth usage: %s\n", err[0] ? err : "cannot load the configuration");
		goto out_release_config;
	}
	if (open_registry(&reg, &cfg) < 0)
		goto out_release_config;
	int rc = berth_quota_bytes_build(reg);
	if (rc < 0) {
		fprintf(stderr, "berth usage: cannot count stored bytes: %s\n", berth_err_reason(rc));
		berth_registry_free(reg);
		goto out_release_config;
	}
	status = 0;
	for (size_t i = 0; i < berth_quotas_count(reg) && status == 0; i++) {
		struct berth_quota_usage u;
		rc = berth_quota_usage(&u, reg, i);
		if (rc < 0) {
			fprintf(stderr, "berth usage: cannot count: %s\n", berth_err_reason(rc));
			status = 1;
		} else {
			print_usage_line(&u);
		}
	}
	if (berth_quotas_count(reg) == 0)
		puts("no policies.quotas rules");
	berth_registry_free(reg);
out_release_config:
	berth_config_release(&cfg);
	return status;
}

/* One line per removal on stdout (the log lines would say the same on stderr). */
static void print_removal(const struct berth_retention_removal *rm, void *payload)
{
	(void)payload;
	if (rm->tag)
		printf("%s tag %s:%s (%s)\n", rm->dry_run ? "would remove" : "removed", rm->repository, rm->tag,
		       rm->digest);
	else
		printf("%s untagged manifest %s@%s\n", rm->dry_run ? "would remove" : "removed", rm->repository,
		       rm->digest);
}

static void retention_usage(FILE *out)
{
	fputs("usage: berth retention CONFIG.yml [--dry-run]\n"
	      "\n"
	      "Applies the policies.retention rules of CONFIG.yml once to its storage: removes the\n"
	      "tags the rules do not keep and, with untaggedafter, the untagged manifests older than\n"
	      "that (blob data stays for the garbage collection). One line per removal on stdout,\n"
	      "then a summary. With --dry-run (or policies.retention.dryrun) nothing is removed: the\n"
	      "lines say what would be. No notification is sent (berth serve sends them for its own\n"
	      "runs). On a running registry the serve process applies the rules itself every\n"
	      "policies.retention.interval, ordered with its pushes.\n"
	      "\n"
	      "Exit status: 0 done, 1 error (configuration, storage), 2 usage error.\n",
	      out);
}

int berth_cmd_retention(int argc, char **argv)
{
	static struct berth_config cfg; /* large: not on the stack */
	const char *config = NULL;
	char err[512] = "";
	struct berth_registry *reg = NULL;
	int dry_run = 0, status = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			retention_usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-d") == 0) {
			dry_run = 1;
		} else if (argv[i][0] == '-' || config) {
			fprintf(stderr, "berth retention: unexpected argument '%s'\n\n", argv[i]);
			retention_usage(stderr);
			return 2;
		} else {
			config = argv[i];
		}
	}
	if (!config) {
		retention_usage(stderr);
		return 2;
	}
	if (berth_config_load(&cfg, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "berth retention: %s\n", err[0] ? err : "cannot load the configuration");
		goto out_release_config;
	}
	if (open_registry(&reg, &cfg) < 0)
		goto out_release_config;
	if (!berth_retention_configured(reg)) {
		puts("no policies.retention rules");
		status = 0;
		goto out_free_registry;
	}
	berth_log_set_level(BERTH_LOG_WARN);
	berth_retention_set_listener(reg, print_removal, NULL);
	struct berth_retention_stats st;
	int rc = berth_retention_apply(&st, reg, dry_run);
	if (rc < 0) {
		fprintf(stderr, "berth retention: %s\n", berth_err_reason(rc));
		goto out_free_registry;
	}
	printf("%llu repositories, %llu tags and %llu untagged manifests %s, %llu skipped, %llu errors\n",
	       (unsigned long long)st.repositories, (unsigned long long)st.tags_removed,
	       (unsigned long long)st.manifests_removed, dry_run || cfg.policies.retention.dryrun
	       ? "would be removed" : "removed", (unsigned long long)st.skipped, (unsigned long long)st.errors);
	status = st.errors ? 1 : 0;
out_free_registry:
	berth_registry_free(reg);
out_release_config:
	berth_config_release(&cfg);
	return status;
}

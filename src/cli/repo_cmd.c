/*
 * berth repo delete CONFIG.yml NAME: deletes a repository from the storage CONFIG.yml names
 * (registry/repo_delete.c), as DELETE /v2/_berth/repositories/<name> does on a running berth.
 * Blob data stays for the garbage collection.
 * berth usage CONFIG.yml: the usage of each of its policies.quotas rules (registry/quota.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/serve_setup.h"
#include "config/config.h"
#include "core/err.h"
#include "registry/quota.h"
#include "registry/reference.h"
#include "registry/registry.h"
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
	char err[512] = "";
	struct stat st;
	/* The filesystem driver would create a missing root: a typo must not pass for an empty store. */
	if (cfg->storage == BERTH_STORAGE_FILESYSTEM &&
	    (stat(cfg->rootdirectory, &st) != 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "berth repo: storage root '%s' is not a directory\n", cfg->rootdirectory);
		return BERTH_ERROR;
	}
	struct berth_storage_driver *d = NULL;
	if (berth_storage_open(&d, cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "berth repo: %s\n", err);
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
	int rc = berth_registry_new(out, &rcfg);
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

/* One line per quota rule: its pattern, then each count with its limit ("-" for none). */
static void print_usage_line(const struct berth_quota_usage *u)
{
	char tl[32] = "-", rl[32] = "-";
	if (u->tags_limit)
		snprintf(tl, sizeof(tl), "%lld", (long long)u->tags_limit);
	if (u->repositories_limit)
		snprintf(rl, sizeof(rl), "%lld", (long long)u->repositories_limit);
	printf("repository '%s': tags %lld/%s repositories %lld/%s\n", u->repository, (long long)u->tags, tl,
	       (long long)u->repositories, rl);
}

int berth_cmd_usage(int argc, char **argv)
{
	static struct berth_config cfg; /* large: not on the stack */
	char err[512] = "";
	struct berth_registry *reg = NULL;
	int status = 1;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		puts("usage: berth usage CONFIG.yml\n\nPrints, for each policies.quotas rule of CONFIG.yml, the tags "
		     "and repositories\nof the repositories it covers, with its limits ('-': none).");
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
	status = 0;
	for (size_t i = 0; i < berth_quotas_count(reg) && status == 0; i++) {
		struct berth_quota_usage u;
		int rc = berth_quota_usage(&u, reg, i);
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

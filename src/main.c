/* berth: command line, process set-up and signal handling. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "registry/registry.h"
#include "storage/driver.h"

static void usage(FILE *out)
{
	fputs("usage: berth <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  serve            run the registry\n"
	      "  garbage-collect  delete blobs no manifest references (see berth garbage-collect --help)\n"
	      "  help             show this text\n"
	      "  --version        print the version\n"
	      "\n"
	      "serve options:\n"
	      "  --addr HOST:PORT     listen address (default 127.0.0.1:5000; :PORT for all interfaces)\n"
	      "  --root DIR           filesystem storage root (default ./data)\n"
	      "  --storage KIND       filesystem (default) or inmemory\n"
	      "  --delete             enable deletes of blobs, manifests and tags\n"
	      "  --threads N          HTTP threads (default: one per core)\n"
	      "  --log-level LEVEL    debug, info (default), warn or error\n"
	      "  --no-access-log      do not log one line per request\n",
	      out);
}

static int parse_level(const char *s, int *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

static int parse_serve_args(struct berth_config *cfg, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes_value = 1;
		if (strcmp(a, "--addr") == 0 && v) {
			snprintf(cfg->addr, sizeof(cfg->addr), "%s", v);
		} else if (strcmp(a, "--root") == 0 && v) {
			snprintf(cfg->rootdirectory, sizeof(cfg->rootdirectory), "%s", v);
		} else if (strcmp(a, "--storage") == 0 && v) {
			if (strcmp(v, "filesystem") == 0)
				cfg->storage = BERTH_STORAGE_FILESYSTEM;
			else if (strcmp(v, "inmemory") == 0)
				cfg->storage = BERTH_STORAGE_INMEMORY;
			else
				goto bad;
		} else if (strcmp(a, "--threads") == 0 && v) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			if (*end || n > 1024)
				goto bad;
			cfg->threads = (unsigned)n;
		} else if (strcmp(a, "--log-level") == 0 && v) {
			if (parse_level(v, &cfg->log_level) < 0)
				goto bad;
		} else {
			takes_value = 0;
			if (strcmp(a, "--delete") == 0)
				cfg->delete_enabled = 1;
			else if (strcmp(a, "--no-access-log") == 0)
				cfg->access_log = 0;
			else
				goto bad;
		}
		i += takes_value;
	}
	return 0;
bad:
	fprintf(stderr, "berth: invalid option or value near '%s'\n", argv[0]);
	return -1;
}

static int open_storage(struct berth_storage_driver **out, const struct berth_config *cfg)
{
	if (cfg->storage == BERTH_STORAGE_INMEMORY)
		return berth_inmem_driver_new(out);
	return berth_fs_driver_new(out, cfg->rootdirectory);
}

/* Blocks until SIGINT or SIGTERM. The signals are blocked in every thread so they land here. */
static int wait_for_signal(const sigset_t *set)
{
	int sig = 0;
	sigwait(set, &sig);
	return sig;
}

static int serve(const struct berth_config *cfg)
{
	struct berth_storage_driver *driver = NULL;
	struct berth_registry *reg = NULL;
	struct berth_server *srv = NULL;
	struct berth_server_options so = BERTH_SERVER_OPTIONS_INIT;
	sigset_t set;
	int rc;

	berth_log_set_level((enum berth_log_level)cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if ((rc = open_storage(&driver, cfg)) < 0) {
		berth_error("cannot open storage at '%s': %s", cfg->rootdirectory, berth_strerror(rc));
		return 1;
	}
	struct berth_registry_config rc_cfg = { driver, cfg->delete_enabled, cfg->manifest_max, 0 };
	berth_registry_new(&reg, &rc_cfg);

	so.addr = cfg->addr;
	so.threads = cfg->threads;
	so.access_log = cfg->access_log;
	if (berth_server_start(&srv, &so, reg) < 0) {
		berth_registry_free(reg);
		return 1;
	}
	berth_info("berth %s listening on %s (storage %s%s%s)", BERTH_VERSION, cfg->addr,
		   cfg->storage == BERTH_STORAGE_INMEMORY ? "inmemory" : "filesystem ",
		   cfg->storage == BERTH_STORAGE_INMEMORY ? "" : cfg->rootdirectory,
		   cfg->delete_enabled ? ", deletes enabled" : "");
	int sig = wait_for_signal(&set);
	berth_info("received signal %d, shutting down", sig);
	berth_server_drain_and_stop(srv, 60000);
	berth_registry_free(reg);
	return 0;
}

int main(int argc, char **argv)
{
	struct berth_config cfg;

	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("berth %s\n", BERTH_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "garbage-collect") == 0)
		return berth_cmd_garbage_collect(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0) {
		berth_config_defaults(&cfg);
		if (parse_serve_args(&cfg, argc - 2, argv + 2) < 0)
			return 2;
		return serve(&cfg);
	}
	fprintf(stderr, "berth: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}

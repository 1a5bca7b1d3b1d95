/*
 * The config loader (berth_config_load): YAML parsing with libyaml, then berth's walk over the
 * Distribution 0.1 key table with its type checks (booleans, durations, sizes, lists, maps,
 * header maps, notification endpoints). The input is the whole config.yml, handed over as a file
 * (a memfd, /proc/self/fd/N, so nothing touches the disk). berth_config_apply_env is not fuzzed:
 * it reads the environment, which a client does not control.
 * Properties: no crash or leak; the result is 0 or -1; on failure the message is a terminated
 * string; on success exactly one known storage driver is chosen; berth_config_release may be
 * called twice.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz_common.h"

static int fd = -1;
static char path[64];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fd = memfd_create("config.yml", 0);
	devnull = fopen("/dev/null", "w");
	if (fd < 0 || !devnull)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_config cfg;
	char err[512];

	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	memset(err, 'x', sizeof(err));
	/* The loader warns about unknown keys on stderr: silence that (libFuzzer and the
	 * sanitizers write to the file descriptor, not through this FILE). */
	FILE *saved = stderr;
	stderr = devnull;
	int rc = berth_config_load(&cfg, path, err, sizeof(err));
	stderr = saved;
	FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "unterminated error message");
	} else {
		FUZZ_CHECK(cfg.storage == BERTH_STORAGE_FILESYSTEM || cfg.storage == BERTH_STORAGE_INMEMORY ||
				   cfg.storage == BERTH_STORAGE_S3,
			   "storage %d", (int)cfg.storage);
		FUZZ_CHECK(memchr(cfg.addr, '\0', sizeof(cfg.addr)) && memchr(cfg.rootdirectory, '\0',
									     sizeof(cfg.rootdirectory)),
			   "unterminated string field");
		FUZZ_CHECK(cfg.log_fields.n <= BERTH_CONFIG_MAX_LOG_FIELDS, "%zu log fields", cfg.log_fields.n);
		FUZZ_CHECK(cfg.http.headers.n <= BERTH_CONFIG_MAX_HEADERS, "%zu headers", cfg.http.headers.n);
		FUZZ_CHECK(cfg.notifications.n_endpoints <= BERTH_CONFIG_MAX_ENDPOINTS, "%zu endpoints",
			   cfg.notifications.n_endpoints);
	}
	berth_config_release(&cfg);
	berth_config_release(&cfg);
	return 0;
}

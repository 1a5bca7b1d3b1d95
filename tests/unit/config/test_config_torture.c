/*
 * Allocation torture of the config loader (core/util.h test mode). The loader allocates with
 * the aborting allocator (running out of memory while reading the configuration ends the
 * process: STYLE.md), so each failed allocation must end in the OOM handler, never in a crash
 * or a configuration loaded with a part missing. Each allocation is failed in turn in a child
 * process. The successful load, and a load refused for a bad value, must give back everything
 * they took (heap in use, glibc mallinfo2 without the per-thread cache).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/util.h"
#include "helpers/heap.h"

#define OOM_EXIT 77

static const char good[] =
	"version: 0.1\n"
	"log:\n  level: info\n  fields:\n    service: registry\n    environment: test\n"
	"storage:\n  filesystem:\n    rootdirectory: /srv/registry\n  delete:\n    enabled: true\n"
	"  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n"
	"http:\n  addr: 127.0.0.1:5000\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
	"    X-Frame-Options: [deny, sameorigin]\n"
	"validation:\n  manifests:\n    urls:\n      allow: ['^https?://example\\.com/']\n"
	"      deny: ['^https?://example\\.com/bad']\n";

/* Refused for its last key, after lists and maps were read. */
static const char bad[] =
	"version: 0.1\n"
	"storage:\n  filesystem:\n    rootdirectory: /srv/registry\n"
	"http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
	"validation:\n  manifests:\n    urls:\n      allow: ['^https?://example\\.com/']\n"
	"      deny: ['([a-z]']\n";

static char path[64];

static void write_config(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/berth-config-torture-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int load(void)
{
	struct berth_config cfg;
	char err[512];
	int rc = berth_config_load(&cfg, path, err, sizeof(err));
	berth_config_release(&cfg);
	return rc;
}

static void on_oom(void)
{
	_exit(OOM_EXIT);
}

/* Fails allocation n in a child: OOM_EXIT if it failed, 0 or 1 (the load's result) if the
 * load made fewer than n allocations. */
static int child_status(uint64_t n)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2); /* unknown-key warnings */
		berth_alloc_set_oom_handler(on_oom);
		berth_alloc_fail_at(n);
		int rc = load();
		_exit(berth_alloc_fail_pending() ? (rc == 0 ? 0 : 1) : 99);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("allocation %ju failed: the loader died of signal %d", (uintmax_t)n,
			 WTERMSIG(status));
	return WEXITSTATUS(status);
}

/* Returns how many allocations the load makes. */
static uint64_t torture(const char *text, int want)
{
	write_config(text);
	assert_int_equal(load() == 0 ? 0 : 1, want); /* warm up, and the expected result */
	size_t before = berth_test_heap_in_use();
	assert_int_equal(load() == 0 ? 0 : 1, want);
	assert_int_equal(berth_test_heap_in_use(), before);

	uint64_t n;
	for (n = 1; n < 100000; n++) {
		int st = child_status(n);
		if (st == OOM_EXIT)
			continue;
		if (st == 99)
			fail_msg("allocation %ju failed, yet the load returned", (uintmax_t)n);
		assert_int_equal(st, want);
		break;
	}
	unlink(path);
	print_message("%ju allocations\n", (uintmax_t)(n - 1));
	return n - 1;
}

static void test_good_config(void **state)
{
	/* Its allocations do go through the allocator. */
	assert_true(torture(good, 0) >= 10);
}

static void test_refused_config(void **state)
{
	assert_true(torture(bad, 1) >= 3);
}

int main(int argc, char **argv)
{
	(void)argc;
	berth_test_heap_exact(argv);
	berth_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_config),
		cmocka_unit_test(test_refused_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The upstream's credential helper (proxy/credhelper.h), run for real: tests/fixtures/proxy/
 * credhelper.sh, which counts its runs in a file and answers as its mode file says. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/util.h"
#include "helpers/tmproot.h"
#include "proxy/credhelper.h"

#define HELPER BERTH_SRC_DIR "/tests/fixtures/proxy/credhelper.sh"

static char dir[1024];

static void put(const char *name, const char *text)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* What the helper wrote to its runs file: one line per run. */
static char *runs(void)
{
	static char text[4096];
	char path[1200];
	snprintf(path, sizeof(path), "%s/runs", dir);
	FILE *f = fopen(path, "r");
	text[0] = '\0';
	if (f) {
		size_t n = fread(text, 1, sizeof(text) - 1, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

static int n_runs(void)
{
	int n = 0;
	for (const char *p = runs(); *p; p++)
		n += *p == '\n';
	return n;
}

static int setup(void **state)
{
	(void)state;
	if (berth_test_root_new(dir, sizeof(dir), "credhelper") < 0)
		return -1;
	setenv("CREDHELPER_DIR", dir, 1);
	put("user", "mirror");
	put("secret", "s3cret");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return berth_test_root_remove(dir);
}

static struct berth_credhelper *helper(const char *command, int64_t lifetime_ms, long timeout_ms)
{
	struct berth_credhelper *h = NULL;
	struct berth_credhelper_config cfg = { .command = command, .lifetime_ms = lifetime_ms,
					       .timeout_ms = timeout_ms, .label = "test" };
	assert_int_equal(berth_credhelper_new(&h, &cfg), 0);
	return h;
}

static int get(struct berth_credhelper *h, const char *want_user, const char *want_secret)
{
	char *user = NULL, *secret = NULL;
	int rc = berth_credhelper_get(&user, &secret, h, "127.0.0.1:5000");
	if (rc == 0) {
		assert_string_equal(user, want_user);
		assert_string_equal(secret, want_secret);
		free(user);
		free(secret);
	}
	return rc;
}

/* `<command> get`, the host on stdin without a newline; no lifetime: one run for good. */
static void test_runs_once_without_lifetime(void **state)
{
	(void)state;
	struct berth_credhelper *h = helper(HELPER, -1, 10000);
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	put("secret", "changed");
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	assert_string_equal(runs(), "get 127.0.0.1:5000\n");
	berth_credhelper_free(h);
}

/* lifetime 0: the helper runs for every call, as Distribution's. */
static void test_runs_every_call_with_zero_lifetime(void **state)
{
	(void)state;
	struct berth_credhelper *h = helper(HELPER, 0, 10000);
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	put("secret", "changed");
	assert_int_equal(get(h, "mirror", "changed"), 0);
	assert_int_equal(n_runs(), 2);
	berth_credhelper_free(h);
}

/* A lifetime: kept within it, asked again after it. */
static void test_runs_again_after_lifetime(void **state)
{
	(void)state;
	struct berth_credhelper *h = helper(HELPER, 1500, 10000);
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	put("secret", "renewed");
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	assert_int_equal(n_runs(), 1);
	usleep(1600 * 1000);
	assert_int_equal(get(h, "mirror", "renewed"), 0);
	assert_int_equal(get(h, "mirror", "renewed"), 0);
	assert_int_equal(n_runs(), 2);
	berth_credhelper_free(h);
}

/* A failing helper: the reason with its output; the failure is not kept. */
static void test_failure_is_reported_and_retried(void **state)
{
	(void)state;
	struct berth_credhelper *h = helper(HELPER, -1, 10000);
	put("mode", "fail");
	assert_int_equal(get(h, "", ""), BERTH_ERROR);
	const char *m = berth_err_message(BERTH_ERROR);
	assert_non_null(strstr(m, "credential helper '" HELPER " get' for 127.0.0.1:5000: exit status 1: "
				  "credentials not found in native keychain"));
	put("mode", "ok");
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	assert_int_equal(n_runs(), 2);
	put("mode", "garbage");
	assert_int_equal(get(h, "mirror", "s3cret"), 0); /* no lifetime: kept, not run again */
	berth_credhelper_free(h);

	h = helper(HELPER, 0, 10000);
	assert_int_equal(get(h, "", ""), BERTH_ERROR);
	assert_non_null(strstr(berth_err_message(BERTH_ERROR), "its output is not JSON"));
	berth_credhelper_free(h);

	h = helper("/nonexistent/docker-credential-x", 0, 10000);
	assert_int_equal(get(h, "", ""), BERTH_ERROR);
	assert_non_null(strstr(berth_err_message(BERTH_ERROR), "cannot run it: no such file or directory"));
	berth_credhelper_free(h);
}

/* A hanging helper is killed at the timeout, reaped (no child left), and reported. */
static void test_hanging_helper_is_killed(void **state)
{
	(void)state;
	struct berth_credhelper *h = helper(HELPER, -1, 300);
	put("mode", "hang");
	uint64_t t0 = berth_now_ns();
	assert_int_equal(get(h, "", ""), BERTH_ERROR);
	assert_non_null(strstr(berth_err_message(BERTH_ERROR), "did not finish within 300 ms: killed"));
	/* bounded by the timeout, not by the helper's 600 s sleep */
	assert_true(berth_now_ns() - t0 < 60ull * 1000000000ull);
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	put("mode", "ok");
	assert_int_equal(get(h, "mirror", "s3cret"), 0);
	berth_credhelper_free(h);
}

struct caller {
	struct berth_credhelper *h;
	int rc;
};

static void *call(void *p)
{
	struct caller *c = p;
	char *user = NULL, *secret = NULL;
	c->rc = berth_credhelper_get(&user, &secret, c->h, "127.0.0.1:5000");
	if (c->rc == 0 && (strcmp(user, "mirror") != 0 || strcmp(secret, "s3cret") != 0))
		c->rc = -100;
	free(user);
	free(secret);
	return NULL;
}

/* Calls at once: one run, every caller gets its credentials. */
static void test_concurrent_calls_share_one_run(void **state)
{
	(void)state;
	struct caller c[6];
	pthread_t t[6];
	struct berth_credhelper *h = helper(HELPER, -1, 10000);
	for (int i = 0; i < 6; i++) {
		c[i] = (struct caller){ .h = h };
		assert_int_equal(pthread_create(&t[i], NULL, call, &c[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(c[i].rc, 0);
	}
	assert_int_equal(n_runs(), 1);
	berth_credhelper_free(h);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as berth's main */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_once_without_lifetime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_every_call_with_zero_lifetime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_again_after_lifetime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_is_reported_and_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hanging_helper_is_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_calls_share_one_run, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The descriptor budget of the connection limit (http/conns.h). The limit itself and the
 * timeouts are tested through a running server (tests/api/test_hostile.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "http/conns.h"

static void test_limit_for_fds_inverts_fds_needed(void **state)
{
	for (unsigned threads = 1; threads <= 64; threads *= 4) {
		for (unsigned limit = 1; limit <= 5000; limit += limit < 50 ? 1 : 97) {
			rlim_t need = berth_conns_fds_needed(limit, threads);
			assert_true(need > limit);
			assert_int_equal(berth_conns_limit_for_fds(need, threads), limit);
			if (limit > 1 && berth_conns_fds_needed(limit - 1, threads) < need)
				assert_int_equal(berth_conns_limit_for_fds(need - 1, threads), limit - 1);
		}
	}
}

static void test_limit_for_fds_at_least_one(void **state)
{
	assert_int_equal(berth_conns_limit_for_fds(0, 4), 1);
	assert_int_equal(berth_conns_limit_for_fds(10, 4), 1);
	assert_int_equal(berth_conns_limit_for_fds(berth_conns_fds_needed(0, 4), 4), 1);
}

static void test_fds_needed_leaves_room(void **state)
{
	/* more than a descriptor per connection: requests hold files open too */
	assert_true(berth_conns_fds_needed(4096, 2) >= 4096 + 4096 / 8 + 16);
	assert_true(berth_conns_fds_needed(4096, 64) > berth_conns_fds_needed(4096, 2));
}

/* Runs before the hard limit is lowered below (the order of the tests matters). */
static void test_fit_raises_the_soft_limit(void **state)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rlim_t need = berth_conns_fds_needed(1000, 2);
	if (rl.rlim_max < need)
		skip();
	struct rlimit low = { 64, rl.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(berth_conns_fit_fd_limit(1000, 2), 1000);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur >= need);
}

static void test_fit_lowers_the_limit_to_the_hard_limit(void **state)
{
	struct rlimit low = { 300, 300 };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	unsigned fit = berth_conns_fit_fd_limit(4096, 2);
	assert_int_equal(fit, berth_conns_limit_for_fds(300, 2));
	assert_true(fit > 100 && fit < 300);
	assert_int_equal(berth_conns_fit_fd_limit(fit, 2), fit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_for_fds_inverts_fds_needed),
		cmocka_unit_test(test_limit_for_fds_at_least_one),
		cmocka_unit_test(test_fds_needed_leaves_room),
		cmocka_unit_test(test_fit_raises_the_soft_limit),
		cmocka_unit_test(test_fit_lowers_the_limit_to_the_hard_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

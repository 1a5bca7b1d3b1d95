/* The periodic task: runs first after first_ms, then every interval_ms; stop returns at once
 * even in the middle of a long interval, and no run happens after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/periodic.h"
#include "core/util.h"

static void count(void *arg)
{
	atomic_fetch_add((_Atomic int *)arg, 1);
}

static void test_runs_every_interval(void **state)
{
	(void)state;
	_Atomic int runs = 0;
	struct berth_periodic *p = NULL;
	assert_int_equal(berth_periodic_start(&p, 0, 10, count, &runs), 0);
	for (int i = 0; i < 200 && atomic_load(&runs) < 3; i++)
		usleep(10 * 1000);
	assert_true(atomic_load(&runs) >= 3);
	berth_periodic_stop(p);
	int after = atomic_load(&runs);
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&runs), after);
}

static void test_stop_does_not_wait_for_the_interval(void **state)
{
	(void)state;
	_Atomic int runs = 0;
	struct berth_periodic *p = NULL;
	assert_int_equal(berth_periodic_start(&p, 3600 * 1000, 3600 * 1000, count, &runs), 0);
	uint64_t t0 = berth_now_ns();
	berth_periodic_stop(p);
	assert_true(berth_now_ns() - t0 < 1000000000ull);
	assert_int_equal(atomic_load(&runs), 0);
	berth_periodic_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_every_interval),
		cmocka_unit_test(test_stop_does_not_wait_for_the_interval),
	};
	return cmocka_run_group_tests_name("periodic task", tests, NULL, NULL);
}

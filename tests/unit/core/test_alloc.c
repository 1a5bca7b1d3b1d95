/* The project's allocator (core/util.c): the test mode that fails the n-th allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/util.h"

static jmp_buf oom_jump;
static int oom_calls;

static void on_oom(void)
{
	oom_calls++;
	longjmp(oom_jump, 1);
}

static void test_fail_nth_try(void **state)
{
	berth_alloc_fail_at(3);
	void *a = berth_try_malloc(8), *b = berth_try_calloc(2, 8);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(berth_alloc_fail_pending());
	assert_null(berth_try_strdup("third"));
	assert_false(berth_alloc_fail_pending());
	/* Only the n-th: the next ones succeed again. */
	char *c = berth_try_strdup("fourth");
	assert_string_equal(c, "fourth");
	free(a);
	free(b);
	free(c);
}

static void test_off_by_default(void **state)
{
	berth_alloc_fail_at(0);
	for (int i = 0; i < 1000; i++)
		free(berth_try_malloc(16));
	assert_false(berth_alloc_fail_pending());
}

static void test_aborting_allocation_calls_handler(void **state)
{
	berth_alloc_set_oom_handler(on_oom);
	oom_calls = 0;
	char *volatile kept = NULL;
	if (setjmp(oom_jump) == 0) {
		berth_alloc_fail_at(2);
		kept = berth_strdup("first");
		(void)berth_asprintf("%s", "second fails");
		fail_msg("the failing allocation returned");
	}
	assert_int_equal(oom_calls, 1);
	berth_alloc_set_oom_handler(NULL);
	free(kept);
}

static void test_jansson_goes_through_it(void **state)
{
	berth_alloc_fail_at(1);
	json_t *j = json_loads("{\"a\":[1,2,3]}", 0, NULL);
	assert_null(j);
	assert_false(berth_alloc_fail_pending());
	j = json_loads("{\"a\":[1,2,3]}", 0, NULL);
	assert_non_null(j);
	json_decref(j);
}

int main(void)
{
	berth_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fail_nth_try),
		cmocka_unit_test(test_off_by_default),
		cmocka_unit_test(test_aborting_allocation_calls_handler),
		cmocka_unit_test(test_jansson_goes_through_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The recency list: push, touch and unlink keep head (most recent) and tail (next to evict)
 * right, and an entry is found again from its node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/lru.h"

struct item {
	int id;
	struct berth_lru_node lru;
};

static int id_of(struct berth_lru_node *n)
{
	struct item *it = BERTH_LRU_ENTRY(n, struct item, lru);
	return it ? it->id : -1;
}

/* The ids from head to tail, checked against the tail-to-head walk too. */
static void assert_order(struct berth_lru *l, const int *want, int n)
{
	int i = 0;
	for (struct berth_lru_node *p = l->head; p; p = p->next, i++) {
		assert_true(i < n);
		assert_int_equal(id_of(p), want[i]);
	}
	assert_int_equal(i, n);
	for (struct berth_lru_node *p = l->tail; p; p = p->prev)
		assert_int_equal(id_of(p), want[--i]);
	assert_int_equal(i, 0);
}

static void test_push_touch_unlink(void **state)
{
	(void)state;
	struct berth_lru l = { 0 };
	struct item it[4] = { { 0, { 0 } }, { 1, { 0 } }, { 2, { 0 } }, { 3, { 0 } } };
	assert_null(BERTH_LRU_ENTRY(l.tail, struct item, lru));
	for (int i = 0; i < 4; i++)
		berth_lru_push_front(&l, &it[i].lru);
	assert_order(&l, (int[]){ 3, 2, 1, 0 }, 4);
	berth_lru_touch(&l, &it[0].lru); /* the tail becomes the head */
	assert_order(&l, (int[]){ 0, 3, 2, 1 }, 4);
	berth_lru_touch(&l, &it[0].lru); /* touching the head changes nothing */
	assert_order(&l, (int[]){ 0, 3, 2, 1 }, 4);
	berth_lru_touch(&l, &it[2].lru); /* from the middle */
	assert_order(&l, (int[]){ 2, 0, 3, 1 }, 4);
	berth_lru_unlink(&l, &it[1].lru); /* the tail */
	assert_order(&l, (int[]){ 2, 0, 3 }, 3);
	berth_lru_unlink(&l, &it[2].lru); /* the head */
	assert_order(&l, (int[]){ 0, 3 }, 2);
	berth_lru_unlink(&l, &it[0].lru);
	berth_lru_unlink(&l, &it[3].lru);
	assert_null(l.head);
	assert_null(l.tail);
	assert_null(it[3].lru.prev);
	assert_null(it[3].lru.next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_touch_unlink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* core/vec, core/map and core/oid: the containers gc, fsck and the registry share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/map.h"
#include "core/oid.h"
#include "core/vec.h"

#define HEX256 "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static void test_vec_grow(void **state)
{
	uint64_t *v = NULL;
	size_t n = 0, alloc = 0;
	for (uint64_t i = 0; i < 10000; i++) {
		BERTH_VEC_GROW(v, n + 1, alloc);
		v[n++] = i * 3;
	}
	assert_true(alloc >= n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i], i * 3);
	size_t before = alloc;
	BERTH_VEC_GROW(v, 5, alloc); /* enough room already: nothing moves */
	assert_int_equal(alloc, before);
	free(v);
}

static void test_strvec(void **state)
{
	struct berth_strvec l = { 0 };
	const char *in[] = { "b", "a/c", "a", "zz" };
	for (size_t i = 0; i < 4; i++)
		berth_strvec_push(&l, in[i]);
	berth_strvec_sort(&l);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.items[0], "a");
	assert_string_equal(l.items[1], "a/c");
	assert_string_equal(l.items[3], "zz");
	berth_strvec_release(&l);
	assert_null(l.items);
	assert_int_equal(l.n, 0);
	berth_strvec_push(&l, "again");
	berth_strvec_release(&l);
}

struct counted {
	char *name;
	int count;
};

static void test_strvec_sort_unique(void **state)
{
	(void)state;
	struct berth_strvec l = { 0 };
	berth_strvec_sort_unique(&l); /* empty: fine */
	assert_int_equal(l.n, 0);
	const char *in[] = { "b", "a", "b", "c", "a", "b" };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		berth_strvec_push(&l, in[i]);
	berth_strvec_sort_unique(&l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0], "a");
	assert_string_equal(l.items[1], "b");
	assert_string_equal(l.items[2], "c");
	berth_strvec_release(&l); /* the repeats were freed: no leak, no double free */
}

static void test_map_string_keys(void **state)
{
	struct berth_map m = BERTH_MAP_INIT(sizeof(struct counted), 0);
	char key[32];
	assert_null(berth_map_find(&m, "absent"));
	/* Past several growths: entries keep their values. */
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "repo/%d", i % 2500);
		int added = -1;
		struct counted *c = berth_map_add(&m, key, &added);
		assert_int_equal(added, i < 2500);
		assert_string_equal(c->name, key);
		assert_true(c->name != key); /* the map's own copy */
		c->count++;
	}
	assert_int_equal(m.n, 2500);
	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof(key), "repo/%d", i);
		struct counted *c = berth_map_find(&m, key);
		assert_non_null(c);
		assert_int_equal(c->count, 2);
	}
	assert_null(berth_map_find(&m, "repo/2500"));
	size_t seen = 0;
	struct counted *c;
	for (size_t i = 0; (c = berth_map_next(&m, &i));)
		seen++;
	assert_int_equal(seen, 2500);
	berth_map_release(&m);
	assert_null(berth_map_find(&m, "repo/1"));
}

struct blob {
	struct berth_oid oid;
	uint64_t size;
};

static void test_map_binary_keys(void **state)
{
	struct berth_map m = BERTH_MAP_INIT(sizeof(struct blob), sizeof(struct berth_oid));
	struct berth_oid a, b;
	assert_int_equal(berth_oid_parse(&a, "sha256:" HEX256), 0);
	b = a;
	b.id[31] ^= 1;
	struct blob *x = berth_map_add(&m, &a, NULL);
	x->size = 7;
	assert_null(berth_map_find(&m, &b));
	int added = 0;
	struct blob *y = berth_map_add(&m, &b, &added);
	assert_int_equal(added, 1);
	assert_int_equal(y->size, 0);
	assert_int_equal(berth_oid_cmp(&y->oid, &b), 0);
	x = berth_map_find(&m, &a);
	assert_int_equal(x->size, 7);
	assert_int_equal(m.n, 2);
	berth_map_release(&m);
}

/* Random adds and removes against a plain array: removal's backward shift keeps every other
 * key findable, wrapping around the end of the table included. */
static void test_map_remove(void **state)
{
	enum { KEYS = 3000 };
	static char present[KEYS];
	struct berth_map m = BERTH_MAP_INIT(sizeof(struct counted), 0);
	char key[32];
	unsigned seed = 12345;
	memset(present, 0, sizeof(present));
	for (int round = 0; round < 60000; round++) {
		seed = seed * 1103515245u + 12345u;
		int k = (int)((seed >> 8) % KEYS);
		snprintf(key, sizeof(key), "k%d", k);
		if ((seed >> 4) & 1) {
			berth_map_add(&m, key, NULL);
			present[k] = 1;
		} else {
			assert_int_equal(berth_map_remove(&m, key), present[k]);
			present[k] = 0;
		}
		if (round % 5000 == 0) {
			size_t n = 0;
			for (int i = 0; i < KEYS; i++) {
				snprintf(key, sizeof(key), "k%d", i);
				assert_int_equal(berth_map_find(&m, key) != NULL, present[i]);
				n += present[i];
			}
			assert_int_equal(m.n, n);
		}
	}
	berth_map_release(&m);
}

struct owner {
	char name[16];
	int value;
};

struct ref_entry {
	const char *name; /* points into the owner */
	struct owner *o;
};

static void test_map_borrowed_keys(void **state)
{
	struct owner owners[100];
	struct berth_map m = BERTH_MAP_INIT_REF(sizeof(struct ref_entry));
	berth_map_reserve(&m, 100);
	size_t cap = m.cap;
	for (int i = 0; i < 100; i++) {
		snprintf(owners[i].name, sizeof(owners[i].name), "o%d", i);
		owners[i].value = i;
		uint32_t h = berth_map_hash(&m, owners[i].name);
		struct ref_entry *e = berth_map_add_hashed(&m, owners[i].name, h, NULL);
		assert_ptr_equal(e->name, owners[i].name); /* not copied */
		e->o = &owners[i];
	}
	assert_int_equal(m.cap, cap); /* reserved: no growth */
	struct ref_entry *e = berth_map_find(&m, "o42");
	assert_int_equal(e->o->value, 42);
	assert_int_equal(berth_map_remove_hashed(&m, "o42", berth_map_hash(&m, "o42")), 1);
	assert_null(berth_map_find(&m, "o42"));
	assert_int_equal(berth_map_remove(&m, "o42"), 0);
	berth_map_release(&m);
}

static void test_oid_round_trip(void **state)
{
	struct berth_oid o;
	char s[BERTH_DIGEST_STR_MAX], hex[2 * BERTH_OID_MAX_BYTES + 1];
	assert_int_equal(berth_oid_parse(&o, "sha256:" HEX256), 0);
	assert_int_equal(o.alg, BERTH_ALG_SHA256);
	assert_int_equal(o.id[0], 0x2c);
	berth_oid_fmt(s, &o);
	assert_string_equal(s, "sha256:" HEX256);
	berth_oid_hex(hex, &o);
	assert_string_equal(hex, HEX256);

	char d512[BERTH_DIGEST_STR_MAX] = "sha512:";
	memset(d512 + 7, 'f', 128);
	d512[135] = '\0';
	assert_int_equal(berth_oid_parse(&o, d512), 0);
	assert_int_equal(berth_oid_size(o.alg), 64);
	berth_oid_fmt(s, &o);
	assert_string_equal(s, d512);

	struct berth_oid p;
	assert_int_equal(berth_oid_from_parts(&p, "sha256/x", 6, HEX256), 0);
	assert_string_equal((berth_oid_fmt(s, &p), s), "sha256:" HEX256);
}

static void test_oid_invalid(void **state)
{
	struct berth_oid o;
	const char *bad[] = { "", "sha256", "sha256:", ("sha256:" HEX256 "0"), ("md5:" HEX256),
			      "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
			      "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&o, 0xff, sizeof(o));
		assert_int_equal(berth_oid_parse(&o, bad[i]), BERTH_EINVALID);
		assert_int_equal(o.alg, 0); /* zeroed */
	}
	assert_int_equal(berth_oid_parse(&o, NULL), BERTH_EINVALID);
}

static void test_oid_order(void **state)
{
	struct berth_oid a, b;
	assert_int_equal(berth_oid_parse(&a, "sha256:" HEX256), 0);
	b = a;
	assert_int_equal(berth_oid_cmp(&a, &b), 0);
	b.id[0]++;
	assert_true(berth_oid_cmp(&a, &b) < 0);
	assert_true(berth_oid_cmp(&b, &a) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vec_grow),         cmocka_unit_test(test_strvec),
		cmocka_unit_test(test_map_string_keys),  cmocka_unit_test(test_map_binary_keys),
		cmocka_unit_test(test_map_remove),       cmocka_unit_test(test_map_borrowed_keys),
		cmocka_unit_test(test_oid_round_trip),   cmocka_unit_test(test_oid_invalid),
		cmocka_unit_test(test_oid_order),        cmocka_unit_test(test_strvec_sort_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

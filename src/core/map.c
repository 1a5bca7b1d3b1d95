#include "core/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define MAP_FIRST_CAP 256

static const char *string_key(const unsigned char *entry)
{
	const char *k;
	memcpy(&k, entry, sizeof(k));
	return k;
}

/* FNV-1a, folded: keys are strings and digests, short and not adversarial. */
static size_t hash_key(const struct berth_map *m, const void *key)
{
	uint64_t h = 1469598103934665603ull;
	if (m->key_size) {
		const unsigned char *p = key;
		for (size_t i = 0; i < m->key_size; i++)
			h = (h ^ p[i]) * 1099511628211ull;
	} else {
		for (const unsigned char *p = key; *p; p++)
			h = (h ^ *p) * 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 31));
}

static int key_equal(const struct berth_map *m, const unsigned char *entry, const void *key)
{
	if (m->key_size)
		return memcmp(entry, key, m->key_size) == 0;
	return strcmp(string_key(entry), key) == 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const struct berth_map *m, const void *key)
{
	size_t j = hash_key(m, key) & (m->cap - 1);
	while (m->used[j] && !key_equal(m, m->slots + j * m->entry_size, key))
		j = (j + 1) & (m->cap - 1);
	return j;
}

static void grow(struct berth_map *m)
{
	struct berth_map old = *m;
	m->cap = old.cap ? old.cap * 2 : MAP_FIRST_CAP;
	if (m->cap > SIZE_MAX / m->entry_size)
		abort();
	m->slots = berth_malloc(m->cap * m->entry_size);
	m->used = berth_calloc(m->cap, 1);
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.used[i])
			continue;
		const unsigned char *e = old.slots + i * m->entry_size;
		size_t j = probe(m, m->key_size ? (const void *)e : (const void *)string_key(e));
		memcpy(m->slots + j * m->entry_size, e, m->entry_size);
		m->used[j] = 1;
	}
	free(old.slots);
	free(old.used);
}

void *berth_map_find(const struct berth_map *m, const void *key)
{
	if (!m->cap)
		return NULL;
	size_t j = probe(m, key);
	return m->used[j] ? m->slots + j * m->entry_size : NULL;
}

void *berth_map_add(struct berth_map *m, const void *key, int *added)
{
	unsigned char *e = berth_map_find(m, key);
	if (added)
		*added = e == NULL;
	if (e)
		return e;
	/* At most 70% full: linear probing stays short. */
	if ((m->n + 1) * 10 > m->cap * 7)
		grow(m);
	size_t j = probe(m, key);
	e = m->slots + j * m->entry_size;
	memset(e, 0, m->entry_size);
	if (m->key_size) {
		memcpy(e, key, m->key_size);
	} else {
		char *copy = berth_strdup(key);
		memcpy(e, &copy, sizeof(copy));
	}
	m->used[j] = 1;
	m->n++;
	return e;
}

void *berth_map_next(const struct berth_map *m, size_t *pos)
{
	for (; *pos < m->cap; (*pos)++)
		if (m->used[*pos])
			return m->slots + (*pos)++ * m->entry_size;
	return NULL;
}

void berth_map_release(struct berth_map *m)
{
	if (!m->key_size)
		for (size_t i = 0; i < m->cap; i++)
			if (m->used[i])
				free((void *)string_key(m->slots + i * m->entry_size));
	free(m->slots);
	free(m->used);
	m->slots = m->used = NULL;
	m->cap = m->n = 0;
}

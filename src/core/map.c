#include "core/map.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define MAP_FIRST_CAP 64

static const char *string_key(const unsigned char *entry)
{
	const char *k;
	memcpy(&k, entry, sizeof(k));
	return k;
}

static const void *key_of(const struct berth_map *m, const unsigned char *entry)
{
	return m->key_size ? (const void *)entry : (const void *)string_key(entry);
}

/* FNV-1a, folded to 32 bits: keys are strings and digests, short and not adversarial. */
uint32_t berth_map_hash(const struct berth_map *m, const void *key)
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
	uint32_t folded = (uint32_t)(h ^ (h >> 32));
	return folded ? folded : 1;
}

static int key_equal(const struct berth_map *m, const unsigned char *entry, const void *key)
{
	if (m->key_size)
		return memcmp(entry, key, m->key_size) == 0;
	return strcmp(string_key(entry), key) == 0;
}

/* The slot holding key, or the empty slot where it would go. Needs cap > 0. */
static size_t probe(const struct berth_map *m, const void *key, uint32_t hash)
{
	size_t mask = m->cap - 1;
	size_t j = hash & mask;
	while (m->hashes[j] &&
	       (m->hashes[j] != hash || !key_equal(m, m->slots + j * m->entry_size, key)))
		j = (j + 1) & mask;
	return j;
}

static void resize(struct berth_map *m, size_t cap)
{
	struct berth_map old = *m;
	if (cap > SIZE_MAX / m->entry_size)
		abort();
	m->cap = cap;
	m->slots = berth_malloc(cap * m->entry_size);
	m->hashes = berth_calloc(cap, sizeof(*m->hashes));
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.hashes[i])
			continue;
		const unsigned char *e = old.slots + i * m->entry_size;
		size_t j = probe(m, key_of(m, e), old.hashes[i]);
		memcpy(m->slots + j * m->entry_size, e, m->entry_size);
		m->hashes[j] = old.hashes[i];
	}
	free(old.slots);
	free(old.hashes);
}

/* Capacity keeping n entries at most 70% full: linear probing stays short. */
static size_t cap_for(size_t n)
{
	size_t cap = MAP_FIRST_CAP;
	while (cap / 10 * 7 < n)
		cap *= 2;
	return cap;
}

void berth_map_reserve(struct berth_map *m, size_t n)
{
	size_t cap = cap_for(n);
	if (cap > m->cap)
		resize(m, cap);
}

void *berth_map_find_hashed(const struct berth_map *m, const void *key, uint32_t hash)
{
	if (!m->cap)
		return NULL;
	size_t j = probe(m, key, hash);
	return m->hashes[j] ? m->slots + j * m->entry_size : NULL;
}

void *berth_map_find(const struct berth_map *m, const void *key)
{
	return berth_map_find_hashed(m, key, berth_map_hash(m, key));
}

void *berth_map_add_hashed(struct berth_map *m, const void *key, uint32_t hash, int *added)
{
	unsigned char *e = berth_map_find_hashed(m, key, hash);
	if (added)
		*added = e == NULL;
	if (e)
		return e;
	if (m->cap / 10 * 7 < m->n + 1)
		resize(m, cap_for(m->n + 1));
	size_t j = probe(m, key, hash);
	e = m->slots + j * m->entry_size;
	memset(e, 0, m->entry_size);
	if (m->key_size) {
		memcpy(e, key, m->key_size);
	} else {
		const char *k = m->borrowed_keys ? key : berth_strdup(key);
		memcpy(e, &k, sizeof(k));
	}
	m->hashes[j] = hash;
	m->n++;
	return e;
}

void *berth_map_add(struct berth_map *m, const void *key, int *added)
{
	return berth_map_add_hashed(m, key, berth_map_hash(m, key), added);
}

int berth_map_remove_hashed(struct berth_map *m, const void *key, uint32_t hash)
{
	if (!m->cap)
		return 0;
	size_t mask = m->cap - 1;
	size_t hole = probe(m, key, hash);
	if (!m->hashes[hole])
		return 0;
	if (!m->key_size && !m->borrowed_keys)
		free((void *)string_key(m->slots + hole * m->entry_size));
	m->hashes[hole] = 0;
	m->n--;
	/* Backward shift: move up every later entry of the run that the hole would hide. */
	for (size_t j = (hole + 1) & mask; m->hashes[j]; j = (j + 1) & mask) {
		size_t home = m->hashes[j] & mask;
		int reachable = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (reachable)
			continue; /* its probe from home does not pass the hole */
		unsigned char *to = m->slots + hole * m->entry_size;
		memcpy(to, m->slots + j * m->entry_size, m->entry_size);
		m->hashes[hole] = m->hashes[j];
		m->hashes[j] = 0;
		hole = j;
	}
	return 1;
}

int berth_map_remove(struct berth_map *m, const void *key)
{
	return berth_map_remove_hashed(m, key, berth_map_hash(m, key));
}

void *berth_map_next(const struct berth_map *m, size_t *pos)
{
	for (; *pos < m->cap; (*pos)++)
		if (m->hashes[*pos])
			return m->slots + (*pos)++ * m->entry_size;
	return NULL;
}

void berth_map_release(struct berth_map *m)
{
	if (!m->key_size && !m->borrowed_keys)
		for (size_t i = 0; i < m->cap; i++)
			if (m->hashes[i])
				free((void *)string_key(m->slots + i * m->entry_size));
	free(m->slots);
	free(m->hashes);
	m->slots = NULL;
	m->hashes = NULL;
	m->cap = m->n = 0;
}

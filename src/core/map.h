/*
 * A hash map with its entries stored inline (open addressing, linear probing, backward-shift
 * removal), for the tables of a gc or fsck run (every blob of a store, every repository) and
 * the registry's caches. Entries are fixed-size structs whose first member is the key:
 *   - BERTH_MAP_INIT(entry_size, key_size), key_size > 0: the first key_size bytes (a struct
 *     berth_oid's bytes, say), compared with memcmp;
 *   - BERTH_MAP_INIT(entry_size, 0): a `char *` string that the map copies on insertion and
 *     owns;
 *   - BERTH_MAP_INIT_REF(entry_size): a `const char *` string that the caller keeps alive as
 *     long as the entry is in the map (typically it points into the object the entry refers
 *     to, as the caches do).
 * An entry pointer stays valid until the next insertion or removal. Not thread-safe: callers
 * lock. Each slot keeps 4 bytes of the key's hash, so probes rarely compare keys.
 *
 *	struct blob { struct berth_oid oid; uint64_t size; };
 *	struct berth_map blobs = BERTH_MAP_INIT(sizeof(struct blob), sizeof(struct berth_oid));
 *	struct blob *b = berth_map_add(&blobs, &oid, NULL);
 */
#ifndef BERTH_CORE_MAP_H
#define BERTH_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct berth_map {
	size_t entry_size;
	size_t key_size;   /* 0: the entry starts with a char * key */
	int borrowed_keys; /* string keys the caller owns (BERTH_MAP_INIT_REF) */
	size_t cap;        /* slots, a power of two, or 0 */
	size_t n;          /* entries */
	unsigned char *slots;
	uint32_t *hashes;  /* per slot; 0: empty */
};

#define BERTH_MAP_INIT(entry_size_, key_size_) { (entry_size_), (key_size_), 0, 0, 0, NULL, NULL }
#define BERTH_MAP_INIT_REF(entry_size_) { (entry_size_), 0, 1, 0, 0, NULL, NULL }

/* The hash of key as the map uses it (never 0). Callers that also shard by a hash pass it to
 * the _hashed calls, so a key is hashed once; use its top bits for the shard, as the map uses
 * the low ones. */
uint32_t berth_map_hash(const struct berth_map *m, const void *key);

/* The entry for key (key_size bytes, or a NUL-terminated string), or NULL. */
void *berth_map_find(const struct berth_map *m, const void *key);
void *berth_map_find_hashed(const struct berth_map *m, const void *key, uint32_t hash);
/* The entry for key; when absent it is added, zeroed but for its key, and *added (if not NULL)
 * is set to 1 (else 0). */
void *berth_map_add(struct berth_map *m, const void *key, int *added);
void *berth_map_add_hashed(struct berth_map *m, const void *key, uint32_t hash, int *added);
/* Removes key's entry (freeing an owned string key). 1 if there was one, else 0. */
int berth_map_remove(struct berth_map *m, const void *key);
int berth_map_remove_hashed(struct berth_map *m, const void *key, uint32_t hash);
/* Makes room for n entries without growing again (as a cache of known size wants). */
void berth_map_reserve(struct berth_map *m, size_t n);
/* Iterates in no particular order: for (size_t i = 0; (e = berth_map_next(m, &i));). */
void *berth_map_next(const struct berth_map *m, size_t *pos);
/* Frees the slots and the owned string keys; the map is empty and reusable afterwards. */
void berth_map_release(struct berth_map *m);

#endif

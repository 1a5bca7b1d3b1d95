/*
 * A hash map with its entries stored inline (open addressing, linear probing), for the tables
 * of a gc or fsck run: every blob of a store, every repository, every link. Entries are
 * fixed-size structs whose first member is the key:
 *   - key_size > 0: the first key_size bytes (a struct berth_oid's bytes, say), compared with
 *     memcmp;
 *   - key_size == 0: a `char *` string that the map copies on insertion and owns.
 * An entry pointer stays valid until the next insertion. Nothing is ever removed: a map lives
 * for one run and is released whole. Not thread-safe.
 *
 *	struct blob { struct berth_oid oid; uint64_t size; };
 *	struct berth_map blobs = BERTH_MAP_INIT(sizeof(struct blob), sizeof(struct berth_oid));
 *	struct blob *b = berth_map_add(&blobs, &oid, NULL);
 */
#ifndef BERTH_CORE_MAP_H
#define BERTH_CORE_MAP_H

#include <stddef.h>

struct berth_map {
	size_t entry_size;
	size_t key_size; /* 0: the entry starts with an owned char * key */
	size_t cap;      /* slots, a power of two, or 0 */
	size_t n;        /* entries */
	unsigned char *slots;
	unsigned char *used;
};

#define BERTH_MAP_INIT(entry_size_, key_size_) { (entry_size_), (key_size_), 0, 0, NULL, NULL }

/* The entry for key (key_size bytes, or a NUL-terminated string), or NULL. */
void *berth_map_find(const struct berth_map *m, const void *key);
/* The entry for key; when absent it is added, zeroed but for its key, and *added (if not NULL)
 * is set to 1 (else 0). */
void *berth_map_add(struct berth_map *m, const void *key, int *added);
/* Iterates in no particular order: for (size_t i = 0; (e = berth_map_next(m, &i));). */
void *berth_map_next(const struct berth_map *m, size_t *pos);
/* Frees the slots and the string keys; the map is empty and reusable afterwards. */
void berth_map_release(struct berth_map *m);

#endif

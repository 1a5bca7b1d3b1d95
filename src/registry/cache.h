/*
 * A bounded, thread-safe LRU cache from string keys to a number and optional bytes, for facts
 * that never change once true: a blob's size, a repository's link to a digest, a manifest's
 * bytes (content-addressed); and a tag's current link, kept only with the link file's version
 * and used only while a stat shows that version still. Deletes made through this process
 * remove the entries they invalidate; like Distribution's blob descriptor cache, changes made by
 * another process on shared storage are seen once the entry is evicted.
 * Sharded by key hash so concurrent requests rarely contend.
 */
#ifndef BERTH_REGISTRY_CACHE_H
#define BERTH_REGISTRY_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct berth_cache;

/* max_entries and max_bytes (of values) bound the whole cache. */
struct berth_cache *berth_cache_new(size_t max_entries, size_t max_bytes);
void berth_cache_free(struct berth_cache *c);

/*
 * Looks key up. On a hit returns 1, sets *num, and when data is not NULL gives a heap copy of the
 * bytes (*data, NUL-terminated, *len) that the caller frees. 0 on a miss.
 */
int berth_cache_get(uint64_t *num, char **data, size_t *len, struct berth_cache *c, const char *key);
/* As berth_cache_get, into buf (cap bytes, NUL-terminated): 1 on a hit whose value fits, with
 * *num and *len set; 0 otherwise. No allocation. */
int berth_cache_get_into(struct berth_cache *c, const char *key, uint64_t *num, char *buf, size_t cap,
			 size_t *len);
/* Inserts or replaces. A value larger than an eighth of its shard's share of max_bytes
 * (max_bytes / 128) is not cached. */
void berth_cache_put(struct berth_cache *c, const char *key, uint64_t num, const void *data, size_t len);
void berth_cache_remove(struct berth_cache *c, const char *key);

#endif

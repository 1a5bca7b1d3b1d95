#include "registry/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/lru.h"
#include "core/map.h"
#include "core/util.h"

#define SHARD_BITS 4
#define SHARDS (1 << SHARD_BITS)

struct entry {
	struct berth_lru_node lru;
	uint32_t hash;
	uint64_t num;
	size_t len;
	char *data;
	char key[];
};

/* A shard's table slot: the key lives in the entry. */
struct slot {
	const char *key;
	struct entry *e;
};

struct shard {
	pthread_mutex_t lock;
	struct berth_map table; /* struct slot */
	size_t bytes;
	struct berth_lru lru;
};

struct berth_cache {
	size_t max_entries; /* per shard */
	size_t max_bytes;   /* per shard */
	struct shard shards[SHARDS];
};

/* The map's hash of key; its top bits pick the shard, its low bits the slot. */
static uint32_t hash_key(struct berth_cache *c, const char *key)
{
	return berth_map_hash(&c->shards[0].table, key);
}

static struct shard *shard_of(struct berth_cache *c, uint32_t hash)
{
	return &c->shards[hash >> (32 - SHARD_BITS)];
}

struct berth_cache *berth_cache_new(size_t max_entries, size_t max_bytes)
{
	struct berth_cache *c = berth_calloc(1, sizeof(*c));
	c->max_entries = max_entries / SHARDS ? max_entries / SHARDS : 1;
	c->max_bytes = max_bytes / SHARDS;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_init(&s->lock, NULL);
		s->table = (struct berth_map)BERTH_MAP_INIT_REF(sizeof(struct slot));
		berth_map_reserve(&s->table, c->max_entries); /* no growth while serving */
	}
	return c;
}

static void free_entry(struct entry *e)
{
	free(e->data);
	free(e);
}

void berth_cache_free(struct berth_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		for (struct berth_lru_node *n = s->lru.head, *next; n; n = next) {
			next = n->next;
			free_entry(BERTH_LRU_ENTRY(n, struct entry, lru));
		}
		berth_map_release(&s->table);
		pthread_mutex_destroy(&s->lock);
	}
	free(c);
}

static struct entry *find(struct shard *s, const char *key, uint32_t hash)
{
	struct slot *sl = berth_map_find_hashed(&s->table, key, hash);
	return sl ? sl->e : NULL;
}

/* Takes e out of the table and the LRU list and frees it. */
static void drop(struct shard *s, struct entry *e)
{
	berth_map_remove_hashed(&s->table, e->key, e->hash);
	berth_lru_unlink(&s->lru, &e->lru);
	s->bytes -= e->len;
	free_entry(e);
}

/* The entry for key, marked as just used, or NULL. Called with s->lock held. */
static struct entry *lookup(struct shard *s, const char *key, uint32_t hash)
{
	struct entry *e = find(s, key, hash);
	if (e)
		berth_lru_touch(&s->lru, &e->lru);
	return e;
}

int berth_cache_get(uint64_t *num, char **data, size_t *len, struct berth_cache *c, const char *key)
{
	uint32_t hash = hash_key(c, key);
	struct shard *s = shard_of(c, hash);
	pthread_mutex_lock(&s->lock);
	struct entry *e = lookup(s, key, hash);
	if (e) {
		if (num)
			*num = e->num;
		if (data) {
			*data = berth_malloc(e->len + 1);
			memcpy(*data, e->data ? e->data : "", e->len);
			(*data)[e->len] = '\0';
			*len = e->len;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

int berth_cache_get_into(struct berth_cache *c, const char *key, uint64_t *num, char *buf, size_t cap,
			 size_t *len)
{
	uint32_t hash = hash_key(c, key);
	struct shard *s = shard_of(c, hash);
	pthread_mutex_lock(&s->lock);
	struct entry *e = lookup(s, key, hash);
	int hit = e && e->len < cap;
	if (hit) {
		*num = e->num;
		memcpy(buf, e->data ? e->data : "", e->len);
		buf[e->len] = '\0';
		*len = e->len;
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

void berth_cache_put(struct berth_cache *c, const char *key, uint64_t num, const void *data, size_t len)
{
	uint32_t hash = hash_key(c, key);
	struct shard *s = shard_of(c, hash);
	if (len > c->max_bytes / 8 + 1)
		return;
	size_t klen = strlen(key);
	struct entry *e = berth_malloc(sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->hash = hash;
	e->num = num;
	e->len = data ? len : 0;
	e->data = data && len ? berth_malloc(len) : NULL;
	if (e->data)
		memcpy(e->data, data, len);
	e->lru.prev = e->lru.next = NULL;

	pthread_mutex_lock(&s->lock);
	struct entry *old = find(s, key, hash);
	if (old)
		drop(s, old);
	while (s->lru.tail && (s->table.n >= c->max_entries || s->bytes + e->len > c->max_bytes))
		drop(s, BERTH_LRU_ENTRY(s->lru.tail, struct entry, lru));
	struct slot *sl = berth_map_add_hashed(&s->table, e->key, hash, NULL);
	sl->e = e;
	berth_lru_push_front(&s->lru, &e->lru);
	s->bytes += e->len;
	pthread_mutex_unlock(&s->lock);
}

void berth_cache_remove(struct berth_cache *c, const char *key)
{
	uint32_t hash = hash_key(c, key);
	struct shard *s = shard_of(c, hash);
	pthread_mutex_lock(&s->lock);
	struct entry *e = find(s, key, hash);
	if (e)
		drop(s, e);
	pthread_mutex_unlock(&s->lock);
}

/*
 * A recency list for bounded caches: an intrusive doubly linked list, most recently used at the
 * head, least at the tail (the next to evict). An entry embeds a struct berth_lru_node and is
 * found again from it with BERTH_LRU_ENTRY. Callers do their own locking.
 */
#ifndef BERTH_CORE_LRU_H
#define BERTH_CORE_LRU_H

#include <stddef.h>

struct berth_lru_node {
	struct berth_lru_node *prev, *next;
};

struct berth_lru {
	struct berth_lru_node *head, *tail;
};

/* The entry of type `type` whose member `member` is node (NULL for a NULL node). */
#define BERTH_LRU_ENTRY(node, type, member) \
	((node) ? (type *)(void *)((char *)(node) - offsetof(type, member)) : (type *)NULL)

static inline void berth_lru_unlink(struct berth_lru *l, struct berth_lru_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static inline void berth_lru_push_front(struct berth_lru *l, struct berth_lru_node *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	l->head = n;
	if (!l->tail)
		l->tail = n;
}

/* Marks n as just used. */
static inline void berth_lru_touch(struct berth_lru *l, struct berth_lru_node *n)
{
	berth_lru_unlink(l, n);
	berth_lru_push_front(l, n);
}

#endif

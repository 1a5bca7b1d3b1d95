/*
 * Growable arrays. A vector is any typed array with a length and an allocated count; one call
 * makes room (doubling, as git's ALLOC_GROW), so no module writes its own growing loop:
 *
 *	struct rev *revs = NULL;
 *	size_t n = 0, alloc = 0;
 *	BERTH_VEC_GROW(revs, n + 1, alloc);
 *	revs[n++] = r;
 *
 * Growth aborts on overflow or exhaustion, as berth_malloc does (core/util.h).
 */
#ifndef BERTH_CORE_VEC_H
#define BERTH_CORE_VEC_H

#include <stddef.h>

/* Makes *items hold at least need elements of item_size bytes (*alloc is its capacity). New
 * room is not initialised. */
void berth_vec_grow(void **items, size_t *alloc, size_t need, size_t item_size);

#define BERTH_VEC_GROW(arr, need, alloc)                                                         \
	do {                                                                                     \
		if ((need) > (alloc)) {                                                          \
			void *berth_vec_p_ = (arr);                                              \
			berth_vec_grow(&berth_vec_p_, &(alloc), (need), sizeof(*(arr)));         \
			(arr) = berth_vec_p_;                                                    \
		}                                                                                \
	} while (0)

/* A growable list of owned strings. */
struct berth_strvec {
	char **items;
	size_t n, alloc;
};

/* Appends a copy of s. */
void berth_strvec_push(struct berth_strvec *l, const char *s);
/* Sorts bytewise (strcmp). */
void berth_strvec_sort(struct berth_strvec *l);
/* Sorts bytewise and drops (frees) repeats. */
void berth_strvec_sort_unique(struct berth_strvec *l);
/* Frees the strings and the array; the list is empty and reusable afterwards. */
void berth_strvec_release(struct berth_strvec *l);

#endif

#include "core/vec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void berth_vec_grow(void **items, size_t *alloc, size_t need, size_t item_size)
{
	if (need <= *alloc)
		return;
	size_t n = *alloc ? *alloc : 8;
	while (n < need) {
		if (n > SIZE_MAX / 2) {
			n = need;
			break;
		}
		n *= 2;
	}
	if (item_size && n > SIZE_MAX / item_size) {
		fputs("berth: vector size overflows\n", stderr);
		abort();
	}
	*items = berth_realloc(*items, n * item_size);
	*alloc = n;
}

void berth_strvec_push(struct berth_strvec *l, const char *s)
{
	BERTH_VEC_GROW(l->items, l->n + 1, l->alloc);
	l->items[l->n++] = berth_strdup(s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void berth_strvec_sort(struct berth_strvec *l)
{
	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), cmp_str);
}

void berth_strvec_sort_unique(struct berth_strvec *l)
{
	size_t k = 0;
	berth_strvec_sort(l);
	for (size_t i = 0; i < l->n; i++) {
		if (k && strcmp(l->items[k - 1], l->items[i]) == 0)
			free(l->items[i]);
		else
			l->items[k++] = l->items[i];
	}
	l->n = k;
}

void berth_strvec_release(struct berth_strvec *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = l->alloc = 0;
}

/*
 * Last pull times (registry/pulls.h): in memory per reference, flushed to /berth/pulls/ in the
 * background.
 */
#include "registry/pulls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/map.h"
#include "core/util.h"
#include "core/vec.h"
#include "registry/paths.h"
#include "storage/storage.h"

#define PULLS_ROOT "/berth/pulls"

struct pull_entry {
	char *key;       /* "<name>:<tag>" or "<name>@<alg>:<hex>" (the map owns it) */
	int64_t pulled;  /* the last pull recorded since the last flush */
};

struct berth_pulls {
	pthread_mutex_t lock;  /* guards pulled */
	struct berth_map pulled; /* struct pull_entry by key */
	pthread_mutex_t flushing; /* one flush at a time */
};

struct berth_pulls *berth_pulls_new(void)
{
	struct berth_pulls *p = berth_calloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->flushing, NULL);
	p->pulled = (struct berth_map)BERTH_MAP_INIT(sizeof(struct pull_entry), 0);
	return p;
}

void berth_pulls_free(struct berth_pulls *p)
{
	if (!p)
		return;
	berth_map_release(&p->pulled);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->flushing);
	free(p);
}

/* A reference is a digest when it holds ':' (tags cannot). */
static int is_digest(const char *reference)
{
	return strchr(reference, ':') != NULL;
}

/* "<name>:<tag>" or "<name>@<digest>": names hold neither ':' nor '@'. */
static int format_key(char *out, size_t n, const char *name, const char *reference)
{
	int len = snprintf(out, n, "%s%c%s", name, is_digest(reference) ? '@' : ':', reference);
	return len < 0 || (size_t)len >= n ? BERTH_EINVALID : 0;
}

/* The stored record's path of name's reference. */
static int record_path(char out[BERTH_PATH_MAX], const char *name, const char *reference)
{
	const char *colon = strchr(reference, ':');
	int len = colon ? snprintf(out, BERTH_PATH_MAX, PULLS_ROOT "/%s/_digests/%.*s/%s", name,
				   (int)(colon - reference), reference, colon + 1)
			: snprintf(out, BERTH_PATH_MAX, PULLS_ROOT "/%s/_tags/%s", name, reference);
	return len < 0 || len >= BERTH_PATH_MAX ? BERTH_EINVALID : 0;
}

/* From a key back to its name and reference (split in place). */
static void split_key(char *key, const char **name, const char **reference)
{
	char *sep = strchr(key, '@');
	if (!sep)
		sep = strchr(key, ':');
	*sep = '\0';
	*name = key;
	*reference = sep + 1;
}

void berth_pulls_record(struct berth_pulls *p, const char *name, const char *reference, int64_t now)
{
	char key[BERTH_PATH_MAX];
	if (format_key(key, sizeof(key), name, reference) < 0)
		return;
	pthread_mutex_lock(&p->lock);
	struct pull_entry *e = berth_map_add(&p->pulled, key, NULL);
	if (e->pulled < now)
		e->pulled = now;
	pthread_mutex_unlock(&p->lock);
}

/* The stored record: 0 with *out, BERTH_ENOTFOUND, or an error (a record that does not parse
 * is one: it is rewritten by the next flush). */
static int read_record(int64_t *out, struct berth_storage_driver *d, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int rc = berth_storage_get_content(&text, &len, d, path, 32);
	if (rc < 0)
		return rc;
	char buf[33];
	memcpy(buf, text, len);
	buf[len] = '\0';
	free(text);
	char *end;
	long long v = strtoll(buf, &end, 10);
	if (len == 0 || *end != '\0' || v < 0)
		return BERTH_EINVALID;
	*out = v;
	return 0;
}

struct pending {
	char *key;
	int64_t pulled;
	int rc;
	int forgotten; /* forgotten while written */
};

/* The stored record's path of a key ("<name>:<tag>" or "<name>@<digest>"). */
static int key_record_path(char out[BERTH_PATH_MAX], const char *key)
{
	char copy[BERTH_PATH_MAX];
	const char *name, *reference;
	snprintf(copy, sizeof(copy), "%s", key);
	split_key(copy, &name, &reference);
	return record_path(out, name, reference);
}

/* Removes the stored record of a key: 0 if there is none. */
static int remove_record(struct berth_storage_driver *d, const char *key)
{
	char path[BERTH_PATH_MAX];
	int rc = key_record_path(path, key);
	if (rc == 0)
		rc = berth_storage_remove(d, path);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* Writes one reference's pull unless the store holds a newer one. */
static int flush_one(struct berth_storage_driver *d, const struct pending *w)
{
	char path[BERTH_PATH_MAX];
	int rc = key_record_path(path, w->key);
	if (rc < 0)
		return 0; /* cannot be stored: forgotten */
	int64_t stored;
	if (read_record(&stored, d, path) == 0 && stored >= w->pulled)
		return 0;
	char text[24];
	int len = snprintf(text, sizeof(text), "%lld", (long long)w->pulled);
	return berth_storage_put_content(d, path, text, (size_t)len);
}

int berth_pulls_flush(struct berth_pulls *p, struct berth_storage_driver *driver)
{
	struct pending *todo = NULL;
	size_t n = 0, alloc = 0;
	struct pull_entry *e;
	int first_error = 0;

	pthread_mutex_lock(&p->flushing);
	pthread_mutex_lock(&p->lock);
	for (size_t pos = 0; (e = berth_map_next(&p->pulled, &pos));) {
		BERTH_VEC_GROW(todo, n + 1, alloc);
		todo[n++] = (struct pending){ berth_strdup(e->key), e->pulled, 0, 0 };
	}
	pthread_mutex_unlock(&p->lock);

	for (size_t i = 0; i < n; i++) {
		todo[i].rc = flush_one(driver, &todo[i]);
		if (todo[i].rc < 0 && !first_error)
			first_error = todo[i].rc;
	}

	/* Forget what was written and not pulled again meanwhile: memory holds only what the
	 * store does not have yet. A reference gone from memory was forgotten while it was
	 * written (berth_pulls_forget): its record goes again, after the write. */
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		if (todo[i].rc < 0)
			continue;
		e = berth_map_find(&p->pulled, todo[i].key);
		if (!e)
			todo[i].forgotten = 1;
		else if (e->pulled <= todo[i].pulled)
			berth_map_remove(&p->pulled, todo[i].key);
	}
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		if (todo[i].forgotten)
			(void)remove_record(driver, todo[i].key);
		free(todo[i].key);
	}
	free(todo);
	pthread_mutex_unlock(&p->flushing);
	return first_error;
}

int64_t berth_pulls_last(struct berth_pulls *p, struct berth_storage_driver *driver, const char *name,
			 const char *reference)
{
	char path[BERTH_PATH_MAX], key[BERTH_PATH_MAX];
	int64_t last = -1, stored;
	if (driver && record_path(path, name, reference) == 0 && read_record(&stored, driver, path) == 0)
		last = stored;
	if (p && format_key(key, sizeof(key), name, reference) == 0) {
		pthread_mutex_lock(&p->lock);
		const struct pull_entry *e = berth_map_find(&p->pulled, key);
		if (e && e->pulled > last)
			last = e->pulled;
		pthread_mutex_unlock(&p->lock);
	}
	return last;
}

int berth_pulls_forget(struct berth_pulls *p, struct berth_storage_driver *driver, const char *name,
		       const char *reference)
{
	char key[BERTH_PATH_MAX];
	if (format_key(key, sizeof(key), name, reference) < 0)
		return 0; /* never recorded */
	if (p) {
		pthread_mutex_lock(&p->lock);
		berth_map_remove(&p->pulled, key);
		pthread_mutex_unlock(&p->lock);
	}
	return remove_record(driver, key);
}

int berth_pulls_has_digests(struct berth_storage_driver *driver, const char *name)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	int len = snprintf(path, sizeof(path), PULLS_ROOT "/%s/_digests", name);
	if (len < 0 || len >= (int)sizeof(path))
		return 0;
	int rc = berth_storage_stat(&st, driver, path);
	return rc != BERTH_ENOTFOUND; /* an error: there may be some */
}

/* 1 if key ("<name>:<tag>" or "<name>@<digest>") is a reference of name itself. */
static int key_of_repo(const char *key, const char *name, size_t name_len)
{
	return strncmp(key, name, name_len) == 0 && (key[name_len] == ':' || key[name_len] == '@');
}

void berth_pulls_forget_repo(struct berth_pulls *p, struct berth_storage_driver *driver, const char *name)
{
	static const char *const parts[] = { "_tags", "_digests" };
	if (p) {
		size_t name_len = strlen(name);
		struct pull_entry *e;
		pthread_mutex_lock(&p->lock);
		for (size_t pos = 0; (e = berth_map_next(&p->pulled, &pos));) {
			if (key_of_repo(e->key, name, name_len)) {
				char key[BERTH_PATH_MAX]; /* the map frees e->key */
				snprintf(key, sizeof(key), "%s", e->key);
				berth_map_remove(&p->pulled, key);
				pos--; /* removal shifts a later entry into this slot (map.c): look at it again */
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		char path[BERTH_PATH_MAX];
		int len = snprintf(path, sizeof(path), PULLS_ROOT "/%s/%s", name, parts[i]);
		if (len > 0 && len < (int)sizeof(path))
			(void)berth_storage_remove(driver, path);
	}
}

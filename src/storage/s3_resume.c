/*
 * Where this process's writers left their multipart uploads (see s3_int.h, "s3_resume.c"): a
 * writer's suspend notes the key's upload id and a fingerprint of its parts; the next resume
 * open of the key takes the note and checks it with one ListParts of that upload, where an
 * append-open finds the upload by ListMultipartUploads first. The note is only a hint: the
 * listing decides (an upload another instance added to, completed or aborted no longer
 * matches it, and the open falls back to finding the upload by listing).
 */
#include "storage/s3_int.h"

#include "core/digest.h"
#include "core/lru.h"
#include "core/map.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Notes kept at once: the uploads in progress on this instance, with room to spare. Past it
 * the oldest are forgotten (their next PATCH finds the upload by listing). */
#define S3_RESUME_NOTES 1024u

struct s3_resume_note {
	struct berth_lru_node lru; /* tail: the next forgotten */
	char *key;
	char *upload_id;
	char fingerprint[BERTH_DIGEST_STR_MAX];
};

/* A slot of d->resume_index: the note of a key (its key points into the note). */
struct resume_slot {
	const char *key;
	struct s3_resume_note *note;
};

void berth_s3__resume_fingerprint(const struct s3_mpu *m, char out[BERTH_DIGEST_STR_MAX])
{
	struct berth_hasher *h = NULL;
	berth_hasher_new(&h, BERTH_ALG_SHA256);
	for (size_t i = 0; i < m->n_parts; i++) {
		/* An ETag comes quoted in UploadPart's header and in ListParts' XML alike, but the
		 * quotes are not the part's: left out, so no server's quoting can tell them apart. */
		const char *e = m->parts[i].etag;
		size_t n = strlen(e);
		if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
			e++;
			n -= 2;
		}
		char head[64];
		int k = snprintf(head, sizeof(head), "%u %llu ", m->parts[i].number,
				 (unsigned long long)m->parts[i].size);
		berth_hasher_update(h, head, (size_t)k);
		berth_hasher_update(h, e, n);
		berth_hasher_update(h, "\n", 1);
	}
	berth_hasher_digest(h, out);
	berth_hasher_free(h);
}

static void note_free(struct s3_resume_note *n)
{
	free(n->key);
	free(n->upload_id);
	free(n);
}

/* Unlinks the note of key: it, or NULL. Called with resume_lock held. */
static struct s3_resume_note *unlink_note(struct s3_driver *d, const char *key)
{
	struct resume_slot *sl = berth_map_find(&d->resume_index, key);
	if (!sl)
		return NULL;
	struct s3_resume_note *n = sl->note;
	berth_map_remove(&d->resume_index, key);
	berth_lru_unlink(&d->resume_notes, &n->lru);
	return n;
}

void berth_s3__resume_note(struct s3_driver *d, const char *key, const struct s3_mpu *m)
{
	struct s3_resume_note *n = berth_calloc(1, sizeof(*n));
	n->key = berth_strdup(key);
	n->upload_id = berth_strdup(m->id);
	berth_s3__resume_fingerprint(m, n->fingerprint);
	struct s3_resume_note *old = NULL, *evicted = NULL;
	pthread_mutex_lock(&d->resume_lock);
	old = unlink_note(d, key);
	if (d->resume_index.n >= S3_RESUME_NOTES) {
		evicted = BERTH_LRU_ENTRY(d->resume_notes.tail, struct s3_resume_note, lru);
		unlink_note(d, evicted->key);
	}
	struct resume_slot *sl = berth_map_add(&d->resume_index, n->key, NULL);
	sl->note = n;
	berth_lru_push_front(&d->resume_notes, &n->lru);
	pthread_mutex_unlock(&d->resume_lock);
	if (old)
		note_free(old);
	if (evicted)
		note_free(evicted);
}

void berth_s3__resume_forget(struct s3_driver *d, const char *key)
{
	pthread_mutex_lock(&d->resume_lock);
	struct s3_resume_note *n = d->resume_index.n ? unlink_note(d, key) : NULL;
	pthread_mutex_unlock(&d->resume_lock);
	if (n)
		note_free(n);
}

int berth_s3__resume_take(struct s3_driver *d, const char *key, char **upload_id,
			  char fingerprint[BERTH_DIGEST_STR_MAX])
{
	pthread_mutex_lock(&d->resume_lock);
	struct s3_resume_note *n = unlink_note(d, key);
	pthread_mutex_unlock(&d->resume_lock);
	if (!n)
		return 0;
	*upload_id = n->upload_id;
	n->upload_id = NULL;
	memcpy(fingerprint, n->fingerprint, BERTH_DIGEST_STR_MAX);
	note_free(n);
	return 1;
}

void berth_s3__resume_release(struct s3_driver *d)
{
	for (struct berth_lru_node *l = d->resume_notes.head, *next; l; l = next) {
		next = l->next;
		note_free(BERTH_LRU_ENTRY(l, struct s3_resume_note, lru));
	}
	d->resume_notes.head = d->resume_notes.tail = NULL;
	berth_map_release(&d->resume_index);
}

void berth_s3__resume_init(struct s3_driver *d)
{
	d->resume_index = (struct berth_map)BERTH_MAP_INIT_REF(sizeof(struct resume_slot));
}

/*
 * Resumable blob uploads, stored as Distribution stores them:
 *   _uploads/<uuid>/startedat                 RFC 3339 UTC start time
 *   _uploads/<uuid>/data                      the bytes received so far
 *   _uploads/<uuid>/hashstates/sha256/<off>   the SHA-256 state after <off> bytes (Go format)
 * Each request opens the session, appends, checkpoints the hash state and closes it again, so a
 * session survives restarts of berth and can move between berth and Distribution (the next
 * request on the same process skips the reads of that open when the driver vouches that the
 * data is as the last one left it: open_resumed). A request
 * holds a session exclusively (a claim) so two requests never interleave their bytes.
 * A PATCH ends with the driver's suspend, not a flush: on S3 the bytes stay the parts of one
 * multipart upload across PATCHes (as Distribution's driver leaves them), and only the commit
 * completes it into the data object.
 *
 * A commit records the verified digest in _uploads/<uuid>/committed just before it moves the
 * data into the blob store. If berth dies between that move and the removal of the session,
 * the session still answers with its full size, and the client's retried PUT ?digest= finishes
 * it, instead of the session looking empty (Distribution's behaviour in that window).
 *
 * A body whose digest is known before its first byte (a monolithic POST ?digest=, or a
 * PUT ?digest= with the whole body on an empty session) goes, on a driver with staged writers
 * (S3), straight to the blob's own place: the writer's object appears there only when the
 * commit has verified the digest, so no copy follows, and nothing partial is ever visible.
 * A monolithic POST then writes no session at all (its client never learns the id).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bodypipe.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/util.h"
#include "registry/paths.h"
#include "registry/reference.h"
#include "registry/registry_int.h"
#include "storage/storage.h"

struct berth_upload {
	struct berth_registry *reg;
	char *name;
	char uuid[37];
	struct berth_writer *writer;  /* NULL for a session whose data was already committed */
	struct berth_hasher *hasher; /* sha256 over data[0, size); NULL until needed */
	struct berth_body_pipe *pipe; /* while set, it owns the hasher and the writer, feeds both */
	struct berth_failure pipe_failure; /* why the pipe's write failed, for this thread's log line */
	uint64_t received;            /* bytes written since this open */
	int data_moved;               /* the data became the blob: the writer holds nothing */
	int staged;                   /* the writer is staged on the blob's own place */
	int no_session;               /* a monolithic POST's: nothing stored under _uploads */
	int inline_body;              /* hashed and written on the caller's thread, never a pipe */
	enum berth_sync link_sync;    /* the repository's link: BERTH_SYNC_FILE for content that
				       * can be fetched again (open_cached), else ALL */
	char committed[BERTH_DIGEST_STR_MAX]; /* non-empty: the data is this blob now */
	uint64_t committed_size;
};

/* A session cut off inside its commit: 0 and the digest and size of the blob its data became. */
static int read_committed(struct berth_registry *r, const char *name, const char *uuid,
			  char digest[BERTH_DIGEST_STR_MAX], uint64_t *size)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_upload_committed(path, name, uuid);
	if (rc < 0 || (rc = berth_link_read(r, path, digest)) < 0)
		return rc;
	return berth_blob_data_stat(size, r, digest);
}

/* Requests currently holding an upload session: the uploads_in_progress gauge. */
static _Atomic long uploads_in_progress;

static void render_metrics(struct berth_buf *out)
{
	berth_buf_printf(out, "# HELP berth_uploads_in_progress Upload requests being received now.\n"
			      "# TYPE berth_uploads_in_progress gauge\n"
			      "berth_uploads_in_progress %ld\n",
			 atomic_load(&uploads_in_progress));
}

void berth_registry_metrics_register(void)
{
	berth_metrics_register(render_metrics);
}

static int claim(struct berth_registry *r, const char *uuid)
{
	int rc = 0;
	pthread_mutex_lock(&r->claims_lock);
	for (struct upload_claim *c = r->claims; c; c = c->next) {
		if (strcmp(c->uuid, uuid) == 0) {
			rc = BERTH_EBUSY;
			goto out;
		}
	}
	struct upload_claim *c = berth_calloc(1, sizeof(*c));
	memcpy(c->uuid, uuid, sizeof(c->uuid));
	c->next = r->claims;
	r->claims = c;
	atomic_fetch_add(&uploads_in_progress, 1);
out:
	pthread_mutex_unlock(&r->claims_lock);
	return rc;
}

static void unclaim(struct berth_registry *r, const char *uuid)
{
	pthread_mutex_lock(&r->claims_lock);
	for (struct upload_claim **p = &r->claims; *p; p = &(*p)->next) {
		if (strcmp((*p)->uuid, uuid) == 0) {
			struct upload_claim *c = *p;
			*p = c->next;
			free(c);
			atomic_fetch_sub(&uploads_in_progress, 1);
			break;
		}
	}
	pthread_mutex_unlock(&r->claims_lock);
}

/*
 * The hash state each of this process's PATCHes left its session at, for the session's next
 * request on this process: with a driver that vouches for what a suspend left (driver.h,
 * resume_writer; S3), that request skips the reads a session's open costs (open_resumed).
 * Taken by the next open of the session, whatever it is, and kept again by its checkpoint.
 * At most RESUMES_MAX (the oldest go first): the next request of a session forgotten reads
 * its state from storage, as after a restart.
 */
#define RESUMES_MAX 1024u

struct upload_resume {
	struct berth_lru_node lru; /* tail: the next forgotten */
	char *key; /* "<uuid>/<name>" (a uuid is 36 characters: the split is unambiguous) */
	uint64_t offset; /* the hasher's length: the session's size */
	size_t len;
	unsigned char state[BERTH_HASHSTATE_MAX]; /* Go's format, as saved in hashstates/ */
};

/* A slot of r->resume_index: the entry of a session (its key points into the entry). */
struct resume_slot {
	const char *key;
	struct upload_resume *entry;
};

static void resume_free(struct upload_resume *e)
{
	if (e) {
		free(e->key);
		free(e);
	}
}

static char *resume_key(const char *name, const char *uuid)
{
	return berth_asprintf("%s/%s", uuid, name);
}

/* Unlinks the entry of key: it, or NULL. With claims_lock held. */
static struct upload_resume *resume_unlink(struct berth_registry *r, const char *key)
{
	struct resume_slot *sl = berth_map_find(&r->resume_index, key);
	if (!sl)
		return NULL;
	struct upload_resume *e = sl->entry;
	berth_map_remove(&r->resume_index, key);
	berth_lru_unlink(&r->resumes, &e->lru);
	return e;
}

static struct upload_resume *resume_take(struct berth_registry *r, const char *name, const char *uuid)
{
	char *key = resume_key(name, uuid);
	pthread_mutex_lock(&r->claims_lock);
	struct upload_resume *e = resume_unlink(r, key);
	pthread_mutex_unlock(&r->claims_lock);
	free(key);
	return e;
}

/* Keeps the state (len bytes, Go's format) the session was just suspended at. */
static void resume_keep(struct berth_upload *u, const unsigned char *state, size_t len, uint64_t offset)
{
	struct berth_registry *r = u->reg;
	struct upload_resume *e = berth_calloc(1, sizeof(*e)), *old, *evicted = NULL;
	e->key = resume_key(u->name, u->uuid);
	e->offset = offset;
	e->len = len;
	memcpy(e->state, state, len);
	pthread_mutex_lock(&r->claims_lock);
	old = resume_unlink(r, e->key);
	if (r->resume_index.n >= RESUMES_MAX) {
		evicted = BERTH_LRU_ENTRY(r->resumes.tail, struct upload_resume, lru);
		resume_unlink(r, evicted->key);
	}
	struct resume_slot *sl = berth_map_add(&r->resume_index, e->key, NULL);
	sl->entry = e;
	berth_lru_push_front(&r->resumes, &e->lru);
	pthread_mutex_unlock(&r->claims_lock);
	resume_free(old);
	resume_free(evicted);
}

void berth_upload_resumes_init(struct berth_registry *r)
{
	r->resume_index = (struct berth_map)BERTH_MAP_INIT_REF(sizeof(struct resume_slot));
}

void berth_upload_resumes_free(struct berth_registry *r)
{
	for (struct berth_lru_node *l = r->resumes.head, *next; l; l = next) {
		next = l->next;
		resume_free(BERTH_LRU_ENTRY(l, struct upload_resume, lru));
	}
	r->resumes.head = r->resumes.tail = NULL;
	berth_map_release(&r->resume_index);
}

/* Stores a small file of a session (startedat, a hash state, committed), not synced: through a
 * writer, which the filesystem driver does not sync; on a remote driver by one PUT (a writer
 * there first looks for a multipart upload left open on the key: one more request). */
static int put_session_file(struct berth_registry *r, const char *path, const void *buf, size_t n)
{
	if (berth_storage_is_remote(r->driver))
		return berth_storage_put_content(r->driver, path, buf, n);
	struct berth_writer *w = NULL;
	int rc = berth_storage_writer(&w, r->driver, path, 0);
	if (rc == 0) {
		rc = w->write(w, buf, n);
		w->close(w);
	}
	return rc;
}

int berth_upload_create(struct berth_registry *r, const char *name, char uuid_out[37])
{
	char path[BERTH_PATH_MAX];
	char startedat[32];
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	berth_uuid4(uuid_out);
	gmtime_r(&now, &tm);
	strftime(startedat, sizeof(startedat), "%Y-%m-%dT%H:%M:%SZ", &tm);
	rc = berth_path_upload_startedat(path, name, uuid_out);
	if (rc < 0)
		return rc;
	/* Not synced, as Distribution does not: a session that a power cut loses held no data
	 * anyone was told is stored. (A torn startedat is purged by its mtime: purge.c.) */
	rc = put_session_file(r, path, startedat, strlen(startedat));
	if (rc < 0)
		berth_upload_remove(r, name, uuid_out);
	return rc;
}

void berth_upload_remove(struct berth_registry *r, const char *name, const char *uuid)
{
	char path[BERTH_PATH_MAX];
	resume_free(resume_take(r, name, uuid)); /* the session ends: nothing to resume */
	if (berth_path_upload_dir(path, name, uuid) == 0)
		berth_storage_remove(r->driver, path); /* best effort: purging would get it only after age */
}

/* A claimed upload of no data yet (uuid: a session's, or one made up for a monolithic POST). */
static int upload_claim_new(struct berth_upload **out, struct berth_registry *r, const char *name,
			    const char *uuid)
{
	int rc = claim(r, uuid);
	if (rc < 0)
		return rc;
	struct berth_upload *u = berth_calloc(1, sizeof(*u));
	u->reg = r;
	u->name = berth_strdup(name);
	memcpy(u->uuid, uuid, sizeof(u->uuid));
	*out = u;
	return 0;
}

/* 0 if the session exists (its startedat is there), else BERTH_ENOTFOUND or another code. */
static int stat_session(struct berth_registry *r, const char *name, const char *uuid)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc = berth_path_upload_startedat(path, name, uuid);
	return rc < 0 ? rc : berth_storage_stat(&st, r->driver, path);
}

/* Reads whether the claimed session's commit was cut off (u->committed). */
static void read_session_committed(struct berth_upload *u)
{
	if (read_committed(u->reg, u->name, u->uuid, u->committed, &u->committed_size) < 0)
		u->committed[0] = '\0';
}

/* Claims an existing session and reads whether its commit was cut off (u->committed). */
static int open_session(struct berth_upload **out, struct berth_registry *r, const char *name,
			const char *uuid)
{
	struct berth_upload *u = NULL;
	int rc;

	if (!berth_uuid_valid(uuid))
		return BERTH_ENOTFOUND;
	if ((rc = stat_session(r, name, uuid)) < 0)
		return rc;
	if ((rc = upload_claim_new(&u, r, name, uuid)) < 0)
		return rc;
	read_session_committed(u);
	*out = u;
	return 0;
}

/* Opens the session's data for appending (append: the writer's value, storage/driver.h). */
static int open_data_writer(struct berth_upload *u, int append)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_upload_data(path, u->name, u->uuid);
	if (rc == 0)
		rc = berth_storage_writer(&u->writer, u->reg->driver, path, append);
	return rc;
}

/*
 * The open of a session whose last request this process ended, when the driver vouches that
 * the stored data is what that request's suspend left (resume_writer: on S3 one ListParts of
 * the multipart upload, compared with its parts then). The hash state kept in memory then
 * holds for those bytes, and open_session's and ensure_hasher's reads are not needed, on
 * this instance or with others on the same bucket:
 *  - startedat (the session exists): a session goes by its commit, which completes the data's
 *    multipart upload before anything else, or by a cancel or a purge, which remove startedat
 *    and then abort it: either way the upload is no longer there to vouch for. (Only a removal
 *    that failed half-way, its client told so, can leave startedat gone and the upload open:
 *    the session then goes on as if the removal had not begun.)
 *  - committed (a commit cut off after its data became the blob): written only after the
 *    data's multipart upload was completed.
 *  - hashstates/sha256/<size>: the state this process saved there, for the same bytes.
 * When another writer added to the data since (another instance took the session's last
 * request), the driver may still hand back the writer positioned where the data ends, as an
 * append-open would have (resume_writer's 1): the session is then opened with it, reading
 * what open_session reads, and the hash state from storage when needed (ensure_hasher).
 * 0 with *out, 0 with *out NULL when the caller must open as usual, or a BERTH_E* code.
 */
static int open_resumed(struct berth_upload **out, struct berth_registry *r, const char *name,
			const char *uuid)
{
	char path[BERTH_PATH_MAX];
	struct berth_upload *u = NULL;
	*out = NULL;
	if (!berth_storage_can_resume(r->driver) || !berth_uuid_valid(uuid))
		return 0;
	struct upload_resume *e = resume_take(r, name, uuid);
	if (!e)
		return 0;
	int rc = berth_path_upload_data(path, name, uuid);
	if (rc == 0)
		rc = upload_claim_new(&u, r, name, uuid);
	if (rc < 0) {
		resume_free(e);
		return rc;
	}
	if ((rc = berth_storage_resume_writer(&u->writer, r->driver, path)) == 0 && u->writer &&
	    u->writer->size(u->writer) == e->offset &&
	    berth_hasher_unmarshal(&u->hasher, BERTH_ALG_SHA256, e->state, e->len) == 0 &&
	    berth_hasher_len(u->hasher) == e->offset) {
		resume_free(e);
		*out = u;
		return 0;
	}
	resume_free(e);
	if (rc == 1 && (rc = stat_session(r, name, uuid)) == 0) {
		read_session_committed(u);
		if (u->committed[0]) { /* as open_appending: no writer for a cut-off commit */
			u->writer->close(u->writer);
			u->writer = NULL;
		}
		*out = u;
		return 0;
	}
	berth_upload_close(u); /* a resumed writer not written to stores nothing */
	return rc;
}

/* berth_upload_open with the writer's append value. */
static int open_appending(struct berth_upload **out, struct berth_registry *r, const char *name,
			  const char *uuid, int append)
{
	struct berth_upload *u = NULL;
	int rc = open_session(&u, r, name, uuid);
	if (rc < 0)
		return rc;
	if (!u->committed[0] && (rc = open_data_writer(u, append)) < 0) {
		berth_upload_close(u);
		return rc;
	}
	*out = u;
	return 0;
}

int berth_upload_open(struct berth_upload **out, struct berth_registry *r, const char *name,
		      const char *uuid)
{
	int rc = open_resumed(out, r, name, uuid);
	if (rc < 0 || *out)
		return rc;
	return open_appending(out, r, name, uuid, 1);
}

int berth_upload_open_cached(struct berth_upload **out, struct berth_registry *r, const char *name,
			     const char *uuid)
{
	int rc = open_appending(out, r, name, uuid, BERTH_WRITER_APPEND_CACHED);
	/* The caller is a thread of its own paced by a network (the cache's fetch): a pipe's two
	 * threads would add a copy and two hand-offs per piece, and compete for the cores with the
	 * clients the bytes go to. A remote driver's writes wait on its network: they keep it. */
	if (rc == 0) {
		(*out)->inline_body = !berth_storage_is_remote(r->driver);
		(*out)->link_sync = BERTH_SYNC_FILE;
	}
	return rc;
}

/* 1 if a body with this digest can go straight to its blob's place (a staged writer, and a
 * digest the hasher of every upload computes as the bytes pass). */
static int can_stage(struct berth_registry *r, const char *digest)
{
	enum berth_digest_alg alg;
	return berth_storage_can_stage(r->driver) && berth_digest_parse(digest, &alg, NULL) == 0 &&
	       alg == BERTH_ALG_SHA256;
}

/* Stages the upload's writer on the blob of `digest`, with a hasher from byte 0. */
static int open_staged_writer(struct berth_upload *u, const char *digest)
{
	char blob[BERTH_PATH_MAX];
	int rc = berth_path_blob_data(blob, digest);
	if (rc == 0)
		rc = berth_storage_staged_writer(&u->writer, u->reg->driver, blob);
	if (rc < 0)
		return rc;
	u->staged = 1;
	berth_hasher_new(&u->hasher, BERTH_ALG_SHA256);
	return 0;
}

/* 1 if the session holds no byte (its data is neither an object nor stored parts). */
static int session_is_empty(struct berth_upload *u)
{
	char path[BERTH_PATH_MAX];
	uint64_t size = 0;
	if (berth_path_upload_data(path, u->name, u->uuid) < 0)
		return 0;
	int rc = berth_storage_append_size(&size, u->reg->driver, path);
	return rc == BERTH_ENOTFOUND || (rc == 0 && size == 0);
}

int berth_upload_open_whole(struct berth_upload **out, struct berth_registry *r, const char *name,
			    const char *uuid, const char *digest)
{
	struct berth_upload *u = NULL;
	char made_up[37];
	int rc;

	if (uuid == NULL && !can_stage(r, digest)) {
		if ((rc = berth_upload_create(r, name, made_up)) < 0)
			return rc;
		return berth_upload_open(out, r, name, made_up);
	}
	if (uuid == NULL) {
		berth_uuid4(made_up);
		if ((rc = upload_claim_new(&u, r, name, made_up)) < 0)
			return rc;
		u->no_session = 1;
	} else if ((rc = open_resumed(out, r, name, uuid)) < 0 || *out) {
		return rc; /* it holds bytes (stored parts): never staged */
	} else if ((rc = open_session(&u, r, name, uuid)) < 0) {
		return rc;
	}
	if (u->committed[0]) {
		*out = u;
		return 0;
	}
	if (u->no_session || (can_stage(r, digest) && session_is_empty(u)))
		rc = open_staged_writer(u, digest);
	else
		rc = open_data_writer(u, 1);
	if (rc < 0) {
		berth_upload_close(u);
		return rc;
	}
	*out = u;
	return 0;
}

int berth_upload_stat(uint64_t *size, struct berth_registry *r, const char *name, const char *uuid)
{
	char path[BERTH_PATH_MAX];
	struct berth_stat st;
	int rc;

	if (!berth_uuid_valid(uuid))
		return BERTH_ENOTFOUND;
	if ((rc = berth_path_upload_startedat(path, name, uuid)) < 0 ||
	    (rc = berth_storage_stat(&st, r->driver, path)) < 0)
		return rc;
	if ((rc = berth_path_upload_data(path, name, uuid)) < 0)
		return rc;
	/* Not stat: on S3 the data is an open multipart upload until the commit. */
	rc = berth_storage_append_size(size, r->driver, path);
	if (rc == 0)
		return 0;
	if (rc != BERTH_ENOTFOUND)
		return rc;
	char digest[BERTH_DIGEST_STR_MAX];
	if (read_committed(r, name, uuid, digest, size) < 0)
		*size = 0;
	return 0;
}

uint64_t berth_upload_size(const struct berth_upload *u)
{
	return u->committed[0] ? u->committed_size : u->writer->size(u->writer);
}

const char *berth_upload_uuid(const struct berth_upload *u)
{
	return u->uuid;
}

/* Hashes data[0, size) from storage with a new hasher of alg. */
static int hash_data(struct berth_hasher **out, struct berth_upload *u, enum berth_digest_alg alg,
		     uint64_t size)
{
	char path[BERTH_PATH_MAX];
	struct berth_reader *rd = NULL;
	struct berth_hasher *h = NULL;
	unsigned char *buf = NULL;
	uint64_t left = size;
	int rc;

	if ((rc = berth_path_upload_data(path, u->name, u->uuid)) < 0)
		return rc;
	/* The data must be readable: the writer may hold bytes, and on S3 a multipart upload left
	 * open (by a request cut off before its checkpoint) becomes the object first. */
	if (size > 0 && (rc = u->writer->flush(u->writer)) < 0)
		return rc;
	berth_hasher_new(&h, alg);
	if (size == 0)
		goto done;
	if ((rc = berth_storage_reader(&rd, u->reg->driver, path, 0)) < 0)
		goto out_free_hasher;
	buf = berth_malloc(1 << 20);
	while (left > 0) {
		ssize_t n = rd->read(rd, buf, left < (1 << 20) ? (size_t)left : (1 << 20));
		if (n <= 0) {
			rc = n < 0 ? (int)n : BERTH_ERROR;
			goto out_free_buf;
		}
		berth_hasher_update(h, buf, (size_t)n);
		left -= (uint64_t)n;
	}
	free(buf);
	rd->close(rd);
done:
	*out = h;
	return 0;

out_free_buf:
	free(buf);
	rd->close(rd);
out_free_hasher:
	berth_hasher_free(h);
	return rc;
}

/* Restores the SHA-256 state at the current offset: from its saved state, else by rehashing. */
static int ensure_hasher(struct berth_upload *u)
{
	char path[BERTH_PATH_MAX];
	char *state = NULL;
	size_t len = 0;
	uint64_t size = berth_upload_size(u);
	int rc;

	if (u->hasher)
		return 0;
	if (size == 0) /* nothing to read: the state of no bytes is a new hasher's */
		return berth_hasher_new(&u->hasher, BERTH_ALG_SHA256);
	if ((rc = berth_path_upload_hashstate(path, u->name, u->uuid, "sha256", size)) < 0)
		return rc;
	if (berth_storage_get_content(&state, &len, u->reg->driver, path,
				      BERTH_HASHSTATE_MAX) == 0) {
		rc = berth_hasher_unmarshal(&u->hasher, BERTH_ALG_SHA256, (unsigned char *)state, len);
		free(state);
		if (rc == 0 && berth_hasher_len(u->hasher) == size)
			return 0;
		berth_hasher_free(u->hasher);
		u->hasher = NULL;
	}
	return hash_data(&u->hasher, u, BERTH_ALG_SHA256, size);
}

/* A request body past this size is hashed and written from other cores (core/bodypipe.h). */
#define PIPE_AFTER (64u << 10)

/* Runs on the pipe's thread: the failure (its OS reason) is kept for the request's thread
 * (the pipe's lock orders this store before that thread sees the error). */
static int sink_to_writer(void *arg, const void *buf, size_t n)
{
	struct berth_upload *u = arg;
	int rc = u->writer->write(u->writer, buf, n);
	if (rc < 0)
		berth_err_save(&u->pipe_failure);
	return rc;
}

/* A failure the pipe reported becomes this thread's (core/err.h). */
static int pipe_failed(struct berth_upload *u, int rc)
{
	if (rc < 0 && u->pipe_failure.code != BERTH_OK)
		berth_err_restore(&u->pipe_failure);
	return rc;
}

/* Takes the hasher and the writer back from the pipe, once it has caught up: 0, or the error
 * of a write that failed in it. */
static int settle_pipe(struct berth_upload *u)
{
	if (!u->pipe)
		return 0;
	int rc = berth_body_pipe_finish(u->pipe, &u->hasher);
	u->pipe = NULL;
	return pipe_failed(u, rc);
}

/* After a failed write part of the bytes may have landed: forget the state, rehash on next use. */
static void forget_hasher(struct berth_upload *u)
{
	settle_pipe(u);
	berth_hasher_free(u->hasher);
	u->hasher = NULL;
}

static void start_pipe(struct berth_upload *u)
{
	if (berth_body_pipe_start(&u->pipe, u->hasher, sink_to_writer, u,
				  u->writer->size(u->writer), BERTH_WRITER_ALIGN) < 0)
		u->pipe = NULL; /* every core busy with a pipe already: go on inline */
}

int berth_upload_write(struct berth_upload *u, const void *buf, size_t n)
{
	if (u->committed[0])
		return BERTH_ERANGE; /* complete already: nothing may be appended */
	int rc = ensure_hasher(u);
	if (rc < 0)
		return rc;
	if (u->pipe)
		rc = pipe_failed(u, berth_body_pipe_write(u->pipe, buf, n));
	else
		rc = u->writer->write(u->writer, buf, n);
	if (rc < 0) {
		forget_hasher(u);
		return rc;
	}
	u->received += n;
	if (!u->pipe) {
		berth_hasher_update(u->hasher, buf, n);
		if (u->received >= PIPE_AFTER && !u->inline_body)
			start_pipe(u);
	}
	return 0;
}

int berth_upload_prepare_body(struct berth_upload *u)
{
	if (!u->reg->driver->remote || u->committed[0] || u->pipe)
		return 0;
	int rc = ensure_hasher(u); /* may read the saved hash state: here, not on a polling thread */
	if (rc < 0)
		return rc;
	if ((rc = berth_body_pipe_start_waiting(&u->pipe, u->hasher, sink_to_writer, u,
						u->writer->size(u->writer), BERTH_WRITER_ALIGN)) < 0)
		u->pipe = NULL;
	return rc;
}

void berth_upload_expect(struct berth_upload *u, uint64_t n)
{
	if (u->writer && !u->committed[0])
		berth_writer_expect(u->writer, n);
}

int berth_upload_offer(struct berth_upload *u, const void *buf, size_t n,
		       berth_body_pipe_cb park, berth_body_pipe_cb wake, void *arg)
{
	if (!u->pipe || !u->reg->driver->remote)
		return berth_upload_write(u, buf, n);
	/* A failure is left as it is (no settling here: that waits for the sink): the request
	 * fails, saves no hash state, and its close settles the pipe where storage work runs. */
	int rc = pipe_failed(u, berth_body_pipe_offer(u->pipe, buf, n, park, wake, arg));
	if (rc == 0)
		u->received += n;
	return rc;
}

int berth_upload_checkpoint(struct berth_upload *u)
{
	char path[BERTH_PATH_MAX];
	unsigned char state[BERTH_HASHSTATE_MAX];
	size_t len = 0;
	int rc;

	/* The state is saved for bytes that are stored: the pipe or the writer may still hold
	 * some. The writer is suspended, not flushed: the next request continues it. */
	if ((rc = settle_pipe(u)) < 0 || (u->writer && (rc = berth_writer_suspend(u->writer)) < 0)) {
		forget_hasher(u);
		return rc;
	}
	if (!u->hasher)
		return 0;
	if ((rc = berth_hasher_marshal(u->hasher, state, sizeof(state), &len)) < 0)
		return rc;
	if ((rc = berth_path_upload_hashstate(path, u->name, u->uuid, "sha256",
					      berth_hasher_len(u->hasher))) < 0)
		return rc;
	/* Not synced on purpose: a lost or torn state file fails to unmarshal and we rehash. */
	if ((rc = put_session_file(u->reg, path, state, len)) < 0)
		return rc;
	/* Kept once stored, for this session's next request here (open_resumed), when the driver
	 * can vouch for what the suspend left; the file stays what other instances, and
	 * Distribution, resume from. */
	if (u->writer && u->writer->suspend_noted)
		resume_keep(u, state, len, berth_hasher_len(u->hasher));
	return 0;
}

/* Removes startedat first: a session is gone in one step, so a crash part-way through the
 * removal of the rest never leaves a live session with some of its files missing. The writer
 * is cancelled, so that closing it stores nothing below the removed session (S3: it aborts
 * the multipart upload). */
static int remove_session(struct berth_upload *u)
{
	char path[BERTH_PATH_MAX];
	if (u->no_session) {
		if (u->writer && !u->data_moved) {
			settle_pipe(u);
			return u->writer->cancel(u->writer);
		}
		return 0;
	}
	int rc = berth_path_upload_startedat(path, u->name, u->uuid);
	if (rc < 0)
		return rc;
	rc = berth_storage_remove(u->reg->driver, path);
	if (rc < 0 && rc != BERTH_ENOTFOUND)
		return rc;
	if (u->writer && !u->data_moved) {
		settle_pipe(u);
		u->writer->cancel(u->writer);
	}
	if ((rc = berth_path_upload_dir(path, u->name, u->uuid)) < 0)
		return rc;
	rc = berth_storage_remove(u->reg->driver, path);
	return rc == BERTH_ENOTFOUND ? 0 : rc;
}

/* Computes the digest of everything received, with the algorithm of `expected`. */
static int upload_digest(struct berth_upload *u, enum berth_digest_alg alg, char out[BERTH_DIGEST_STR_MAX])
{
	struct berth_hasher *h = NULL;
	int rc;

	if ((rc = settle_pipe(u)) < 0) {
		forget_hasher(u);
		return rc;
	}
	if (alg == BERTH_ALG_SHA256) {
		if ((rc = ensure_hasher(u)) < 0)
			return rc;
		berth_hasher_digest(u->hasher, out);
		return 0;
	}
	/* hash_data reads the stored object: what the writer still holds (an S3 part) goes first. */
	if ((u->writer && (rc = u->writer->flush(u->writer)) < 0) ||
	    (rc = hash_data(&h, u, alg, berth_upload_size(u))) < 0)
		return rc;
	berth_hasher_digest(h, out);
	berth_hasher_free(h);
	return 0;
}

/* Records the digest the session's data is about to become (see the top of this file).
 * Not synced: it matters after a crash of berth, and the blob's own rename is what a power
 * loss would have to preserve first. */
static int mark_committed(struct berth_upload *u, const char *digest)
{
	char path[BERTH_PATH_MAX];
	int rc = berth_path_upload_committed(path, u->name, u->uuid);
	if (rc < 0)
		return rc;
	return put_session_file(u->reg, path, digest, strlen(digest));
}

/* Writes the repository's link to the blob, inside the bytes quota's check (registry/quota.h):
 * BERTH_EDENIED (with its message, core/err.h) leaves no link. */
static int link_blob(struct berth_upload *u, const char *digest, uint64_t size)
{
	char link[BERTH_PATH_MAX];
	struct berth_bytes_guard quota;
	int rc = berth_path_layer_link(link, u->name, digest);
	if (rc < 0 || (rc = berth_bytes_link_enter(&quota, u->reg, u->name, BERTH_LINK_LAYER, digest, size)) < 0)
		return rc;
	rc = berth_link_write_as(u->reg, link, digest, u->link_sync);
	berth_bytes_link_leave(&quota, rc == 0);
	return rc;
}

/* Completes a session whose data already became a blob: same digest, then link and clean up. */
static int finish_committed(struct berth_upload *u, const char *digest)
{
	int rc;
	if (strcmp(digest, u->committed) != 0) {
		remove_session(u);
		return BERTH_EDIGEST;
	}
	berth_gc_lock_shared(u->reg);
	if ((rc = berth_blob_refresh(u->reg, digest)) == 0)
		rc = link_blob(u, digest, u->committed_size);
	berth_gc_unlock(u->reg);
	if (rc < 0) {
		if (rc == BERTH_EDENIED)
			remove_session(u);
		return rc;
	}
	return remove_session(u);
}

/* A refused commit's data must not wait for the purge: the bytes would stay stored. */
static int refuse_blob(struct berth_upload *u, const char *digest, uint64_t size)
{
	struct berth_bytes_guard quota;
	int rc = berth_bytes_link_enter(&quota, u->reg, u->name, BERTH_LINK_LAYER, digest, size);
	berth_bytes_link_leave(&quota, 0);
	if (rc == BERTH_EDENIED)
		remove_session(u);
	return rc;
}

/*
 * Makes the blob exist for the link that follows, with gc_lock held shared: an existing blob
 * (existed: it did before the lock) has its age refreshed; else the upload's data becomes it.
 * If the online garbage collection deleted the blob since it was seen, the data becomes it
 * after all.
 */
static int place_blob(struct berth_upload *u, int existed, const char *digest, const char *data,
		      const char *blob)
{
	int rc;
	if (existed) {
		rc = berth_blob_refresh(u->reg, digest);
		if (rc != BERTH_ENOTFOUND)
			return rc;
		if ((rc = u->writer->commit(u->writer)) < 0 || (rc = mark_committed(u, digest)) < 0)
			return rc;
	}
	/* Durable at once even for the cache: the blob store is shared, and a push that finds the
	 * blob there links it and answers without syncing the blob's name. */
	if ((rc = berth_storage_move(u->reg->driver, data, blob)) < 0)
		return rc;
	u->data_moved = 1;
	/* the data keeps the time of its last write, which may be long before this commit */
	return u->reg->gc_refresh ? berth_blob_refresh(u->reg, digest) : 0;
}

int berth_upload_verify(struct berth_upload *u, const char *digest)
{
	char actual[BERTH_DIGEST_STR_MAX];
	enum berth_digest_alg alg;
	int rc;

	if (berth_digest_parse(digest, &alg, NULL) < 0)
		return BERTH_EDIGEST;
	if (u->committed[0])
		return strcmp(digest, u->committed) == 0 ? 0 : BERTH_EDIGEST;
	if ((rc = upload_digest(u, alg, actual)) < 0)
		return rc;
	return strcmp(actual, digest) == 0 ? 0 : BERTH_EDIGEST;
}

/* The end of a commit, with gc_lock held shared and the blob in place (rc: how placing it
 * went): links it, releases the lock and removes the session. */
static int link_and_finish(struct berth_upload *u, int rc, const char *digest, uint64_t size)
{
	if (rc == 0)
		rc = link_blob(u, digest, size);
	berth_gc_unlock(u->reg);
	if (rc < 0) {
		if (rc == BERTH_EDENIED) /* a concurrent push took the room meanwhile */
			remove_session(u);
		return rc;
	}
	return remove_session(u);
}

/*
 * The commit of a staged upload: its writer's object appears at the blob's place (whole,
 * verified) before the link, outside the sweep lock, which online garbage collection's age
 * rule allows (a blob just written is younger than any delay). A blob already there is left as
 * it is, and the staged bytes are discarded, unless a collection removed it meanwhile.
 */
static int commit_staged(struct berth_upload *u, const char *digest, uint64_t size)
{
	int existed = berth_blob_data_present(NULL, u->reg, digest) == 0;
	int rc;
	if (!existed) {
		if ((rc = u->writer->commit(u->writer)) < 0)
			return rc;
		u->data_moved = 1;
	}
	berth_gc_lock_shared(u->reg);
	rc = existed || u->reg->gc_refresh ? berth_blob_refresh(u->reg, digest) : 0;
	if (rc == BERTH_ENOTFOUND && existed && (rc = u->writer->commit(u->writer)) == 0)
		u->data_moved = 1;
	return link_and_finish(u, rc, digest, size);
}

int berth_upload_commit(struct berth_upload *u, const char *digest)
{
	char actual[BERTH_DIGEST_STR_MAX];
	char data[BERTH_PATH_MAX], blob[BERTH_PATH_MAX];
	enum berth_digest_alg alg;
	int rc;

	if ((rc = berth_digest_parse(digest, &alg, NULL)) < 0)
		return BERTH_EDIGEST;
	if (u->committed[0])
		return finish_committed(u, digest);
	if (u->staged && alg != BERTH_ALG_SHA256) {
		remove_session(u); /* staged for a sha256 digest: this one cannot match */
		return BERTH_EDIGEST;
	}
	if ((rc = upload_digest(u, alg, actual)) < 0)
		return rc;
	if (strcmp(actual, digest) != 0) {
		remove_session(u);
		return BERTH_EDIGEST;
	}
	if (u->staged) {
		uint64_t size = berth_upload_size(u);
		if ((rc = refuse_blob(u, digest, size)) < 0)
			return rc;
		return commit_staged(u, digest, size);
	}
	if ((rc = berth_path_upload_data(data, u->name, u->uuid)) < 0 ||
	    (rc = berth_path_blob_data(blob, digest)) < 0)
		return rc;
	/* Refused by a bytes quota before the data becomes a blob (checked again, under the
	 * quota's lock, with the link write). */
	uint64_t size = berth_upload_size(u);
	if ((rc = refuse_blob(u, digest, size)) < 0)
		return rc;
	/* An existing blob is never rewritten: same digest, same bytes. Otherwise the new bytes
	 * must be durable before anything can point at them (synced before the lock below, which
	 * the online garbage collection waits for). Storage itself, not a cache, says whether the
	 * blob is there: data a collection removed behind the caches is written again. */
	int existed = berth_blob_data_present(NULL, u->reg, digest) == 0;
	if (!existed && ((rc = u->writer->commit(u->writer)) < 0 || (rc = mark_committed(u, digest)) < 0))
		return rc;
	berth_gc_lock_shared(u->reg);
	return link_and_finish(u, place_blob(u, existed, digest, data, blob), digest, size);
}

int berth_upload_cancel(struct berth_upload *u)
{
	return remove_session(u);
}

void berth_upload_close(struct berth_upload *u)
{
	if (!u)
		return;
	settle_pipe(u); /* before the writer goes: the pipe writes through it */
	if (u->writer)
		u->writer->close(u->writer);
	berth_hasher_free(u->hasher);
	unclaim(u->reg, u->uuid);
	free(u->name);
	free(u);
}

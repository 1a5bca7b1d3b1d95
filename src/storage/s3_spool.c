/*
 * An S3 writer's parts before they are stored (see s3_int.h, struct s3_parts).
 *
 * A part waits in an unlinked temporary file ($TMPDIR, else /var/tmp), not in the process's
 * memory: its bytes are page cache, which the kernel writes out or drops under pressure, where
 * a malloc'd part buffer (chunksize, 10 MiB in practice) is private memory held by every upload
 * in progress. The file is never synced: S3 makes a part durable once it is stored, and the
 * file only has to serve the part's sending, and its retries (a part cannot be sent again from
 * the client's body). Once a part is stored its file is truncated, which frees its pages.
 *
 * A full part is sent on a thread of its own while the next one fills, so receiving part N+1
 * overlaps sending part N (an upload otherwise stops reading its client for as long as each
 * part takes to send); one part at most is in flight per writer, so a writer holds two parts
 * of page cache at most. A part whose final size is known before its bytes have come (a
 * request body of known length, berth_s3__parts_stream) is sent while it fills: the sender
 * reads the file up to what has landed and waits for the rest, so the request's last part,
 * which a PATCH must store before its answer, is not sent only after the body has ended.
 *
 * The first S3_SPOOL_MEMORY bytes of a spool stay in memory: most blobs of an image (configs,
 * small layers) are smaller, and need no file.
 */
#include "storage/s3_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *spool_dir(void)
{
	const char *dir = getenv("TMPDIR");
	return dir && dir[0] ? dir : "/var/tmp";
}

/* Writes n bytes at offset off of fd: 0, or BERTH_ERROR / BERTH_ENOSPC (logged). */
static int spool_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : ENOSPC;
			berth_error("s3: cannot write a part to a temporary file in %s: %s", spool_dir(),
				    berth_err_os_text(e));
			return berth_err_set_os(e == ENOSPC || e == EDQUOT ? BERTH_ENOSPC : BERTH_ERROR, e);
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* Moves the spool's bytes from memory to an unlinked file: O_TMPFILE, or a named one removed
 * at once where the file system has no O_TMPFILE. */
static int spool_to_file(struct s3_spool *s)
{
	const char *dir = spool_dir();
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		char *name = berth_asprintf("%s/berth-s3-part-XXXXXX", dir);
		fd = mkostemp(name, O_CLOEXEC);
		if (fd >= 0)
			unlink(name);
		free(name);
	}
	if (fd < 0) {
		int e = errno;
		berth_error("s3: cannot create a temporary file in %s for a part: %s", dir, berth_err_os_text(e));
		return berth_err_set_os(e == ENOSPC ? BERTH_ENOSPC : BERTH_ERROR, e);
	}
	int rc = s->len ? spool_pwrite(fd, s->mem, (size_t)s->len, 0) : 0;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	s->fd = fd;
	berth_safefree(s->mem);
	s->mem_cap = 0;
	return 0;
}

/* Appends n bytes without counting them in s->len: the caller does (under the lock while a
 * sender reads the spool). */
static int spool_put(struct s3_spool *s, const void *buf, size_t n)
{
	int rc;
	if (s->fd < 0 && s->len + n > S3_SPOOL_MEMORY && (rc = spool_to_file(s)) < 0)
		return rc;
	if (s->fd >= 0)
		return spool_pwrite(s->fd, buf, n, s->len);
	if (s->len + n > s->mem_cap) {
		size_t cap = s->mem_cap ? s->mem_cap : 16u << 10;
		while (cap < s->len + n)
			cap *= 2;
		s->mem_cap = cap < S3_SPOOL_MEMORY ? cap : S3_SPOOL_MEMORY;
		s->mem = berth_realloc(s->mem, s->mem_cap);
	}
	memcpy(s->mem + s->len, buf, n);
	return 0;
}

/* Empties the spool: a file's pages go back at once. */
static void spool_clear(struct s3_spool *s)
{
	if (s->fd >= 0 && s->len > 0 && ftruncate(s->fd, 0) != 0)
		berth_warn("s3: cannot truncate a part's temporary file: %s", berth_err_os_text(errno));
	s->len = 0;
}

void berth_s3__parts_init(struct s3_parts *p, struct s3_driver *d, const char *key)
{
	memset(p, 0, sizeof(*p));
	p->d = d;
	p->key = key;
	p->spool[0].fd = p->spool[1].fd = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->grown, NULL);
}

uint64_t berth_s3__parts_filling(const struct s3_parts *p)
{
	return p->spool[p->filling].len;
}

int berth_s3__parts_streaming(const struct s3_parts *p)
{
	return p->pending && p->sending == p->filling;
}

uint64_t berth_s3__parts_pending(const struct s3_parts *p)
{
	return p->pending && !berth_s3__parts_streaming(p) ? p->spool[p->sending].len : 0;
}

uint64_t berth_s3__parts_target(const struct s3_parts *p)
{
	return berth_s3__parts_streaming(p) ? p->stream_len : p->d->chunksize;
}

int berth_s3__parts_append(struct s3_parts *p, const void *buf, size_t n)
{
	struct s3_spool *s = &p->spool[p->filling];
	int rc = spool_put(s, buf, n);
	if (rc < 0 || !berth_s3__parts_streaming(p)) {
		s->len += rc < 0 ? 0 : n;
		return rc;
	}
	pthread_mutex_lock(&p->lock);
	s->len += n;
	pthread_cond_signal(&p->grown);
	pthread_mutex_unlock(&p->lock);
	if (s->len == p->stream_len)
		p->filling = !p->filling; /* sealed: the sender has every byte it waits for */
	return 0;
}

struct s3_body_file berth_s3__parts_filling_body(struct s3_parts *p)
{
	const struct s3_spool *s = &p->spool[p->filling];
	return (struct s3_body_file){ .fd = s->fd, .mem = s->fd < 0 ? s->mem : NULL, .len = s->len };
}

uint64_t berth_s3__parts_ready(struct s3_parts *p, uint64_t pos)
{
	const struct s3_spool *s = &p->spool[p->sending];
	pthread_mutex_lock(&p->lock);
	while (s->len <= pos && !p->abandoned)
		pthread_cond_wait(&p->grown, &p->lock);
	uint64_t ready = p->abandoned ? 0 : s->len;
	pthread_mutex_unlock(&p->lock);
	return ready;
}

/* Sends the pending part: 0 with its ETag in p->sent_etag, or a BERTH_E* code. A streamed
 * part still filling is read as its bytes come. */
static int send_pending(struct s3_parts *p)
{
	const struct s3_spool *s = &p->spool[p->sending];
	int follow = p->streamed; /* its length is then read under the lock, as it grows */
	struct s3_body_file body = { .fd = s->fd, .mem = s->fd < 0 ? s->mem : NULL,
				     .len = follow ? p->stream_len : s->len, .stream = follow ? p : NULL };
	return berth_s3__mpu_put_part(p->d, p->key, p->pending_upload, p->pending_number, &body,
				      p->sent_etag);
}

static void *send_thread(void *arg)
{
	struct s3_parts *p = arg;
	p->sent_rc = send_pending(p);
	atomic_store(&p->sent, 1);
	return NULL;
}

/* Starts the pending part's transfer on a thread of its own: 0, or BERTH_ERROR if no thread
 * could be started. */
static int start_sending(struct s3_parts *p)
{
	atomic_store(&p->sent, 0);
	if (pthread_create(&p->thread, NULL, send_thread, p) != 0)
		return BERTH_ERROR;
	p->running = 1;
	return 0;
}

/* Stops a streamed part's transfer (its sender's reads fail) and waits for its thread. */
static void abandon_stream(struct s3_parts *p)
{
	pthread_mutex_lock(&p->lock);
	p->abandoned = 1;
	pthread_cond_signal(&p->grown);
	pthread_mutex_unlock(&p->lock);
	if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = 0;
	}
	p->abandoned = 0;
	p->pending = 0;
}

int berth_s3__parts_wait(struct s3_parts *p, struct s3_mpu *m)
{
	if (!p->pending)
		return 0;
	if (berth_s3__parts_streaming(p)) {
		abandon_stream(p); /* no more bytes come through this writer's caller */
		return 0;
	}
	int rc;
	if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = 0;
		rc = p->sent_rc;
		/* A part sent while its bytes came lasts as long as its client takes: a client that
		 * paused may have outlasted S3's (or curl's) patience. Its bytes are all in the spool
		 * now: sent once more from there, as a part that failed is. */
		if (rc < 0 && p->streamed)
			rc = send_pending(p);
	} else {
		rc = send_pending(p); /* it failed before: once more, as a synchronous part would be */
	}
	if (rc < 0)
		return rc;
	berth_s3__mpu_add_part(m, p->pending_number, p->sent_etag, p->spool[p->sending].len);
	spool_clear(&p->spool[p->sending]);
	p->pending = 0;
	return 0;
}

int berth_s3__parts_poll(struct s3_parts *p, struct s3_mpu *m)
{
	if (!p->pending || berth_s3__parts_streaming(p) || (p->running && !atomic_load(&p->sent)))
		return 0;
	return berth_s3__parts_wait(p, m);
}

/* Makes the part being filled the pending one (none is), numbered after m's parts. */
static int number_pending(struct s3_parts *p, struct s3_mpu *m)
{
	if (m->n_parts >= S3_MAX_PARTS)
		return BERTH_ETOOLARGE;
	p->pending = 1;
	p->streamed = 0;
	p->pending_number = (unsigned)m->n_parts + 1;
	p->pending_upload = m->id;
	p->sending = p->filling;
	return 0;
}

/* Makes the full part being filled the pending one, after the previous one; the next fills. */
static int make_pending(struct s3_parts *p, struct s3_mpu *m)
{
	int rc = berth_s3__parts_wait(p, m);
	if (rc < 0 || (rc = number_pending(p, m)) < 0)
		return rc;
	p->filling = !p->filling;
	return 0;
}

int berth_s3__parts_send(struct s3_parts *p, struct s3_mpu *m)
{
	int rc = make_pending(p, m);
	if (rc < 0)
		return rc;
	if (start_sending(p) < 0)
		return berth_s3__parts_wait(p, m); /* no thread: sent here */
	return 0;
}

int berth_s3__parts_send_now(struct s3_parts *p, struct s3_mpu *m)
{
	int rc = make_pending(p, m);
	return rc < 0 ? rc : berth_s3__parts_wait(p, m);
}

int berth_s3__parts_stream(struct s3_parts *p, struct s3_mpu *m, uint64_t len)
{
	struct s3_spool *s = &p->spool[p->filling];
	int rc;
	if (p->pending || len <= s->len)
		return 0;
	/* the sender reads a file, which does not move */
	if ((s->fd < 0 && (rc = spool_to_file(s)) < 0) || (rc = number_pending(p, m)) < 0)
		return rc;
	p->stream_len = len;
	p->streamed = 1;
	if (start_sending(p) < 0)
		p->pending = p->streamed = 0; /* sent once full, as any part */
	return 0;
}

void berth_s3__parts_discard(struct s3_parts *p)
{
	if (berth_s3__parts_streaming(p)) {
		abandon_stream(p);
	} else if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = 0;
	}
	p->pending = 0;
	spool_clear(&p->spool[0]);
	spool_clear(&p->spool[1]);
}

void berth_s3__parts_release(struct s3_parts *p)
{
	berth_s3__parts_discard(p);
	for (int i = 0; i < 2; i++) {
		if (p->spool[i].fd >= 0)
			close(p->spool[i].fd);
		p->spool[i].fd = -1;
		berth_safefree(p->spool[i].mem);
	}
	pthread_cond_destroy(&p->grown);
	pthread_mutex_destroy(&p->lock);
}

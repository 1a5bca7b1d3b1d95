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
 * of page cache at most.
 */
#include "storage/s3_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *spool_dir(void)
{
	const char *dir = getenv("TMPDIR");
	return dir && dir[0] ? dir : "/var/tmp";
}

/* An unlinked file to spool into: O_TMPFILE, or a named one removed at once where the file
 * system has no O_TMPFILE. */
static int spool_create(struct s3_spool *s)
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
	s->fd = fd;
	return 0;
}

static int spool_append(struct s3_spool *s, const void *buf, size_t n)
{
	int rc;
	if (s->fd < 0 && (rc = spool_create(s)) < 0)
		return rc;
	const char *p = buf;
	while (n > 0) {
		ssize_t k = pwrite(s->fd, p, n, (off_t)s->len);
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
		s->len += (uint64_t)k;
	}
	return 0;
}

/* Empties the file: its pages go back at once. */
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
}

uint64_t berth_s3__parts_filling(const struct s3_parts *p)
{
	return p->spool[p->filling].len;
}

uint64_t berth_s3__parts_pending(const struct s3_parts *p)
{
	return p->pending ? p->spool[!p->filling].len : 0;
}

int berth_s3__parts_append(struct s3_parts *p, const void *buf, size_t n)
{
	return spool_append(&p->spool[p->filling], buf, n);
}

struct s3_body_file berth_s3__parts_filling_body(struct s3_parts *p)
{
	const struct s3_spool *s = &p->spool[p->filling];
	return (struct s3_body_file){ .fd = s->fd, .len = s->len };
}

/* Sends the pending part: 0 with its ETag in p->sent_etag, or a BERTH_E* code. */
static int send_pending(struct s3_parts *p)
{
	const struct s3_spool *s = &p->spool[!p->filling];
	struct s3_body_file body = { .fd = s->fd, .len = s->len };
	return berth_s3__mpu_put_part(p->d, p->key, p->pending_upload, p->pending_number, &body,
				      p->sent_etag);
}

static void *send_thread(void *arg)
{
	struct s3_parts *p = arg;
	p->sent_rc = send_pending(p);
	return NULL;
}

int berth_s3__parts_wait(struct s3_parts *p, struct s3_mpu *m)
{
	if (!p->pending)
		return 0;
	int rc;
	if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = 0;
		rc = p->sent_rc;
	} else {
		rc = send_pending(p); /* it failed before: once more, as a synchronous part would be */
	}
	if (rc < 0)
		return rc;
	berth_s3__mpu_add_part(m, p->pending_number, p->sent_etag, p->spool[!p->filling].len);
	spool_clear(&p->spool[!p->filling]);
	berth_safefree(p->pending_upload);
	p->pending = 0;
	return 0;
}

/* Makes the part being filled the pending one, numbered after m's parts. */
static int make_pending(struct s3_parts *p, struct s3_mpu *m)
{
	int rc = berth_s3__parts_wait(p, m);
	if (rc < 0)
		return rc;
	if (m->n_parts >= S3_MAX_PARTS)
		return BERTH_ETOOLARGE;
	p->pending = 1;
	p->pending_number = (unsigned)m->n_parts + 1;
	p->pending_upload = berth_strdup(m->id);
	p->filling = !p->filling;
	return 0;
}

int berth_s3__parts_send(struct s3_parts *p, struct s3_mpu *m)
{
	int rc = make_pending(p, m);
	if (rc < 0)
		return rc;
	if (pthread_create(&p->thread, NULL, send_thread, p) == 0)
		p->running = 1;
	else
		return berth_s3__parts_wait(p, m); /* no thread: sent here */
	return 0;
}

int berth_s3__parts_send_now(struct s3_parts *p, struct s3_mpu *m)
{
	int rc = make_pending(p, m);
	return rc < 0 ? rc : berth_s3__parts_wait(p, m);
}

void berth_s3__parts_discard(struct s3_parts *p)
{
	if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = 0;
	}
	berth_safefree(p->pending_upload);
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
	}
}

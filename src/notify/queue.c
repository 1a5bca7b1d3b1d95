/* Notification queue: an fsynced append-only log plus a delivered offset, or a list in memory. */
#include "notify/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define HDR 8u /* u32 length, u32 crc32, little endian */

struct mem_record {
	struct mem_record *next;
	size_t n;
	char data[];
};

struct berth_notify_queue {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int woken;
	char *name;
	uint64_t max_bytes;
	uint64_t pending;   /* undelivered records */
	uint64_t bytes;     /* undelivered bytes (headers included on disk) */
	uint64_t dropped;
	/* on disk */
	char *dir;
	int log_fd, ack_fd;
	uint64_t seq;       /* log sequence number */
	uint64_t head;      /* offset of the first undelivered record */
	uint64_t tail;      /* end of the log */
	/* in memory */
	struct mem_record *first, *last;
};

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* CRC-32 (IEEE), to tell a whole record from a torn one. */
static uint32_t crc32_of(const void *p, size_t n)
{
	pthread_once(&crc_once, crc_init);
	const unsigned char *b = p;
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ b[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static void put_u32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_u64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static int pread_full(int fd, void *p, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)p + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return BERTH_ERROR;
		done += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const void *p, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)p + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return BERTH_ERROR;
		done += (size_t)r;
	}
	return 0;
}

static char *log_path(const struct berth_notify_queue *q, uint64_t seq)
{
	return berth_asprintf("%s/%s.%" PRIu64 ".log", q->dir, q->name, seq);
}

static int write_ack(struct berth_notify_queue *q, int durable)
{
	unsigned char b[16];
	put_u64(b, q->seq);
	put_u64(b + 8, q->head);
	if (pwrite_full(q->ack_fd, b, sizeof(b), 0) < 0 || (durable && fsync(q->ack_fd) < 0)) {
		berth_error("notifications: cannot write queue '%s' acknowledgement: %s", q->name,
			    berth_err_os_text(errno));
		return BERTH_ERROR;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return BERTH_ERROR;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Size of the valid record at off, 0 at the end or at a torn/corrupt record. */
static uint64_t record_at(struct berth_notify_queue *q, uint64_t off, uint64_t end)
{
	unsigned char h[HDR];
	if (end - off < HDR || pread_full(q->log_fd, h, HDR, off) < 0)
		return 0;
	uint32_t n = get_u32(h);
	if (n > BERTH_NOTIFY_RECORD_MAX || end - off - HDR < n)
		return 0;
	char *p = berth_malloc(n ? n : 1);
	int ok = pread_full(q->log_fd, p, n, off + HDR) == 0 && crc32_of(p, n) == get_u32(h + 4);
	free(p);
	return ok ? HDR + n : 0;
}

/* Reads the acknowledgement, opens its log, cuts a torn tail, counts what is pending. */
static int open_disk(struct berth_notify_queue *q)
{
	char *ack = berth_asprintf("%s/%s.ack", q->dir, q->name);
	q->ack_fd = open(ack, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(ack);
	if (q->ack_fd < 0) {
		berth_err_set(BERTH_ERROR, "cannot open queue '%s' in '%s': %s", q->name, q->dir, berth_err_os_text(errno));
		return BERTH_ERROR;
	}
	unsigned char b[16];
	if (pread_full(q->ack_fd, b, sizeof(b), 0) == 0) {
		q->seq = get_u64(b);
		q->head = get_u64(b + 8);
	}
	char *path = log_path(q, q->seq);
	q->log_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	/* A compaction that died before its acknowledgement left the next log (unused), one that
	 * died after it the previous log (done with). */
	char *next = log_path(q, q->seq + 1);
	unlink(next);
	free(next);
	if (q->seq > 0) {
		char *prev = log_path(q, q->seq - 1);
		unlink(prev);
		free(prev);
	}
	if (q->log_fd < 0) {
		berth_err_set(BERTH_ERROR, "cannot open queue '%s' log in '%s': %s", q->name, q->dir,
			      berth_err_os_text(errno));
		return BERTH_ERROR;
	}
	off_t end = lseek(q->log_fd, 0, SEEK_END);
	if (end < 0) {
		berth_err_set(BERTH_ERROR, "cannot read queue '%s': %s", q->name, berth_err_os_text(errno));
		return BERTH_ERROR;
	}
	if (q->head > (uint64_t)end) /* truncated after delivery, crashed before the ack */
		q->head = (uint64_t)end;
	uint64_t off = q->head, n;
	while ((n = record_at(q, off, (uint64_t)end)) > 0) {
		off += n;
		q->pending++;
	}
	if (off < (uint64_t)end) {
		berth_warn("notifications: queue '%s': cutting a torn record at offset %" PRIu64
			   " (%" PRIu64 " bytes)", q->name, off, (uint64_t)end - off);
		if (ftruncate(q->log_fd, (off_t)off) < 0 || fsync(q->log_fd) < 0) {
			berth_err_set(BERTH_ERROR, "cannot repair queue '%s': %s", q->name, berth_err_os_text(errno));
			return BERTH_ERROR;
		}
	}
	q->tail = off;
	q->bytes = q->tail - q->head;
	if (fsync_dir(q->dir) < 0) { /* the files just created are there after a crash */
		berth_err_set(BERTH_ERROR, "cannot sync queue directory '%s': %s", q->dir, berth_err_os_text(errno));
		return BERTH_ERROR;
	}
	if (q->pending)
		berth_info("notifications: queue '%s': %" PRIu64 " events pending delivery", q->name,
			   q->pending);
	return write_ack(q, 1);
}

int berth_notify_queue_open(struct berth_notify_queue **out, const char *dir, const char *name,
			    uint64_t max_bytes)
{
	struct berth_notify_queue *q = berth_calloc(1, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->name = berth_strdup(name);
	q->max_bytes = max_bytes;
	q->log_fd = q->ack_fd = -1;
	*out = NULL;
	if (dir) {
		q->dir = berth_strdup(dir);
		if (open_disk(q) < 0) {
			berth_notify_queue_free(q);
			return BERTH_ERROR;
		}
	}
	*out = q;
	return 0;
}

void berth_notify_queue_free(struct berth_notify_queue *q)
{
	if (!q)
		return;
	berth_notify_queue_wake(q);
	if (q->log_fd >= 0)
		close(q->log_fd);
	if (q->ack_fd >= 0)
		close(q->ack_fd);
	for (struct mem_record *r = q->first, *next; r; r = next) {
		next = r->next;
		free(r);
	}
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q->name);
	free(q->dir);
	free(q);
}

/* Removes the oldest in-memory record. Called locked, with one pending. */
static void pop_memory(struct berth_notify_queue *q)
{
	struct mem_record *r = q->first;
	q->first = r->next;
	if (!q->first)
		q->last = NULL;
	q->bytes -= r->n;
	free(r);
	q->pending--;
}

/* Drops the oldest record (the bound). Called locked. */
static void drop_oldest(struct berth_notify_queue *q)
{
	if (q->dir) {
		uint64_t n = record_at(q, q->head, q->tail);
		if (!n) { /* unreadable: give up the whole backlog rather than loop */
			q->dropped += q->pending;
			q->head = q->tail;
			q->pending = 0;
			q->bytes = 0;
			return;
		}
		q->head += n;
		q->bytes -= n;
		q->pending--;
	} else {
		pop_memory(q);
	}
	q->dropped++;
}

/* Copies log bytes [from, to) to fd at from - base. */
static int copy_range(struct berth_notify_queue *q, int fd, uint64_t from, uint64_t to, uint64_t base)
{
	char buf[65536];
	while (from < to) {
		size_t n = to - from < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
		if (pread_full(q->log_fd, buf, n, from) < 0 || pwrite_full(fd, buf, n, from - base) < 0)
			return BERTH_ERROR;
		from += n;
	}
	return 0;
}

int berth_notify_queue_compact(struct berth_notify_queue *q)
{
	if (!q->dir)
		return 0;
	pthread_mutex_lock(&q->mu);
	uint64_t base = q->head, end = q->tail, seq = q->seq;
	uint64_t limit = q->max_bytes ? q->max_bytes : 64u << 20;
	pthread_mutex_unlock(&q->mu);
	if (base < limit)
		return 0;

	/* The bulk is copied unlocked: appends go past `end`, drops and acks only move head
	 * forward, and only this (the consumer's) thread compacts or truncates. */
	char *next = log_path(q, seq + 1), *old = log_path(q, seq);
	int rc = BERTH_ERROR;
	int fd = open(next, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	if (copy_range(q, fd, base, end, base) < 0)
		goto out_close;
	pthread_mutex_lock(&q->mu);
	if (copy_range(q, fd, end, q->tail, base) < 0 || fsync(fd) < 0 || fsync_dir(q->dir) < 0) {
		pthread_mutex_unlock(&q->mu);
		goto out_close;
	}
	close(q->log_fd);
	q->log_fd = fd;
	fd = -1;
	q->seq++;
	q->tail -= base;
	q->head -= base;
	if ((rc = write_ack(q, 1)) == 0)
		unlink(old);
	pthread_mutex_unlock(&q->mu);
out_close:
	if (fd >= 0) {
		close(fd);
		unlink(next);
	}
out:
	if (rc < 0)
		berth_error("notifications: cannot compact queue '%s': %s", q->name, berth_err_os_text(errno));
	free(next);
	free(old);
	return rc;
}

static int append_disk(struct berth_notify_queue *q, const void *p, size_t n)
{
	unsigned char h[HDR];
	put_u32(h, (uint32_t)n);
	put_u32(h + 4, crc32_of(p, n));
	if (pwrite_full(q->log_fd, h, HDR, q->tail) < 0 || pwrite_full(q->log_fd, p, n, q->tail + HDR) < 0 ||
	    fdatasync(q->log_fd) < 0) {
		berth_error("notifications: cannot append to queue '%s': %s", q->name, berth_err_os_text(errno));
		/* a partial record is past tail: overwritten by the next append, cut at the next open */
		return BERTH_ERROR;
	}
	q->tail += HDR + n;
	q->bytes += HDR + n;
	return 0;
}

int berth_notify_queue_append(struct berth_notify_queue *q, const void *p, size_t n)
{
	if (n > BERTH_NOTIFY_RECORD_MAX)
		return BERTH_ETOOLARGE;
	uint64_t size = q->dir ? HDR + n : n;
	int rc = 0;
	pthread_mutex_lock(&q->mu);
	uint64_t dropped = q->dropped;
	while (q->max_bytes && q->pending && q->bytes + size > q->max_bytes)
		drop_oldest(q);
	if (q->dropped != dropped) {
		berth_warn("notifications: queue '%s' is full (%" PRIu64 " bytes): dropped the %" PRIu64
			   " oldest events", q->name, q->max_bytes, q->dropped - dropped);
		if (q->dir)
			write_ack(q, 0);
	}
	if (q->dir) {
		rc = append_disk(q, p, n);
	} else {
		struct mem_record *r = berth_malloc(sizeof(*r) + n);
		r->next = NULL;
		r->n = n;
		memcpy(r->data, p, n);
		if (q->last)
			q->last->next = r;
		else
			q->first = r;
		q->last = r;
		q->bytes += n;
	}
	if (rc == 0) {
		q->pending++;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int berth_notify_queue_peek(struct berth_notify_queue *q, char **out, size_t *n)
{
	int rc = 0;
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&q->mu);
	if (!q->pending) {
		rc = BERTH_ENOTFOUND;
	} else if (q->dir) {
		unsigned char h[HDR];
		uint32_t len = 0;
		if (pread_full(q->log_fd, h, HDR, q->head) < 0 ||
		    (len = get_u32(h)) > BERTH_NOTIFY_RECORD_MAX) {
			rc = BERTH_ERROR;
		} else {
			char *p = berth_malloc(len + 1u);
			if (pread_full(q->log_fd, p, len, q->head + HDR) < 0 ||
			    crc32_of(p, len) != get_u32(h + 4)) {
				free(p);
				rc = BERTH_ERROR;
			} else {
				p[len] = '\0';
				*out = p;
				*n = len;
			}
		}
	} else {
		*out = berth_malloc(q->first->n + 1);
		memcpy(*out, q->first->data, q->first->n);
		(*out)[q->first->n] = '\0';
		*n = q->first->n;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int berth_notify_queue_ack(struct berth_notify_queue *q)
{
	int rc = 0;
	pthread_mutex_lock(&q->mu);
	if (!q->pending)
		goto out;
	if (!q->dir) {
		pop_memory(q);
		goto out;
	}
	uint64_t n = record_at(q, q->head, q->tail);
	if (!n) {
		rc = BERTH_ERROR;
		goto out;
	}
	q->head += n;
	q->bytes -= n;
	q->pending--;
	/* All delivered: start the log over. Truncating first means a crash in between leaves an
	 * ack past the end, which open reads as "nothing pending". */
	if (!q->pending && ftruncate(q->log_fd, 0) == 0) {
		q->head = q->tail = 0;
		q->bytes = 0;
	}
	rc = write_ack(q, 0);
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int berth_notify_queue_wait(struct berth_notify_queue *q, int64_t timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q->mu);
	while (!q->pending && !q->woken)
		if (pthread_cond_timedwait(&q->cond, &q->mu, &until) != 0)
			break;
	int pending = q->pending > 0;
	pthread_mutex_unlock(&q->mu);
	return pending;
}

void berth_notify_queue_wake(struct berth_notify_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->woken = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

uint64_t berth_notify_queue_pending(struct berth_notify_queue *q)
{
	pthread_mutex_lock(&q->mu);
	uint64_t n = q->pending;
	pthread_mutex_unlock(&q->mu);
	return n;
}

uint64_t berth_notify_queue_dropped(struct berth_notify_queue *q)
{
	pthread_mutex_lock(&q->mu);
	uint64_t n = q->dropped;
	pthread_mutex_unlock(&q->mu);
	return n;
}

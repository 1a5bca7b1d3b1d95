#include "http/conns.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/periodic.h"
#include "core/util.h"

#define WATCHDOG_TICK_MS 1000
#define REFUSAL_WARN_EVERY_MS 10000 /* one warning per burst of refusals, not one per client */
#define FD_RESERVE 64   /* listening sockets, logs, the debug server, libraries */
#define FDS_PER_THREAD 4 /* each polling thread's epoll and wake-up descriptors */

struct tracked {
	struct tracked *prev, *next;
	int fd;
	_Atomic uint64_t deadline_ms; /* CLOCK_MONOTONIC; 0 = none */
	int end_shown; /* the watchdog's (under the lock): it has shown MHD the client's close */
};

struct berth_conns {
	unsigned limit;
	uint64_t idle_ms, header_ms;
	_Atomic unsigned live;
	_Atomic uint64_t refused;      /* since the last warning */
	_Atomic uint64_t last_warn_ms; /* 0 = never */

	pthread_mutex_t lock; /* guards the list */
	struct tracked *head;
	struct berth_periodic *watchdog;
};

/* Process-wide, over every server's connections (berth runs one API server). */
static _Atomic long connections_open;
static _Atomic uint64_t connections_refused, header_timeouts, closes_shown, wrong_protocols;

static uint64_t now_ms(void)
{
	return berth_now_ns() / 1000000u;
}

/* ---- the limit ---- */

/* Warns about refused clients at most every REFUSAL_WARN_EVERY_MS, with how many there were. */
static void note_refusal(struct berth_conns *c)
{
	atomic_fetch_add(&connections_refused, 1);
	atomic_fetch_add(&c->refused, 1);
	uint64_t now = now_ms(), last = atomic_load(&c->last_warn_ms);
	if (last && now - last < REFUSAL_WARN_EVERY_MS)
		return;
	if (!atomic_compare_exchange_strong(&c->last_warn_ms, &last, now))
		return;
	berth_warn("connection limit (%u) reached: refused %llu new connection(s)", c->limit,
		   (unsigned long long)atomic_exchange(&c->refused, 0));
}

/* The listener admits each client here, before MHD has it: clients are counted from then
 * until the listener lets go of them (berth_conns_release) and again while MHD has them
 * (NOTIFY_STARTED to NOTIFY_CLOSED). A client handed over is uncounted until MHD's polling
 * thread takes it (microseconds), so a burst of new clients may exceed the limit by the few in
 * that gap; the descriptor budget (berth_conns_fds_needed) leaves room for it. Counting it
 * across the gap instead would leak a count whenever MHD drops a client without a notice. */
static void count_in(struct berth_conns *c)
{
	atomic_fetch_add(&c->live, 1);
	atomic_fetch_add(&connections_open, 1);
}

int berth_conns_admit(struct berth_conns *c)
{
	if (atomic_load(&c->live) >= c->limit) {
		note_refusal(c);
		return 0;
	}
	count_in(c);
	return 1;
}

void berth_conns_release(struct berth_conns *c)
{
	atomic_fetch_sub(&c->live, 1);
	atomic_fetch_sub(&connections_open, 1);
}

uint64_t berth_conns_first_byte_ms(const struct berth_conns *c)
{
	/* past the header timeout its request could no longer be in time; an idle timeout, if
	 * shorter, would have closed it under MHD too */
	if (c->header_ms && (!c->idle_ms || c->header_ms < c->idle_ms))
		return c->header_ms;
	return c->idle_ms;
}

void berth_conns_count_header_timeout(void)
{
	atomic_fetch_add(&header_timeouts, 1);
}

void berth_conns_count_wrong_protocol(void)
{
	atomic_fetch_add(&wrong_protocols, 1);
}

/* ---- tracking ---- */

static struct tracked *track(struct berth_conns *c, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct tracked *t = berth_calloc(1, sizeof(*t));
	t->fd = ci ? ci->connect_fd : -1;
	atomic_init(&t->deadline_ms, c->header_ms ? now_ms() + c->header_ms : 0);
	pthread_mutex_lock(&c->lock);
	t->next = c->head;
	if (c->head)
		c->head->prev = t;
	c->head = t;
	pthread_mutex_unlock(&c->lock);
	count_in(c);
	return t;
}

/* MHD closes the descriptor only after this returns: under the lock, the watchdog never shuts
 * down a descriptor that has been closed and reused. */
static void untrack(struct berth_conns *c, struct tracked *t)
{
	pthread_mutex_lock(&c->lock);
	if (t->prev)
		t->prev->next = t->next;
	else
		c->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&c->lock);
	free(t);
	berth_conns_release(c);
}

void berth_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			enum MHD_ConnectionNotificationCode code)
{
	struct berth_conns *c = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = track(c, conn);
	} else if (*socket_context) {
		untrack(c, *socket_context);
		*socket_context = NULL;
	}
}

unsigned berth_conns_live(const struct berth_conns *c)
{
	return atomic_load(&c->live);
}

static struct tracked *tracked_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

void berth_conns_headers_in(struct MHD_Connection *conn)
{
	struct tracked *t = tracked_of(conn);
	if (t)
		atomic_store(&t->deadline_ms, 0);
}

void berth_conns_request_done(const struct berth_conns *c, struct MHD_Connection *conn)
{
	struct tracked *t = tracked_of(conn);
	if (!t)
		return;
	/* Without an idle timeout a keep-alive connection may wait for ever, so its next request
	 * has no deadline either. */
	uint64_t deadline = c->header_ms && c->idle_ms ? now_ms() + c->idle_ms + c->header_ms : 0;
	atomic_store(&t->deadline_ms, deadline);
}

/* ---- the watchdog ---- */

/* Under c->lock. */
static void cut_late(struct berth_conns *c, uint64_t now)
{
	for (struct tracked *t = c->head; t; t = t->next) {
		uint64_t d = atomic_load(&t->deadline_ms);
		/* the exchange loses to a request whose headers have just come in */
		if (!d || d > now || !atomic_compare_exchange_strong(&t->deadline_ms, &d, 0))
			continue;
		berth_debug("closing connection (fd %d): request headers not complete in time", t->fd);
		shutdown(t->fd, SHUT_RDWR);
		berth_conns_count_header_timeout();
	}
}

/* The client has closed its side, and every byte it sent before has been read. */
static int client_finished(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	int unread = 0;
	if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return 0;
	return ioctl(fd, FIONREAD, &unread) == 0 && unread == 0;
}

/*
 * libmicrohttpd 0.9.75 polls edge-triggered and takes a read shorter than its buffer to mean
 * "nothing more for now": a close that arrives with the last bytes (a client killed mid-upload)
 * raises no further event and goes unseen. The connection would wait for the idle timeout,
 * holding the upload session it was writing, so a retry could not resume it. Shutting down our
 * own reading side changes nothing the client sees but wakes MHD's poll; its next read finds
 * the end, as it would have had the close come on its own. Under c->lock.
 */
static void show_closes(struct berth_conns *c)
{
	for (struct tracked *t = c->head; t; t = t->next) {
		if (t->end_shown || t->fd < 0 || !client_finished(t->fd))
			continue;
		t->end_shown = 1;
		berth_debug("connection (fd %d): the client has closed it", t->fd);
		shutdown(t->fd, SHUT_RD);
		atomic_fetch_add(&closes_shown, 1);
	}
}

static void watchdog_tick(void *arg)
{
	struct berth_conns *c = arg;
	pthread_mutex_lock(&c->lock);
	cut_late(c, now_ms());
	show_closes(c);
	pthread_mutex_unlock(&c->lock);
}

int berth_conns_new(struct berth_conns **out, const struct berth_conns_options *opts)
{
	struct berth_conns *c = berth_calloc(1, sizeof(*c));
	c->limit = opts->limit;
	c->idle_ms = (uint64_t)opts->idle_timeout * 1000u;
	c->header_ms = (uint64_t)opts->header_timeout * 1000u;
	pthread_mutex_init(&c->lock, NULL);
	if (berth_periodic_start(&c->watchdog, WATCHDOG_TICK_MS, WATCHDOG_TICK_MS, watchdog_tick, c) < 0) {
		berth_error("cannot start the connection watchdog thread");
		pthread_mutex_destroy(&c->lock);
		free(c);
		return BERTH_ERROR;
	}
	*out = c;
	return 0;
}

void berth_conns_free(struct berth_conns *c)
{
	if (!c)
		return;
	berth_periodic_stop(c->watchdog);
	/* MHD_stop_daemon has reported every connection closed; nothing is left unless it did not */
	while (c->head) {
		struct tracked *t = c->head;
		c->head = t->next;
		free(t);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- metrics ---- */

static void render_metrics(struct berth_buf *out)
{
	berth_buf_printf(out,
			 "# HELP berth_http_connections_open Client connections open now.\n"
			 "# TYPE berth_http_connections_open gauge\n"
			 "berth_http_connections_open %ld\n"
			 "# HELP berth_http_connections_refused_total New connections refused at the connection limit.\n"
			 "# TYPE berth_http_connections_refused_total counter\n"
			 "berth_http_connections_refused_total %llu\n"
			 "# HELP berth_http_header_timeouts_total Connections cut because a request's headers were not in by the header timeout.\n"
			 "# TYPE berth_http_header_timeouts_total counter\n"
			 "berth_http_header_timeouts_total %llu\n"
			 "# HELP berth_http_client_closes_noticed_total Closes by clients that the watchdog noticed for libmicrohttpd (most are clients gone mid-request).\n"
			 "# TYPE berth_http_client_closes_noticed_total counter\n"
			 "berth_http_client_closes_noticed_total %llu\n"
			 "# HELP berth_http_wrong_protocol_total Clients answered 400 for a TLS handshake to plain HTTP or plain HTTP to TLS.\n"
			 "# TYPE berth_http_wrong_protocol_total counter\n"
			 "berth_http_wrong_protocol_total %llu\n",
			 atomic_load(&connections_open),
			 (unsigned long long)atomic_load(&connections_refused),
			 (unsigned long long)atomic_load(&header_timeouts),
			 (unsigned long long)atomic_load(&closes_shown),
			 (unsigned long long)atomic_load(&wrong_protocols));
}

void berth_conns_metrics_register(void)
{
	berth_metrics_register(render_metrics);
}

/* ---- descriptors ---- */

rlim_t berth_conns_fds_needed(unsigned limit, unsigned threads)
{
	/* a socket per connection, and a quarter more for the files requests hold open */
	return (rlim_t)limit + limit / 4 + FD_RESERVE + (rlim_t)FDS_PER_THREAD * threads;
}

unsigned berth_conns_limit_for_fds(rlim_t fds, unsigned threads)
{
	rlim_t fixed = berth_conns_fds_needed(0, threads);
	if (fds <= fixed)
		return 1;
	rlim_t n = (fds - fixed) * 4 / 5; /* the inverse of fds_needed, give or take rounding */
	if (n > UINT_MAX / 2)
		return UINT_MAX / 2;
	while (berth_conns_fds_needed((unsigned)n + 1, threads) <= fds)
		n++;
	while (n > 1 && berth_conns_fds_needed((unsigned)n, threads) > fds)
		n--;
	return n ? (unsigned)n : 1;
}

unsigned berth_conns_fit_fd_limit(unsigned limit, unsigned threads)
{
	struct rlimit rl;
	rlim_t need = berth_conns_fds_needed(limit, threads);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return limit;
	if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = { need < rl.rlim_max ? need : rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl = raised;
	}
	if (rl.rlim_cur >= need)
		return limit;
	unsigned fit = berth_conns_limit_for_fds(rl.rlim_cur, threads);
	berth_warn("the open-file limit (%llu, hard limit %llu) is too low for %u connections: "
		   "serving at most %u at once (raise it with ulimit -n or systemd's LimitNOFILE=)",
		   (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, limit, fit);
	return fit;
}

#include "http/listener.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/lru.h"
#include "core/log.h"
#include "core/util.h"

#define ACCEPTS_PER_WAKE 256    /* then the held clients get a turn */
#define ACCEPT_PAUSE_MS 100     /* after running out of descriptors or memory */
#define LINGER_MS 2000          /* an answered client's time to read the answer and close */
#define TLS_HANDSHAKE_RECORD 0x16

/* What a client's first bytes say. */
enum first_bytes { NOT_YET, SPEAKS_OURS, SPEAKS_OTHER, GONE };

/* A client accepted and not yet handed to MHD (or closed). Its queue (berth_lru used as a
 * FIFO: the newest at the head) orders clients by deadline, since each queue's deadlines are
 * the entry's start time plus one constant: the earliest is always at the tail. */
struct held {
	struct berth_lru_node node;
	struct berth_lru *queue; /* the one it is in, or NULL */
	int fd;
	int watched;             /* in the epoll set */
	uint64_t deadline_ms;    /* 0 = none */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct berth_listener {
	int fd, tls;
	struct MHD_Daemon *daemon;
	struct berth_conns *conns;
	uint64_t first_byte_ms;      /* 0 = no limit */
	int epoll_fd, stop_fd;
	int accepting;               /* the listening socket is in the epoll set */
	uint64_t resume_accepting_ms;
	uint64_t last_accept_warn_ms;
	struct berth_lru waiting;    /* for their first bytes */
	struct berth_lru answered;   /* told they speak the other protocol; closing */
	pthread_t thread;
};

/* epoll data for the two descriptors that are not clients */
static char listen_token, stop_token;

#define TLS_TO_PLAIN_BODY "Client sent an HTTPS request to an HTTP server.\n"
#define PLAIN_TO_TLS_BODY "Client sent an HTTP request to an HTTPS server.\n"
_Static_assert(sizeof(TLS_TO_PLAIN_BODY) - 1 == 48 && sizeof(PLAIN_TO_TLS_BODY) - 1 == 48,
	       "the answers' Content-Length");
static const char tls_to_plain_answer[] =
	"HTTP/1.1 400 Bad Request\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 48\r\n"
	"Connection: close\r\n"
	"\r\n" TLS_TO_PLAIN_BODY;
/* the status line and words of Go's net/http TLS server (Distribution with http.tls) */
static const char plain_to_tls_answer[] =
	"HTTP/1.0 400 Bad Request\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 48\r\n"
	"Connection: close\r\n"
	"\r\n" PLAIN_TO_TLS_BODY;

static uint64_t now_ms(void)
{
	return berth_now_ns() / 1000000u;
}

static void enqueue(struct berth_lru *q, struct held *h)
{
	berth_lru_push_front(q, &h->node);
	h->queue = q;
}

static void dequeue(struct held *h)
{
	berth_lru_unlink(h->queue, &h->node);
	h->queue = NULL;
}

/* The client with the earliest deadline in q, or NULL. */
static struct held *first_due(const struct berth_lru *q)
{
	return BERTH_LRU_ENTRY(q->tail, struct held, node);
}

/* Closes a client the listener still has (not in any queue) and frees it. */
static void drop(struct berth_listener *l, struct held *h)
{
	close(h->fd); /* which also takes it out of the epoll set */
	berth_conns_release(l->conns);
	free(h);
}

static enum first_bytes read_first_bytes(const struct berth_listener *l, int fd)
{
	unsigned char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? NOT_YET : GONE;
	if (n == 0)
		return GONE;
	/* A TLS connection opens with a handshake record. Of the rest, only what starts like an
	 * HTTP method (a capital letter) is told it came to a TLS server; other bytes go to MHD,
	 * whose TLS library refuses them. */
	if (l->tls)
		return b >= 'A' && b <= 'Z' ? SPEAKS_OTHER : SPEAKS_OURS;
	return b == TLS_HANDSHAKE_RECORD ? SPEAKS_OTHER : SPEAKS_OURS;
}

/* Reads and discards what the client has sent (64 KiB at most a turn, so that a client that
 * keeps sending does not hold the thread): closing a socket with unread bytes resets the
 * connection, and the reset may reach the client before it has read the answer. 1 when the
 * client has closed its side (or the connection failed). */
static int discard_input(int fd)
{
	char buf[4096];
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
	}
	return 0;
}

/* Adds the client to the epoll set (for its first bytes, more input, or its close). */
static int watch(struct berth_listener *l, struct held *h)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = h };
	if (h->watched)
		return 0;
	if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, h->fd, &ev) != 0) {
		berth_warn("cannot watch a new connection: %s", strerror(errno));
		return BERTH_ERROR;
	}
	h->watched = 1;
	return 0;
}

/* The client speaks the other protocol: answer it, then wait for it to close (LINGER_MS at
 * most) while reading what it sends. */
static void answer_other_protocol(struct berth_listener *l, struct held *h)
{
	const char *msg = l->tls ? plain_to_tls_answer : tls_to_plain_answer;
	size_t len = (l->tls ? sizeof(plain_to_tls_answer) : sizeof(tls_to_plain_answer)) - 1;
	berth_debug("connection (fd %d): the client speaks %s; answered 400", h->fd,
		    l->tls ? "plain HTTP to a TLS server" : "TLS to a plain-HTTP server");
	berth_conns_count_wrong_protocol();
	/* a fresh socket's send buffer takes the answer whole */
	if (send(h->fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len || discard_input(h->fd) ||
	    watch(l, h) < 0) {
		drop(l, h);
		return;
	}
	shutdown(h->fd, SHUT_WR);
	h->deadline_ms = now_ms() + LINGER_MS;
	enqueue(&l->answered, h);
}

/* MHD takes the client and its unread bytes; it counts the client from now on. */
static void hand_over(struct berth_listener *l, struct held *h)
{
	if (h->watched)
		epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, h->fd, NULL);
	berth_conns_release(l->conns);
	if (MHD_add_connection(l->daemon, h->fd, (const struct sockaddr *)&h->addr, h->addrlen) != MHD_YES)
		berth_debug("libmicrohttpd could not take a connection: %s", strerror(errno));
	free(h);
}

/* Acts on what a client's first bytes say; 0 when they are not here yet (nothing done). The
 * client is taken out of its queue otherwise. */
static int settle(struct berth_listener *l, struct held *h)
{
	enum first_bytes what = read_first_bytes(l, h->fd);
	if (what == NOT_YET)
		return 0;
	if (h->queue)
		dequeue(h);
	if (what == SPEAKS_OURS)
		hand_over(l, h);
	else if (what == SPEAKS_OTHER)
		answer_other_protocol(l, h);
	else
		drop(l, h);
	return 1;
}

static void wait_for_first_bytes(struct berth_listener *l, struct held *h)
{
	if (watch(l, h) < 0) {
		drop(l, h);
		return;
	}
	h->deadline_ms = l->first_byte_ms ? now_ms() + l->first_byte_ms : 0;
	enqueue(&l->waiting, h);
}

static void set_accepting(struct berth_listener *l, int on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.ptr = &listen_token };
	epoll_ctl(l->epoll_fd, EPOLL_CTL_MOD, l->fd, &ev);
	l->accepting = on;
}

/* accept() failed for want of descriptors or memory: the pending client stays in the backlog,
 * and the listening socket would wake us at once, so it is left alone for a while. */
static void pause_accepting(struct berth_listener *l, int err)
{
	uint64_t now = now_ms();
	if (now - l->last_accept_warn_ms >= 10000) {
		berth_warn("cannot accept connections: %s", strerror(err));
		l->last_accept_warn_ms = now;
	}
	l->resume_accepting_ms = now + ACCEPT_PAUSE_MS;
	set_accepting(l, 0);
}

static void accept_clients(struct berth_listener *l)
{
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		struct sockaddr_storage addr;
		socklen_t addrlen = sizeof(addr);
		int fd = accept4(l->fd, (struct sockaddr *)&addr, &addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pause_accepting(l, errno);
			/* EAGAIN: none left; others (a client gone before it was accepted): next time */
			return;
		}
		if (!berth_conns_admit(l->conns)) {
			close(fd);
			continue;
		}
		struct held *h = berth_calloc(1, sizeof(*h));
		h->fd = fd;
		h->addr = addr;
		h->addrlen = addrlen;
		/* a client usually sends its first bytes with its connection: often they are here */
		if (!settle(l, h))
			wait_for_first_bytes(l, h);
	}
}

static void on_client_event(struct berth_listener *l, struct held *h)
{
	if (h->queue == &l->waiting) {
		settle(l, h); /* not yet: a spurious wake-up; it keeps its place */
	} else if (discard_input(h->fd)) {
		dequeue(h);
		drop(l, h);
	}
}

/* Closes the clients whose time is up: those that sent nothing, and answered ones that did
 * not close. */
static void expire(struct berth_listener *l, struct berth_lru *q, uint64_t now)
{
	struct held *h;
	while ((h = first_due(q)) && h->deadline_ms && h->deadline_ms <= now) {
		dequeue(h);
		if (q == &l->waiting) {
			berth_debug("closing connection (fd %d): no request in time", h->fd);
			berth_conns_count_header_timeout();
		}
		drop(l, h);
	}
}

/* Milliseconds until the next deadline (of a queue head, or resuming accepting); -1: none. */
static int next_wait_ms(const struct berth_listener *l, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	const struct held *due[] = { first_due(&l->waiting), first_due(&l->answered) };
	for (size_t i = 0; i < 2; i++)
		if (due[i] && due[i]->deadline_ms && due[i]->deadline_ms < next)
			next = due[i]->deadline_ms;
	if (!l->accepting && l->resume_accepting_ms < next)
		next = l->resume_accepting_ms;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : next - now > INT32_MAX ? INT32_MAX : (int)(next - now);
}

static void *listener_main(void *arg)
{
	struct berth_listener *l = arg;
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(l->epoll_fd, evs, 64, next_wait_ms(l, now_ms()));
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &stop_token)
				return NULL;
			if (p == &listen_token)
				accept_clients(l);
			else
				on_client_event(l, p);
		}
		uint64_t now = now_ms();
		expire(l, &l->waiting, now);
		expire(l, &l->answered, now);
		if (!l->accepting && now >= l->resume_accepting_ms)
			set_accepting(l, 1);
	}
}

static void drop_all(struct berth_listener *l, struct berth_lru *q)
{
	struct held *h;
	while ((h = first_due(q))) {
		dequeue(h);
		drop(l, h);
	}
}

static void release_fds(struct berth_listener *l)
{
	if (l->epoll_fd >= 0)
		close(l->epoll_fd);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	close(l->fd);
}

int berth_listener_start(struct berth_listener **out, const struct berth_listener_options *opts)
{
	struct berth_listener *l = berth_calloc(1, sizeof(*l));
	l->fd = opts->fd;
	l->tls = opts->tls;
	l->daemon = opts->daemon;
	l->conns = opts->conns;
	l->first_byte_ms = berth_conns_first_byte_ms(opts->conns);
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listen_token };
	struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &stop_token };
	if (l->epoll_fd < 0 || l->stop_fd < 0 || epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->fd, &lev) != 0 ||
	    epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->stop_fd, &sev) != 0) {
		berth_error("cannot watch the listening socket: %s", strerror(errno));
		release_fds(l);
		free(l);
		return BERTH_ERROR;
	}
	l->accepting = 1;
	int err = pthread_create(&l->thread, NULL, listener_main, l);
	if (err) {
		berth_error("cannot start the listening thread: %s", strerror(err));
		release_fds(l);
		free(l);
		return BERTH_ERROR;
	}
	*out = l;
	return 0;
}

void berth_listener_stop(struct berth_listener *l)
{
	if (!l)
		return;
	uint64_t one = 1;
	if (write(l->stop_fd, &one, sizeof(one)) != sizeof(one))
		berth_warn("cannot stop the listening thread: %s", strerror(errno));
	pthread_join(l->thread, NULL);
	drop_all(l, &l->waiting);
	drop_all(l, &l->answered);
	release_fds(l);
	free(l);
}

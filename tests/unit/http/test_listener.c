/* The listening thread (http/listener.h) in front of a small libmicrohttpd daemon that answers
 * every request with 200 "ok": clients speaking the other protocol are answered 400 by the
 * listener, the rest reach the daemon; the connection limit; silent clients closed at the
 * header timeout; clients still held when the listener stops are let go. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "http/conns.h"
#include "http/listener.h"

struct fixture {
	struct MHD_Daemon *daemon;
	struct berth_conns *conns;
	struct berth_listener *listener;
	unsigned port;
};

static enum MHD_Result answer_ok(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static int listen_loopback(unsigned *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A daemon behind a listener: limit connections; a client's first byte due within
 * header_timeout seconds (0: no limit). */
static void start(struct fixture *f, unsigned limit, unsigned header_timeout)
{
	struct berth_conns_options co = { limit, 0, header_timeout };
	assert_int_equal(berth_conns_new(&f->conns, &co), 0);
	f->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET,
				     0, NULL, NULL, answer_ok, NULL, MHD_OPTION_THREAD_POOL_SIZE, 2u,
				     MHD_OPTION_NOTIFY_CONNECTION, berth_conns_notify, f->conns,
				     MHD_OPTION_END);
	assert_non_null(f->daemon);
	struct berth_listener_options lo = { listen_loopback(&f->port), 0, f->daemon, f->conns };
	assert_int_equal(berth_listener_start(&f->listener, &lo), 0);
}

static void stop(struct fixture *f)
{
	berth_listener_stop(f->listener);
	MHD_stop_daemon(f->daemon);
	berth_conns_free(f->conns);
}

static int connect_to(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* What the server sends until it closes (or 3 s pass: then -1). NUL-terminated in buf. */
static ssize_t read_until_closed(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 3000) != 1)
			return -1;
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == cap - 1)
			break;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

static void send_all(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static const char get_close[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

static void assert_served(unsigned port)
{
	char buf[1024];
	int fd = connect_to(port);
	send_all(fd, get_close);
	assert_true(read_until_closed(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "200 OK"));
	assert_non_null(strstr(buf, "\r\n\r\nok"));
	close(fd);
}

static void test_http_reaches_the_daemon(void **state)
{
	struct fixture f;
	start(&f, 16, 0);
	assert_served(f.port);
	/* first bytes that come late */
	char buf[1024];
	int fd = connect_to(f.port);
	usleep(200 * 1000);
	send_all(fd, get_close);
	assert_true(read_until_closed(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "200 OK"));
	close(fd);
	stop(&f);
}

static void test_tls_to_plain_answered(void **state)
{
	struct fixture f;
	start(&f, 16, 0);
	/* a record header, then a hello body whose line feed comes before any space */
	static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n";
	char buf[1024];
	int fd = connect_to(f.port);
	assert_int_equal(send(fd, hello, sizeof(hello) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(hello) - 1);
	assert_true(read_until_closed(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nClient sent an HTTPS request to an HTTP server.\n"));
	close(fd);
	assert_served(f.port);
	stop(&f);
}

static void test_limit_refuses_at_once(void **state)
{
	struct fixture f;
	start(&f, 2, 0);
	int held[2] = { connect_to(f.port), connect_to(f.port) };
	for (int i = 0; i < 100 && berth_conns_live(f.conns) < 2; i++)
		usleep(10 * 1000);
	assert_int_equal(berth_conns_live(f.conns), 2);
	char buf[256];
	int fd = connect_to(f.port);
	send(fd, get_close, strlen(get_close), MSG_NOSIGNAL);
	assert_int_equal(read_until_closed(fd, buf, sizeof(buf)), 0); /* closed, no answer */
	close(fd);
	close(held[0]);
	for (int i = 0; i < 100 && berth_conns_live(f.conns) > 1; i++)
		usleep(10 * 1000);
	assert_served(f.port);
	close(held[1]);
	stop(&f);
}

static void test_silent_client_closed_in_time(void **state)
{
	struct fixture f;
	start(&f, 16, 1);
	char buf[64];
	int fd = connect_to(f.port);
	uint64_t t0 = berth_now_ns();
	assert_int_equal(read_until_closed(fd, buf, sizeof(buf)), 0);
	uint64_t ms = (berth_now_ns() - t0) / 1000000u;
	assert_true(ms >= 950 && ms < 2500);
	close(fd);
	stop(&f);
}

static void test_stop_lets_held_clients_go(void **state)
{
	struct fixture f;
	start(&f, 16, 0);
	int fds[5];
	for (int i = 0; i < 5; i++)
		fds[i] = connect_to(f.port);
	for (int i = 0; i < 100 && berth_conns_live(f.conns) < 5; i++)
		usleep(10 * 1000);
	assert_int_equal(berth_conns_live(f.conns), 5);
	berth_listener_stop(f.listener);
	assert_int_equal(berth_conns_live(f.conns), 0);
	char buf[64];
	for (int i = 0; i < 5; i++) {
		assert_int_equal(read_until_closed(fds[i], buf, sizeof(buf)), 0);
		close(fds[i]);
	}
	MHD_stop_daemon(f.daemon);
	berth_conns_free(f.conns);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_reaches_the_daemon),
		cmocka_unit_test(test_tls_to_plain_answered),
		cmocka_unit_test(test_limit_refuses_at_once),
		cmocka_unit_test(test_silent_client_closed_in_time),
		cmocka_unit_test(test_stop_lets_held_clients_go),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Handing a request on to another pool's thread (berth_req_hand_off, berth_req_continue,
 * http/request.h), as the pull-through cache does, on a real server on loopback: from a handler
 * without storage workers (the answer then runs on the polling thread), and from work offloaded
 * to a worker (the hand-off starts only once that work returned, and the answer runs on a
 * worker); a client that leaves while its request is handed on. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/workpool.h"
#include "http/request.h"
#include "http/server.h"

/* What the handler, the work, the other thread and the answer saw. */
struct probe {
	pthread_t polling;   /* ran the handler */
	pthread_t other;     /* the other pool's thread, which continues */
	_Atomic int other_started;
	_Atomic int work_returned;
	_Atomic int started_after_work;
	_Atomic int continued;
	_Atomic int answered;
	_Atomic int answered_on_polling;
	int offload;         /* the handler offloads, and the work hands off */
};

static struct probe P;

static void answer(struct berth_request *req)
{
	atomic_store(&P.answered_on_polling, pthread_equal(pthread_self(), P.polling) != 0);
	atomic_store(&P.answered, 1);
	berth_req_send(req, 200, berth_resp_copy("handed", 6), 6);
}

static void *other_thread(void *arg)
{
	usleep(20 * 1000); /* an upstream call */
	atomic_store(&P.continued, 1);
	berth_req_continue(arg, answer);
	return NULL;
}

/* berth_req_hand_off's start: gives the request to a thread of its own. */
static void start_other(void *arg)
{
	atomic_store(&P.started_after_work, atomic_load(&P.work_returned));
	assert_int_equal(pthread_create(&P.other, NULL, other_thread, arg), 0);
	atomic_store(&P.other_started, 1);
}

static void work(struct berth_request *req)
{
	berth_req_hand_off(req, start_other, req);
	usleep(50 * 1000); /* the worker still holds the request: nothing may run beside it */
	atomic_store(&P.work_returned, 1);
}

static void handle(struct berth_request *req, const char *path, void *payload)
{
	(void)path;
	(void)payload;
	P.polling = pthread_self();
	if (P.offload)
		berth_req_offload(req, work);
	else
		berth_req_hand_off(req, start_other, req);
}

static void refuse(struct berth_request *req, enum berth_http_refusal why, unsigned status, const char *message,
		   void *payload)
{
	(void)why;
	(void)payload;
	berth_req_send(req, status, berth_resp_copy(message, strlen(message)), strlen(message));
}

static const struct berth_http_handler handler = { .handle = handle, .refuse = refuse };

struct fixture {
	struct berth_server *srv;
	struct berth_workpool *workers;
};

static void start(struct fixture *f, int workers)
{
	struct berth_server_options opts = BERTH_SERVER_OPTIONS_INIT;
	memset(&P, 0, sizeof(P));
	P.offload = workers;
	opts.addr = "127.0.0.1:0";
	opts.threads = 1;
	opts.access_log = 0;
	opts.handler = &handler;
	if (workers)
		assert_int_equal(berth_workpool_new(&f->workers, 2), 0);
	opts.workers = f->workers;
	assert_int_equal(berth_server_start(&f->srv, &opts), 0);
}

/* Joins the other thread of the last request once it has one (pthread_create may return
 * after the request was answered). */
static void join_other(void)
{
	for (int i = 0; i < 500 && !atomic_load(&P.other_started); i++)
		usleep(10 * 1000);
	assert_true(atomic_load(&P.other_started));
	pthread_join(P.other, NULL);
	atomic_store(&P.other_started, 0);
}

static void stop(struct fixture *f)
{
	berth_server_drain_and_stop(f->srv, 2000);
	berth_workpool_free(f->workers);
	join_other();
}

/* Sends a GET; returns the connected socket. */
static int send_get(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char *get = "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	assert_int_equal(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));
	return fd;
}

/* The whole answer to a GET, into buf. */
static void get(unsigned port, char *buf, size_t size)
{
	int fd = send_get(port);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < size && (n = recv(fd, buf + len, size - 1 - len, 0)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
}

static void test_hand_off_from_a_handler_answers_on_the_polling_thread(void **state)
{
	(void)state;
	struct fixture f = { 0 };
	char buf[1024];
	start(&f, 0);
	get(berth_server_port(f.srv), buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "handed"));
	assert_true(atomic_load(&P.continued));
	assert_true(atomic_load(&P.answered_on_polling));
	stop(&f);
}

static void test_hand_off_from_offloaded_work_starts_after_it_and_answers_on_a_worker(void **state)
{
	(void)state;
	struct fixture f = { 0 };
	char buf[1024];
	start(&f, 1);
	get(berth_server_port(f.srv), buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "handed"));
	assert_true(atomic_load(&P.started_after_work)); /* never beside the worker's work */
	assert_true(atomic_load(&P.answered));
	assert_false(atomic_load(&P.answered_on_polling)); /* the answer is storage work */
	stop(&f);
}

/* The client leaves while its request is with the other thread: the answer is dropped, nothing
 * leaks (the sanitizer build), and the server stops (its drain waits for the continue). */
static void test_client_leaving_while_handed_off(void **state)
{
	(void)state;
	struct fixture f = { 0 };
	char buf[1024];
	start(&f, 1);
	close(send_get(berth_server_port(f.srv)));
	for (int i = 0; i < 500 && !atomic_load(&P.answered); i++)
		usleep(10 * 1000);
	assert_true(atomic_load(&P.answered));
	/* and the next client is served */
	atomic_store(&P.answered, 0);
	join_other();
	get(berth_server_port(f.srv), buf, sizeof(buf));
	assert_non_null(strstr(buf, "handed"));
	stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hand_off_from_a_handler_answers_on_the_polling_thread),
		cmocka_unit_test(test_hand_off_from_offloaded_work_starts_after_it_and_answers_on_a_worker),
		cmocka_unit_test(test_client_leaving_while_handed_off),
	};
	return cmocka_run_group_tests_name("http hand-off", tests, NULL, NULL);
}

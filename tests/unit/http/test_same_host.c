/* berth_http__same_host: which clients get blob files through a buffer (on this host) and which
 * with sendfile (http/server.c berth_resp_fd). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "http/server_int.h"

/* An address of text (IPv4 or IPv6). */
static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &v6->sin6_addr), 1);
		v6->sin6_family = AF_INET6;
	}
	return ss;
}

static int same(const char *peer, const char *local)
{
	struct sockaddr_storage p = addr(peer);
	if (!local)
		return berth_http__same_host((struct sockaddr *)&p, NULL);
	struct sockaddr_storage l = addr(local);
	return berth_http__same_host((struct sockaddr *)&p, (struct sockaddr *)&l);
}

static void test_loopback(void **state)
{
	(void)state;
	assert_int_equal(same("127.0.0.1", "127.0.0.1"), 1);
	assert_int_equal(same("127.0.0.2", "127.0.0.1"), 1);
	assert_int_equal(same("127.1.2.3", NULL), 1);
	assert_int_equal(same("::1", "::1"), 1);
	assert_int_equal(same("::1", NULL), 1);
	assert_int_equal(same("::ffff:127.0.0.1", "::ffff:127.0.0.1"), 1);
}

static void test_own_address(void **state)
{
	(void)state;
	/* a client on this host connecting to the host's own address: through lo too */
	assert_int_equal(same("192.0.2.2", "192.0.2.2"), 1);
	assert_int_equal(same("::ffff:192.0.2.2", "192.0.2.2"), 1);
	assert_int_equal(same("192.0.2.2", "::ffff:192.0.2.2"), 1);
	assert_int_equal(same("2001:db8::5", "2001:db8::5"), 1);
}

static void test_other_hosts(void **state)
{
	(void)state;
	assert_int_equal(same("192.0.2.3", "192.0.2.2"), 0);
	assert_int_equal(same("10.88.0.2", "10.88.0.1"), 0); /* a container on a bridge: left to sendfile */
	assert_int_equal(same("192.0.2.3", NULL), 0);
	assert_int_equal(same("::ffff:192.0.2.3", "192.0.2.2"), 0);
	assert_int_equal(same("2001:db8::6", "2001:db8::5"), 0);
	assert_int_equal(same("2001:db8::6", "192.0.2.2"), 0);
	assert_int_equal(same("128.0.0.1", "127.0.0.1"), 0);
}

static void test_unix_socket(void **state)
{
	(void)state;
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(berth_http__same_host((struct sockaddr *)&un, NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_own_address),
		cmocka_unit_test(test_other_hosts),
		cmocka_unit_test(test_unix_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

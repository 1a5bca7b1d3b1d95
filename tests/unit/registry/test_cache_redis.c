/*
 * The Redis blob descriptor cache against a real redis-server (tests/fixtures/s3/redis-up.sh):
 * Distribution's key layout both ways, misses, and an outage (Redis killed, then back on the
 * same port) that costs errors but no hang, with the cache reconnecting by itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"
#include "registry/cache_redis.h"

static struct {
	char dir[64];
	int port;
	struct berth_redis_cache *cache;
	redisContext *raw; /* a plain client, to look at and plant keys as Distribution would */
} R;

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) != 0)
		return -1;
	close(s);
	return ntohs(a.sin_port);
}

static int redis_start(void)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s/tests/fixtures/s3/redis-up.sh %s %d", BERTH_SRC_DIR, R.dir, R.port);
	return system(cmd) == 0 ? 0 : -1;
}

/* Stops the server and waits until it is gone. */
static void redis_stop(void)
{
	char pidfile[128];
	snprintf(pidfile, sizeof(pidfile), "%s/redis.pid", R.dir);
	FILE *f = fopen(pidfile, "r");
	int pid = 0;
	if (f == NULL)
		return;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid > 0 && kill(pid, SIGKILL) == 0) {
		for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
			usleep(10 * 1000);
	}
	unlink(pidfile);
}

static int group_setup(void **state)
{
	strcpy(R.dir, "/tmp/berth-redis-XXXXXX");
	if (mkdtemp(R.dir) == NULL || (R.port = free_port()) < 0 || redis_start() < 0)
		return -1;
	R.raw = redisConnect("127.0.0.1", R.port);
	if (R.raw == NULL || R.raw->err)
		return -1;
	struct berth_redis_cache_options o = { .host = "127.0.0.1", .port = R.port, .dial_timeout_ms = 500,
					       .io_timeout_ms = 500, .pool_size = 2 };
	R.cache = berth_redis_cache_new(&o);
	return 0;
}

static int group_teardown(void **state)
{
	berth_redis_cache_free(R.cache);
	redisFree(R.raw);
	redis_stop();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", R.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A raw command's reply as a string ("" for nil, the number for an integer). */
static const char *raw(const char *fmt, ...)
{
	static char out[512];
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(R.raw, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	out[0] = '\0';
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
		snprintf(out, sizeof(out), "%s", r->str);
	else if (r->type == REDIS_REPLY_INTEGER)
		snprintf(out, sizeof(out), "%lld", r->integer);
	else if (r->type == REDIS_REPLY_ERROR)
		fail_msg("redis: %s", r->str);
	freeReplyObject(r);
	return out;
}

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static struct berth_blob_descriptor desc(const char *digest, uint64_t size, const char *mediatype)
{
	struct berth_blob_descriptor d = { .size = size };
	snprintf(d.digest, sizeof(d.digest), "%s", digest);
	snprintf(d.mediatype, sizeof(d.mediatype), "%s", mediatype);
	return d;
}

/* What berth writes is what Distribution reads: the same keys and fields. */
static void test_writes_distribution_layout(void **state)
{
	struct berth_blob_descriptor d = desc(D1, 1234, "application/vnd.oci.image.layer.v1.tar+gzip");
	assert_int_equal(berth_redis_cache_repo_set(R.cache, "lib/alpine", &d), 0);
	assert_string_equal(raw("HGET blobs::%s digest", D1), D1);
	assert_string_equal(raw("HGET blobs::%s size", D1), "1234");
	assert_string_equal(raw("HGET blobs::%s mediatype", D1), d.mediatype);
	assert_string_equal(raw("SISMEMBER repository::lib/alpine::blobs %s", D1), "1");
	assert_string_equal(raw("HGET repository::lib/alpine::blobs::%s mediatype", D1), d.mediatype);

	/* The global media type is set once; a repository keeps its own. */
	struct berth_blob_descriptor other = desc(D1, 1234, "application/octet-stream");
	assert_int_equal(berth_redis_cache_repo_set(R.cache, "other", &other), 0);
	struct berth_blob_descriptor got;
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, D1), 0);
	assert_string_equal(got.mediatype, d.mediatype);
	assert_int_equal(berth_redis_cache_repo_stat(R.cache, "other", D1, &got), 0);
	assert_string_equal(got.mediatype, "application/octet-stream");
	assert_int_equal(got.size, 1234);
	assert_string_equal(got.digest, D1);
}

/* What Distribution writes is what berth reads. */
static void test_reads_distribution_entries(void **state)
{
	raw("HMSET blobs::%s digest %s size 42 mediatype %s", D2, D2, "application/vnd.docker.image.rootfs.diff.tar.gzip");
	raw("SADD repository::team/app::blobs %s", D2);
	raw("HSET repository::team/app::blobs::%s mediatype %s", D2, "application/x-custom");
	struct berth_blob_descriptor got;
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, D2), 0);
	assert_int_equal(got.size, 42);
	assert_string_equal(got.mediatype, "application/vnd.docker.image.rootfs.diff.tar.gzip");
	assert_int_equal(berth_redis_cache_repo_stat(R.cache, "team/app", D2, &got), 0);
	assert_string_equal(got.mediatype, "application/x-custom");
	assert_int_equal(berth_redis_cache_repo_stat(R.cache, "team/other", D2, &got), BERTH_ENOTFOUND);

	/* Cleared as Distribution 3 clears: membership, the repository's hash, the global fields. */
	assert_int_equal(berth_redis_cache_repo_clear(R.cache, "team/app", D2), 0);
	assert_string_equal(raw("SISMEMBER repository::team/app::blobs %s", D2), "0");
	assert_string_equal(raw("EXISTS repository::team/app::blobs::%s", D2), "0");
	assert_string_equal(raw("HGET blobs::%s digest", D2), "");
	assert_int_equal(berth_redis_cache_repo_stat(R.cache, "team/app", D2, &got), BERTH_ENOTFOUND);
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, D2), BERTH_ENOTFOUND);

	/* Distribution's old "length" field is a miss, so the entry is rewritten with "size". */
	raw("HMSET blobs::%s digest %s length 7", D3, D3);
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, D3), BERTH_ENOTFOUND);
}

static void test_misses_and_clear(void **state)
{
	struct berth_blob_descriptor got;
	const char *none = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, none), BERTH_ENOTFOUND);
	assert_int_equal(berth_redis_cache_clear(R.cache, none), BERTH_ENOTFOUND);
	assert_int_equal(berth_redis_cache_repo_clear(R.cache, "lib/alpine", none), BERTH_ENOTFOUND);

	struct berth_blob_descriptor d = desc(none, 5, "");
	assert_int_equal(berth_redis_cache_set(R.cache, &d), 0);
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, none), 0);
	assert_int_equal(got.size, 5);
	assert_int_equal(berth_redis_cache_clear(R.cache, none), 0);
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, none), BERTH_ENOTFOUND);
	assert_int_equal(berth_redis_cache_errors(R.cache), 0);
}

/* A cache of its own on the test server with the given options on top of the defaults. */
static struct berth_redis_cache *cache_with(struct berth_redis_cache_options o)
{
	o.host = "127.0.0.1";
	o.port = R.port;
	return berth_redis_cache_new(&o);
}

/* A reply's integer field "name:<n>" of INFO's text. */
static long long info_field(const char *section, const char *name)
{
	redisReply *r = redisCommand(R.raw, "INFO %s", section);
	assert_non_null(r);
	const char *p = strstr(r->str, name);
	long long v = p ? strtoll(p + strlen(name) + 1, NULL, 10) : -1;
	freeReplyObject(r);
	return v;
}

/* redis.readtimeout bounds a call: a server that stops answering costs the timeout, no more. */
static void test_read_timeout_bounds_a_call(void **state)
{
	struct berth_redis_cache *c = cache_with((struct berth_redis_cache_options){ .io_timeout_ms = 100 });
	struct berth_blob_descriptor got;
	int rc = berth_redis_cache_stat(&got, c, D1); /* connected */
	assert_true(rc == 0 || rc == BERTH_ENOTFOUND);
	raw("CLIENT PAUSE 1000");
	uint64_t t0 = berth_now_ns();
	assert_int_equal(berth_redis_cache_stat(&got, c, D1), BERTH_ERROR);
	uint64_t took = berth_now_ns() - t0;
	assert_true(took >= 90000000ull && took < 600000000ull);
	berth_redis_cache_free(c);
	usleep(1000 * 1000); /* the pause ends */
}

struct blocked_call {
	struct berth_redis_cache *c;
	int rc;
};

static void *stat_in_thread(void *p)
{
	struct blocked_call *b = p;
	struct berth_blob_descriptor got;
	b->rc = berth_redis_cache_stat(&got, b->c, D1);
	return NULL;
}

/* redis.poolsize / maxactiveconns: with every connection allowed in use, a call does not wait
 * for one; it answers BERTH_EBUSY at once (the caller goes to storage), and is counted. */
static void test_max_active_does_not_wait(void **state)
{
	struct berth_redis_cache *c = cache_with((struct berth_redis_cache_options){ .io_timeout_ms = 2000,
										  .max_active = 1 });
	struct blocked_call b = { c, 1 };
	pthread_t t;
	raw("CLIENT PAUSE 400");
	assert_int_equal(pthread_create(&t, NULL, stat_in_thread, &b), 0);
	usleep(100 * 1000); /* the thread holds the one connection, waiting on the paused server */
	struct berth_blob_descriptor got;
	uint64_t t0 = berth_now_ns();
	assert_int_equal(berth_redis_cache_stat(&got, c, D1), BERTH_EBUSY);
	assert_true(berth_now_ns() - t0 < 50000000ull);
	assert_int_equal(berth_redis_cache_busy(c), 1);
	pthread_join(t, NULL);
	assert_true(b.rc == 0 || b.rc == BERTH_ENOTFOUND); /* it got its answer after the pause */
	assert_true(berth_redis_cache_stat(&got, c, D1) != BERTH_EBUSY); /* the connection came back */
	berth_redis_cache_free(c);
}

/* redis.connmaxidletime / pool.idletimeout: an idle connection older than that is not used. */
static void test_idle_timeout_redials(void **state)
{
	struct berth_redis_cache *c = cache_with((struct berth_redis_cache_options){ .idle_timeout_ms = 100 });
	struct berth_blob_descriptor got;
	berth_redis_cache_stat(&got, c, D1);
	long long before = info_field("stats", "total_connections_received");
	berth_redis_cache_stat(&got, c, D1);
	assert_int_equal(info_field("stats", "total_connections_received"), before); /* reused */
	usleep(200 * 1000);
	berth_redis_cache_stat(&got, c, D1);
	assert_int_equal(info_field("stats", "total_connections_received"), before + 1); /* a new one */
	berth_redis_cache_free(c);
}

/* redis.db and redis.username (an ACL user): SELECT and AUTH user password on every connection. */
static void test_db_and_acl_user(void **state)
{
	raw("ACL SETUSER berthuser on >s3cret ~* +@all");
	struct berth_redis_cache *c = cache_with((struct berth_redis_cache_options){
		.db = 3, .username = "berthuser", .password = "s3cret" });
	struct berth_blob_descriptor d = desc(D3, 33, "x"), got;
	assert_int_equal(berth_redis_cache_set(c, &d), 0);
	assert_int_equal(berth_redis_cache_stat(&got, c, D3), 0);
	assert_int_equal(got.size, 33);
	raw("SELECT 3");
	assert_string_equal(raw("HGET blobs::%s size", D3), "33");
	raw("DEL blobs::%s", D3);
	raw("SELECT 0");
	berth_redis_cache_free(c);
	c = cache_with((struct berth_redis_cache_options){ .username = "berthuser", .password = "wrong" });
	assert_int_equal(berth_redis_cache_stat(&got, c, D3), BERTH_ERROR);
	berth_redis_cache_free(c);
}

/* Redis killed: calls fail fast (no hang, no crash) and are counted; back on the same port, the
 * cache reconnects by itself within its one-second pause. */
static void test_outage_and_reconnect(void **state)
{
	struct berth_blob_descriptor d = desc(D1, 9, "x"), got;
	assert_int_equal(berth_redis_cache_set(R.cache, &d), 0); /* a pooled connection exists */
	redis_stop();
	uint64_t t0 = berth_now_ns();
	for (int i = 0; i < 50; i++)
		assert_int_equal(berth_redis_cache_stat(&got, R.cache, D1), BERTH_ERROR);
	assert_true(berth_now_ns() - t0 < 2000000000ull);
	assert_true(berth_redis_cache_errors(R.cache) >= 50);

	assert_int_equal(redis_start(), 0);
	int rc = BERTH_ERROR;
	for (int i = 0; i < 40 && rc == BERTH_ERROR; i++) {
		rc = berth_redis_cache_stat(&got, R.cache, D1);
		if (rc == BERTH_ERROR)
			usleep(100 * 1000);
	}
	assert_int_equal(rc, BERTH_ENOTFOUND); /* a fresh, empty Redis: a miss, not an error */
	assert_int_equal(berth_redis_cache_set(R.cache, &d), 0);
	assert_int_equal(berth_redis_cache_stat(&got, R.cache, D1), 0);
	redisFree(R.raw);
	R.raw = redisConnect("127.0.0.1", R.port);
	assert_string_equal(raw("HGET blobs::%s size", D1), "9");
}

/* A password the server refuses is an error (counted), never a crash or a silent success. */
static void test_auth_refused(void **state)
{
	struct berth_redis_cache_options o = { .host = "127.0.0.1", .port = R.port, .password = "wrong" };
	struct berth_redis_cache *c = berth_redis_cache_new(&o);
	struct berth_blob_descriptor got;
	assert_int_equal(berth_redis_cache_stat(&got, c, D1), BERTH_ERROR);
	assert_int_equal(berth_redis_cache_errors(c), 1);
	berth_redis_cache_free(c);
}

int main(void)
{
	if (system("command -v redis-server >/dev/null") != 0) {
		fprintf(stderr, "SKIP: redis-server is not installed (scripts/install-deps.sh installs it)\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writes_distribution_layout),
		cmocka_unit_test(test_reads_distribution_entries),
		cmocka_unit_test(test_misses_and_clear),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_read_timeout_bounds_a_call),
		cmocka_unit_test(test_max_active_does_not_wait),
		cmocka_unit_test(test_idle_timeout_redials),
		cmocka_unit_test(test_db_and_acl_user),
		cmocka_unit_test(test_outage_and_reconnect),
	};
	return cmocka_run_group_tests_name("redis blob descriptor cache", tests, group_setup, group_teardown);
}

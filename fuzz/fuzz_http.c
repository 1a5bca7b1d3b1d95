/*
 * The whole HTTP layer: libmicrohttpd's parsing as berth configures it, the prefix and
 * percent-decoding of the URL (berth's unescape callback), the router, header and query
 * handling, and every handler down to the registry over the in-memory driver.
 *
 * One real server per process (berth_server_start on 127.0.0.1:0, one polling thread, deletes
 * enabled, manifests up to MANIFEST_MAX bytes, foreign-layer URLs allowed for example.com and
 * denied for www.example.com). Each input is sent as raw bytes on a new loopback connection, the
 * write side is then shut down, and the answer is read until the server closes.
 * Properties: no crash, leak or sanitizer report anywhere in the server; the server always
 * answers with "HTTP/1.x" or closes cleanly (a reset counts as clean) within HTTP_DEADLINE_MS;
 * GET /v2/ keeps answering 200 (checked every PROBE_EVERY inputs).
 *
 * Fixtures, so that requests reach the found paths, not only 404s (make-seeds.py builds the same
 * bytes and must stay in step; FIXTURE_*_DIGEST below catch a drift):
 *   library/fuzz: blobs LAYER and CONFIG, manifest MANIFEST tagged "latest", an index tagged
 *                 "index" over it, and a referrer (artifactType application/vnd.example.sbom.v1)
 *                 whose subject is MANIFEST.
 *   other/repo:   blob LAYER (a source for cross-repository mounts).
 * They are put back before every input when a DELETE removed them, and the whole registry is
 * recreated every RESET_EVERY inputs so that memory stays bounded.
 * Placeholder: every "@UUID@" in the input is replaced by the id of an upload session created
 * for this input in library/fuzz, so PATCH/PUT/GET/DELETE of an upload reach a live session.
 */
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "fuzz_common.h"
#include "http/metrics.h"
#include "http/server.h"
#include "registry/manifest.h"
#include "registry/registry.h"
#include "storage/driver.h"
#include "storage/storage.h"

#define HTTP_DEADLINE_MS 8000
/* The server's timeouts, well inside HTTP_DEADLINE_MS: they are what bounds a connection in
 * production too. libmicrohttpd 0.9.75 polls edge-triggered and can miss the end of input of a
 * half-closed connection whose request is incomplete (see wait_consumed); berth's connection
 * watchdog shows it such closes within a second (http/conns.c), and the timeouts bound the
 * rest. A server that stops working (a stuck thread, a lost wake-up) still fails the deadline,
 * and the GET /v2/ probe. */
#define SERVER_IDLE_TIMEOUT_S 2
#define SERVER_HEADER_TIMEOUT_S 3
#define RESET_EVERY 2000
#define PROBE_EVERY 64
#define PLACEHOLDER "@UUID@"
#define MANIFEST_MAX 2048 /* small, so that inputs within -max_len reach the too-large path */

#define REPO "library/fuzz"
#define OTHER_REPO "other/repo"
#define LAYER "berth fuzz layer\n"
#define CONFIG "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"
#define FIXTURE_MANIFEST_DIGEST "sha256:cf86e7160c87a6ea709f7d4f9f13b2228b60f7cdc10fd018c2d1bcb7965b6190"

static struct berth_server *srv;
static struct berth_registry *reg;
static struct berth_api api;
static struct berth_http_handler handler;
static unsigned port;
static unsigned long iter;
static int verbose;
static int diag_fd = -1; /* NETLINK_SOCK_DIAG */

static char manifest[1024], index_json[1024], referrer[1024];
static char layer_digest[BERTH_DIGEST_STR_MAX], config_digest[BERTH_DIGEST_STR_MAX];
static char manifest_digest[BERTH_DIGEST_STR_MAX], index_digest[BERTH_DIGEST_STR_MAX];
static char referrer_digest[BERTH_DIGEST_STR_MAX];

static void build_fixtures(void)
{
	berth_digest_bytes(BERTH_ALG_SHA256, LAYER, strlen(LAYER), layer_digest);
	berth_digest_bytes(BERTH_ALG_SHA256, CONFIG, strlen(CONFIG), config_digest);
	snprintf(manifest, sizeof(manifest),
		 "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\","
		 "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":%zu}]}",
		 config_digest, strlen(CONFIG), layer_digest, strlen(LAYER));
	berth_digest_bytes(BERTH_ALG_SHA256, manifest, strlen(manifest), manifest_digest);
	FUZZ_CHECK(strcmp(manifest_digest, FIXTURE_MANIFEST_DIGEST) == 0,
		   "fixture manifest is %s: update FIXTURE_MANIFEST_DIGEST and make-seeds.py", manifest_digest);
	snprintf(index_json, sizeof(index_json),
		 "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_INDEX "\","
		 "\"manifests\":[{\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
		 "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
		 manifest_digest, strlen(manifest));
	berth_digest_bytes(BERTH_ALG_SHA256, index_json, strlen(index_json), index_digest);
	snprintf(referrer, sizeof(referrer),
		 "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\","
		 "\"artifactType\":\"application/vnd.example.sbom.v1\","
		 "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":%zu}],"
		 "\"subject\":{\"mediaType\":\"" BERTH_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu},"
		 "\"annotations\":{\"org.example\":\"fuzz\"}}",
		 config_digest, strlen(CONFIG), layer_digest, strlen(LAYER), manifest_digest, strlen(manifest));
	berth_digest_bytes(BERTH_ALG_SHA256, referrer, strlen(referrer), referrer_digest);
}

static void put_blob(const char *repo, const char *bytes, const char *digest)
{
	uint64_t size;
	char uuid[37];
	struct berth_upload *u = NULL;
	if (berth_blob_stat(&size, reg, repo, digest) == 0)
		return;
	FUZZ_CHECK(berth_upload_create(reg, repo, uuid) == 0, "fixture upload");
	FUZZ_CHECK(berth_upload_open(&u, reg, repo, uuid) == 0, "fixture upload open");
	FUZZ_CHECK(berth_upload_write(u, bytes, strlen(bytes)) == 0, "fixture upload write");
	FUZZ_CHECK(berth_upload_commit(u, digest) == 0, "fixture upload commit");
	berth_upload_close(u);
}

static void put_manifest(const char *reference, const char *body, const char *digest)
{
	struct berth_manifest_content c = { 0 };
	struct berth_manifest_put_result res;
	if (berth_manifest_get(&c, reg, REPO, reference) == 0 && strcmp(c.digest, digest) == 0) {
		berth_manifest_content_release(&c);
		return;
	}
	berth_manifest_content_release(&c);
	memset(&res, 0, sizeof(res));
	int rc = berth_manifest_put(&res, reg, REPO, reference,
				    berth_manifest_sniff_media_type(body, strlen(body)), body, strlen(body));
	FUZZ_CHECK(rc == 0, "fixture manifest %s: %d %s", reference, rc, berth_err_message(rc));
}

/* Puts back whatever a DELETE (or an overwriting PUT) removed. */
static void ensure_fixtures(void)
{
	put_blob(REPO, LAYER, layer_digest);
	put_blob(REPO, CONFIG, config_digest);
	put_blob(OTHER_REPO, LAYER, layer_digest);
	put_manifest("latest", manifest, manifest_digest);
	put_manifest("index", index_json, index_digest);
	put_manifest(referrer_digest, referrer, referrer_digest);
}

static void start(void)
{
	struct berth_storage_driver *d = NULL;
	FUZZ_CHECK(berth_inmem_driver_new(&d) == 0, "inmem driver");
	static const char *const allow[] = { "^https?://([^/]+\\.)*example\\.com/" };
	static const char *const deny[] = { "^https?://www\\.example\\.com/" };
	struct berth_registry_config rc = {
		.driver = d,
		.delete_enabled = 1,
		.manifest_max = MANIFEST_MAX,
		.descriptor_cache_size = 64,
		.urls_allow = allow,
		.n_urls_allow = 1,
		.urls_deny = deny,
		.n_urls_deny = 1,
	};
	FUZZ_CHECK(berth_registry_new(&reg, &rc) == 0, "registry");
	struct berth_server_options so = BERTH_SERVER_OPTIONS_INIT;
	so.addr = "127.0.0.1:0";
	so.threads = getenv("FUZZ_HTTP_THREADS") ? (unsigned)atoi(getenv("FUZZ_HTTP_THREADS")) : 1;
	so.conn_timeout = SERVER_IDLE_TIMEOUT_S;
	so.header_timeout = SERVER_HEADER_TIMEOUT_S;
	so.conn_limit = 64;
	so.access_log = 0;
	api = (struct berth_api){ .registry = reg };
	berth_api_handler(&handler, &api);
	so.handler = &handler;
	FUZZ_CHECK(berth_server_start(&srv, &so) == 0, "server start");
	port = berth_server_port(srv);
	ensure_fixtures();
}

static void stop(void)
{
	berth_server_drain_and_stop(srv, 2000);
	berth_registry_free(reg);
	srv = NULL;
	reg = NULL;
}

static void at_exit(void)
{
	stop();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	diag_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (diag_fd < 0)
		fprintf(stderr, "fuzz_http: no sock_diag (%s); pausing 2 ms before each half-close\n",
			strerror(errno));
	verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
	berth_log_setup(verbose ? BERTH_LOG_DEBUG : BERTH_LOG_ERROR, BERTH_LOG_TEXT, NULL, NULL, 0);
	berth_http_metrics_register();
	berth_storage_metrics_register();
	berth_registry_metrics_register();
	berth_registry_cache_metrics_register();
	build_fixtures();
	start();
	atexit(at_exit);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Bytes the server has not read yet on its end of the connection from client_port: the
 * receive queue of that one socket, looked up by its 4-tuple with sock_diag (no dump, so the
 * cost does not grow with the sockets on the machine). 0 when it is gone, -1 if sock_diag is
 * not available.
 */
static long server_rqueue(unsigned client_port)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST },
		.r = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u },
	};
	req.r.id.idiag_sport = htons((uint16_t)port);
	req.r.id.idiag_dport = htons((uint16_t)client_port);
	req.r.id.idiag_src[0] = req.r.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	union {
		struct nlmsghdr nlh;
		char buf[1024];
	} ans;
	if (diag_fd < 0 || send(diag_fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return -1;
	ssize_t n = recv(diag_fd, &ans, sizeof(ans), 0);
	if (n < (ssize_t)sizeof(struct nlmsghdr) || !NLMSG_OK(&ans.nlh, (size_t)n))
		return -1;
	if (ans.nlh.nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(&ans.nlh);
		return e->error == -ENOENT ? 0 : -1;
	}
	if (ans.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    ans.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
		return -1;
	const struct inet_diag_msg *m = NLMSG_DATA(&ans.nlh);
	return m->idiag_state == TCP_ESTABLISHED ? (long)m->idiag_rqueue : 0;
}

/*
 * Waits (at most WAIT_CONSUMED_MS) until the server has read everything sent on the connection.
 * Done before the half-close: libmicrohttpd 0.9.75 polls edge-triggered and, when the FIN
 * arrives together with the request, reads the request and does not notice the end of input;
 * berth's watchdog then shows it the close up to a second later, which would slow every such
 * input. A FIN that arrives after the queue was drained is a new edge, seen at once.
 */
#define WAIT_CONSUMED_MS 3000
static long unread_at_shutdown; /* what the server had not read when the FIN went (diagnostics) */
static void wait_consumed(unsigned client_port)
{
	int64_t deadline = now_ms() + WAIT_CONSUMED_MS;
	long q;
	while ((q = server_rqueue(client_port)) != 0 && now_ms() < deadline)
		usleep(q < 0 ? 2000 : 20); /* without sock_diag, a plain pause */
	unread_at_shutdown = q;
}

/*
 * Connects fd to the server. libFuzzer's -timeout alarm (SIGALRM, not SA_RESTART) can interrupt
 * connect(); the connection then completes in the background, so wait for it rather than
 * calling connect() again (that would answer EALREADY).
 */
static void connect_to_server(int fd, const struct sockaddr_in *sa)
{
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return;
	FUZZ_CHECK(errno == EINTR || errno == EINPROGRESS, "connect to the server: %s", strerror(errno));
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int n;
	while ((n = poll(&pfd, 1, HTTP_DEADLINE_MS)) < 0 && errno == EINTR)
		;
	FUZZ_CHECK(n == 1, "connect to the server: no answer within %d ms", HTTP_DEADLINE_MS);
	int err = 0;
	socklen_t len = sizeof(err);
	FUZZ_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0,
		   "connect to the server: %s", strerror(err));
}

/*
 * Sends req on a new connection, half-closes it when shut is set (once the server has read the
 * bytes), and reads the answer until the server closes. Copies its first bytes into head
 * (NUL-terminated). Returns the number of bytes received, or -1 if the server neither answered
 * nor closed in time.
 */
static ssize_t exchange(const char *req, size_t len, int shut, char *head, size_t head_cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t salen = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	connect_to_server(fd, &sa);
	FUZZ_CHECK(getsockname(fd, (struct sockaddr *)&sa, &salen) == 0, "getsockname");
	unsigned client_port = ntohs(sa.sin_port);
	int64_t deadline = now_ms() + HTTP_DEADLINE_MS;
	size_t off = 0, got = 0;
	unread_at_shutdown = 0;
	ssize_t total = 0;
	head[0] = '\0';
	int wrote_all = 0;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN | (wrote_all ? 0 : POLLOUT) };
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			total = -1;
			break;
		}
		int n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		FUZZ_CHECK(n >= 0, "poll: %s", strerror(errno));
		if (n == 0)
			continue;
		if (!wrote_all && (pfd.revents & POLLOUT)) {
			ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				off += (size_t)w;
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				wrote_all = 1; /* the server closed on us: read what it said */
			if (off == len)
				wrote_all = 1;
			if (wrote_all && shut) {
				wait_consumed(client_port);
				shutdown(fd, SHUT_WR);
			}
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[16384];
			ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r == 0)
				break; /* clean close */
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				break; /* reset: the server closed with unread input */
			}
			if (got + 1 < head_cap) {
				size_t c = (size_t)r < head_cap - 1 - got ? (size_t)r : head_cap - 1 - got;
				memcpy(head + got, buf, c);
				got += c;
				head[got] = '\0';
			}
			total += r;
		}
	}
	/* Close with a reset: no TIME_WAIT left behind, so /proc/self/net/tcp stays short and
	 * local ports are not used up. */
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return total;
}

/*
 * Waits (briefly) until the server has let go of the connection: what it allocated for it is
 * then freed within this input, and libFuzzer's per-input leak check (run when mallocs and
 * frees do not balance, a full LeakSanitizer scan) is not triggered for nothing.
 */
static void wait_closed(void)
{
	for (int i = 0; i < 200 && berth_server_connections(srv) > 0; i++)
		usleep(50);
}

static void probe(void)
{
	static const char req[] = "GET /v2/ HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
	char head[64];
	ssize_t n = exchange(req, sizeof(req) - 1, 0, head, sizeof(head));
	FUZZ_CHECK(n > 0 && strncmp(head, "HTTP/1.1 200", 12) == 0,
		   "the server stopped answering GET /v2/ (got %zd bytes: \"%s\")", n, head);
	wait_closed();
}

/* The input with every PLACEHOLDER replaced by the id of a fresh upload session. */
static char *substitute(const uint8_t *data, size_t size, size_t *out_len)
{
	const size_t plen = strlen(PLACEHOLDER);
	char uuid[37] = "";
	size_t count = 0;
	for (size_t i = 0; i + plen <= size; i++)
		if (memcmp(data + i, PLACEHOLDER, plen) == 0)
			count++, i += plen - 1;
	char *out = malloc(size + count * (36 - plen) + 1);
	if (!out)
		abort();
	if (count && berth_upload_create(reg, REPO, uuid) != 0)
		abort();
	size_t w = 0;
	for (size_t i = 0; i < size;) {
		if (count && i + plen <= size && memcmp(data + i, PLACEHOLDER, plen) == 0) {
			memcpy(out + w, uuid, 36);
			w += 36;
			i += plen;
		} else {
			out[w++] = (char)data[i++];
		}
	}
	*out_len = w;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char head[64];
	if (++iter % RESET_EVERY == 0) {
		stop();
		start();
	} else {
		ensure_fixtures();
	}
	size_t len;
	char *req = substitute(data, size, &len);
	int64_t t0 = now_ms();
	ssize_t n = exchange(req, len, 1, head, sizeof(head));
	FUZZ_CHECK(n >= 0, "no answer and no close within %d ms (%ld bytes unread when half-closed)",
		   HTTP_DEADLINE_MS, unread_at_shutdown);
	wait_closed();
	FUZZ_CHECK(n == 0 || strncmp(head, "HTTP/1.", n < 7 ? (size_t)n : 7) == 0,
		   "not an HTTP answer: \"%s\"", head);
	if (verbose) {
		char *eol = strpbrk(head, "\r\n");
		if (eol)
			*eol = '\0';
		fprintf(stderr, "fuzz_http: %lld ms, %zd bytes: %s\n", (long long)(now_ms() - t0), n,
			n ? head : "(closed)");
	}
	free(req);
	if (iter % PROBE_EVERY == 0)
		probe();
	return 0;
}

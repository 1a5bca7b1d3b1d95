#include "http/health.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/periodic.h"
#include "core/util.h"

#define MAX_CHECKS 128
#define DEFAULT_INTERVAL_MS 10000

enum check_kind { CHECK_CALLBACK, CHECK_FILE, CHECK_HTTP, CHECK_TCP };

struct check {
	enum check_kind kind;
	char *name;                          /* the report's key */
	char *target;                        /* file path, URI or address */
	berth_health_check_fn fn;            /* callback */
	void *payload;                       /* callback */
	struct curl_slist *headers;          /* http */
	long statuscode;                     /* http */
	int64_t timeout_ms, interval_ms, threshold;
	_Atomic int ok;
	pthread_mutex_t lock; /* guards error and failures */
	char error[256];      /* the last failure's message */
	int64_t failures;     /* in a row */
	struct berth_periodic *task;
};

struct berth_health {
	struct check *checks[MAX_CHECKS];
	size_t n;
	int curl_ready; /* curl_global_init done, to be undone at stop */
};

/* Allocations outside berth_malloc (libcurl's, jansson's) fail the way berth_malloc does. */
static void *must(void *p)
{
	if (!p) {
		fputs("berth: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* ---- the checks: 0, or -1 with a message (core/err.h) ---- */


static int check_file(struct check *c)
{
	struct stat st;
	if (stat(c->target, &st) == 0) {
		berth_err_set(BERTH_ERROR, "file exists");
		return BERTH_ERROR;
	}
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	berth_err_set(BERTH_ERROR, "%s: %s", c->target, strerror(errno));
	return BERTH_ERROR;
}

static int check_http(struct check *c)
{
	CURL *curl = curl_easy_init();
	long status = 0;
	if (!curl) {
		berth_err_set(BERTH_ERROR, "%s: cannot start an HTTP request", c->target);
		return BERTH_ERROR;
	}
	curl_easy_setopt(curl, CURLOPT_URL, c->target);
	curl_easy_setopt(curl, CURLOPT_NOBODY, 1L); /* HEAD, as Distribution's check */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	CURLcode rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	if (rc != CURLE_OK) {
		berth_err_set(BERTH_ERROR, "%s: error while checking: %s", c->target, curl_easy_strerror(rc));
		return BERTH_ERROR;
	}
	if (status != c->statuscode) {
		berth_err_set(BERTH_ERROR, "%s: downstream service returned unexpected status: %ld", c->target, status);
		return BERTH_ERROR;
	}
	return 0;
}

/* Connects to one address within timeout_ms: 0, or an errno. */
static int connect_within(const struct addrinfo *ai, int64_t timeout_ms)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	int e = 0;
	socklen_t len = sizeof(e);
	if (fd < 0)
		return errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			e = errno;
		} else {
			struct pollfd p = { fd, POLLOUT, 0 };
			int r = poll(&p, 1, (int)(timeout_ms > INT32_MAX ? INT32_MAX : timeout_ms));
			if (r == 0)
				e = ETIMEDOUT;
			else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
		}
	}
	close(fd);
	return e;
}

/* "host:port" or "[v6]:port" into host and port. */
static int split_addr(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || !colon[1] || strlen(colon + 1) >= pn)
		return BERTH_ERROR;
	const char *h = addr;
	size_t len = (size_t)(colon - addr);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len >= hn)
		return BERTH_ERROR;
	memcpy(host, h, len);
	host[len] = '\0';
	snprintf(port, pn, "%s", colon + 1);
	return 0;
}

static int check_tcp(struct check *c)
{
	char host[256], port[32];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int e = ECONNREFUSED;
	if (split_addr(c->target, host, sizeof(host), port, sizeof(port)) < 0) {
		berth_err_set(BERTH_ERROR, "%s: connection failed: not a host:port address", c->target);
		return BERTH_ERROR;
	}
	int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (g != 0) {
		berth_err_set(BERTH_ERROR, "%s: connection failed: %s", c->target, gai_strerror(g));
		return BERTH_ERROR;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if ((e = connect_within(ai, c->timeout_ms)) == 0)
			break;
	freeaddrinfo(res);
	if (e) {
		berth_err_set(BERTH_ERROR, "%s: connection failed: %s", c->target, strerror(e));
		return BERTH_ERROR;
	}
	return 0;
}

/* One run: the check, then its state (Distribution's threshold updater). */
static void run_check(void *arg)
{
	struct check *c = arg;
	int rc;
	berth_err_clear();
	switch (c->kind) {
	case CHECK_CALLBACK: rc = c->fn(c->payload); break;
	case CHECK_FILE: rc = check_file(c); break;
	case CHECK_HTTP: rc = check_http(c); break;
	default: rc = check_tcp(c); break;
	}
	pthread_mutex_lock(&c->lock);
	if (rc < 0) {
		c->failures++;
		snprintf(c->error, sizeof(c->error), "%s", berth_err_reason(rc));
		if (c->failures >= (c->threshold > 0 ? c->threshold : 1))
			atomic_store(&c->ok, 0);
	} else {
		c->failures = 0;
		atomic_store(&c->ok, 1);
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- set-up ---- */

struct berth_health *berth_health_new(void)
{
	return berth_calloc(1, sizeof(struct berth_health));
}

static struct check *add(struct berth_health *h, enum check_kind kind, const char *name, const char *target,
			 int64_t timeout_ms, int64_t interval_ms, int64_t threshold)
{
	if (h->n == MAX_CHECKS) {
		berth_warn("health: more than %d checks; %s is not checked", MAX_CHECKS, name);
		return NULL;
	}
	struct check *c = berth_calloc(1, sizeof(*c));
	c->kind = kind;
	c->name = berth_strdup(name);
	c->target = target ? berth_strdup(target) : NULL;
	c->interval_ms = interval_ms > 0 ? interval_ms : DEFAULT_INTERVAL_MS;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : c->interval_ms;
	c->threshold = threshold;
	atomic_init(&c->ok, 1);
	pthread_mutex_init(&c->lock, NULL);
	h->checks[h->n++] = c;
	return c;
}

void berth_health_add_check(struct berth_health *h, const char *name, berth_health_check_fn fn,
			    void *payload, int64_t interval_ms, int64_t threshold)
{
	struct check *c = add(h, CHECK_CALLBACK, name, NULL, 0, interval_ms, threshold);
	if (c) {
		c->fn = fn;
		c->payload = payload;
	}
}

void berth_health_add_file(struct berth_health *h, const char *path, int64_t interval_ms)
{
	add(h, CHECK_FILE, path, path, 0, interval_ms, 0);
}

void berth_health_add_http(struct berth_health *h, const char *uri, const char *const *headers, size_t n,
			   long statuscode, int64_t timeout_ms, int64_t interval_ms, int64_t threshold)
{
	struct check *c = add(h, CHECK_HTTP, uri, uri, timeout_ms, interval_ms, threshold);
	if (!c)
		return;
	c->statuscode = statuscode ? statuscode : 200;
	for (size_t i = 0; i < n; i++) {
		c->headers = must(curl_slist_append(c->headers, headers[i]));
	}
}

void berth_health_add_tcp(struct berth_health *h, const char *addr, int64_t timeout_ms, int64_t interval_ms,
			  int64_t threshold)
{
	add(h, CHECK_TCP, addr, addr, timeout_ms, interval_ms, threshold);
}

int berth_health_start(struct berth_health *h)
{
	/* libcurl's global set-up, once, before any check's thread can make a request. */
	for (size_t i = 0; i < h->n && !h->curl_ready; i++)
		if (h->checks[i]->kind == CHECK_HTTP && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
			h->curl_ready = 1;
	for (size_t i = 0; i < h->n; i++) {
		struct check *c = h->checks[i];
		if (berth_periodic_start(&c->task, 0, c->interval_ms, run_check, c) < 0)
			return BERTH_ERROR;
	}
	return 0;
}

void berth_health_stop(struct berth_health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		struct check *c = h->checks[i];
		berth_periodic_stop(c->task);
		pthread_mutex_destroy(&c->lock);
		curl_slist_free_all(c->headers);
		free(c->name);
		free(c->target);
		free(c);
	}
	if (h->curl_ready)
		curl_global_cleanup();
	free(h);
}

int berth_health_ok(const struct berth_health *h)
{
	for (size_t i = 0; h && i < h->n; i++)
		if (!atomic_load(&h->checks[i]->ok))
			return 0;
	return 1;
}

char *berth_health_report(struct berth_health *h)
{
	json_t *o = json_object();
	for (size_t i = 0; h && i < h->n; i++) {
		struct check *c = h->checks[i];
		if (atomic_load(&c->ok))
			continue;
		pthread_mutex_lock(&c->lock);
		json_object_set_new(o, c->name, json_string(c->error));
		pthread_mutex_unlock(&c->lock);
	}
	char *body = must(json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS));
	json_decref(o);
	return body;
}

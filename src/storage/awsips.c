/*
 * AWS's IP ranges for cloudfront's ipfilteredby (storage/awsips.h): fetched with libcurl on a
 * thread of their own, held as network/prefix pairs under a lock, matched per request.
 */
#include "storage/awsips.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

/* AWS's file is about 2 MB; a bigger answer is not the ranges. */
#define MAX_BODY (64u << 20)
#define CONNECT_TIMEOUT_MS 10000L
#define FETCH_TIMEOUT_MS 60000L

struct net {
	unsigned char addr[16]; /* IPv4 in the first 4 bytes */
	unsigned bits;
};

struct nets {
	struct net *v;
	size_t n, cap;
};

struct berth_awsips {
	char *url;
	int64_t update_ms;
	char **regions; /* lowercase, trimmed; NULL-terminated; NULL: every region */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct nets v4, v6; /* under lock */
	int stop;           /* under lock */
	int started;
	pthread_t thread;
};

static void nets_add(struct nets *s, const unsigned char *addr, size_t len, unsigned bits)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = berth_realloc(s->v, s->cap * sizeof(*s->v));
	}
	memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
	memcpy(s->v[s->n].addr, addr, len);
	s->v[s->n++].bits = bits;
}

/* "a.b.c.d/n" or "x::y/n" into addr (4 or 16 bytes). 0, or -1. */
static int parse_cidr(const char *s, int v6, unsigned char *addr, unsigned *bits)
{
	char host[64];
	const char *slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(slash - s));
	host[slash - s] = '\0';
	char *end;
	unsigned long b = strtoul(slash + 1, &end, 10);
	if (slash[1] < '0' || slash[1] > '9' || *end || b > (v6 ? 128u : 32u))
		return -1;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
		return -1;
	*bits = (unsigned)b;
	return 0;
}

static int region_wanted(const struct berth_awsips *ips, const char *region)
{
	if (!ips->regions)
		return 1;
	for (char **r = ips->regions; *r; r++)
		if (strcasecmp(*r, region) == 0)
			return 1;
	return 0;
}

/* One of the document's lists (key, with field holding each prefix) into out. */
static int add_list(struct nets *out, const struct berth_awsips *ips, json_t *doc, const char *key,
		    const char *field, int v6)
{
	json_t *list = json_object_get(doc, key), *e;
	size_t i;
	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return -1;
	json_array_foreach(list, i, e) {
		const char *prefix = json_string_value(json_object_get(e, field));
		const char *region = json_string_value(json_object_get(e, "region"));
		unsigned char addr[16];
		unsigned bits;
		if (!prefix || parse_cidr(prefix, v6, addr, &bits) < 0) {
			berth_warn("cloudfront: ipfilteredby: unparseable range '%s' in %s", prefix ? prefix : "?",
				   ips->url);
			continue;
		}
		if (region_wanted(ips, region ? region : ""))
			nets_add(out, addr, v6 ? 16 : 4, bits);
	}
	return 0;
}

int berth_awsips_load(struct berth_awsips *ips, const char *json, size_t len)
{
	json_t *doc = json_loadb(json, len, 0, NULL);
	struct nets v4 = { 0 }, v6 = { 0 };
	int rc = json_is_object(doc) && add_list(&v4, ips, doc, "prefixes", "ip_prefix", 0) == 0 &&
			 add_list(&v6, ips, doc, "ipv6_prefixes", "ipv6_prefix", 1) == 0
		 ? 0 : BERTH_EINVALID;
	json_decref(doc);
	if (rc == 0) {
		pthread_mutex_lock(&ips->lock);
		struct nets old4 = ips->v4, old6 = ips->v6;
		ips->v4 = v4;
		ips->v6 = v6;
		pthread_mutex_unlock(&ips->lock);
		v4 = old4;
		v6 = old6;
	}
	free(v4.v);
	free(v6.v);
	return rc;
}

static int in_net(const struct net *n, const unsigned char *a)
{
	unsigned full = n->bits / 8, rest = n->bits % 8;
	if (memcmp(n->addr, a, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (n->addr[full] & mask) == (a[full] & mask);
}

int berth_awsips_contains(struct berth_awsips *ips, const char *ip)
{
	unsigned char a[16];
	int v6 = 0;
	if (inet_pton(AF_INET, ip, a) != 1) {
		if (inet_pton(AF_INET6, ip, a) != 1)
			return 0;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, 12) == 0) /* ::ffff:a.b.c.d is IPv4, as Go's To4 says */
			memmove(a, a + 12, 4);
		else
			v6 = 1;
	}
	int found = 0;
	pthread_mutex_lock(&ips->lock);
	const struct nets *s = v6 ? &ips->v6 : &ips->v4;
	for (size_t i = 0; !found && i < s->n; i++)
		found = in_net(&s->v[i], a);
	pthread_mutex_unlock(&ips->lock);
	return found;
}

/* ---- fetching ------------------------------------------------------------------------------ */

static size_t collect(char *p, size_t size, size_t n, void *payload)
{
	struct berth_buf *b = payload;
	return berth_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* One fetch of the ranges; a failure is logged. */
static void update(struct berth_awsips *ips)
{
	CURL *curl = curl_easy_init();
	struct berth_buf body = BERTH_BUF_INIT(MAX_BODY);
	long status = 0;
	if (!curl) {
		berth_warn("cloudfront: ipfilteredby: cannot fetch %s: no curl handle", ips->url);
		return;
	}
	curl_easy_setopt(curl, CURLOPT_URL, ips->url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, FETCH_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	CURLcode cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	if (cc != CURLE_OK)
		berth_warn("cloudfront: ipfilteredby: cannot fetch %s: %s", ips->url, curl_easy_strerror(cc));
	else if (status != 200)
		berth_warn("cloudfront: ipfilteredby: cannot fetch %s: status %ld", ips->url, status);
	else if (berth_awsips_load(ips, body.data ? body.data : "", body.len) < 0)
		berth_warn("cloudfront: ipfilteredby: %s holds no AWS IP ranges", ips->url);
	else
		berth_info("cloudfront: ipfilteredby: %zu IPv4 and %zu IPv6 ranges from %s", ips->v4.n,
			   ips->v6.n, ips->url);
	berth_buf_release(&body);
}

static void *updater(void *arg)
{
	struct berth_awsips *ips = arg;
	pthread_mutex_lock(&ips->lock);
	while (!ips->stop) {
		struct timespec until = berth_monotonic_after_ms(ips->update_ms);
		int rc = 0;
		while (!ips->stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&ips->wake, &ips->lock, &until);
		if (ips->stop)
			break;
		pthread_mutex_unlock(&ips->lock);
		update(ips);
		pthread_mutex_lock(&ips->lock);
	}
	pthread_mutex_unlock(&ips->lock);
	return NULL;
}

/* "us-east-1, EU-west-1" into a NULL-terminated list of trimmed, lowercased names. */
static char **split_regions(const char *s)
{
	size_t n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	char **v = berth_calloc(n + 1, sizeof(*v));
	size_t i = 0;
	for (const char *p = s;; p++) {
		size_t len = strcspn(p, ",");
		const char *b = p, *e = p + len;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		v[i] = berth_strndup(b, (size_t)(e - b));
		for (char *c = v[i]; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
		i++;
		p += len;
		if (*p == '\0')
			break;
	}
	return v;
}

int berth_awsips_new(struct berth_awsips **out, const char *url, int64_t update_ms, const char *regions)
{
	struct berth_awsips *ips = berth_calloc(1, sizeof(*ips));
	ips->url = berth_strdup(url);
	ips->update_ms = update_ms > 0 ? update_ms : 1;
	ips->regions = regions && regions[0] ? split_regions(regions) : NULL;
	pthread_mutex_init(&ips->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ips->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (url[0])
		update(ips);
	if (pthread_create(&ips->thread, NULL, updater, ips) == 0)
		ips->started = 1;
	else
		berth_warn("cloudfront: ipfilteredby: cannot start the updater: the ranges stay as fetched");
	*out = ips;
	return 0;
}

void berth_awsips_free(struct berth_awsips *ips)
{
	if (!ips)
		return;
	if (ips->started) {
		pthread_mutex_lock(&ips->lock);
		ips->stop = 1;
		pthread_cond_signal(&ips->wake);
		pthread_mutex_unlock(&ips->lock);
		pthread_join(ips->thread, NULL);
	}
	pthread_cond_destroy(&ips->wake);
	pthread_mutex_destroy(&ips->lock);
	if (ips->regions) {
		for (char **r = ips->regions; *r; r++)
			free(*r);
		free(ips->regions);
	}
	free(ips->v4.v);
	free(ips->v6.v);
	free(ips->url);
	free(ips);
}

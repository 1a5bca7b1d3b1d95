/* Notification endpoints: filtering, queueing and delivery threads. */
#include "notify/notify.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "notify/queue.h"

#define STATUS_MAX 600

struct endpoint {
	const struct berth_notify_endpoint *cfg; /* borrowed from the config (process lifetime) */
	struct curl_slist *headers;
	struct berth_notify_queue *queue;
	pthread_t thread;
	int started;
	atomic_int stop;
	_Atomic uint64_t events, successes, failures, errors;
	_Atomic uint64_t statuses[STATUS_MAX];
};

struct berth_notify {
	int include_references;
	char instance_id[37];
	char *source_addr;
	size_t n;
	struct endpoint *endpoints;
};

/* The running notifier, for the metrics endpoint (render callbacks take no payload). */
static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct berth_notify *metrics_of;

static int listed(const struct berth_strlist *l, const char *s)
{
	for (size_t i = 0; s && i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

/* Distribution's ignoredSink: by target media type (either key) or by action. */
static int ignores(const struct berth_notify_endpoint *e, const struct berth_notify_event *ev)
{
	return listed(&e->ignore_actions, ev->action) || listed(&e->ignoredmediatypes, ev->media_type) ||
	       listed(&e->ignore_mediatypes, ev->media_type);
}

/* Go's time.Time JSON form (RFC 3339 with nanoseconds, trailing zeros trimmed), in UTC. */
static void timestamp_now(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	char frac[16] = "";
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (ts.tv_nsec) {
		snprintf(frac, sizeof(frac), ".%09ld", ts.tv_nsec);
		for (size_t i = strlen(frac); i > 1 && frac[i - 1] == '0'; i--)
			frac[i - 1] = '\0';
	}
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static void set_str(json_t *o, const char *key, const char *v, int omitempty)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
	else if (!omitempty)
		json_object_set_new(o, key, json_string(""));
}

char *berth_notify_event_json(const struct berth_notify *n, const struct berth_notify_event *ev)
{
	char id[37], ts[48];
	berth_uuid4(id);
	timestamp_now(ts, sizeof(ts));
	json_t *o = json_object(), *target = json_object(), *req = json_object(),
	       *actor = json_object(), *source = json_object();
	set_str(o, "id", id, 1);
	set_str(o, "timestamp", ts, 0);
	set_str(o, "action", ev->action, 1);
	/* target: Distribution 2.8's descriptor leaves out an empty mediaType, size and digest
	 * (a delete event has only the digest or the tag) */
	set_str(target, "mediaType", ev->media_type, 1);
	if (ev->size > 0)
		json_object_set_new(target, "size", json_integer(ev->size));
	set_str(target, "digest", ev->digest, 1);
	if (ev->size > 0)
		json_object_set_new(target, "length", json_integer(ev->size));
	set_str(target, "repository", ev->repository, 1);
	set_str(target, "fromRepository", ev->from_repository, 1);
	set_str(target, "url", ev->url, 1);
	set_str(target, "tag", ev->tag, 1);
	if (ev->references_json) {
		json_t *refs = json_loads(ev->references_json, 0, NULL);
		if (json_is_array(refs) && json_array_size(refs) > 0)
			json_object_set(target, "references", refs);
		json_decref(refs);
	}
	json_object_set_new(o, "target", target);
	set_str(req, "id", ev->request_id, 0);
	set_str(req, "addr", ev->request_addr, 1);
	set_str(req, "host", ev->request_host, 1);
	set_str(req, "method", ev->request_method, 0);
	set_str(req, "useragent", ev->request_useragent, 0);
	json_object_set_new(o, "request", req);
	set_str(actor, "name", ev->actor, 1);
	json_object_set_new(o, "actor", actor);
	set_str(source, "addr", n ? n->source_addr : NULL, 1);
	set_str(source, "instanceID", n ? n->instance_id : NULL, 1);
	json_object_set_new(o, "source", source);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return NULL;
	char *copy = berth_strdup(text); /* one allocator for the caller to free */
	free(text);
	return copy;
}

void berth_notify_emit(struct berth_notify *n, const struct berth_notify_event *ev)
{
	if (!n)
		return;
	char *text = NULL;
	for (size_t i = 0; i < n->n; i++) {
		struct endpoint *e = &n->endpoints[i];
		if (ignores(e->cfg, ev))
			continue;
		if (!text && !(text = berth_notify_event_json(n, ev)))
			return;
		atomic_fetch_add(&e->events, 1);
		if (berth_notify_queue_append(e->queue, text, strlen(text)) < 0) {
			atomic_fetch_add(&e->errors, 1);
			berth_error("notifications: endpoint '%s': cannot queue a %s event for '%s'",
				    e->cfg->name, ev->action, ev->repository ? ev->repository : "");
		}
	}
	free(text);
}

int berth_notify_include_references(const struct berth_notify *n)
{
	return n && n->include_references;
}

static size_t discard_body(char *p, size_t size, size_t nmemb, void *payload)
{
	(void)p;
	(void)payload;
	return size * nmemb;
}

/* Aborts a transfer under way when berth stops: the event stays queued (on disk, for the next
 * start), and shutdown does not wait for a slow endpoint's timeout. */
static int abort_on_stop(void *payload, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct endpoint *e = payload;
	return atomic_load(&e->stop) ? 1 : 0;
}

/* POSTs one envelope. 0 on a 2xx/3xx answer (as Distribution's httpSink), else BERTH_ERROR. */
static int post_event(struct endpoint *e, const char *event, size_t n)
{
	struct berth_buf body = BERTH_BUF_INIT(n + 32);
	berth_buf_printf(&body, "{\"events\":[%.*s]}", (int)n, event);
	CURL *c = curl_easy_init();
	if (!c) {
		berth_buf_release(&body);
		atomic_fetch_add(&e->errors, 1);
		return BERTH_ERROR;
	}
	long timeout = e->cfg->timeout_ms > 0 ? (long)e->cfg->timeout_ms : 1000;
	curl_easy_setopt(c, CURLOPT_URL, e->cfg->url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "berth-notifications");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, e);
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	berth_buf_release(&body);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return BERTH_ERROR;
	if (cc != CURLE_OK) {
		atomic_fetch_add(&e->errors, 1);
		berth_warn("notifications: endpoint '%s': cannot post to %s: %s", e->cfg->name, e->cfg->url,
			   curl_easy_strerror(cc));
		return BERTH_ERROR;
	}
	if (status > 0 && status < STATUS_MAX)
		atomic_fetch_add(&e->statuses[status], 1);
	if (status >= 200 && status < 400) {
		atomic_fetch_add(&e->successes, 1);
		return 0;
	}
	atomic_fetch_add(&e->failures, 1);
	berth_warn("notifications: endpoint '%s': %s answered %ld", e->cfg->name, e->cfg->url, status);
	return BERTH_ERROR;
}

/* Sleeps up to ms unless stopping. */
static void pause_ms(struct endpoint *e, int64_t ms)
{
	while (ms > 0 && !atomic_load(&e->stop)) {
		int64_t step = ms < 100 ? ms : 100;
		struct timespec ts = { (time_t)(step / 1000), (long)(step % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* The delivery loop: the oldest event until it is accepted, then the next (go-events'
 * RetryingSink with a Breaker: after threshold failures in a row, backoff between tries). */
static void *deliver(void *arg)
{
	struct endpoint *e = arg;
	int64_t failures = 0;
	while (!atomic_load(&e->stop)) {
		if (!berth_notify_queue_wait(e->queue, 500))
			continue;
		char *event = NULL;
		size_t n = 0;
		if (berth_notify_queue_peek(e->queue, &event, &n) < 0) {
			pause_ms(e, 1000);
			continue;
		}
		int delivered = post_event(e, event, n) == 0;
		free(event);
		if (delivered) {
			failures = 0;
			berth_notify_queue_ack(e->queue);
		}
		berth_notify_queue_compact(e->queue); /* dead prefix: delivered or dropped */
		if (!delivered && ++failures >= e->cfg->threshold)
			pause_ms(e, e->cfg->backoff_ms);
	}
	return NULL;
}

/* An endpoint name as a Prometheus label value: backslash, quote and newline escaped. */
static void label_value(char *out, size_t cap, const char *s)
{
	size_t o = 0;
	for (; *s && o + 3 < cap; s++) {
		if (*s == '\\' || *s == '"')
			out[o++] = '\\', out[o++] = *s;
		else if (*s == '\n')
			out[o++] = '\\', out[o++] = 'n';
		else
			out[o++] = *s;
	}
	out[o] = '\0';
}

static void render_metrics(struct berth_buf *out)
{
	char name[520];
	pthread_mutex_lock(&metrics_mu);
	struct berth_notify *n = metrics_of;
	if (!n) {
		pthread_mutex_unlock(&metrics_mu);
		return;
	}
	berth_buf_printf(out, "# HELP berth_notifications_events_total Notification events per endpoint "
			      "(events queued, successes, failures, errors, dropped by the queue bound).\n"
			      "# TYPE berth_notifications_events_total counter\n");
	for (size_t i = 0; i < n->n; i++) {
		struct endpoint *e = &n->endpoints[i];
		label_value(name, sizeof(name), e->cfg->name);
		berth_buf_printf(out,
				 "berth_notifications_events_total{endpoint=\"%s\",type=\"events\"} %" PRIu64 "\n"
				 "berth_notifications_events_total{endpoint=\"%s\",type=\"successes\"} %" PRIu64 "\n"
				 "berth_notifications_events_total{endpoint=\"%s\",type=\"failures\"} %" PRIu64 "\n"
				 "berth_notifications_events_total{endpoint=\"%s\",type=\"errors\"} %" PRIu64 "\n"
				 "berth_notifications_events_total{endpoint=\"%s\",type=\"dropped\"} %" PRIu64 "\n",
				 name, atomic_load(&e->events), name, atomic_load(&e->successes), name,
				 atomic_load(&e->failures), name, atomic_load(&e->errors), name,
				 berth_notify_queue_dropped(e->queue));
	}
	berth_buf_printf(out, "# HELP berth_notifications_pending Events queued and not yet delivered.\n"
			      "# TYPE berth_notifications_pending gauge\n");
	for (size_t i = 0; i < n->n; i++) {
		label_value(name, sizeof(name), n->endpoints[i].cfg->name);
		berth_buf_printf(out, "berth_notifications_pending{endpoint=\"%s\"} %" PRIu64 "\n",
				 name, berth_notify_queue_pending(n->endpoints[i].queue));
	}
	berth_buf_printf(out, "# HELP berth_notifications_status_total Endpoint answers by HTTP status.\n"
			      "# TYPE berth_notifications_status_total counter\n");
	for (size_t i = 0; i < n->n; i++) {
		label_value(name, sizeof(name), n->endpoints[i].cfg->name);
		for (int s = 0; s < STATUS_MAX; s++) {
			uint64_t v = atomic_load(&n->endpoints[i].statuses[s]);
			if (v)
				berth_buf_printf(out, "berth_notifications_status_total{endpoint=\"%s\",code=\"%d\"} %" PRIu64 "\n",
						 name, s, v);
		}
	}
	pthread_mutex_unlock(&metrics_mu);
}

/* An endpoint name as a file name part: [A-Za-z0-9._-] kept, anything else %XX. */
static void queue_name(char *out, size_t cap, const char *name)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < cap; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || (*p == '.' && p != (const unsigned char *)name))
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
	}
	out[o] = '\0';
}

static int open_endpoint(struct endpoint *e, const struct berth_config *cfg)
{
	const struct berth_notify_endpoint *c = e->cfg;
	char qname[800];
	if (!c->url[0] || (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0)) {
		berth_err_set(BERTH_ERROR, "notifications.endpoints: '%s': url must be an http or https URL",
			      c->name);
		return BERTH_ERROR;
	}
	queue_name(qname, sizeof(qname), c->name[0] ? c->name : "endpoint");
	if (berth_notify_queue_open(&e->queue, cfg->notifications.queuedir[0] ? cfg->notifications.queuedir : NULL,
				    qname, (uint64_t)cfg->notifications.queuemaxbytes) < 0)
		return BERTH_ERROR;
	e->headers = curl_slist_append(NULL, "Content-Type: " BERTH_NOTIFY_MEDIA_TYPE);
	e->headers = curl_slist_append(e->headers, "Expect:");
	for (size_t i = 0; i < c->headers.n; i++)
		for (size_t j = 0; j < c->headers.v[i].values.n; j++) {
			char *h = berth_asprintf("%s: %s", c->headers.v[i].name, c->headers.v[i].values.v[j]);
			e->headers = curl_slist_append(e->headers, h);
			free(h);
		}
	return 0;
}

int berth_notify_start(struct berth_notify **out, const struct berth_config *cfg,
		       const char *source_addr)
{
	*out = NULL;
	size_t enabled = 0;
	for (size_t i = 0; i < cfg->notifications.n_endpoints; i++)
		enabled += !cfg->notifications.endpoints[i].disabled;
	if (!enabled)
		return 0;
	for (size_t i = 0; i < cfg->notifications.n_endpoints; i++)
		for (size_t j = 0; j < i; j++)
			if (!cfg->notifications.endpoints[i].disabled && !cfg->notifications.endpoints[j].disabled &&
			    strcmp(cfg->notifications.endpoints[i].name, cfg->notifications.endpoints[j].name) == 0) {
				berth_err_set(BERTH_ERROR, "notifications.endpoints: two endpoints are named '%s'",
					      cfg->notifications.endpoints[i].name);
				return BERTH_ERROR;
			}
	curl_global_init(CURL_GLOBAL_DEFAULT); /* reference counted; undone in berth_notify_stop */
	struct berth_notify *n = berth_calloc(1, sizeof(*n));
	n->include_references = cfg->notifications.includereferences;
	n->source_addr = berth_strdup(source_addr ? source_addr : "");
	berth_uuid4(n->instance_id);
	n->endpoints = berth_calloc(enabled, sizeof(*n->endpoints));
	for (size_t i = 0; i < cfg->notifications.n_endpoints; i++) {
		if (cfg->notifications.endpoints[i].disabled)
			continue;
		struct endpoint *e = &n->endpoints[n->n++];
		e->cfg = &cfg->notifications.endpoints[i];
		if (open_endpoint(e, cfg) < 0)
			goto out_free;
	}
	for (size_t i = 0; i < n->n; i++) {
		struct endpoint *e = &n->endpoints[i];
		if (pthread_create(&e->thread, NULL, deliver, e) != 0) {
			berth_err_set(BERTH_ERROR, "notifications: cannot start a delivery thread");
			goto out_free;
		}
		e->started = 1;
		berth_info("notifications: endpoint '%s' delivers to %s (%s queue, %" PRIu64 " pending)",
			   e->cfg->name, e->cfg->url, cfg->notifications.queuedir[0] ? "on-disk" : "in-memory",
			   berth_notify_queue_pending(e->queue));
	}
	pthread_mutex_lock(&metrics_mu);
	metrics_of = n;
	pthread_mutex_unlock(&metrics_mu);
	berth_metrics_register(render_metrics);
	*out = n;
	return 0;
out_free:
	berth_notify_stop(n);
	return BERTH_ERROR;
}

void berth_notify_stop(struct berth_notify *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&metrics_mu);
	if (metrics_of == n)
		metrics_of = NULL;
	pthread_mutex_unlock(&metrics_mu);
	for (size_t i = 0; i < n->n; i++) {
		atomic_store(&n->endpoints[i].stop, 1);
		if (n->endpoints[i].queue)
			berth_notify_queue_wake(n->endpoints[i].queue);
	}
	for (size_t i = 0; i < n->n; i++) {
		struct endpoint *e = &n->endpoints[i];
		if (e->started)
			pthread_join(e->thread, NULL);
		berth_notify_queue_free(e->queue);
		curl_slist_free_all(e->headers);
	}
	free(n->endpoints);
	free(n->source_addr);
	free(n);
	curl_global_cleanup();
}

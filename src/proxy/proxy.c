/* The pull-through cache: manifests, tags and blob sizes (proxy/proxy.h); blob transfers are
 * in fetch.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "proxy/proxy_int.h"
#include "registry/manifest.h"
#include "registry/reference.h"

#define JOB_THREADS 8
#define FETCH_THREADS 32
/* A blob fetched is stored on threads this much nicer than serving (its new files, writes and
 * syncs come after the clients' answers): on a busy machine the pulls under way go first. Not
 * SCHED_IDLE: a store holds the repository's locks for a moment, and must get the CPU. Each
 * store has its fetch thread waiting for it, which bounds what waits to be stored. */
#define STORE_THREADS 8
#define STORE_NICE 10
#define MANIFEST_TIMEOUT_MS 60000L
#define TAGS_MAX (4u << 20) /* the largest tag list taken from an upstream */

struct berth_proxy_stats berth_proxy_stats;

/* Manifests answered and not stored yet (berth_proxy.pending): a pull asking for one meanwhile
 * (containerd's GET by digest after its HEAD by tag) is served from here, not fetched again. */
struct pending_entry {
	char *key; /* "<name>@<digest>" */
	struct berth_proxy_pending *pd;
};

static void render_metrics(struct berth_buf *out)
{
	struct berth_proxy_stats *s = &berth_proxy_stats;
	berth_buf_printf(out,
			 "# HELP berth_proxy_requests_total Pulls through the cache, by what and whether it was cached.\n"
			 "# TYPE berth_proxy_requests_total counter\n"
			 "berth_proxy_requests_total{kind=\"blob\",result=\"hit\"} %llu\n"
			 "berth_proxy_requests_total{kind=\"blob\",result=\"miss\"} %llu\n"
			 "berth_proxy_requests_total{kind=\"blob\",result=\"shared\"} %llu\n"
			 "berth_proxy_requests_total{kind=\"manifest\",result=\"hit\"} %llu\n"
			 "berth_proxy_requests_total{kind=\"manifest\",result=\"miss\"} %llu\n"
			 "# HELP berth_proxy_stale_tags_total Tags served from the cache because the upstream could not answer.\n"
			 "# TYPE berth_proxy_stale_tags_total counter\n"
			 "berth_proxy_stale_tags_total %llu\n"
			 "# HELP berth_proxy_prefetches_total Blob fetches started for a manifest fetched, before any client asked: started, joined by a client, failed.\n"
			 "# TYPE berth_proxy_prefetches_total counter\n"
			 "berth_proxy_prefetches_total{result=\"started\"} %llu\n"
			 "berth_proxy_prefetches_total{result=\"joined\"} %llu\n"
			 "berth_proxy_prefetches_total{result=\"failed\"} %llu\n",
			 (unsigned long long)atomic_load(&s->blob_hits), (unsigned long long)atomic_load(&s->blob_misses),
			 (unsigned long long)atomic_load(&s->blob_shared),
			 (unsigned long long)atomic_load(&s->manifest_hits),
			 (unsigned long long)atomic_load(&s->manifest_misses),
			 (unsigned long long)atomic_load(&s->stale_tags),
			 (unsigned long long)atomic_load(&s->prefetch_started),
			 (unsigned long long)atomic_load(&s->prefetch_joined),
			 (unsigned long long)atomic_load(&s->prefetch_failed));
	berth_upstream_render_metrics(out);
}

void berth_proxy_metrics_register(void)
{
	berth_metrics_register(render_metrics);
}

/* The scheduler's callback: what Distribution's OnBlobExpire / OnManifestExpire do. */
static int expire(enum berth_sched_type type, const char *name, const char *digest, void *payload)
{
	struct berth_proxy *p = payload;
	if (!berth_name_valid(name) || !berth_digest_valid(digest))
		return BERTH_EINVALID;
	return type == BERTH_SCHED_MANIFEST ? berth_manifest_expire(p->reg, name, digest)
					    : berth_blob_expire(p->reg, name, digest);
}

/* Docker Hub, whose single-name repositories are library/<name>: by the host of its registry
 * (the names Docker itself uses for it), or an upstream that serves docker.io/... */
static int is_docker_hub(const struct berth_proxy_upstream *u)
{
	static const char *const hosts[] = { "registry-1.docker.io", "index.docker.io", "docker.io",
					     "registry.hub.docker.com" };
	if (u->prefix && strcmp(u->prefix, "docker.io") == 0)
		return 1;
	char *host = berth_upstream_url_host(u->remoteurl ? u->remoteurl : "", 0);
	int found = 0;
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]) && !found; i++)
		found = strcasecmp(host, hosts[i]) == 0;
	free(host);
	return found;
}

static int add_route(struct berth_proxy_route *r, const struct berth_proxy_upstream *u, size_t i)
{
	const char *prefix = u->prefix ? u->prefix : "";
	if (prefix[0] && !berth_name_valid(prefix))
		return berth_err_set(BERTH_EINVALID, "proxy.upstreams[%zu].prefix: '%s' is not a repository name", i,
				     prefix);
	struct berth_upstream_config ucfg = { .url = u->remoteurl, .username = u->username, .password = u->password,
					      .label = prefix[0] ? prefix : NULL, .exec_command = u->exec_command,
					      .exec_lifetime_ms = u->exec_command ? u->exec_lifetime_ms : -1 };
	int rc = berth_upstream_new(&r->upstream, &ucfg);
	if (rc < 0) {
		if (prefix[0])
			berth_err_set(rc, "proxy.upstreams[%zu].remoteurl: %s", i, berth_err_message(rc));
		return rc;
	}
	r->prefix = berth_strdup(prefix);
	r->ttl_ms = u->ttl_ms;
	r->docker_hub = is_docker_hub(u);
	r->prefetch = u->prefetch;
	return 0;
}

/* One upstream's ping at start-up (berth_proxy_new), on a job thread. */
struct startup_ping {
	const atomic_int *stopping; /* the proxy's: set, the ping ends */
	struct berth_upstream *upstream;
};

/* Asks the upstream's /v2/ as Distribution's proxy does when it starts: the first pull then
 * finds its connection open and, behind a token server, asks its token before its first call
 * instead of after a 401. One try, unrecorded: a failure is said and changes nothing (pulls ask
 * as they would). */
static void ping_upstream(void *arg)
{
	struct startup_ping *job = arg;
	const char *label = berth_upstream_label(job->upstream);
	struct berth_upstream_result res;
	struct berth_upstream_call call = { .method = "GET", .path = "/v2/", .timeout_ms = MANIFEST_TIMEOUT_MS,
					    .cancel = job->stopping, .unrecorded = 1 };
	if (atomic_load(job->stopping)) {
		free(job);
		return;
	}
	int rc = berth_upstream_call(&res, job->upstream, &call);
	if (rc < 0 && atomic_load(job->stopping))
		berth_err_clear(); /* cancelled: nobody waits for its answer */
	else if (rc < 0)
		berth_warn("upstream %s: no answer to /v2/ at start-up (pulls will ask it again): %s", label,
			   berth_err_reason(rc));
	else
		berth_debug("upstream %s: /v2/ answered %ld at start-up", label, res.status);
	free(job);
}

/* Queues each upstream's ping on the job threads: start-up does not wait for it. */
static void ping_upstreams(struct berth_proxy *p)
{
	for (size_t i = 0; i < p->n_routes; i++) {
		struct startup_ping *job = berth_malloc(sizeof(*job));
		*job = (struct startup_ping){ .stopping = &p->stopping, .upstream = p->routes[i].upstream };
		if (berth_jobs_submit(p->jobs, ping_upstream, job) < 0)
			free(job); /* cannot be: the queue is empty */
	}
}

int berth_proxy_new(struct berth_proxy **out, const struct berth_proxy_config *cfg, struct berth_registry *reg)
{
	struct berth_proxy *p = berth_calloc(1, sizeof(*p));
	int rc = 0, expires = 0;
	p->reg = reg;
	p->inflight = (struct berth_map)BERTH_MAP_INIT(berth_proxy__inflight_entry_size, 0);
	pthread_mutex_init(&p->inflight_lock, NULL);
	p->pending = (struct berth_map)BERTH_MAP_INIT(sizeof(struct pending_entry), 0);
	pthread_mutex_init(&p->pending_lock, NULL);
	pthread_mutex_init(&p->marks_lock, NULL);
	p->routes = berth_calloc(cfg->n_upstreams ? cfg->n_upstreams : 1, sizeof(*p->routes));
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		if ((rc = add_route(&p->routes[i], &cfg->upstreams[i], i)) < 0)
			goto out_free;
		p->n_routes++;
		expires |= cfg->upstreams[i].ttl_ms > 0;
	}
	if (expires && (rc = berth_scheduler_start(&p->scheduler, berth_registry_driver(reg), expire, p)) < 0)
		goto out_free;
	if ((rc = berth_jobs_start(&p->jobs, JOB_THREADS, "proxy")) < 0 ||
	    (rc = berth_jobs_start(&p->fetches, FETCH_THREADS, "fetch")) < 0 ||
	    (rc = berth_jobs_start_nice(&p->stores, STORE_THREADS, "store", STORE_NICE)) < 0) {
		berth_err_set(rc, "cannot start the proxy's threads");
		goto out_free;
	}
	ping_upstreams(p);
	*out = p;
	return 0;
out_free:
	berth_proxy_free(p);
	return rc;
}

void berth_proxy_free(struct berth_proxy *p)
{
	if (!p)
		return;
	/* A start-up ping ends, and a prefetch holding for a reader gives up rather than hold the
	 * stop (for PREFETCH_HOLD_MS): set before the manifest jobs end, whose prefetches then see it. */
	atomic_store(&p->stopping, 1);
	berth_proxy__wake_prefetches(p);
	berth_jobs_stop(p->jobs);
	berth_jobs_stop(p->fetches);
	berth_jobs_stop(p->stores); /* last: the fetches wait for its jobs */
	berth_scheduler_stop(p->scheduler);
	for (size_t i = 0; i < p->n_routes; i++) {
		berth_upstream_free(p->routes[i].upstream);
		free(p->routes[i].prefix);
	}
	free(p->routes);
	berth_map_release(&p->inflight);
	pthread_mutex_destroy(&p->inflight_lock);
	berth_map_release(&p->pending); /* empty: the job threads stored everything */
	pthread_mutex_destroy(&p->pending_lock);
	pthread_mutex_destroy(&p->marks_lock);
	free(p);
}

/* The route whose prefix holds name (the one with prefix "" holds every name); NULL: none. */
static const struct berth_proxy_route *route_of(const struct berth_proxy *p, const char *name, const char **rest)
{
	for (size_t i = 0; i < p->n_routes; i++) {
		const struct berth_proxy_route *r = &p->routes[i];
		size_t n = strlen(r->prefix);
		if (n == 0) {
			*rest = name;
			return r;
		}
		if (strncmp(name, r->prefix, n) == 0 && name[n] == '/') {
			*rest = name + n + 1;
			return r;
		}
	}
	return NULL;
}

int berth_proxy__target(struct berth_proxy_target *out, const struct berth_proxy *p, const char *name)
{
	const char *rest = NULL;
	out->route = route_of(p, name, &rest);
	if (!out->route)
		return BERTH_ENOTFOUND;
	/* As Docker names them: "alpine" on Docker Hub is "library/alpine". */
	const char *library = out->route->docker_hub && !strchr(rest, '/') ? "library/" : "";
	int n = snprintf(out->remote, sizeof(out->remote), "%s%s", library, rest);
	return n < 0 || (size_t)n >= sizeof(out->remote) ? BERTH_ENOTFOUND : 0;
}

int berth_proxy_serves(const struct berth_proxy *p, const char *name)
{
	const char *rest;
	return route_of(p, name, &rest) != NULL;
}

int berth_proxy_ns_name(const struct berth_proxy *p, const char *ns, const char *name, char *out, size_t size)
{
	if (!ns || !ns[0])
		return 0;
	for (size_t i = 0; i < p->n_routes; i++) {
		const struct berth_proxy_route *r = &p->routes[i];
		if (!r->prefix[0] || (strcmp(r->prefix, ns) != 0 && !(r->docker_hub && strcmp(ns, "docker.io") == 0)))
			continue;
		int n = snprintf(out, size, "%s/%s", r->prefix, name);
		return n > 0 && (size_t)n < size && berth_name_valid(out);
	}
	return 0;
}

void berth_proxy_note_hit(struct berth_proxy *p, int blob)
{
	(void)p;
	atomic_fetch_add(blob ? &berth_proxy_stats.blob_hits : &berth_proxy_stats.manifest_hits, 1);
}

int berth_proxy_submit(struct berth_proxy *p, berth_job_fn fn, void *arg)
{
	return berth_jobs_submit(p->jobs, fn, arg);
}

/* ---- manifests ---- */

static int collect_body(const void *data, size_t n, void *payload)
{
	return berth_buf_append(payload, data, n) < 0 ? BERTH_ETOOLARGE : 0;
}

static void log_upstream_failure(const struct berth_proxy_target *t, const char *what, const char *name, const char *ref,
				 int rc, const struct berth_upstream_result *res)
{
	if (rc < 0)
		berth_warn("upstream %s: cannot get %s %s:%s: %s", berth_upstream_label(t->route->upstream), what, name, ref,
			   berth_err_reason(rc));
	else
		berth_warn("upstream %s: %s %s:%s answered %ld", berth_upstream_label(t->route->upstream), what, name, ref,
			   res->status);
}

/* A manifest fetched and verified, stored once its client has it (berth_proxy_manifest_store). */
struct berth_proxy_pending {
	char name[BERTH_NAME_MAX + 1];
	char reference[BERTH_TAG_MAX + BERTH_DIGEST_STR_MAX]; /* the tag to point at it, or its digest */
	char digest[BERTH_DIGEST_STR_MAX];
	char content_type[128]; /* "": the body's mediaType says */
	int64_t ttl_ms;
	struct berth_buf body;
	struct berth_strvec blobs; /* an image manifest's config and layers to prefetch (not the foreign
				    * ones); empty for an index */
};

/* The blobs of image manifest m a prefetch fetches: its config and its layers on the upstream
 * (foreign ones are not); none for an index. */
static void prefetchable_blobs(struct berth_strvec *out, const struct berth_manifest *m)
{
	if (m->kind != BERTH_MANIFEST_OCI_MANIFEST && m->kind != BERTH_MANIFEST_DOCKER_MANIFEST)
		return;
	berth_strvec_push(out, m->config.digest);
	for (size_t i = 0; i < m->n_layers; i++)
		if (!berth_descriptor_is_foreign(&m->layers[i]))
			berth_strvec_push(out, m->layers[i].digest);
}

/* The content type a fetched manifest parses with: the upstream's, else (a generic one such as
 * application/json, or none that fits) the body's mediaType, as storing it would take it.
 * 0, *ct (NULL: the body's) and the blobs a prefetch fetches added to blobs, or the parse error. */
static int fetched_content_type(const char **ct, struct berth_strvec *blobs, const struct berth_buf *body,
				const char *upstream_ct)
{
	struct berth_manifest *m = NULL;
	const char *data = body->data ? body->data : "";
	*ct = upstream_ct[0] && !berth_manifest_content_type_generic(upstream_ct) ? upstream_ct : NULL;
	int rc = berth_manifest_parse(&m, *ct, data, body->len);
	if (rc < 0 && *ct) {
		*ct = NULL;
		rc = berth_manifest_parse(&m, NULL, data, body->len);
	}
	if (rc == 0)
		prefetchable_blobs(blobs, m);
	berth_manifest_free(m);
	return rc == BERTH_EUNSUPPORTED ? BERTH_EINVALID : rc;
}

/* Stores what pd holds (the tag pointing at it) and schedules its expiry. */
static int store_fetched(struct berth_proxy *p, const struct berth_proxy_pending *pd)
{
	struct berth_manifest_put_result put;
	int rc = berth_manifest_put_fetched(&put, p->reg, pd->name, pd->reference,
					    pd->content_type[0] ? pd->content_type : NULL,
					    pd->body.data ? pd->body.data : "", pd->body.len);
	if (rc < 0) {
		berth_error("cannot store manifest %s@%s fetched from upstream: %s", pd->name, pd->digest,
			    berth_err_reason(rc));
		return rc == BERTH_ENOTFOUND ? BERTH_ERROR : rc;
	}
	if (p->scheduler && pd->ttl_ms > 0)
		berth_scheduler_add(p->scheduler, BERTH_SCHED_MANIFEST, pd->name, pd->digest, pd->ttl_ms);
	return 0;
}

/* out: a copy of a fetched manifest's bytes (copied under pending_lock: no storage call). */
static void copy_fetched(struct berth_manifest_content *out, const struct berth_buf *body, const char *digest)
{
	memset(out, 0, sizeof(*out));
	out->len = body->len;
	out->body = berth_malloc(out->len + 1);
	memcpy(out->body, body->data ? body->data : "", out->len);
	out->body[out->len] = '\0';
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
}

static void pending_key(char *out, size_t size, const char *name, const char *digest)
{
	snprintf(out, size, "%s@%s", name, digest);
}

/* Lists pd as being stored (one entry per manifest: a second fetch of it is stored unlisted). */
static void pending_add(struct berth_proxy *p, struct berth_proxy_pending *pd)
{
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	int added = 0;
	pending_key(key, sizeof(key), pd->name, pd->digest);
	pthread_mutex_lock(&p->pending_lock);
	struct pending_entry *e = berth_map_add(&p->pending, key, &added);
	if (added)
		e->pd = pd;
	pthread_mutex_unlock(&p->pending_lock);
}

/* A copy of name's manifest digest while it is being stored (and with tag not NULL, stored
 * under that tag): 0, or BERTH_ENOTFOUND. */
static int pending_get(struct berth_manifest_content *out, struct berth_proxy *p, const char *name,
		       const char *digest, const char *tag)
{
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	pending_key(key, sizeof(key), name, digest);
	pthread_mutex_lock(&p->pending_lock);
	struct pending_entry *e = berth_map_find(&p->pending, key);
	if (e && tag && strcmp(e->pd->reference, tag) != 0)
		e = NULL;
	if (e)
		copy_fetched(out, &e->pd->body, digest);
	pthread_mutex_unlock(&p->pending_lock);
	if (!e)
		return BERTH_ENOTFOUND;
	out->media_type = berth_manifest_sniff_media_type(out->body, out->len);
	return 0;
}

void berth_proxy_manifest_store(struct berth_proxy *p, struct berth_proxy_pending *pending)
{
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	if (!pending)
		return;
	/* Inline, not on the store threads: a few KiB, and the job thread running this also serves
	 * manifests, tags and HEADs, which must not queue behind blob commits' syncs. */
	store_fetched(p, pending); /* logs its failure */
	pending_key(key, sizeof(key), pending->name, pending->digest);
	pthread_mutex_lock(&p->pending_lock);
	struct pending_entry *e = berth_map_find(&p->pending, key);
	if (e && e->pd == pending)
		berth_map_remove(&p->pending, key);
	pthread_mutex_unlock(&p->pending_lock);
	berth_buf_release(&pending->body);
	berth_strvec_release(&pending->blobs);
	free(pending);
}

/* GETs manifest digest of name from the upstream and checks it hashes to digest and parses.
 * With digest NULL, GETs the manifest tag names (tag not NULL) and checks it hashes to the
 * upstream's Docker-Content-Digest (sha256 when it gives none). With pending NULL, stores it
 * (with tag pointing at it when not NULL) and schedules its expiry before answering; else
 * *pending holds that work for berth_proxy_manifest_store and *out is the manifest as fetched. */
static int fetch_manifest(struct berth_manifest_content *out, struct berth_proxy *p,
			  const struct berth_proxy_target *t, const char *name, const char *digest, const char *tag,
			  struct berth_proxy_pending **pending)
{
	char path[BERTH_NAME_MAX + BERTH_TAG_MAX + BERTH_DIGEST_STR_MAX + 32], got[BERTH_DIGEST_STR_MAX];
	struct berth_buf body = BERTH_BUF_INIT(berth_registry_manifest_max(p->reg));
	struct berth_upstream_result res;
	enum berth_digest_alg alg;
	const char *ct;
	struct berth_strvec blobs = { 0 };
	const char *ref = digest ? digest : tag;

	snprintf(path, sizeof(path), "/v2/%s/manifests/%s", t->remote, ref);
	struct berth_upstream_call call = { .method = "GET", .path = path, .repo = t->remote,
					    .accept = BERTH_PROXY_ACCEPT, .on_body = collect_body,
					    .payload = &body, .timeout_ms = MANIFEST_TIMEOUT_MS };
	int rc = berth_upstream_call(&res, t->route->upstream, &call);
	if (rc < 0 || res.status != 200) {
		log_upstream_failure(t, digest ? "manifest" : "tag", name, ref, rc, &res);
		berth_buf_release(&body);
		return rc == 0 && res.status == 404 ? BERTH_ENOTFOUND : BERTH_ERROR;
	}
	if (!digest && berth_digest_valid(res.digest))
		digest = res.digest; /* by tag: the digest the upstream gives, else the body's sha256 */
	if (!digest || berth_digest_parse(digest, &alg, NULL) < 0)
		alg = BERTH_ALG_SHA256;
	berth_digest_bytes(alg, body.data ? body.data : "", body.len, got);
	if (!digest)
		digest = got;
	if (strcmp(got, digest) != 0) {
		berth_error("upstream %s: manifest %s@%s does not match its digest (got %s)",
			    berth_upstream_label(t->route->upstream), name, digest, got);
		berth_buf_release(&body);
		return BERTH_ERROR;
	}
	if ((rc = fetched_content_type(&ct, &blobs, &body, res.content_type)) < 0) {
		berth_error("cannot store manifest %s@%s fetched from upstream: %s", name, digest,
			    berth_err_reason(rc));
		berth_buf_release(&body);
		return rc;
	}
	atomic_fetch_add(&berth_proxy_stats.manifest_misses, 1);
	struct berth_proxy_pending *pd = berth_calloc(1, sizeof(*pd));
	snprintf(pd->name, sizeof(pd->name), "%s", name);
	snprintf(pd->reference, sizeof(pd->reference), "%s", tag ? tag : digest);
	snprintf(pd->digest, sizeof(pd->digest), "%s", digest);
	snprintf(pd->content_type, sizeof(pd->content_type), "%s", ct ? ct : "");
	pd->ttl_ms = t->route->ttl_ms;
	pd->body = body;
	pd->blobs = blobs;
	if (!pending) {
		rc = store_fetched(p, pd);
		berth_buf_release(&pd->body);
		berth_strvec_release(&pd->blobs);
		free(pd);
		return rc < 0 ? rc : berth_manifest_get(out, p->reg, name, digest);
	}
	/* The client's answer does not wait for the store's writes and syncs. */
	copy_fetched(out, &pd->body, digest);
	out->media_type = berth_manifest_sniff_media_type(out->body, out->len);
	pending_add(p, pd);
	*pending = pd;
	return 0;
}

/* 1 if the cached tag names digest already (a warm pull then writes nothing). */
static int tag_names(struct berth_proxy *p, const char *name, const char *tag, const char *digest)
{
	struct berth_manifest_content mc;
	if (berth_manifest_get(&mc, p->reg, name, tag) < 0)
		return 0;
	int same = strcmp(mc.digest, digest) == 0;
	berth_manifest_content_release(&mc);
	return same;
}

/* By digest: local first, else from the upstream (tag, when not NULL, is pointed at it). A
 * manifest being stored (under tag) is served from memory: the store writes the tag. */
static int manifest_by_digest(struct berth_manifest_content *out, struct berth_proxy *p,
			      const struct berth_proxy_target *t, const char *name, const char *digest, const char *tag,
			      struct berth_proxy_pending **pending)
{
	if (pending_get(out, p, name, digest, tag) == 0) {
		atomic_fetch_add(&berth_proxy_stats.manifest_hits, 1);
		return 0;
	}
	int rc = berth_manifest_get(out, p->reg, name, digest);
	if (rc == 0 && tag && !tag_names(p, name, tag, digest)) {
		/* Cached already: only the tag moves here, as Distribution's tag service writes it. */
		struct berth_manifest_put_result put;
		rc = berth_manifest_put_fetched(&put, p->reg, name, tag, out->media_type, out->body, out->len);
		if (rc < 0) {
			berth_manifest_content_release(out);
			return rc == BERTH_ENOTFOUND ? BERTH_ERROR : rc;
		}
	}
	if (rc == 0) {
		atomic_fetch_add(&berth_proxy_stats.manifest_hits, 1);
		return 0;
	}
	if (rc != BERTH_ENOTFOUND)
		return rc;
	if (pending_get(out, p, name, digest, NULL) == 0) { /* being stored under another tag */
		atomic_fetch_add(&berth_proxy_stats.manifest_hits, 1);
		return 0;
	}
	return fetch_manifest(out, p, t, name, digest, tag, pending);
}

/* 0 when name has no tag tag cached (no manifest to compare the upstream's with), else 1 (also
 * when storage cannot say: the tag is then asked as when cached). */
static int tag_cached(struct berth_proxy *p, const char *name, const char *tag)
{
	int64_t pushed;
	int rc = berth_tag_pushed(&pushed, p->reg, name, tag);
	if (rc < 0)
		berth_err_clear();
	return rc != BERTH_ENOTFOUND;
}

int berth_proxy_manifest_get(struct berth_manifest_content *out, struct berth_proxy *p, const char *name,
			     const char *reference, struct berth_proxy_pending **pending)
{
	char path[BERTH_NAME_MAX + BERTH_TAG_MAX + 32];
	struct berth_upstream_result res;
	struct berth_proxy_target t;

	if (berth_proxy__target(&t, p, name) < 0)
		return BERTH_ENOTFOUND;
	if (strchr(reference, ':'))
		return manifest_by_digest(out, p, &t, name, reference, NULL, pending);
	/* By tag, not cached: the manifest the tag names now, in one call. (Cached: the upstream's
	 * digest first, so that a tag naming what is cached already costs no manifest transfer.) */
	if (!tag_cached(p, name, reference)) {
		return fetch_manifest(out, p, &t, name, NULL, reference, pending);
	}
	snprintf(path, sizeof(path), "/v2/%s/manifests/%s", t.remote, reference);
	struct berth_upstream_call call = { .method = "HEAD", .path = path, .repo = t.remote,
					    .accept = BERTH_PROXY_ACCEPT, .timeout_ms = MANIFEST_TIMEOUT_MS };
	int rc = berth_upstream_call(&res, t.route->upstream, &call);
	if (rc == 0 && res.status == 200 && berth_digest_valid(res.digest)) {
		rc = manifest_by_digest(out, p, &t, name, res.digest, reference, pending);
		if (rc != BERTH_ERROR)
			return rc;
	} else {
		log_upstream_failure(&t, "tag", name, reference, rc, &res);
	}
	/* The upstream cannot say: the tag as cached, as Distribution's proxy tag service does. */
	int local = berth_manifest_get(out, p->reg, name, reference);
	if (local == 0) {
		atomic_fetch_add(&berth_proxy_stats.stale_tags, 1);
		berth_warn("serving cached %s:%s: the upstream could not tell its current manifest", name, reference);
		return 0;
	}
	if (local != BERTH_ENOTFOUND)
		return local;
	return rc == 0 && res.status == 404 ? BERTH_ENOTFOUND : BERTH_ERROR;
}

/* ---- prefetch ---- */

/* Starts the fetch of blob digest of name (from t) unless the repository has it. BERTH_EBUSY at
 * the bound. */
static int prefetch_blob(struct berth_proxy *p, const struct berth_proxy_target *t, const char *name,
			 const char *digest)
{
	uint64_t size;
	if (atomic_load(&p->prefetches) >= BERTH_PROXY_PREFETCH_MAX) /* before the stat: cheap */
		return BERTH_EBUSY;
	int rc = berth_blob_stat(&size, p->reg, name, digest);
	if (rc == 0)
		return 0;
	if (rc != BERTH_ENOTFOUND) { /* storage cannot say: the client's own GET will */
		berth_err_clear();
		return 0;
	}
	rc = berth_proxy__prefetch(p, t, name, digest);
	if (rc == 0)
		berth_debug("prefetching blob %s@%s", name, digest);
	return rc == BERTH_EBUSY ? rc : 0;
}

/* Prefetches blobs of name, up to the bound, unless the proxy stops or name's upstream has
 * prefetch off. */
static void prefetch_blobs(struct berth_proxy *p, const char *name, const struct berth_strvec *blobs)
{
	struct berth_proxy_target t;
	if (atomic_load(&p->stopping) || berth_proxy__target(&t, p, name) < 0 || !t.route->prefetch)
		return;
	for (size_t i = 0; i < blobs->n && prefetch_blob(p, &t, name, blobs->items[i]) == 0; i++)
		;
}

void berth_proxy_prefetch(struct berth_proxy *p, const struct berth_proxy_pending *pending)
{
	if (pending)
		prefetch_blobs(p, pending->name, &pending->blobs);
}

void berth_proxy_mark_prefetch(struct berth_proxy *p, const struct berth_proxy_pending *pending)
{
	struct berth_proxy_target t;
	if (!pending || !pending->blobs.n || strcmp(pending->reference, pending->digest) == 0 ||
	    berth_proxy__target(&t, p, pending->name) < 0 || !t.route->prefetch)
		return; /* by digest (HEAD by tag only), an index, or prefetch off */
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	pending_key(key, sizeof(key), pending->name, pending->digest);
	uint64_t now = berth_now_ns();
	pthread_mutex_lock(&p->marks_lock);
	/* Its own slot (one per key), else a free or expired one, else the oldest. */
	struct berth_proxy_mark *slot = NULL, *oldest = &p->marks[0];
	for (size_t i = 0; i < BERTH_PROXY_MARKS_MAX; i++) {
		struct berth_proxy_mark *m = &p->marks[i];
		if (m->key[0] && strcmp(m->key, key) == 0) {
			slot = m;
			break;
		}
		if (!slot && (!m->key[0] || m->until_ns <= now))
			slot = m;
		if (m->until_ns < oldest->until_ns)
			oldest = m;
	}
	if (!slot)
		slot = oldest;
	if (!slot->key[0])
		atomic_fetch_add(&p->marks_held, 1);
	snprintf(slot->key, sizeof(slot->key), "%s", key);
	slot->until_ns = now + (uint64_t)BERTH_PROXY_MARK_MS * 1000000u;
	pthread_mutex_unlock(&p->marks_lock);
}

/* 1 when name's manifest digest was marked and the mark had not expired; the mark is gone. */
static int take_mark(struct berth_proxy *p, const char *name, const char *digest)
{
	char key[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 2];
	uint64_t now = berth_now_ns();
	int found = 0;
	if (atomic_load(&p->marks_held) == 0)
		return 0;
	pending_key(key, sizeof(key), name, digest);
	pthread_mutex_lock(&p->marks_lock);
	for (size_t i = 0; i < BERTH_PROXY_MARKS_MAX; i++) {
		struct berth_proxy_mark *m = &p->marks[i];
		if (m->key[0] && strcmp(m->key, key) == 0) {
			found = m->until_ns > now;
			m->key[0] = '\0';
			atomic_fetch_sub(&p->marks_held, 1);
			break; /* one slot per key (berth_proxy_mark_prefetch) */
		}
	}
	pthread_mutex_unlock(&p->marks_lock);
	return found;
}

void berth_proxy_prefetch_marked(struct berth_proxy *p, const char *name, const char *digest,
				 const struct berth_manifest_content *mc)
{
	struct berth_manifest *m = NULL;
	struct berth_strvec blobs = { 0 };
	if (!take_mark(p, name, digest))
		return;
	if (berth_manifest_parse(&m, mc->media_type, mc->body, mc->len) == 0)
		prefetchable_blobs(&blobs, m);
	else
		berth_err_clear(); /* it parsed when fetched */
	berth_manifest_free(m);
	prefetch_blobs(p, name, &blobs);
	berth_strvec_release(&blobs);
}

/* ---- tags ---- */

int berth_proxy_tags(struct berth_strvec *out, struct berth_proxy *p, const char *name)
{
	char path[BERTH_NAME_MAX + 32];
	struct berth_buf body = BERTH_BUF_INIT(TAGS_MAX);
	struct berth_upstream_result res;
	struct berth_proxy_target t;

	memset(out, 0, sizeof(*out));
	if (berth_proxy__target(&t, p, name) < 0)
		return BERTH_ENOTFOUND;
	snprintf(path, sizeof(path), "/v2/%s/tags/list", t.remote);
	struct berth_upstream_call call = { .method = "GET", .path = path, .repo = t.remote, .on_body = collect_body,
					    .payload = &body, .timeout_ms = MANIFEST_TIMEOUT_MS };
	int rc = berth_upstream_call(&res, t.route->upstream, &call);
	if (rc < 0 || res.status != 200) {
		log_upstream_failure(&t, "tag list", name, "", rc, &res);
		berth_buf_release(&body);
		return rc == 0 && res.status == 404 ? BERTH_ENOTFOUND : BERTH_ERROR;
	}
	json_t *doc = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
	berth_buf_release(&body);
	json_t *tags = json_object_get(doc, "tags");
	if (!json_is_array(tags) && !json_is_null(tags)) {
		json_decref(doc);
		berth_warn("upstream %s: tag list of %s is not JSON", berth_upstream_label(t.route->upstream), name);
		return BERTH_ERROR;
	}
	size_t i;
	json_t *tag;
	json_array_foreach(tags, i, tag) {
		if (json_is_string(tag) && berth_tag_valid(json_string_value(tag)))
			berth_strvec_push(out, json_string_value(tag));
	}
	json_decref(doc);
	berth_strvec_sort(out);
	return 0;
}

/* ---- blob sizes ---- */

int berth_proxy_blob_stat(uint64_t *size, struct berth_proxy *p, const char *name, const char *digest)
{
	char path[BERTH_NAME_MAX + BERTH_DIGEST_STR_MAX + 32];
	struct berth_upstream_result res;
	struct berth_proxy_target t;
	if (berth_proxy__target(&t, p, name) < 0)
		return BERTH_ENOTFOUND;
	snprintf(path, sizeof(path), "/v2/%s/blobs/%s", t.remote, digest);
	struct berth_upstream_call call = { .method = "HEAD", .path = path, .repo = t.remote,
					    .timeout_ms = MANIFEST_TIMEOUT_MS };
	int rc = berth_upstream_call(&res, t.route->upstream, &call);
	if (rc == 0 && res.status == 200 && res.length >= 0) {
		*size = (uint64_t)res.length;
		return 0;
	}
	log_upstream_failure(&t, "blob", name, digest, rc, &res);
	return rc == 0 && res.status == 404 ? BERTH_ENOTFOUND : BERTH_ERROR;
}

/* The upstream registry's client (proxy/upstream.h). */
#include "proxy/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpsl.h>
#include <openssl/evp.h>

#include "core/err.h"
#include "core/log.h"
#include "proxy/credhelper.h"
#include "registry/reference.h"

#define CONNECT_TIMEOUT_MS 10000L
#define STALL_SECONDS 30L      /* a transfer slower than 1 byte/s for this long is cut */
#define TOKEN_TIMEOUT_MS 30000L
#define TOKEN_BODY_MAX (64 * 1024)
#define MAX_RETRIES 3          /* after the first try: 4 tries in all */
#define BACKOFF_MS 200         /* doubled after each retry */
#define TOKEN_SLOTS 32
#define SCOPE_MAX (BERTH_NAME_MAX + 32)
#define DEFAULT_TOKEN_SECONDS 60 /* the token spec's default expires_in */
#define CREDHELPER_TIMEOUT_MS 10000L /* a credential helper's run taking longer is killed */
#define IDLE_HANDLES_MAX 64    /* more idle at once (a burst past the proxy's threads) are closed */

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct token_slot {
	char scope[SCOPE_MAX];
	char *token;
	uint64_t expires_ns;
};

/* Counters of one upstream, listed for the metrics while it lives. */
struct upstream_stats {
	struct upstream_stats *next;
	const char *label;
	_Atomic uint64_t requests, errors, retries, bytes, tokens, circuit_opens;
};

/* The circuit breaker: after BREAKER_FAILURES calls in a row without an answer (each after its
 * retries), calls fail at once for BREAKER_COOLDOWN_MS, so that a cached tag is served without
 * waiting through the retries; then one call probes (the others still fail at once) and an
 * answer closes the circuit. */
#define BREAKER_FAILURES 3
#define BREAKER_COOLDOWN_MS 10000

struct berth_upstream {
	char *base; /* remoteurl without a trailing '/' */
	char *username, *password;
	struct berth_credhelper *helper; /* proxy.exec: gives the credentials instead of the two above */
	char *host;                      /* of base: host[:port], what the helper is told for Basic */
	atomic_int realm_refusal_logged; /* a realm refused the credentials was logged */
	char *cafile, *capath;           /* SSL_CERT_FILE, SSL_CERT_DIR; NULL: libcurl's defaults */
	char *label;
	struct upstream_stats stats;
	pthread_mutex_t lock; /* guards what follows */
	enum auth_scheme scheme;
	struct berth_challenge challenge; /* the Bearer challenge last met */
	struct token_slot tokens[TOKEN_SLOTS];
	size_t next_slot;
	int failures;          /* calls in a row that had no answer */
	int open;              /* the circuit: calls fail at once until open_until_ms */
	int probing;           /* open, cool-down over: one call is asking */
	int64_t open_until_ms; /* CLOCK_MONOTONIC */
	/* The curl handles not in a call, each keeping its connections to the upstream (and to its
	 * token realm) open: a call takes the one last given back, so calls one after the other
	 * reuse one connection whatever thread makes them. Their TLS sessions and DNS answers are
	 * shared (curl does not support sharing connections themselves between threads). */
	pthread_mutex_t idle_lock;
	CURL *idle[IDLE_HANDLES_MAX];
	size_t n_idle;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct upstream_stats *all_stats;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
/* The public suffix list, loaded once for all upstreams and kept for the process's life (as the
 * curl global is never cleaned up here; a static keeps it reachable for LSan). NULL when it
 * cannot be loaded: only a realm on the upstream's own host then gets credentials. */
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static psl_ctx_t *public_suffix_list;

static void init_curl(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void load_public_suffixes(void)
{
	public_suffix_list = psl_latest(NULL); /* the newer of libpsl's own list and the system's */
	if (!public_suffix_list)
		berth_warn("the public suffix list cannot be loaded: a pull-through cache's token realm gets the "
			   "upstream's credentials only on the upstream's own host");
}

static const psl_ctx_t *public_suffixes(void)
{
	pthread_once(&psl_once, load_public_suffixes);
	return public_suffix_list;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *payload)
{
	(void)h;
	(void)access;
	struct berth_upstream *u = payload;
	pthread_mutex_lock(&u->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *payload)
{
	(void)h;
	struct berth_upstream *u = payload;
	pthread_mutex_unlock(&u->share_locks[data]);
}

/* The share of an upstream's handles: TLS sessions (a new connection resumes one instead of a
 * full handshake) and DNS answers. NULL when curl cannot make one: the handles then go alone. */
static CURLSH *new_share(struct berth_upstream *u)
{
	CURLSH *sh = curl_share_init();
	if (sh && (curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
		   curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
		   curl_share_setopt(sh, CURLSHOPT_USERDATA, u) != CURLSHE_OK ||
		   curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
		   curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)) {
		curl_share_cleanup(sh);
		sh = NULL;
	}
	return sh;
}

/* A handle for one call, its connections kept from the calls before; NULL when curl cannot make
 * one. Given back with give_handle. */
static CURL *take_handle(struct berth_upstream *u)
{
	CURL *h = NULL;
	pthread_mutex_lock(&u->idle_lock);
	if (u->n_idle > 0)
		h = u->idle[--u->n_idle];
	pthread_mutex_unlock(&u->idle_lock);
	if (!h) {
		h = curl_easy_init();
		if (h && u->share)
			curl_easy_setopt(h, CURLOPT_SHARE, u->share); /* kept by curl_easy_reset */
	}
	return h;
}

static void give_handle(struct berth_upstream *u, CURL *h)
{
	if (!h)
		return;
	curl_easy_reset(h); /* keeps the connections, drops pointers into the call */
	pthread_mutex_lock(&u->idle_lock);
	if (u->n_idle < IDLE_HANDLES_MAX) {
		u->idle[u->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&u->idle_lock);
	curl_easy_cleanup(h); /* accepts NULL */
}

char *berth_upstream_url_host(const char *url, int with_port)
{
	CURLU *h = curl_url();
	char *host = NULL, *port = NULL, *out = NULL;
	if (h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		out = with_port && curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK
			      ? berth_asprintf("%s:%s", host, port)
			      : berth_strdup(host);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(h);
	return out ? out : berth_strdup("");
}

/* The CA certificates to verify HTTPS with, as Go reads them (crypto/x509 on Linux):
 * SSL_CERT_FILE instead of the system bundle, SSL_CERT_DIR (colon-separated) instead of the
 * system directory; libcurl reads neither by itself. A file that cannot be read is refused here
 * rather than failing every call. */
static int trust_from_env(char **cafile, char **capath)
{
	const char *file = getenv("SSL_CERT_FILE"), *dir = getenv("SSL_CERT_DIR");
	if (file && file[0]) {
		FILE *f = fopen(file, "r");
		if (!f)
			return berth_err_set(BERTH_EINVALID, "SSL_CERT_FILE '%s': %s", file, berth_err_os_text(errno));
		fclose(f);
	}
	*cafile = file && file[0] ? berth_strdup(file) : NULL;
	*capath = dir && dir[0] ? berth_strdup(dir) : NULL;
	return 0;
}

int berth_upstream_new(struct berth_upstream **out, const struct berth_upstream_config *cfg)
{
	const char *url = cfg->url ? cfg->url : "";
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return berth_err_set(BERTH_EINVALID, "'%s' is not an http or https URL", url);
	pthread_once(&curl_once, init_curl);
	public_suffixes(); /* at start-up: its warning, if any, comes then, the file read off the calls */
	char *cafile = NULL, *capath = NULL;
	int rc = trust_from_env(&cafile, &capath);
	if (rc < 0)
		return rc;
	struct berth_credhelper *helper = NULL;
	if (cfg->exec_command && cfg->exec_command[0]) {
		struct berth_credhelper_config hc = { .command = cfg->exec_command,
						      .lifetime_ms = cfg->exec_lifetime_ms,
						      .timeout_ms = CREDHELPER_TIMEOUT_MS,
						      .label = cfg->label ? cfg->label : url };
		if ((rc = berth_credhelper_new(&helper, &hc)) < 0) {
			free(cafile);
			free(capath);
			return rc;
		}
	}
	struct berth_upstream *u = berth_calloc(1, sizeof(*u));
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	u->base = berth_strndup(url, n);
	u->username = !helper && cfg->username && cfg->username[0] ? berth_strdup(cfg->username) : NULL;
	u->password = berth_strdup(cfg->password ? cfg->password : "");
	u->label = berth_strdup(cfg->label ? cfg->label : u->base);
	u->helper = helper;
	u->host = berth_upstream_url_host(u->base, 1);
	u->cafile = cafile;
	u->capath = capath;
	u->stats.label = u->label;
	u->scheme = AUTH_NONE;
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->idle_lock, NULL);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&u->share_locks[i], NULL);
	u->share = new_share(u);
	pthread_mutex_lock(&stats_lock);
	u->stats.next = all_stats;
	all_stats = &u->stats;
	pthread_mutex_unlock(&stats_lock);
	*out = u;
	return 0;
}

void berth_upstream_free(struct berth_upstream *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&stats_lock);
	for (struct upstream_stats **p = &all_stats; *p; p = &(*p)->next) {
		if (*p == &u->stats) {
			*p = u->stats.next;
			break;
		}
	}
	pthread_mutex_unlock(&stats_lock);
	for (size_t i = 0; i < TOKEN_SLOTS; i++)
		free(u->tokens[i].token);
	for (size_t i = 0; i < u->n_idle; i++) /* every call is over: all are idle */
		curl_easy_cleanup(u->idle[i]);
	curl_share_cleanup(u->share); /* after its handles */
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&u->share_locks[i]);
	pthread_mutex_destroy(&u->idle_lock);
	pthread_mutex_destroy(&u->lock);
	free(u->base);
	free(u->username);
	free(u->password);
	berth_credhelper_free(u->helper);
	free(u->host);
	free(u->cafile);
	free(u->capath);
	free(u->label);
	free(u);
}

const char *berth_upstream_label(const struct berth_upstream *u)
{
	return u->label;
}

void berth_upstream_render_metrics(struct berth_buf *out)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} families[] = {
		{ "berth_proxy_upstream_requests_total", "Requests made to an upstream registry.",
		  offsetof(struct upstream_stats, requests) },
		{ "berth_proxy_upstream_errors_total",
		  "Upstream calls that failed (no answer after the retries, or a broken transfer).",
		  offsetof(struct upstream_stats, errors) },
		{ "berth_proxy_upstream_retries_total", "Upstream requests retried after a failure.",
		  offsetof(struct upstream_stats, retries) },
		{ "berth_proxy_upstream_bytes_total", "Body bytes fetched from an upstream registry.",
		  offsetof(struct upstream_stats, bytes) },
		{ "berth_proxy_upstream_tokens_total", "Bearer tokens fetched for an upstream.",
		  offsetof(struct upstream_stats, tokens) },
		{ "berth_proxy_upstream_circuit_opens_total",
		  "Times an upstream's calls began failing at once after connection failures in a row.",
		  offsetof(struct upstream_stats, circuit_opens) },
	};
	pthread_mutex_lock(&stats_lock);
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		berth_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", families[f].name, families[f].help,
				 families[f].name);
		for (struct upstream_stats *s = all_stats; s; s = s->next) {
			_Atomic uint64_t *v = (_Atomic uint64_t *)((char *)s + families[f].off);
			berth_buf_printf(out, "%s{upstream=\"%s\"} %llu\n", families[f].name, s->label,
					 (unsigned long long)atomic_load(v));
		}
	}
	pthread_mutex_unlock(&stats_lock);
}

/* ---- tokens ---- */

static void scope_for(char *out, size_t cap, const char *repo)
{
	snprintf(out, cap, "repository:%s:pull", repo ? repo : "");
}

/*
 * The credentials to give host (the upstream's, or its token realm's): 0 with *user and *pass
 * the caller's to free, or BERTH_ENOTFOUND when there are none. A credential helper's are
 * asked of it (it may run: this blocks); when it fails (logged there) or gives an empty
 * username or secret, there are none, as in Distribution, and the upstream refuses the call as
 * it refuses wrong credentials.
 */
static int credentials(char **user, char **pass, struct berth_upstream *u, const char *host)
{
	if (!u->helper) {
		if (!u->username)
			return BERTH_ENOTFOUND;
		*user = berth_strdup(u->username);
		*pass = berth_strdup(u->password);
		return 0;
	}
	if (berth_credhelper_get(user, pass, u->helper, host) < 0) {
		berth_err_clear(); /* logged: not this call's failure */
		return BERTH_ENOTFOUND;
	}
	if (!(*user)[0] || !(*pass)[0]) {
		free(*user);
		free(*pass);
		return BERTH_ENOTFOUND;
	}
	return 0;
}

static int has_credentials(const struct berth_upstream *u)
{
	return u->helper || u->username;
}

static char *basic_header(const char *user, const char *pass)
{
	char *pair = berth_asprintf("%s:%s", user, pass);
	size_t n = strlen(pair);
	char *b64 = berth_malloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)pair, (int)n);
	char *h = berth_asprintf("Authorization: Basic %s", b64);
	free(b64);
	free(pair);
	return h;
}

/* The Bearer header of a token held for repo's scope, or NULL; called with u->lock held. */
static char *bearer_locked(struct berth_upstream *u, const char *repo)
{
	char scope[SCOPE_MAX];
	scope_for(scope, sizeof(scope), repo);
	uint64_t now = berth_now_ns();
	for (size_t i = 0; i < TOKEN_SLOTS; i++) {
		struct token_slot *t = &u->tokens[i];
		if (t->token && t->expires_ns > now && strcmp(t->scope, scope) == 0)
			return berth_asprintf("Authorization: Bearer %s", t->token);
	}
	return NULL;
}

static int fetch_token_or_warn(struct berth_upstream *u, const struct berth_challenge *ch, const char *repo);

/* The Authorization header for a call, or NULL; the caller frees it. A Bearer token not held
 * yet is asked for once per call (*asked, set with the challenge it was asked under). */
static char *authorization(struct berth_upstream *u, const char *repo, struct berth_challenge *asked_under,
			   int *asked)
{
	struct berth_challenge ch;
	char *h = NULL;
	pthread_mutex_lock(&u->lock);
	enum auth_scheme scheme = u->scheme;
	int answering = u->failures == 0;
	if (scheme == AUTH_BEARER) {
		h = bearer_locked(u, repo);
		ch = u->challenge;
	}
	pthread_mutex_unlock(&u->lock);
	if (scheme == AUTH_BEARER && repo && !h && !*asked && answering) {
		/* A scope without a token yet: asked of the realm the upstream named for another
		 * one before the call, rather than after a 401 of its own (one upstream round trip
		 * fewer per repository). Not while the upstream's last call had no answer: the
		 * token's tries would only delay this call's own (and the cached-tag fallback). */
		*asked = 1;
		*asked_under = ch;
		/* Failing, said here: the 401 that follows names the same realm, so
		 * authenticate() does not ask (nor log) again. The call goes without. */
		if (fetch_token_or_warn(u, &ch, repo) == 0) {
			pthread_mutex_lock(&u->lock);
			h = bearer_locked(u, repo);
			pthread_mutex_unlock(&u->lock);
		}
	}
	char *user, *pass;
	if (scheme == AUTH_BASIC && credentials(&user, &pass, u, u->host) == 0) { /* unlocked: it may run a helper */
		h = basic_header(user, pass);
		free(user);
		free(pass);
	}
	return h;
}

static void store_token(struct berth_upstream *u, const char *scope, const char *token, int64_t seconds)
{
	/* Renewed a little before it runs out, so a call never starts with a token about to go. */
	int64_t margin = seconds > 20 ? 10 : seconds / 2;
	pthread_mutex_lock(&u->lock);
	struct token_slot *t = NULL;
	for (size_t i = 0; i < TOKEN_SLOTS && !t; i++)
		if (u->tokens[i].token && strcmp(u->tokens[i].scope, scope) == 0)
			t = &u->tokens[i];
	if (!t) {
		t = &u->tokens[u->next_slot];
		u->next_slot = (u->next_slot + 1) % TOKEN_SLOTS;
	}
	free(t->token);
	snprintf(t->scope, sizeof(t->scope), "%s", scope);
	t->token = berth_strdup(token);
	t->expires_ns = berth_now_ns() + (uint64_t)(seconds - margin) * 1000000000ull;
	u->scheme = AUTH_BEARER;
	pthread_mutex_unlock(&u->lock);
}

/* The CA certificates a handle verifies HTTPS with: SSL_CERT_FILE / SSL_CERT_DIR when set. */
static void trust(CURL *curl, const struct berth_upstream *u)
{
	if (u->cafile)
		curl_easy_setopt(curl, CURLOPT_CAINFO, u->cafile);
	if (u->capath)
		curl_easy_setopt(curl, CURLOPT_CAPATH, u->capath);
}

static size_t collect(char *p, size_t size, size_t n, void *payload)
{
	return berth_buf_append(payload, p, size * n) < 0 ? 0 : size * n; /* past the cap: abort */
}

/*
 * 1 when the token realm may have the upstream's credentials (berth_challenge_realm_trusted), 0
 * when the upstream has none or the realm is outside its trust boundary: the token is then asked
 * anonymously, and a credential helper is not run. A refusal is logged once per upstream, not
 * per token.
 */
static int realm_gets_credentials(struct berth_upstream *u, const char *realm)
{
	if (!has_credentials(u))
		return 0;
	const char *why;
	if (berth_challenge_realm_trusted(public_suffixes(), u->base, realm, &why))
		return 1;
	if (!atomic_exchange(&u->realm_refusal_logged, 1)) {
		char *host = berth_upstream_url_host(realm, 1);
		berth_warn("upstream %s: token realm host '%s' %s: tokens are asked there without the upstream's "
			   "credentials",
			   u->label, host, why);
		free(host);
	}
	return 0;
}

/* Asks the challenge's realm for a token for repo's pull scope. 0, or BERTH_ERROR with the reason
 * as the thread's failure. */
static int fetch_token(struct berth_upstream *u, const struct berth_challenge *ch, const char *repo)
{
	char scope[SCOPE_MAX];
	char curl_error[CURL_ERROR_SIZE] = "";
	struct berth_buf body = BERTH_BUF_INIT(TOKEN_BODY_MAX);
	long status = 0;
	int rc = BERTH_ERROR;
	char *user = NULL, *pass = NULL;

	scope_for(scope, sizeof(scope), repo);
	CURL *curl = take_handle(u);
	if (!curl)
		return berth_err_set(BERTH_ERROR, "cannot set up the token request");
	int have_credentials = 0;
	if (realm_gets_credentials(u, ch->realm)) {
		char *realm_host = berth_upstream_url_host(ch->realm, 1); /* what a credential helper is told */
		have_credentials = credentials(&user, &pass, u, realm_host) == 0;
		free(realm_host);
	}
	char *service_q = curl_easy_escape(curl, ch->service, 0);
	char *scope_q = curl_easy_escape(curl, scope, 0);
	char *url = berth_asprintf("%s%cservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? '&' : '?',
				   service_q ? service_q : "", scope_q ? scope_q : "");
	curl_free(service_q);
	curl_free(scope_q);
	atomic_fetch_add(&u->stats.tokens, 1);
	for (int attempt = 0; attempt < 2; attempt++) {
		berth_buf_release(&body);
		body = (struct berth_buf)BERTH_BUF_INIT(TOKEN_BODY_MAX);
		curl_easy_reset(curl);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TOKEN_TIMEOUT_MS);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
		curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
		trust(curl, u);
		if (have_credentials) {
			curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			curl_easy_setopt(curl, CURLOPT_USERNAME, user);
			curl_easy_setopt(curl, CURLOPT_PASSWORD, pass);
		}
		CURLcode cc = curl_easy_perform(curl);
		status = 0;
		if (cc == CURLE_OK)
			curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		if (cc == CURLE_OK && status < 500)
			break;
		berth_err_set(BERTH_ERROR, "token server %.120s: %s", ch->realm,
			      cc != CURLE_OK ? (curl_error[0] ? curl_error : curl_easy_strerror(cc)) : "5xx");
		usleep(BACKOFF_MS * 1000);
	}
	if (status == 200) {
		json_t *doc = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
		json_t *token = json_object_get(doc, "token");
		if (!json_is_string(token))
			token = json_object_get(doc, "access_token");
		json_t *expires = json_object_get(doc, "expires_in");
		int64_t seconds = json_is_integer(expires) && json_integer_value(expires) > 0
					  ? (int64_t)json_integer_value(expires)
					  : DEFAULT_TOKEN_SECONDS;
		if (json_is_string(token)) {
			store_token(u, scope, json_string_value(token), seconds);
			berth_err_clear(); /* a first attempt's failure is not this call's */
			rc = 0;
		} else {
			berth_err_set(BERTH_ERROR, "token server %.120s answered without a token", ch->realm);
		}
		json_decref(doc);
	} else if (status) {
		berth_err_set(BERTH_ERROR, "token server %.120s answered %ld", ch->realm, status);
	}
	free(url);
	free(user);
	free(pass);
	berth_buf_release(&body);
	give_handle(u, curl);
	return rc;
}

/* fetch_token, its failure logged (and forgotten: the call goes on without a token). */
static int fetch_token_or_warn(struct berth_upstream *u, const struct berth_challenge *ch, const char *repo)
{
	int rc = fetch_token(u, ch, repo);
	if (rc < 0)
		berth_warn("upstream %s: no token for %s: %s", u->label, repo, berth_err_reason(rc));
	return rc;
}

/* ---- calls ---- */

struct transfer {
	const struct berth_upstream_call *call;
	struct berth_upstream_result *res;
	struct berth_upstream *u;
	CURL *curl;
	char www_authenticate[2048];
	int started;    /* on_start was called */
	int body_rc;    /* on_body's refusal */
};

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *payload)
{
	struct transfer *t = payload;
	struct berth_upstream_result *res = t->res;
	size_t len = size * n;
	char line[2048];
	snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1), p);
	trim(line);
	if (strncmp(line, "HTTP/", 5) == 0) { /* a new answer (after a redirect or 100) */
		res->length = -1;
		res->digest[0] = res->content_type[0] = '\0';
		t->www_authenticate[0] = '\0';
		return len;
	}
	char *colon = strchr(line, ':');
	if (!colon)
		return len;
	*colon = '\0';
	const char *value = colon + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strcasecmp(line, "Docker-Content-Digest") == 0)
		snprintf(res->digest, sizeof(res->digest), "%s", value);
	else if (strcasecmp(line, "Content-Type") == 0)
		snprintf(res->content_type, sizeof(res->content_type), "%s", value);
	else if (strcasecmp(line, "WWW-Authenticate") == 0 && !t->www_authenticate[0])
		snprintf(t->www_authenticate, sizeof(t->www_authenticate), "%s", value);
	else if (strcasecmp(line, "Content-Length") == 0) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno == 0 && end != value && !*end && *value != '-' && v <= INT64_MAX)
			res->length = (int64_t)v;
	}
	return len;
}

static void start(struct transfer *t)
{
	if (t->started)
		return;
	t->started = 1;
	if (t->call->on_start)
		t->call->on_start(t->res, t->call->payload);
}

static size_t on_write(char *p, size_t size, size_t n, void *payload)
{
	struct transfer *t = payload;
	long status = 0;
	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status / 100 != 2 || !t->call->on_body)
		return size * n; /* an error's body, or one nobody wants */
	t->res->status = status;
	start(t);
	int rc = t->call->on_body(p, size * n, t->call->payload);
	if (rc != 0) {
		t->body_rc = rc;
		return 0;
	}
	t->res->bytes += size * n;
	atomic_fetch_add(&t->u->stats.bytes, size * n);
	return size * n;
}

/* curl's progress callback, while a transfer waits: a call whose cancel flag is set ends. */
static int on_progress(void *payload, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	const atomic_int *cancel = payload;
	return atomic_load(cancel) != 0;
}

static int cancelled(const struct berth_upstream_call *call)
{
	return call->cancel && atomic_load(call->cancel);
}

static CURLcode perform(struct transfer *t, const char *url, struct curl_slist *headers, char *curl_error)
{
	const struct berth_upstream_call *call = t->call;
	CURL *curl = t->curl;
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	if (strcmp(call->method, "HEAD") == 0)
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	if (call->timeout_ms > 0)
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, call->timeout_ms);
	if (call->recv_buffer > 0)
		curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, call->recv_buffer);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* Registries send blobs to a CDN with a redirect; curl does not carry the Authorization
	 * header to another host. */
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
	if (call->cancel) {
		/* Cast: curl's payload is not const; on_progress only reads it. */
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)call->cancel);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	}
	trust(curl, t->u);
	curl_error[0] = '\0';
	t->res->status = 0;
	t->res->length = -1;
	atomic_fetch_add(&t->u->stats.requests, 1);
	CURLcode cc = curl_easy_perform(curl);
	if (cc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t->res->status);
	return cc;
}

static int retryable(CURLcode cc, long status)
{
	if (cc == CURLE_OK)
		return status >= 500 || status == 429;
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR ||
	       cc == CURLE_GOT_NOTHING || cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_PARTIAL_FILE ||
	       cc == CURLE_COULDNT_RESOLVE_HOST;
}

/* 1 when a 401's WWW-Authenticate names the realm and service of ch (a token asked there for
 * this call already: another would be the same, or fail the same). */
static int same_realm(const struct berth_challenge *ch, const char *www_authenticate)
{
	struct berth_challenge now;
	return berth_challenge_parse(&now, www_authenticate) == 0 && strcmp(now.scheme, ch->scheme) == 0 &&
	       strcmp(now.realm, ch->realm) == 0 && strcmp(now.service, ch->service) == 0;
}

/* The upstream answered 401: learns how to authenticate. 1 to try again, 0 not (a token that
 * could not be had is logged: the caller sees only the 401; a call for no repository only
 * learns). */
static int authenticate(struct transfer *t)
{
	struct berth_upstream *u = t->u;
	const char *repo = t->call->repo;
	struct berth_challenge ch;
	if (berth_challenge_parse(&ch, t->www_authenticate) < 0)
		return 0;
	if (strcmp(ch.scheme, "basic") == 0) {
		if (!has_credentials(u))
			return 0;
		pthread_mutex_lock(&u->lock);
		u->scheme = AUTH_BASIC;
		pthread_mutex_unlock(&u->lock);
		return repo != NULL;
	}
	if (strcmp(ch.scheme, "bearer") != 0)
		return 0;
	pthread_mutex_lock(&u->lock);
	u->challenge = ch;
	if (!repo && u->scheme == AUTH_NONE)
		u->scheme = AUTH_BEARER; /* the next call's token is asked before it (authorization) */
	pthread_mutex_unlock(&u->lock);
	return repo && fetch_token_or_warn(u, &ch, repo) == 0;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when a call may ask the upstream, 0 when the circuit is open (fail at once). */
static int breaker_admit(struct berth_upstream *u)
{
	int admit = 1;
	pthread_mutex_lock(&u->lock);
	if (u->open) {
		if (u->probing || monotonic_ms() < u->open_until_ms)
			admit = 0;
		else
			u->probing = 1;
	}
	pthread_mutex_unlock(&u->lock);
	return admit;
}

/* A call admitted has ended: with an answer (whatever its status) or without one. */
static void breaker_record(struct berth_upstream *u, int answered)
{
	pthread_mutex_lock(&u->lock);
	int was_open = u->open;
	u->probing = 0;
	if (answered) {
		u->failures = 0;
		u->open = 0;
	} else if (++u->failures >= BREAKER_FAILURES) {
		u->open = 1;
		u->open_until_ms = monotonic_ms() + BREAKER_COOLDOWN_MS;
	}
	int opened = !was_open && u->open, closed = was_open && !u->open, failures = u->failures;
	pthread_mutex_unlock(&u->lock);
	if (opened) {
		atomic_fetch_add(&u->stats.circuit_opens, 1);
		berth_warn("upstream %s: %d calls in a row without an answer: circuit open, calls fail at once "
			   "for %d s, then one probes",
			   u->label, failures, BREAKER_COOLDOWN_MS / 1000);
	} else if (closed) {
		berth_info("upstream %s: answers again: circuit closed", u->label);
	}
}

int berth_upstream_call(struct berth_upstream_result *res, struct berth_upstream *u,
			const struct berth_upstream_call *call)
{
	struct transfer t = { .call = call, .res = res, .u = u };
	char curl_error[CURL_ERROR_SIZE];
	struct curl_slist *base = NULL;
	struct berth_challenge asked_under = { .scheme = "" };
	int authenticated = 0, asked = 0, rc = BERTH_ERROR;

	memset(res, 0, sizeof(*res));
	res->length = -1;
	pthread_once(&curl_once, init_curl);
	/* An unrecorded call is not held back by the circuit (nor probes it): it answers nobody. */
	if (!call->unrecorded && !breaker_admit(u)) { /* nothing is asked: nothing to record, no handle taken */
		atomic_fetch_add(&u->stats.errors, 1);
		rc = berth_err_set(BERTH_ERROR, "circuit open after %d calls in a row without an answer",
				   BREAKER_FAILURES);
		goto out;
	}
	t.curl = take_handle(u);
	if (!t.curl) {
		rc = berth_err_set(BERTH_ERROR, "cannot set up the request");
		goto out;
	}
	if (call->accept) {
		char *h = berth_asprintf("Accept: %s", call->accept);
		base = curl_slist_append(base, h);
		free(h);
	}
	char *url = berth_asprintf("%s%s", u->base, call->path);
	for (int attempt = 0;; attempt++) {
		struct curl_slist *headers = NULL;
		for (struct curl_slist *h = base; h; h = h->next)
			headers = curl_slist_append(headers, h->data);
		char *auth = authorization(u, call->repo, &asked_under, &asked);
		if (auth)
			headers = curl_slist_append(headers, auth);
		free(auth);
		CURLcode cc = perform(&t, url, headers, curl_error);
		curl_slist_free_all(headers);
		if (cancelled(call)) {
			berth_err_set(BERTH_ERROR, "cancelled");
			res->status = 0;
			break;
		}
		if (t.body_rc) {
			rc = t.body_rc; /* with on_body's failure, if it set one */
			break;
		}
		if (cc == CURLE_OK && res->status == 401 && !authenticated) {
			authenticated = 1;
			if (!(asked && same_realm(&asked_under, t.www_authenticate)) && authenticate(&t))
				continue;
		}
		if (retryable(cc, res->status) && res->bytes == 0 && attempt < MAX_RETRIES &&
		    !call->unrecorded) { /* an unrecorded call tries once: nobody waits for it */
			atomic_fetch_add(&u->stats.retries, 1);
			berth_debug("upstream %s%s: %s, retrying", u->label, call->path,
				    cc != CURLE_OK ? curl_easy_strerror(cc) : "server error");
			usleep((useconds_t)(BACKOFF_MS << attempt) * 1000u);
			continue;
		}
		if (cc != CURLE_OK) {
			berth_err_set(BERTH_ERROR, "%s", curl_error[0] ? curl_error : curl_easy_strerror(cc));
			if (res->bytes == 0)
				res->status = 0;
			break;
		}
		rc = 0;
		break;
	}
	free(url);
	int answered = res->status != 0 || rc == 0;
	if (answered || !call->unrecorded) { /* an unrecorded call's failure changes nothing */
		if (rc != 0 && rc != t.body_rc)
			atomic_fetch_add(&u->stats.errors, 1);
		breaker_record(u, answered);
	}
	start(&t); /* a HEAD, an error status or an empty body: nothing started it */
out:
	curl_slist_free_all(base);
	give_handle(u, t.curl);
	return rc;
}

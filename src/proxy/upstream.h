/*
 * The pull-through cache's client of its upstream registry, on libcurl: anonymous, Basic, or
 * the Bearer token flow (the upstream's WWW-Authenticate challenge names a realm; a token for
 * the repository's pull scope is asked there with service and scope, and reused until it
 * expires). The credentials are the configured ones or a credential helper's (proxy/credhelper.h).
 * HTTPS is verified against the system's CAs, or those SSL_CERT_FILE and SSL_CERT_DIR name (the
 * variables Go's crypto/x509, and so Distribution, reads). Connection failures, 5xx and 429 are
 * retried with backoff while no body byte has been handed on. Every call blocks: it runs on
 * the proxy's own threads (proxy/jobs.h), never on an HTTP polling thread.
 */
#ifndef BERTH_PROXY_UPSTREAM_H
#define BERTH_PROXY_UPSTREAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/digest.h"
#include "core/util.h"

struct berth_upstream;

struct berth_upstream_config {
	const char *url;      /* proxy.remoteurl: http(s)://host[:port][/path] */
	const char *username; /* NULL or "": anonymous unless the upstream asks */
	const char *password;
	const char *label;    /* names the upstream in logs and metrics (its URL when NULL) */
	const char *exec_command; /* proxy.exec.command: a credential helper; username and password
				   * are then not used. NULL or "": none */
	int64_t exec_lifetime_ms; /* proxy.exec.lifetime: -1 unset, 0 every call, else kept that long */
};

/* 0, or BERTH_EINVALID with its reason (berth_err_set: a URL that is not http or https, an
 * SSL_CERT_FILE that cannot be read). */
int berth_upstream_new(struct berth_upstream **out, const struct berth_upstream_config *cfg);
void berth_upstream_free(struct berth_upstream *u); /* accepts NULL */
const char *berth_upstream_label(const struct berth_upstream *u);

/*
 * Body bytes of a 2xx answer, as they arrive: 0 to go on, anything else aborts the transfer
 * (the call then returns that code).
 */
typedef int (*berth_upstream_body_cb)(const void *p, size_t n, void *payload);
/* Called once the status and headers of the final answer are in, before its first body byte
 * (also for a HEAD or an error status); the result holds them. */
struct berth_upstream_result;
typedef void (*berth_upstream_start_cb)(const struct berth_upstream_result *res, void *payload);

struct berth_upstream_call {
	const char *method;  /* "GET" or "HEAD" */
	const char *path;    /* below the upstream URL: "/v2/<name>/manifests/<ref>" */
	const char *repo;    /* the repository, for the token's scope "repository:<repo>:pull";
			      * NULL for none (/v2/): no token is asked, a 401 is only learnt from */
	const char *accept;  /* an Accept header value, or NULL */
	berth_upstream_body_cb on_body; /* NULL: a 2xx body is dropped */
	berth_upstream_start_cb on_start; /* NULL: none */
	void *payload;
	long timeout_ms;     /* whole-transfer limit; 0: none (blobs: only the stall limit) */
	long recv_buffer;    /* bytes libcurl receives at most per read (CURLOPT_BUFFERSIZE;
			      * on_body still gets pieces of 16 KiB at most); 0: its default, 16 KiB */
	const atomic_int *cancel; /* NULL, or a flag read while the call waits: once it is set,
				   * the call ends (no more tries) with BERTH_ERROR "cancelled" */
	int unrecorded;      /* 1: tried once, and a call without an answer is not counted (errors
			      * metric, the failures in a row of the circuit breaker and the token
			      * pre-fetch): a call nobody waits for, whose failure must change nothing
			      * (the start-up ping; with repo NULL a 401 teaches the challenge and no
			      * token is asked) */
};

struct berth_upstream_result {
	long status;         /* the final answer's HTTP status; 0 when none came */
	int64_t length;      /* its Content-Length, -1 when not given */
	char digest[BERTH_DIGEST_STR_MAX]; /* its Docker-Content-Digest, "" when none */
	char content_type[128];
	uint64_t bytes;      /* body bytes handed to on_body */
};

/*
 * Performs the call, authenticating as the upstream asks. 0 when an answer came (whatever its
 * status: res->status); BERTH_ERROR when none could be had after the retries (with the reason,
 * berth_err_set), or on_body's code (with whatever failure on_body set). Blocks (bounded by the
 * timeouts).
 */
int berth_upstream_call(struct berth_upstream_result *res, struct berth_upstream *u,
			const struct berth_upstream_call *call);

/* ---- challenges (exposed for the tests) ---- */

struct berth_challenge {
	char scheme[16];  /* "bearer" or "basic", lowercased; "" when none could be read */
	char realm[1024];
	char service[256];
	char scope[512];
};
/* Reads a WWW-Authenticate value (RFC 7235: scheme, then name=value or name="quoted" params).
 * 0, or BERTH_EINVALID. */
int berth_challenge_parse(struct berth_challenge *out, const char *header);

/*
 * 1 when the Bearer realm (a URL) may be given the credentials of the upstream at remote_url
 * (its username and password, or its credential helper's), 0 when not: Distribution's rule
 * (registry/proxy/proxyauth.go, realmAllowed). The realm must be a URL with a host; the same
 * host name as the upstream's (compared without regard to case) is trusted, on any port: unlike
 * Distribution, which trusts another port only for a domain name, an IP literal or localhost on
 * another port (a token server beside the registry, on the same machine) is trusted too. Other
 * hosts: an IP literal or localhost on either side is refused; two domain names are trusted when
 * they share their registrable domain (eTLD+1 by the public suffix list psl: registry-1.docker.io
 * and auth.docker.io share docker.io), and refused when either has none (a single-label name,
 * a public suffix itself, a name with an empty label, or psl NULL). Hosts are judged as libcurl
 * connects to them: a name not in ASCII as IDNA converts it, refused when it cannot be converted
 * (berth's C locale) or converts to what no host name holds (a full-width slash to '/'). Unlike
 * Distribution, the realm of an https upstream must be https too. When refused and why is not
 * NULL, *why says why, to follow "token realm host 'HOST' ". Does not block.
 */
struct psl_ctx_st; /* libpsl's psl_ctx_t */
int berth_challenge_realm_trusted(const struct psl_ctx_st *psl, const char *remote_url, const char *realm,
				  const char **why);

/* A URL's host, with ":port" when with_port and the URL names one (Go's url.URL.Host), as the
 * URL spells it; "" when it cannot be read. The caller frees it. */
char *berth_upstream_url_host(const char *url, int with_port);

/* The upstream metrics (requests, errors, bytes) with the proxy's (proxy/proxy.h). */
void berth_upstream_render_metrics(struct berth_buf *out);

#endif

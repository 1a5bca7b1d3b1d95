/* The web interface's token forwarding (ui/token.h). */
#include "ui/token.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/log.h"
#include "core/util.h"
#include "ui/ui_int.h"

#define TOKEN_TIMEOUT_MS 10000L
#define TOKEN_CONNECT_TIMEOUT_MS 5000L
#define TOKEN_BODY_MAX (64 * 1024)
#define SCOPE_MAX 512

/* Token calls running now, to bound the threads they take. */
static _Atomic int calls_running;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

struct token_call {
	struct berth_request *req;
	char *url;
	char *authorization; /* the browser's "Basic ..." header, or NULL */
	long status;         /* the token server's HTTP status; 0 if it could not be reached */
	char curl_error[CURL_ERROR_SIZE];
	struct berth_buf body;
};

static void init_curl(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void call_free(struct token_call *call)
{
	if (!call)
		return;
	free(call->url);
	free(call->authorization);
	berth_buf_release(&call->body);
	free(call);
}

/* A scope as the registry's challenges name them: "repository:a/b:pull,delete". */
static int scope_valid(const char *scope)
{
	size_t n = strlen(scope);
	return n <= SCOPE_MAX && strspn(scope, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					      "0123456789._-:/,*") == n;
}

static size_t on_data(char *p, size_t size, size_t n, void *payload)
{
	struct berth_buf *b = payload;
	return berth_buf_append(b, p, size * n) < 0 ? 0 : size * n; /* past the cap: abort */
}

static CURLcode fetch_once(struct token_call *call, CURL *curl, struct curl_slist *headers)
{
	berth_buf_release(&call->body);
	call->status = 0;
	call->curl_error[0] = '\0';
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, call->url);
	curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TOKEN_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, TOKEN_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &call->body);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, call->curl_error);
	CURLcode rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &call->status);
	return rc;
}

static void fetch(struct token_call *call)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
	if (call->authorization) {
		char *h = berth_asprintf("Authorization: %s", call->authorization);
		headers = curl_slist_append(headers, h);
		free(h);
	}
	if (!curl || !headers) {
		snprintf(call->curl_error, sizeof(call->curl_error), "cannot set up the request");
		goto out;
	}
	CURLcode rc = fetch_once(call, curl, headers);
	/* One retry for a token server restarting or a connection dropped; not after a timeout,
	 * which would double the user's wait. */
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
	    rc == CURLE_GOT_NOTHING || call->status >= 500) {
		usleep(200 * 1000);
		fetch_once(call, curl, headers);
	}
out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
}

/* Back on a polling thread: the token server's answer becomes ours. */
static void answer(struct berth_request *req)
{
	struct token_call *call = req->body_state;
	req->body_state = NULL;
	json_t *doc = call->status == 200 ? json_loadb(call->body.data ? call->body.data : "", call->body.len, 0, NULL)
					  : NULL;
	json_t *token = json_object_get(doc, "token");
	if (!json_is_string(token))
		token = json_object_get(doc, "access_token");
	if (json_is_string(token)) {
		json_t *expires = json_object_get(doc, "expires_in");
		berth_ui__send_json(req, json_pack("{s:O, s:I}", "token", token, "expires_in",
					       json_is_integer(expires) ? json_integer_value(expires) : (json_int_t)60));
	} else if (call->status == 401 || call->status == 403) {
		berth_api_answer(req, BERTH_API_UNAUTHORIZED, "the token server refused the credentials", NULL);
	} else {
		if (call->status == 0)
			berth_warn("token server unreachable: %s", call->curl_error);
		else
			berth_warn("token server answered %ld without a token", call->status);
		berth_api_answer(req, BERTH_API_UNAVAILABLE, "cannot get a token from the token server", NULL);
	}
	json_decref(doc);
	call_free(call);
}

/* A request resumed while the server stops is closed without answer() running: the call,
 * its thread done by then, goes with the request. */
static void call_cleanup(struct berth_request *req)
{
	call_free(req->body_state);
	req->body_state = NULL;
}

static void *call_main(void *arg)
{
	struct token_call *call = arg;
	fetch(call);
	atomic_fetch_sub(&calls_running, 1);
	berth_req_resume(call->req); /* call is the request's state now: answer() frees it */
	return NULL;
}

void berth_ui_token(struct berth_request *req)
{
	const char *realm, *service;
	const char *scope = berth_req_query(req, "scope");
	const char *authorization = berth_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);

	if (!berth_auth_token_server(&realm, &service, berth_api_auth(req))) {
		berth_api_answer(req, BERTH_API_NO_ENDPOINT,
				 "tokens are forwarded only with auth.token and a fixed realm (no autoredirect)", NULL);
		return;
	}
	if (scope && !scope_valid(scope)) {
		berth_api_answer(req, BERTH_API_ARGUMENT_INVALID, "invalid scope", NULL);
		return;
	}
	if (atomic_fetch_add(&calls_running, 1) >= UI_TOKEN_CALLS) {
		atomic_fetch_sub(&calls_running, 1);
		berth_api_answer(req, BERTH_API_TOO_MANY_REQUESTS, "too many token requests at once", NULL);
		return;
	}
	pthread_once(&curl_once, init_curl);
	struct token_call *call = berth_calloc(1, sizeof(*call));
	struct berth_buf body = BERTH_BUF_INIT(TOKEN_BODY_MAX);
	call->body = body;
	call->req = req;
	char *service_q = curl_easy_escape(NULL, service, 0);
	char *scope_q = scope ? curl_easy_escape(NULL, scope, 0) : NULL;
	call->url = berth_asprintf("%s%cservice=%s%s%s", realm, strchr(realm, '?') ? '&' : '?', service_q,
				   scope_q ? "&scope=" : "", scope_q ? scope_q : "");
	curl_free(service_q);
	curl_free(scope_q);
	/* Only Basic credentials go to the token server; a bearer token is berth's business. */
	if (authorization && strncasecmp(authorization, "Basic ", 6) == 0)
		call->authorization = berth_strdup(authorization);

	pthread_t thread;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	req->body_state = call;
	req->cleanup = call_cleanup;
	berth_req_suspend(req, answer);
	if (pthread_create(&thread, &attr, call_main, call) != 0) {
		/* No thread: the call fails at once, answered as unreachable. */
		snprintf(call->curl_error, sizeof(call->curl_error), "cannot start a thread");
		atomic_fetch_sub(&calls_running, 1);
		berth_req_resume(req);
	}
	pthread_attr_destroy(&attr);
}

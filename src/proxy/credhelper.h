/*
 * A Docker credential helper (proxy.exec) giving the pull-through cache its upstream
 * credentials, as Distribution 3 runs one: `<command> get` (no shell; the command is looked up
 * in PATH when it has no '/'), the server's host[:port] on its standard input (no newline), the
 * JSON {"Username": ..., "Secret": ...} read from its standard output (keys matched without
 * regard to case, as Go's decoder does; others ignored); its standard error is berth's. What it
 * printed is kept for `lifetime`: unset, for good (it runs once, or until it succeeds); 0, it
 * runs again for every call; otherwise it runs again once that long has passed. One cache for
 * every host asked, as Distribution's.
 *
 * berth's own: a run that takes longer than the timeout is killed (SIGKILL, its pid) and fails;
 * calls arriving while a run is under way wait for it and share its outcome, so a slow or
 * hanging helper is run once, not once per waiting call. A failed run is logged once (the
 * command, the host, its exit status or signal and what it printed) and not kept: the next
 * call runs the helper again.
 */
#ifndef BERTH_PROXY_CREDHELPER_H
#define BERTH_PROXY_CREDHELPER_H

#include <stdint.h>

struct berth_credhelper;

struct berth_credhelper_config {
	const char *command;  /* exec.command */
	int64_t lifetime_ms;  /* exec.lifetime: -1 unset, 0 every call, else how long a result is kept */
	long timeout_ms;      /* a run that has not ended by then is killed */
	const char *label;    /* names the upstream in the log */
};

/* 0, or BERTH_EINVALID (no command). */
int berth_credhelper_new(struct berth_credhelper **out, const struct berth_credhelper_config *cfg);
void berth_credhelper_free(struct berth_credhelper *h); /* accepts NULL; no run may be under way */

/*
 * The credentials for server (host[:port]): the kept ones while they last, else the helper's
 * (run now, or the outcome of the run under way). 0 with *username and *secret the caller's to
 * free (either may be ""); BERTH_ERROR when the run failed (not started, killed at the timeout,
 * a status other than 0, or no JSON object printed), with the reason (berth_err_set), already
 * logged. Blocks up to about the timeout (longer only for calls queued behind a run): never on
 * an HTTP polling thread. The process must ignore SIGPIPE (berth's main does): a helper may
 * exit without reading its input.
 */
int berth_credhelper_get(char **username, char **secret, struct berth_credhelper *h, const char *server);

#endif

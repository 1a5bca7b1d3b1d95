/* The upstream's credential helper (proxy/credhelper.h). */
#include "proxy/credhelper.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

extern char **environ;

#define OUTPUT_MAX (64 * 1024) /* a helper printing more is not a credential helper */
#define SHOWN_MAX 200          /* of its output, in a log line */

struct berth_credhelper {
	char *command, *label;
	int64_t lifetime_ms;
	long timeout_ms;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t done;  /* a run ended */
	int running;
	uint64_t runs;        /* runs ended so far */
	int have;             /* username/secret hold a run's result (the last run succeeded, or an
			       * earlier one and the last failed) */
	int last_failed;      /* the last run failed, with last_error */
	char *username, *secret;
	uint64_t expires_ns;  /* with a lifetime > 0 */
	char last_error[BERTH_ERR_MESSAGE_MAX];
};

int berth_credhelper_new(struct berth_credhelper **out, const struct berth_credhelper_config *cfg)
{
	if (!cfg->command || !cfg->command[0])
		return berth_err_set(BERTH_EINVALID, "no credential helper command");
	struct berth_credhelper *h = berth_calloc(1, sizeof(*h));
	h->command = berth_strdup(cfg->command);
	h->label = berth_strdup(cfg->label ? cfg->label : "");
	h->lifetime_ms = cfg->lifetime_ms;
	h->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->done, NULL);
	*out = h;
	return 0;
}

void berth_credhelper_free(struct berth_credhelper *h)
{
	if (!h)
		return;
	pthread_cond_destroy(&h->done);
	pthread_mutex_destroy(&h->lock);
	free(h->command);
	free(h->label);
	free(h->username);
	free(h->secret);
	free(h);
}

/* ---- one run ---- */

static int64_t remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = berth_now_ns();
	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000 + 1);
}

/* Starts `command get` with its stdin and stdout on pipes; *in_fd and *out_fd are the parent's
 * ends. The child gets no other descriptor of berth's, default signal handling and an empty
 * signal mask (berth blocks SIGTERM in every thread and ignores SIGPIPE; both would be
 * inherited). */
static int spawn(pid_t *pid, int *in_fd, int *out_fd, const char *command)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return berth_err_set(BERTH_ERROR, "cannot make a pipe: %s", berth_err_os_text(errno));
	if (pipe2(out, O_CLOEXEC) < 0) {
		int e = errno;
		close(in[0]);
		close(in[1]);
		return berth_err_set(BERTH_ERROR, "cannot make a pipe: %s", berth_err_os_text(e));
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGHUP);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	char *argv[] = { (char *)command, (char *)"get", NULL };
	int e = posix_spawnp(pid, command, &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (e != 0) {
		close(in[1]);
		close(out[0]);
		return berth_err_set(BERTH_ERROR, "cannot run it: %s", berth_err_os_text(e));
	}
	*in_fd = in[1];
	*out_fd = out[0];
	return 0;
}

/* Reads fd to its end into out, until the deadline. 0, BERTH_EBUSY (the deadline passed),
 * BERTH_ETOOLARGE or BERTH_ERROR. */
static int read_all(struct berth_buf *out, int fd, uint64_t deadline_ns)
{
	char chunk[4096];
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = remaining_ms(deadline_ns);
		if (left == 0)
			return BERTH_EBUSY;
		int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			return BERTH_ERROR;
		if (n <= 0)
			continue;
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return BERTH_ERROR;
		}
		if (berth_buf_append(out, chunk, (size_t)r) < 0)
			return BERTH_ETOOLARGE;
	}
}

/* Waits for pid to exit until the deadline (then kills it): its wait status, or -1 when it was
 * killed here. */
static int reap(pid_t pid, uint64_t deadline_ns)
{
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return status; /* not ours any more: nothing to wait for */
		if (remaining_ms(deadline_ns) == 0)
			break;
		usleep(5000);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

/* Its output for a log line: trimmed, cut, control characters as '?'. */
static void shown(char *dst, size_t cap, const struct berth_buf *b)
{
	const char *p = b->data ? b->data : "";
	size_t n = b->len;
	while (n > 0 && isspace((unsigned char)*p))
		p++, n--;
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	size_t i = 0;
	for (; i < n && i + 1 < cap; i++)
		dst[i] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
	dst[i] = '\0';
	if (i < n && cap > 4)
		memcpy(dst + cap - 4, "...", 4);
}

/* {"Username": ..., "Secret": ...}: 0 with both set (maybe ""), or BERTH_EINVALID. */
static int parse(char **username, char **secret, const struct berth_buf *b)
{
	json_error_t jerr;
	/* Go's json.Decoder reads the first value and leaves what follows. */
	json_t *doc = json_loadb(b->data ? b->data : "", b->len, JSON_DISABLE_EOF_CHECK, &jerr);
	const char *user = "", *pass = "";
	int rc = 0;
	if (!doc)
		return berth_err_set(BERTH_EINVALID, "its output is not JSON: %s", jerr.text);
	if (json_is_object(doc)) {
		const char *key;
		json_t *v;
		json_object_foreach(doc, key, v) {
			const char **field = strcasecmp(key, "username") == 0 ? &user
					     : strcasecmp(key, "secret") == 0 ? &pass : NULL;
			if (!field || json_is_null(v))
				continue;
			if (!json_is_string(v)) {
				rc = berth_err_set(BERTH_EINVALID, "its %s is not a string", key);
				break;
			}
			*field = json_string_value(v);
		}
	} else if (!json_is_null(doc)) {
		rc = berth_err_set(BERTH_EINVALID, "its output is not a JSON object");
	}
	if (rc == 0) {
		*username = berth_strdup(user);
		*secret = berth_strdup(pass);
	}
	json_decref(doc);
	return rc;
}

/* Runs the helper once for server: 0 with the credentials, or BERTH_ERROR with the reason. */
static int run(char **username, char **secret, const struct berth_credhelper *h, const char *server)
{
	struct berth_buf out = BERTH_BUF_INIT(OUTPUT_MAX);
	char text[SHOWN_MAX + 1];
	uint64_t deadline = berth_now_ns() + (uint64_t)h->timeout_ms * 1000000ull;
	pid_t pid = 0;
	int in_fd = -1, out_fd = -1;
	int rc = spawn(&pid, &in_fd, &out_fd, h->command);
	if (rc < 0)
		return rc;
	/* A host name fits the pipe's buffer: this never blocks. A helper gone already is EPIPE. */
	if (write(in_fd, server, strlen(server)) < 0 && errno != EPIPE)
		berth_debug("credential helper: cannot write its input: %s", berth_err_os_text(errno));
	close(in_fd);
	int read_rc = read_all(&out, out_fd, deadline);
	close(out_fd);
	int status = reap(pid, read_rc == 0 ? deadline : 0);
	shown(text, sizeof(text), &out);
	if (status == -1 && read_rc != BERTH_ETOOLARGE)
		rc = berth_err_set(BERTH_ERROR, "it did not finish within %ld ms: killed", h->timeout_ms);
	else if (read_rc == BERTH_ETOOLARGE)
		rc = berth_err_set(BERTH_ERROR, "it printed more than %d KiB", OUTPUT_MAX / 1024);
	else if (WIFSIGNALED(status))
		rc = berth_err_set(BERTH_ERROR, "it was killed by signal %d", WTERMSIG(status));
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		rc = berth_err_set(BERTH_ERROR, "exit status %d%s%s", WEXITSTATUS(status), text[0] ? ": " : "", text);
	else if (read_rc == BERTH_EBUSY) /* it exited, and something it started holds its output */
		rc = berth_err_set(BERTH_ERROR, "its output did not end within %ld ms", h->timeout_ms);
	else if (read_rc < 0)
		rc = berth_err_set(BERTH_ERROR, "cannot read its output");
	else if ((rc = parse(username, secret, &out)) < 0)
		rc = berth_err_set(BERTH_ERROR, "%s", berth_err_message(rc));
	berth_buf_release(&out);
	return rc;
}

/* ---- the cache ---- */

static int fresh(const struct berth_credhelper *h)
{
	if (!h->have || h->last_failed)
		return 0;
	if (h->lifetime_ms < 0)
		return 1;
	return h->lifetime_ms > 0 && berth_now_ns() < h->expires_ns;
}

static void copy_out(char **username, char **secret, const struct berth_credhelper *h)
{
	*username = berth_strdup(h->username);
	*secret = berth_strdup(h->secret);
}

int berth_credhelper_get(char **username, char **secret, struct berth_credhelper *h, const char *server)
{
	pthread_mutex_lock(&h->lock);
	if (fresh(h)) {
		copy_out(username, secret, h);
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	if (h->running) { /* its outcome is this call's too */
		uint64_t runs = h->runs;
		while (h->runs == runs)
			pthread_cond_wait(&h->done, &h->lock);
		int failed = h->last_failed;
		char why[BERTH_ERR_MESSAGE_MAX];
		if (failed)
			snprintf(why, sizeof(why), "%s", h->last_error);
		else
			copy_out(username, secret, h);
		pthread_mutex_unlock(&h->lock);
		return failed ? berth_err_set(BERTH_ERROR, "%s", why) : 0;
	}
	h->running = 1;
	pthread_mutex_unlock(&h->lock);

	char *user = NULL, *pass = NULL;
	int rc = run(&user, &pass, h, server);
	char why[BERTH_ERR_MESSAGE_MAX] = "";
	if (rc < 0) {
		snprintf(why, sizeof(why), "credential helper '%s get' for %s: %s", h->command, server,
			 berth_err_message(rc));
		berth_error("upstream %s: %s", h->label, why);
	}

	pthread_mutex_lock(&h->lock);
	h->running = 0;
	h->runs++;
	h->last_failed = rc < 0;
	if (rc == 0) {
		free(h->username);
		free(h->secret);
		h->username = user;
		h->secret = pass;
		h->have = 1;
		if (h->lifetime_ms > 0)
			h->expires_ns = berth_now_ns() + (uint64_t)h->lifetime_ms * 1000000ull;
		copy_out(username, secret, h);
	} else {
		snprintf(h->last_error, sizeof(h->last_error), "%s", why);
	}
	pthread_cond_broadcast(&h->done);
	pthread_mutex_unlock(&h->lock);
	return rc < 0 ? berth_err_set(BERTH_ERROR, "%s", why) : 0;
}

/*
 * berth error codes. Every fallible function returns an int: 0 on success, a negative
 * BERTH_E* code on failure. Codes are propagated unchanged and translated to HTTP status
 * and OCI error JSON once, in api/errors.c.
 */
#ifndef BERTH_CORE_ERR_H
#define BERTH_CORE_ERR_H

enum berth_err {
	BERTH_OK = 0,
	BERTH_ERROR = -1,        /* generic failure (I/O error, internal) */
	BERTH_ENOTFOUND = -2,    /* path, blob, manifest, tag or upload does not exist */
	BERTH_EEXISTS = -3,      /* target already exists */
	BERTH_EINVALID = -4,     /* malformed input */
	BERTH_EDIGEST = -5,      /* content does not hash to the expected digest */
	BERTH_ETOOLARGE = -6,    /* over a size cap */
	BERTH_EUNSUPPORTED = -7, /* operation not supported (by a driver or by configuration) */
	BERTH_ERANGE = -8,       /* range or offset not satisfiable */
	BERTH_ENOSPC = -9,       /* storage is full */
	BERTH_EBUSY = -10,       /* resource in use by another request */
	BERTH_EUNAUTHORIZED = -11, /* no or bad credentials: answer 401 with a challenge */
	BERTH_EDENIED = -12,     /* valid credentials without the access asked for */
	BERTH_EUNAVAILABLE = -13, /* a backend (S3) unreachable or busy after every retry: 503 */
};

/* A short lowercase name for an error code, for logs. Never NULL. */
const char *berth_strerror(int code);

/*
 * The message that goes with a failure: one way for every layer. A function whose failure has
 * something to tell (which manifest member is wrong, which tag is immutable, the operating
 * system's "permission denied") sets it as it returns the code:
 *
 *     return berth_err_set(BERTH_EDENIED, "tag %s is immutable", tag);
 *
 * and the code travels back unchanged, as return values do; whoever answers the failure reads
 * the words with berth_err_message(code), whoever logs it with berth_err_reason(code), which
 * also forgets them. A failure without a message of its own reads as berth_strerror(code).
 *
 * Kept per thread, as libgit2 keeps git_error_last, not on an explicit operation context: every
 * chain that sets and reads a failure runs on one thread (a request's handler, its registry and
 * storage calls all run inside one libmicrohttpd callback; start-up, the CLI commands, gc and
 * fsck are single-threaded), so a context argument would be threaded through every registry call
 * and driver slot only to reach the same place. The two places where a failure outlives its call
 * or crosses threads carry it explicitly, with berth_err_save / berth_err_restore (libgit2's
 * git_error_save / git_error_restore): the request's failure recorded while its body arrives
 * (api/errors.c, answered by a later callback, when the thread may have served other requests
 * in between) and a body pipe's writer thread's failure (registry/uploads.c). The api layer
 * clears the thread's failure as each request starts, so nothing of one request reaches the next.
 */
#define BERTH_ERR_MESSAGE_MAX 512

struct berth_failure {
	int code;                           /* BERTH_E*; BERTH_OK when there is none */
	int os_errno;                       /* the errno behind it (berth_err_set_os), or 0 */
	char message[BERTH_ERR_MESSAGE_MAX]; /* lowercase, no final period; cut to fit */
};

/* Makes `code` with its message this thread's failure, replacing any earlier one, and returns
 * `code` (so that `return berth_err_set(...)` reads as the failure it is). A message longer
 * than BERTH_ERR_MESSAGE_MAX - 1 bytes is cut. An argument may be the current message. */
int berth_err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a failure whose reason is the operating system's: the message is errno's text,
 * lowercase ("permission denied", "no space left on device"). Returns `code`. */
int berth_err_set_os(int code, int os_errno);
/* This thread's failure, or NULL when none was set since the last clear. Borrowed: valid until
 * the next berth_err_* call on the thread. */
const struct berth_failure *berth_err_last(void);
/* The message of the failure `code` names, for an answer: the thread's failure's message when
 * its code is `code`, otherwise berth_strerror(code) (so an error body never shows the words of
 * another failure). Never NULL; valid until the next berth_err_* call on the thread. */
const char *berth_err_message(int code);
/* The reason of the failure `code` names, for a log line, and the thread's failure is forgotten
 * (a failure is reported once): berth_err_message(code), or the thread's failure's OS reason
 * whatever its code (a driver's errno stays the reason of whatever code the layers above return
 * for it). Never NULL; valid until the next berth_err_* call on the thread. */
const char *berth_err_reason(int code);
/* Forgets the thread's failure. */
void berth_err_clear(void);
/* Moves the thread's failure to *out (out->code is BERTH_OK when there was none): to keep it
 * past this call or hand it to another thread. */
void berth_err_save(struct berth_failure *out);
/* Makes a saved failure this thread's again (none if saved->code is BERTH_OK); returns its code. */
int berth_err_restore(const struct berth_failure *saved);
/* An errno's text, lowercase ("is a directory"), in a per-thread buffer valid until the next
 * call: for messages composed at the system call (berth_err_set(..., "...: %s",
 * berth_err_os_text(errno))). */
const char *berth_err_os_text(int os_errno);

#endif

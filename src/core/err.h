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
 * The operating system's reason behind a storage failure (permission denied, no space left on
 * device, read-only file system, ...), which the BERTH_E* code alone does not tell an operator.
 * A storage driver notes the errno of an unexpected failure on the calling thread;
 * berth_err_reason(code) then gives its text, lowercase, and forgets it, or berth_strerror(code)
 * when none was noted. Its string is a per-thread buffer, valid until the next call on the
 * thread. berth_err_clear_os forgets a note, so that one from an earlier, handled failure is
 * never shown for a later one (called at the start of each request).
 */
void berth_err_note_os(int os_errno);
/* An errno's text, lowercase ("is a directory"), in the same per-thread buffer. */
const char *berth_err_os_text(int os_errno);
void berth_err_clear_os(void);
/* The noted errno (0 if none), forgotten: to carry it to another thread, which notes it again. */
int berth_err_take_os(void);
const char *berth_err_reason(int code);

#endif

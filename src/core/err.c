#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

/* This thread's failure (core/err.h says why per thread); code BERTH_OK when there is none. */
static _Thread_local struct berth_failure last;
static _Thread_local char os_text_buf[128];
static _Thread_local char reason_buf[BERTH_ERR_MESSAGE_MAX];

const char *berth_strerror(int code)
{
	switch (code) {
	case BERTH_OK: return "ok";
	case BERTH_ENOTFOUND: return "not found";
	case BERTH_EEXISTS: return "already exists";
	case BERTH_EINVALID: return "invalid";
	case BERTH_EDIGEST: return "digest mismatch";
	case BERTH_ETOOLARGE: return "too large";
	case BERTH_EUNSUPPORTED: return "unsupported";
	case BERTH_ERANGE: return "range not satisfiable";
	case BERTH_ENOSPC: return "no space left on storage";
	case BERTH_EBUSY: return "busy";
	case BERTH_EUNAUTHORIZED: return "unauthorized";
	case BERTH_EDENIED: return "denied";
	case BERTH_EUNAVAILABLE: return "storage unavailable";
	default: return "error";
	}
}

int berth_err_set(int code, const char *fmt, ...)
{
	char message[BERTH_ERR_MESSAGE_MAX];
	va_list ap;

	/* Formatted aside first: an argument may be the current message (re-coding a failure). */
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	last.code = code;
	last.os_errno = 0;
	memcpy(last.message, message, sizeof(message));
	return code;
}

/* strerror's text, lowercase, into dst. */
static void os_text(char *dst, size_t cap, int os_errno)
{
	/* strerror_r's two flavours differ by feature macros; strerror's text copied at once is
	 * enough here. */
	snprintf(dst, cap, "%s", strerror(os_errno));
	dst[0] = (char)tolower((unsigned char)dst[0]);
}

int berth_err_set_os(int code, int os_errno)
{
	last.code = code;
	last.os_errno = os_errno;
	os_text(last.message, sizeof(last.message), os_errno);
	return code;
}

const struct berth_failure *berth_err_last(void)
{
	return last.code == BERTH_OK ? NULL : &last;
}

const char *berth_err_message(int code)
{
	return last.code != BERTH_OK && last.code == code ? last.message : berth_strerror(code);
}

const char *berth_err_reason(int code)
{
	const char *msg = berth_strerror(code);
	if (last.code != BERTH_OK && (last.code == code || last.os_errno)) {
		/* copied out before the failure is forgotten */
		memcpy(reason_buf, last.message, sizeof(reason_buf));
		msg = reason_buf;
	}
	berth_err_clear();
	return msg;
}

void berth_err_clear(void)
{
	last.code = BERTH_OK;
	last.os_errno = 0;
	last.message[0] = '\0';
}

void berth_err_save(struct berth_failure *out)
{
	*out = last;
	berth_err_clear();
}

int berth_err_restore(const struct berth_failure *saved)
{
	if (saved->code == BERTH_OK)
		berth_err_clear();
	else
		last = *saved;
	return saved->code;
}

const char *berth_err_os_text(int os_errno)
{
	os_text(os_text_buf, sizeof(os_text_buf), os_errno);
	return os_text_buf;
}

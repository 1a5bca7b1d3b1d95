#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

static _Thread_local int noted_os_errno;
static _Thread_local char reason_buf[128];

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

void berth_err_note_os(int os_errno)
{
	noted_os_errno = os_errno;
}

void berth_err_clear_os(void)
{
	noted_os_errno = 0;
}

int berth_err_take_os(void)
{
	int e = noted_os_errno;
	noted_os_errno = 0;
	return e;
}

const char *berth_err_os_text(int os_errno)
{
	/* strerror_r's two flavours differ by feature macros; a copy of strerror's text into
	 * this thread's buffer is enough for a log line. */
	snprintf(reason_buf, sizeof(reason_buf), "%s", strerror(os_errno));
	reason_buf[0] = (char)tolower((unsigned char)reason_buf[0]);
	return reason_buf;
}

const char *berth_err_reason(int code)
{
	int e = berth_err_take_os();
	return e ? berth_err_os_text(e) : berth_strerror(code);
}

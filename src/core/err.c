#include "core/err.h"

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
	default: return "error";
	}
}

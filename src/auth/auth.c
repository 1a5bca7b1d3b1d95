/* Placeholder until the htpasswd and token authenticators land: no auth section, no auth. */
#include "auth/auth.h"

#include <stdio.h>

#include "config/config.h"
#include "core/err.h"

int berth_auth_new(struct berth_auth **out, const struct berth_config *cfg, char *err, size_t errlen)
{
	*out = NULL;
	if (cfg->auth.kind == BERTH_AUTH_NONE)
		return 0;
	snprintf(err, errlen, "auth is not supported yet");
	return -1;
}

void berth_auth_free(struct berth_auth *a)
{
	(void)a;
}

int berth_auth_authorize(struct berth_auth *a, const char *authorization,
			 const struct berth_access *access, size_t n, char *challenge, size_t challenge_cap,
			 char *user, size_t user_cap)
{
	(void)a, (void)authorization, (void)access, (void)n, (void)challenge, (void)challenge_cap;
	(void)user, (void)user_cap;
	return BERTH_ERROR;
}

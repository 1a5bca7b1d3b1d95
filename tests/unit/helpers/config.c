#include "helpers/config.h"

#include <stdio.h>

#include "config/config.h"

int berth_test_config_load(struct berth_config *cfg, const char *dir, const char *text, char *err,
			   size_t errlen)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/config.yml", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int written = fputs(text, f) >= 0;
	if (fclose(f) != 0 || !written)
		return -1;
	return berth_config_load(cfg, path, err, errlen);
}

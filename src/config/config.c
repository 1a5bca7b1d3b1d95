#include "config/config.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

void berth_config_defaults(struct berth_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->addr, sizeof(cfg->addr), "127.0.0.1:5000");
	cfg->storage = BERTH_STORAGE_FILESYSTEM;
	snprintf(cfg->rootdirectory, sizeof(cfg->rootdirectory), "./data");
	cfg->manifest_max = 4u << 20;
	cfg->log_level = BERTH_LOG_INFO;
	cfg->access_log = 1;
}

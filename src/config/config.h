/*
 * Everything that configures a running berth, in one struct: the command line fills it today,
 * and the config.yml loader (Distribution's format) will fill the same fields.
 */
#ifndef BERTH_CONFIG_CONFIG_H
#define BERTH_CONFIG_CONFIG_H

#include <stddef.h>

enum berth_storage_kind { BERTH_STORAGE_FILESYSTEM, BERTH_STORAGE_INMEMORY };

struct berth_config {
	char addr[256];                   /* http.addr */
	enum berth_storage_kind storage;  /* storage.filesystem | storage.inmemory */
	char rootdirectory[4096];         /* storage.filesystem.rootdirectory */
	int delete_enabled;               /* storage.delete.enabled */
	size_t manifest_max;              /* largest manifest accepted */
	unsigned threads;                 /* HTTP polling threads, 0 = one per core */
	int log_level;                    /* enum berth_log_level */
	int access_log;                   /* log.accesslog.disabled inverted */
};

/* The embedded defaults: filesystem storage in ./data, listening on 127.0.0.1:5000. */
void berth_config_defaults(struct berth_config *cfg);

#endif

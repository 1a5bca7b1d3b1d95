/* Between storage.c's table of drivers and the drivers' configuration readers. */
#ifndef BERTH_STORAGE_STORAGE_INT_H
#define BERTH_STORAGE_STORAGE_INT_H

#include <stddef.h>

struct berth_config;
struct berth_storage_driver;

/* storage.s3.* (storage/s3_config.c): validates the keys, builds the driver and checks the bucket
 * answers. 0, or a BERTH_E* code with a one-line reason in msg. */
int berth_storage__open_s3(struct berth_storage_driver **out, const struct berth_config *cfg);

#endif

/*
 * Loading a config.yml written by a unit test (test_config_policies, test_config_middleware).
 * Linked into every unit test (tests/CMakeLists.txt).
 */
#ifndef BERTH_TEST_CONFIG_H
#define BERTH_TEST_CONFIG_H

#include <stddef.h>

struct berth_config;

/* Writes text to <dir>/config.yml and loads it with berth_config_load(cfg, that path, err,
 * errlen): its result (-1 also when the file cannot be written). */
int berth_test_config_load(struct berth_config *cfg, const char *dir, const char *text, char *err,
			   size_t errlen);

#endif

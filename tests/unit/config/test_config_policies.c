/*
 * The berth-specific `policies` section of config.yml: every key honoured (read into the struct,
 * from the file and from REGISTRY_POLICIES_* variables) or the load refused naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "helpers/config.h"
#include "helpers/tmproot.h"

static char tmpdir[256];
static char errbuf[1024];

#define MINIMAL "version: 0.1\nstorage:\n  inmemory:\n"

static int setup(void **state)
{
	(void)state;
	return berth_test_root_new(tmpdir, sizeof(tmpdir), "config-policies");
}

static int teardown(void **state)
{
	(void)state;
	return berth_test_root_remove(tmpdir);
}

static int load(struct berth_config *cfg, const char *text)
{
	return berth_test_config_load(cfg, tmpdir, text, errbuf, sizeof(errbuf));
}

static void test_immutabletags_are_read(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  immutabletags:\n"
				     "    - repository: prod/.*\n      tags: v[0-9]+\n"
				     "    - repository: frozen\n"),
			 0);
	assert_int_equal(cfg.policies.n_immutabletags, 2);
	assert_string_equal(cfg.policies.immutabletags[0].repository, "prod/.*");
	assert_string_equal(cfg.policies.immutabletags[0].tags, "v[0-9]+");
	assert_string_equal(cfg.policies.immutabletags[1].repository, "frozen");
	assert_string_equal(cfg.policies.immutabletags[1].tags, "");
	berth_config_release(&cfg);
}

static void test_immutabletags_from_the_environment(void **state)
{
	struct berth_config cfg;
	(void)state;
	setenv("REGISTRY_POLICIES_IMMUTABLETAGS_0_TAGS", "release-.*", 1);
	setenv("REGISTRY_POLICIES_IMMUTABLETAGS_1", "{repository: b}", 1);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  immutabletags:\n    - repository: a\n"), 0);
	unsetenv("REGISTRY_POLICIES_IMMUTABLETAGS_0_TAGS");
	unsetenv("REGISTRY_POLICIES_IMMUTABLETAGS_1");
	assert_int_equal(cfg.policies.n_immutabletags, 2);
	assert_string_equal(cfg.policies.immutabletags[0].repository, "a");
	assert_string_equal(cfg.policies.immutabletags[0].tags, "release-.*");
	assert_string_equal(cfg.policies.immutabletags[1].repository, "b");
	berth_config_release(&cfg);
}

static void test_bad_pattern_and_unknown_key_are_refused_by_name(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  immutabletags:\n    - tags: 'v[0-9'\n"), -1);
	if (!strstr(errbuf, ":6: policies.immutabletags[0].tags: invalid regular expression 'v[0-9'"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  immutabletags:\n    - repository: '(a'\n"), -1);
	if (!strstr(errbuf, "policies.immutabletags[0].repository: invalid regular expression"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  immutabletags: yes\n"), -1);
	if (!strstr(errbuf, "policies.immutabletags: expected a list"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
}

static void test_quotas_are_read(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  quotas:\n"
				     "    - repository: team/.*\n      tags: 500\n      repositories: 20\n"
				     "    - tags: 3\n      bytes: 0x40000000\n"),
			 0);
	assert_int_equal(cfg.policies.n_quotas, 2);
	assert_string_equal(cfg.policies.quotas[0].repository, "team/.*");
	assert_int_equal(cfg.policies.quotas[0].tags, 500);
	assert_int_equal(cfg.policies.quotas[0].repositories, 20);
	assert_string_equal(cfg.policies.quotas[1].repository, "");
	assert_int_equal(cfg.policies.quotas[1].repositories, 0);
	assert_int_equal(cfg.policies.quotas[0].bytes, 0);
	assert_int_equal(cfg.policies.quotas[1].bytes, 1 << 30);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  quotas:\n    - bytes: 10GB\n"), -1);
	if (!strstr(errbuf, "policies.quotas[0].bytes: expected an integer"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  quotas:\n    - tags: -1\n"), -1);
	if (!strstr(errbuf, "policies.quotas[0].tags"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
}

static void test_retention_is_read_unset_criteria_stay_unset(void **state)
{
	struct berth_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, MINIMAL), 0);
	assert_int_equal(cfg.policies.retention.n_rules, 0);
	assert_int_equal(cfg.policies.retention.interval_ms, 3600 * 1000);
	assert_int_equal(cfg.policies.retention.dryrun, 0);
	assert_int_equal(cfg.policies.retention.pullflush_ms, 60 * 1000);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  retention:\n    dryrun: true\n    interval: 90s\n"
				     "    pullflush: 5s\n"
				     "    rules:\n"
				     "      - repository: team/.*\n        keeplatest: 0\n        keeptags: v.*\n"
				     "        keeppushedwithin: 720h\n        untaggedafter: 1h30m\n"
				     "        keeppulledwithin: 48h\n"
				     "      - untaggedafter: 0s\n"),
			 0);
	assert_int_equal(cfg.policies.retention.dryrun, 1);
	assert_int_equal(cfg.policies.retention.interval_ms, 90 * 1000);
	assert_int_equal(cfg.policies.retention.n_rules, 2);
	const struct berth_retention_rule_config *r = cfg.policies.retention.rules;
	assert_string_equal(r[0].repository, "team/.*");
	assert_int_equal(r[0].keeplatest, 0);
	assert_string_equal(r[0].keeptags, "v.*");
	assert_int_equal(r[0].keeppushedwithin_ms, 720LL * 3600 * 1000);
	assert_int_equal(r[0].untaggedafter_ms, 90 * 60 * 1000);
	assert_int_equal(r[0].keeppulledwithin_ms, 48LL * 3600 * 1000);
	assert_string_equal(r[1].repository, "");
	assert_int_equal(r[1].keeplatest, -1);
	assert_string_equal(r[1].keeptags, "");
	assert_int_equal(r[1].keeppushedwithin_ms, -1);
	assert_int_equal(r[1].untaggedafter_ms, 0);
	assert_int_equal(r[1].keeppulledwithin_ms, -1);
	assert_int_equal(cfg.policies.retention.pullflush_ms, 5 * 1000);
	berth_config_release(&cfg);
	setenv("REGISTRY_POLICIES_RETENTION_RULES_0_KEEPLATEST", "7", 1);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  retention:\n    rules:\n      - repository: a\n"), 0);
	unsetenv("REGISTRY_POLICIES_RETENTION_RULES_0_KEEPLATEST");
	assert_int_equal(cfg.policies.retention.rules[0].keeplatest, 7);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  retention:\n    rules:\n      - keepnewest: 3\n"), -1);
	if (!strstr(errbuf, "policies.retention.rules[0].keepnewest: refused: unknown key"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
	assert_int_equal(load(&cfg, MINIMAL "policies:\n  retention:\n    pullflush: 0s\n"), -1);
	if (!strstr(errbuf, "policies.retention.pullflush: must be more than 0"))
		fail_msg("got: %s", errbuf);
	berth_config_release(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_immutabletags_are_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_immutabletags_from_the_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_pattern_and_unknown_key_are_refused_by_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_quotas_are_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_is_read_unset_criteria_stay_unset, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

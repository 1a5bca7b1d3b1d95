/* The `policies` section into the registry's configuration (cli/serve_setup.h). */
#include <stdlib.h>

#include "cli/serve_setup.h"
#include "core/util.h"
#include "registry/policy.h"
#include "registry/quota.h"
#include "registry/retention.h"

void berth_serve_policies(struct berth_registry_config *rcfg, const struct berth_config *cfg)
{
	size_t n = cfg->policies.n_immutabletags;
	struct berth_tag_rule *rules = berth_calloc(n ? n : 1, sizeof(*rules));
	for (size_t i = 0; i < n; i++) {
		rules[i].repository = cfg->policies.immutabletags[i].repository;
		rules[i].tags = cfg->policies.immutabletags[i].tags;
	}
	rcfg->immutable_tags = rules;
	rcfg->n_immutable_tags = n;

	n = cfg->policies.n_quotas;
	struct berth_quota_rule *quotas = berth_calloc(n ? n : 1, sizeof(*quotas));
	for (size_t i = 0; i < n; i++) {
		quotas[i].repository = cfg->policies.quotas[i].repository;
		quotas[i].tags = cfg->policies.quotas[i].tags;
		quotas[i].repositories = cfg->policies.quotas[i].repositories;
		quotas[i].bytes = cfg->policies.quotas[i].bytes;
	}
	rcfg->quotas = quotas;
	rcfg->n_quotas = n;

	n = cfg->policies.retention.n_rules;
	struct berth_retention_rule *retention = berth_calloc(n ? n : 1, sizeof(*retention));
	for (size_t i = 0; i < n; i++) {
		const struct berth_retention_rule_config *in = &cfg->policies.retention.rules[i];
		retention[i] = (struct berth_retention_rule){ in->repository, in->keeplatest, in->keeptags,
							      in->keeppushedwithin_ms, in->untaggedafter_ms,
							      in->keeppulledwithin_ms };
	}
	rcfg->retention_rules = retention;
	rcfg->n_retention_rules = n;
	rcfg->retention_dry_run = cfg->policies.retention.dryrun;
}

void berth_serve_release_policies(struct berth_registry_config *rcfg)
{
	free((void *)rcfg->immutable_tags);
	rcfg->immutable_tags = NULL;
	free((void *)rcfg->quotas);
	rcfg->quotas = NULL;
	free((void *)rcfg->retention_rules);
	rcfg->retention_rules = NULL;
}

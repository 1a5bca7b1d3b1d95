/*
 * REGISTRY_* environment overrides, as Distribution's configuration parser applies them:
 * REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY -> storage.filesystem.rootdirectory. Variables are
 * applied in name order (digit runs compared as numbers), so REGISTRY_STORAGE=s3 comes before
 * REGISTRY_STORAGE_S3_REGION. Scalar keys take the raw value, through the same setters as the
 * YAML file. Lists, maps and whole sections take the value parsed as YAML (a flow value such as
 * "[a, b]" or "{enabled: true}"), as Distribution does; a list item or map entry can also be
 * addressed directly (..._CLIENTCAS_0, ..._HEADERS_X-FOO, ..._ENDPOINTS_0_URL).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "core/err.h"
#include "core/util.h"

extern char **environ;

#define PREFIX "REGISTRY_"
#define MAX_COMPS 32

/* strcmp, except that runs of digits compare by value: _2 before _10. */
static int natural_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			size_t na = 0, nb = 0;
			while (isdigit((unsigned char)a[na]))
				na++;
			while (isdigit((unsigned char)b[nb]))
				nb++;
			if (na != nb)
				return na < nb ? -1 : 1;
			int d = memcmp(a, b, na);
			if (d)
				return d;
			a += na;
			b += nb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

/* Orders "NAME=value" strings by NAME. */
static int cmp_vars(const void *x, const void *y)
{
	const char *a = *(char *const *)x, *b = *(char *const *)y;
	char na[512], nb[512];
	snprintf(na, sizeof(na), "%.*s", (int)strcspn(a, "="), a);
	snprintf(nb, sizeof(nb), "%.*s", (int)strcspn(b, "="), b);
	return natural_cmp(na, nb);
}

static int unrecognized(struct cfg_ctx *c)
{
	berth_config__warn(c, 0, "unrecognized environment variable, ignored");
	return 0;
}

static int parse_index(const char *s, size_t *out)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return BERTH_ERROR;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v > 1000000)
		return BERTH_ERROR;
	*out = v;
	return 0;
}

/* comps[from..n-1] joined with '_' (a map key that itself contains '_'). */
static const char *join_rest(char *buf, size_t len, char **comps, size_t from, size_t n)
{
	buf[0] = '\0';
	for (size_t i = from; i < n; i++) {
		size_t used = strlen(buf);
		snprintf(buf + used, len - used, "%s%s", i > from ? "_" : "", comps[i]);
	}
	return buf;
}

/* The value parsed as YAML, applied to key k, or to a section when k is NULL. */
static int apply_yaml(struct cfg_ctx *c, const struct cfg_table *t, const struct cfg_key *k, void *base,
		      const char *key, const char *disp, const char *value)
{
	yaml_document_t doc;
	yaml_node_t *root;
	int rc = 0;

	if (berth_config__yaml_string(c, value, &doc, &root) < 0)
		return BERTH_ERROR;
	if (root && k)
		rc = berth_config__yaml_apply(c, t, k, base, key, disp, 0, &doc, root);
	else if (root)
		rc = berth_config__yaml_walk_map(c, t, base, key, disp, CG_NONE, &doc, root);
	yaml_document_delete(&doc);
	return rc;
}

static int set_list_item(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *disp,
			 size_t idx, const char *value)
{
	struct berth_strlist *l = (struct berth_strlist *)((char *)base + k->off);
	char d[512];

	snprintf(d, sizeof(d), "%s[%zu]", disp, idx);
	if (idx > l->n)
		return berth_config__fail(c, 0, d, "index out of range (the list has %zu items)", l->n);
	if (idx == l->n && l->n >= k->max_items)
		return berth_config__fail(c, 0, disp, "too many items (at most %zu)", k->max_items);
	if (k->type == CT_REGEXLIST && berth_config__check_regex(c, 0, d, value) < 0)
		return BERTH_ERROR;
	if (idx == l->n) {
		l->v = berth_realloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->v[l->n++] = berth_strdup(value);
	} else {
		free(l->v[idx]);
		l->v[idx] = berth_strdup(value);
	}
	return 0;
}

static int set_map_entry(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *disp,
			 const char *name, const char *value)
{
	struct berth_strmap *m = (struct berth_strmap *)((char *)base + k->off);
	for (size_t i = 0; i < m->n; i++)
		if (strcasecmp(m->v[i].key, name) == 0) {
			free(m->v[i].value);
			m->v[i].value = berth_strdup(value);
			return 0;
		}
	if (m->n >= k->max_items)
		return berth_config__fail(c, 0, disp, "too many entries (at most %zu)", k->max_items);
	m->v = berth_realloc(m->v, (m->n + 1) * sizeof(*m->v));
	m->v[m->n].key = berth_strdup(name);
	m->v[m->n++].value = berth_strdup(value);
	return 0;
}

/* REGISTRY_HTTP_HEADERS_X-FOO='[a, b]': one header's values. */
static int set_header(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *disp,
		      const char *name, const char *value)
{
	struct berth_headers *h = (struct berth_headers *)((char *)base + k->off);
	struct cfg_key values = { .key = k->key, .type = CT_STRLIST, .max_items = BERTH_CONFIG_MAX_LIST };
	struct berth_strlist l = { 0, NULL };
	yaml_document_t doc;
	yaml_node_t *root;
	char d[512];
	size_t i;
	int rc = 0;

	snprintf(d, sizeof(d), "%s.%s", disp, name);
	if (berth_config__yaml_string(c, value, &doc, &root) < 0)
		return BERTH_ERROR;
	if (root)
		rc = berth_config__yaml_strlist(c, &values, d, 0, &doc, root, &l);
	yaml_document_delete(&doc);
	if (rc < 0)
		return BERTH_ERROR;
	for (i = 0; i < h->n && strcasecmp(h->v[i].name, name) != 0; i++)
		;
	if (i == h->n) {
		if (h->n >= k->max_items) {
			berth_config__strlist_free(&l);
			return berth_config__fail(c, 0, disp, "too many headers (at most %zu)", k->max_items);
		}
		h->v = berth_realloc(h->v, (h->n + 1) * sizeof(*h->v));
		h->v[h->n].name = berth_strdup(name);
		h->v[h->n++].values = (struct berth_strlist){ 0, NULL };
	}
	berth_config__strlist_free(&h->v[i].values);
	h->v[i].values = l;
	return 0;
}

/* Resolves comps[0..n-1] in table t (elements of base) and applies the value. */
static int resolve(struct cfg_ctx *c, const struct cfg_table *t, void *base, char **comps, size_t n,
		   const char *disp_base, const char *value)
{
	char key[512] = "", disp[512] = "", tmp[512 + 32]; /* tmp holds disp + "[index]" */
	int parent_group = CG_NONE;
	size_t idx;

	for (size_t i = 0; i < n; i++) {
		size_t used = strlen(key);
		snprintf(key + used, sizeof(key) - used, "%s%s", used ? "." : "", comps[i]);
		berth_config__join(disp, sizeof(disp), disp_base, key);
		const struct cfg_key *k = berth_config__lookup(t, key);
		int last = i + 1 == n;
		if (!k) {
			if (berth_config__is_section(t, key)) {
				parent_group = CG_NONE;
				continue;
			}
			if (parent_group != CG_NONE)
				return berth_config__fail(c, 0, berth_config__groups[parent_group].section,
							  "unknown %s '%s'", berth_config__groups[parent_group].what,
							  comps[i]);
			if (berth_config__in_closed_section(key))
				return berth_config__fail(c, 0, disp, "refused: unknown key (berth knows only %s)",
							  berth_config__closed_section_keys(key));
			return unrecognized(c);
		}
		parent_group = CG_NONE;
		switch (k->type) {
		case CT_ANY:
			return 0;
		case CT_REFUSE: {
			int b;
			if (!*value || (berth_config__parse_bool(value, &b) == 0 && !b))
				return 0;
			return berth_config__refuse(c, k, disp, 0);
		}
		case CT_OBSOLETE:
			berth_config__warn(c, 0, "%s: %s", disp, k->why);
			return 0;
		case CT_GROUP:
			if (last)
				return apply_yaml(c, t, k, base, key, disp, value);
			parent_group = k->group;
			continue;
		case CT_CHOICE:
			if (berth_config__select(c, k->group, k->value, comps[i], 0, 0) < 0)
				return BERTH_ERROR;
			if (last)
				return apply_yaml(c, t, k, base, key, disp, value);
			continue;
		case CT_STRLIST:
		case CT_REGEXLIST:
			if (last)
				return apply_yaml(c, t, k, base, key, disp, value);
			if (i + 2 == n && parse_index(comps[i + 1], &idx) == 0)
				return set_list_item(c, k, base, disp, idx, value);
			return unrecognized(c);
		case CT_STRMAP:
			if (last)
				return apply_yaml(c, t, k, base, key, disp, value);
			return set_map_entry(c, k, base, disp, join_rest(tmp, sizeof(tmp), comps, i + 1, n), value);
		case CT_HEADERS:
			if (last)
				return apply_yaml(c, t, k, base, key, disp, value);
			return set_header(c, k, base, disp, join_rest(tmp, sizeof(tmp), comps, i + 1, n), value);
		case CT_LIST: {
			if (last)
				return apply_yaml(c, t, k, base, key, disp, value);
			if (parse_index(comps[i + 1], &idx) < 0)
				return unrecognized(c);
			void *elem = berth_config__list_elem(c, k, base, idx, 0, disp);
			if (!elem)
				return BERTH_ERROR;
			snprintf(tmp, sizeof(tmp), "%s[%zu]", disp, idx);
			if (i + 2 == n)
				return apply_yaml(c, k->sub, NULL, elem, "", tmp, value);
			return resolve(c, k->sub, elem, comps + i + 2, n - i - 2, tmp, value);
		}
		default: {
			if (!last)
				return unrecognized(c);
			/* An empty value leaves non-string keys alone, like YAML's `key:` */
			struct cfg_scalar v = { value, !*value && k->type != CT_STR, 0 };
			return berth_config__set_scalar(c, k, base, disp, &v);
		}
		}
	}
	/* The whole variable names a section: REGISTRY_STORAGE_DELETE='{enabled: true}'. */
	return apply_yaml(c, t, NULL, base, key, disp, value);
}

static int apply_one(struct cfg_ctx *c, const char *name, const char *value)
{
	char buf[512], *comps[MAX_COMPS];
	size_t n = 0;

	if (strlen(name) >= sizeof(buf))
		return unrecognized(c);
	snprintf(buf, sizeof(buf), "%s", name + strlen(PREFIX));
	for (char *p = buf; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = buf;;) {
		char *us = strchr(p, '_');
		if (us)
			*us = '\0';
		if (!*p || n == MAX_COMPS)
			return unrecognized(c);
		comps[n++] = p;
		if (!us)
			break;
		p = us + 1;
	}
	return resolve(c, &berth_config__table, c->cfg, comps, n, "", value);
}

int berth_config__env_apply(struct cfg_ctx *c)
{
	const char *origin = c->origin;
	size_t n = 0, cap = 0;
	char **vars = NULL;
	int rc = 0;

	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, PREFIX, strlen(PREFIX)) != 0 || !strchr(*e, '='))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			vars = berth_realloc(vars, cap * sizeof(*vars));
		}
		vars[n++] = berth_strdup(*e);
	}
	if (n)
		qsort(vars, n, sizeof(*vars), cmp_vars);
	c->is_env = 1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *eq = strchr(vars[i], '=');
		*eq = '\0';
		c->origin = vars[i];
		rc = apply_one(c, vars[i], eq + 1);
	}
	c->is_env = 0;
	c->origin = origin;
	for (size_t i = 0; i < n; i++)
		free(vars[i]);
	free(vars);
	return rc;
}

/*
 * Walks a libyaml document (aliases already resolved by the loader) against the key table.
 * Mappings descend into sections, scalars go to the typed setters, sequences and maps of
 * strings become the heap collections. YAML 1.1 merge keys (<<) are honoured, explicit keys
 * winning over merged ones, as in Go's yaml.v2 that Distribution uses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "core/err.h"
#include "core/util.h"

#define MAX_DEPTH 32
/* Aliases share nodes, so merge keys over lists of aliases of maps that merge lists of aliases
 * ... visit exponentially many keys (an "alias bomb": 12 lines walk 6^11 maps). No real config
 * comes near this many visits; yaml.v2 in Distribution refuses such documents too. */
#define MAX_WALKED 100000

static int line_of(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static const char *kind_of(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "scalar";
	case YAML_SEQUENCE_NODE: return "list";
	case YAML_MAPPING_NODE: return "map";
	default: return "nothing";
	}
}

static const char *text_of(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* YAML 1.1 null: a plain ~, null, Null, NULL or nothing at all. Quoted "" is a string. */
static int is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp(text_of(n), nulls[i]) == 0)
			return 1;
	return 0;
}

/* Counts one more key or item visited; fails once the document has cost too many. */
static int walk_one(struct cfg_ctx *c, const yaml_node_t *n)
{
	if (++c->walked <= MAX_WALKED)
		return 0;
	return berth_config__fail(c, line_of(n), NULL, "document contains excessive aliasing");
}

static int is_merge_key(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       strcmp(text_of(n), "<<") == 0;
}

const char *berth_config__join(char *buf, size_t n, const char *prefix, const char *key)
{
	snprintf(buf, n, "%s%s%s", prefix, *prefix ? "." : "", key);
	return buf;
}

static const char *type_name(enum cfg_type t)
{
	switch (t) {
	case CT_BOOL:
	case CT_NOT_BOOL: return "boolean";
	case CT_INT: return "integer";
	case CT_DURATION: return "duration";
	default: return "string";
	}
}

/* A sequence of scalars into a fresh list, replacing *out on success. */
int berth_config__yaml_strlist(struct cfg_ctx *c, const struct cfg_key *k, const char *disp, int line,
			yaml_document_t *doc, yaml_node_t *node, struct berth_strlist *out)
{
	struct berth_strlist l = { 0, NULL };
	char d[512];

	if (is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return berth_config__fail(c, line, disp, "expected a list, got a %s", kind_of(node));
	for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(doc, *it);
		snprintf(d, sizeof(d), "%s[%zu]", disp, l.n);
		if (walk_one(c, item) < 0)
			goto fail;
		if (item->type != YAML_SCALAR_NODE) {
			berth_config__fail(c, line_of(item), d, "expected a string, got a %s", kind_of(item));
			goto fail;
		}
		if (l.n >= k->max_items) {
			berth_config__fail(c, line_of(item), disp, "too many items (at most %zu)", k->max_items);
			goto fail;
		}
		if (k->type == CT_REGEXLIST && berth_config__check_regex(c, line_of(item), d, text_of(item)) < 0)
			goto fail;
		l.v = berth_realloc(l.v, (l.n + 1) * sizeof(*l.v));
		l.v[l.n++] = berth_strdup(is_null(item) ? "" : text_of(item));
	}
	berth_config__strlist_free(out);
	*out = l;
	return 0;
fail:
	berth_config__strlist_free(&l);
	return BERTH_ERROR;
}

static int read_strmap(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *disp, int line,
		       yaml_document_t *doc, yaml_node_t *node)
{
	struct berth_strmap *out = (struct berth_strmap *)((char *)base + k->off), m = { 0, NULL };

	if (is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return berth_config__fail(c, line, disp, "expected a map, got a %s", kind_of(node));
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		if (walk_one(c, kn) < 0)
			goto fail;
		if (kn->type != YAML_SCALAR_NODE || vn->type != YAML_SCALAR_NODE) {
			berth_config__fail(c, line_of(kn), disp, "expected a map of strings, got a %s",
					   kind_of(kn->type != YAML_SCALAR_NODE ? kn : vn));
			goto fail;
		}
		if (m.n >= k->max_items) {
			berth_config__fail(c, line_of(kn), disp, "too many entries (at most %zu)", k->max_items);
			goto fail;
		}
		m.v = berth_realloc(m.v, (m.n + 1) * sizeof(*m.v));
		m.v[m.n].key = berth_strdup(text_of(kn));
		m.v[m.n++].value = berth_strdup(is_null(vn) ? "" : text_of(vn));
	}
	berth_config__strmap_free(out);
	*out = m;
	return 0;
fail:
	berth_config__strmap_free(&m);
	return BERTH_ERROR;
}

static int read_headers(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *disp, int line,
			yaml_document_t *doc, yaml_node_t *node)
{
	struct berth_headers *out = (struct berth_headers *)((char *)base + k->off), h = { 0, NULL };
	struct cfg_key values = { .key = k->key, .type = CT_STRLIST, .max_items = BERTH_CONFIG_MAX_LIST };
	char d[512];

	if (is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return berth_config__fail(c, line, disp, "expected a map, got a %s", kind_of(node));
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		if (walk_one(c, kn) < 0)
			goto fail;
		if (kn->type != YAML_SCALAR_NODE) {
			berth_config__fail(c, line_of(kn), disp, "header names must be strings, got a %s",
					   kind_of(kn));
			goto fail;
		}
		if (h.n >= k->max_items) {
			berth_config__fail(c, line_of(kn), disp, "too many headers (at most %zu)", k->max_items);
			goto fail;
		}
		h.v = berth_realloc(h.v, (h.n + 1) * sizeof(*h.v));
		h.v[h.n].name = berth_strdup(text_of(kn));
		h.v[h.n].values = (struct berth_strlist){ 0, NULL };
		h.n++;
		snprintf(d, sizeof(d), "%s.%s", disp, text_of(kn));
		if (berth_config__yaml_strlist(c, &values, d, line_of(kn), doc, vn, &h.v[h.n - 1].values) < 0)
			goto fail;
	}
	berth_config__headers_free(out);
	*out = h;
	return 0;
fail:
	berth_config__headers_free(&h);
	return BERTH_ERROR;
}

static int read_list(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *disp, int line,
		     yaml_document_t *doc, yaml_node_t *node)
{
	char d[512];
	size_t i = 0;

	if (is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return berth_config__fail(c, line, disp, "expected a list, got a %s", kind_of(node));
	berth_config__list_free(k, base);
	for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(doc, *it);
		snprintf(d, sizeof(d), "%s[%zu]", disp, i);
		if (walk_one(c, item) < 0)
			return BERTH_ERROR;
		if (item->type != YAML_MAPPING_NODE)
			return berth_config__fail(c, line_of(item), d, "expected a map, got a %s", kind_of(item));
		void *elem = berth_config__list_elem(c, k, base, i++, line_of(item), disp);
		if (!elem || berth_config__yaml_walk_map(c, k->sub, elem, "", d, CG_NONE, doc, item) < 0)
			return BERTH_ERROR;
	}
	return 0;
}

/* A map member's value, or NULL. */
static yaml_node_t *member(yaml_document_t *doc, yaml_node_t *map, const char *name)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key);
		if (kn->type == YAML_SCALAR_NODE && strcmp(text_of(kn), name) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

static int scalar_is(const yaml_node_t *n, int want)
{
	int b;
	return n && n->type == YAML_SCALAR_NODE && berth_config__parse_bool(text_of(n), &b) == 0 && b == want;
}

/* Whether a refused key's value asks for the feature: 1 yes, 0 no, -1 failed (aliasing). Nothing
 * is asked by null, a false boolean, an empty map or list, or a map that says `disabled: true` or
 * `enabled: false` (`h2c: {enabled: false}`, a disabled log hook, `middleware: {registry: []}`). */
static int asks_for_something(struct cfg_ctx *c, yaml_document_t *doc, yaml_node_t *node)
{
	int rc = 0;
	if (walk_one(c, node) < 0)
		return BERTH_ERROR;
	if (is_null(node))
		return 0;
	if (node->type == YAML_SCALAR_NODE)
		return !scalar_is(node, 0);
	if (node->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = node->data.sequence.items.start;
		     rc == 0 && it < node->data.sequence.items.top; it++)
			rc = asks_for_something(c, doc, yaml_document_get_node(doc, *it));
		return rc;
	}
	if (node->type != YAML_MAPPING_NODE || scalar_is(member(doc, node, "disabled"), 1) ||
	    scalar_is(member(doc, node, "enabled"), 0))
		return 0;
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; rc == 0 && p < node->data.mapping.pairs.top; p++)
		rc = asks_for_something(c, doc, yaml_document_get_node(doc, p->value));
	return rc;
}

/* `storage: inmemory` / `auth: htpasswd`: the bare name of a choice, with no options. */
static int select_by_name(struct cfg_ctx *c, const struct cfg_table *t, const struct cfg_key *k,
			  const char *key, int line, const char *name)
{
	char full[512];
	const struct cfg_key *ch = strchr(name, '.') ? NULL
				 : berth_config__lookup(t, berth_config__join(full, sizeof(full), key, name));
	if (!ch || ch->type != CT_CHOICE)
		return berth_config__fail(c, line, key, "unknown %s '%s'", berth_config__groups[k->group].what,
					  name);
	return berth_config__select(c, k->group, ch->value, name, line, 1);
}

int berth_config__yaml_apply(struct cfg_ctx *c, const struct cfg_table *t, const struct cfg_key *k,
			     void *base, const char *key, const char *disp, int line, yaml_document_t *doc,
			     yaml_node_t *node)
{
	struct cfg_scalar v;

	switch (k->type) {
	case CT_ANY:
		return 0;
	case CT_REFUSE:
		switch (asks_for_something(c, doc, node)) {
		case 0: return 0;
		case 1: return berth_config__refuse(c, k, disp, line);
		default: return -1;
		}
	case CT_OBSOLETE:
		berth_config__warn(c, line, "%s: %s", disp, k->why);
		return 0;
	case CT_GROUP:
		if (node->type == YAML_SCALAR_NODE)
			return is_null(node) ? 0 : select_by_name(c, t, k, key, line, text_of(node));
		return berth_config__yaml_walk_map(c, t, base, key, disp, k->group, doc, node);
	case CT_CHOICE:
		if (berth_config__select(c, k->group, k->value, strrchr(key, '.') + 1, line, 0) < 0)
			return BERTH_ERROR;
		return berth_config__yaml_walk_map(c, t, base, key, disp, CG_NONE, doc, node);
	case CT_STRLIST:
	case CT_REGEXLIST:
		return berth_config__yaml_strlist(c, k, disp, line, doc, node,
						  (struct berth_strlist *)((char *)base + k->off));
	case CT_STRMAP:
		return read_strmap(c, k, base, disp, line, doc, node);
	case CT_HEADERS:
		return read_headers(c, k, base, disp, line, doc, node);
	case CT_LIST:
		return read_list(c, k, base, disp, line, doc, node);
	default:
		if (node->type != YAML_SCALAR_NODE)
			return berth_config__fail(c, line, disp, "expected a %s, got a %s", type_name(k->type),
						  kind_of(node));
		v.text = text_of(node);
		v.null = is_null(node);
		v.line = line;
		return berth_config__set_scalar(c, k, base, disp, &v);
	}
}

/* Merge keys first, so the map's own keys override what they bring in. */
static int walk_merges(struct cfg_ctx *c, const struct cfg_table *t, void *base, const char *prefix,
		       const char *disp, int group, yaml_document_t *doc, yaml_node_t *node)
{
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		if (!is_merge_key(kn))
			continue;
		if (walk_one(c, kn) < 0)
			return BERTH_ERROR;
		if (vn->type == YAML_MAPPING_NODE) {
			if (berth_config__yaml_walk_map(c, t, base, prefix, disp, group, doc, vn) < 0)
				return BERTH_ERROR;
			continue;
		}
		if (vn->type != YAML_SEQUENCE_NODE)
			return berth_config__fail(c, line_of(kn), *disp ? disp : NULL,
						  "merge key << expects a map or a list of maps");
		for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top; it++) {
			yaml_node_t *m = yaml_document_get_node(doc, *it);
			if (walk_one(c, m) < 0)
				return BERTH_ERROR;
			if (m->type != YAML_MAPPING_NODE)
				return berth_config__fail(c, line_of(m), *disp ? disp : NULL,
							  "merge key << expects a map or a list of maps");
			if (berth_config__yaml_walk_map(c, t, base, prefix, disp, group, doc, m) < 0)
				return BERTH_ERROR;
		}
	}
	return 0;
}

int berth_config__yaml_walk_map(struct cfg_ctx *c, const struct cfg_table *t, void *base,
				const char *prefix, const char *disp, int group, yaml_document_t *doc,
				yaml_node_t *node)
{
	char rel[512], d[512];
	int rc = BERTH_ERROR;

	if (is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return berth_config__fail(c, line_of(node), *disp ? disp : NULL, "expected a map, got a %s",
					  kind_of(node));
	if (c->depth >= MAX_DEPTH)
		return berth_config__fail(c, line_of(node), *disp ? disp : NULL, "nested too deeply");
	c->depth++;
	if (walk_merges(c, t, base, prefix, disp, group, doc, node) < 0)
		goto out;
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		int line = line_of(kn);
		if (is_merge_key(kn))
			continue;
		if (walk_one(c, kn) < 0)
			goto out;
		if (kn->type != YAML_SCALAR_NODE) {
			berth_config__fail(c, line, *disp ? disp : NULL, "expected a string key, got a %s",
					   kind_of(kn));
			goto out;
		}
		const char *name = text_of(kn);
		berth_config__join(d, sizeof(d), disp, name);
		/* A dotted YAML key ("delete.enabled:") is not a path: it matches nothing. */
		const struct cfg_key *k = NULL;
		int section = 0;
		if (!strchr(name, '.') && *name) {
			berth_config__join(rel, sizeof(rel), prefix, name);
			k = berth_config__lookup(t, rel);
			section = !k && berth_config__is_section(t, rel);
		}
		if (k) {
			if (berth_config__yaml_apply(c, t, k, base, rel, d, line, doc, vn) < 0)
				goto out;
		} else if (section) {
			if (berth_config__yaml_walk_map(c, t, base, rel, d, CG_NONE, doc, vn) < 0)
				goto out;
		} else if (group != CG_NONE) {
			berth_config__fail(c, line, disp, "unknown %s '%s'", berth_config__groups[group].what, name);
			goto out;
		} else if (berth_config__in_closed_section(d)) {
			berth_config__fail(c, line, d, "refused: unknown key (berth knows only %s)",
					   berth_config__closed_section_keys(d));
			goto out;
		} else {
			berth_config__warn(c, line, "unknown key %s", d);
		}
	}
	rc = 0;
out:
	c->depth--;
	return rc;
}

static int yaml_error(struct cfg_ctx *c, yaml_parser_t *p)
{
	const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->mark;
	if (p->context)
		return berth_config__fail(c, (int)m->line + 1, NULL, "invalid YAML: %s %s",
					  p->problem ? p->problem : "error", p->context);
	return berth_config__fail(c, (int)m->line + 1, NULL, "invalid YAML: %s",
				  p->problem ? p->problem : "cannot parse");
}

int berth_config__yaml_string(struct cfg_ctx *c, const char *text, yaml_document_t *doc, yaml_node_t **root)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		return berth_config__fail(c, 0, NULL, "cannot initialise the YAML parser");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	if (!yaml_parser_load(&p, doc)) {
		int rc = yaml_error(c, &p);
		yaml_parser_delete(&p);
		return rc;
	}
	yaml_parser_delete(&p);
	*root = yaml_document_get_root_node(doc);
	return 0;
}

/* The top-level `version` before anything else, as Distribution checks it first. */
static int check_version(struct cfg_ctx *c, yaml_document_t *doc, yaml_node_t *root)
{
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		if (kn->type == YAML_SCALAR_NODE && strcmp(text_of(kn), "version") == 0)
			return berth_config__yaml_apply(c, &berth_config__table,
							berth_config__lookup(&berth_config__table, "version"),
							c->cfg, "version", "version", line_of(kn), doc, vn);
	}
	return berth_config__fail(c, 0, "version", "missing (this key is required and must be 0.1)");
}

int berth_config__yaml_file(struct cfg_ctx *c, const char *path)
{
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_node_t *root;
	FILE *f;
	int rc = BERTH_ERROR;

	if (!*path)
		return berth_config__fail(c, 0, NULL, "cannot open configuration file: empty path");
	f = fopen(path, "rb");
	if (!f)
		return berth_config__fail(c, 0, NULL, "cannot open configuration file: %s", strerror(errno));
	if (!yaml_parser_initialize(&p)) {
		fclose(f);
		return berth_config__fail(c, 0, NULL, "cannot initialise the YAML parser");
	}
	yaml_parser_set_input_file(&p, f);
	if (!yaml_parser_load(&p, &doc)) {
		rc = yaml_error(c, &p);
		goto out_parser;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root || is_null(root)) {
		berth_config__fail(c, 0, "version", "missing (the file is empty)");
	} else if (root->type != YAML_MAPPING_NODE) {
		berth_config__fail(c, line_of(root), NULL, "expected a map at the top level, got a %s",
				   kind_of(root));
	} else if (check_version(c, &doc, root) == 0) {
		rc = berth_config__yaml_walk_map(c, &berth_config__table, c->cfg, "", "", CG_NONE, &doc, root);
	}
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&p);
	fclose(f);
	return rc;
}

/*
 * Internals of the config loader, shared by its files and its unit tests; not for other modules.
 *
 *   config.c       public API, error/warning formatting, defaults, finishing touches
 *   config_keys.c  THE key table (every supported dotted key, its type and field) and the typed
 *                  setters: bool, integer, Go duration, enum, string, lists, maps
 *   config_yaml.c  walks a libyaml document against the table
 *   config_env.c   maps REGISTRY_* variables onto the same table and setters
 *
 * Keys are dotted paths relative to a table ("http.tls.key"). A key that is a proper prefix of
 * table keys ("http.tls") is a section and expects a map. List-of-map keys (notifications.endpoints)
 * carry a sub-table whose keys are relative to one element.
 */
#ifndef BERTH_CONFIG_CONFIG_INTERNAL_H
#define BERTH_CONFIG_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "config/config.h"

enum cfg_type {
	CT_STR,       /* char[size]; any scalar, as written */
	CT_BOOL,      /* int 0/1; YAML 1.1 booleans, case-insensitive */
	CT_NOT_BOOL,  /* int, the boolean inverted (log.accesslog.disabled -> access_log) */
	CT_INT,       /* int (size 4) or int64_t (size 8), within [min, max] */
	CT_DURATION,  /* int64_t milliseconds; Go duration syntax, or a bare integer of nanoseconds */
	CT_ENUM,      /* int, one of names[] (case-insensitive) */
	CT_FN,        /* scalar handed to fn() */
	CT_ANY,       /* a known key that changes nothing berth does (why says so): any value accepted */
	CT_REFUSE,    /* a key berth does not implement: a value asking for it fails the load (why) */
	CT_OBSOLETE,  /* a Distribution 2.x section that changes nothing: one warning (why) */
	CT_GROUP,     /* a section whose children are mutually exclusive choices (storage, auth) */
	CT_CHOICE,    /* one choice of a group (storage.s3); value is map or null */
	CT_STRLIST,   /* struct berth_strlist from a sequence of scalars */
	CT_REGEXLIST, /* CT_STRLIST whose items must compile as POSIX extended regexes */
	CT_STRMAP,    /* struct berth_strmap from a map of scalars */
	CT_HEADERS,   /* struct berth_headers from a map of name -> sequence of scalars */
	CT_LIST,      /* array of elements described by `sub`, from a sequence of maps */
};

enum cfg_group_id { CG_NONE, CG_STORAGE, CG_AUTH, CG_COUNT };

struct cfg_enum {
	const char *name;
	int value;
};

struct cfg_ctx;
struct cfg_key;

/* A scalar from YAML or the environment. `null` is YAML's null (plain ~, null or empty). */
struct cfg_scalar {
	const char *text;
	int null;
	int line; /* 1-based; 0 for the environment */
};

typedef int (*cfg_scalar_fn)(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			     const struct cfg_scalar *v);

struct cfg_table;

struct cfg_key {
	const char *key;                 /* dotted, relative to the table */
	enum cfg_type type;
	size_t off;                      /* field offset from the table's base */
	size_t size;                     /* CT_STR buffer size, CT_INT field size */
	int64_t min, max;                /* CT_INT range */
	const struct cfg_enum *names;    /* CT_ENUM values, {NULL} terminated */
	int group;                       /* CT_GROUP / CT_CHOICE: enum cfg_group_id */
	int value;                       /* CT_CHOICE: value stored in the group's field; -1 unsupported */
	size_t max_items;                /* collections: cap on entries */
	size_t count_off;                /* CT_LIST: offset of the size_t count */
	const struct cfg_table *sub;     /* CT_LIST: element table */
	cfg_scalar_fn fn;                /* CT_FN */
	const char *why;                 /* CT_ANY, CT_REFUSE, CT_OBSOLETE: the reason, for messages */
};

struct cfg_table {
	const struct cfg_key *keys;
	size_t n;
	size_t elem_size;                /* sub-tables: element size */
	void (*elem_init)(void *elem);   /* sub-tables: element defaults */
	void (*elem_release)(void *elem);
};

/* A mutually exclusive group (storage drivers, auth providers). */
struct cfg_group {
	const char *section; /* "storage" */
	const char *what;    /* "driver" */
	size_t off;          /* int/enum field in struct berth_config holding the choice */
	void (*reset)(struct berth_config *cfg); /* forget the previous choice's options */
};

struct cfg_ctx {
	struct berth_config *cfg;
	const char *origin;           /* file path, or the environment variable being applied */
	int is_env;
	int file_loaded;              /* a file was read before the environment */
	char *err;
	size_t errlen;
	int depth;                    /* merge-key nesting, against alias loops */
	size_t walked;                /* keys and items visited, against alias bombs */
	unsigned warnings;            /* warnings given so far */
	/* per group: choice made by the file / by the environment, -2 = none yet */
	int file_choice[CG_COUNT];
	int env_choice[CG_COUNT];
	int log_level_set;            /* log.level was given */
	int deprecated_loglevel;      /* loglevel: value, or -1 */
	int validation_enabled;       /* deprecated validation.enabled: true */
};

extern const struct cfg_table berth_config__table;
extern const struct cfg_group berth_config__groups[CG_COUNT];

/* config.c: message helpers. fail() always returns -1. `key` may be NULL. */
int berth_config__fail(struct cfg_ctx *c, int line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void berth_config__warn(struct cfg_ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void berth_config__ctx_init(struct cfg_ctx *c, struct berth_config *cfg, char *err, size_t errlen);

/* config_keys.c */
const struct cfg_key *berth_config__lookup(const struct cfg_table *t, const char *key);
int berth_config__is_section(const struct cfg_table *t, const char *key);
/* 1 if key lies in a berth-specific section (ui, policies) whose keys berth all knows: an
 * unknown key there is a mistake (a misspelt retention rule would remove what it should keep),
 * refused rather than warned about as Distribution's unknown keys are. */
int berth_config__in_closed_section(const char *key);
/* For the refusal: the keys berth knows in key's closed section. */
const char *berth_config__closed_section_keys(const char *key);
int berth_config__set_scalar(struct cfg_ctx *c, const struct cfg_key *k, void *base, const char *key,
			     const struct cfg_scalar *v);
/* CT_REFUSE: fails the load naming the key and why. Called only for a value that asks for it. */
int berth_config__refuse(struct cfg_ctx *c, const struct cfg_key *k, const char *disp, int line);
int berth_config__select(struct cfg_ctx *c, int group, int value, const char *name, int line, int reset);
/* Value parsers, 0 or -1. Durations: Go syntax ("1h30m", "1.5s", "300ms") or bare nanoseconds. */
int berth_config__parse_bool(const char *s, int *out);
int berth_config__parse_int(const char *s, int64_t *out);
int berth_config__parse_duration(const char *s, int64_t *ms_out);
/* Collections: set one item (idx == n appends), replace all, free. */
void berth_config__strlist_free(struct berth_strlist *l);
void berth_config__strmap_free(struct berth_strmap *m);
void berth_config__headers_free(struct berth_headers *h);
int berth_config__check_regex(struct cfg_ctx *c, int line, const char *key, const char *re);
void *berth_config__list_elem(struct cfg_ctx *c, const struct cfg_key *k, void *base, size_t idx,
			      int line, const char *key);
void berth_config__list_free(const struct cfg_key *k, void *base);

/* config_yaml.c */
/* Applies one YAML value to key k of table t; `key` is k's path in t, `disp` the full dotted path
 * for messages, `line` the key's line. */
int berth_config__yaml_apply(struct cfg_ctx *c, const struct cfg_table *t, const struct cfg_key *k,
			     void *base, const char *key, const char *disp, int line, yaml_document_t *doc,
			     yaml_node_t *node);
int berth_config__yaml_walk_map(struct cfg_ctx *c, const struct cfg_table *t, void *base,
				const char *prefix, const char *disp, int group, yaml_document_t *doc,
				yaml_node_t *node);
int berth_config__yaml_file(struct cfg_ctx *c, const char *path);
/* A sequence of scalars (k: CT_STRLIST or CT_REGEXLIST, for max_items) into *out, replacing it. */
int berth_config__yaml_strlist(struct cfg_ctx *c, const struct cfg_key *k, const char *disp, int line,
			       yaml_document_t *doc, yaml_node_t *node, struct berth_strlist *out);
/* Parses `text` as a one-document YAML string; *root NULL for an empty document. */
int berth_config__yaml_string(struct cfg_ctx *c, const char *text, yaml_document_t *doc,
			      yaml_node_t **root);

/* config_env.c */
int berth_config__env_apply(struct cfg_ctx *c);

/* Joins prefix and key with '.', into buf (size n); returns buf. */
const char *berth_config__join(char *buf, size_t n, const char *prefix, const char *key);

#endif

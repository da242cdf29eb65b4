/*
 * config_walk.h - the descriptor engine of the config loader.
 *
 * A section of the config is described by a table of struct cfgw_field
 * (key, type, where it goes, default, bounds); cfgw_defaults() fills a fresh
 * struct from the table and cfgw_map() overwrites it from a YAML mapping,
 * reporting unknown keys, duplicate keys, wrong types, out-of-range numbers
 * and missing required keys. Errors are collected in a struct cfgw_ctx, each
 * with its position, and handed out sorted by position as
 * "FILE:LINE:COLUMN: message" lines. Nothing here knows the schema itself.
 */
#ifndef WBMB_CONFIG_WALK_H
#define WBMB_CONFIG_WALK_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/yaml_doc.h"
#include "wbmb/config.h"

/* The name of the top-level mapping in messages. */
#define CFGW_TOP "the top level"

struct cfgw_err {
    int line, column;
    size_t seq; /* order of discovery: keeps the sort stable */
    char *text; /* the whole "FILE:LINE:COLUMN: message" line */
};

struct cfgw_ctx {
    const char *file;
    struct cfgw_err *errs;
    size_t n, cap;
    bool oom; /* an allocation failed somewhere: the result is WB_ERR_NOMEM */
};

enum cfgw_type {
    W_STR,     /* char *, strdup'd; default def_str (NULL = none) */
    W_INT,     /* int in [min, max] */
    W_UINT,    /* unsigned in [min, max] */
    W_DOUBLE,  /* double, any finite value */
    W_BOOL,    /* bool: true/false */
    W_ENUM,    /* int (an enum) chosen by name from enums */
    W_SECTION, /* a nested map described by sub, same base + off */
    W_NODE,    /* const struct ydoc_node *: handled by the caller afterwards */
};

struct cfgw_enum {
    const char *name;
    int value;
};

struct cfgw_field {
    const char *key;
    enum cfgw_type type;
    size_t off;
    const char *def_str;
    long long def_int; /* W_INT, W_UINT, W_BOOL, W_ENUM default */
    long long min, max;
    bool required;
    bool track; /* has_off names a bool set to true when the key is given */
    size_t has_off;
    const struct cfgw_enum *enums; /* W_ENUM: terminated by {NULL, 0} */
    const char *enum_list;         /* W_ENUM: "a|b|c" for messages */
    const struct cfgw_field *sub;  /* W_SECTION: terminated by {NULL} */
};

/* Records one error at (line, column); the text never holds secrets. */
void cfgw_error(struct cfgw_ctx *c, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define cfgw_err_node(c, node, ...) cfgw_error((c), (node)->line, (node)->column, __VA_ARGS__)

/* snprintf for names in messages ("action 'a' of device 'd'"): truncation
 * of such a name is acceptable, and going through vsnprintf keeps GCC's
 * -Wformat-truncation from flagging every nested name at -O2. */
void cfgw_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Moves the collected errors, sorted by position, into errs (appending). */
void cfgw_take_errors(struct cfgw_ctx *c, struct cfg_errors *errs);
void cfgw_ctx_free(struct cfgw_ctx *c);

/* strdup that records an allocation failure in c. */
char *cfgw_strdup(struct cfgw_ctx *c, const char *s);

void cfgw_defaults(struct cfgw_ctx *c, const struct cfgw_field *table, void *base);

/* Walks map into base using table; where names the section in messages
 * ("mqtt", "device 'tv'"). A null node leaves the defaults; anything but a
 * map is an error. Returns false when map was not a usable map. */
bool cfgw_map(struct cfgw_ctx *c, const struct cfgw_field *table, const struct ydoc_node *map,
              void *base, const char *where);

/* Reports duplicate keys of a map; true when there were none. */
bool cfgw_check_dup_keys(struct cfgw_ctx *c, const struct ydoc_node *map, const char *where);

/* Strict scalar parsers: whole text, base 10, finite. */
bool cfgw_parse_ll(const char *s, long long *out);
bool cfgw_parse_double(const char *s, double *out);
bool cfgw_parse_bool(const char *s, bool *out);

/* A YAML scalar as JSON by the YAML 1.2 core schema: quoted = string;
 * plain true/false, integers, floats typed; other plain text = string.
 * NULL for a plain null (the caller decides) or on allocation failure. */
json_object *cfgw_scalar_json(const struct ydoc_node *n);

/* Shape checks: false for a null node (nothing to walk) and, with an error
 * reported, for a node of another kind. cfgw_is_map also reports duplicate
 * keys; cfgw_is_string reports a null or a collection. */
bool cfgw_is_list(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what);
bool cfgw_is_map(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what);
bool cfgw_is_string(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what);

/* Device and scenario ids: [a-z0-9_]+. */
bool cfgw_id_valid(const char *s);
/* Action and param names: [A-Za-z0-9_-]+. */
bool cfgw_name_valid(const char *s);
/* State field names: one valid topic level (topic_gate.h: TGATE_LEVEL). */
bool cfgw_field_valid(const char *s);

/* A log-safe copy of s in buf (cap >= 8; see tgate_excerpt). Returns buf. */
const char *cfgw_safe(const char *s, char *buf, size_t cap);

/* true for a valid MQTT topic (topic_gate.h; a filter with + and # when filter). */
bool cfgw_topic_valid(const char *t, bool filter);

/* A hash set of ids (devices, scenarios) with the position each was first
 * seen at: finding a duplicate is O(1) per entry instead of a rescan of the
 * list. A key is borrowed (it must outlive the set) unless added with copy.
 * A zeroed struct is an empty set. */
struct cfgw_id_slot {
    const char *id; /* NULL: free slot */
    char *own;      /* id when the set copied it */
    int line, column;
};
struct cfgw_ids {
    struct cfgw_id_slot *slots;
    size_t cap, n; /* cap: 0 or a power of two */
};

/* The slot of id, NULL when it is not in the set. */
const struct cfgw_id_slot *cfgw_ids_find(const struct cfgw_ids *s, const char *id);
/* Records id at (line, column) unless it is there already (the first
 * position stays). An allocation failure sets c->oom. */
void cfgw_ids_add(struct cfgw_ctx *c, struct cfgw_ids *s, const char *id, bool copy, int line,
                  int column);
/* Frees the table and the copied keys; the set is empty afterwards. */
void cfgw_ids_free(struct cfgw_ids *s);

/* Frees n strings and the array. */
void cfgw_free_strv(char **v, size_t n);

#endif

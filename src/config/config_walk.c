/*
 * config_walk.c - the descriptor engine: defaults, typed scalars, errors,
 * and the id sets that find duplicate ids.
 *
 * Every value written into a config struct goes through set_field(), which
 * frees the previous string of a W_STR slot, so a key given twice or a
 * default overwritten never leaks. Errors are only ever formatted from YAML
 * text and schema names; the loader never passes secret contents here.
 */
#include "config/config_walk.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wbmb/topic_gate.h"
#include "wbmb/util.h"

void cfgw_error(struct cfgw_ctx *c, int line, int column, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        struct cfgw_err *ne = realloc(c->errs, nc * sizeof(*ne));
        if (!ne) {
            c->oom = true;
            return;
        }
        c->errs = ne;
        c->cap = nc;
    }
    char *text = NULL;
    if (asprintf(&text, "%s:%d:%d: %s", c->file, line, column, msg) < 0) {
        c->oom = true;
        return;
    }
    c->errs[c->n] = (struct cfgw_err){.line = line, .column = column, .seq = c->n, .text = text};
    c->n++;
}

void cfgw_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static int err_cmp(const void *a, const void *b)
{
    const struct cfgw_err *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

void cfgw_take_errors(struct cfgw_ctx *c, struct cfg_errors *errs)
{
    if (c->n == 0)
        return;
    qsort(c->errs, c->n, sizeof(*c->errs), err_cmp);
    char **nl = realloc(errs->lines, (errs->n + c->n) * sizeof(*nl));
    if (!nl) {
        c->oom = true;
        return; /* the texts stay in c and are freed by cfgw_ctx_free */
    }
    errs->lines = nl;
    for (size_t i = 0; i < c->n; i++) {
        errs->lines[errs->n++] = c->errs[i].text;
        c->errs[i].text = NULL;
    }
    c->n = 0;
}

void cfgw_ctx_free(struct cfgw_ctx *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->errs[i].text);
    free(c->errs);
    c->errs = NULL;
    c->n = c->cap = 0;
}

char *cfgw_strdup(struct cfgw_ctx *c, const char *s)
{
    char *d = strdup(s);
    if (!d)
        c->oom = true;
    return d;
}

bool cfgw_parse_ll(const char *s, long long *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return false;
    *out = v;
    return true;
}

bool cfgw_parse_double(const char *s, double *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool cfgw_parse_bool(const char *s, bool *out)
{
    if (strcasecmp(s, "true") == 0)
        *out = true;
    else if (strcasecmp(s, "false") == 0)
        *out = false;
    else
        return false;
    return true;
}

json_object *cfgw_scalar_json(const struct ydoc_node *n)
{
    if (n->quoted)
        return json_object_new_string(n->value);
    if (ydoc_is_null(n))
        return NULL;
    bool b;
    long long ll;
    double d;
    if (cfgw_parse_bool(n->value, &b))
        return json_object_new_boolean(b);
    if (cfgw_parse_ll(n->value, &ll))
        return json_object_new_int64(ll);
    /* Only text that looks like a decimal number is a float: "inf" or
     * "nan" stay strings, as YAML 1.2 spells those ".inf" / ".nan". */
    if (strpbrk(n->value, "0123456789") && !strpbrk(n->value, "nNiIxX") &&
        cfgw_parse_double(n->value, &d))
        return json_object_new_double(d);
    return json_object_new_string(n->value);
}

void cfgw_defaults(struct cfgw_ctx *c, const struct cfgw_field *t, void *base)
{
    char *b = base;
    for (; t->key; t++) {
        void *p = b + t->off;
        switch (t->type) {
        case W_STR:
            *(char **)p = t->def_str ? cfgw_strdup(c, t->def_str) : NULL;
            break;
        case W_INT:
            *(int *)p = (int)t->def_int;
            break;
        case W_UINT:
            *(unsigned *)p = (unsigned)t->def_int;
            break;
        case W_DOUBLE:
            *(double *)p = (double)t->def_int;
            break;
        case W_BOOL:
            *(bool *)p = t->def_int != 0;
            break;
        case W_ENUM:
            *(int *)p = (int)t->def_int;
            break;
        case W_SECTION:
            cfgw_defaults(c, t->sub, p);
            break;
        case W_NODE:
            *(const struct ydoc_node **)p = NULL;
            break;
        }
        if (t->track)
            *(bool *)(b + t->has_off) = false;
    }
}

bool cfgw_check_dup_keys(struct cfgw_ctx *c, const struct ydoc_node *map, const char *where)
{
    bool ok = true;
    for (size_t i = 1; i < map->n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(map->keys[i]->value, map->keys[j]->value) == 0) {
                cfgw_err_node(c, map->keys[i], "duplicate key '%s' in %s (first at %d:%d)",
                              map->keys[i]->value, where, map->keys[j]->line, map->keys[j]->column);
                ok = false;
                break;
            }
    return ok;
}

static const char *int_kind(const struct cfgw_field *t, char *buf, size_t len)
{
    snprintf(buf, len, "an integer between %lld and %lld", t->min, t->max);
    return buf;
}

/* Stores one value; false (with the error reported) when it does not fit. */
static bool set_field(struct cfgw_ctx *c, const struct cfgw_field *t, const struct ydoc_node *v,
                      char *base, const char *where)
{
    void *p = base + t->off;
    char got[96], kind[96];
    long long ll;

    if (t->type == W_NODE) {
        *(const struct ydoc_node **)p = v;
        return true;
    }
    if (t->type == W_SECTION) {
        char sub_where[128];
        /* Sections are named by their path: "mqtt", "persistence.history". */
        if (strcmp(where, CFGW_TOP) == 0)
            snprintf(sub_where, sizeof(sub_where), "%s", t->key);
        else
            snprintf(sub_where, sizeof(sub_where), "%s.%s", where, t->key);
        return cfgw_map(c, t->sub, v, p, sub_where);
    }
    if (v->kind != YDOC_SCALAR) {
        const char *what = "a string";
        if (t->type == W_INT || t->type == W_UINT)
            what = int_kind(t, kind, sizeof(kind));
        else if (t->type == W_DOUBLE)
            what = "a number";
        else if (t->type == W_BOOL)
            what = "true or false";
        else if (t->type == W_ENUM) {
            snprintf(kind, sizeof(kind), "one of %s", t->enum_list);
            what = kind;
        }
        cfgw_err_node(c, v, "%s must be %s, got %s", t->key, what,
                      ydoc_describe(v, got, sizeof(got)));
        return false;
    }
    switch (t->type) {
    case W_STR: {
        char *s = cfgw_strdup(c, v->value);
        if (!s)
            return false;
        free(*(char **)p);
        *(char **)p = s;
        return true;
    }
    case W_INT:
    case W_UINT:
        if (!cfgw_parse_ll(v->value, &ll) || ll < t->min || ll > t->max) {
            cfgw_err_node(c, v, "%s must be %s, got %s", t->key, int_kind(t, kind, sizeof(kind)),
                          ydoc_describe(v, got, sizeof(got)));
            return false;
        }
        if (t->type == W_INT)
            *(int *)p = (int)ll;
        else
            *(unsigned *)p = (unsigned)ll;
        return true;
    case W_DOUBLE:
        if (!cfgw_parse_double(v->value, (double *)p)) {
            cfgw_err_node(c, v, "%s must be a number, got %s", t->key,
                          ydoc_describe(v, got, sizeof(got)));
            return false;
        }
        return true;
    case W_BOOL:
        if (!cfgw_parse_bool(v->value, (bool *)p)) {
            cfgw_err_node(c, v, "%s must be true or false, got %s", t->key,
                          ydoc_describe(v, got, sizeof(got)));
            return false;
        }
        return true;
    case W_ENUM:
        for (const struct cfgw_enum *e = t->enums; e->name; e++)
            if (strcmp(e->name, v->value) == 0) {
                *(int *)p = e->value;
                return true;
            }
        cfgw_err_node(c, v, "%s must be one of %s, got %s", t->key, t->enum_list,
                      ydoc_describe(v, got, sizeof(got)));
        return false;
    default:
        return false;
    }
}

bool cfgw_map(struct cfgw_ctx *c, const struct cfgw_field *table, const struct ydoc_node *map,
              void *base, const char *where)
{
    char got[96];
    if (ydoc_is_null(map))
        return true;
    if (map->kind != YDOC_MAP) {
        cfgw_err_node(c, map, "%s must be a map, got %s", where,
                      ydoc_describe(map, got, sizeof(got)));
        return false;
    }
    cfgw_check_dup_keys(c, map, where);
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        const struct cfgw_field *t = table;
        while (t->key && strcmp(t->key, k->value) != 0)
            t++;
        if (!t->key) {
            cfgw_err_node(c, k, "unknown key '%s' in %s", k->value, where);
            continue;
        }
        /* A key with no value ("username:") keeps the default, except
         * where the caller wants to see the node itself. */
        if (ydoc_is_null(v) && t->type != W_NODE && t->type != W_SECTION) {
            if (t->required)
                cfgw_err_node(c, v, "%s in %s must not be empty", t->key, where);
            continue;
        }
        if (set_field(c, t, v, base, where) && t->track)
            *(bool *)((char *)base + t->has_off) = true;
    }
    for (const struct cfgw_field *t = table; t->key; t++)
        if (t->required && !ydoc_map_get(map, t->key))
            cfgw_err_node(c, map, "%s is missing required key '%s'", where, t->key);
    return true;
}

/* ---- shared shape checks and validators ----------------------------------- */

/* Device and scenario ids: [a-z0-9_]+ (they become Wiren Board device ids). */
bool cfgw_id_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* Action and param names: [A-Za-z0-9_-]+ (controls and template names). */
bool cfgw_name_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* A log-safe copy of s in buf (control and non-ASCII bytes as '?'): for
 * error lines about names the topic gate refused. Returns buf. */
const char *cfgw_safe(const char *s, char *buf, size_t cap)
{
    tgate_excerpt(s, strlen(s), buf, cap);
    return buf;
}

/* State field names become MQTT topic levels of the mirror device. */
bool cfgw_field_valid(const char *s)
{
    return tgate_check(s, strlen(s), TGATE_LEVEL) == TGATE_OK;
}

bool cfgw_is_list(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what)
{
    char got[96];
    if (ydoc_is_null(n))
        return false;
    if (n->kind != YDOC_SEQ) {
        cfgw_err_node(c, n, "%s must be a list, got %s", what, ydoc_describe(n, got, sizeof(got)));
        return false;
    }
    return true;
}

bool cfgw_is_map(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what)
{
    char got[96];
    if (ydoc_is_null(n))
        return false;
    if (n->kind != YDOC_MAP) {
        cfgw_err_node(c, n, "%s must be a map, got %s", what, ydoc_describe(n, got, sizeof(got)));
        return false;
    }
    cfgw_check_dup_keys(c, n, what);
    return true;
}

/* A scalar that is not null, else an error "what must be a string". */
bool cfgw_is_string(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what)
{
    char got[96];
    if (n->kind == YDOC_SCALAR && !ydoc_is_null(n))
        return true;
    cfgw_err_node(c, n, "%s must be a string, got %s", what, ydoc_describe(n, got, sizeof(got)));
    return false;
}

void cfgw_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* `+` must be a whole level, `#` the whole last level; no empty topic. */
bool cfgw_topic_valid(const char *t, bool filter)
{
    return tgate_check(t, strlen(t), filter ? TGATE_FILTER : TGATE_NAME) == TGATE_OK;
}

/* ---- id sets ------------------------------------------------------------ */

/* Open addressing with linear probing; the table is kept at most 3/4 full,
 * so a probe always ends at a free slot. */
static struct cfgw_id_slot *ids_slot(const struct cfgw_ids *s, const char *id)
{
    size_t mask = s->cap - 1;
    for (size_t i = util_hash_str(id) & mask;; i = (i + 1) & mask)
        if (!s->slots[i].id || strcmp(s->slots[i].id, id) == 0)
            return &s->slots[i];
}

const struct cfgw_id_slot *cfgw_ids_find(const struct cfgw_ids *s, const char *id)
{
    if (s->cap == 0)
        return NULL;
    const struct cfgw_id_slot *slot = ids_slot(s, id);
    return slot->id ? slot : NULL;
}

static bool ids_grow(struct cfgw_ids *s)
{
    size_t nc = s->cap ? s->cap * 2 : 64;
    struct cfgw_id_slot *ns = calloc(nc, sizeof(*ns));
    if (!ns)
        return false;
    struct cfgw_ids bigger = {.slots = ns, .cap = nc, .n = s->n};
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].id)
            *ids_slot(&bigger, s->slots[i].id) = s->slots[i];
    free(s->slots);
    *s = bigger;
    return true;
}

void cfgw_ids_add(struct cfgw_ctx *c, struct cfgw_ids *s, const char *id, bool copy, int line,
                  int column)
{
    if ((s->n + 1) * 4 > s->cap * 3 && !ids_grow(s)) {
        c->oom = true;
        return;
    }
    struct cfgw_id_slot *slot = ids_slot(s, id);
    if (slot->id)
        return;
    char *own = NULL;
    if (copy && !(own = cfgw_strdup(c, id)))
        return;
    *slot = (struct cfgw_id_slot){.id = own ? own : id, .own = own, .line = line, .column = column};
    s->n++;
}

void cfgw_ids_free(struct cfgw_ids *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i].own);
    free(s->slots);
    *s = (struct cfgw_ids){0};
}

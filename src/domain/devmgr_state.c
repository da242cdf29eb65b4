/*
 * devmgr_state.c - a device's state as a small array of fields (see
 * devmgr_int.h): lookup, update, the interned names, the json-c view for
 * readers and the persisted JSON text written straight from the array.
 */
#include "domain/devmgr_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool dm_is_transient(const struct cfg_device *d, const char *field)
{
    for (size_t i = 0; i < d->n_transient; i++)
        if (strcmp(d->transient[i], field) == 0)
            return true;
    return false;
}

int dm_field_find(const struct dev *d, const char *name)
{
    for (int i = 0; i < d->n_f; i++)
        if (strcmp(d->f[i].name, name) == 0)
            return i;
    return -1;
}

/* The manager's copy of name, added when new; NULL when out of memory. */
const char *dm_intern(struct devmgr *m, const char *name)
{
    if (2 * (m->n_names + 1) > m->names_mask + 1) {
        size_t cap = m->names ? 2 * (m->names_mask + 1) : 64;
        char **t = calloc(cap, sizeof(*t));
        if (!t)
            return NULL;
        for (size_t i = 0; m->names && i <= m->names_mask; i++) {
            if (!m->names[i])
                continue;
            size_t h = util_hash_str(m->names[i]) & (cap - 1);
            while (t[h])
                h = (h + 1) & (cap - 1);
            t[h] = m->names[i];
        }
        free(m->names);
        m->names = t;
        m->names_mask = cap - 1;
    }
    size_t h = util_hash_str(name) & m->names_mask;
    for (; m->names[h]; h = (h + 1) & m->names_mask)
        if (strcmp(m->names[h], name) == 0)
            return m->names[h];
    if (!(m->names[h] = strdup(name)))
        return NULL;
    m->n_names++;
    return m->names[h];
}

struct field dm_field_make(const struct dev *d, const char *name, json_object *v)
{
    return (struct field){.name = name,
                          .v = v,
                          .transient = dm_is_transient(d->cfg, name),
                          .mirrored = mirror_field_name_ok(name),
                          .declared = dm_declared_type(d->cfg, name) & 3u};
}

/* Sets name to v (taking the reference) in place or as a new last field.
 * Returns the field's index, or -1 (v released) when out of memory or full. */
int dm_field_set(struct devmgr *m, struct dev *d, const char *name, json_object *v)
{
    int i = dm_field_find(d, name);
    if (i >= 0) {
        json_object_put(d->f[i].v);
        d->f[i].v = v;
        return i;
    }
    if (d->n_f == d->cap_f) {
        size_t nc = d->cap_f ? 2u * d->cap_f : 2u;
        struct field *g = d->n_f < DEV_MAX_FIELDS ? realloc(d->f, nc * sizeof(*g)) : NULL;
        if (!g) {
            json_object_put(v);
            return -1;
        }
        d->f = g;
        d->cap_f = (uint16_t)nc;
    }
    const char *n = dm_intern(m, name);
    if (!n) {
        json_object_put(v);
        return -1;
    }
    d->f[d->n_f] = dm_field_make(d, n, v);
    if (d->cfg->wb_mirror && !d->f[d->n_f].mirrored)
        dm_warn_field(m, d, n,
                      "is applied, stored and served over HTTP but not mirrored: its name cannot "
                      "be a Wiren Board control (an MQTT topic level of at most 128 bytes)");
    return d->n_f++;
}

void dm_fields_free(struct dev *d)
{
    for (size_t i = 0; i < d->n_f; i++)
        json_object_put(d->f[i].v);
    free(d->f);
    d->f = NULL;
    d->n_f = d->cap_f = 0;
}

/* The state as a new json-c object; values are shared references. */
json_object *dm_state_object(const struct dev *d)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; o && i < d->n_f; i++)
        json_object_object_add(o, d->f[i].name, json_object_get(d->f[i].v));
    return o;
}

/* ---- persisted state as JSON text ---------------------------------------- */

struct jbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void jb_put(struct jbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + len + 1)
            nc *= 2;
        char *g = realloc(b->p, nc);
        if (!g) {
            b->oom = true;
            return;
        }
        b->p = g;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

/* A JSON string as json-c writes it (JSON_C_TO_STRING_PLAIN): the same
 * escapes, '/' included, so stored text does not depend on the path. */
static void jb_string(struct jbuf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    jb_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '\b':
            esc = "\\b";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '/':
            esc = "\\/";
            break;
        default:
            if (c < ' ') {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 0xf];
                u[6] = '\0';
                esc = u;
            }
        }
        if (!esc)
            continue;
        jb_put(b, s + start, i - start);
        jb_put(b, esc, strlen(esc));
        start = i + 1;
    }
    jb_put(b, s + start, len - start);
    jb_put(b, "\"", 1);
}

static void jb_value(struct jbuf *b, json_object *v)
{
    char num[24];
    switch (json_object_get_type(v)) {
    case json_type_int: {
        int n = snprintf(num, sizeof(num), "%" PRId64, json_object_get_int64(v));
        jb_put(b, num, (size_t)n);
        break;
    }
    case json_type_boolean:
        if (json_object_get_boolean(v))
            jb_put(b, "true", 4);
        else
            jb_put(b, "false", 5);
        break;
    case json_type_string:
        jb_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_null:
        jb_put(b, "null", 4);
        break;
    default: { /* double (json-c keeps the text it was parsed from), object, array */
        size_t len = 0;
        const char *t = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
        jb_put(b, t, len);
    }
    }
}

/* The persisted state of d as JSON text in m's scratch buffer (valid until
 * the next call); NULL when out of memory. */
const char *dm_persisted_json(struct devmgr *m, const struct dev *d)
{
    struct jbuf b = {m->json, 0, m->json_cap, false};
    bool first = true;
    jb_put(&b, "{", 1);
    for (size_t i = 0; i < d->n_f; i++) {
        if (d->f[i].transient)
            continue;
        if (!first)
            jb_put(&b, ",", 1);
        first = false;
        jb_string(&b, d->f[i].name, strlen(d->f[i].name));
        jb_put(&b, ":", 1);
        jb_value(&b, d->f[i].v);
    }
    jb_put(&b, "}", 1);
    m->json = b.p;
    m->json_cap = b.cap;
    return b.oom ? NULL : b.p;
}

/*
 * devmgr_state.c - a device's state as a small array of fields (see
 * devmgr_int.h): lookup, update, the interned names and the json-c view for
 * readers. (The persisted JSON text is the store sink's: store_sink.c.)
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

struct dev_field dm_field_make(const struct dev *d, const char *name, json_object *v)
{
    return (struct dev_field){.name = name, .v = v, .transient = dm_is_transient(d->cfg, name)};
}

/* Sets name to v (taking the reference) in place or as a new last field.
 * Returns the field's index, or -1 (v released) when out of memory or full. */
int dm_field_set(struct devmgr *m, struct dev *d, const char *name, json_object *v,
                 json_object **old)
{
    if (old)
        *old = NULL;
    int i = dm_field_find(d, name);
    if (i >= 0) {
        if (old)
            *old = d->f[i].v;
        else
            json_object_put(d->f[i].v);
        d->f[i].v = v;
        return i;
    }
    if (d->n_f == d->cap_f) {
        size_t nc = d->cap_f ? 2u * d->cap_f : 2u;
        struct dev_field *g = d->n_f < DEV_MAX_FIELDS ? realloc(d->f, nc * sizeof(*g)) : NULL;
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

/*
 * config_devices.c - the devices: list of the config (CONTRACT §3).
 *
 * Each list entry is walked with its descriptor table into a temporary that
 * wraps the public struct plus the YAML nodes needing a second look (state,
 * availability, actions); the public struct is appended to cfg at once, so
 * cfgd_free() can release everything on any error path. Checks spanning
 * several keys (json bindings take fields, not field; availability needs a
 * topic or a timeout; ids are unique) run once the entry is walked. Entries
 * arrive one at a time while the YAML is still being parsed (the entry's
 * nodes are freed right after), so nothing here may keep a node of an entry:
 * earlier ids are remembered in a hash set, with their positions.
 */
#include "config/config_devices.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_actions.h"
#include "config/config_spec.h"

/* ---- descriptor tables --------------------------------------------------- */

static const struct cfgw_enum state_types[] = {{"bool", CFG_T_BOOL},   {"int", CFG_T_INT},
                                               {"float", CFG_T_FLOAT}, {"string", CFG_T_STRING},
                                               {"json", CFG_T_JSON},   {NULL, 0}};
struct dev_tmp {
    struct cfg_device d;
    const struct ydoc_node *state, *transient, *availability, *actions, *history;
};
#define DF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct dev_tmp, m), __VA_ARGS__                       \
    }
static const struct cfgw_field device_fields[] = {
    DF("id", W_STR, d.id, .required = true),
    DF("name", W_STR, d.name),
    DF("type", W_STR, d.type, .def_str = ""),
    DF("wb_mirror", W_BOOL, d.wb_mirror, .def_int = 1),
    DF("state", W_NODE, state),
    DF("transient", W_NODE, transient),
    DF("availability", W_NODE, availability),
    DF("actions", W_NODE, actions),
    DF("history", W_NODE, history),
    {NULL},
};

static const struct cfgw_enum history_modes[] = {
    {"all", CFG_HIST_ALL}, {"interval", CFG_HIST_INTERVAL}, {"off", CFG_HIST_OFF}, {NULL, 0}};
#define YF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct cfgd_history_tmp, m), __VA_ARGS__              \
    }
const struct cfgw_field cfgd_history_keys[] = {
    YF("mode", W_ENUM, h.mode, .def_int = CFG_HIST_ALL, .enums = history_modes,
       .enum_list = "all|interval|off", .track = true,
       .has_off = offsetof(struct cfgd_history_tmp, h.has_mode)),
    YF("interval_ms", W_UINT, h.interval_ms, .def_int = 60000, .min = 1000, .max = 86400000,
       .track = true, .has_off = offsetof(struct cfgd_history_tmp, h.has_interval)),
    YF("fields", W_NODE, fields),
    YF("exclude", W_NODE, exclude),
    {NULL},
};

struct bind_tmp {
    struct cfg_state_binding b;
    const struct ydoc_node *fields;
    struct cfgf_nodes spec;
    bool type_ok;
};
#define BF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct bind_tmp, m), __VA_ARGS__                      \
    }
static const struct cfgw_field binding_fields[] = {
    BF("topic", W_STR, b.topic, .required = true),
    BF("type", W_ENUM, b.type, .required = true, .def_int = CFG_T_STRING, .enums = state_types,
       .enum_list = "bool|int|float|string|json", .track = true,
       .has_off = offsetof(struct bind_tmp, type_ok)),
    BF("field", W_STR, b.field),
    BF("fields", W_NODE, fields),
    BF("map", W_NODE, spec.map),
    BF("scale", W_NODE, spec.scale),
    BF("wb", W_NODE, spec.wb),
    BF("switch", W_NODE, spec.sw),
    BF("homeassistant", W_NODE, spec.ha),
    {NULL},
};

/* The long form of a fields entry: {path: json.path, map, scale, wb, switch,
 * homeassistant}. */
struct field_tmp {
    char *path;
    struct cfgf_nodes spec;
};
#define FF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct field_tmp, m), __VA_ARGS__                     \
    }
static const struct cfgw_field field_fields[] = {
    FF("path", W_STR, path, .required = true),
    FF("map", W_NODE, spec.map),
    FF("scale", W_NODE, spec.scale),
    FF("wb", W_NODE, spec.wb),
    FF("switch", W_NODE, spec.sw),
    FF("homeassistant", W_NODE, spec.ha),
    {NULL},
};

#define AVF(k, t, m, ...)                                                                          \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct cfg_availability, m), __VA_ARGS__              \
    }
static const struct cfgw_field availability_fields[] = {
    AVF("topic", W_STR, topic),
    AVF("online", W_STR, online, .def_str = "online"),
    AVF("offline", W_STR, offline, .def_str = "offline"),
    AVF("json_field", W_STR, json_field, .def_str = "state"),
    AVF("timeout_s", W_UINT, timeout_s, .min = 0, .max = 7 * 86400),
    {NULL},
};

/* ---- devices ------------------------------------------------------------- */

static void parse_fields_map(struct cfgw_ctx *c, const struct ydoc_node *map,
                             struct cfg_state_binding *b, const struct cfg_device *d,
                             struct cfgf_pending *p)
{
    if (!cfgw_is_map(c, map, "fields"))
        return;
    b->fields = calloc(map->n, sizeof(*b->fields));
    if (!b->fields) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        char q[96], where[240];
        if (!cfgw_field_valid(k->value))
            cfgw_err_node(c, k,
                          "state field name '%s' must be one MQTT topic level (non-empty; no '/', "
                          "'+', '#', control characters or non-characters)",
                          cfgw_safe(k->value, q, sizeof(q)));
        cfgw_fmt(where, sizeof(where), "field '%s' of device '%s'",
                 cfgw_safe(k->value, q, sizeof(q)), d->id ? d->id : "?");
        /* The short form is the path itself; the long form a map with it. */
        struct field_tmp t;
        memset(&t, 0, sizeof(t));
        const struct ydoc_node *pn = v;
        if (v->kind == YDOC_MAP) {
            cfgw_defaults(c, field_fields, &t);
            cfgw_map(c, field_fields, v, &t, where);
            if (!t.path)
                continue;
            pn = ydoc_map_get(v, "path");
        } else if (!cfgw_is_string(c, v, "a fields path")) {
            continue;
        }
        const char *path = t.path ? t.path : v->value;
        if (*path == '.' || path[strlen(path) - 1] == '.' || strstr(path, ".."))
            cfgw_err_node(c, pn, "fields path '%s' has an empty segment", path);
        struct cfg_field_map *f = &b->fields[b->n_fields++];
        f->field = cfgw_strdup(c, k->value);
        f->path = t.path ? t.path : cfgw_strdup(c, path);
        f->spec = cfgf_new(c, &t.spec);
        if (f->spec)
            cfgf_parse(c, f->spec, CFG_T_JSON, &t.spec, f->field, where, p);
    }
}

/* The spec keys a binding of type json does not take (its fields do). */
static void refuse_json_spec(struct cfgw_ctx *c, const struct ydoc_node *v)
{
    static const char *const keys[] = {"map", "scale", "wb", "switch", "homeassistant"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct ydoc_node *n = ydoc_map_get(v, keys[i]);
        if (n)
            cfgw_err_node(c, n,
                          "%s is not allowed on a state binding of type json: give it to a fields "
                          "entry ({path: ..., %s: ...})",
                          keys[i], keys[i]);
    }
}

static void parse_state(struct cfgw_ctx *c, const struct ydoc_node *list, struct cfg_device *d,
                        struct cfgf_pending *p)
{
    char what[160];
    cfgw_fmt(what, sizeof(what), "state of device '%s'", d->id ? d->id : "?");
    if (!cfgw_is_list(c, list, what))
        return;
    d->state = calloc(list->n, sizeof(*d->state));
    if (!d->state) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *v = list->items[i];
        char where[200];
        cfgw_fmt(where, sizeof(where), "state binding %zu of device '%s'", i + 1,
                 d->id ? d->id : "?");
        if (!cfgw_is_map(c, v, where)) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "%s must be a map with a topic", where);
            continue;
        }
        struct bind_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, binding_fields, &t);
        cfgw_map(c, binding_fields, v, &t, where);
        struct cfg_state_binding *b = &d->state[d->n_state++];
        *b = t.b;
        b->mark = (struct cfg_mark){v->line, v->column};
        char q[96];
        if (b->topic && !cfgw_topic_valid(b->topic, true))
            cfgw_err_node(c, ydoc_map_get(v, "topic"),
                          "state topic '%s' of device '%s' is not a valid MQTT topic filter",
                          cfgw_safe(b->topic, q, sizeof(q)), d->id ? d->id : "?");
        if (!t.type_ok)
            continue;
        if (b->type == CFG_T_JSON) {
            if (b->field)
                cfgw_err_node(c, ydoc_map_get(v, "field"),
                              "field is not allowed in a state binding of type json (use fields)");
            refuse_json_spec(c, v);
            parse_fields_map(c, t.fields, b, d, p);
        } else {
            if (t.fields)
                cfgw_err_node(c, ydoc_map_get(v, "fields"),
                              "fields is only allowed in a state binding of type json");
            if (!b->field)
                cfgw_err_node(c, v, "%s needs 'field' (its type is not json)", where);
            else if (!cfgw_field_valid(b->field))
                cfgw_err_node(c, ydoc_map_get(v, "field"),
                              "state field name '%s' must be one MQTT topic level (non-empty; no "
                              "'/', '+', '#', control characters or non-characters)",
                              cfgw_safe(b->field, q, sizeof(q)));
            char fw[240];
            cfgw_fmt(fw, sizeof(fw), "field '%s' of device '%s'",
                     b->field ? cfgw_safe(b->field, q, sizeof(q)) : "?", d->id ? d->id : "?");
            b->spec = cfgf_new(c, &t.spec);
            if (b->spec)
                cfgf_parse(c, b->spec, b->type, &t.spec, b->field, fw, p);
        }
    }
}

static void parse_transient(struct cfgw_ctx *c, const struct ydoc_node *list, struct cfg_device *d)
{
    if (!cfgw_is_list(c, list, "transient"))
        return;
    d->transient = calloc(list->n, sizeof(char *));
    if (!d->transient) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++)
        if (cfgw_is_string(c, list->items[i], "transient entries"))
            d->transient[d->n_transient++] = cfgw_strdup(c, list->items[i]->value);
}

/* A list of field names into *v, *n. */
static void field_list(struct cfgw_ctx *c, const struct ydoc_node *list, const char *what,
                       char ***v, size_t *n)
{
    if (!cfgw_is_list(c, list, what))
        return;
    *v = calloc(list->n ? list->n : 1, sizeof(char *));
    if (!*v) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *e = list->items[i];
        if (!cfgw_is_string(c, e, what))
            continue;
        if (!cfgw_field_valid(e->value)) {
            char q[96];
            cfgw_err_node(c, e, "%s entry '%s' is not a valid state field name", what,
                          cfgw_safe(e->value, q, sizeof(q)));
            continue;
        }
        (*v)[(*n)++] = cfgw_strdup(c, e->value);
    }
}

void cfgd_history_lists(struct cfgw_ctx *c, struct cfgd_history_tmp *t, const char *where)
{
    char what[200];
    cfgw_fmt(what, sizeof(what), "%s fields", where);
    t->h.has_fields = t->fields && !ydoc_is_null(t->fields);
    field_list(c, t->fields, what, &t->h.fields, &t->h.n_fields);
    cfgw_fmt(what, sizeof(what), "%s exclude", where);
    t->h.has_exclude = t->exclude && !ydoc_is_null(t->exclude);
    field_list(c, t->exclude, what, &t->h.exclude, &t->h.n_exclude);
}

void cfgd_history_free(struct cfg_history *h)
{
    if (!h)
        return;
    cfgw_free_strv(h->fields, h->n_fields);
    cfgw_free_strv(h->exclude, h->n_exclude);
    h->fields = h->exclude = NULL;
    h->n_fields = h->n_exclude = 0;
}

/* Whether d has a state field called name; true also when d's fields
 * cannot be known from the config (a JSON binding that merges the whole
 * object). */
static bool device_has_field(const struct cfg_device *d, const char *name)
{
    for (size_t j = 0; j < d->n_state; j++) {
        const struct cfg_state_binding *b = &d->state[j];
        if (b->type == CFG_T_JSON && b->n_fields == 0)
            return true;
        if (b->field && strcmp(b->field, name) == 0)
            return true;
        for (size_t k = 0; k < b->n_fields; k++)
            if (b->fields[k].field && strcmp(b->fields[k].field, name) == 0)
                return true;
    }
    for (size_t j = 0; j < d->n_actions; j++)
        if (d->actions[j].set && json_object_object_get_ex(d->actions[j].set, name, NULL))
            return true;
    return false;
}

/* Reports the entries of list that name no field of d. */
static void check_known(struct cfgw_ctx *c, const struct cfg_device *d,
                        const struct ydoc_node *list, const char *key)
{
    if (!list || list->kind != YDOC_SEQ)
        return;
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *e = list->items[i];
        if (e->kind == YDOC_SCALAR && !device_has_field(d, e->value)) {
            char q[96];
            cfgw_err_node(c, e,
                          "history %s of device '%s' names '%s', which is not a state field "
                          "of the device",
                          key, d->id ? d->id : "?", cfgw_safe(e->value, q, sizeof(q)));
        }
    }
}

/* devices[].history: the device's own policy; run after the state and
 * actions are parsed, so the named fields can be checked. */
static void parse_history(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_device *d,
                          const char *where)
{
    if (ydoc_is_null(map))
        return;
    char w[200];
    cfgw_fmt(w, sizeof(w), "%s history", where);
    struct cfgd_history_tmp t;
    memset(&t, 0, sizeof(t));
    cfgw_defaults(c, cfgd_history_keys, &t);
    if (!cfgw_map(c, cfgd_history_keys, map, &t, w))
        return;
    cfgd_history_lists(c, &t, w);
    d->history = malloc(sizeof(*d->history));
    if (!d->history) {
        cfgd_history_free(&t.h);
        c->oom = true;
        return;
    }
    *d->history = t.h;
    check_known(c, d, t.fields, "fields");
    check_known(c, d, t.exclude, "exclude");
}

static void parse_availability(struct cfgw_ctx *c, const struct ydoc_node *map,
                               struct cfg_device *d)
{
    if (ydoc_is_null(map))
        return;
    d->availability = calloc(1, sizeof(*d->availability));
    if (!d->availability) {
        c->oom = true;
        return;
    }
    struct cfg_availability *av = d->availability;
    cfgw_defaults(c, availability_fields, av);
    if (!cfgw_map(c, availability_fields, map, av, "availability"))
        return;
    char q[96];
    if (av->topic && !cfgw_topic_valid(av->topic, true))
        cfgw_err_node(c, ydoc_map_get(map, "topic"),
                      "availability topic '%s' is not a valid MQTT topic filter",
                      cfgw_safe(av->topic, q, sizeof(q)));
    if (!av->topic && av->timeout_s == 0)
        cfgw_err_node(c, map, "availability needs a topic or timeout_s > 0");
}

void cfgd_begin(struct cfgd_loader *l, struct cfgw_ctx *c, struct config *cfg)
{
    *l = (struct cfgd_loader){.c = c, .cfg = cfg};
}

/* A free entry at the end of cfg->devices; the array grows by doubling. */
static struct cfg_device *device_slot(struct cfgd_loader *l)
{
    struct config *cfg = l->cfg;
    if (cfg->n_devices == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        struct cfg_device *nd = realloc(cfg->devices, nc * sizeof(*nd));
        if (!nd) {
            l->c->oom = true;
            return NULL;
        }
        cfg->devices = nd;
        l->cap = nc;
    }
    return &cfg->devices[cfg->n_devices];
}

void cfgd_device(struct cfgd_loader *l, const struct ydoc_node *v, size_t index)
{
    struct cfgw_ctx *c = l->c;
    const struct ydoc_node *idn = ydoc_map_get(v, "id");
    char where[160];
    if (idn && idn->kind == YDOC_SCALAR)
        cfgw_fmt(where, sizeof(where), "device '%s'", idn->value);
    else
        cfgw_fmt(where, sizeof(where), "device %zu", index + 1);
    if (!cfgw_is_map(c, v, "devices entries")) {
        if (ydoc_is_null(v))
            cfgw_err_node(c, v, "devices entries must be maps, got nothing");
        return;
    }
    struct cfg_device *d = device_slot(l);
    if (!d)
        return;
    struct dev_tmp t;
    memset(&t, 0, sizeof(t));
    cfgw_defaults(c, device_fields, &t);
    cfgw_map(c, device_fields, v, &t, where);
    *d = t.d;
    l->cfg->n_devices++;
    d->mark = (struct cfg_mark){v->line, v->column};
    if (d->id) {
        if (!cfgw_id_valid(d->id))
            cfgw_err_node(c, idn, "device id '%s' must match [a-z0-9_]+", d->id);
        const struct cfgw_id_slot *first = cfgw_ids_find(&l->ids, d->id);
        if (first)
            cfgw_err_node(c, idn, "duplicate device id '%s' (first defined at %d:%d)", d->id,
                          first->line, first->column);
        if (!d->name)
            d->name = cfgw_strdup(c, d->id);
    }
    /* Remember the entry by its first "id" key, as written: skipped
     * (non-map) entries make indexes of cfg->devices differ from the list.
     * The node goes away with the entry, so its text is borrowed from the
     * device when they agree (the usual case) and copied otherwise (a
     * repeated id key, or an id that was not usable). */
    if (idn && idn->kind == YDOC_SCALAR) {
        bool same = d->id && strcmp(d->id, idn->value) == 0;
        cfgw_ids_add(c, &l->ids, same ? d->id : idn->value, !same, idn->line, idn->column);
    }
    struct cfgf_pending sw = {0};
    parse_state(c, t.state, d, &sw);
    parse_transient(c, t.transient, d);
    parse_availability(c, t.availability, d);
    cfga_actions(c, t.actions, d);
    /* A switch names actions: checked once they are walked. */
    cfgf_check_switches(c, &sw, d);
    parse_history(c, t.history, d, where);
}

void cfgd_devices(struct cfgd_loader *l, const struct ydoc_node *list)
{
    /* A streamed list is an empty sequence here; anything else is walked. */
    if (cfgw_is_list(l->c, list, "devices"))
        for (size_t i = 0; i < list->n; i++)
            cfgd_device(l, list->items[i], i);
    /* Every id is known now: the duplicate check is done. */
    cfgw_ids_free(&l->ids);
    /* Give the doubling's slack back: the config lives as long as the daemon. */
    struct config *cfg = l->cfg;
    if (cfg->n_devices > 0 && cfg->n_devices < l->cap) {
        struct cfg_device *nd = realloc(cfg->devices, cfg->n_devices * sizeof(*nd));
        if (nd) {
            cfg->devices = nd;
            l->cap = cfg->n_devices;
        }
    }
}

void cfgd_end(struct cfgd_loader *l)
{
    cfgw_ids_free(&l->ids);
}

void cfgd_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_devices; i++) {
        struct cfg_device *d = &cfg->devices[i];
        free(d->id);
        free(d->name);
        free(d->type);
        for (size_t j = 0; j < d->n_state; j++) {
            free(d->state[j].topic);
            free(d->state[j].field);
            cfgf_free(d->state[j].spec);
            free(d->state[j].spec);
            for (size_t k = 0; k < d->state[j].n_fields; k++) {
                free(d->state[j].fields[k].field);
                free(d->state[j].fields[k].path);
                cfgf_free(d->state[j].fields[k].spec);
                free(d->state[j].fields[k].spec);
            }
            free(d->state[j].fields);
        }
        free(d->state);
        cfgw_free_strv(d->transient, d->n_transient);
        cfgd_history_free(d->history);
        free(d->history);
        if (d->availability) {
            free(d->availability->topic);
            free(d->availability->online);
            free(d->availability->offline);
            free(d->availability->json_field);
            free(d->availability);
        }
        cfga_free_actions(d);
    }
    free(cfg->devices);
    cfg->devices = NULL;
    cfg->n_devices = 0;
}

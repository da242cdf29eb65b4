/*
 * config_devices.c - devices: and scenarios: of the config (CONTRACT §3).
 *
 * Each list entry is walked with its descriptor table into a temporary that
 * wraps the public struct plus the YAML nodes needing a second look (params,
 * templates, steps); the public struct is appended to cfg at once, so
 * cfgd_free() can release everything on any error path. Cross references
 * (templates -> params, steps -> devices/actions/params) are checked after
 * the entry is walked, when every name it may refer to is known.
 */
#include "config/config_devices.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small validators ---------------------------------------------------- */

/* Device and scenario ids: [a-z0-9_]+ (they become Wiren Board device ids). */
static bool id_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* Action and param names: [A-Za-z0-9_-]+ (controls and template names). */
static bool name_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* State field names become MQTT topic levels of the mirror device. */
static bool field_valid(const char *s)
{
    return *s && !strpbrk(s, "/+#");
}

bool cfgd_topic_valid(const char *t, bool filter)
{
    size_t len = strlen(t);
    if (len == 0 || len > 65535)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '+' && t[i] != '#')
            continue;
        if (!filter)
            return false;
        bool starts = i == 0 || t[i - 1] == '/';
        bool ends = i + 1 == len || t[i + 1] == '/';
        if (!starts || !ends)
            return false;
        if (t[i] == '#' && i + 1 != len)
            return false;
    }
    return true;
}

static bool is_list(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what)
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

static bool is_map(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what)
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
static bool is_string(struct cfgw_ctx *c, const struct ydoc_node *n, const char *what)
{
    char got[96];
    if (n->kind == YDOC_SCALAR && !ydoc_is_null(n))
        return true;
    cfgw_err_node(c, n, "%s must be a string, got %s", what, ydoc_describe(n, got, sizeof(got)));
    return false;
}

/* ---- descriptor tables --------------------------------------------------- */

static const struct cfgw_enum state_types[] = {{"bool", CFG_T_BOOL},   {"int", CFG_T_INT},
                                               {"float", CFG_T_FLOAT}, {"string", CFG_T_STRING},
                                               {"json", CFG_T_JSON},   {NULL, 0}};
static const struct cfgw_enum param_types[] = {{"int", CFG_T_INT},   {"float", CFG_T_FLOAT},
                                               {"bool", CFG_T_BOOL}, {"string", CFG_T_STRING},
                                               {"enum", CFG_T_ENUM}, {NULL, 0}};

struct dev_tmp {
    struct cfg_device d;
    const struct ydoc_node *state, *transient, *availability, *actions;
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
    {NULL},
};

struct bind_tmp {
    struct cfg_state_binding b;
    const struct ydoc_node *fields;
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
    AVF("timeout_s", W_UINT, timeout_s, .min = 0, .max = 7 * 86400),
    {NULL},
};

struct act_tmp {
    struct cfg_action a;
    const struct ydoc_node *params, *set;
};
#define AF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct act_tmp, m), __VA_ARGS__                       \
    }
static const struct cfgw_field action_fields[] = {
    AF("topic", W_STR, a.topic, .required = true),
    AF("payload", W_STR, a.payload, .def_str = "1"),
    AF("params", W_NODE, params),
    AF("set", W_NODE, set),
    {NULL},
};

struct param_tmp {
    struct cfg_param p;
    const struct ydoc_node *def, *values;
    bool type_ok;
};
#define PF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct param_tmp, m), __VA_ARGS__                     \
    }
static const struct cfgw_field param_fields[] = {
    PF("type", W_ENUM, p.type, .required = true, .def_int = CFG_T_STRING, .enums = param_types,
       .enum_list = "int|float|bool|string|enum", .track = true,
       .has_off = offsetof(struct param_tmp, type_ok)),
    PF("min", W_DOUBLE, p.min, .track = true, .has_off = offsetof(struct param_tmp, p.has_min)),
    PF("max", W_DOUBLE, p.max, .track = true, .has_off = offsetof(struct param_tmp, p.has_max)),
    PF("required", W_BOOL, p.required),
    PF("default", W_NODE, def),
    PF("values", W_NODE, values),
    {NULL},
};

struct scen_tmp {
    struct cfg_scenario s;
    const struct ydoc_node *devices, *startup, *shutdown;
};
#define SF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct scen_tmp, m), __VA_ARGS__                      \
    }
static const struct cfgw_field scenario_fields[] = {
    SF("id", W_STR, s.id, .required = true), SF("name", W_STR, s.name),
    SF("devices", W_NODE, devices),          SF("startup", W_NODE, startup),
    SF("shutdown", W_NODE, shutdown),        {NULL},
};

struct step_tmp {
    struct cfg_step s;
    const struct ydoc_node *params, *when;
};
#define STF(k, t, m, ...)                                                                          \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct step_tmp, m), __VA_ARGS__                      \
    }
static const struct cfgw_field step_fields[] = {
    STF("device", W_STR, s.device, .required = true),
    STF("action", W_STR, s.action, .required = true),
    STF("params", W_NODE, params),
    STF("when", W_NODE, when),
    STF("delay_after_ms", W_UINT, s.delay_after_ms, .min = 0, .max = 3600000),
    {NULL},
};

/* ---- params and templates ------------------------------------------------ */

static const char *param_kind(const struct cfg_param *p, char *buf, size_t len)
{
    const char *noun = p->type == CFG_T_INT     ? "an integer"
                       : p->type == CFG_T_FLOAT ? "a number"
                                                : "a string";
    switch (p->type) {
    case CFG_T_BOOL:
        return "true or false";
    case CFG_T_ENUM: {
        size_t used = (size_t)snprintf(buf, len, "one of ");
        for (size_t i = 0; i < p->n_enum_values && used < len; i++)
            used +=
                (size_t)snprintf(buf + used, len - used, "%s%s", i ? "|" : "", p->enum_values[i]);
        return buf;
    }
    default:
        break;
    }
    const char *unit = p->type == CFG_T_STRING ? " characters long" : "";
    if (p->type == CFG_T_STRING && !p->has_min && !p->has_max)
        return "a string";
    if (p->has_min && p->has_max)
        snprintf(buf, len, "%s between %g and %g%s", noun, p->min, p->max, unit);
    else if (p->has_min)
        snprintf(buf, len, "%s >= %g%s", noun, p->min, unit);
    else if (p->has_max)
        snprintf(buf, len, "%s <= %g%s", noun, p->max, unit);
    else
        snprintf(buf, len, "%s", noun);
    return buf;
}

static bool in_bounds(const struct cfg_param *p, double v)
{
    return !(p->has_min && v < p->min) && !(p->has_max && v > p->max);
}

/* The typed JSON value of v for param p; NULL with an error reported when it
 * does not fit ("what must be an integer between 0 and 100, got 'x'"). */
static json_object *param_value(struct cfgw_ctx *c, const struct ydoc_node *v,
                                const struct cfg_param *p, const char *what)
{
    char got[96], kind[256];
    long long ll;
    double d;
    bool b;
    json_object *out = NULL;
    bool ok = v->kind == YDOC_SCALAR && !ydoc_is_null(v);

    if (ok) {
        switch (p->type) {
        case CFG_T_INT:
            ok = cfgw_parse_ll(v->value, &ll) && in_bounds(p, (double)ll);
            if (ok)
                out = json_object_new_int64(ll);
            break;
        case CFG_T_FLOAT:
            ok = cfgw_parse_double(v->value, &d) && in_bounds(p, d);
            if (ok)
                out = json_object_new_double(d);
            break;
        case CFG_T_BOOL:
            ok = cfgw_parse_bool(v->value, &b);
            if (ok)
                out = json_object_new_boolean(b);
            break;
        case CFG_T_ENUM:
            ok = false;
            for (size_t i = 0; i < p->n_enum_values; i++)
                ok = ok || strcmp(p->enum_values[i], v->value) == 0;
            if (ok)
                out = json_object_new_string(v->value);
            break;
        default:
            ok = in_bounds(p, (double)strlen(v->value));
            if (ok)
                out = json_object_new_string(v->value);
            break;
        }
        if (ok && !out)
            c->oom = true;
    }
    if (!ok)
        cfgw_err_node(c, v, "%s must be %s, got %s", what, param_kind(p, kind, sizeof(kind)),
                      ydoc_describe(v, got, sizeof(got)));
    return out;
}

static const struct cfg_param *find_param(const struct cfg_action *a, const char *name, size_t n)
{
    for (size_t i = 0; i < a->n_params; i++)
        if (strlen(a->params[i].name) == n && strncmp(a->params[i].name, name, n) == 0)
            return &a->params[i];
    return NULL;
}

/* "{name}" must name a declared param; "{{" and "}}" are literal braces. */
static void check_template(struct cfgw_ctx *c, const struct ydoc_node *at, const char *text,
                           const struct cfg_action *a, const char *what)
{
    for (const char *s = text; *s; s++) {
        if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            s++;
            continue;
        }
        if (*s == '}') {
            cfgw_err_node(c, at, "%s has a lone '}' (write '}}' for a literal brace)", what);
            return;
        }
        if (*s != '{')
            continue;
        const char *end = strchr(s + 1, '}');
        size_t n = end ? (size_t)(end - s - 1) : 0;
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(n < 127 ? n : 127), s + 1);
        if (!end || !name_valid(name)) {
            cfgw_err_node(c, at,
                          "%s has a '{' that does not start a {param} reference (write '{{' for "
                          "a literal brace)",
                          what);
            return;
        }
        if (!find_param(a, s + 1, n))
            cfgw_err_node(c, at, "%s refers to undeclared param '%s'", what, name);
        s = end;
    }
}

static void parse_params(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_action *a,
                         const char *where)
{
    char what[256];
    snprintf(what, sizeof(what), "params of %s", where);
    if (!is_map(c, map, what))
        return;
    a->params = calloc(map->n, sizeof(*a->params));
    if (!a->params) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        struct param_tmp t;
        memset(&t, 0, sizeof(t));
        char pw[320];
        snprintf(pw, sizeof(pw), "param '%s' of %s", k->value, where);
        if (!name_valid(k->value))
            cfgw_err_node(c, k, "param name '%s' must match [A-Za-z0-9_-]+", k->value);
        if (ydoc_is_null(v) || v->kind != YDOC_MAP) {
            is_map(c, v, pw);
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "%s must be a map with at least a type", pw);
            continue;
        }
        cfgw_defaults(c, param_fields, &t);
        cfgw_map(c, param_fields, v, &t, pw);
        struct cfg_param *p = &a->params[a->n_params++];
        *p = t.p;
        p->name = cfgw_strdup(c, k->value);
        if (!t.type_ok)
            continue;
        if (p->has_min && p->has_max && p->min > p->max)
            cfgw_err_node(c, ydoc_map_get(v, "min"), "min %g is greater than max %g in %s", p->min,
                          p->max, pw);
        if ((p->has_min || p->has_max) && (p->type == CFG_T_BOOL || p->type == CFG_T_ENUM))
            cfgw_err_node(c, v, "min/max are not allowed for a param of type %s",
                          p->type == CFG_T_BOOL ? "bool" : "enum");
        if (p->type == CFG_T_ENUM) {
            if (ydoc_is_null(t.values)) {
                cfgw_err_node(c, v, "%s of type enum needs a list of values", pw);
            } else if (is_list(c, t.values, "values")) {
                if (t.values->n == 0)
                    cfgw_err_node(c, t.values, "values of %s must not be empty", pw);
                p->enum_values = calloc(t.values->n + 1, sizeof(char *));
                if (!p->enum_values) {
                    c->oom = true;
                    continue;
                }
                for (size_t j = 0; j < t.values->n; j++) {
                    const struct ydoc_node *e = t.values->items[j];
                    if (!is_string(c, e, "values entries"))
                        continue;
                    for (size_t q = 0; q < p->n_enum_values; q++)
                        if (strcmp(p->enum_values[q], e->value) == 0)
                            cfgw_err_node(c, e, "duplicate value '%s' in %s", e->value, pw);
                    p->enum_values[p->n_enum_values++] = cfgw_strdup(c, e->value);
                }
            }
        } else if (t.values) {
            cfgw_err_node(c, t.values, "values is only allowed for a param of type enum");
        }
        if (t.def) {
            char dw[340];
            snprintf(dw, sizeof(dw), "default of %s", pw);
            p->default_value = param_value(c, t.def, p, dw);
        }
    }
}

static void parse_set(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_action *a,
                      const char *where)
{
    char what[256], got[96];
    snprintf(what, sizeof(what), "set of %s", where);
    if (!is_map(c, map, what))
        return;
    a->set = json_object_new_object();
    if (!a->set) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        if (!field_valid(k->value))
            cfgw_err_node(c, k, "state field name '%s' must be non-empty without '/', '+', '#'",
                          k->value);
        if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
            cfgw_err_node(c, v, "set value of '%s' must be a scalar, got %s", k->value,
                          ydoc_is_null(v) ? "null" : ydoc_describe(v, got, sizeof(got)));
            continue;
        }
        json_object *j = cfgw_scalar_json(v);
        if (!j) {
            c->oom = true;
            continue;
        }
        if (json_object_is_type(j, json_type_string)) {
            char tw[320];
            snprintf(tw, sizeof(tw), "set value of '%s' in %s", k->value, where);
            check_template(c, v, v->value, a, tw);
        }
        json_object_object_add(a->set, k->value, j);
    }
}

static void parse_actions(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_device *d)
{
    char what[160];
    snprintf(what, sizeof(what), "actions of device '%s'", d->id ? d->id : "?");
    if (!is_map(c, map, what))
        return;
    d->actions = calloc(map->n, sizeof(*d->actions));
    if (!d->actions) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        char where[256];
        snprintf(where, sizeof(where), "action '%s' of device '%s'", k->value, d->id ? d->id : "?");
        if (!name_valid(k->value))
            cfgw_err_node(c, k, "action name '%s' must match [A-Za-z0-9_-]+", k->value);
        if (ydoc_is_null(v) || v->kind != YDOC_MAP) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "%s must be a map with at least a topic", where);
            else
                is_map(c, v, where);
            continue;
        }
        struct act_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, action_fields, &t);
        cfgw_map(c, action_fields, v, &t, where);
        struct cfg_action *a = &d->actions[d->n_actions++];
        *a = t.a;
        a->name = cfgw_strdup(c, k->value);
        a->mark = (struct cfg_mark){k->line, k->column};
        if (a->topic && !cfgd_topic_valid(a->topic, false))
            cfgw_err_node(c, ydoc_map_get(v, "topic"),
                          "topic '%s' of %s must be a non-empty topic without wildcards", a->topic,
                          where);
        parse_params(c, t.params, a, where);
        const struct ydoc_node *pl = ydoc_map_get(v, "payload");
        if (pl && a->payload) {
            char pw[300];
            snprintf(pw, sizeof(pw), "payload of %s", where);
            check_template(c, pl, a->payload, a, pw);
        }
        parse_set(c, t.set, a, where);
    }
}

/* ---- devices ------------------------------------------------------------- */

static void parse_fields_map(struct cfgw_ctx *c, const struct ydoc_node *map,
                             struct cfg_state_binding *b)
{
    if (!is_map(c, map, "fields"))
        return;
    b->fields = calloc(map->n, sizeof(*b->fields));
    if (!b->fields) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        if (!field_valid(k->value))
            cfgw_err_node(c, k, "state field name '%s' must be non-empty without '/', '+', '#'",
                          k->value);
        if (!is_string(c, v, "a fields path"))
            continue;
        const char *p = v->value;
        if (*p == '.' || p[strlen(p) - 1] == '.' || strstr(p, ".."))
            cfgw_err_node(c, v, "fields path '%s' has an empty segment", p);
        struct cfg_field_map *f = &b->fields[b->n_fields++];
        f->field = cfgw_strdup(c, k->value);
        f->path = cfgw_strdup(c, p);
    }
}

static void parse_state(struct cfgw_ctx *c, const struct ydoc_node *list, struct cfg_device *d)
{
    char what[160];
    snprintf(what, sizeof(what), "state of device '%s'", d->id ? d->id : "?");
    if (!is_list(c, list, what))
        return;
    d->state = calloc(list->n, sizeof(*d->state));
    if (!d->state) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *v = list->items[i];
        char where[200];
        snprintf(where, sizeof(where), "state binding %zu of device '%s'", i + 1,
                 d->id ? d->id : "?");
        if (!is_map(c, v, where)) {
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
        if (b->topic && !cfgd_topic_valid(b->topic, true))
            cfgw_err_node(c, ydoc_map_get(v, "topic"),
                          "state topic '%s' of device '%s' is not a valid MQTT topic filter",
                          b->topic, d->id ? d->id : "?");
        if (!t.type_ok)
            continue;
        if (b->type == CFG_T_JSON) {
            if (b->field)
                cfgw_err_node(c, ydoc_map_get(v, "field"),
                              "field is not allowed in a state binding of type json (use fields)");
            parse_fields_map(c, t.fields, b);
        } else {
            if (t.fields)
                cfgw_err_node(c, ydoc_map_get(v, "fields"),
                              "fields is only allowed in a state binding of type json");
            if (!b->field)
                cfgw_err_node(c, v, "%s needs 'field' (its type is not json)", where);
            else if (!field_valid(b->field))
                cfgw_err_node(c, ydoc_map_get(v, "field"),
                              "state field name '%s' must be non-empty without '/', '+', '#'",
                              b->field);
        }
    }
}

static void parse_transient(struct cfgw_ctx *c, const struct ydoc_node *list, struct cfg_device *d)
{
    if (!is_list(c, list, "transient"))
        return;
    d->transient = calloc(list->n, sizeof(char *));
    if (!d->transient) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++)
        if (is_string(c, list->items[i], "transient entries"))
            d->transient[d->n_transient++] = cfgw_strdup(c, list->items[i]->value);
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
    if (av->topic && !cfgd_topic_valid(av->topic, true))
        cfgw_err_node(c, ydoc_map_get(map, "topic"),
                      "availability topic '%s' is not a valid MQTT topic filter", av->topic);
    if (!av->topic && av->timeout_s == 0)
        cfgw_err_node(c, map, "availability needs a topic or timeout_s > 0");
}

void cfgd_devices(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg)
{
    if (!is_list(c, list, "devices"))
        return;
    cfg->devices = calloc(list->n, sizeof(*cfg->devices));
    if (!cfg->devices) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *v = list->items[i];
        const struct ydoc_node *idn = ydoc_map_get(v, "id");
        char where[160];
        if (idn && idn->kind == YDOC_SCALAR)
            snprintf(where, sizeof(where), "device '%s'", idn->value);
        else
            snprintf(where, sizeof(where), "device %zu", i + 1);
        if (!is_map(c, v, "devices entries")) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "devices entries must be maps, got nothing");
            continue;
        }
        struct dev_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, device_fields, &t);
        cfgw_map(c, device_fields, v, &t, where);
        struct cfg_device *d = &cfg->devices[cfg->n_devices++];
        *d = t.d;
        d->mark = (struct cfg_mark){v->line, v->column};
        if (d->id) {
            if (!id_valid(d->id))
                cfgw_err_node(c, idn, "device id '%s' must match [a-z0-9_]+", d->id);
            for (size_t j = 0; j + 1 < cfg->n_devices; j++)
                if (cfg->devices[j].id && strcmp(cfg->devices[j].id, d->id) == 0) {
                    const struct ydoc_node *first = ydoc_map_get(list->items[j], "id");
                    cfgw_err_node(c, idn, "duplicate device id '%s' (first defined at %d:%d)",
                                  d->id, first->line, first->column);
                    break;
                }
            if (!d->name)
                d->name = cfgw_strdup(c, d->id);
        }
        parse_state(c, t.state, d);
        parse_transient(c, t.transient, d);
        parse_availability(c, t.availability, d);
        parse_actions(c, t.actions, d);
    }
}

/* ---- scenarios ----------------------------------------------------------- */

static const struct cfg_device *find_device(const struct config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_devices; i++)
        if (cfg->devices[i].id && strcmp(cfg->devices[i].id, id) == 0)
            return &cfg->devices[i];
    return NULL;
}

static const struct cfg_action *find_action(const struct cfg_device *d, const char *name)
{
    for (size_t i = 0; i < d->n_actions; i++)
        if (d->actions[i].name && strcmp(d->actions[i].name, name) == 0)
            return &d->actions[i];
    return NULL;
}

static void check_step_params(struct cfgw_ctx *c, struct step_tmp *t, const struct ydoc_node *v,
                              const struct cfg_action *a, const char *sid)
{
    struct cfg_step *st = &t->s;
    const struct ydoc_node *pm = t->params;
    char what[200];
    snprintf(what, sizeof(what), "params of scenario '%s' step", sid);
    if (is_map(c, pm, what)) {
        st->params = json_object_new_object();
        if (!st->params) {
            c->oom = true;
            return;
        }
        for (size_t i = 0; i < pm->n; i++) {
            const struct ydoc_node *k = pm->keys[i];
            const struct cfg_param *p = find_param(a, k->value, strlen(k->value));
            if (!p) {
                cfgw_err_node(c, k,
                              "scenario '%s' step: action '%s' of device '%s' has no param '%s'",
                              sid, st->action, st->device, k->value);
                continue;
            }
            char pw[300];
            snprintf(pw, sizeof(pw), "scenario '%s' step: param '%s' of action '%s'", sid, k->value,
                     st->action);
            json_object *j = param_value(c, pm->items[i], p, pw);
            if (j)
                json_object_object_add(st->params, k->value, j);
        }
    }
    for (size_t i = 0; i < a->n_params; i++) {
        const struct cfg_param *p = &a->params[i];
        if (p->required && !p->default_value && !ydoc_map_get(pm, p->name))
            cfgw_err_node(c, v, "scenario '%s' step: action '%s' of device '%s' needs param '%s'",
                          sid, st->action, st->device, p->name);
    }
}

static void parse_steps(struct cfgw_ctx *c, const struct ydoc_node *list, struct cfg_scenario *s,
                        const struct config *cfg, bool startup)
{
    const char *phase = startup ? "startup" : "shutdown";
    const char *sid = s->id ? s->id : "?";
    char what[160];
    snprintf(what, sizeof(what), "%s of scenario '%s'", phase, sid);
    if (!is_list(c, list, what))
        return;
    struct cfg_step *steps = calloc(list->n, sizeof(*steps));
    size_t *n = startup ? &s->n_startup : &s->n_shutdown;
    if (!steps) {
        c->oom = true;
        return;
    }
    if (startup)
        s->startup = steps;
    else
        s->shutdown = steps;
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *v = list->items[i];
        char where[200];
        snprintf(where, sizeof(where), "scenario '%s' %s step %zu", sid, phase, i + 1);
        if (!is_map(c, v, where)) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "%s must be a map with device and action", where);
            continue;
        }
        struct step_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, step_fields, &t);
        cfgw_map(c, step_fields, v, &t, where);
        t.s.mark = (struct cfg_mark){v->line, v->column};
        if (t.when) {
            char err[200];
            if (t.when->kind != YDOC_SCALAR || ydoc_is_null(t.when))
                cfgw_err_node(c, v, "%s: when must be a string like \"field == value\"", where);
            else if (!(t.s.when = cfg_condition_parse(t.when->value, err, sizeof(err))))
                cfgw_err_node(c, v, "%s: bad when '%s': %s", where, t.when->value, err);
        }
        const struct cfg_device *d = NULL;
        const struct cfg_action *a = NULL;
        if (t.s.device) {
            const struct ydoc_node *dn = ydoc_map_get(v, "device");
            bool listed = false;
            for (size_t j = 0; j < s->n_devices; j++)
                listed = listed || strcmp(s->devices[j], t.s.device) == 0;
            if (!(d = find_device(cfg, t.s.device)))
                cfgw_err_node(c, dn, "scenario '%s' step refers to unknown device '%s'", sid,
                              t.s.device);
            else if (!listed)
                cfgw_err_node(
                    c, dn, "scenario '%s' step uses device '%s' which is not in its devices list",
                    sid, t.s.device);
        }
        if (d && t.s.action && !(a = find_action(d, t.s.action)))
            cfgw_err_node(c, ydoc_map_get(v, "action"),
                          "scenario '%s' step refers to unknown action '%s' of device '%s'", sid,
                          t.s.action, t.s.device);
        if (a)
            check_step_params(c, &t, v, a, sid);
        steps[(*n)++] = t.s;
    }
}

void cfgd_scenarios(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg)
{
    if (!is_list(c, list, "scenarios"))
        return;
    cfg->scenarios = calloc(list->n, sizeof(*cfg->scenarios));
    if (!cfg->scenarios) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *v = list->items[i];
        const struct ydoc_node *idn = ydoc_map_get(v, "id");
        char where[160];
        if (idn && idn->kind == YDOC_SCALAR)
            snprintf(where, sizeof(where), "scenario '%s'", idn->value);
        else
            snprintf(where, sizeof(where), "scenario %zu", i + 1);
        if (!is_map(c, v, "scenarios entries")) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "scenarios entries must be maps, got nothing");
            continue;
        }
        struct scen_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, scenario_fields, &t);
        cfgw_map(c, scenario_fields, v, &t, where);
        struct cfg_scenario *s = &cfg->scenarios[cfg->n_scenarios++];
        *s = t.s;
        s->mark = (struct cfg_mark){v->line, v->column};
        if (s->id) {
            /* "none" is what the bridge's scenario control shows when no
             * scenario is active, so it cannot be a scenario's id. */
            if (!id_valid(s->id) || strcmp(s->id, "none") == 0)
                cfgw_err_node(c, idn, "scenario id '%s' must match [a-z0-9_]+ and not be 'none'",
                              s->id);
            for (size_t j = 0; j + 1 < cfg->n_scenarios; j++)
                if (cfg->scenarios[j].id && strcmp(cfg->scenarios[j].id, s->id) == 0) {
                    const struct ydoc_node *first = ydoc_map_get(list->items[j], "id");
                    cfgw_err_node(c, idn, "duplicate scenario id '%s' (first defined at %d:%d)",
                                  s->id, first->line, first->column);
                    break;
                }
            if (!s->name)
                s->name = cfgw_strdup(c, s->id);
        }
        char dw[200];
        snprintf(dw, sizeof(dw), "devices of %s", where);
        if (is_list(c, t.devices, dw)) {
            s->devices = calloc(t.devices->n, sizeof(char *));
            if (!s->devices) {
                c->oom = true;
                continue;
            }
            for (size_t j = 0; j < t.devices->n; j++) {
                const struct ydoc_node *e = t.devices->items[j];
                if (!is_string(c, e, "scenario devices entries"))
                    continue;
                if (!find_device(cfg, e->value))
                    cfgw_err_node(c, e, "%s lists unknown device '%s'", where, e->value);
                for (size_t q = 0; q < s->n_devices; q++)
                    if (strcmp(s->devices[q], e->value) == 0)
                        cfgw_err_node(c, e, "%s lists device '%s' twice", where, e->value);
                s->devices[s->n_devices++] = cfgw_strdup(c, e->value);
            }
        }
        parse_steps(c, t.startup, s, cfg, true);
        parse_steps(c, t.shutdown, s, cfg, false);
    }
}

/* ---- freeing ------------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_steps(struct cfg_step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].device);
        free(s[i].action);
        json_object_put(s[i].params);
        cfg_condition_free(s[i].when);
    }
    free(s);
}

static void free_action(struct cfg_action *a)
{
    free(a->name);
    free(a->topic);
    free(a->payload);
    for (size_t i = 0; i < a->n_params; i++) {
        free(a->params[i].name);
        json_object_put(a->params[i].default_value);
        free_strv(a->params[i].enum_values, a->params[i].n_enum_values);
    }
    free(a->params);
    json_object_put(a->set);
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
            for (size_t k = 0; k < d->state[j].n_fields; k++) {
                free(d->state[j].fields[k].field);
                free(d->state[j].fields[k].path);
            }
            free(d->state[j].fields);
        }
        free(d->state);
        free_strv(d->transient, d->n_transient);
        if (d->availability) {
            free(d->availability->topic);
            free(d->availability->online);
            free(d->availability->offline);
            free(d->availability);
        }
        for (size_t j = 0; j < d->n_actions; j++)
            free_action(&d->actions[j]);
        free(d->actions);
    }
    free(cfg->devices);
    cfg->devices = NULL;
    cfg->n_devices = 0;
    for (size_t i = 0; i < cfg->n_scenarios; i++) {
        struct cfg_scenario *s = &cfg->scenarios[i];
        free(s->id);
        free(s->name);
        free_strv(s->devices, s->n_devices);
        free_steps(s->startup, s->n_startup);
        free_steps(s->shutdown, s->n_shutdown);
    }
    free(cfg->scenarios);
    cfg->scenarios = NULL;
    cfg->n_scenarios = 0;
}

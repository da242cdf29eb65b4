/*
 * config_actions.c - devices[].actions of the config: params, templates, set.
 *
 * An action's params are walked first, so the payload template and the
 * string values of set can be checked against them with the renderer's own
 * grammar (template.h): every "{name}" must name a declared param, "{{" and
 * "}}" are literal braces, a JSON payload renders to a JSON object. Param defaults
 * and scenario step params go through cfga_param_value(), the one place
 * that types a YAML scalar by a param declaration and checks its bounds.
 */
#include "config/config_actions.h"
#include "config/config_ha.h"
#include "wbmb/template.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cfgw_enum param_types[] = {{"int", CFG_T_INT},   {"float", CFG_T_FLOAT},
                                               {"bool", CFG_T_BOOL}, {"string", CFG_T_STRING},
                                               {"enum", CFG_T_ENUM}, {NULL, 0}};

struct act_tmp {
    struct cfg_action a;
    const struct ydoc_node *params, *set, *ha;
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
    AF("homeassistant", W_NODE, ha),
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
json_object *cfga_param_value(struct cfgw_ctx *c, const struct ydoc_node *v,
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

const struct cfg_param *cfga_find_param(const struct cfg_action *a, const char *name, size_t n)
{
    for (size_t i = 0; i < a->n_params; i++)
        if (strlen(a->params[i].name) == n && strncmp(a->params[i].name, name, n) == 0)
            return &a->params[i];
    return NULL;
}

/* What tmpl_check() asks while a template of action a is checked. */
struct tmpl_arg {
    struct cfgw_ctx *c;
    const struct ydoc_node *at;
    const struct cfg_action *a;
    const char *what;
};

/* An undeclared name is reported here, with the config's wording, and the
 * check goes on with a string stand-in: every undeclared name is found. */
static enum tmpl_kind param_kind_of(void *arg, const char *name, size_t n)
{
    struct tmpl_arg *t = arg;
    const struct cfg_param *p = cfga_find_param(t->a, name, n);
    if (!p) {
        cfgw_err_node(t->c, t->at, "%s refers to undeclared param '%.*s'", t->what,
                      (int)(n < 127 ? n : 127), name);
        return TMPL_STRING;
    }
    switch (p->type) {
    case CFG_T_INT:
    case CFG_T_FLOAT:
        return TMPL_NUMBER;
    case CFG_T_BOOL:
        return TMPL_BOOL;
    default:
        return TMPL_STRING;
    }
}

/* Checks a template of action a with the grammar the renderer uses
 * (template.h). A payload may be a JSON-object template; a set value never
 * is: the renderer reads set strings in plain mode. */
static void check_template(struct cfgw_ctx *c, const struct ydoc_node *at, const char *text,
                           const struct cfg_action *a, const char *what, bool payload)
{
    struct tmpl_arg t = {.c = c, .at = at, .a = a, .what = what};
    char err[256];
    wb_status st =
        tmpl_check(text, payload && tmpl_is_json(text), param_kind_of, &t, err, sizeof(err));
    if (st == WB_ERR_NOMEM)
        c->oom = true;
    else if (st != WB_OK)
        cfgw_err_node(c, at, "%s: %s", what, err);
}

static void parse_params(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_action *a,
                         const char *where)
{
    char what[256];
    cfgw_fmt(what, sizeof(what), "params of %s", where);
    if (!cfgw_is_map(c, map, what))
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
        cfgw_fmt(pw, sizeof(pw), "param '%s' of %s", k->value, where);
        if (!cfgw_name_valid(k->value))
            cfgw_err_node(c, k, "param name '%s' must match [A-Za-z0-9_-]+", k->value);
        if (ydoc_is_null(v) || v->kind != YDOC_MAP) {
            cfgw_is_map(c, v, pw);
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
            } else if (cfgw_is_list(c, t.values, "values")) {
                if (t.values->n == 0)
                    cfgw_err_node(c, t.values, "values of %s must not be empty", pw);
                p->enum_values = calloc(t.values->n + 1, sizeof(char *));
                if (!p->enum_values) {
                    c->oom = true;
                    continue;
                }
                for (size_t j = 0; j < t.values->n; j++) {
                    const struct ydoc_node *e = t.values->items[j];
                    if (!cfgw_is_string(c, e, "values entries"))
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
            cfgw_fmt(dw, sizeof(dw), "default of %s", pw);
            p->default_value = cfga_param_value(c, t.def, p, dw);
        }
    }
}

static void parse_set(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_action *a,
                      const char *where)
{
    char what[256], got[96];
    cfgw_fmt(what, sizeof(what), "set of %s", where);
    if (!cfgw_is_map(c, map, what))
        return;
    a->set = json_object_new_object();
    if (!a->set) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        char q[96];
        if (!cfgw_field_valid(k->value))
            cfgw_err_node(c, k,
                          "state field name '%s' must be one MQTT topic level (non-empty; no '/', "
                          "'+', '#', control characters or non-characters)",
                          cfgw_safe(k->value, q, sizeof(q)));
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
            cfgw_fmt(tw, sizeof(tw), "set value of '%s' in %s", k->value, where);
            check_template(c, v, v->value, a, tw, false);
        }
        json_object_object_add(a->set, k->value, j);
    }
}

void cfga_actions(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_device *d)
{
    char what[160];
    cfgw_fmt(what, sizeof(what), "actions of device '%s'", d->id ? d->id : "?");
    if (!cfgw_is_map(c, map, what))
        return;
    d->actions = calloc(map->n, sizeof(*d->actions));
    if (!d->actions) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        char where[256];
        cfgw_fmt(where, sizeof(where), "action '%s' of device '%s'", k->value, d->id ? d->id : "?");
        if (!cfgw_name_valid(k->value))
            cfgw_err_node(c, k, "action name '%s' must match [A-Za-z0-9_-]+", k->value);
        if (ydoc_is_null(v) || v->kind != YDOC_MAP) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "%s must be a map with at least a topic", where);
            else
                cfgw_is_map(c, v, where);
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
        char q[96];
        if (a->topic && !cfgw_topic_valid(a->topic, false))
            cfgw_err_node(c, ydoc_map_get(v, "topic"),
                          "topic '%s' of %s must be a valid MQTT topic name (non-empty, no "
                          "wildcards, control characters or non-characters)",
                          cfgw_safe(a->topic, q, sizeof(q)), where);
        parse_params(c, t.params, a, where);
        const struct ydoc_node *pl = ydoc_map_get(v, "payload");
        if (pl && a->payload) {
            char pw[300];
            cfgw_fmt(pw, sizeof(pw), "payload of %s", where);
            check_template(c, pl, a->payload, a, pw, true);
        }
        parse_set(c, t.set, a, where);
        if (!ydoc_is_null(t.ha))
            a->ha = cfgh_meta(c, t.ha, CFGH_ACTION, CFG_T_STRING, where);
    }
}

static void free_action(struct cfg_action *a)
{
    free(a->name);
    free(a->topic);
    free(a->payload);
    for (size_t i = 0; i < a->n_params; i++) {
        free(a->params[i].name);
        json_object_put(a->params[i].default_value);
        cfgw_free_strv(a->params[i].enum_values, a->params[i].n_enum_values);
    }
    free(a->params);
    json_object_put(a->set);
    cfgh_meta_free(a->ha);
}

void cfga_free_actions(struct cfg_device *d)
{
    for (size_t i = 0; i < d->n_actions; i++)
        free_action(&d->actions[i]);
    free(d->actions);
    d->actions = NULL;
    d->n_actions = 0;
}

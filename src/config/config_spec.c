/*
 * config_spec.c - map, scale, wb, switch and homeassistant of a state field
 * (see config_spec.h).
 *
 * The rules, in the order a received value meets them:
 *   map    received text -> a scalar; on a plain binding the scalar must be
 *          of the binding's type (an int for int, a number for float, kept
 *          as a double; a boolean for bool; a string for string);
 *   scale  a finite number != 0, only on int and float bindings and on
 *          fields entries; on an int binding it must be a whole number
 *          (0.1 is refused with "use type: float": an int field stays int);
 *   wb     the control meta; wb.type must fit the binding (wb_types[]):
 *          switch/alarm <- bool, int; range/value/the legacy named value
 *          types <- int, float; unixtime <- int; w1-id <- int, string;
 *          rgb <- string; text <- any. A fields entry's values have no
 *          declared type, so any wb.type but pushbutton fits it;
 *   switch the actions that turn a boolean field on and off: a plain
 *          binding of type bool, or a fields entry with no map or with a
 *          map to booleans only; wb.type, when given, must be switch;
 *   homeassistant  how Home Assistant shows the field (config_ha.c): a
 *          state_class only on int and float bindings and fields entries.
 * Messages name the field as the caller's `where` does.
 */
#include "config/config_spec.h"
#include "config/config_ha.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TB (1u << CFG_T_BOOL)
#define TI (1u << CFG_T_INT)
#define TF (1u << CFG_T_FLOAT)
#define TS (1u << CFG_T_STRING)
#define TANY (TB | TI | TF | TS)

/* How a wb.type may be used: value-like types take units; enum titles are
 * for value and text (value keys are numbers), per the conventions. */
enum { K_PLAIN, K_VALUE, K_TEXT };

static const struct wb_type {
    const char *name;
    unsigned types; /* the binding types it fits */
    int kind;
} wb_types[] = {
    {"switch", TB | TI, K_PLAIN},
    {"alarm", TB | TI, K_PLAIN},
    {"range", TI | TF, K_VALUE},
    {"value", TI | TF, K_VALUE},
    {"rgb", TS, K_PLAIN},
    {"text", TANY, K_TEXT},
    {"unixtime", TI, K_PLAIN},
    {"w1-id", TI | TS, K_PLAIN},
    /* The legacy named value types (deprecated in favour of units). */
    {"temperature", TI | TF, K_VALUE},
    {"rel_humidity", TI | TF, K_VALUE},
    {"atmospheric_pressure", TI | TF, K_VALUE},
    {"rainfall", TI | TF, K_VALUE},
    {"wind_speed", TI | TF, K_VALUE},
    {"power", TI | TF, K_VALUE},
    {"power_consumption", TI | TF, K_VALUE},
    {"voltage", TI | TF, K_VALUE},
    {"water_flow", TI | TF, K_VALUE},
    {"water_consumption", TI | TF, K_VALUE},
    {"resistance", TI | TF, K_VALUE},
    {"concentration", TI | TF, K_VALUE},
    {"heat_power", TI | TF, K_VALUE},
    {"heat_energy", TI | TF, K_VALUE},
    {"current", TI | TF, K_VALUE},
    {"pressure", TI | TF, K_VALUE},
    {"lux", TI | TF, K_VALUE},
    {"sound_level", TI | TF, K_VALUE},
    {NULL, 0, 0},
};

static const struct wb_type *find_wb_type(const char *name)
{
    for (const struct wb_type *t = wb_types; name && t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* ---- descriptor tables --------------------------------------------------- */

struct wb_tmp {
    struct cfg_wb_meta m;
    bool readonly, has_readonly;
    const struct ydoc_node *title, *enums;
};
#define WF(k, t, mem, ...)                                                                         \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct wb_tmp, mem), __VA_ARGS__                      \
    }
static const struct cfgw_field wb_fields[] = {
    WF("type", W_STR, m.type),
    WF("units", W_STR, m.units),
    WF("min", W_DOUBLE, m.min, .track = true, .has_off = offsetof(struct wb_tmp, m.has_min)),
    WF("max", W_DOUBLE, m.max, .track = true, .has_off = offsetof(struct wb_tmp, m.has_max)),
    WF("precision", W_DOUBLE, m.precision, .track = true,
       .has_off = offsetof(struct wb_tmp, m.has_precision)),
    WF("order", W_INT, m.order, .min = 0, .max = INT_MAX, .track = true,
       .has_off = offsetof(struct wb_tmp, m.has_order)),
    WF("readonly", W_BOOL, readonly, .track = true,
       .has_off = offsetof(struct wb_tmp, has_readonly)),
    WF("hidden", W_BOOL, m.hidden),
    WF("title", W_NODE, title),
    WF("enum", W_NODE, enums),
    {NULL},
};

static const struct cfgw_field i18n_fields[] = {
    {.key = "en", .type = W_STR, .off = offsetof(struct cfg_i18n, en)},
    {.key = "ru", .type = W_STR, .off = offsetof(struct cfg_i18n, ru)},
    {NULL},
};

struct sw_tmp {
    char *on, *off;
};
static const struct cfgw_field switch_fields[] = {
    {.key = "on", .type = W_STR, .off = offsetof(struct sw_tmp, on), .required = true},
    {.key = "off", .type = W_STR, .off = offsetof(struct sw_tmp, off), .required = true},
    {NULL},
};

/* ---- map and scale ------------------------------------------------------- */

/* v as the type of a plain binding, or NULL when it does not fit (v is put). */
static json_object *fit_type(json_object *v, enum cfg_value_type type)
{
    switch (type) {
    case CFG_T_BOOL:
        if (json_object_is_type(v, json_type_boolean))
            return v;
        break;
    case CFG_T_INT:
        if (json_object_is_type(v, json_type_int))
            return v;
        break;
    case CFG_T_FLOAT:
        if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
            json_object *d = json_object_new_double(json_object_get_double(v));
            json_object_put(v);
            return d;
        }
        break;
    case CFG_T_STRING:
        if (json_object_is_type(v, json_type_string))
            return v;
        break;
    default:
        return v; /* a fields entry: any scalar */
    }
    json_object_put(v);
    return NULL;
}

static const char *type_kind(enum cfg_value_type t)
{
    switch (t) {
    case CFG_T_BOOL:
        return "true or false";
    case CFG_T_INT:
        return "an integer";
    case CFG_T_FLOAT:
        return "a number";
    default:
        return "a string";
    }
}

static void parse_map(struct cfgw_ctx *c, struct cfg_field_spec *s, enum cfg_value_type type,
                      const struct ydoc_node *map, const char *where)
{
    char what[300], got[96];
    cfgw_fmt(what, sizeof(what), "map of %s", where);
    if (!cfgw_is_map(c, map, what))
        return;
    if (map->n == 0) {
        cfgw_err_node(c, map, "%s must not be empty", what);
        return;
    }
    s->map = calloc(map->n, sizeof(*s->map));
    if (!s->map) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct ydoc_node *k = map->keys[i], *v = map->items[i];
        char q[96];
        if (v->kind != YDOC_SCALAR || (!v->quoted && ydoc_is_null(v))) {
            cfgw_err_node(c, v, "map value of '%s' must be a boolean, a number or a string, got %s",
                          cfgw_safe(k->value, q, sizeof(q)),
                          v->kind == YDOC_SCALAR ? "null" : ydoc_describe(v, got, sizeof(got)));
            continue;
        }
        json_object *j = cfgw_scalar_json(v);
        if (!j) {
            c->oom = true;
            continue;
        }
        if (!(j = fit_type(j, type))) {
            cfgw_err_node(c, v, "map value of '%s' must be %s (the binding's type is %s), got %s",
                          cfgw_safe(k->value, q, sizeof(q)), type_kind(type), cfg_type_name(type),
                          ydoc_describe(v, got, sizeof(got)));
            continue;
        }
        struct cfg_map_entry *e = &s->map[s->n_map++];
        e->from = cfgw_strdup(c, k->value);
        e->to = j;
    }
}

static void parse_scale(struct cfgw_ctx *c, struct cfg_field_spec *s, enum cfg_value_type type,
                        const struct ydoc_node *n)
{
    char got[96];
    double d;
    if (type == CFG_T_BOOL || type == CFG_T_STRING) {
        cfgw_err_node(c, n,
                      "scale is only allowed on a state binding of type int or float or on a "
                      "fields entry (this binding's type is %s)",
                      cfg_type_name(type));
        return;
    }
    if (n->kind != YDOC_SCALAR || ydoc_is_null(n) || !cfgw_parse_double(n->value, &d)) {
        cfgw_err_node(c, n, "scale must be a number, got %s", ydoc_describe(n, got, sizeof(got)));
        return;
    }
    if (d == 0) {
        cfgw_err_node(c, n, "scale must not be 0");
        return;
    }
    if (type == CFG_T_INT && (d != floor(d) || fabs(d) > 9.2e18)) {
        cfgw_err_node(c, n,
                      "scale %g of a state binding of type int is not a whole number: use type: "
                      "float for a fractional scale",
                      d);
        return;
    }
    s->has_scale = true;
    s->scale = d;
}

/* ---- wb ------------------------------------------------------------------ */

/* true for a number as a value control's enum key: decimal or 0x hex. */
static bool number_text(const char *t)
{
    long long ll;
    double d;
    if (cfgw_parse_ll(t, &ll) || cfgw_parse_double(t, &d))
        return true;
    const char *h = t;
    if (*h == '-' || *h == '+')
        h++;
    if (h[0] != '0' || (h[1] != 'x' && h[1] != 'X') || !h[2])
        return false;
    for (h += 2; *h; h++)
        if (!strchr("0123456789abcdefABCDEF", *h))
            return false;
    return true;
}

static void parse_i18n(struct cfgw_ctx *c, struct cfg_i18n *t, const struct ydoc_node *n,
                       const char *what)
{
    cfgw_defaults(c, i18n_fields, t);
    cfgw_map(c, i18n_fields, n, t, what);
}

static void i18n_free(struct cfg_i18n *t)
{
    free(t->en);
    free(t->ru);
    t->en = t->ru = NULL;
}

static void parse_enums(struct cfgw_ctx *c, struct cfg_wb_meta *m, const struct ydoc_node *n,
                        const struct wb_type *eff, const char *where)
{
    char what[320];
    cfgw_fmt(what, sizeof(what), "wb.enum of %s", where);
    if (!cfgw_is_map(c, n, what))
        return;
    if (eff && eff->kind != K_VALUE && eff->kind != K_TEXT)
        cfgw_err_node(c, n, "wb.enum of %s is only allowed for wb.type value or text (not %s)",
                      where, eff->name);
    m->enums = calloc(n->n ? n->n : 1, sizeof(*m->enums));
    if (!m->enums) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct ydoc_node *k = n->keys[i];
        char q[96], ew[400];
        if (eff && eff->kind == K_VALUE && !number_text(k->value))
            cfgw_err_node(c, k, "wb.enum key '%s' of %s must be a number (its type is %s)",
                          cfgw_safe(k->value, q, sizeof(q)), where, eff->name);
        struct cfg_wb_enum *e = &m->enums[m->n_enums++];
        e->value = cfgw_strdup(c, k->value);
        cfgw_fmt(ew, sizeof(ew), "wb.enum '%s' of %s", cfgw_safe(k->value, q, sizeof(q)), where);
        parse_i18n(c, &e->title, n->items[i], ew);
    }
}

static void parse_wb(struct cfgw_ctx *c, struct cfg_field_spec *s, enum cfg_value_type type,
                     const struct ydoc_node *n, const char *where)
{
    char what[300];
    cfgw_fmt(what, sizeof(what), "wb of %s", where);
    struct wb_tmp t;
    memset(&t, 0, sizeof(t));
    cfgw_defaults(c, wb_fields, &t);
    if (!cfgw_map(c, wb_fields, n, &t, what))
        return;
    if (!(s->wb = malloc(sizeof(*s->wb)))) {
        free(t.m.type);
        free(t.m.units);
        c->oom = true;
        return;
    }
    struct cfg_wb_meta *m = s->wb;
    *m = t.m;
    m->readonly = t.has_readonly ? t.readonly : -1;
    m->mark = (struct cfg_mark){n->line, n->column};

    /* The effective type: the given one, or the one the binding implies. */
    const struct wb_type *eff = NULL;
    if (m->type) {
        const struct ydoc_node *tn = ydoc_map_get(n, "type");
        char q[96];
        eff = find_wb_type(m->type);
        if (strcmp(m->type, "pushbutton") == 0)
            cfgw_err_node(c, tn,
                          "wb.type pushbutton is not allowed on a state field (a push button has "
                          "no state: an action is mirrored as one)");
        else if (!eff)
            cfgw_err_node(c, tn,
                          "wb.type '%s' is not a Wiren Board control type (switch, alarm, range, "
                          "rgb, text, value, unixtime, w1-id, or a named value type such as "
                          "temperature, power, voltage)",
                          cfgw_safe(m->type, q, sizeof(q)));
        else if (type != CFG_T_JSON && !(eff->types & (1u << type)))
            cfgw_err_node(c, tn, "wb.type %s does not fit a state binding of type %s", eff->name,
                          cfg_type_name(type));
    } else if (type != CFG_T_JSON) {
        eff = find_wb_type(type == CFG_T_BOOL ? "switch" : type == CFG_T_STRING ? "text" : "value");
    }
    if (m->units && eff && eff->kind != K_VALUE)
        cfgw_err_node(c, ydoc_map_get(n, "units"),
                      "wb.units of %s is only allowed for value-like types (value, range, "
                      "temperature, ...), not %s",
                      where, eff->name);
    if (m->has_min && m->has_max && m->min > m->max)
        cfgw_err_node(c, ydoc_map_get(n, "min"), "wb.min %g is greater than wb.max %g in %s",
                      m->min, m->max, where);
    if (m->has_precision && !(m->precision > 0))
        cfgw_err_node(c, ydoc_map_get(n, "precision"), "wb.precision of %s must be > 0, got %g",
                      where, m->precision);
    if (t.title) {
        char tw[320];
        cfgw_fmt(tw, sizeof(tw), "wb.title of %s", where);
        parse_i18n(c, &m->title, t.title, tw);
    }
    if (t.enums)
        parse_enums(c, m, t.enums, eff, where);
}

/* ---- switch -------------------------------------------------------------- */

static void parse_switch(struct cfgw_ctx *c, struct cfg_field_spec *s, enum cfg_value_type type,
                         const struct ydoc_node *n, const char *field, const char *where,
                         struct cfgf_pending *p)
{
    char what[300];
    cfgw_fmt(what, sizeof(what), "switch of %s", where);
    struct sw_tmp t = {0};
    cfgw_defaults(c, switch_fields, &t);
    if (!cfgw_map(c, switch_fields, n, &t, what))
        return;
    s->on_action = t.on;
    s->off_action = t.off;
    if (type == CFG_T_JSON) {
        for (size_t i = 0; i < s->n_map; i++)
            if (!json_object_is_type(s->map[i].to, json_type_boolean)) {
                cfgw_err_node(c, n,
                              "%s needs a boolean field: its map must give true or false only "
                              "(map value of '%s' is not)",
                              what, s->map[i].from);
                break;
            }
    } else if (type != CFG_T_BOOL) {
        cfgw_err_node(c, n, "%s needs a boolean field: the binding's type is %s, not bool", what,
                      cfg_type_name(type));
    }
    if (s->wb && s->wb->type && strcmp(s->wb->type, "switch") != 0)
        cfgw_err_node(c, n, "%s makes the control a switch, but wb.type is %s", what, s->wb->type);
    if (!t.on || !t.off)
        return;
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 4;
        struct cfgf_switch *nv = realloc(p->v, nc * sizeof(*nv));
        if (!nv) {
            c->oom = true;
            return;
        }
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = (struct cfgf_switch){
        .spec = s, .field = field, .on = ydoc_map_get(n, "on"), .off = ydoc_map_get(n, "off")};
}

static void check_switch_action(struct cfgw_ctx *c, const struct cfg_device *d, const char *name,
                                const struct ydoc_node *at, const char *field)
{
    char q[96];
    const struct cfg_action *a = cfg_find_action(d, name);
    if (!a) {
        cfgw_err_node(c, at,
                      "switch of field '%s' names action '%s', which device '%s' does not have",
                      field ? field : "?", cfgw_safe(name, q, sizeof(q)), d->id ? d->id : "?");
        return;
    }
    for (size_t i = 0; i < a->n_params; i++)
        if (a->params[i].required && !a->params[i].default_value) {
            cfgw_err_node(c, at,
                          "switch of field '%s' names action '%s', which needs param '%s': a "
                          "switch action must need no param",
                          field ? field : "?", a->name, a->params[i].name);
            return;
        }
}

void cfgf_check_switches(struct cfgw_ctx *c, struct cfgf_pending *p, const struct cfg_device *d)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct cfgf_switch *w = &p->v[i];
        check_switch_action(c, d, w->spec->on_action, w->on, w->field);
        check_switch_action(c, d, w->spec->off_action, w->off, w->field);
    }
    cfgf_pending_free(p);
}

void cfgf_pending_free(struct cfgf_pending *p)
{
    free(p->v);
    *p = (struct cfgf_pending){0};
}

/* ---- the spec ------------------------------------------------------------ */

void cfgf_parse(struct cfgw_ctx *c, struct cfg_field_spec *s, enum cfg_value_type type,
                const struct cfgf_nodes *n, const char *field, const char *where,
                struct cfgf_pending *p)
{
    /* A key with no value ("map:") is not given, as everywhere else. */
    if (!ydoc_is_null(n->map))
        parse_map(c, s, type, n->map, where);
    if (!ydoc_is_null(n->scale))
        parse_scale(c, s, type, n->scale);
    if (!ydoc_is_null(n->wb))
        parse_wb(c, s, type, n->wb, where);
    if (!ydoc_is_null(n->sw))
        parse_switch(c, s, type, n->sw, field, where, p);
    if (!ydoc_is_null(n->ha))
        s->ha = cfgh_meta(c, n->ha, CFGH_FIELD, type, where);
}

struct cfg_field_spec *cfgf_new(struct cfgw_ctx *c, const struct cfgf_nodes *n)
{
    if (!n->map && !n->scale && !n->wb && !n->sw && !n->ha)
        return NULL;
    struct cfg_field_spec *s = calloc(1, sizeof(*s));
    if (!s)
        c->oom = true;
    return s;
}

void cfgf_free(struct cfg_field_spec *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_map; i++) {
        free(s->map[i].from);
        json_object_put(s->map[i].to);
    }
    free(s->map);
    if (s->wb) {
        free(s->wb->type);
        free(s->wb->units);
        i18n_free(&s->wb->title);
        for (size_t i = 0; i < s->wb->n_enums; i++) {
            free(s->wb->enums[i].value);
            i18n_free(&s->wb->enums[i].title);
        }
        free(s->wb->enums);
        free(s->wb);
    }
    free(s->on_action);
    free(s->off_action);
    cfgh_meta_free(s->ha);
    memset(s, 0, sizeof(*s));
}

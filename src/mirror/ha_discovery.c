/*
 * ha_discovery.c - which Home Assistant entities a device has, and its
 * device-based discovery payload (README, "Home Assistant"; ha_int.h).
 *
 * A device's entities come from its config and, for the fields of a merged
 * JSON object, from its state: every field is a sensor (numbers, text), a
 * binary_sensor (booleans) or a switch (a boolean with on/off actions, whose
 * actions then get no entity of their own); every action with at most one
 * param is a button, number, select, switch or text. A field whose name
 * cannot sit in a topic level or in the value template's string literal
 * gets no entity (its value is still in the state topic).
 *
 * A component's key is the field's or action's name when it is made of
 * [A-Za-z0-9_-] only and at most 64 bytes, else the name with the other
 * bytes as '_', cut at 64, with '_' and 8 hex digits of the name's hash: a
 * key (and the unique_id made of it) never changes while the name does not.
 */
#include "mirror/ha_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/wb_int.h"
#include "wbmb/util.h"

#define KEY_NAME_MAX 64

static const char *const platform_names[] = {
    [HA_P_NONE] = NULL,       [HA_P_SENSOR] = "sensor", [HA_P_BINARY_SENSOR] = "binary_sensor",
    [HA_P_SWITCH] = "switch", [HA_P_NUMBER] = "number", [HA_P_SELECT] = "select",
    [HA_P_BUTTON] = "button", [HA_P_TEXT] = "text",
};

const char *ha_platform_name(enum ha_platform p)
{
    return (size_t)p < sizeof(platform_names) / sizeof(platform_names[0]) ? platform_names[p]
                                                                          : NULL;
}

enum ha_platform ha_platform_of(const char *name)
{
    for (size_t i = 1; i < sizeof(platform_names) / sizeof(platform_names[0]); i++)
        if (strcmp(platform_names[i], name) == 0)
            return (enum ha_platform)i;
    return HA_P_NONE;
}

static bool id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

void ha_object_id(const char *id, char *buf, size_t cap)
{
    size_t i = 0;
    for (; id[i] && i + 1 < cap; i++)
        buf[i] = id_char(id[i]) ? id[i] : '_';
    if (cap)
        buf[i] = '\0';
}

/* A component key of name (see the top of this file). */
static void key_of(const char *name, char key[HA_KEY_MAX])
{
    size_t n = strlen(name);
    bool plain = n > 0 && n <= KEY_NAME_MAX;
    for (size_t i = 0; plain && i < n; i++)
        plain = id_char(name[i]);
    if (plain) {
        memcpy(key, name, n + 1);
        return;
    }
    size_t k = n < KEY_NAME_MAX ? n : KEY_NAME_MAX;
    for (size_t i = 0; i < k; i++)
        key[i] = id_char(name[i]) ? name[i] : '_';
    snprintf(key + k, HA_KEY_MAX - k, "_%08x", util_hash_str(name));
}

/* A field name the entity can read: one topic level (a switch's /set) and
 * nothing that would end or escape the template's string literal. */
static bool field_name_ok(const char *name)
{
    return mirror_field_name_ok(name) && !strpbrk(name, "'\\{}%\"");
}

/* ---- the entities of a device -------------------------------------------- */

struct ent_list {
    struct ha_entity *e;
    size_t n, cap;
    json_object *keys; /* keys taken */
    bool oom;
};

static struct ha_entity *ent_add(struct ent_list *l, const char *name, enum ha_platform p,
                                 bool action)
{
    char key[HA_KEY_MAX];
    key_of(name, key);
    if (json_object_object_get_ex(l->keys, key, NULL)) {
        /* A field and an action of one name: the action's key says so. */
        if (!action || strlen(key) + sizeof("_action") > sizeof(key))
            return NULL;
        strcat(key, "_action");
        if (json_object_object_get_ex(l->keys, key, NULL))
            return NULL;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct ha_entity *g = realloc(l->e, cap * sizeof(*g));
        if (!g) {
            l->oom = true;
            return NULL;
        }
        l->e = g;
        l->cap = cap;
    }
    struct ha_entity *e = &l->e[l->n++];
    *e = (struct ha_entity){.p = p};
    memcpy(e->key, key, sizeof(key));
    json_object_object_add(l->keys, key, NULL);
    return e;
}

static json_object *state_value(const struct sink_device *sd, const char *name, bool *found)
{
    for (size_t i = 0; i < sd->n_f; i++)
        if (strcmp(sd->f[i].name, name) == 0) {
            *found = true;
            return sd->f[i].v;
        }
    *found = false;
    return NULL;
}

/* The binding type that names field (-1: a JSON binding's, or none). */
static int binding_type(const struct cfg_device *c, const char *field)
{
    for (size_t i = 0; i < c->n_state; i++) {
        const struct cfg_state_binding *b = &c->state[i];
        if (b->type != CFG_T_JSON && b->field && strcmp(b->field, field) == 0)
            return (int)b->type;
    }
    return -1;
}

/* Whether the config says the field holds numbers. */
static bool spec_numeric(const struct cfg_field_spec *spec)
{
    if (!spec)
        return false;
    if (spec->ha && spec->ha->state_class && strcmp(spec->ha->state_class, "none") != 0)
        return true;
    const struct cfg_wb_meta *wb = spec->wb;
    if (!wb)
        return spec->has_scale;
    if (wb->type)
        return strcmp(wb->type, "text") != 0 && strcmp(wb->type, "switch") != 0 &&
               strcmp(wb->type, "pushbutton") != 0 && strcmp(wb->type, "alarm") != 0;
    return wb->units || wb->has_min || wb->has_max || wb->has_precision || spec->has_scale;
}

/* The entity of one field; nothing when its name cannot be read or its
 * type is not known yet (a JSON field before its first value). */
static void field_entity(struct ent_list *l, const struct sink_device *sd, const char *name)
{
    if (!field_name_ok(name))
        return;
    const struct cfg_device *c = sd->cfg;
    const struct cfg_field_spec *spec = cfg_field_spec(c, name);
    const struct cfg_action *on = NULL, *off = NULL;
    enum ha_platform p = HA_P_NONE;
    bool numeric = false;
    int bt = binding_type(c, name);
    bool found;
    json_object *v = state_value(sd, name, &found);
    if (wb_field_switch(c, name, &on, &off)) {
        p = HA_P_SWITCH;
    } else if (bt == CFG_T_BOOL) {
        p = HA_P_BINARY_SENSOR;
    } else if (bt == CFG_T_INT || bt == CFG_T_FLOAT) {
        p = HA_P_SENSOR;
        numeric = true;
    } else if (bt == CFG_T_STRING) {
        p = HA_P_SENSOR;
    } else if (spec_numeric(spec)) {
        p = HA_P_SENSOR;
        numeric = true;
    } else if (spec && spec->wb && spec->wb->type && strcmp(spec->wb->type, "switch") == 0) {
        p = HA_P_BINARY_SENSOR;
    } else if (v) {
        switch (json_object_get_type(v)) {
        case json_type_boolean:
            p = HA_P_BINARY_SENSOR;
            break;
        case json_type_int:
        case json_type_double:
            p = HA_P_SENSOR;
            numeric = true;
            break;
        case json_type_string:
            p = HA_P_SENSOR;
            break;
        default: /* objects and arrays: in the state topic only */
            return;
        }
    }
    if (p == HA_P_NONE)
        return;
    struct ha_entity *e = ent_add(l, name, p, false);
    if (!e)
        return;
    e->field = name;
    e->spec = spec;
    e->numeric = numeric;
    e->on = on;
    e->off = off;
}

static bool consumed(const struct ent_list *l, const struct cfg_action *a)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->e[i].on == a || l->e[i].off == a)
            return true;
    return false;
}

static void action_entity(struct ent_list *l, const struct cfg_action *a)
{
    if (a->n_params > 1 || consumed(l, a))
        return;
    enum ha_platform p = HA_P_BUTTON;
    if (a->n_params == 1) {
        switch (a->params[0].type) {
        case CFG_T_INT:
        case CFG_T_FLOAT:
            p = HA_P_NUMBER;
            break;
        case CFG_T_ENUM:
            p = HA_P_SELECT;
            break;
        case CFG_T_BOOL:
            p = HA_P_SWITCH;
            break;
        case CFG_T_STRING:
            p = HA_P_TEXT;
            break;
        default:
            return;
        }
    }
    struct ha_entity *e = ent_add(l, a->name, p, true);
    if (!e)
        return;
    e->action = a;
    const char *f = wb_action_follows(a);
    e->field = f && field_name_ok(f) ? f : NULL;
}

static void seen_name(struct ent_list *l, json_object *seen, const struct sink_device *sd,
                      const char *name)
{
    if (!name || json_object_object_get_ex(seen, name, NULL))
        return;
    json_object_object_add(seen, name, NULL);
    field_entity(l, sd, name);
}

size_t ha_entities(const struct sink_device *sd, struct ha_entity **out)
{
    *out = NULL;
    const struct cfg_device *c = sd->cfg;
    struct ent_list l = {.keys = json_object_new_object()};
    json_object *seen = json_object_new_object();
    if (!l.keys || !seen)
        goto done;
    /* The configured fields first (in the config's order), then those the
     * state has besides (a merged JSON object's). */
    for (size_t i = 0; i < c->n_state; i++) {
        const struct cfg_state_binding *b = &c->state[i];
        if (b->type != CFG_T_JSON)
            seen_name(&l, seen, sd, b->field);
        for (size_t j = 0; j < b->n_fields; j++)
            seen_name(&l, seen, sd, b->fields[j].field);
    }
    for (size_t i = 0; i < sd->n_f; i++)
        seen_name(&l, seen, sd, sd->f[i].name);
    for (size_t i = 0; i < c->n_actions; i++)
        action_entity(&l, &c->actions[i]);
    /* A followed field's spec (units, precision) for the action's entity. */
    for (size_t i = 0; i < l.n; i++)
        if (l.e[i].action && l.e[i].field)
            l.e[i].spec = cfg_field_spec(c, l.e[i].field);
done:
    json_object_put(seen);
    json_object_put(l.keys);
    if (l.oom || l.n == 0) {
        free(l.e);
        return 0;
    }
    *out = l.e;
    return l.n;
}

/* ---- discovery payloads ------------------------------------------------- */

/* Wiren Board's units (conventions v1.4, written in ASCII) as Home
 * Assistant writes them: its device classes accept only its own spelling
 * ("°C", not "deg C"). Others go as they are. */
static const char *ha_unit(const char *wb)
{
    static const char *const map[][2] = {
        {"deg C", "°C"},   {"deg F", "°F"},     {"deg", "°"},        {"%, RH", "%"},
        {"%RH", "%"},      {"ug/m^3", "µg/m³"}, {"mg/m^3", "mg/m³"}, {"m^3", "m³"},
        {"m^3/h", "m³/h"}, {"l", "L"},          {"ppm", "ppm"},
    };
    if (!wb)
        return NULL;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(wb, map[i][0]) == 0)
            return map[i][1];
    return wb;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

static void add_num(json_object *o, const char *k, double v)
{
    if (v == (double)(long long)v && v > -9e15 && v < 9e15)
        json_object_object_add(o, k, json_object_new_int64((long long)v));
    else
        json_object_object_add(o, k, json_object_new_double(v));
}

/* A name as a person reads it: "set_volume" -> "Set volume". */
static json_object *human_name(const char *name, const struct cfg_i18n *title)
{
    if (title && title->en)
        return json_object_new_string(title->en);
    size_t n = strlen(name);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        s[i] = name[i] == '_' ? ' ' : name[i];
    if (s[0] >= 'a' && s[0] <= 'z')
        s[0] = (char)(s[0] - 'a' + 'A');
    json_object *o = json_object_new_string(s);
    free(s);
    return o;
}

static json_object *availability(const struct ha *h, const char *device_id)
{
    char t[HA_TOPIC_MAX];
    json_object *list = json_object_new_array();
    const char *ids[2] = {h->cfg->bridge_device_id, device_id};
    for (size_t i = 0; i < 2 && list; i++) {
        if (!ids[i] || !ha_topic(h, ids[i], "availability", t, sizeof(t)))
            continue;
        json_object *a = json_object_new_object();
        add_str(a, "topic", t);
        json_object_array_add(list, a);
    }
    return list;
}

/* value_template of field f: a missing or null field renders None, which
 * Home Assistant shows as unknown. */
static void add_template(json_object *o, const char *k, const char *field)
{
    char t[MIRROR_FIELD_MAX + 40];
    snprintf(t, sizeof(t), "{{ value_json.get('%s') }}", field);
    add_str(o, k, t);
}

static void add_ha_meta(json_object *o, const struct cfg_ha_meta *m, bool state_class)
{
    if (!m)
        return;
    add_str(o, "device_class", m->device_class);
    add_str(o, "icon", m->icon);
    add_str(o, "entity_category", m->entity_category);
    if (state_class && m->state_class && strcmp(m->state_class, "none") != 0)
        add_str(o, "state_class", m->state_class);
}

static void add_bool_payloads(json_object *o)
{
    add_str(o, "payload_on", "ON");
    add_str(o, "payload_off", "OFF");
    add_str(o, "state_on", "True");
    add_str(o, "state_off", "False");
}

/* The state of an action's entity: the field it sets, else optimistic. */
static void add_action_state(json_object *o, const char *state_topic, const struct ha_entity *e)
{
    if (e->field) {
        add_str(o, "state_topic", state_topic);
        add_template(o, "value_template", e->field);
    } else {
        json_object_object_add(o, "optimistic", json_object_new_boolean(true));
    }
}

static void number_options(json_object *o, const struct ha_entity *e)
{
    const struct cfg_param *p = &e->action->params[0];
    const struct cfg_wb_meta *wb = e->spec ? e->spec->wb : NULL;
    /* Home Assistant's own defaults (1..100) would refuse most values of
     * an unbounded param: a wide box instead. */
    double min = p->has_min ? p->min : -1e6, max = p->has_max ? p->max : 1e6;
    if (min >= max)
        max = min + 1;
    add_num(o, "min", min);
    add_num(o, "max", max);
    double step = p->type == CFG_T_INT ? 1 : (wb && wb->has_precision ? wb->precision : 0.1);
    add_num(o, "step", step);
    add_str(o, "mode", p->has_min && p->has_max ? "auto" : "box");
    if (wb)
        add_str(o, "unit_of_measurement", ha_unit(wb->units));
}

static json_object *component(const struct ha *h, const struct sink_device *sd,
                              const struct ha_entity *e, const char *state_topic)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    const char *id = sd->cfg->id;
    char uid[HA_TOPIC_MAX], cmd[HA_TOPIC_MAX];
    snprintf(uid, sizeof(uid), "%s_%s_%s", h->hc->node_id, id, e->key);
    const char *name = e->action ? e->action->name : e->field;
    bool cmd_ok = ha_topic(h, id, name, cmd, sizeof(cmd));
    if (cmd_ok && strlen(cmd) + sizeof("/set") <= sizeof(cmd))
        strcat(cmd, "/set");
    else
        cmd_ok = false;
    add_str(o, "p", ha_platform_name(e->p));
    add_str(o, "unique_id", uid);
    const struct cfg_i18n *title =
        !e->action && e->spec && e->spec->wb ? &e->spec->wb->title : NULL;
    json_object_object_add(o, "name", human_name(name, title));
    json_object_object_add(o, "availability", availability(h, id));
    add_str(o, "availability_mode", "all");
    const struct cfg_wb_meta *wb = e->spec ? e->spec->wb : NULL;
    switch (e->p) {
    case HA_P_SENSOR:
        add_str(o, "state_topic", state_topic);
        add_template(o, "value_template", e->field);
        if (e->numeric) {
            if (wb)
                add_str(o, "unit_of_measurement", ha_unit(wb->units));
            if (!e->spec || !e->spec->ha || !e->spec->ha->state_class)
                add_str(o, "state_class", "measurement");
        }
        add_ha_meta(o, e->spec ? e->spec->ha : NULL, true);
        break;
    case HA_P_BINARY_SENSOR:
        add_str(o, "state_topic", state_topic);
        add_template(o, "value_template", e->field);
        add_str(o, "payload_on", "True");
        add_str(o, "payload_off", "False");
        add_ha_meta(o, e->spec ? e->spec->ha : NULL, false);
        break;
    case HA_P_SWITCH:
        if (e->action)
            add_action_state(o, state_topic, e);
        else {
            add_str(o, "state_topic", state_topic);
            add_template(o, "value_template", e->field);
        }
        add_bool_payloads(o);
        add_ha_meta(o, e->action ? e->action->ha : (e->spec ? e->spec->ha : NULL), false);
        break;
    case HA_P_NUMBER:
        add_action_state(o, state_topic, e);
        number_options(o, e);
        add_ha_meta(o, e->action->ha, false);
        break;
    case HA_P_SELECT: {
        add_action_state(o, state_topic, e);
        json_object *ops = json_object_new_array();
        const struct cfg_param *p = &e->action->params[0];
        for (size_t i = 0; ops && i < p->n_enum_values; i++)
            json_object_array_add(ops, json_object_new_string(p->enum_values[i]));
        json_object_object_add(o, "options", ops);
        add_ha_meta(o, e->action->ha, false);
        break;
    }
    case HA_P_BUTTON:
        add_str(o, "payload_press", "PRESS");
        add_ha_meta(o, e->action->ha, false);
        break;
    case HA_P_TEXT: {
        add_action_state(o, state_topic, e);
        const struct cfg_param *p = &e->action->params[0];
        add_num(o, "min", p->has_min ? p->min : 0);
        add_num(o, "max", p->has_max && p->max <= 255 ? p->max : 255);
        add_ha_meta(o, e->action->ha, false);
        break;
    }
    case HA_P_NONE:
        break;
    }
    if (e->p != HA_P_SENSOR && e->p != HA_P_BINARY_SENSOR) {
        if (!cmd_ok) {
            json_object_put(o);
            return NULL;
        }
        add_str(o, "command_topic", cmd);
    }
    return o;
}

static json_object *origin(void)
{
    json_object *o = json_object_new_object();
    add_str(o, "name", "wb-mqtt-bridge");
    add_str(o, "sw_version", WBMB_VERSION);
    return o;
}

static json_object *device_block(const struct ha *h, const char *obj, const char *name,
                                 const char *model, bool via)
{
    json_object *d = json_object_new_object();
    char ident[HA_TOPIC_MAX], bridge[HA_KEY_MAX * 2];
    snprintf(ident, sizeof(ident), "%s_%s", h->hc->node_id, obj);
    json_object *ids = json_object_new_array();
    json_object_array_add(ids, json_object_new_string(ident));
    json_object_object_add(d, "identifiers", ids);
    add_str(d, "name", name);
    add_str(d, "manufacturer", "wb-mqtt-bridge");
    add_str(d, "model", model && model[0] ? model : "device");
    add_str(d, "sw_version", WBMB_VERSION);
    if (via) {
        char b[HA_KEY_MAX];
        ha_object_id(h->cfg->bridge_device_id, b, sizeof(b));
        snprintf(bridge, sizeof(bridge), "%s_%s", h->hc->node_id, b);
        add_str(d, "via_device", bridge);
    }
    return d;
}

/* Appends "key:platform" to the names being built. */
static bool names_add(char **names, size_t *len, const char *key, const char *platform)
{
    size_t add = strlen(key) + 1 + strlen(platform) + 1;
    char *g = realloc(*names, *len + add + 1);
    if (!g)
        return false;
    *names = g;
    *len += (size_t)snprintf(g + *len, add + 1, "%s%s:%s", *len ? "/" : "", key, platform);
    return true;
}

/* Stubs for what old has and cmps does not: {"p": platform}, once. */
static void add_stubs(json_object *cmps, const char *old)
{
    for (const char *s = old; s && *s;) {
        const char *end = strchr(s, '/');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        char one[HA_KEY_MAX + 32];
        if (n < sizeof(one)) {
            memcpy(one, s, n);
            one[n] = '\0';
            char *colon = strchr(one, ':');
            if (colon) {
                *colon = '\0';
                if (!json_object_object_get_ex(cmps, one, NULL) &&
                    ha_platform_of(colon + 1) != HA_P_NONE) {
                    json_object *stub = json_object_new_object();
                    add_str(stub, "p", colon + 1);
                    json_object_object_add(cmps, one, stub);
                }
            }
        }
        s = end ? end + 1 : s + n;
    }
}

static json_object *wrap(json_object *dev, json_object *cmps)
{
    json_object *root = json_object_new_object();
    if (!root) {
        json_object_put(dev);
        json_object_put(cmps);
        return NULL;
    }
    json_object_object_add(root, "dev", dev);
    json_object_object_add(root, "o", origin());
    json_object_object_add(root, "cmps", cmps);
    return root;
}

json_object *ha_device_config(const struct ha *h, const struct sink_device *sd, const char *old,
                              char **names)
{
    *names = NULL;
    struct ha_entity *e;
    size_t n = ha_entities(sd, &e);
    char st[HA_TOPIC_MAX];
    if (!ha_topic(h, sd->cfg->id, "state", st, sizeof(st))) {
        free(e);
        return NULL;
    }
    json_object *cmps = json_object_new_object();
    size_t len = 0;
    char *nm = calloc(1, 1);
    bool ok = cmps && nm;
    for (size_t i = 0; ok && i < n; i++) {
        json_object *c = component(h, sd, &e[i], st);
        if (!c)
            continue;
        json_object_object_add(cmps, e[i].key, c);
        ok = names_add(&nm, &len, e[i].key, ha_platform_name(e[i].p));
    }
    free(e);
    if (!ok) {
        json_object_put(cmps);
        free(nm);
        return NULL;
    }
    add_stubs(cmps, old);
    json_object *root =
        wrap(device_block(h, sd->cfg->id, sd->cfg->name, sd->cfg->type, true), cmps);
    if (!root) {
        free(nm);
        return NULL;
    }
    *names = nm;
    return root;
}

json_object *ha_bridge_config(const struct ha *h, const char *old, char **names)
{
    *names = NULL;
    const char *id = h->cfg->bridge_device_id;
    char obj[HA_KEY_MAX], st[HA_TOPIC_MAX], cmd[HA_TOPIC_MAX], uid[HA_TOPIC_MAX];
    ha_object_id(id, obj, sizeof(obj));
    if (!ha_topic(h, id, "state", st, sizeof(st)) ||
        !ha_topic(h, id, "scenario/set", cmd, sizeof(cmd)))
        return NULL;
    json_object *cmps = json_object_new_object();
    json_object *sel = json_object_new_object();
    json_object *status = json_object_new_object();
    json_object *ops = json_object_new_array();
    if (!cmps || !sel || !status || !ops) {
        json_object_put(cmps);
        json_object_put(sel);
        json_object_put(status);
        json_object_put(ops);
        return NULL;
    }
    add_str(sel, "p", "select");
    snprintf(uid, sizeof(uid), "%s_%s_scenario", h->hc->node_id, obj);
    add_str(sel, "unique_id", uid);
    add_str(sel, "name", "Scenario");
    add_str(sel, "icon", "mdi:script-text-play-outline");
    json_object_object_add(sel, "availability", availability(h, NULL));
    add_str(sel, "state_topic", st);
    add_template(sel, "value_template", "scenario");
    add_str(sel, "command_topic", cmd);
    for (size_t i = 0; i < h->cfg->n_scenarios; i++)
        json_object_array_add(ops, json_object_new_string(h->cfg->scenarios[i].id));
    json_object_array_add(ops, json_object_new_string("none"));
    json_object_object_add(sel, "options", ops);
    json_object_object_add(cmps, "scenario", sel);

    add_str(status, "p", "sensor");
    snprintf(uid, sizeof(uid), "%s_%s_scenario_status", h->hc->node_id, obj);
    add_str(status, "unique_id", uid);
    add_str(status, "name", "Scenario status");
    add_str(status, "entity_category", "diagnostic");
    json_object_object_add(status, "availability", availability(h, NULL));
    add_str(status, "state_topic", st);
    add_template(status, "value_template", "status");
    add_str(status, "json_attributes_topic", st);
    add_str(status, "json_attributes_template", "{{ (value_json.get('last') or {}) | tojson }}");
    json_object_object_add(cmps, "scenario_status", status);

    add_stubs(cmps, old);
    char *nm = strdup("scenario:select/scenario_status:sensor");
    json_object *root = wrap(device_block(h, obj, "MQTT bridge", "wb-mqtt-bridge", false), cmps);
    if (!root || !nm) {
        json_object_put(root);
        free(nm);
        return NULL;
    }
    *names = nm;
    return root;
}

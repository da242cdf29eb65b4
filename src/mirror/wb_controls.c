/*
 * wb_controls.c - what each control of a mirrored device is (see wb_int.h):
 * a field's control meta from its binding and its wb: block, the writable
 * controls made from actions, meta/error as a mix of "r" and "w", and the
 * clearing of what a reload or a restart removed.
 *
 *   field control   type: wb.type; else "switch" when on/off actions make
 *                   it writable (switch:, or derived from the actions' set);
 *                   else from the binding (bool -> switch, int/float ->
 *                   value, string -> text); else from the value
 *   action control  no params -> pushbutton (the UI always sends 1);
 *                   one int param with min and max -> range; one number ->
 *                   value; one enum -> text with enum; one bool -> switch;
 *                   one string, or several params (a JSON object) -> text
 *
 * An action control with a param shows a value, as every control must for
 * the UI to show it: the state field its set writes the param to (set:
 * {volume: "{level}"}), else the last value sent through it, else the
 * param's default, its min, its first enum value, 0 or false.
 *
 * meta/error: "r" while the device is offline (every control) or the
 * field's value is null, "w" while the control's last write failed, both
 * ("rw") when both hold.
 *
 * Removal. What the bridge publishes is remembered in the store (struct
 * mirror_memory, "wb:published": device -> its control names joined by
 * '/'). At the first connect, what the last run remembered and this run
 * does not publish is cleared with empty retained payloads; a reload clears
 * what it removed at once (or at the next connect). The memory is saved
 * after a reload, after clearing, at shutdown, and (at most once a minute)
 * after new fields appeared: never in the message path.
 */
#include "mirror/wb_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wbmb/log.h"
#include "wbmb/util.h"

/* New fields make the memory stale: saved at most this often for them. */
#define MEMORY_FIELDS_SAVE_MS 60000

const char *const wb_ctl_name[] = {"text", "switch", "value", "text"};

/* ---- writable switches --------------------------------------------------- */

static bool runs_without_params(const struct cfg_action *a)
{
    for (size_t i = 0; i < a->n_params; i++)
        if (a->params[i].required && !a->params[i].default_value)
            return false;
    return true;
}

/* The first action that needs no params and whose set writes value to field. */
static const struct cfg_action *setter(const struct cfg_device *c, const char *field, bool value)
{
    for (size_t i = 0; i < c->n_actions; i++) {
        const struct cfg_action *a = &c->actions[i];
        json_object *v;
        if (a->set && json_object_object_get_ex(a->set, field, &v) &&
            json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v) == value &&
            runs_without_params(a))
            return a;
    }
    return NULL;
}

bool wb_field_switch(const struct cfg_device *c, const char *field, const struct cfg_action **on,
                     const struct cfg_action **off)
{
    if (c->n_actions == 0) /* the common case, on every meta */
        return false;
    const struct cfg_field_spec *spec = cfg_field_spec(c, field);
    if (spec && spec->wb && spec->wb->readonly == 1)
        return false;
    const struct cfg_action *a_on, *a_off;
    if (spec && spec->on_action && spec->off_action) {
        a_on = cfg_find_action(c, spec->on_action);
        a_off = cfg_find_action(c, spec->off_action);
    } else {
        a_on = setter(c, field, true);
        a_off = setter(c, field, false);
    }
    if (!a_on || !a_off)
        return false;
    if (on)
        *on = a_on;
    if (off)
        *off = a_off;
    return true;
}

struct name_set {
    json_object *set;
    const struct cfg_device *c;
};

static void candidate(struct name_set *ns, const char *field)
{
    if (field && !json_object_object_get_ex(ns->set, field, NULL) &&
        wb_field_switch(ns->c, field, NULL, NULL))
        json_object_object_add(ns->set, field, NULL);
}

void wb_switch_fields(const struct cfg_device *c, void (*fn)(void *ud, const char *field), void *ud)
{
    if (c->n_actions == 0)
        return;
    struct name_set ns = {.set = json_object_new_object(), .c = c};
    if (!ns.set)
        return;
    for (size_t i = 0; i < c->n_state; i++) {
        candidate(&ns, c->state[i].field);
        for (size_t k = 0; k < c->state[i].n_fields; k++)
            candidate(&ns, c->state[i].fields[k].field);
    }
    for (size_t i = 0; i < c->n_actions; i++) {
        if (!c->actions[i].set)
            continue;
        json_object_object_foreach(c->actions[i].set, k, v)
        {
            if (json_object_is_type(v, json_type_boolean))
                candidate(&ns, k);
        }
    }
    json_object_object_foreach(ns.set, k, v)
    {
        (void)v;
        fn(ud, k);
    }
    json_object_put(ns.set);
}

/* ---- metas ----------------------------------------------------------------- */

/* A number as JSON shows it best: integral values without ".0". */
static json_object *number(double v)
{
    if (v == floor(v) && fabs(v) < 9e15)
        return json_object_new_int64((int64_t)v);
    /* The shortest text that reads back the config's number (0.1, not
     * 0.10000000000000001). */
    char buf[32];
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return json_object_new_double_s(v, buf);
}

static json_object *i18n(const char *en_default, const struct cfg_i18n *t)
{
    json_object *x = json_object_new_object();
    const char *en = t && t->en ? t->en : en_default;
    if (en)
        json_object_object_add(x, "en", json_object_new_string(en));
    if (t && t->ru)
        json_object_object_add(x, "ru", json_object_new_string(t->ru));
    return x;
}

static json_object *meta_new(const char *type, bool readonly, int order, const char *title_en,
                             const struct cfg_i18n *title)
{
    json_object *m = json_object_new_object();
    if (!m)
        return NULL;
    json_object_object_add(m, "type", json_object_new_string(type));
    json_object_object_add(m, "readonly", json_object_new_boolean(readonly));
    json_object_object_add(m, "order", json_object_new_int(order));
    json_object_object_add(m, "title", i18n(title_en, title));
    return m;
}

static void meta_from_wb(json_object *m, const struct cfg_wb_meta *wb)
{
    if (wb->units)
        json_object_object_add(m, "units", json_object_new_string(wb->units));
    if (wb->has_min)
        json_object_object_add(m, "min", number(wb->min));
    if (wb->has_max)
        json_object_object_add(m, "max", number(wb->max));
    if (wb->has_precision)
        json_object_object_add(m, "precision", number(wb->precision));
    if (wb->hidden)
        json_object_object_add(m, "hidden", json_object_new_boolean(true));
    if (wb->n_enums) {
        json_object *e = json_object_new_object();
        for (size_t i = 0; i < wb->n_enums; i++)
            json_object_object_add(e, wb->enums[i].value,
                                   i18n(wb->enums[i].value, &wb->enums[i].title));
        json_object_object_add(m, "enum", e);
    }
}

static wb_status publish_meta_obj(struct wb *w, const char *device_id, const char *control,
                                  json_object *m)
{
    if (!m)
        return WB_ERR_NOMEM;
    wb_status st = mirror_control_meta(&w->pub, device_id, control, m, w->cfg->wb_legacy_meta);
    json_object_put(m);
    return st;
}

wb_status wb_field_meta(struct wb *w, const struct sink_device *sd, size_t fi, enum ctl_type dyn,
                        int order)
{
    const struct cfg_device *c = sd->cfg;
    const char *name = sd->f[fi].name;
    const struct cfg_field_spec *spec = cfg_field_spec(c, name);
    const struct cfg_wb_meta *wb = spec ? spec->wb : NULL;
    bool writable = wb_field_switch(c, name, NULL, NULL);
    const char *type = wb && wb->type ? wb->type : writable ? "switch" : wb_ctl_name[dyn];
    json_object *m = meta_new(type, !writable, wb && wb->has_order ? wb->order : order, name,
                              wb ? &wb->title : NULL);
    if (m && wb)
        meta_from_wb(m, wb);
    return publish_meta_obj(w, c->id, name, m);
}

/* ---- action controls ----------------------------------------------------- */

enum act_kind { AK_PUSH, AK_RANGE, AK_VALUE, AK_TEXT, AK_SWITCH };
static const char *const ak_name[] = {"pushbutton", "range", "value", "text", "switch"};

static enum act_kind action_kind(const struct cfg_action *a)
{
    if (a->n_params == 0)
        return AK_PUSH;
    if (a->n_params > 1)
        return AK_TEXT;
    const struct cfg_param *p = &a->params[0];
    switch (p->type) {
    case CFG_T_INT:
        return p->has_min && p->has_max ? AK_RANGE : AK_VALUE;
    case CFG_T_FLOAT:
        return AK_VALUE;
    case CFG_T_BOOL:
        return AK_SWITCH;
    default:
        return AK_TEXT; /* string, enum */
    }
}

static json_object *action_meta(const struct cfg_action *a, int order)
{
    enum act_kind k = action_kind(a);
    json_object *m = meta_new(ak_name[k], false, order, a->name, NULL);
    if (!m || a->n_params != 1)
        return m;
    const struct cfg_param *p = &a->params[0];
    if (p->type == CFG_T_INT || p->type == CFG_T_FLOAT) {
        if (p->has_min)
            json_object_object_add(m, "min", number(p->min));
        if (p->has_max)
            json_object_object_add(m, "max", number(p->max));
        if (p->type == CFG_T_INT)
            json_object_object_add(m, "precision", json_object_new_int(1));
    } else if (p->type == CFG_T_ENUM && p->n_enum_values) {
        json_object *e = json_object_new_object();
        for (size_t i = 0; i < p->n_enum_values; i++)
            json_object_object_add(e, p->enum_values[i], i18n(p->enum_values[i], NULL));
        json_object_object_add(m, "enum", e);
    }
    return m;
}

/* The state field that action a (one param) writes its param to: set:
 * {FIELD: "{param}"}. NULL when none. */
const char *wb_action_follows(const struct cfg_action *a)
{
    if (a->n_params != 1 || !a->set)
        return NULL;
    const char *pn = a->params[0].name;
    size_t pl = strlen(pn);
    json_object_object_foreach(a->set, k, v)
    {
        if (!json_object_is_type(v, json_type_string))
            continue;
        const char *s = json_object_get_string(v);
        if ((size_t)json_object_get_string_len(v) == pl + 2 && s[0] == '{' &&
            memcmp(s + 1, pn, pl) == 0 && s[pl + 1] == '}')
            return k;
    }
    return NULL;
}

static json_object *field_value(const struct sink_device *sd, const char *name, bool *found)
{
    for (size_t i = 0; i < sd->n_f; i++)
        if (strcmp(sd->f[i].name, name) == 0) {
            *found = true;
            return sd->f[i].v;
        }
    *found = false;
    return NULL;
}

static void value_key(const char *device_id, const char *control, char *key, size_t cap)
{
    util_join(key, cap, device_id, "/", control);
}

/* The value an action control shows (see the top); NULL: none. Borrowed
 * or *tmp (a new one the caller frees). */
static json_object *action_value(struct wb *w, const struct sink_device *sd,
                                 const struct cfg_action *a, json_object **tmp)
{
    *tmp = NULL;
    if (a->n_params == 0)
        return NULL; /* a pushbutton has none */
    const char *ff = wb_action_follows(a);
    bool found;
    json_object *v = ff ? field_value(sd, ff, &found) : NULL;
    if (v)
        return v;
    char key[300];
    value_key(sd->cfg->id, a->name, key, sizeof(key));
    if (json_object_object_get_ex(w->action_values, key, &v))
        return v;
    if (a->n_params > 1)
        return *tmp = json_object_new_string("{}");
    const struct cfg_param *p = &a->params[0];
    if (p->default_value)
        return p->default_value;
    switch (p->type) {
    case CFG_T_INT:
        return *tmp = json_object_new_int64(p->has_min ? (int64_t)p->min : 0);
    case CFG_T_FLOAT:
        return *tmp = number(p->has_min ? p->min : 0);
    case CFG_T_BOOL:
        return *tmp = json_object_new_boolean(false);
    case CFG_T_ENUM:
        return p->n_enum_values ? (*tmp = json_object_new_string(p->enum_values[0])) : NULL;
    default:
        return NULL; /* a string without a default: no value until one is sent */
    }
}

/* A value payload is never empty (that deletes the retained value). */
static void publish_action_value(struct wb *w, const char *device_id, const char *control,
                                 json_object *v)
{
    if (!v || (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0))
        return;
    mirror_control_value(&w->pub, device_id, control, v);
}

void wb_publish_action(struct wb *w, struct wdev *d, const struct sink_device *sd,
                       const struct cfg_action *a, int order)
{
    if (!mirror_field_name_ok(a->name))
        return;
    publish_meta_obj(w, sd->cfg->id, a->name, action_meta(a, order));
    json_object *tmp;
    publish_action_value(w, sd->cfg->id, a->name, action_value(w, sd, a, &tmp));
    json_object_put(tmp);
    /* A write error is retained state like any other: a "w" published
     * just before the connection went (mosquitto closes it after a
     * refusing PUBACK) would be lost, and the next refusal of the same
     * action publishes nothing new. */
    if (d->offline || wb_write_error(w, sd->cfg->id, a->name))
        wb_control_error(w, sd->cfg->id, a->name, d->offline);
}

void wb_publish_followers(struct wb *w, const struct sink_device *sd, size_t fi)
{
    const struct cfg_device *c = sd->cfg;
    for (size_t i = 0; i < c->n_actions; i++) {
        const char *ff = wb_action_follows(&c->actions[i]);
        if (ff && strcmp(ff, sd->f[fi].name) == 0 && mirror_field_name_ok(c->actions[i].name))
            publish_action_value(w, c->id, c->actions[i].name, sd->f[fi].v);
    }
}

/* ---- meta/error ------------------------------------------------------------ */

wb_status wb_control_error(struct wb *w, const char *device_id, const char *control, bool r)
{
    char text[3];
    size_t n = 0;
    if (r)
        text[n++] = 'r';
    if (wb_write_error(w, device_id, control))
        text[n++] = 'w';
    text[n] = '\0';
    return mirror_control_error(&w->pub, device_id, control, text);
}

void wb_availability(struct wb *w, struct wdev *d, const struct sink_device *sd, bool online)
{
    d->offline = !online;
    if (!sd->cfg->wb_mirror || !w->connected)
        return; /* the republish at the connect shows it */
    uint8_t *fb = wb_fb(d);
    for (size_t i = 0; i < d->meta_count && i < d->n_fb && i < sd->n_f; i++) {
        if (!(fb[i] & FB_MIRRORED))
            continue;
        bool r = !online || !sd->f[i].v;
        if (r == ((fb[i] & FB_ERR_SHOWN) != 0))
            continue;
        if (wb_control_error(w, sd->cfg->id, sd->f[i].name, r) == WB_OK)
            fb[i] = (uint8_t)(r ? fb[i] | FB_ERR_SHOWN : fb[i] & ~FB_ERR_SHOWN);
    }
    for (size_t a = 0; a < sd->cfg->n_actions; a++)
        if (mirror_field_name_ok(sd->cfg->actions[a].name))
            wb_control_error(w, sd->cfg->id, sd->cfg->actions[a].name, !online);
}

static struct wdev *wdev_of(struct wb *w, const struct cfg_device *dev)
{
    long i = cfg_device_index(w->cfg, dev->id);
    return i >= 0 && (size_t)i < w->n_devs ? &w->devs[i] : NULL;
}

/* The value an action sent for its one param, from the command's params
 * JSON text; NULL when there is none. A new reference. */
static json_object *sent_value(const struct cfg_action *a, const char *params)
{
    if (!params)
        return NULL;
    json_object *o = json_tokener_parse(params);
    json_object *v = NULL;
    if (o && a->n_params == 1 && json_object_object_get_ex(o, a->params[0].name, &v))
        json_object_get(v);
    else if (o && a->n_params > 1)
        v = json_object_get(o);
    json_object_put(o);
    return v;
}

void wb_command_result(struct wb *w, const struct cfg_device *dev, const char *action,
                       const char *params, bool error, const struct sink_view *view)
{
    struct wdev *d = wdev_of(w, dev);
    bool offline = d && d->offline;
    const struct cfg_action *a = cfg_find_action(dev, action);
    if (wb_set_write_error(w, dev->id, action, error))
        wb_control_error(w, dev->id, action, offline);
    if (!a)
        return;
    struct sink_device sd;
    long idx = cfg_device_index(w->cfg, dev->id);
    bool have_sd = idx >= 0 && view->device(view->ud, (size_t)idx, &sd) && sd.cfg == dev;
    /* A sent param that no field follows becomes the control's value. */
    if (!error && a->n_params > 0 && !wb_action_follows(a)) {
        json_object *v = sent_value(a, params);
        if (v) {
            char key[300];
            value_key(dev->id, action, key, sizeof(key));
            json_object_object_add(w->action_values, key, v);
            publish_action_value(w, dev->id, action, v);
        }
    }
    /* The switches this action runs share its outcome. */
    if (!a->set)
        return;
    json_object_object_foreach(a->set, k, v)
    {
        const struct cfg_action *on, *off;
        if (!json_object_is_type(v, json_type_boolean) || !wb_field_switch(dev, k, &on, &off) ||
            (on != a && off != a) || !wb_set_write_error(w, dev->id, k, error))
            continue;
        bool found = false;
        json_object *fv = have_sd ? field_value(&sd, k, &found) : NULL;
        wb_control_error(w, dev->id, k, offline || (found && !fv));
    }
}

/* ---- switch input ------------------------------------------------------------ */

const struct cfg_action *wb_switch_input(struct wb *w, const struct cfg_device *dev,
                                         const char *field, const char *payload, size_t len)
{
    const struct cfg_action *on, *off;
    if (!wb_field_switch(dev, field, &on, &off))
        return NULL;
    while (len && isspace((unsigned char)payload[0])) {
        payload++;
        len--;
    }
    while (len && isspace((unsigned char)payload[len - 1]))
        len--;
    static const char *const yes[] = {"1", "true", "on"}, *const no[] = {"0", "false", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (len == strlen(yes[i]) && strncasecmp(payload, yes[i], len) == 0)
            return on;
        if (len == strlen(no[i]) && strncasecmp(payload, no[i], len) == 0)
            return off;
    }
    char ex[40];
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < sizeof(ex); i++)
        ex[j++] = payload[i] >= 0x20 && payload[i] < 0x7f ? payload[i] : '?';
    ex[j] = '\0';
    log_warn("device %s: switch '%s' takes 1 or 0, got '%s%s': ignored", dev->id, field, ex,
             len >= sizeof(ex) ? "..." : "");
    struct wdev *d = wdev_of(w, dev);
    if (wb_set_write_error(w, dev->id, field, true))
        wb_control_error(w, dev->id, field, d && d->offline);
    return NULL;
}

/* ---- removal and the memory ---------------------------------------------- */

/* names += "/" name (names: a '/'-joined list) unless it is there. */
static void names_add(char **names, size_t *len, size_t *cap, const char *name)
{
    size_t nl = strlen(name);
    if (*names) {
        for (const char *p = *names; p && *p;) {
            const char *e = strchr(p, '/');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == nl && memcmp(p, name, nl) == 0)
                return;
            p = e ? e + 1 : NULL;
        }
    }
    if (*len + nl + 2 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 64) + nl;
        char *g = realloc(*names, nc);
        if (!g)
            return;
        *names = g;
        *cap = nc;
    }
    if (*len)
        (*names)[(*len)++] = '/';
    memcpy(*names + *len, name, nl + 1);
    *len += nl;
}

static bool names_has(const char *names, const char *name, size_t nl)
{
    for (const char *p = names; p && *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && memcmp(p, name, nl) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* Calls fn with each name of a '/'-joined list (as a C string). */
static void names_each(const char *names, void (*fn)(void *ud, const char *one), void *ud)
{
    for (const char *p = names; p && *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char one[MIRROR_FIELD_MAX + 1];
        if (l > 0 && l <= MIRROR_FIELD_MAX) {
            memcpy(one, p, l);
            one[l] = '\0';
            fn(ud, one);
        }
        p = e ? e + 1 : NULL;
    }
}

struct names_buf {
    char *s;
    size_t len, cap;
    const char *except; /* names_add_except: names not to add */
};

static void add_one(void *ud, const char *one)
{
    struct names_buf *b = ud;
    if (!b->except || !names_has(b->except, one, strlen(one)))
        names_add(&b->s, &b->len, &b->cap, one);
}

struct clear_ctx {
    struct wb *w;
    const char *id;
    bool ok;
};

static void clear_one(void *ud, const char *one)
{
    struct clear_ctx *c = ud;
    c->ok = mirror_clear_control(&c->w->pub, c->id, one) == WB_OK && c->ok;
}

/* Clears the controls names of device id, and its own topics when device
 * too; true when every publication went out. */
static bool clear_names(struct wb *w, const char *id, const char *names, bool device)
{
    struct clear_ctx c = {.w = w, .id = id, .ok = true};
    names_each(names, clear_one, &c);
    if (device)
        c.ok = mirror_clear_device(&w->pub, id) == WB_OK && c.ok;
    return c.ok;
}

/* Every control a mirrored device has: its fields (and the fields its
 * bindings name), its actions. A new '/'-joined string; NULL when none. */
static char *device_controls(const struct sink_device *sd)
{
    char *names = NULL;
    size_t len = 0, cap = 0;
    const struct cfg_device *c = sd->cfg;
    for (size_t i = 0; i < sd->n_f; i++)
        if (mirror_field_name_ok(sd->f[i].name))
            names_add(&names, &len, &cap, sd->f[i].name);
    for (size_t i = 0; i < c->n_state; i++) {
        if (c->state[i].field && mirror_field_name_ok(c->state[i].field))
            names_add(&names, &len, &cap, c->state[i].field);
        for (size_t k = 0; k < c->state[i].n_fields; k++)
            if (mirror_field_name_ok(c->state[i].fields[k].field))
                names_add(&names, &len, &cap, c->state[i].fields[k].field);
    }
    for (size_t a = 0; a < c->n_actions; a++)
        if (mirror_field_name_ok(c->actions[a].name))
            names_add(&names, &len, &cap, c->actions[a].name);
    return names;
}

/* stale[id] += names (merged). */
static void stale_add(struct wb *w, const char *id, const char *names)
{
    json_object *old;
    struct names_buf b = {0};
    if (json_object_object_get_ex(w->stale, id, &old) && json_object_is_type(old, json_type_string))
        names_each(json_object_get_string(old), add_one, &b);
    names_each(names, add_one, &b);
    json_object_object_add(w->stale, id, json_object_new_string(b.s ? b.s : ""));
    free(b.s);
    w->mem_dirty = true;
    w->mem_due_ms = 0;
}

/* Whether id's own device topics are published by this config. */
static bool device_current(const struct wb *w, const char *id)
{
    if (strcmp(id, w->cfg->bridge_device_id) == 0)
        return true;
    const struct cfg_device *d = cfg_find_device(w->cfg, id);
    return d && d->wb_mirror;
}

/* Clears stale[id]'s controls (and the device's own topics when this
 * config has no such device); true when every publication went out. */
static bool clear_entry(struct wb *w, const char *id, const char *names)
{
    return clear_names(w, id, names, !device_current(w, id));
}

static void clear_now_or_later(struct wb *w, const char *id, const char *names)
{
    if (!w->connected || !clear_entry(w, id, names))
        stale_add(w, id, names);
    else
        log_info("mirror: cleared %s%s%s from the broker", id, names && *names ? ": " : "",
                 names ? names : "");
}

/* Every control of sd (and its own topics) goes, now or at the connect. */
static void device_gone(struct wb *w, const struct sink_device *sd)
{
    char *names = device_controls(sd);
    /* During a reload's events w->cfg is still the old config, where the
     * device is current: the device's own topics are cleared explicitly. */
    if (!w->connected || !clear_names(w, sd->cfg->id, names, true))
        stale_add(w, sd->cfg->id, names ? names : "");
    else
        log_info("mirror: device %s is no longer mirrored: cleared from the broker", sd->cfg->id);
    free(names);
}

void wb_device_removed(struct wb *w, const struct sink_device *sd)
{
    if (sd->cfg->wb_mirror)
        device_gone(w, sd);
}

void wb_device_changed(struct wb *w, const struct sink_device *sd, const struct cfg_device *old)
{
    if (!old->wb_mirror)
        return;
    if (!sd->cfg->wb_mirror) {
        struct sink_device osd = *sd;
        osd.cfg = old;
        device_gone(w, &osd);
        return;
    }
    /* Actions that are gone (and are not a control of the new config). */
    char *now = device_controls(sd);
    struct names_buf gone = {.except = now};
    for (size_t a = 0; a < old->n_actions; a++)
        if (mirror_field_name_ok(old->actions[a].name))
            add_one(&gone, old->actions[a].name);
    if (gone.s)
        clear_now_or_later(w, old->id, gone.s);
    free(gone.s);
    free(now);
}

/* What the device id of the old memory still has in this run, or NULL
 * (a new string). */
static char *current_names(struct wb *w, const struct sink_view *view, const char *id)
{
    if (strcmp(id, w->cfg->bridge_device_id) == 0)
        return strdup("scenario");
    long i = cfg_device_index(w->cfg, id);
    struct sink_device sd;
    if (i < 0 || !w->cfg->devices[i].wb_mirror || !view->device(view->ud, (size_t)i, &sd))
        return NULL;
    return device_controls(&sd);
}

void wb_clear_stale(struct wb *w, const struct sink_view *view)
{
    if (w->old_mem) {
        json_object_object_foreach(w->old_mem, id, v)
        {
            if (!json_object_is_type(v, json_type_string))
                continue;
            char *cur = current_names(w, view, id);
            struct names_buf b = {.except = cur};
            names_each(json_object_get_string(v), add_one, &b);
            char *gone = b.s;
            if (gone || !device_current(w, id))
                stale_add(w, id, gone ? gone : "");
            free(gone);
            free(cur);
        }
        json_object_put(w->old_mem);
        w->old_mem = NULL;
    }
    if (json_object_object_length(w->stale) == 0)
        return;
    json_object *left = json_object_new_object();
    size_t cleared = 0;
    json_object_object_foreach(w->stale, id, v)
    {
        const char *names = json_object_get_string(v);
        if (clear_entry(w, id, names)) {
            log_info("mirror: cleared %s%s%s from the broker (not in this config)", id,
                     *names ? ": " : "", names);
            cleared++;
        } else {
            json_object_object_add(left, id, json_object_get(v));
        }
    }
    json_object_put(w->stale);
    w->stale = left;
    if (cleared) {
        w->mem_dirty = true;
        w->mem_due_ms = 0;
    }
}

/* The remembered set: every mirrored device with its controls, the
 * bridge, and what is still to be cleared. */
static json_object *memory_build(struct wb *w, const struct sink_view *view)
{
    json_object *m = json_object_new_object();
    if (!m)
        return NULL;
    json_object_object_add(m, w->cfg->bridge_device_id, json_object_new_string("scenario"));
    size_t n = view->count(view->ud);
    struct sink_device sd;
    for (size_t i = 0; i < n; i++) {
        if (!view->device(view->ud, i, &sd) || !sd.cfg->wb_mirror)
            continue;
        char *names = device_controls(&sd);
        json_object_object_add(m, sd.cfg->id, json_object_new_string(names ? names : ""));
        free(names);
    }
    json_object *sets[2] = {w->stale, w->old_mem};
    for (size_t s = 0; s < 2; s++) {
        if (!sets[s])
            continue;
        json_object_object_foreach(sets[s], id, v)
        {
            json_object *cur;
            if (!json_object_object_get_ex(m, id, &cur)) {
                json_object_object_add(m, id, json_object_get(v));
                continue;
            }
            struct names_buf b = {0};
            names_each(json_object_get_string(cur), add_one, &b);
            names_each(json_object_get_string(v), add_one, &b);
            char *merged = b.s;
            json_object_object_add(m, id, json_object_new_string(merged ? merged : ""));
            free(merged);
        }
    }
    return m;
}

void wb_memory_tick(struct wb *w, const struct sink_view *view, int64_t now_ms)
{
    if (!w->mem_dirty || !w->mem.save || now_ms < w->mem_due_ms)
        return;
    json_object *m = memory_build(w, view);
    if (!m)
        return;
    /* Unchanged (a restart with the same config): no write at all. */
    const char *text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
    uint32_t h = util_hash_str(text);
    if (!w->mem_saved || h != w->mem_hash)
        w->mem.save(w->mem.ud, m);
    w->mem_hash = h;
    w->mem_saved = true;
    json_object_put(m);
    w->mem_dirty = false;
    w->mem_due_ms = now_ms == INT64_MAX ? INT64_MAX : now_ms + MEMORY_FIELDS_SAVE_MS;
}

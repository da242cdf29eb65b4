/*
 * wbui_model.c - the wbui device model (see wbui_model.h).
 *
 * Devices and controls live in two open-addressing hash tables keyed by
 * name (a control by "device\0control"); nothing is removed from them
 * before the model is destroyed, so no tombstones are needed: a deleted
 * control is an empty slot. Both tables are sized once for their caps.
 */
#include "wbui_model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEV_SLOTS 4096  /* power of two, > 2 * WBUI_MAX_DEVICES */
#define CTL_SLOTS 32768 /* power of two, > 2 * WBUI_MAX_CONTROLS */

struct wbui_model {
    struct wbui_device *dev_slot[DEV_SLOTS];
    struct wbui_control *ctl_slot[CTL_SLOTS];
    size_t ndevices, ncontrols;
    struct wbui_stats stats;
};

static const struct wbui_type types[] = {
    {"switch", WBUI_K_BOOL, false, NULL},
    {"wo-switch", WBUI_K_BOOL, false, NULL},
    {"alarm", WBUI_K_BOOL, true, NULL},
    {"pushbutton", WBUI_K_PUSHBUTTON, false, NULL},
    {"range", WBUI_K_NUMBER, false, NULL},
    {"rgb", WBUI_K_RGB, false, NULL},
    {"text", WBUI_K_TEXT, true, NULL},
    {"value", WBUI_K_NUMBER, true, NULL},
    {"unixtime", WBUI_K_NUMBER, false, NULL},
    {"w1-id", WBUI_K_NUMBER, true, NULL},
    {"temperature", WBUI_K_NUMBER, true, "deg C"},
    {"rel_humidity", WBUI_K_NUMBER, true, "%, RH"},
    {"atmospheric_pressure", WBUI_K_NUMBER, true, "mbar"},
    {"rainfall", WBUI_K_NUMBER, true, "mm/h"},
    {"wind_speed", WBUI_K_NUMBER, true, "m/s"},
    {"power", WBUI_K_NUMBER, true, "W"},
    {"power_consumption", WBUI_K_NUMBER, true, "kWh"},
    {"voltage", WBUI_K_NUMBER, true, "V"},
    {"water_flow", WBUI_K_NUMBER, true, "m^3/h"},
    {"water_consumption", WBUI_K_NUMBER, true, "m^3"},
    {"resistance", WBUI_K_NUMBER, true, "Ohm"},
    {"concentration", WBUI_K_NUMBER, true, "ppm"},
    {"heat_power", WBUI_K_NUMBER, true, "Gcal/h"},
    {"heat_energy", WBUI_K_NUMBER, true, "Gcal"},
    {"current", WBUI_K_NUMBER, true, "A"},
    {"pressure", WBUI_K_NUMBER, true, "bar"},
    {"lux", WBUI_K_NUMBER, true, "lx"},
    {"sound_level", WBUI_K_NUMBER, true, "dB"},
};

static const char *const legacy_names[WBUI_L_COUNT] = {
    "type", "readonly", "order", "min", "max", "units", "precision", "name",
};

const struct wbui_type *wbui_type_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

bool wbui_parse_number(const char *s, double *out)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    /* strtod would accept leading blanks, "inf" and "nan"; the UI's number
     * inputs would not. */
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eExXabcdefABCDEF", *p))
            return false;
    char *end;
    errno = 0;
    double v;
    const char *h = s + (*s == '-' || *s == '+');
    if (h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) {
        if (!h[2])
            return false;
        unsigned long long u = strtoull(h + 2, &end, 16);
        if (*end || errno)
            return false;
        v = *s == '-' ? -(double)u : (double)u;
    } else {
        v = strtod(s, &end);
        if (*end || errno == ERANGE || !isfinite(v))
            return false;
    }
    *out = v;
    return true;
}

/* ---- hashing -------------------------------------------------------------- */

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static uint32_t dev_hash(const char *dev)
{
    return fnv(2166136261u, dev);
}

static uint32_t ctl_hash(const char *dev, const char *ctl)
{
    return fnv(fnv(2166136261u, dev) * 16777619u, ctl);
}

static struct wbui_device **dev_find_slot(struct wbui_model *m, const char *dev)
{
    uint32_t h = dev_hash(dev) & (DEV_SLOTS - 1);
    while (m->dev_slot[h] && strcmp(m->dev_slot[h]->name, dev) != 0)
        h = (h + 1) & (DEV_SLOTS - 1);
    return &m->dev_slot[h];
}

static struct wbui_control **ctl_find_slot(struct wbui_model *m, const char *dev, const char *ctl)
{
    uint32_t h = ctl_hash(dev, ctl) & (CTL_SLOTS - 1);
    while (m->ctl_slot[h] &&
           (strcmp(m->ctl_slot[h]->name, ctl) != 0 || strcmp(m->ctl_slot[h]->dev->name, dev) != 0))
        h = (h + 1) & (CTL_SLOTS - 1);
    return &m->ctl_slot[h];
}

/* ---- life cycle ----------------------------------------------------------- */

struct wbui_model *wbui_model_create(void)
{
    return calloc(1, sizeof(struct wbui_model));
}

static void meta_clear(struct wbui_meta *mt)
{
    free(mt->raw);
    if (mt->json)
        json_object_put(mt->json);
    mt->raw = NULL;
    mt->json = NULL;
}

void wbui_model_destroy(struct wbui_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < CTL_SLOTS; i++) {
        struct wbui_control *c = m->ctl_slot[i];
        if (!c)
            continue;
        free(c->name);
        free(c->value);
        free(c->error);
        meta_clear(&c->meta);
        for (int l = 0; l < WBUI_L_COUNT; l++)
            free(c->legacy[l]);
        free(c);
    }
    for (size_t i = 0; i < DEV_SLOTS; i++) {
        struct wbui_device *d = m->dev_slot[i];
        if (!d)
            continue;
        free(d->name);
        free(d->error);
        free(d->legacy_name);
        meta_clear(&d->meta);
        free(d->controls);
        free(d);
    }
    free(m);
}

static struct wbui_device *dev_get(struct wbui_model *m, const char *name)
{
    struct wbui_device **slot = dev_find_slot(m, name);
    if (*slot)
        return *slot;
    if (m->ndevices >= WBUI_MAX_DEVICES)
        return NULL;
    struct wbui_device *d = calloc(1, sizeof(*d));
    if (!d || !(d->name = strdup(name))) {
        free(d);
        return NULL;
    }
    *slot = d;
    m->ndevices++;
    return d;
}

static struct wbui_control *ctl_get(struct wbui_model *m, struct wbui_device *d, const char *name)
{
    struct wbui_control **slot = ctl_find_slot(m, d->name, name);
    if (*slot)
        return *slot;
    if (m->ncontrols >= WBUI_MAX_CONTROLS)
        return NULL;
    if (d->ncontrols == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        struct wbui_control **nc = realloc(d->controls, cap * sizeof(*nc));
        if (!nc)
            return NULL;
        d->controls = nc;
        d->cap = cap;
    }
    struct wbui_control *c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return NULL;
    }
    c->dev = d;
    d->controls[d->ncontrols++] = c;
    *slot = c;
    m->ncontrols++;
    return c;
}

/* ---- applying messages ---------------------------------------------------- */

/* Replaces *dst with a copy of the payload, or NULL for an empty one.
 * Returns false when out of memory (the old value is then kept). */
static bool set_text(char **dst, const char *p, size_t n)
{
    char *v = NULL;
    if (n) {
        v = malloc(n + 1);
        if (!v)
            return false;
        memcpy(v, p, n);
        v[n] = '\0';
    }
    free(*dst);
    *dst = v;
    return true;
}

static bool set_meta(struct wbui_meta *mt, const char *p, size_t n)
{
    char *raw = NULL;
    if (!set_text(&raw, p, n))
        return false;
    meta_clear(mt);
    mt->raw = raw;
    if (!raw)
        return true;
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok)
        return true;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *j = json_tokener_parse_ex(tok, raw, (int)n);
    /* A valid document followed by anything but blanks is not valid JSON. */
    if (j && json_tokener_get_error(tok) == json_tokener_success) {
        size_t off = json_tokener_get_parse_end(tok);
        while (off < n && strchr(" \t\r\n", raw[off]))
            off++;
        if (off == n && strlen(raw) == n)
            mt->json = j;
        else
            json_object_put(j);
    } else if (j) {
        json_object_put(j);
    }
    json_tokener_free(tok);
    return true;
}

/* Splits "/devices/D/rest" into D and rest (without the slash, "" when
 * none); false when the topic is not under /devices/ or a name is empty or
 * too long. */
static bool split_level(const char **cur, char *out)
{
    const char *s = *cur;
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 || n > WBUI_MAX_NAME)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *cur = e ? e + 1 : s + n;
    return true;
}

int wbui_model_apply(struct wbui_model *m, const char *topic, size_t tlen, const void *payload,
                     size_t plen)
{
    m->stats.messages++;
    if (tlen > WBUI_MAX_TOPIC || plen > WBUI_MAX_PAYLOAD) {
        m->stats.dropped++;
        return -1;
    }
    char t[WBUI_MAX_TOPIC + 1];
    memcpy(t, topic, tlen);
    t[tlen] = '\0';
    if (strlen(t) != tlen || strncmp(t, "/devices/", 9) != 0) {
        m->stats.ignored++;
        return 0;
    }
    const char *cur = t + 9, *p = payload;
    char dname[WBUI_MAX_NAME + 1], cname[WBUI_MAX_NAME + 1];
    if (!split_level(&cur, dname)) {
        m->stats.ignored++;
        return 0;
    }
    bool ok = true, known = true;
    struct wbui_device *d = NULL;
    struct wbui_control *c = NULL;
    if (strcmp(cur, "meta") == 0 || strcmp(cur, "meta/error") == 0 ||
        strcmp(cur, "meta/name") == 0) {
        d = plen ? dev_get(m, dname) : *dev_find_slot(m, dname);
        if (!d && plen)
            ok = false;
        else if (d && strcmp(cur, "meta") == 0)
            ok = set_meta(&d->meta, p, plen);
        else if (d && strcmp(cur, "meta/error") == 0)
            ok = set_text(&d->error, p, plen);
        else if (d)
            ok = set_text(&d->legacy_name, p, plen);
    } else if (strncmp(cur, "controls/", 9) == 0) {
        cur += 9;
        if (!split_level(&cur, cname)) {
            m->stats.ignored++;
            return 0;
        }
        int l = -1;
        if (strcmp(cur, "") != 0 && strcmp(cur, "meta") != 0 && strcmp(cur, "meta/error") != 0) {
            for (int i = 0; i < WBUI_L_COUNT; i++)
                if (strncmp(cur, "meta/", 5) == 0 && strcmp(cur + 5, legacy_names[i]) == 0)
                    l = i;
            if (l < 0) {
                /* /on, /meta/writable and the like: the UI ignores them. */
                m->stats.ignored++;
                return 0;
            }
        }
        if (plen) {
            if (!(d = dev_get(m, dname)) || !(c = ctl_get(m, d, cname)))
                ok = false;
        } else {
            /* Deleting what was never there is a no-op (c stays NULL). */
            c = *ctl_find_slot(m, dname, cname);
        }
        if (ok && c) {
            if (l >= 0)
                ok = set_text(&c->legacy[l], p, plen);
            else if (*cur == '\0')
                ok = set_text(&c->value, p, plen);
            else if (strcmp(cur, "meta") == 0)
                ok = set_meta(&c->meta, p, plen);
            else
                ok = set_text(&c->error, p, plen);
        }
    } else {
        known = false;
    }
    if (!known) {
        m->stats.ignored++;
        return 0;
    }
    if (!ok) {
        m->stats.dropped++;
        return -1;
    }
    return 1;
}

const struct wbui_stats *wbui_model_stats(const struct wbui_model *m)
{
    return &m->stats;
}

/* ---- queries -------------------------------------------------------------- */

bool wbui_control_present(const struct wbui_control *c)
{
    if (!c)
        return false;
    if (c->value || c->meta.raw || c->error)
        return true;
    for (int l = 0; l < WBUI_L_COUNT; l++)
        if (c->legacy[l])
            return true;
    return false;
}

bool wbui_device_present(const struct wbui_device *d)
{
    if (!d)
        return false;
    if (d->meta.raw || d->error || d->legacy_name)
        return true;
    for (size_t i = 0; i < d->ncontrols; i++)
        if (wbui_control_present(d->controls[i]))
            return true;
    return false;
}

struct wbui_device *wbui_model_device(const struct wbui_model *m, const char *dev)
{
    struct wbui_device *d = *dev_find_slot((struct wbui_model *)m, dev);
    return wbui_device_present(d) ? d : NULL;
}

struct wbui_control *wbui_model_control(const struct wbui_model *m, const char *dev,
                                        const char *ctl)
{
    struct wbui_control *c = *ctl_find_slot((struct wbui_model *)m, dev, ctl);
    return wbui_control_present(c) ? c : NULL;
}

static int by_dev_name(const void *a, const void *b)
{
    return strcmp((*(struct wbui_device *const *)a)->name, (*(struct wbui_device *const *)b)->name);
}

static int by_ctl_name(const void *a, const void *b)
{
    return strcmp((*(struct wbui_control *const *)a)->name,
                  (*(struct wbui_control *const *)b)->name);
}

struct wbui_device **wbui_model_devices(const struct wbui_model *m, size_t *n)
{
    *n = 0;
    struct wbui_device **v = malloc((m->ndevices + 1) * sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < DEV_SLOTS; i++)
        if (wbui_device_present(m->dev_slot[i]))
            v[(*n)++] = m->dev_slot[i];
    qsort(v, *n, sizeof(*v), by_dev_name);
    return v;
}

struct wbui_control **wbui_device_controls(const struct wbui_device *d, size_t *n)
{
    *n = 0;
    struct wbui_control **v = malloc((d->ncontrols + 1) * sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < d->ncontrols; i++)
        if (wbui_control_present(d->controls[i]))
            v[(*n)++] = d->controls[i];
    qsort(v, *n, sizeof(*v), by_ctl_name);
    return v;
}

static json_object *meta_key(const struct wbui_control *c, const char *key)
{
    json_object *v;
    if (c->meta.json && json_object_is_type(c->meta.json, json_type_object) &&
        json_object_object_get_ex(c->meta.json, key, &v))
        return v;
    return NULL;
}

const char *wbui_control_type(const struct wbui_control *c)
{
    json_object *t = meta_key(c, "type");
    if (t && json_object_is_type(t, json_type_string))
        return json_object_get_string(t);
    return c->legacy[WBUI_L_TYPE];
}

bool wbui_control_number(const struct wbui_control *c, const char *key, enum wbui_legacy l,
                         double *out)
{
    json_object *v = meta_key(c, key);
    if (v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))) {
        *out = json_object_get_double(v);
        return true;
    }
    return wbui_parse_number(c->legacy[l], out);
}

bool wbui_control_readonly(const struct wbui_control *c)
{
    json_object *v = meta_key(c, "readonly");
    if (v && json_object_is_type(v, json_type_boolean))
        return json_object_get_boolean(v);
    const char *l = c->legacy[WBUI_L_READONLY];
    if (l && (strcmp(l, "0") == 0 || strcmp(l, "1") == 0))
        return l[0] == '1';
    const struct wbui_type *t = wbui_type_find(wbui_control_type(c));
    /* An unknown type is shown as text by the UI, which is read-only. */
    return t ? t->readonly : true;
}

json_object *wbui_control_enum(const struct wbui_control *c)
{
    json_object *e = meta_key(c, "enum");
    return e && json_object_is_type(e, json_type_object) ? e : NULL;
}

bool wbui_control_shown(const struct wbui_control *c)
{
    if (!c)
        return false;
    const struct wbui_type *t = wbui_type_find(wbui_control_type(c));
    if (!t)
        return false;
    return t->kind == WBUI_K_PUSHBUTTON || c->value != NULL;
}

bool wbui_control_gone(const struct wbui_control *c)
{
    return !c || (!c->value && !c->meta.raw && !c->legacy[WBUI_L_TYPE]);
}

/* ---- dump ----------------------------------------------------------------- */

static json_object *text_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void add_meta(json_object *o, const struct wbui_meta *mt)
{
    json_object_object_add(o, "meta", mt->json ? json_object_get(mt->json) : NULL);
    if (mt->raw && !mt->json)
        json_object_object_add(o, "meta_invalid", json_object_new_string(mt->raw));
}

static json_object *dump_control(const struct wbui_control *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "value", text_or_null(c->value));
    add_meta(o, &c->meta);
    json_object_object_add(o, "error", text_or_null(c->error));
    json_object *l = json_object_new_object();
    for (int i = 0; i < WBUI_L_COUNT; i++)
        if (c->legacy[i])
            json_object_object_add(l, legacy_names[i], json_object_new_string(c->legacy[i]));
    json_object_object_add(o, "legacy", l);
    json_object_object_add(o, "type", text_or_null(wbui_control_type(c)));
    json_object_object_add(o, "readonly", json_object_new_boolean(wbui_control_readonly(c)));
    json_object_object_add(o, "shown", json_object_new_boolean(wbui_control_shown(c)));
    return o;
}

static bool wanted(const char *name, const char *const *devs, size_t ndevs)
{
    if (ndevs == 0)
        return true;
    for (size_t i = 0; i < ndevs; i++)
        if (strcmp(devs[i], name) == 0)
            return true;
    return false;
}

int wbui_model_dump(const struct wbui_model *m, const char *const *devs, size_t ndevs, FILE *out)
{
    size_t nd;
    struct wbui_device **dv = wbui_model_devices(m, &nd);
    if (!dv)
        return -1;
    json_object *root = json_object_new_object();
    json_object *jdevs = json_object_new_object();
    for (size_t i = 0; i < nd; i++) {
        const struct wbui_device *d = dv[i];
        if (!wanted(d->name, devs, ndevs))
            continue;
        json_object *jd = json_object_new_object();
        add_meta(jd, &d->meta);
        json_object_object_add(jd, "error", text_or_null(d->error));
        json_object *l = json_object_new_object();
        if (d->legacy_name)
            json_object_object_add(l, "name", json_object_new_string(d->legacy_name));
        json_object_object_add(jd, "legacy", l);
        json_object *jc = json_object_new_object();
        size_t nc;
        struct wbui_control **cv = wbui_device_controls(d, &nc);
        for (size_t k = 0; k < nc; k++)
            json_object_object_add(jc, cv[k]->name, dump_control(cv[k]));
        free(cv);
        json_object_object_add(jd, "controls", jc);
        json_object_object_add(jdevs, d->name, jd);
    }
    free(dv);
    json_object_object_add(root, "devices", jdevs);
    json_object *st = json_object_new_object();
    json_object_object_add(st, "messages", json_object_new_int64((int64_t)m->stats.messages));
    json_object_object_add(st, "ignored", json_object_new_int64((int64_t)m->stats.ignored));
    json_object_object_add(st, "dropped", json_object_new_int64((int64_t)m->stats.dropped));
    json_object_object_add(root, "stats", st);
    fputs(json_object_to_json_string_ext(root,
                                         JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE),
          out);
    fputc('\n', out);
    json_object_put(root);
    return 0;
}

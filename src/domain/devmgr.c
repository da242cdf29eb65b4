/*
 * devmgr.c - the device manager (see devmgr.h).
 *
 * Each device keeps its state as a small array of fields in insertion order
 * (name, json-c value, transient flag: struct dev_field, sink.h), not as a
 * json-c object: an object costs a 16-slot hash table (~750 bytes) even for
 * one field, 7 MB with 10 000 devices. The sinks read that array directly
 * (struct sink_device), so a transition allocates nothing but the new value;
 * readers get a new json-c object (devmgr_state_new()). The array lives in
 * devmgr_state.c, the field-by-field checks of JSON messages and the field
 * warnings in devmgr_fields.c; the types in devmgr_int.h.
 *
 * Routing: one topic tree maps each configured state or availability topic
 * to a `route` (device + binding). Topics a sink owns (the Wiren Board
 * mirror's /devices/... topics) never get here: the core gives them to the
 * sinks first (sinks_input).
 *
 * Availability of a device with an `availability` section:
 *
 *     unknown --(online payload / any state msg if timeout_s)--> online
 *     online  --(offline payload)--> offline     [event "offline"]
 *     online  --(no state msg for timeout_s, devmgr_tick)--> offline [event "timeout"]
 *     offline --(online payload / state msg if timeout_s)--> online [event "online"]
 *
 * Every edge is an EV_AVAILABILITY event (the store sink writes a
 * device_connection_logs row and the devices row). Devices without an
 * availability section are always online.
 */
#include "domain/devmgr_int.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/owner.h"
#include "wbmb/payload.h"
#include "wbmb/topic_tree.h"
#include "wbmb/util.h"

static struct dev *find_dev(const struct devmgr *m, const char *id)
{
    long i = cfg_device_index(m->cfg, id);
    return i < 0 ? NULL : &m->devs[i];
}

static bool add_sub(struct devmgr *m, const char *filter)
{
    if (m->n_subs == m->cap_subs) {
        size_t nc = m->cap_subs ? 2 * m->cap_subs : 16;
        const char **ns = realloc(m->subs, nc * sizeof(*ns));
        if (!ns)
            return false;
        m->subs = ns;
        m->cap_subs = nc;
    }
    m->subs[m->n_subs++] = filter;
    return true;
}

/* Routes topic to (d, b); a topic is subscribed once, however many
 * bindings share it (the tree says whether it is new: no scan). */
static bool add_route(struct devmgr *m, const char *topic, enum route_kind kind, struct dev *d,
                      const struct cfg_state_binding *b)
{
    struct route *r = &m->routes[m->n_routes++];
    r->kind = kind;
    r->dev = d;
    r->binding = b;
    bool first = false;
    return ttree_add_ex(m->tree, topic, r, &first) == WB_OK && (!first || add_sub(m, topic));
}

struct devmgr *devmgr_create(const struct config *cfg, const struct sinks *sinks,
                             struct devmgr *previous, char *err, size_t errlen)
{
    OWNER_ASSERT();
    struct devmgr *m = calloc(1, sizeof(*m));
    if (!m)
        goto nomem;
    m->cfg = cfg;
    m->sinks = sinks;
    if (previous)
        m->stats = previous->stats; /* counters stay monotonic across reloads */
    m->n_devs = cfg->n_devices;
    size_t n_routes = 0;
    for (size_t i = 0; i < cfg->n_devices; i++)
        n_routes += cfg->devices[i].n_state + (cfg->devices[i].availability ? 1 : 0);
    m->devs = calloc(m->n_devs ? m->n_devs : 1, sizeof(*m->devs));
    m->routes = calloc(n_routes ? n_routes : 1, sizeof(*m->routes));
    m->tree = ttree_create();
    if (!m->devs || !m->routes || !m->tree)
        goto nomem;

    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct cfg_device *c = &cfg->devices[i];
        struct dev *d = &m->devs[i];
        d->cfg = c;
        d->tracked = c->availability != NULL;
        d->online = !d->tracked;
        struct dev *old = previous ? find_dev(previous, c->id) : NULL;
        if (old) {
            /* SIGHUP: keep the live state; fields that became transient
             * are no longer persisted. */
            if (old->n_f && !(d->f = malloc(old->n_f * sizeof(*d->f))))
                goto nomem;
            d->cap_f = old->n_f;
            for (size_t f = 0; f < old->n_f; f++) {
                const char *n = dm_intern(m, old->f[f].name);
                if (!n)
                    goto nomem;
                d->f[d->n_f++] = dm_field_make(d, n, json_object_get(old->f[f].v));
            }
            d->known = old->known;
            d->online = d->tracked ? old->online : true;
            d->last_msg_ms = old->last_msg_ms;
            d->connected_ms = old->connected_ms;
            d->carried = true;
        }
        for (size_t b = 0; b < c->n_state; b++)
            if (!add_route(m, c->state[b].topic, ROUTE_STATE, d, &c->state[b]))
                goto nomem;
        if (c->availability && c->availability->topic &&
            !add_route(m, c->availability->topic, ROUTE_AVAILABILITY, d, NULL))
            goto nomem;
    }
    return m;
nomem:
    if (err && errlen)
        snprintf(err, errlen, "out of memory building the device manager");
    devmgr_destroy(m);
    return NULL;
}

void devmgr_destroy(struct devmgr *m)
{
    if (!m)
        return;
    OWNER_ASSERT();
    for (size_t i = 0; m->devs && i < m->n_devs; i++)
        dm_fields_free(&m->devs[i]);
    for (size_t i = 0; m->names && i <= m->names_mask; i++)
        free(m->names[i]);
    free(m->names);
    free(m->subs);
    free(m->devs);
    free(m->routes);
    ttree_destroy(m->tree);
    dm_warn_free(m);
    free(m);
}

static void sink_device(const struct devmgr *m, const struct dev *d, struct sink_device *out)
{
    *out = (struct sink_device){.cfg = d->cfg,
                                .index = (uint32_t)(d - m->devs),
                                .online = d->online,
                                .connected_ms = d->connected_ms,
                                .f = d->f,
                                .n_f = d->n_f};
}

static void emit(const struct devmgr *m, const struct dev *d, struct event *ev)
{
    struct sink_device sd;
    if (d) {
        sink_device(m, d, &sd);
        ev->dev = &sd;
    }
    if (!ev->now_ms)
        ev->now_ms = util_mono_ms();
    sinks_emit(m->sinks, ev);
}

bool devmgr_restore_state(struct devmgr *m, const char *device_id, json_object *state)
{
    OWNER_ASSERT();
    struct dev *d = find_dev(m, device_id);
    if (!d || d->carried)
        return false; /* a device no longer configured stays in the store untouched */
    if (!json_object_is_type(state, json_type_object)) {
        log_warn("store: ignoring device:%s, not a JSON object", device_id);
        return false;
    }
    json_object_object_foreach(state, k, val)
    {
        if (!dm_is_transient(d->cfg, k) && dm_field_set(m, d, k, json_object_get(val), NULL) < 0) {
            log_warn("store: device:%s: field '%s' not restored (out of memory or too many "
                     "fields)",
                     device_id, k);
            break;
        }
    }
    return true;
}

void devmgr_announce(struct devmgr *m, const struct devmgr *previous)
{
    OWNER_ASSERT();
    for (size_t i = 0; previous && i < previous->n_devs; i++) {
        const struct dev *old = &previous->devs[i];
        if (find_dev(m, old->cfg->id))
            continue;
        struct event ev = {.kind = EV_DEVICE_REMOVED};
        emit(previous, old, &ev);
    }
    for (size_t i = 0; i < m->n_devs; i++) {
        struct dev *d = &m->devs[i];
        const struct dev *old = d->carried && previous ? find_dev(previous, d->cfg->id) : NULL;
        struct event ev = {.kind = old ? EV_DEVICE_CHANGED : EV_DEVICE_ADDED};
        if (old) {
            ev.u.changed.old_cfg = old->cfg;
            ev.u.changed.old_index = (uint32_t)(old - previous->devs);
        }
        emit(m, d, &ev);
    }
    struct event done = {.kind = EV_DEVICES_DONE};
    done.u.done.cfg = m->cfg;
    done.u.done.reload = previous != NULL;
    emit(m, NULL, &done);
}

static size_t view_count(const void *ud)
{
    return ((const struct devmgr *)ud)->n_devs;
}

static bool view_device(const void *ud, size_t i, struct sink_device *out)
{
    const struct devmgr *m = ud;
    if (i >= m->n_devs)
        return false;
    sink_device(m, &m->devs[i], out);
    return true;
}

void devmgr_view(const struct devmgr *m, struct sink_view *out)
{
    OWNER_ASSERT();
    *out = (struct sink_view){.count = view_count, .device = view_device, .ud = m};
}

const char *const *devmgr_subscriptions(struct devmgr *m, size_t *n)
{
    OWNER_ASSERT();
    *n = m->n_subs;
    return m->subs;
}

/* One transition: the changed fields (old values owned by c) go to the
 * sinks; the old values are released after. */
static void emit_fields(struct devmgr *m, struct dev *d, struct ev_change *c, size_t n,
                        bool persisted, int64_t now_ms)
{
    struct event ev = {.kind = EV_FIELDS, .now_ms = now_ms};
    ev.u.fields.c = c;
    ev.u.fields.n = n;
    ev.u.fields.persisted = persisted;
    emit(m, d, &ev);
    for (size_t i = 0; i < n; i++)
        json_object_put(c[i].old_v);
}

/* The hot path of plain payloads: one field, no intermediate objects.
 * Takes ownership of v. */
static void apply_one(struct devmgr *m, struct dev *d, const char *field, json_object *v,
                      int64_t now_ms)
{
    int i = dm_field_find(d, field);
    if (i >= 0 && json_object_equal(d->f[i].v, v)) {
        m->stats.unchanged++;
        json_object_put(v);
        return;
    }
    struct ev_change c = {.new_field = i < 0};
    if ((i = dm_field_set(m, d, field, v, &c.old_v)) < 0) {
        m->stats.rejected++;
        log_warn("device %s: field '%s' not applied: out of memory or %d fields", d->cfg->id, field,
                 DEV_MAX_FIELDS);
        return;
    }
    m->stats.applied++;
    c.index = (uint32_t)i;
    emit_fields(m, d, &c, 1, !d->f[i].transient, now_ms);
}

/* Merges changes into d; one transition when anything changed. The changed
 * fields are remembered by index with their old values, no new JSON. */
static bool apply_changes(struct devmgr *m, struct dev *d, json_object *changes, int64_t now_ms)
{
    struct ev_change local[16], *chg = local, *big = NULL;
    size_t n = 0, cap = sizeof(local) / sizeof(local[0]);
    bool persist = false;
    json_object_object_foreach(changes, k, v)
    {
        int i = dm_field_find(d, k);
        if (i >= 0 && json_object_equal(d->f[i].v, v))
            continue;
        if (n == cap) {
            struct ev_change *grown = realloc(big, 2 * cap * sizeof(*chg));
            if (!grown)
                break; /* out of memory: the rest of the message is not applied */
            if (!big)
                memcpy(grown, local, sizeof(local));
            chg = big = grown;
            cap *= 2;
        }
        bool is_new = i < 0;
        json_object *old = NULL;
        if ((i = dm_field_set(m, d, k, json_object_get(v), &old)) < 0) {
            m->stats.fields_rejected++;
            dm_warn_field(m, d, k,
                          "rejected: the device has " DEV_MAX_FIELDS_TEXT
                          " fields already (or out of memory)");
            continue;
        }
        chg[n++] = (struct ev_change){.index = (uint32_t)i, .old_v = old, .new_field = is_new};
        if (!d->f[i].transient)
            persist = true;
    }
    if (!n) {
        m->stats.unchanged++;
        free(big);
        return false;
    }
    m->stats.applied++;
    emit_fields(m, d, chg, n, persist, now_ms);
    free(big);
    return true;
}

static void set_online(struct devmgr *m, struct dev *d, bool online, const char *event)
{
    if (d->known && d->online == online)
        return;
    d->known = true;
    d->online = online;
    char ts[UTIL_TS_LEN];
    int64_t now = util_wall_ms();
    util_iso8601_from_ms(now, ts);
    if (online)
        d->connected_ms = now;
    log_info("device %s: %s", d->cfg->id, event);
    struct event ev = {.kind = EV_AVAILABILITY};
    ev.u.availability.online = online;
    ev.u.availability.why = event;
    ev.u.availability.ts = ts;
    emit(m, d, &ev);
}

/* Sanitised excerpt of a payload for log lines: printable ASCII only. */
static void excerpt(const char *p, size_t len, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 4 < cap; i++)
        out[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    if (len > 0 && j + 4 >= cap) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

static void reject(struct devmgr *m, const struct dev *d, const char *topic, const char *why)
{
    m->stats.rejected++;
    log_warn("device %s: rejected message on '%s': %s", d->cfg->id, topic, why);
}

static void handle_state(struct devmgr *m, const struct route *r, const char *topic,
                         const char *payload, size_t len, int64_t now_ms)
{
    struct dev *d = r->dev;
    const struct cfg_state_binding *b = r->binding;
    char err[256];
    json_object *changes = NULL, *v = NULL;

    size_t bad = 0;
    if (b->type == CFG_T_JSON) {
        json_object *msg = NULL;
        if (payload_parse_state(payload, len, &msg, err, sizeof(err)) != WB_OK) {
            reject(m, d, topic, err);
            return;
        }
        if (!(changes = json_object_new_object())) {
            json_object_put(msg);
            return;
        }
        bad = dm_fields_from_message(m, d, b, msg, changes);
        json_object_put(msg);
    } else {
        /* The binding's map and scale apply (payload_spec.c). */
        if (payload_parse_binding(b, payload, len, &v, err, sizeof(err)) != WB_OK) {
            reject(m, d, topic, err);
            return;
        }
        /* b->field was validated by the config loader. */
        d->last_msg_ms = now_ms;
        if (d->tracked && d->cfg->availability->timeout_s > 0)
            set_online(m, d, true, "online");
        apply_one(m, d, b->field, v, now_ms);
        return;
    }
    /* Field by field (devmgr_fields.c): the bad ones are out already, each
     * counted and warned about. A message with nothing but bad fields is a
     * rejected message; one with good fields applies them. */
    if (bad && json_object_object_length(changes) == 0) {
        m->stats.rejected++;
        log_debug("device %s: message on '%s' rejected: every field of it was", d->cfg->id, topic);
        json_object_put(changes);
        return;
    }
    d->last_msg_ms = now_ms;
    if (d->tracked && d->cfg->availability->timeout_s > 0)
        set_online(m, d, true, "online");
    apply_changes(m, d, changes, now_ms);
    json_object_put(changes);
}

static void handle_availability(struct devmgr *m, const struct route *r, const char *topic,
                                const char *payload, size_t len)
{
    const struct cfg_availability *a = r->dev->cfg->availability;
    /* Trimmed text, or a JSON object's json_field (Zigbee2MQTT 2.x). */
    int says = payload_availability(a, payload, len);
    if (says == 1) {
        set_online(m, r->dev, true, "online");
    } else if (says == 0) {
        set_online(m, r->dev, false, "offline");
    } else {
        char ex[64], why[160];
        excerpt(payload, len, ex, sizeof(ex));
        snprintf(why, sizeof(why), "availability payload '%s' is neither '%s' nor '%s'", ex,
                 a->online, a->offline);
        reject(m, r->dev, topic, why);
    }
}

struct match_ctx {
    const struct route *found[MAX_ROUTES_PER_MSG];
    size_t n;
};

static void collect(void *value, void *ud)
{
    struct match_ctx *c = ud;
    if (c->n < MAX_ROUTES_PER_MSG)
        c->found[c->n++] = value;
}

void devmgr_handle_message(struct devmgr *m, const char *topic, const char *payload, size_t len,
                           int64_t now_ms)
{
    OWNER_ASSERT();
    m->stats.received++;
    struct match_ctx c;
    c.n = 0;
    ttree_match(m->tree, topic, collect, &c);
    if (c.n == 0) {
        m->stats.unknown++;
        log_debug("no device for topic '%s'", topic);
        return;
    }
    for (size_t i = 0; i < c.n; i++) {
        if (c.found[i]->kind == ROUTE_STATE)
            handle_state(m, c.found[i], topic, payload, len, now_ms);
        else
            handle_availability(m, c.found[i], topic, payload, len);
    }
}

wb_status devmgr_apply(struct devmgr *m, const char *device_id, json_object *changes)
{
    OWNER_ASSERT();
    struct dev *d = find_dev(m, device_id);
    if (!d)
        return WB_ERR_NOT_FOUND;
    apply_changes(m, d, changes, util_mono_ms());
    return WB_OK;
}

int64_t devmgr_tick(struct devmgr *m, int64_t now_ms)
{
    OWNER_ASSERT();
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < m->n_devs; i++) {
        struct dev *d = &m->devs[i];
        if (!d->tracked || d->cfg->availability->timeout_s == 0)
            continue;
        if (d->last_msg_ms == 0)
            d->last_msg_ms = now_ms; /* the clock starts at start-up */
        int64_t due = d->last_msg_ms + (int64_t)d->cfg->availability->timeout_s * 1000;
        if (d->online && now_ms >= due)
            set_online(m, d, false, "timeout");
        else if (d->online && due < next)
            next = due;
    }
    return next;
}

size_t devmgr_count(const struct devmgr *m)
{
    OWNER_ASSERT();
    return m->n_devs;
}

const struct cfg_device *devmgr_device_cfg(const struct devmgr *m, size_t i)
{
    OWNER_ASSERT();
    return i < m->n_devs ? m->devs[i].cfg : NULL;
}

json_object *devmgr_device_state_new(const struct devmgr *m, size_t i)
{
    OWNER_ASSERT();
    return i < m->n_devs ? dm_state_object(&m->devs[i]) : NULL;
}

json_object *devmgr_state_new(const struct devmgr *m, const char *device_id)
{
    OWNER_ASSERT();
    struct dev *d = find_dev(m, device_id);
    return d ? dm_state_object(d) : NULL;
}

bool devmgr_has_device(const struct devmgr *m, const char *device_id)
{
    OWNER_ASSERT();
    return find_dev(m, device_id) != NULL;
}

long devmgr_find(const struct devmgr *m, const char *device_id)
{
    OWNER_ASSERT();
    return cfg_device_index(m->cfg, device_id);
}

bool devmgr_device_online(const struct devmgr *m, size_t i)
{
    OWNER_ASSERT();
    return i < m->n_devs && m->devs[i].online;
}

void devmgr_get_stats(const struct devmgr *m, struct devmgr_stats *out)
{
    OWNER_ASSERT();
    *out = m->stats;
}

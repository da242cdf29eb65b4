/*
 * devmgr.c - the device manager (see devmgr.h).
 *
 * Each device keeps its state as a small array of fields in insertion order
 * (name, json-c value, transient flag), not as a json-c object: an object
 * costs a 16-slot hash table (~750 bytes) even for one field, 7 MB with
 * 10 000 devices. What the store holds under "device:<id>" (the fields
 * without the transient ones) is written as JSON text straight from the
 * array into a reusable buffer, so a transition allocates nothing but the
 * new value. Readers get a new json-c object (devmgr_state_new()). That
 * part lives in devmgr_state.c, the Wiren Board mirror (throttle,
 * backpressure, republish, nulls, control types) in devmgr_mirror.c, the
 * field-by-field checks of JSON messages and the field warnings in
 * devmgr_fields.c; the types in devmgr_int.h.
 *
 * Routing: one topic tree maps each configured state or availability topic
 * to a `route` (device + binding). Our own Wiren Board publications
 * (/devices/<mirrored id>/...) are recognised by a hash lookup of the id
 * level and never treated as input; only their /on command topics are
 * handed to the observer.
 *
 * Availability of a device with an `availability` section:
 *
 *     unknown --(online payload / any state msg if timeout_s)--> online
 *     online  --(offline payload)--> offline     [event "offline"]
 *     online  --(no state msg for timeout_s, devmgr_tick)--> offline [event "timeout"]
 *     offline --(online payload / state msg if timeout_s)--> online [event "online"]
 *
 * Every edge writes a device_connection_logs row and the devices row.
 * Devices without an availability section are always online.
 */
#include "domain/devmgr_int.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/payload.h"
#include "wbmb/topic_tree.h"
#include "wbmb/util.h"

static const char *dev_key(const void *m, uint32_t pos)
{
    return ((const struct devmgr *)m)->devs[pos].cfg->id;
}

/* The id -> device index, built once. false when out of memory. */
static bool index_build(struct devmgr *m)
{
    if (!strix_reserve(&m->ix, m->n_devs, 0, dev_key, m))
        return false;
    for (size_t i = 0; i < m->n_devs; i++)
        strix_put(&m->ix, m->devs[i].cfg->id, (uint32_t)i);
    return true;
}

static struct dev *find_dev(const struct devmgr *m, const char *id)
{
    long i = strix_find(&m->ix, id, dev_key, m);
    return i < 0 ? NULL : &m->devs[i];
}

/* Ids whose /devices/<id>/ topics are ours: the bridge and mirrored devices. */
static bool is_own_id(const struct devmgr *m, const char *id)
{
    if (strcmp(id, m->cfg->bridge_device_id) == 0)
        return true;
    const struct dev *d = find_dev(m, id);
    return d && d->cfg->wb_mirror;
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

/* A generated filter: owned by the manager. */
static bool add_made_sub(struct devmgr *m, const char *filter)
{
    if (m->n_made == m->cap_made) {
        size_t nc = m->cap_made ? 2 * m->cap_made : 8;
        char **nm = realloc(m->made, nc * sizeof(*nm));
        if (!nm)
            return false;
        m->made = nm;
        m->cap_made = nc;
    }
    if (!(m->made[m->n_made] = strdup(filter)))
        return false;
    return add_sub(m, m->made[m->n_made++]);
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

struct devmgr *devmgr_create(const struct config *cfg, struct state_store *store,
                             const struct mirror_publisher *pub, const struct devmgr_hooks *hooks,
                             struct devmgr *previous, char *err, size_t errlen)
{
    struct devmgr *m = calloc(1, sizeof(*m));
    if (!m)
        goto nomem;
    m->cfg = cfg;
    m->store = store;
    if (previous)
        m->stats = previous->stats; /* counters stay monotonic across reloads */
    if (pub)
        m->pub = *pub;
    if (hooks)
        m->hooks = *hooks;
    m->n_devs = cfg->n_devices;
    size_t n_routes = 0;
    for (size_t i = 0; i < cfg->n_devices; i++)
        n_routes += cfg->devices[i].n_state + (cfg->devices[i].availability ? 1 : 0);
    m->devs = calloc(m->n_devs ? m->n_devs : 1, sizeof(*m->devs));
    m->routes = calloc(n_routes ? n_routes : 1, sizeof(*m->routes));
    m->dirty = calloc(m->n_devs ? m->n_devs : 1, sizeof(*m->dirty));
    m->next_scan_ms = INT64_MAX;
    m->tree = ttree_create();
    if (!m->devs || !m->routes || !m->dirty || !m->tree || cfg->n_devices >= STRIX_EMPTY)
        goto nomem;
    for (size_t i = 0; i < cfg->n_devices; i++)
        m->devs[i].cfg = &cfg->devices[i];
    if (!index_build(m))
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
                d->f[d->n_f] = dm_field_make(d, n, json_object_get(old->f[f].v));
                d->f[d->n_f++].err_shown = old->f[f].err_shown; /* cleared when a value comes */
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
    /* Commands: one /on topic per action of a mirrored device (not a
     * wildcard, so other controls' /on topics are never taken as input),
     * and the bridge's scenario control. */
    char filter[MIRROR_TOPIC_MAX];
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct cfg_device *c = &cfg->devices[i];
        for (size_t k = 0; c->wb_mirror && k < c->n_actions; k++) {
            if (!mirror_field_name_ok(c->actions[k].name))
                continue;
            snprintf(filter, sizeof(filter), "/devices/%s/controls/%s/on", c->id,
                     c->actions[k].name);
            if (!add_made_sub(m, filter))
                goto nomem;
        }
    }
    snprintf(filter, sizeof(filter), "/devices/%s/controls/scenario/on", cfg->bridge_device_id);
    if (!add_made_sub(m, filter))
        goto nomem;
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
    for (size_t i = 0; m->devs && i < m->n_devs; i++) {
        dm_fields_free(&m->devs[i]);
        if (m->devs[i].n_pub > PUB_INLINE)
            free(m->devs[i].pub.heap);
    }
    for (size_t i = 0; m->names && i <= m->names_mask; i++)
        free(m->names[i]);
    free(m->names);
    free(m->json);
    for (size_t i = 0; i < ECHO_SLOTS; i++) {
        free(m->echo[i].topic);
        free(m->echo[i].payload);
    }
    for (size_t i = 0; i < m->n_made; i++)
        free(m->made[i]);
    free(m->made);
    free(m->subs);
    free(m->devs);
    free(m->routes);
    free(m->dirty);
    ttree_destroy(m->tree);
    strix_free(&m->ix);
    dm_warn_free(m);
    free(m);
}

static void write_device_row(struct devmgr *m, struct dev *d, const char *last_seen)
{
    char connected_at[UTIL_TS_LEN];
    if (d->connected_ms)
        util_iso8601_from_ms(d->connected_ms, connected_at);
    struct store_device_row row = {
        .device_id = d->cfg->id,
        .device_type = d->cfg->type,
        .name = d->cfg->name,
        .is_online = d->online,
        .last_seen = last_seen,
        .connected_at = d->connected_ms ? connected_at : NULL,
    };
    if (store_device_upsert(m->store, &row) != WB_OK)
        m->stats.store_errors++;
}

struct restore_ctx {
    struct devmgr *m;
    size_t restored;
};

static int restore_one(const char *key, json_object *v, void *ud)
{
    struct restore_ctx *rc = ud;
    struct dev *d = find_dev(rc->m, key + strlen("device:"));
    if (!d || d->carried)
        return 0; /* a device no longer configured stays in the store untouched */
    if (!json_object_is_type(v, json_type_object)) {
        log_warn("store: ignoring %s, not a JSON object", key);
        return 0;
    }
    json_object_object_foreach(v, k, val)
    {
        if (!dm_is_transient(d->cfg, k) && dm_field_set(rc->m, d, k, json_object_get(val)) < 0) {
            log_warn("store: %s: field '%s' not restored (out of memory or too many fields)", key,
                     k);
            break;
        }
    }
    rc->restored++;
    return 0;
}

size_t devmgr_restore(struct devmgr *m)
{
    /* One ordered range scan of "device:*" rather than a lookup per device:
     * one read transaction for 10 000 devices instead of 10 000. */
    struct restore_ctx rc = {m, 0};
    if (store_list(m->store, "device:", restore_one, &rc) != WB_OK)
        log_warn("store: could not list the stored devices; starting with empty states");
    /* The devices rows go out in chunks: all 10 000 queued at once held
     * ~1.2 MB of copies at the start-up memory peak (massif). A flush that
     * fails (disk) leaves them pending; the store reports it. */
    size_t written = 0;
    for (size_t i = 0; i < m->n_devs; i++) {
        if (m->devs[i].carried)
            continue;
        write_device_row(m, &m->devs[i], NULL);
        if (++written % RESTORE_ROWS_PER_FLUSH == 0)
            (void)store_flush(m->store);
    }
    return rc.restored;
}

const char *const *devmgr_subscriptions(struct devmgr *m, size_t *n)
{
    *n = m->n_subs;
    return m->subs;
}

static void persist_device(struct devmgr *m, struct dev *d)
{
    snprintf(m->key, sizeof(m->key), "device:%s", d->cfg->id);
    const char *json = dm_persisted_json(m, d);
    if (!json || store_transition(m->store, m->key, d->cfg->id, json,
                                  m->cfg->persistence.history_enabled) != WB_OK)
        m->stats.store_errors++;
}

/* Whether an observer wants the changed set of a transition (SSE clients):
 * without one no JSON is built for it on the hot path. */
static bool wants_changes(const struct devmgr *m)
{
    return m->hooks.on_state && (!m->hooks.wants_state || m->hooks.wants_state(m->hooks.ud));
}

static void notify(struct devmgr *m, struct dev *d, const int *ix, size_t n)
{
    json_object *changed = json_object_new_object();
    for (size_t i = 0; changed && i < n; i++)
        json_object_object_add(changed, d->f[ix[i]].name, json_object_get(d->f[ix[i]].v));
    json_object *state = dm_state_object(d);
    if (changed && state)
        m->hooks.on_state(m->hooks.ud, d->cfg->id, changed, state);
    json_object_put(changed);
    json_object_put(state);
}

/* The hot path of plain payloads: one field, no intermediate objects unless
 * an observer wants the changed set. Takes ownership of v. */
static void apply_one(struct devmgr *m, struct dev *d, const char *field, json_object *v)
{
    int i = dm_field_find(d, field);
    if (i >= 0 && json_object_equal(d->f[i].v, v)) {
        m->stats.unchanged++;
        json_object_put(v);
        return;
    }
    if ((i = dm_field_set(m, d, field, v)) < 0) {
        m->stats.rejected++;
        log_warn("device %s: field '%s' not applied: out of memory or %d fields", d->cfg->id, field,
                 DEV_MAX_FIELDS);
        return;
    }
    m->stats.applied++;
    if (!d->f[i].transient)
        persist_device(m, d);
    dm_publish_field(m, d, (size_t)i);
    if (wants_changes(m))
        notify(m, d, &i, 1);
}

/* Merges changes into d; one transition when anything changed. The changed
 * fields are remembered by index, not in a new JSON object, unless an
 * observer wants one. */
static bool apply_changes(struct devmgr *m, struct dev *d, json_object *changes)
{
    int local[16], *chg = local, *big = NULL;
    size_t n = 0, cap = sizeof(local) / sizeof(local[0]);
    bool persist = false;
    json_object_object_foreach(changes, k, v)
    {
        int i = dm_field_find(d, k);
        if (i >= 0 && json_object_equal(d->f[i].v, v))
            continue;
        if (n == cap) {
            int *grown = realloc(big, 2 * cap * sizeof(*chg));
            if (!grown)
                break; /* out of memory: the rest of the message is not applied */
            if (!big)
                memcpy(grown, local, sizeof(local));
            chg = big = grown;
            cap *= 2;
        }
        if ((i = dm_field_set(m, d, k, json_object_get(v))) < 0) {
            m->stats.fields_rejected++;
            dm_warn_field(m, d, k,
                          "rejected: the device has " DEV_MAX_FIELDS_TEXT
                          " fields already (or out of memory)");
            continue;
        }
        chg[n++] = i;
        if (!d->f[i].transient)
            persist = true;
    }
    if (!n) {
        m->stats.unchanged++;
        free(big);
        return false;
    }
    m->stats.applied++;
    if (persist)
        persist_device(m, d);
    for (size_t i = 0; i < n; i++)
        dm_publish_field(m, d, (size_t)chg[i]);
    if (wants_changes(m))
        notify(m, d, chg, n);
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
    if (store_connection_append(m->store, d->cfg->id, event, ts) != WB_OK)
        m->stats.store_errors++;
    write_device_row(m, d, ts);
    if (m->hooks.on_connection)
        m->hooks.on_connection(m->hooks.ud, d->cfg->id, online, event);
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
        if (payload_parse_scalar(b->type, payload, len, &v, err, sizeof(err)) != WB_OK) {
            reject(m, d, topic, err);
            return;
        }
        /* b->field was validated by the config loader. */
        d->last_msg_ms = now_ms;
        if (d->tracked && d->cfg->availability->timeout_s > 0)
            set_online(m, d, true, "online");
        apply_one(m, d, b->field, v);
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
    apply_changes(m, d, changes);
    json_object_put(changes);
}

static void handle_availability(struct devmgr *m, const struct route *r, const char *topic,
                                const char *payload, size_t len)
{
    const struct cfg_availability *a = r->dev->cfg->availability;
    if (len == strlen(a->online) && memcmp(payload, a->online, len) == 0) {
        set_online(m, r->dev, true, "online");
    } else if (len == strlen(a->offline) && memcmp(payload, a->offline, len) == 0) {
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

static bool is_own_command_topic(const struct devmgr *m, const char *topic)
{
    if (strncmp(topic, "/devices/", 9) != 0)
        return false;
    const char *slash = strchr(topic + 9, '/');
    size_t n = slash ? (size_t)(slash - topic - 9) : 0;
    char id[128];
    if (!slash || n >= sizeof(id) || strncmp(slash, "/controls/", 10) != 0)
        return false;
    memcpy(id, topic + 9, n);
    id[n] = '\0';
    size_t tl = strlen(topic);
    return tl > 3 && strcmp(topic + tl - 3, "/on") == 0 && is_own_id(m, id);
}

void devmgr_expect_echo(struct devmgr *m, const char *topic, const char *payload, size_t len)
{
    if (!is_own_command_topic(m, topic))
        return;
    size_t i = m->echo_next++ % ECHO_SLOTS;
    free(m->echo[i].topic);
    free(m->echo[i].payload);
    m->echo[i].topic = strdup(topic);
    m->echo[i].payload = strndup(payload, len);
    m->echo[i].until_ms = util_mono_ms() + ECHO_TTL_MS;
}

static bool take_echo(struct devmgr *m, const char *topic, const char *payload, size_t len)
{
    int64_t now = util_mono_ms();
    for (size_t i = 0; i < ECHO_SLOTS; i++) {
        if (!m->echo[i].topic || m->echo[i].until_ms < now ||
            strcmp(m->echo[i].topic, topic) != 0 || strlen(m->echo[i].payload) != len ||
            memcmp(m->echo[i].payload, payload, len) != 0)
            continue;
        free(m->echo[i].topic);
        free(m->echo[i].payload);
        m->echo[i].topic = m->echo[i].payload = NULL;
        return true;
    }
    return false;
}

/* Our own topics: /devices/<id>/... with <id> mirrored by us. Returns true
 * when the message was ours (command topics are passed to the observer). */
static bool handle_own(struct devmgr *m, const char *topic, const char *payload, size_t len,
                       bool retained)
{
    if (strncmp(topic, "/devices/", 9) != 0)
        return false;
    const char *id = topic + 9;
    const char *slash = strchr(id, '/');
    if (!slash || (size_t)(slash - id) >= 128)
        return false;
    char idbuf[128];
    memcpy(idbuf, id, (size_t)(slash - id));
    idbuf[slash - id] = '\0';
    if (!is_own_id(m, idbuf))
        return false;
    const char *rest = slash + 1;
    if (strncmp(rest, "controls/", 9) == 0) {
        const char *control = rest + 9;
        const char *on = strchr(control, '/');
        if (on && strcmp(on, "/on") == 0 && (size_t)(on - control) < 128) {
            char cbuf[128];
            memcpy(cbuf, control, (size_t)(on - control));
            cbuf[on - control] = '\0';
            if (take_echo(m, topic, payload, len)) {
                m->stats.own++;
                return true;
            }
            if (m->hooks.on_control_command)
                m->hooks.on_control_command(m->hooks.ud, idbuf, cbuf, payload, len, retained);
            return true;
        }
    }
    m->stats.own++;
    return true;
}

void devmgr_handle_message(struct devmgr *m, const char *topic, const char *payload, size_t len,
                           bool retained, int64_t now_ms)
{
    m->stats.received++;
    if (handle_own(m, topic, payload, len, retained))
        return;
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
    struct dev *d = find_dev(m, device_id);
    if (!d)
        return WB_ERR_NOT_FOUND;
    apply_changes(m, d, changes);
    return WB_OK;
}

int64_t devmgr_tick(struct devmgr *m, int64_t now_ms)
{
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
    return m->n_devs;
}

const struct cfg_device *devmgr_device_cfg(const struct devmgr *m, size_t i)
{
    return i < m->n_devs ? m->devs[i].cfg : NULL;
}

json_object *devmgr_device_state_new(const struct devmgr *m, size_t i)
{
    return i < m->n_devs ? dm_state_object(&m->devs[i]) : NULL;
}

json_object *devmgr_state_new(const struct devmgr *m, const char *device_id)
{
    struct dev *d = find_dev(m, device_id);
    return d ? dm_state_object(d) : NULL;
}

bool devmgr_has_device(const struct devmgr *m, const char *device_id)
{
    return find_dev(m, device_id) != NULL;
}

bool devmgr_device_online(const struct devmgr *m, size_t i)
{
    return i < m->n_devs && m->devs[i].online;
}

void devmgr_get_stats(const struct devmgr *m, struct devmgr_stats *out)
{
    *out = m->stats;
}

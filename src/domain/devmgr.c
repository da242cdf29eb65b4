/*
 * devmgr.c - the device manager (see devmgr.h).
 *
 * Each device keeps its state as a small array of fields in insertion order
 * (name, json-c value, transient flag), not as a json-c object: an object
 * costs a 16-slot hash table (~750 bytes) even for one field, 7 MB with
 * 10 000 devices. What the store holds under "device:<id>" (the fields
 * without the transient ones) is written as JSON text straight from the
 * array into a reusable buffer, so a transition allocates nothing but the
 * new value. Readers get a new json-c object (devmgr_state_new()).
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
#include "wbmb/devmgr.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/payload.h"
#include "wbmb/topic_tree.h"
#include "wbmb/util.h"

#define MAX_ROUTES_PER_MSG 64
#define ECHO_SLOTS 32
#define MIRROR_THROTTLED 64 /* controls per device under the interval; later ones: every change */
#define PUB_INLINE 2        /* pub_ms entries kept in struct dev, no allocation */
#define ECHO_TTL_MS 10000
/* With the sender's queue above MIRROR_BACKLOG_MAX, throttled values are
 * held and the queue looked at again this much later. */
#define MIRROR_BUSY_RETRY_MS 10
/* A flush checks the queue again after this many publications. */
#define MIRROR_FLUSH_CHECK 64

enum route_kind { ROUTE_STATE, ROUTE_AVAILABILITY };

struct dev;

struct route {
    enum route_kind kind;
    struct dev *dev;
    const struct cfg_state_binding *binding; /* ROUTE_STATE */
};

/* One state field. Fields are never removed, so an index stays valid. */
struct field {
    const char *name; /* interned in the manager's name table */
    json_object *v;   /* owned reference, never NULL */
    bool transient;   /* never persisted (cfg transient list) */
};

struct dev {
    const struct cfg_device *cfg;
    struct field *f; /* in insertion order */
    /* bridge.mirror_min_interval_ms, per control (field in insertion order,
     * the first MIRROR_THROTTLED of them): when its value was last published
     * (monotonic ms, wrapping 32 bits, compared as a signed difference; 0 =
     * never) and whether a newer value waits for the interval (held bit i). */
    union {
        uint32_t *heap;                /* n_pub > PUB_INLINE */
        uint32_t in_place[PUB_INLINE]; /* most devices: one or two controls */
    } pub;
    uint64_t held;
    int64_t last_msg_ms;
    int64_t connected_ms; /* wall clock of the last online edge; 0 = never */
    int next_order;
    uint16_t n_f, cap_f;
    /* Control metas published since the last devmgr_publish_all(): those of
     * the first meta_count fields, so no per-device set is needed. */
    uint16_t meta_count;
    uint16_t n_pub;
    bool mirror_dirty : 1; /* in devmgr.dirty */
    bool tracked : 1;      /* has an availability section */
    bool known : 1;        /* availability seen at least once */
    bool online : 1;
    bool carried : 1; /* state carried over from a previous manager */
};

struct devmgr {
    const struct config *cfg;
    struct state_store *store;
    struct mirror_publisher pub;
    struct devmgr_hooks hooks;
    struct dev *devs;
    size_t n_devs;
    struct route *routes;
    size_t n_routes;
    struct ttree *tree;
    /* id -> device index: open addressing over the config's own id strings
     * (no copies; a json-c table cost ~250 bytes per device). */
    uint32_t *ix;
    size_t ix_mask;
    /* Subscriptions: the config's own topic strings (the config outlives
     * the manager) and, owned in `made`, the generated /on filters. */
    const char **subs;
    size_t n_subs, cap_subs;
    char **made;
    size_t n_made, cap_made;
    struct devmgr_stats stats;
    uint32_t *dirty; /* indices of devices with mirror_dirty set */
    size_t n_dirty;
    int64_t next_scan_ms; /* devmgr_flush_mirror does nothing before this */
    char key[256];        /* "device:<id>" scratch */
    char *json;           /* persisted-state text scratch (grows, reused) */
    /* Field names, each stored once for all devices ("value", "power",
     * ...): open addressing, at most half full, owned. Only names of fields
     * that exist are added, so the table is bounded like the states. */
    char **names;
    size_t names_mask, n_names;
    size_t json_cap;
    /* Our own command publications that will come back to us as input
     * (an action whose topic is one of our /on topics): ignored once. */
    struct {
        char *topic;
        char *payload;
        int64_t until_ms;
    } echo[ECHO_SLOTS];
    size_t echo_next;
};

static bool is_transient(const struct cfg_device *d, const char *field)
{
    for (size_t i = 0; i < d->n_transient; i++)
        if (strcmp(d->transient[i], field) == 0)
            return true;
    return false;
}

/* Fields a device may hold: a JSON payload cannot grow a state without
 * bound (the rest of such a message is refused). */
#define DEV_MAX_FIELDS 1024

static int field_find(const struct dev *d, const char *name)
{
    for (int i = 0; i < d->n_f; i++)
        if (strcmp(d->f[i].name, name) == 0)
            return i;
    return -1;
}

/* The manager's copy of name, added when new; NULL when out of memory. */
static const char *intern(struct devmgr *m, const char *name)
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

/* Sets name to v (taking the reference) in place or as a new last field.
 * Returns the field's index, or -1 (v released) when out of memory or full. */
static int field_set(struct devmgr *m, struct dev *d, const char *name, json_object *v)
{
    int i = field_find(d, name);
    if (i >= 0) {
        json_object_put(d->f[i].v);
        d->f[i].v = v;
        return i;
    }
    if (d->n_f == d->cap_f) {
        size_t nc = d->cap_f ? 2u * d->cap_f : 2u;
        struct field *g = d->n_f < DEV_MAX_FIELDS ? realloc(d->f, nc * sizeof(*g)) : NULL;
        if (!g) {
            json_object_put(v);
            return -1;
        }
        d->f = g;
        d->cap_f = (uint16_t)nc;
    }
    const char *n = intern(m, name);
    if (!n) {
        json_object_put(v);
        return -1;
    }
    d->f[d->n_f] = (struct field){n, v, is_transient(d->cfg, name)};
    return d->n_f++;
}

static void fields_free(struct dev *d)
{
    for (size_t i = 0; i < d->n_f; i++)
        json_object_put(d->f[i].v);
    free(d->f);
    d->f = NULL;
    d->n_f = d->cap_f = 0;
}

/* The state as a new json-c object; values are shared references. */
static json_object *state_object(const struct dev *d)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; o && i < d->n_f; i++)
        json_object_object_add(o, d->f[i].name, json_object_get(d->f[i].v));
    return o;
}

/* ---- persisted state as JSON text ---------------------------------------- */

struct jbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void jb_put(struct jbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + len + 1)
            nc *= 2;
        char *g = realloc(b->p, nc);
        if (!g) {
            b->oom = true;
            return;
        }
        b->p = g;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

/* A JSON string as json-c writes it (JSON_C_TO_STRING_PLAIN): the same
 * escapes, '/' included, so stored text does not depend on the path. */
static void jb_string(struct jbuf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    jb_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '\b':
            esc = "\\b";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '/':
            esc = "\\/";
            break;
        default:
            if (c < ' ') {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 0xf];
                u[6] = '\0';
                esc = u;
            }
        }
        if (!esc)
            continue;
        jb_put(b, s + start, i - start);
        jb_put(b, esc, strlen(esc));
        start = i + 1;
    }
    jb_put(b, s + start, len - start);
    jb_put(b, "\"", 1);
}

static void jb_value(struct jbuf *b, json_object *v)
{
    char num[24];
    switch (json_object_get_type(v)) {
    case json_type_int: {
        int n = snprintf(num, sizeof(num), "%" PRId64, json_object_get_int64(v));
        jb_put(b, num, (size_t)n);
        break;
    }
    case json_type_boolean:
        if (json_object_get_boolean(v))
            jb_put(b, "true", 4);
        else
            jb_put(b, "false", 5);
        break;
    case json_type_string:
        jb_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_null:
        jb_put(b, "null", 4);
        break;
    default: { /* double (json-c keeps the text it was parsed from), object, array */
        size_t len = 0;
        const char *t = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
        jb_put(b, t, len);
    }
    }
}

/* The persisted state of d as JSON text in m's scratch buffer (valid until
 * the next call); NULL when out of memory. */
static const char *persisted_json(struct devmgr *m, const struct dev *d)
{
    struct jbuf b = {m->json, 0, m->json_cap, false};
    bool first = true;
    jb_put(&b, "{", 1);
    for (size_t i = 0; i < d->n_f; i++) {
        if (d->f[i].transient)
            continue;
        if (!first)
            jb_put(&b, ",", 1);
        first = false;
        jb_string(&b, d->f[i].name, strlen(d->f[i].name));
        jb_put(&b, ":", 1);
        jb_value(&b, d->f[i].v);
    }
    jb_put(&b, "}", 1);
    m->json = b.p;
    m->json_cap = b.cap;
    return b.oom ? NULL : b.p;
}

#define IX_EMPTY UINT32_MAX

/* The table of device indexes, at most half full. false when out of memory. */
static bool index_build(struct devmgr *m)
{
    size_t cap = 16;
    while (cap < 2 * m->n_devs)
        cap *= 2;
    if (!(m->ix = malloc(cap * sizeof(*m->ix))))
        return false;
    m->ix_mask = cap - 1;
    for (size_t i = 0; i <= m->ix_mask; i++)
        m->ix[i] = IX_EMPTY;
    for (size_t i = 0; i < m->n_devs; i++) {
        size_t h = util_hash_str(m->devs[i].cfg->id) & m->ix_mask;
        while (m->ix[h] != IX_EMPTY)
            h = (h + 1) & m->ix_mask;
        m->ix[h] = (uint32_t)i;
    }
    return true;
}

static struct dev *find_dev(const struct devmgr *m, const char *id)
{
    for (size_t h = util_hash_str(id) & m->ix_mask; m->ix[h] != IX_EMPTY; h = (h + 1) & m->ix_mask)
        if (strcmp(m->devs[m->ix[h]].cfg->id, id) == 0)
            return &m->devs[m->ix[h]];
    return NULL;
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
    if (!m->devs || !m->routes || !m->dirty || !m->tree || cfg->n_devices >= IX_EMPTY)
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
                const char *n = intern(m, old->f[f].name);
                if (!n)
                    goto nomem;
                d->f[d->n_f++] =
                    (struct field){n, json_object_get(old->f[f].v), is_transient(c, n)};
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
        fields_free(&m->devs[i]);
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
    free(m->ix);
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
        if (!is_transient(d->cfg, k) && field_set(rc->m, d, k, json_object_get(val)) < 0) {
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
    for (size_t i = 0; i < m->n_devs; i++)
        if (!m->devs[i].carried)
            write_device_row(m, &m->devs[i], NULL);
    return rc.restored;
}

const char *const *devmgr_subscriptions(struct devmgr *m, size_t *n)
{
    *n = m->n_subs;
    return m->subs;
}

static bool throttle(struct devmgr *m, struct dev *d, size_t i);

/* Publishes the control meta of every field of d's state that has none yet
 * (the ones past meta_count, in insertion order), then field's value. A new
 * field is always in the state before it is published, so this costs one
 * length comparison per message and a walk only when fields were added. */
static void publish_field(struct devmgr *m, struct dev *d, size_t fi)
{
    if (!d->cfg->wb_mirror)
        return;
    for (; d->meta_count < d->n_f; d->meta_count++) {
        const struct field *f = &d->f[d->meta_count];
        if (mirror_field_name_ok(f->name))
            mirror_control_meta(&m->pub, d->cfg->id, f->name, mirror_control_type(f->v), true,
                                ++d->next_order, NULL);
    }
    const struct field *f = &d->f[fi];
    if (!mirror_field_name_ok(f->name))
        return;
    if (!throttle(m, d, fi))
        mirror_control_value(&m->pub, d->cfg->id, f->name, f->v);
}

/* The publication times of d's throttled controls (n_pub of them). */
static uint32_t *pub_ms(struct dev *d)
{
    return d->n_pub > PUB_INLINE ? d->pub.heap : d->pub.in_place;
}

/* The devmgr's clock for pub_ms: milliseconds, wrapping, never 0. */
static uint32_t clock32(int64_t now_ms)
{
    uint32_t t = (uint32_t)now_ms;
    return t ? t : 1;
}

/* Backpressure: the sender's queue is long (the broker or the link is
 * slower than the changes). Held values cost nothing: they are the state. */
static bool mirror_busy(const struct devmgr *m)
{
    return m->pub.backlog && m->pub.backlog(m->pub.ud) > MIRROR_BACKLOG_MAX;
}

/* bridge.mirror_min_interval_ms: true when field's value must wait (it is
 * then marked held and d queued for devmgr_flush_mirror()); false when it
 * goes out now (its time is recorded). A fast-changing control costs the
 * broker at most one publication per interval; its last value is never
 * lost. */
static bool throttle(struct devmgr *m, struct dev *d, size_t i)
{
    unsigned interval = m->cfg->mirror_min_interval_ms;
    if (!interval || i >= MIRROR_THROTTLED)
        return false;
    if (i >= d->n_pub && i < PUB_INLINE) {
        memset(d->pub.in_place, 0, sizeof(d->pub.in_place));
        d->n_pub = PUB_INLINE;
    } else if (i >= d->n_pub) {
        size_t nn = 2 * (i + 1);
        if (nn > MIRROR_THROTTLED)
            nn = MIRROR_THROTTLED;
        uint32_t *g = calloc(nn, sizeof(*g));
        if (!g)
            return false;
        memcpy(g, pub_ms(d), d->n_pub * sizeof(*g));
        if (d->n_pub > PUB_INLINE)
            free(d->pub.heap);
        d->pub.heap = g;
        d->n_pub = (uint16_t)nn;
    }
    uint32_t *pms = pub_ms(d);
    int64_t now = util_mono_ms();
    uint32_t t = clock32(now);
    int32_t age = (int32_t)(t - pms[i]); /* < 0 only after ~25 days: held once */
    bool busy = mirror_busy(m);
    if ((pms[i] && age < (int32_t)interval) || busy) {
        d->held |= (uint64_t)1 << i;
        int64_t due =
            busy ? now + MIRROR_BUSY_RETRY_MS : now + (int64_t)interval - (age > 0 ? age : 0);
        if (due < m->next_scan_ms)
            m->next_scan_ms = due;
        if (!d->mirror_dirty) {
            d->mirror_dirty = true;
            m->dirty[m->n_dirty++] = (uint32_t)(d - m->devs);
        }
        return true;
    }
    pms[i] = t;
    d->held &= ~((uint64_t)1 << i);
    return false;
}

int64_t devmgr_flush_mirror(struct devmgr *m, int64_t now_ms)
{
    if (now_ms < m->next_scan_ms)
        return m->next_scan_ms;
    int64_t next = INT64_MAX, interval = m->cfg->mirror_min_interval_ms;
    uint32_t t = clock32(now_ms);
    bool final = now_ms == INT64_MAX; /* shutdown: everything goes out */
    /* Under backpressure nothing goes out (and a flush stops as soon as the
     * queue is long again): the values stay held, looked at again soon. */
    bool busy = !final && mirror_busy(m);
    unsigned sent = 0;
    for (size_t j = 0; j < m->n_dirty && !busy;) {
        struct dev *d = &m->devs[m->dirty[j]];
        for (size_t i = 0; i < d->n_pub && i < d->n_f; i++) { /* n_pub <= MIRROR_THROTTLED */
            uint64_t bit = (uint64_t)1 << i;
            if (!(d->held & bit))
                continue;
            int32_t age = (int32_t)(t - pub_ms(d)[i]);
            if (!final && age < (int32_t)interval) {
                int64_t due = now_ms + (int64_t)interval - (age > 0 ? age : 0);
                if (due < next)
                    next = due;
            } else if (!busy) {
                d->held &= ~bit;
                pub_ms(d)[i] = t;
                mirror_control_value(&m->pub, d->cfg->id, d->f[i].name, d->f[i].v);
                if (!final && ++sent % MIRROR_FLUSH_CHECK == 0)
                    busy = mirror_busy(m);
            }
        }
        if (d->held) {
            j++;
        } else {
            d->mirror_dirty = false;
            m->dirty[j] = m->dirty[--m->n_dirty];
        }
    }
    if (busy && m->n_dirty)
        next = now_ms + MIRROR_BUSY_RETRY_MS;
    /* One scan per interval/8 at most: with a thousand controls waiting,
     * each due at its own millisecond, scanning on every due time would
     * cost a pass over the list per message. A held value goes out at most
     * interval/8 late. */
    else if (next != INT64_MAX) { /* not at shutdown: now_ms + a step cannot overflow */
        int64_t soonest = now_ms + (interval / 8 > 0 ? interval / 8 : 1);
        if (next < soonest)
            next = soonest;
    }
    m->next_scan_ms = next;
    return next;
}

static void persist_device(struct devmgr *m, struct dev *d)
{
    snprintf(m->key, sizeof(m->key), "device:%s", d->cfg->id);
    const char *json = persisted_json(m, d);
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
    json_object *state = state_object(d);
    if (changed && state)
        m->hooks.on_state(m->hooks.ud, d->cfg->id, changed, state);
    json_object_put(changed);
    json_object_put(state);
}

/* The hot path of plain payloads: one field, no intermediate objects unless
 * an observer wants the changed set. Takes ownership of v. */
static void apply_one(struct devmgr *m, struct dev *d, const char *field, json_object *v)
{
    int i = field_find(d, field);
    if (i >= 0 && json_object_equal(d->f[i].v, v)) {
        m->stats.unchanged++;
        json_object_put(v);
        return;
    }
    if ((i = field_set(m, d, field, v)) < 0) {
        m->stats.rejected++;
        log_warn("device %s: field '%s' not applied: out of memory or %d fields", d->cfg->id, field,
                 DEV_MAX_FIELDS);
        return;
    }
    m->stats.applied++;
    if (!d->f[i].transient)
        persist_device(m, d);
    publish_field(m, d, (size_t)i);
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
        int i = field_find(d, k);
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
        if ((i = field_set(m, d, k, json_object_get(v))) < 0) {
            log_warn("device %s: field '%s' and the rest of the message not applied: out of "
                     "memory or %d fields",
                     d->cfg->id, k, DEV_MAX_FIELDS);
            break;
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
        publish_field(m, d, (size_t)chg[i]);
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

    if (b->type == CFG_T_JSON) {
        json_object *msg = NULL;
        if (payload_parse_object(payload, len, &msg, err, sizeof(err)) != WB_OK) {
            reject(m, d, topic, err);
            return;
        }
        changes = json_object_new_object();
        payload_map_fields(b, msg, changes);
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
    /* Field names become MQTT topic levels and SQL-free JSON keys: refuse
     * names that cannot be mirrored rather than publish a broken topic. */
    json_object_object_foreach(changes, k, unused)
    {
        (void)unused;
        if (!mirror_field_name_ok(k)) {
            char ex[64];
            excerpt(k, strlen(k), ex, sizeof(ex));
            snprintf(err, sizeof(err), "field name '%s' is empty, too long or has / + #", ex);
            reject(m, d, topic, err);
            json_object_put(changes);
            return;
        }
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

/* Every retained topic of one mirrored device, from its current state. */
static void publish_device(struct devmgr *m, struct dev *d)
{
    mirror_device_meta(&m->pub, d->cfg->id, d->cfg->name);
    mirror_device_error(&m->pub, d->cfg->id, "");
    d->meta_count = 0;
    d->next_order = 0;
    d->held = 0; /* every value goes out now */
    if (d->n_pub)
        memset(pub_ms(d), 0, d->n_pub * sizeof(uint32_t));
    for (size_t i = 0; i < d->n_f; i++)
        publish_field(m, d, i);
    /* One pushbutton per action: writing its /on runs the action. */
    for (size_t a = 0; a < d->cfg->n_actions; a++) {
        const struct cfg_action *act = &d->cfg->actions[a];
        if (!mirror_field_name_ok(act->name))
            continue;
        mirror_control_meta(&m->pub, d->cfg->id, act->name, "pushbutton", false, 1000 + (int)a,
                            NULL);
    }
}

bool devmgr_publish_some(struct devmgr *m, size_t *next, size_t max_devices)
{
    size_t done = 0;
    /* Unmirrored devices are skipped even past the budget, so a round whose
     * last mirrored device was just published reports itself complete. */
    for (; *next < m->n_devs; (*next)++) {
        struct dev *d = &m->devs[*next];
        if (!d->cfg->wb_mirror)
            continue;
        if (done == max_devices)
            break;
        publish_device(m, d);
        done++;
    }
    return *next >= m->n_devs;
}

void devmgr_publish_all(struct devmgr *m)
{
    size_t next = 0;
    while (!devmgr_publish_some(m, &next, SIZE_MAX))
        ;
}

void devmgr_publish_offline(struct devmgr *m)
{
    for (size_t i = 0; i < m->n_devs; i++)
        if (m->devs[i].cfg->wb_mirror)
            mirror_device_error(&m->pub, m->devs[i].cfg->id, "offline");
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
    return i < m->n_devs ? state_object(&m->devs[i]) : NULL;
}

json_object *devmgr_state_new(const struct devmgr *m, const char *device_id)
{
    struct dev *d = find_dev(m, device_id);
    return d ? state_object(d) : NULL;
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

/*
 * ha.c - the Home Assistant sink (see ha.h, sink.h): the state and
 * availability topics, the republish round, the clearing of what is gone,
 * and Home Assistant's commands and birth message as input. What entities
 * a device has and its discovery payload: ha_discovery.c.
 *
 * The hot path is one publication per transition: the device's whole state
 * as one JSON object on <base>/<device>/state (retained, QoS 0; queued
 * values of one topic coalesce in the sender, so a flood sends fewer).
 *
 * The republish round announces the bridge, then every device (config,
 * availability, state), a few at a time while the sender's backlog is
 * short, from the loop's tick:
 *
 *   idle --EV_LINK_UP / reload while connected / birth_due_ms passed--> clearing
 *   clearing (round_start(): what the memory has and the config not is
 *             cleared) --> republishing
 *   republishing --pump(): last device--> idle (the memory saved when it changed)
 *   republishing --EV_LINK_DOWN--> idle
 *
 * Home Assistant's "online" on the status topic sets birth_due_ms to now +
 * republish_delay_ms (a second one before then moves it on).
 */
#include "mirror/ha_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mirror/wb_int.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

#define WARN_PER_S 10

static const struct sink_ops ha_ops;

static struct ha *self(struct sink *s)
{
    return (struct ha *)s;
}

bool ha_topic(const struct ha *h, const char *device_id, const char *leaf, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s/%s", h->hc->base_topic, device_id, leaf);
    return n > 0 && (size_t)n < cap;
}

bool ha_bridge_availability_topic(const struct config *cfg, char *buf, size_t cap)
{
    const struct cfg_homeassistant *hc = &cfg->homeassistant;
    if (!hc->base_topic)
        return false;
    int n = snprintf(buf, cap, "%s/%s/availability", hc->base_topic, cfg->bridge_device_id);
    return n > 0 && (size_t)n < cap;
}

static bool config_topic(const char *prefix, const char *node, const char *device_id, char *buf,
                         size_t cap)
{
    char obj[HA_KEY_MAX];
    ha_object_id(device_id, obj, sizeof(obj));
    int n = snprintf(buf, cap, "%s/device/%s/%s/config", prefix, node, obj);
    return n > 0 && (size_t)n < cap;
}

static void warn_limited(struct ha *h, const char *fmt, const char *a, const char *b)
{
    int64_t now = util_mono_ms();
    if (now - h->warn_window_ms >= 1000) {
        h->warn_window_ms = now;
        h->warn_in_window = 0;
    }
    if (h->warn_in_window++ < WARN_PER_S)
        log_warn(fmt, a, b);
}

/* ---- the state topic (the hot path) ------------------------------------- */

static bool buf_need(struct ha *h, size_t len, size_t more)
{
    if (len + more <= h->cap)
        return true;
    size_t cap = h->cap ? h->cap : 256;
    while (cap < len + more)
        cap *= 2;
    char *g = realloc(h->buf, cap);
    if (!g)
        return false;
    h->buf = g;
    h->cap = cap;
    return true;
}

/* Appends s (n bytes, NULs included) as a JSON string. */
static bool put_json_string(struct ha *h, size_t *len, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!buf_need(h, *len, n * 6 + 2))
        return false;
    char *o = h->buf + *len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o++ = '"';
    *len = (size_t)(o - h->buf);
    return true;
}

static bool put_raw(struct ha *h, size_t *len, const char *s, size_t n)
{
    if (!buf_need(h, *len, n))
        return false;
    memcpy(h->buf + *len, s, n);
    *len += n;
    return true;
}

static bool put_value(struct ha *h, size_t *len, json_object *v)
{
    char num[64];
    switch (json_object_get_type(v)) {
    case json_type_null:
        return put_raw(h, len, "null", 4);
    case json_type_boolean:
        return json_object_get_boolean(v) ? put_raw(h, len, "true", 4)
                                          : put_raw(h, len, "false", 5);
    case json_type_int:
    case json_type_double: {
        size_t n = mirror_format_value(v, num, sizeof(num));
        if (n >= sizeof(num) || !strpbrk(num, "0123456789") || strpbrk(num, "ni"))
            return put_raw(h, len, "null", 4); /* nan, inf: not JSON */
        return put_raw(h, len, num, n);
    }
    case json_type_string:
        return put_json_string(h, len, json_object_get_string(v),
                               (size_t)json_object_get_string_len(v));
    default: {
        const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
        return put_raw(h, len, t, strlen(t));
    }
    }
}

/* The device's state topic; now (monotonic ms, INT64_MIN: not a
 * transition) starts its interval. */
static void publish_state(struct ha *h, const struct sink_device *sd, int64_t now)
{
    if (sd->index < h->n_devs) {
        h->devs[sd->index].held = false; /* what waited goes out now */
        if (now != INT64_MIN)
            h->devs[sd->index].last_ms = now;
    }
    char topic[HA_TOPIC_MAX];
    if (!ha_topic(h, sd->cfg->id, "state", topic, sizeof(topic)))
        return;
    size_t len = 0;
    bool ok = put_raw(h, &len, "{", 1);
    for (size_t i = 0; ok && i < sd->n_f; i++) {
        ok = (i == 0 || put_raw(h, &len, ",", 1)) &&
             put_json_string(h, &len, sd->f[i].name, strlen(sd->f[i].name)) &&
             put_raw(h, &len, ":", 1) && put_value(h, &len, sd->f[i].v);
    }
    if (!ok || !put_raw(h, &len, "}", 1)) {
        log_error("homeassistant: out of memory for the state of %s", sd->cfg->id);
        return;
    }
    mirror_publish_raw(&h->pub, topic, h->buf, len, 0, true);
}

static void publish_availability(struct ha *h, const char *device_id, bool online)
{
    char topic[HA_TOPIC_MAX];
    if (!ha_topic(h, device_id, "availability", topic, sizeof(topic)))
        return;
    const char *p = online ? "online" : "offline";
    mirror_publish_raw(&h->pub, topic, p, strlen(p), 1, true);
}

static void publish_bridge_state(struct ha *h)
{
    char topic[HA_TOPIC_MAX];
    if (!ha_topic(h, h->cfg->bridge_device_id, "state", topic, sizeof(topic)))
        return;
    json_object *o = json_object_new_object();
    if (!o)
        return;
    json_object *status = NULL;
    if (h->last)
        json_object_object_get_ex(h->last, "status", &status);
    json_object_object_add(o, "scenario", json_object_new_string(h->scenario));
    json_object_object_add(o, "status", status ? json_object_get(status) : NULL);
    json_object_object_add(o, "last", h->last ? json_object_get(h->last) : NULL);
    const char *t =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    mirror_publish_raw(&h->pub, topic, t, strlen(t), 0, true);
    json_object_put(o);
}

/* ---- the memory of what was announced ----------------------------------- */

static const char *mem_str(json_object *m, const char *key)
{
    json_object *v;
    return m && json_object_object_get_ex(m, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static json_object *mem_devices(json_object *m)
{
    json_object *v;
    return m && json_object_object_get_ex(m, "devices", &v) &&
                   json_object_is_type(v, json_type_object)
               ? v
               : NULL;
}

/* The remembered "key:platform/..." of device_id, when the memory is of
 * the same prefix, node and base as now. */
static const char *mem_old(const struct ha *h, const char *device_id)
{
    json_object *devs = mem_devices(h->memory);
    json_object *v;
    if (!devs || !json_object_object_get_ex(devs, device_id, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static json_object *mem_new(const struct ha *h)
{
    json_object *m = json_object_new_object();
    json_object *devs = json_object_new_object();
    if (!m || !devs) {
        json_object_put(m);
        json_object_put(devs);
        return NULL;
    }
    if (h->enabled) {
        json_object_object_add(m, "prefix", json_object_new_string(h->hc->discovery_prefix));
        json_object_object_add(m, "node", json_object_new_string(h->hc->node_id));
        json_object_object_add(m, "base", json_object_new_string(h->hc->base_topic));
    }
    json_object_object_add(m, "devices", devs);
    return m;
}

static void mem_save(struct ha *h)
{
    if (h->mem.save && h->memory)
        h->mem.save(h->mem.ud, h->memory);
    h->mem_dirty = false;
    h->mem_due_ms = INT64_MAX;
}

/* Empty retained payloads on a device's config, state and availability
 * topics as the memory m named them. */
static void clear_device(struct ha *h, json_object *m, const char *device_id)
{
    const char *prefix = mem_str(m, "prefix"), *node = mem_str(m, "node"),
               *base = mem_str(m, "base");
    char t[HA_TOPIC_MAX];
    if (!prefix || !node || !base)
        return;
    if (config_topic(prefix, node, device_id, t, sizeof(t)))
        mirror_publish_raw(&h->pub, t, "", 0, 1, true);
    static const char *const leaves[] = {"state", "availability"};
    for (size_t i = 0; i < 2; i++) {
        int n = snprintf(t, sizeof(t), "%s/%s/%s", base, device_id, leaves[i]);
        if (n > 0 && (size_t)n < sizeof(t))
            mirror_publish_raw(&h->pub, t, "", 0, 1, true);
    }
    log_info("homeassistant: %s removed", device_id);
}

static bool same_names(json_object *m, const struct ha *h)
{
    const char *p = mem_str(m, "prefix"), *n = mem_str(m, "node"), *b = mem_str(m, "base");
    return h->enabled && p && n && b && strcmp(p, h->hc->discovery_prefix) == 0 &&
           strcmp(n, h->hc->node_id) == 0 && strcmp(b, h->hc->base_topic) == 0;
}

/* Clears what the memory has and this config does not (all of it when the
 * prefix, node or base changed, or the sink is off); a memory of other
 * names is dropped (saved again when it held anything, or the sink is on). */
static void clear_stale(struct ha *h)
{
    if (!h->memory)
        return;
    json_object *devs = mem_devices(h->memory);
    bool same = same_names(h->memory, h);
    bool any = false;
    if (devs) {
        json_object_object_foreach(devs, id, v)
        {
            (void)v;
            bool current = same && (strcmp(id, h->cfg->bridge_device_id) == 0 ||
                                    cfg_find_device(h->cfg, id) != NULL);
            if (!current) {
                clear_device(h, h->memory, id);
                any = true;
            }
        }
    }
    if (!same) {
        json_object_put(h->memory);
        h->memory = NULL;
        if (any || h->enabled)
            h->mem_dirty = true;
    }
}

/* ---- announcing ---------------------------------------------------------- */

static void publish_config(struct ha *h, const char *device_id, json_object *cfg, char *names)
{
    char t[HA_TOPIC_MAX];
    if (cfg && config_topic(h->hc->discovery_prefix, h->hc->node_id, device_id, t, sizeof(t))) {
        const char *text = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        mirror_publish_raw(&h->pub, t, text, strlen(text), 1, true);
    }
    json_object_put(cfg);
    if (!names)
        return;
    /* What is announced now is what a later announcement compares with. */
    if (!h->memory)
        h->memory = mem_new(h);
    json_object *devs = mem_devices(h->memory);
    const char *old = mem_old(h, device_id);
    if (devs && (!old || strcmp(old, names) != 0)) {
        json_object_object_add(devs, device_id, json_object_new_string(names));
        h->mem_dirty = true;
    }
    free(names);
}

static void announce_device(struct ha *h, const struct sink_device *sd)
{
    char *names;
    json_object *c = ha_device_config(h, sd, mem_old(h, sd->cfg->id), &names);
    publish_config(h, sd->cfg->id, c, names);
    if (sd->index < h->n_devs) {
        h->devs[sd->index].announced = (uint32_t)sd->n_f;
        h->devs[sd->index].reannounce = false;
    }
}

static void announce_bridge(struct ha *h)
{
    char *names;
    json_object *c = ha_bridge_config(h, mem_old(h, h->cfg->bridge_device_id), &names);
    publish_availability(h, h->cfg->bridge_device_id, true);
    publish_config(h, h->cfg->bridge_device_id, c, names);
    publish_bridge_state(h);
}

static void round_start(struct ha *h)
{
    h->birth_due_ms = INT64_MAX;
    if (!h->connected)
        return;
    clear_stale(h);
    if (!h->enabled) {
        /* Off: what an earlier run announced is cleared, and forgotten. */
        if (h->mem_dirty) {
            h->memory = mem_new(h);
            mem_save(h);
        }
        return;
    }
    if (!h->memory)
        h->memory = mem_new(h);
    /* Devices the memory has and the config not were cleared above; they
     * leave the memory with this round. */
    json_object *devs = mem_devices(h->memory);
    if (devs) {
        json_object *keep = json_object_new_object();
        json_object_object_foreach(devs, id, v)
        {
            if (strcmp(id, h->cfg->bridge_device_id) == 0 || cfg_find_device(h->cfg, id))
                json_object_object_add(keep, id, json_object_get(v));
            else
                h->mem_dirty = true;
        }
        json_object_object_add(h->memory, "devices", keep);
    }
    announce_bridge(h);
    h->republishing = true;
    h->republish_next = 0;
}

static void pump(struct ha *h, const struct sink_view *view)
{
    size_t n = view->count(view->ud);
    while (h->republishing && h->connected &&
           (!h->pub.backlog || h->pub.backlog(h->pub.ud) < HA_REPUBLISH_BACKLOG)) {
        struct sink_device sd;
        for (size_t done = 0; h->republish_next < n && done < HA_REPUBLISH_STEP;
             h->republish_next++, done++) {
            if (!view->device(view->ud, h->republish_next, &sd))
                continue;
            announce_device(h, &sd);
            publish_availability(h, sd.cfg->id, sd.online);
            publish_state(h, &sd, INT64_MIN);
        }
        if (h->republish_next >= n) {
            h->republishing = false;
            log_debug("homeassistant: announced %zu devices", n);
            if (h->mem_dirty)
                mem_save(h); /* after a round: at once */
        }
    }
}

/* ---- events -------------------------------------------------------------- */

static bool build_subs(struct ha *h)
{
    for (size_t i = 0; i < h->n_subs; i++)
        free(h->subs[i]);
    h->n_subs = 0;
    if (!h->enabled)
        return true;
    size_t n = strlen(h->hc->base_topic) + sizeof("/+/+/set");
    if (!(h->subs[0] = malloc(n)))
        return false;
    snprintf(h->subs[0], n, "%s/+/+/set", h->hc->base_topic);
    if (!(h->subs[1] = strdup(h->hc->status_topic))) {
        free(h->subs[0]);
        return false;
    }
    h->n_subs = 2;
    return true;
}

static void use_config(struct ha *h, const struct config *cfg)
{
    h->cfg = cfg;
    h->hc = &cfg->homeassistant;
    h->enabled = h->hc->enabled && h->hc->node_id && h->hc->base_topic && h->hc->discovery_prefix &&
                 h->hc->status_topic;
}

static void devices_done(struct ha *h, const struct event *ev, const struct sink_view *view)
{
    use_config(h, ev->u.done.cfg);
    if (!build_subs(h))
        log_error("homeassistant: out of memory building the subscriptions");
    /* New indexes: what waited is published by the round a reload starts
     * (while connected; otherwise the connect's round does it). */
    free(h->devs);
    free(h->queue);
    h->devs = NULL;
    h->queue = NULL;
    h->n_devs = h->n_queue = 0;
    h->next_flush_ms = INT64_MAX;
    size_t n = view->count(view->ud);
    if (h->enabled) {
        h->devs = calloc(n ? n : 1, sizeof(*h->devs));
        h->queue = calloc(n ? n : 1, sizeof(*h->queue));
        if (h->devs && h->queue) {
            h->n_devs = n;
        } else {
            log_error("homeassistant: out of memory: states are published at every change");
            free(h->devs);
            free(h->queue);
            h->devs = NULL;
            h->queue = NULL;
        }
    }
    if (ev->u.done.reload && h->connected)
        round_start(h);
}

/* Puts d (index idx) in the queue once; due is when something of it is. */
static void enqueue(struct ha *h, struct hdev *d, uint32_t idx, int64_t due)
{
    if (!d->queued) {
        d->queued = true;
        h->queue[h->n_queue++] = idx; /* each index once: n_queue <= n_devs */
    }
    if (due < h->next_flush_ms)
        h->next_flush_ms = due;
}

/* Publishes the held states and configs that are due (now INT64_MAX: all
 * of them); returns when the next one is (INT64_MAX: none). */
static int64_t flush_queue(struct ha *h, const struct sink_view *view, int64_t now)
{
    if (now < h->next_flush_ms)
        return h->next_flush_ms;
    int64_t next = INT64_MAX;
    size_t k = 0;
    for (size_t i = 0; i < h->n_queue; i++) {
        uint32_t idx = h->queue[i];
        struct hdev *d = &h->devs[idx];
        struct sink_device sd;
        if (!h->connected || !view->device(view->ud, idx, &sd)) {
            /* Not connected: the connect's round publishes everything. */
            d->held = d->reannounce = false;
        }
        if (d->reannounce && d->announced_ms + HA_REANNOUNCE_MS <= now) {
            if (now != INT64_MAX)
                d->announced_ms = now;
            announce_device(h, &sd);
        }
        int64_t due_s = d->last_ms + h->hc->state_interval_ms;
        if (d->held && due_s <= now)
            publish_state(h, &sd, now == INT64_MAX ? due_s : now);
        if (!d->held && !d->reannounce) {
            d->queued = false;
            continue;
        }
        h->queue[k++] = idx;
        if (d->held && due_s < next)
            next = due_s;
        if (d->reannounce && d->announced_ms + HA_REANNOUNCE_MS < next)
            next = d->announced_ms + HA_REANNOUNCE_MS;
    }
    h->n_queue = k;
    h->next_flush_ms = next;
    return next;
}

/* A field of a plain binding: its entity was in the device's config from
 * the start. */
static bool plain_field(const struct cfg_device *c, const char *name)
{
    for (size_t i = 0; i < c->n_state; i++)
        if (c->state[i].type != CFG_T_JSON && c->state[i].field &&
            strcmp(c->state[i].field, name) == 0)
            return true;
    return false;
}

static void fields_event(struct ha *h, const struct event *ev)
{
    const struct sink_device *sd = ev->dev;
    if (!h->enabled || !h->connected)
        return;
    /* A new field may be a new entity (a merged JSON object's): the
     * device's config again, unless the round will get to it anyway. */
    bool new_field = false;
    for (size_t i = 0; i < ev->u.fields.n && !new_field; i++)
        new_field = ev->u.fields.c[i].new_field &&
                    !plain_field(sd->cfg, sd->f[ev->u.fields.c[i].index].name);
    struct hdev *d = sd->index < h->n_devs ? &h->devs[sd->index] : NULL;
    if (new_field && d && sd->n_f > d->announced &&
        !(h->republishing && sd->index >= h->republish_next)) {
        if (d->announced_ms == 0 || ev->now_ms - d->announced_ms >= HA_REANNOUNCE_MS) {
            d->announced_ms = ev->now_ms;
            announce_device(h, sd);
        } else if (!d->reannounce) {
            d->reannounce = true;
            enqueue(h, d, sd->index, d->announced_ms + HA_REANNOUNCE_MS);
        }
        if (h->mem_dirty && h->mem_due_ms == INT64_MAX)
            h->mem_due_ms = ev->now_ms + HA_MEMORY_SAVE_MS;
    }
    /* At most once per state_interval_ms; the latest state waits for it. */
    unsigned iv = h->hc->state_interval_ms;
    if (!d || iv == 0 || d->last_ms == 0 || ev->now_ms - d->last_ms >= (int64_t)iv) {
        publish_state(h, sd, ev->now_ms);
        return;
    }
    if (!d->held) {
        d->held = true;
        enqueue(h, d, sd->index, d->last_ms + iv);
    }
}

static void scenario_event(struct ha *h, const struct event *ev)
{
    char *v = strdup(ev->u.scenario.active ? ev->u.scenario.active : "none");
    if (!v)
        return;
    free(h->scenario);
    h->scenario = v;
    json_object_put(h->last);
    h->last = NULL;
    if (ev->u.scenario.last)
        json_object_deep_copy(ev->u.scenario.last, &h->last, NULL);
    if (h->enabled && h->connected)
        publish_bridge_state(h);
}

static void ha_event(struct sink *s, const struct event *ev, const struct sink_view *view)
{
    struct ha *h = self(s);
    switch (ev->kind) {
    case EV_DEVICE_ADDED:
    case EV_DEVICE_CHANGED:
    case EV_DEVICE_REMOVED: /* the round after EV_DEVICES_DONE clears it */
    case EV_COMMAND:        /* Home Assistant sees the state come back */
        break;
    case EV_DEVICES_DONE:
        devices_done(h, ev, view);
        break;
    case EV_FIELDS:
        fields_event(h, ev);
        break;
    case EV_AVAILABILITY:
        if (h->enabled && h->connected)
            publish_availability(h, ev->dev->cfg->id, ev->u.availability.online);
        break;
    case EV_SCENARIO:
        scenario_event(h, ev);
        break;
    case EV_LINK_UP:
        h->connected = true;
        round_start(h);
        break;
    case EV_LINK_DOWN:
        h->connected = false;
        h->republishing = false;
        break;
    case EV_STOPPING:
        if (h->mem_dirty)
            mem_save(h); /* the store's flush follows */
        if (h->enabled && h->connected) {
            h->next_flush_ms = 0;
            flush_queue(h, view, INT64_MAX); /* the latest states */
            publish_availability(h, h->cfg->bridge_device_id, false);
        }
        break;
    }
}

static int64_t ha_tick(struct sink *s, const struct sink_view *view, int64_t now_ms, bool light)
{
    struct ha *h = self(s);
    int64_t next = flush_queue(h, view, now_ms);
    if (light)
        return h->republishing || h->birth_due_ms > next ? next : h->birth_due_ms;
    if (h->birth_due_ms <= now_ms)
        round_start(h);
    pump(h, view);
    if (h->mem_dirty && h->mem_due_ms <= now_ms && !h->republishing)
        mem_save(h);
    if (h->birth_due_ms < next)
        next = h->birth_due_ms;
    if (h->mem_dirty && h->mem_due_ms < next)
        next = h->mem_due_ms;
    if (h->republishing && now_ms + HA_REPUBLISH_POLL_MS < next)
        next = now_ms + HA_REPUBLISH_POLL_MS;
    return next;
}

/* ---- input ---------------------------------------------------------------- */

static const char *const *ha_subscriptions(struct sink *s, size_t *n)
{
    struct ha *h = self(s);
    *n = h->n_subs;
    return (const char *const *)h->subs;
}

/* A switch field's ON / OFF: its action, NULL (with a warning) otherwise. */
static const struct cfg_action *switch_action(struct ha *h, const struct cfg_device *dev,
                                              const char *field, const char *payload, size_t len)
{
    const struct cfg_action *on, *off;
    if (!wb_field_switch(dev, field, &on, &off))
        return NULL;
    while (len && (payload[len - 1] == ' ' || payload[len - 1] == '\n' || payload[len - 1] == '\r'))
        len--;
    if ((len == 2 && strncasecmp(payload, "on", 2) == 0) || (len == 1 && payload[0] == '1'))
        return on;
    if ((len == 3 && strncasecmp(payload, "off", 3) == 0) || (len == 1 && payload[0] == '0'))
        return off;
    warn_limited(h, "homeassistant: %s: switch '%s' takes ON or OFF: ignored", dev->id, field);
    return NULL;
}

static enum sink_input ha_input(struct sink *s, const char *topic, const char *payload, size_t len,
                                bool retained, struct sink_command *cmd)
{
    struct ha *h = self(s);
    if (!h->enabled)
        return SINK_IN_NONE;
    if (strcmp(topic, h->hc->status_topic) == 0) {
        if (len == 6 && memcmp(payload, "online", 6) == 0 && h->connected) {
            /* Retained or not: Home Assistant is (back) online. */
            h->birth_due_ms = util_mono_ms() + h->hc->republish_delay_ms;
            log_info("homeassistant: Home Assistant is online: announcing again in %u ms",
                     h->hc->republish_delay_ms);
        }
        return SINK_IN_OWN;
    }
    size_t bl = strlen(h->hc->base_topic);
    if (strncmp(topic, h->hc->base_topic, bl) != 0 || topic[bl] != '/') {
        /* Our own configs seen again (a device's state filter "#"). */
        size_t pl = strlen(h->hc->discovery_prefix), nl = strlen(h->hc->node_id);
        if (strncmp(topic, h->hc->discovery_prefix, pl) == 0 &&
            strncmp(topic + pl, "/device/", 8) == 0 &&
            strncmp(topic + pl + 8, h->hc->node_id, nl) == 0 && topic[pl + 8 + nl] == '/')
            return SINK_IN_OWN;
        return SINK_IN_NONE;
    }
    /* Under <base>/: ours. Only <base>/<device>/<name>/set is a command. */
    static _Thread_local char idbuf[128], name[MIRROR_FIELD_MAX + 1];
    const char *id = topic + bl + 1;
    const char *s1 = strchr(id, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || strcmp(s2, "/set") != 0 || (size_t)(s1 - id) >= sizeof(idbuf) ||
        (size_t)(s2 - s1 - 1) >= sizeof(name))
        return SINK_IN_OWN;
    memcpy(idbuf, id, (size_t)(s1 - id));
    idbuf[s1 - id] = '\0';
    memcpy(name, s1 + 1, (size_t)(s2 - s1 - 1));
    name[s2 - s1 - 1] = '\0';
    *cmd = (struct sink_command){
        .device_id = idbuf, .action = name, .payload = payload, .len = len, .retained = retained};
    if (strcmp(idbuf, h->cfg->bridge_device_id) == 0)
        return SINK_IN_COMMAND; /* the scenario select (the core checks the name) */
    const struct cfg_device *dev = cfg_find_device(h->cfg, idbuf);
    if (!dev) {
        warn_limited(h, "homeassistant: a command for unknown device '%.64s' (%.64s): ignored",
                     idbuf, name);
        return SINK_IN_OWN;
    }
    if (cfg_find_action(dev, name))
        return SINK_IN_COMMAND;
    if (retained)
        return SINK_IN_COMMAND; /* ignored (and logged) by the core */
    const struct cfg_action *a = switch_action(h, dev, name, payload, len);
    if (!a) {
        if (!wb_field_switch(dev, name, NULL, NULL))
            warn_limited(h, "homeassistant: %s has no action or switch '%.64s': ignored", idbuf,
                         name);
        return SINK_IN_OWN;
    }
    cmd->action = a->name;
    cmd->payload = "1";
    cmd->len = 1;
    return SINK_IN_COMMAND;
}

/* ---- life ------------------------------------------------------------------ */

struct sink *ha_sink_create(const struct config *cfg, const struct mirror_publisher *pub,
                            const struct mirror_memory *mem)
{
    struct ha *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base.ops = &ha_ops;
    use_config(h, cfg);
    if (pub)
        h->pub = *pub;
    h->birth_due_ms = INT64_MAX;
    h->mem_due_ms = INT64_MAX;
    h->next_flush_ms = INT64_MAX;
    h->scenario = strdup("none");
    if (!h->scenario || !build_subs(h))
        goto fail;
    if (mem) {
        h->mem = *mem;
        h->memory = mem->load ? mem->load(mem->ud) : NULL;
        if (h->memory && !json_object_is_type(h->memory, json_type_object)) {
            log_warn("homeassistant: the remembered announcements are not a JSON object: ignored");
            json_object_put(h->memory);
            h->memory = NULL;
        }
    }
    return &h->base;
fail:
    ha_ops.destroy(&h->base);
    return NULL;
}

static void ha_destroy(struct sink *s)
{
    if (!s)
        return;
    struct ha *h = self(s);
    for (size_t i = 0; i < h->n_subs; i++)
        free(h->subs[i]);
    free(h->devs);
    free(h->queue);
    free(h->scenario);
    free(h->buf);
    json_object_put(h->last);
    json_object_put(h->memory);
    free(h);
}

static const struct sink_ops ha_ops = {
    .name = "homeassistant",
    .event = ha_event,
    .tick = ha_tick,
    .subscriptions = ha_subscriptions,
    .input = ha_input,
    .destroy = ha_destroy,
};

/* ---- the config check ------------------------------------------------------ */

static bool under(const char *topic, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(topic, prefix, n) == 0 && topic[n] == '/';
}

static bool has_wildcard(const char *t)
{
    return strpbrk(t, "+#") != NULL;
}

void ha_check_config(const struct config *cfg, struct cfg_check *chk)
{
    const struct cfg_homeassistant *hc = &cfg->homeassistant;
    if (!hc->enabled || !hc->base_topic || !hc->discovery_prefix || !hc->node_id)
        return;
    char disc[HA_TOPIC_MAX];
    snprintf(disc, sizeof(disc), "%s/device/%s", hc->discovery_prefix, hc->node_id);
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct cfg_device *d = &cfg->devices[i];
        for (size_t j = 0; j < d->n_state; j++) {
            const struct cfg_state_binding *b = &d->state[j];
            if (b->topic && !has_wildcard(b->topic) &&
                (under(b->topic, hc->base_topic) || under(b->topic, disc)))
                cfg_check_error(chk, b->mark.line, b->mark.column,
                                "state topic '%s' is one of the Home Assistant sink's own "
                                "topics (homeassistant.base_topic '%s')",
                                b->topic, hc->base_topic);
        }
        for (size_t j = 0; j < d->n_actions; j++) {
            const struct cfg_action *a = &d->actions[j];
            if (a->topic && under(a->topic, hc->base_topic))
                cfg_check_error(chk, a->mark.line, a->mark.column,
                                "action topic '%s' is under homeassistant.base_topic '%s', "
                                "where the bridge takes Home Assistant's commands",
                                a->topic, hc->base_topic);
        }
    }
}

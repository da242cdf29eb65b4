/*
 * wb.c - the Wiren Board mirror as a sink (see mirror.h, sink.h): what each
 * event means on /devices/..., the republish after a connect, the bridge's
 * own device, meta/error "w" after a failed write, and the /on input.
 *
 * It owns a table of struct wdev, one per device index of the view
 * (wb_int.h). A start-up or a reload rebuilds it from the device events:
 * the first EV_DEVICE_ADDED/CHANGED starts a new table, EV_DEVICES_DONE
 * swaps it in (a device kept by a reload keeps its "r" markers; everything
 * else is published again by the republish round that follows).
 *
 * Republish after a connect (CONTRACT §5): the bridge device at once, then
 * every mirrored device in steps from wb_tick(), a round from device 0 on
 * each connect and each reload; a lost connection ends the round:
 *
 *   idle --EV_LINK_UP / EV_DEVICES_DONE (reload, connected)--> republishing
 *   republishing --wb_tick(): last device queued--> idle
 *   republishing --EV_LINK_DOWN--> idle
 */
#include "mirror/wb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/util.h"

#define CONTROL_NAME_MAX 128

static const struct sink_ops wb_ops;

static struct wb *self(struct sink *s)
{
    return (struct wb *)s;
}

static void table_free(struct wdev *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        wb_dev_free(&t[i]);
    free(t);
}

struct sub_list {
    char **subs;
    size_t n, cap;
    const struct cfg_device *dev;
    bool oom;
};

static void add_switch_sub(void *ud, const char *field)
{
    struct sub_list *l = ud;
    char filter[MIRROR_TOPIC_MAX];
    if (!mirror_field_name_ok(field) ||
        cfg_find_action(l->dev, field) || /* the action's own /on is there */
        (size_t)snprintf(filter, sizeof(filter), "/devices/%s/controls/%s/on", l->dev->id, field) >=
            sizeof(filter))
        return;
    if (l->n == l->cap) {
        char **g = realloc(l->subs, (l->cap * 2) * sizeof(*g));
        if (!g) {
            l->oom = true;
            return;
        }
        l->subs = g;
        l->cap *= 2;
    }
    if (!(l->subs[l->n] = strdup(filter)))
        l->oom = true;
    else
        l->n++;
}

/* The /on filters of cfg: one per action of a mirrored device (not a
 * wildcard, so other controls' /on topics are never taken as input), and
 * the bridge's scenario control. */
static bool build_subs(struct wb *w, const struct config *cfg)
{
    size_t n = 1;
    for (size_t i = 0; i < cfg->n_devices; i++)
        n += cfg->devices[i].wb_mirror ? cfg->devices[i].n_actions : 0;
    char **subs = calloc(n, sizeof(*subs));
    if (!subs)
        return false;
    size_t k = 0;
    char filter[MIRROR_TOPIC_MAX];
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct cfg_device *c = &cfg->devices[i];
        for (size_t a = 0; c->wb_mirror && a < c->n_actions; a++) {
            if (!mirror_field_name_ok(c->actions[a].name))
                continue;
            if ((size_t)snprintf(filter, sizeof(filter), "/devices/%s/controls/%s/on", c->id,
                                 c->actions[a].name) >= sizeof(filter))
                continue;
            if (!(subs[k++] = strdup(filter)))
                goto fail;
        }
    }
    snprintf(filter, sizeof(filter), "/devices/%s/controls/scenario/on", cfg->bridge_device_id);
    if (!(subs[k++] = strdup(filter)))
        goto fail;
    /* The writable switches' /on (wb_controls.c), grown as they come. */
    struct sub_list l = {.subs = subs, .n = k, .cap = n};
    for (size_t i = 0; i < cfg->n_devices && !l.oom; i++) {
        l.dev = &cfg->devices[i];
        if (l.dev->wb_mirror)
            wb_switch_fields(l.dev, add_switch_sub, &l);
    }
    subs = l.subs;
    k = l.n;
    if (l.oom)
        goto fail;
    for (size_t i = 0; i < w->n_subs; i++)
        free(w->subs[i]);
    free(w->subs);
    w->subs = subs;
    w->n_subs = k;
    return true;
fail:
    for (size_t i = 0; i < k; i++)
        free(subs[i]);
    free(subs);
    return false;
}

struct sink *mirror_sink_create(const struct config *cfg, const struct mirror_publisher *pub,
                                const struct mirror_memory *mem)
{
    struct wb *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->base.ops = &wb_ops;
    w->cfg = cfg;
    if (pub)
        w->pub = *pub;
    w->next_scan_ms = INT64_MAX;
    /* No table yet: the start-up's device events build it (allocating one
     * here too would put two tables of 10 000 devices in the peak RSS). */
    w->scenario = strdup("none");
    w->errors_set = json_object_new_object();
    w->stale = json_object_new_object();
    w->action_values = json_object_new_object();
    if (!w->scenario || !w->errors_set || !w->stale || !w->action_values || !build_subs(w, cfg))
        goto fail;
    if (mem) {
        w->mem = *mem;
        /* What the last run published: compared with this run's at the
         * first connect (wb_clear_stale). */
        w->old_mem = mem->load ? mem->load(mem->ud) : NULL;
        if (w->old_mem && !json_object_is_type(w->old_mem, json_type_object)) {
            log_warn("mirror: the remembered topics are not a JSON object: ignored");
            json_object_put(w->old_mem);
            w->old_mem = NULL;
        }
        if (w->old_mem) {
            w->mem_hash =
                util_hash_str(json_object_to_json_string_ext(w->old_mem, JSON_C_TO_STRING_PLAIN));
            w->mem_saved = true;
        }
    }
    return &w->base;
fail:
    wb_ops.destroy(&w->base);
    return NULL;
}

static void wb_destroy(struct sink *s)
{
    if (!s)
        return;
    struct wb *w = self(s);
    table_free(w->devs, w->n_devs);
    table_free(w->next, w->n_next);
    free(w->dirty);
    free(w->scenario);
    for (size_t i = 0; i < w->n_subs; i++)
        free(w->subs[i]);
    free(w->subs);
    json_object_put(w->errors_set);
    json_object_put(w->stale);
    json_object_put(w->old_mem);
    json_object_put(w->action_values);
    for (size_t i = 0; i < ECHO_SLOTS; i++) {
        free(w->echo[i].topic);
        free(w->echo[i].payload);
    }
    free(w);
}

/* ---- the bridge's own device ---------------------------------------------- */

static void publish_scenario_value(struct wb *w)
{
    json_object *v = json_object_new_string(w->scenario);
    mirror_control_value(&w->pub, w->cfg->bridge_device_id, "scenario", v);
    json_object_put(v);
}

/* The scenario control: a choice of the scenario ids and "none", titled
 * with the scenarios' names. */
static json_object *scenario_meta(const struct config *cfg)
{
    json_object *m = json_object_new_object();
    json_object *t = json_object_new_object();
    json_object *e = json_object_new_object();
    if (!m || !t || !e) {
        json_object_put(m);
        json_object_put(t);
        json_object_put(e);
        return NULL;
    }
    json_object_object_add(m, "type", json_object_new_string("text"));
    json_object_object_add(m, "readonly", json_object_new_boolean(false));
    json_object_object_add(m, "order", json_object_new_int(1));
    json_object_object_add(t, "en", json_object_new_string("Scenario"));
    json_object_object_add(t, "ru", json_object_new_string("Сценарий"));
    json_object_object_add(m, "title", t);
    for (size_t i = 0; i < cfg->n_scenarios; i++) {
        json_object *et = json_object_new_object();
        json_object_object_add(et, "en", json_object_new_string(cfg->scenarios[i].name));
        json_object_object_add(e, cfg->scenarios[i].id, et);
    }
    json_object *none = json_object_new_object();
    json_object_object_add(none, "en", json_object_new_string("None"));
    json_object_object_add(none, "ru", json_object_new_string("Нет"));
    json_object_object_add(e, "none", none);
    json_object_object_add(m, "enum", e);
    return m;
}

static void publish_bridge_device(struct wb *w)
{
    const char *id = w->cfg->bridge_device_id;
    mirror_device_meta(&w->pub, id, "MQTT bridge", w->cfg->wb_legacy_meta);
    mirror_device_error(&w->pub, id, ""); /* clears our Last Will */
    json_object *m = scenario_meta(w->cfg);
    if (m)
        mirror_control_meta(&w->pub, id, "scenario", m, w->cfg->wb_legacy_meta);
    json_object_put(m);
    publish_scenario_value(w);
}

/* ---- device events ------------------------------------------------------ */

static struct wdev *dev_of(struct wb *w, const struct sink_device *sd)
{
    return sd->index < w->n_devs ? &w->devs[sd->index] : NULL;
}

/* A start-up's or reload's device event: the entry of the table being built. */
static void device_event(struct wb *w, const struct event *ev, const struct sink_view *view)
{
    if (!w->building) {
        size_t n = view->count(view->ud);
        w->next = calloc(n ? n : 1, sizeof(*w->next));
        w->n_next = w->next ? n : 0;
        w->building = true;
    }
    const struct sink_device *sd = ev->dev;
    if (!w->next || sd->index >= w->n_next)
        return;
    struct wdev *d = &w->next[sd->index];
    wb_fields_known(w, d, sd);
    if (ev->kind != EV_DEVICE_CHANGED || ev->u.changed.old_index >= w->n_devs)
        return;
    /* Kept by a reload: a control that shows "r" still does. */
    struct wdev *old = &w->devs[ev->u.changed.old_index];
    d->offline = old->offline;
    wb_device_changed(w, sd, ev->u.changed.old_cfg);
    uint8_t *fb = wb_fb(d);
    const uint8_t *ofb = wb_fb(old);
    for (size_t i = 0; i < d->n_fb && i < old->n_fb; i++)
        fb[i] |= ofb[i] & FB_ERR_SHOWN;
}

static void republish_start(struct wb *w)
{
    w->republishing = true;
    w->republish_next = 0;
}

static void devices_done(struct wb *w, const struct event *ev)
{
    w->cfg = ev->u.done.cfg;
    if (!build_subs(w, w->cfg))
        log_error("mirror: out of memory building the /on subscriptions");
    if (w->building) {
        uint32_t *dirty = calloc(w->n_next ? w->n_next : 1, sizeof(*dirty));
        if (dirty) {
            table_free(w->devs, w->n_devs);
            free(w->dirty);
            w->devs = w->next;
            w->n_devs = w->n_next;
            w->dirty = dirty;
        } else {
            log_error("mirror: out of memory: keeping the old table");
            table_free(w->next, w->n_next);
        }
        w->next = NULL;
        w->n_next = 0;
        w->building = false;
        w->n_dirty = 0;
        w->next_scan_ms = INT64_MAX;
    }
    if (ev->u.done.reload) {
        w->mem_dirty = true; /* saved from the next tick */
        w->mem_due_ms = 0;
        if (w->connected) {
            publish_bridge_device(w); /* the scenarios may have changed */
            republish_start(w);
        }
    }
}

static void fields_event(struct wb *w, const struct event *ev)
{
    const struct sink_device *sd = ev->dev;
    struct wdev *d = dev_of(w, sd);
    if (!d || !sd->cfg->wb_mirror)
        return;
    for (size_t i = 0; i < ev->u.fields.n; i++)
        wb_publish_field(w, d, sd, ev->u.fields.c[i].index);
}

/* errors_set's key of a control. */
static void error_key(const char *device_id, const char *action, char *key, size_t cap)
{
    util_join(key, cap, device_id, "/", action);
}

bool wb_write_error(const struct wb *w, const char *device_id, const char *action)
{
    char key[300];
    error_key(device_id, action, key, sizeof(key));
    return json_object_object_get_ex(w->errors_set, key, NULL);
}

bool wb_set_write_error(struct wb *w, const char *device_id, const char *action, bool error)
{
    if (error == wb_write_error(w, device_id, action))
        return false;
    char key[300];
    error_key(device_id, action, key, sizeof(key));
    if (error)
        json_object_object_add(w->errors_set, key, NULL);
    else
        json_object_object_del(w->errors_set, key);
    return true;
}

/* WB convention: meta/error "w" on a control whose last write failed;
 * cleared by the next one that succeeds. The scenario control's is
 * published after every command on it. */
static void command_event(struct wb *w, const struct ev_command *c, const struct sink_view *view)
{
    if (!c->dev && strcmp(c->device_id, w->cfg->bridge_device_id) == 0 &&
        strcmp(c->action, "scenario") == 0) {
        bool bad = c->verdict != EV_CMD_SENT;
        mirror_control_error(&w->pub, c->device_id, "scenario", bad ? "w" : "");
        return;
    }
    if (!c->dev || !c->dev->wb_mirror || !mirror_field_name_ok(c->action))
        return;
    bool error;
    if (c->verdict == EV_CMD_SENT)
        error = false;
    else if (c->verdict == EV_CMD_INVALID || c->verdict == EV_CMD_REFUSED)
        error = true;
    else
        return; /* not delivered: the write itself did not fail */
    wb_command_result(w, c->dev, c->action, c->params, error, view);
}

static void scenario_event(struct wb *w, const struct event *ev)
{
    char *v = strdup(ev->u.scenario.active ? ev->u.scenario.active : "none");
    if (!v)
        return;
    free(w->scenario);
    w->scenario = v;
    publish_scenario_value(w);
}

/* Shutdown: the values held back by the interval, then every mirrored
 * device and the bridge marked offline. */
static void stopping(struct wb *w, const struct sink_view *view)
{
    wb_memory_tick(w, view, INT64_MAX); /* the store's flush follows */
    if (!w->connected)
        return;
    wb_flush(w, view, INT64_MAX);
    for (size_t i = 0; i < w->cfg->n_devices; i++)
        if (w->cfg->devices[i].wb_mirror)
            mirror_device_error(&w->pub, w->cfg->devices[i].id, "offline");
    mirror_device_error(&w->pub, w->cfg->bridge_device_id, "offline");
}

static void wb_event(struct sink *s, const struct event *ev, const struct sink_view *view)
{
    struct wb *w = self(s);
    switch (ev->kind) {
    case EV_DEVICE_ADDED:
    case EV_DEVICE_CHANGED:
        device_event(w, ev, view);
        break;
    case EV_DEVICE_REMOVED:
        wb_device_removed(w, ev->dev);
        break;
    case EV_DEVICES_DONE:
        devices_done(w, ev);
        break;
    case EV_FIELDS:
        fields_event(w, ev);
        break;
    case EV_AVAILABILITY:
        if (dev_of(w, ev->dev))
            wb_availability(w, dev_of(w, ev->dev), ev->dev, ev->u.availability.online);
        break;
    case EV_SCENARIO:
        scenario_event(w, ev);
        break;
    case EV_COMMAND:
        command_event(w, &ev->u.command, view);
        break;
    case EV_LINK_UP:
        w->connected = true;
        publish_bridge_device(w);
        wb_clear_stale(w, view); /* what is gone, before what is there */
        republish_start(w);
        break;
    case EV_LINK_DOWN:
        w->connected = false;
        w->republishing = false;
        break;
    case EV_STOPPING:
        stopping(w, view);
        break;
    }
}

/* Queues the next devices of the republish round while the sender's
 * backlog is short; ends the round after the last one. Unmirrored devices
 * are skipped even past the budget, so a round whose last mirrored device
 * was just published reports itself complete. */
static void republish_pump(struct wb *w, const struct sink_view *view)
{
    size_t n = view->count(view->ud);
    while (w->republishing && w->connected &&
           (!w->pub.backlog || w->pub.backlog(w->pub.ud) < REPUBLISH_BACKLOG)) {
        size_t done = 0;
        struct sink_device sd;
        for (; w->republish_next < n && w->republish_next < w->n_devs; w->republish_next++) {
            if (!view->device(view->ud, w->republish_next, &sd) || !sd.cfg->wb_mirror)
                continue;
            if (done == REPUBLISH_STEP_DEVICES)
                break;
            wb_publish_device(w, &w->devs[w->republish_next], &sd);
            done++;
        }
        if (w->republish_next >= n || w->republish_next >= w->n_devs) {
            w->republishing = false;
            log_debug("republished %zu devices", n);
        }
    }
}

static int64_t wb_tick(struct sink *s, const struct sink_view *view, int64_t now_ms, bool light)
{
    struct wb *w = self(s);
    if (!light) {
        republish_pump(w, view);
        wb_memory_tick(w, view, now_ms);
    }
    int64_t next = wb_flush(w, view, now_ms);
    /* A light tick does not ask for the round's next step: the loop's own
     * tick asked already (a wake-up per message would only speed the round
     * past the sender's pace). */
    if (!light && w->republishing && now_ms + REPUBLISH_POLL_MS < next)
        next = now_ms + REPUBLISH_POLL_MS;
    return next;
}

/* ---- input: /devices/<own id>/... ---------------------------------------- */

static const char *const *wb_subscriptions(struct sink *s, size_t *n)
{
    struct wb *w = self(s);
    *n = w->n_subs;
    return (const char *const *)w->subs;
}

/* Ids whose /devices/<id>/ topics are ours: the bridge and mirrored devices. */
static bool is_own_id(const struct wb *w, const char *id)
{
    if (strcmp(id, w->cfg->bridge_device_id) == 0)
        return true;
    const struct cfg_device *d = cfg_find_device(w->cfg, id);
    return d && d->wb_mirror;
}

/* Splits /devices/<id>/<rest> into id (copied to idbuf) and rest; false
 * when topic is not of that form. */
static bool split_topic(const char *topic, char *idbuf, size_t cap, const char **rest)
{
    if (strncmp(topic, "/devices/", 9) != 0)
        return false;
    const char *id = topic + 9;
    const char *slash = strchr(id, '/');
    if (!slash || (size_t)(slash - id) >= cap)
        return false;
    memcpy(idbuf, id, (size_t)(slash - id));
    idbuf[slash - id] = '\0';
    *rest = slash + 1;
    return true;
}

/* The control of a /devices/<id>/controls/<control>/on topic's rest. */
static bool on_control(const char *rest, char *cbuf, size_t cap)
{
    if (strncmp(rest, "controls/", 9) != 0)
        return false;
    const char *control = rest + 9;
    const char *on = strchr(control, '/');
    if (!on || strcmp(on, "/on") != 0 || (size_t)(on - control) >= cap)
        return false;
    memcpy(cbuf, control, (size_t)(on - control));
    cbuf[on - control] = '\0';
    return true;
}

static bool take_echo(struct wb *w, const char *topic, const char *payload, size_t len)
{
    int64_t now = util_mono_ms();
    for (size_t i = 0; i < ECHO_SLOTS; i++) {
        if (!w->echo[i].topic || w->echo[i].until_ms < now ||
            strcmp(w->echo[i].topic, topic) != 0 || w->echo[i].len != len ||
            memcmp(w->echo[i].payload, payload, len) != 0)
            continue;
        free(w->echo[i].topic);
        free(w->echo[i].payload);
        w->echo[i].topic = w->echo[i].payload = NULL;
        return true;
    }
    return false;
}

static enum sink_input wb_input(struct sink *s, const char *topic, const char *payload, size_t len,
                                bool retained, struct sink_command *cmd)
{
    struct wb *w = self(s);
    static _Thread_local char idbuf[128], cbuf[CONTROL_NAME_MAX + 1];
    const char *rest;
    if (!split_topic(topic, idbuf, sizeof(idbuf), &rest) || !is_own_id(w, idbuf))
        return SINK_IN_NONE;
    if (!on_control(rest, cbuf, sizeof(cbuf)) || take_echo(w, topic, payload, len))
        return SINK_IN_OWN; /* our own publication seen again */
    *cmd = (struct sink_command){
        .device_id = idbuf, .action = cbuf, .payload = payload, .len = len, .retained = retained};
    /* A writable switch of a field: 1 runs its on action, 0 its off one. */
    const struct cfg_device *dev = cfg_find_device(w->cfg, idbuf);
    if (dev && !retained && !cfg_find_action(dev, cbuf) && wb_field_switch(dev, cbuf, NULL, NULL)) {
        const struct cfg_action *a = wb_switch_input(w, dev, cbuf, payload, len);
        if (!a)
            return SINK_IN_OWN; /* refused, logged and shown as "w" */
        cmd->action = a->name;
        cmd->payload = "1";
        cmd->len = 1;
    }
    return SINK_IN_COMMAND;
}

static void wb_expect_echo(struct sink *s, const char *topic, const char *payload, size_t len)
{
    struct wb *w = self(s);
    char idbuf[128], cbuf[CONTROL_NAME_MAX + 1];
    const char *rest;
    if (!split_topic(topic, idbuf, sizeof(idbuf), &rest) || !is_own_id(w, idbuf) ||
        !on_control(rest, cbuf, sizeof(cbuf)))
        return;
    size_t i = w->echo_next++ % ECHO_SLOTS;
    free(w->echo[i].topic);
    free(w->echo[i].payload);
    w->echo[i].topic = strdup(topic);
    w->echo[i].payload = malloc(len ? len : 1);
    if (w->echo[i].payload)
        memcpy(w->echo[i].payload, payload, len);
    w->echo[i].len = len;
    w->echo[i].until_ms = util_mono_ms() + ECHO_TTL_MS;
    if (!w->echo[i].topic || !w->echo[i].payload) {
        free(w->echo[i].topic);
        free(w->echo[i].payload);
        w->echo[i].topic = w->echo[i].payload = NULL;
    }
}

static const struct sink_ops wb_ops = {
    .name = "wiren-board",
    .event = wb_event,
    .tick = wb_tick,
    .subscriptions = wb_subscriptions,
    .input = wb_input,
    .expect_echo = wb_expect_echo,
    .destroy = wb_destroy,
};

/*
 * api.c - the core's side of the HTTP API (struct http_backend, http.h).
 * (The live events for SSE clients are a sink: http_sink.c.)
 *
 * HTTP threads never touch device state: each read is a core call that
 * deep-copies what it needs on the core thread (a consistent snapshot), and
 * each action or switch is a core call that goes through the same
 * dispatch_action()/scenmgr functions as MQTT, so it is logged in
 * command_logs with source "http". Queries of the store's history tables run
 * on the HTTP thread (the store is thread-safe) after a core call has checked
 * that the device exists.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/api_history.h"
#include "core/api_rows.h"
#include "core/core.h"
#include "wbmb/log.h"
#include "wbmb/topic_gate.h"
#include "wbmb/util.h"

#define HEALTH_MQTT_GRACE_MS 30000

json_object *api_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(msg));
    return o;
}

/* ---- snapshots (core thread) ------------------------------------------- */

static json_object *copy(json_object *v)
{
    json_object *out = NULL;
    if (!v)
        return json_object_new_object();
    json_object_deep_copy(v, &out, NULL);
    return out;
}

static size_t device_index(struct core *a, const char *id)
{
    long i = devmgr_find(core_devmgr(a), id);
    return i < 0 ? SIZE_MAX : (size_t)i;
}

static json_object *device_summary(struct core *a, size_t i)
{
    const struct cfg_device *d = devmgr_device_cfg(core_devmgr(a), i);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(d->id));
    json_object_object_add(o, "name", json_object_new_string(d->name));
    json_object_object_add(o, "type", json_object_new_string(d->type ? d->type : ""));
    json_object_object_add(o, "online",
                           json_object_new_boolean(devmgr_device_online(core_devmgr(a), i)));
    json_object *st = devmgr_device_state_new(core_devmgr(a), i);
    json_object_object_add(o, "state", copy(st));
    json_object_put(st);
    return o;
}

static json_object *action_description(const struct cfg_action *act)
{
    json_object *o = json_object_new_object();
    json_object *params = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(act->name));
    for (size_t i = 0; i < act->n_params; i++) {
        const struct cfg_param *p = &act->params[i];
        json_object *po = json_object_new_object();
        json_object_object_add(po, "type", json_object_new_string(cfg_type_name(p->type)));
        if (p->has_min)
            json_object_object_add(po, "min", json_object_new_double(p->min));
        if (p->has_max)
            json_object_object_add(po, "max", json_object_new_double(p->max));
        json_object_object_add(po, "required", json_object_new_boolean(p->required));
        if (p->default_value)
            json_object_object_add(po, "default", copy(p->default_value));
        if (p->n_enum_values) {
            json_object *vals = json_object_new_array();
            for (size_t k = 0; k < p->n_enum_values; k++)
                json_object_array_add(vals, json_object_new_string(p->enum_values[k]));
            json_object_object_add(po, "values", vals);
        }
        json_object_object_add(params, p->name, po);
    }
    json_object_object_add(o, "params", params);
    return o;
}

static void call_devices(struct core *a, struct core_call *c)
{
    json_object *arr = json_object_new_array();
    size_t n = devmgr_count(core_devmgr(a));
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, device_summary(a, i));
    core_call_done(c, 200, arr);
}

static void call_device(struct core *a, struct core_call *c)
{
    size_t i = device_index(a, c->id);
    if (i == SIZE_MAX) {
        core_call_done(c, 404, api_error("unknown device '%s'", c->id));
        return;
    }
    json_object *o = device_summary(a, i);
    json_object *acts = json_object_new_array();
    const struct cfg_device *d = devmgr_device_cfg(core_devmgr(a), i);
    for (size_t k = 0; k < d->n_actions; k++)
        json_object_array_add(acts, action_description(&d->actions[k]));
    json_object_object_add(o, "actions", acts);
    core_call_done(c, 200, o);
}

static void call_device_state(struct core *a, struct core_call *c)
{
    json_object *st = devmgr_state_new(core_devmgr(a), c->id);
    if (!st)
        core_call_done(c, 404, api_error("unknown device '%s'", c->id));
    else
        core_call_done(c, 200, copy(st));
    json_object_put(st);
}

static void call_device_exists(struct core *a, struct core_call *c)
{
    if (!devmgr_has_device(core_devmgr(a), c->id))
        core_call_done(c, 404, api_error("unknown device '%s'", c->id));
    else
        core_call_done(c, 200, NULL);
}

/* The outcome of an HTTP action (core thread), at once or on the PUBACK. */
static void action_done(void *ud, const struct dispatch_result *r)
{
    struct core_call *c = ud;
    struct core *a = c->core;
    if (r->st != WB_OK) {
        /* Errors are {"error": "..."} (CONTRACT §6); the command id in the
         * text finds the request's command_logs row. 502: the broker refused
         * the command; 503: the broker is away or never answered. */
        int code = r->refused              ? 502
                   : r->st == WB_ERR_MQTT  ? 503
                   : r->st == WB_ERR_NOMEM ? 500
                                           : 400;
        core_call_done(c, code,
                       api_error("%s (command %s %s)", r->error, r->command_id, r->status));
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "command_id", json_object_new_string(r->command_id));
    json_object_object_add(o, "status", json_object_new_string(r->status));
    json_object *st = devmgr_state_new(core_devmgr(a), c->id);
    json_object_object_add(o, "state", copy(st));
    json_object_put(st);
    core_call_done(c, 200, o);
}

static void call_action(struct core *a, struct core_call *c)
{
    json_object *jaction = NULL, *params = NULL;
    if (!devmgr_has_device(core_devmgr(a), c->id)) {
        core_call_done(c, 404, api_error("unknown device '%s'", c->id));
        return;
    }
    if (!json_object_object_get_ex(c->request, "action", &jaction) ||
        !json_object_is_type(jaction, json_type_string)) {
        core_call_done(c, 400, api_error("the body needs \"action\": a string"));
        return;
    }
    if (json_object_object_get_ex(c->request, "params", &params) && params &&
        !json_object_is_type(params, json_type_object)) {
        core_call_done(c, 400, api_error("\"params\" must be a JSON object"));
        return;
    }
    struct dispatch_result r;
    c->core = a;
    dispatch_action_cb(core_dispatch(a), c->id, json_object_get_string(jaction), params, "http",
                       action_done, c, &r);
    if (!r.pending)
        action_done(c, &r);
    /* else the answer waits for the broker's PUBACK (at most
     * DISPATCH_ACK_TIMEOUT_MS): action_done() completes the call. */
}

static void call_scenario_state(struct core *a, struct core_call *c)
{
    core_call_done(c, 200, copy(scenmgr_state(core_scenmgr(a))));
}

static json_object *steps_json(const struct cfg_step *steps, size_t n)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_new_object();
        json_object_object_add(s, "device", json_object_new_string(steps[i].device));
        json_object_object_add(s, "action", json_object_new_string(steps[i].action));
        if (steps[i].params)
            json_object_object_add(s, "params", copy(steps[i].params));
        if (steps[i].delay_after_ms)
            json_object_object_add(s, "delay_after_ms",
                                   json_object_new_int64(steps[i].delay_after_ms));
        if (steps[i].when) {
            json_object *w = json_object_new_object();
            json_object_object_add(w, "field", json_object_new_string(steps[i].when->field));
            json_object_object_add(
                w, "op", json_object_new_string(steps[i].when->op == CFG_COND_EQ ? "==" : "!="));
            json_object_object_add(w, "value", copy(steps[i].when->value));
            json_object_object_add(s, "when", w);
        }
        json_object_array_add(arr, s);
    }
    return arr;
}

static void call_scenarios(struct core *a, struct core_call *c)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < core_config(a)->n_scenarios; i++) {
        const struct cfg_scenario *sc = &core_config(a)->scenarios[i];
        json_object *o = json_object_new_object();
        json_object *devs = json_object_new_array();
        for (size_t k = 0; k < sc->n_devices; k++)
            json_object_array_add(devs, json_object_new_string(sc->devices[k]));
        json_object_object_add(o, "id", json_object_new_string(sc->id));
        json_object_object_add(o, "name", json_object_new_string(sc->name));
        json_object_object_add(o, "devices", devs);
        json_object_object_add(o, "startup", steps_json(sc->startup, sc->n_startup));
        json_object_object_add(o, "shutdown", steps_json(sc->shutdown, sc->n_shutdown));
        json_object_array_add(arr, o);
    }
    core_call_done(c, 200, arr);
}

/* The end of a switch started for an HTTP request (core thread). */
static void switch_done(void *ud, json_object *result)
{
    struct core_call *c = ud;
    json_object *err;
    int code = json_object_object_get_ex(result, "error", &err) ? 503 : 200;
    core_call_done(c, code, copy(result));
}

static void finish_start(struct core_call *c, wb_status st, const char *id)
{
    if (st == WB_ERR_NOT_FOUND)
        core_call_done(c, 404, api_error("unknown scenario '%s'", id));
    else if (st == WB_ERR_BUSY)
        core_call_done(c, 409, api_error("a scenario switch is already running"));
    else if (st != WB_OK)
        core_call_done(c, 500, api_error("%s", wb_strerror(st)));
}

static void call_switch(struct core *a, struct core_call *c)
{
    json_object *jid;
    if (!json_object_object_get_ex(c->request, "id", &jid) ||
        !json_object_is_type(jid, json_type_string)) {
        core_call_done(c, 400, api_error("the body needs \"id\": a scenario id"));
        return;
    }
    const char *id = json_object_get_string(jid);
    finish_start(c, scenmgr_switch(core_scenmgr(a), id, switch_done, c), id);
}

static void call_shutdown(struct core *a, struct core_call *c)
{
    finish_start(c, scenmgr_shutdown(core_scenmgr(a), switch_done, c), "");
}

static void call_sse_init(struct core *a, struct core_call *c)
{
    json_object *o = json_object_new_object();
    json_object *arr = json_object_new_array();
    size_t n = devmgr_count(core_devmgr(a));
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, device_summary(a, i));
    json_object_object_add(o, "devices", arr);
    json_object_object_add(o, "scenario", copy(scenmgr_state(core_scenmgr(a))));
    core_call_done(c, 200, o);
}

static void metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        char *nb = realloc(*buf, *cap * 2);
        if (!nb)
            return;
        *buf = nb;
        *cap *= 2;
    }
}

static void call_metrics(struct core *a, struct core_call *c)
{
    struct devmgr_stats ds;
    struct store_status ss;
    struct queue_stats qs;
    struct mqttc_stats ms;
    devmgr_get_stats(core_devmgr(a), &ds);
    struct core_stats cs;
    store_get_status(core_store(a), &ss);
    queue_get_stats(core_queue(a), &qs);
    mqttc_get_stats(core_mqtt(a), &ms);
    core_get_stats(a, &cs);
    size_t cap = 4096, len = 0;
    char *t = malloc(cap);
    if (!t) {
        core_call_done(c, 500, api_error("out of memory"));
        return;
    }
    t[0] = '\0';
#define COUNTER(name, help, value)                                                                 \
    metric(&t, &len, &cap, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",   \
           (unsigned long long)(value))
#define GAUGE(name, help, value)                                                                   \
    metric(&t, &len, &cap, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %llu\n",     \
           (unsigned long long)(value))
/* A duration as the summary NAME_seconds (sum, count) and the gauge
 * NAME_max_seconds, from microseconds. */
#define LATENCY(name, help, max_help, sum_us, count, max_us)                                       \
    metric(&t, &len, &cap,                                                                         \
           "# HELP " name "_seconds " help "\n# TYPE " name "_seconds summary\n" name              \
           "_seconds_sum %.6f\n" name "_seconds_count %llu\n# HELP " name "_max_seconds " max_help \
           "\n# TYPE " name "_max_seconds gauge\n" name "_max_seconds %.6f\n",                     \
           (double)(sum_us) / 1e6, (unsigned long long)(count), (double)(max_us) / 1e6)
    metric(&t, &len, &cap,
           "# HELP wbmb_messages_total MQTT messages by outcome.\n"
           "# TYPE wbmb_messages_total counter\n"
           "wbmb_messages_total{outcome=\"received\"} %llu\n"
           "wbmb_messages_total{outcome=\"applied\"} %llu\n"
           "wbmb_messages_total{outcome=\"unchanged\"} %llu\n"
           "wbmb_messages_total{outcome=\"rejected\"} %llu\n"
           "wbmb_messages_total{outcome=\"unknown_topic\"} %llu\n"
           "wbmb_messages_total{outcome=\"own\"} %llu\n"
           "wbmb_messages_total{outcome=\"dropped\"} %llu\n",
           (unsigned long long)cs.received, (unsigned long long)ds.applied,
           (unsigned long long)ds.unchanged,
           (unsigned long long)(ds.rejected + cs.oversize_rejected), (unsigned long long)ds.unknown,
           (unsigned long long)cs.own, (unsigned long long)cs.dropped);
    COUNTER("wbmb_fields_rejected_total",
            "Fields of JSON state messages rejected alone (the others applied).",
            ds.fields_rejected);
    COUNTER("wbmb_mqtt_topics_refused_total",
            "Topics and filters the topic gate refused (never sent to the broker).",
            tgate_refused());
    COUNTER("wbmb_transitions_total", "State transitions applied.", ds.applied);
    COUNTER("wbmb_store_commits_total", "Store transactions committed.", ss.commits);
    COUNTER("wbmb_store_commit_failures_total", "Store commit attempts that failed.",
            ss.commit_failures);
    COUNTER("wbmb_store_rows_written_total", "State rows written after coalescing.",
            ss.rows_written);
    COUNTER("wbmb_store_sets_total", "State writes accepted by the store.", ss.sets);
    COUNTER("wbmb_store_history_dropped_total",
            "Queued history snapshots dropped while the database failed (max_queued_rows).",
            ss.history_dropped);
    GAUGE("wbmb_store_pending", "Changes queued and not yet committed.", ss.pending);
    GAUGE("wbmb_store_committed_seq",
          "Sequence number of the last committed state write (monotonic).", ss.committed_seq);
    GAUGE("wbmb_store_durable_seq",
          "Sequence number of the last state write synced to the disk (survives a power cut).",
          ss.durable_seq);
    COUNTER("wbmb_store_syncs_total", "WAL syncs of the sync policy (sync_interval_ms).", ss.syncs);
    GAUGE("wbmb_store_ok", "1 when the last commit succeeded.", ss.ok ? 1 : 0);
    COUNTER("wbmb_store_errors_total", "Store calls of the core that failed.", cs.store_errors);
    LATENCY("wbmb_commit_latency", "Duration of store commits.", "Longest store commit.",
            ss.commit_latency_us_sum, ss.commits, ss.commit_latency_us_max);
    LATENCY("wbmb_store_sync_latency", "Duration of the sync policy's syncs.", "Longest sync.",
            ss.sync_latency_us_sum, ss.syncs, ss.sync_latency_us_max);
    metric(&t, &len, &cap,
           "# HELP wbmb_store_durable_lag_max_seconds Longest time from a change queued to it "
           "surviving a power cut (the bound: commit_interval_ms + sync_interval_ms).\n"
           "# TYPE wbmb_store_durable_lag_max_seconds gauge\n"
           "wbmb_store_durable_lag_max_seconds %.3f\n",
           (double)ss.durable_lag_ms_max / 1e3);
    COUNTER("wbmb_store_checkpoint_failures_total",
            "Checkpoints of the SQLite WAL that failed (the frames stay in the WAL).",
            ss.checkpoint_failures);
    LATENCY("wbmb_store_checkpoint_latency",
            "Duration of the SQLite WAL checkpoints, run beside the writer.", "Longest checkpoint.",
            ss.checkpoint_latency_us_sum, ss.checkpoints, ss.checkpoint_latency_us_max);
    GAUGE("wbmb_queue_depth", "Messages waiting for the core thread.", qs.depth);
    GAUGE("wbmb_queue_capacity", "Slots of the intake queue.", qs.capacity);
    COUNTER("wbmb_queue_full_waits_total", "Times paho's thread waited for a free slot.",
            qs.full_waits);
    GAUGE("wbmb_mqtt_connected", "1 while connected to the broker.", ms.connected ? 1 : 0);
    COUNTER("wbmb_mqtt_connects_total", "Successful connects, the first included.", ms.connects);
    COUNTER("wbmb_mqtt_disconnects_total", "Connection losses (each logged with its reason).",
            ms.disconnects);
    GAUGE("wbmb_mqtt_flapping",
          "1 while more losses than mqtt.flap_disconnects fall within "
          "mqtt.flap_window_s.",
          ms.flapping ? 1 : 0);
    GAUGE("wbmb_mqtt_protocol", "MQTT version spoken: 5, or 4 for 3.1.1.", ms.protocol);
    COUNTER("wbmb_mqtt_subscriptions_refused_total",
            "Subscriptions the broker refused (SUBACK reason code >= 0x80).",
            ms.subscriptions_refused);
    COUNTER("wbmb_mqtt_publish_refused_total",
            "Acknowledged publications (actions) the broker refused (PUBACK >= 0x80).",
            ms.publish_refused);
    COUNTER("wbmb_mqtt_published_total", "Publications accepted by the client.", ms.published);
    COUNTER("wbmb_mqtt_publish_coalesced_total",
            "Retained publications replaced by a newer value of the same topic before they were "
            "sent (the broker got the newer one only).",
            ms.coalesced);
    COUNTER("wbmb_mqtt_publish_failures_total", "Publications refused.", ms.publish_failures);
    GAUGE("wbmb_uptime_seconds", "Seconds since start.",
          (util_mono_ms() - cs.started_mono_ms) / 1000);
#ifndef NDEBUG
    COUNTER("wbmb_debug_inplace_messages_total",
            "Debug build: messages applied in place on paho's thread.", cs.inplace_messages);
    COUNTER("wbmb_debug_inplace_locks_total",
            "Debug build: mutexes of ours taken for the messages applied in place.",
            cs.inplace_locks);
    GAUGE("wbmb_debug_inplace_locks_max",
          "Debug build: the most mutexes of ours one message applied in place took.",
          cs.inplace_locks_max);
#endif
#undef COUNTER
#undef GAUGE
#undef LATENCY
    c->text = t;
    core_call_done(c, 200, NULL);
}

/* ---- the backend (HTTP threads) ---------------------------------------- */

static int run_call(void *ud, core_call_fn fn, const char *id, json_object *req, json_object **body)
{
    struct core_call c = {.fn = fn, .id = id, .request = req};
    int code = core_call_run(ud, &c);
    *body = c.body;
    return code;
}

static int be_devices(void *ud, json_object **body)
{
    return run_call(ud, call_devices, NULL, NULL, body);
}

static int be_device(void *ud, const char *id, json_object **body)
{
    return run_call(ud, call_device, id, NULL, body);
}

static int be_device_state(void *ud, const char *id, json_object **body)
{
    return run_call(ud, call_device_state, id, NULL, body);
}

static int be_action(void *ud, const char *id, json_object *req, json_object **body)
{
    return run_call(ud, call_action, id, req, body);
}

static int be_scenario_state(void *ud, json_object **body)
{
    return run_call(ud, call_scenario_state, NULL, NULL, body);
}

static int be_scenarios(void *ud, json_object **body)
{
    return run_call(ud, call_scenarios, NULL, NULL, body);
}

static int be_switch(void *ud, json_object *req, json_object **body)
{
    return run_call(ud, call_switch, NULL, req, body);
}

static int be_shutdown(void *ud, json_object **body)
{
    return run_call(ud, call_shutdown, NULL, NULL, body);
}

/* The rows of a store query as the API's JSON (api_rows.c), or 503. */
static int query_result(wb_status st, struct store_rows *rows, json_object **body)
{
    if (st != WB_OK)
        *body = api_error("the store could not answer: %s", wb_strerror(st));
    else
        *body = api_rows_json(rows);
    store_rows_free(rows);
    return st == WB_OK ? 200 : 503;
}

/* A per-device history query: 404 for an unknown device (asked of the
 * core), then the store's query on this thread (the store is thread-safe). */
typedef wb_status (*device_query_fn)(struct state_store *s, const char *device_id, int limit,
                                     struct store_rows *out);

static int device_query(void *ud, device_query_fn query, const char *id, int limit,
                        json_object **body)
{
    struct core *a = ud;
    int code = run_call(ud, call_device_exists, id, NULL, body);
    if (code != 200)
        return code;
    struct store_rows rows;
    wb_status st = query(core_store(a), id, limit, &rows);
    return query_result(st, &rows, body);
}

static int be_history(void *ud, const char *id, const struct http_history_args *args,
                      json_object **body)
{
    struct core *a = ud;
    int code = run_call(ud, call_device_exists, id, NULL, body);
    if (code != 200)
        return code;
    return api_history_answer(core_store(a), id, args, body);
}

static int be_connections(void *ud, const char *id, int limit, json_object **body)
{
    return device_query(ud, store_connection_rows, id, limit, body);
}

static int be_commands(void *ud, const char *status, const char *device_id, int limit,
                       json_object **body)
{
    struct core *a = ud;
    struct store_command_filter f = {.status = status, .device_id = device_id};
    struct store_rows rows;
    wb_status st = store_command_rows(core_store(a), &f, limit, &rows);
    return query_result(st, &rows, body);
}

static int be_health(void *ud, json_object **body)
{
    struct core *a = ud;
    struct store_status ss;
    store_get_status(core_store(a), &ss);
    struct mqttc_stats ms;
    mqttc_get_stats(core_mqtt(a), &ms);
    bool up = ms.connected;
    int64_t since = core_disconnected_since_ms(a);
    /* Down for more than 30 s, or flapping: more than mqtt.flap_disconnects
     * losses within mqtt.flap_window_s (a reconnect loop whose short
     * connections each restart the 30 s). */
    bool mqtt_bad =
        ms.flapping || (!up && since != 0 && util_mono_ms() - since > HEALTH_MQTT_GRACE_MS);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status",
                           json_object_new_string(ss.ok && !mqtt_bad ? "ok" : "degraded"));
    json_object_object_add(o, "mqtt",
                           json_object_new_string(ms.flapping ? "flapping"
                                                  : up        ? "connected"
                                                              : "disconnected"));
    json_object_object_add(o, "db", json_object_new_string(ss.ok ? "ok" : "error"));
    json_object_object_add(o, "uptime_s",
                           json_object_new_int64((util_mono_ms() - core_started_ms(a)) / 1000));
    if (!ss.ok && ss.last_error_text[0])
        json_object_object_add(o, "db_error", json_object_new_string(ss.last_error_text));
    *body = o;
    return ss.ok && !mqtt_bad ? 200 : 503;
}

static int be_metrics(void *ud, char **text)
{
    struct core_call c = {.fn = call_metrics};
    int code = core_call_run(ud, &c);
    json_object_put(c.body);
    *text = c.text;
    if (!*text)
        *text = strdup("# the bridge is shutting down\n");
    return code == 200 ? 200 : 503;
}

static json_object *be_sse_init(void *ud)
{
    struct core_call c = {.fn = call_sse_init};
    core_call_run(ud, &c);
    return c.body;
}

void api_backend(struct core *a, struct http_backend *be)
{
    memset(be, 0, sizeof(*be));
    be->ud = a;
    be->get_devices = be_devices;
    be->get_device = be_device;
    be->get_device_state = be_device_state;
    be->post_action = be_action;
    be->get_scenario_state = be_scenario_state;
    be->get_scenarios = be_scenarios;
    be->post_scenario_switch = be_switch;
    be->post_scenario_shutdown = be_shutdown;
    be->get_state_history = be_history;
    be->get_command_logs = be_commands;
    be->get_connection_history = be_connections;
    be->get_health = be_health;
    be->get_metrics = be_metrics;
    be->sse_init = be_sse_init;
}

/*
 * core.c - the core: the loop, the handling of queued items, the sinks'
 * ticks (the mirror's held values, its republish rounds), and the routing
 * of commands (see core.h).
 *
 * Who owns the state. Device and scenario state (the device manager, the
 * dispatcher with its pending commands, the scenario manager) belongs to
 * the core, and the core is whoever holds core_mu: the core thread (this
 * loop), or paho's receive thread applying a message in place when nothing
 * is queued ahead of it. That one rule is all other modules need: every
 * entry point of devmgr, dispatch and scenmgr asserts it in debug builds
 * (owner.h: owner_enter() right after taking core_mu, owner_leave() right
 * before releasing it), and the sinks are called only from here, so they
 * run on the core too. Why the in-place apply: a message applied on the
 * thread that read it costs no copy into the queue, no wake-up of the core
 * thread and no context switch; at a flood the queue fills and the core
 * thread takes over, in order (the queue is checked empty again under
 * core_mu, so a message applied in place never overtakes a queued one).
 * Measured with ./scripts/bench.sh e2e (bench/RESULTS.md, issue 16).
 *
 *   paho thread --core_on_message--> [bounded queue] --> core thread (core_run)
 *        |                                                 |
 *        '-- queue empty: applied in place under core_mu --+
 *                                                          v
 *            sinks_input() (a sink's own topics: /on commands) or devmgr
 *                                                          |
 *                              events (sink.h) ------------+--> store sink
 *                                                          +--> Wiren Board mirror
 *                                                          '--> HTTP live events
 *
 * Hot-path budget (README, "Design"): a message applied in place takes at
 * most two mutexes of ours when no SSE client listens and the outbox is
 * idle - core_mu and the store's. Debug builds count them (lockstat.h) and
 * /metrics shows the counts (wbmb_debug_inplace_*).
 */
#include "core/core.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/owner.h"
#include "wbmb/payload.h"
#include "wbmb/sdnotify.h"
#include "wbmb/store_sink.h"
#include "wbmb/util.h"

#define QUEUE_POLL_MS 100
#define BURST_ITEMS 1024 /* queued items applied before the timers are looked at */

struct core {
    /* Taken around every queue pop and the work it leads to, and by paho's
     * thread for a message applied in place. Invariant: with core_mu held
     * and the queue empty, everything pushed so far has been handled. */
    pthread_mutex_t core_mu;
    bool apply_in_place;  /* under core_mu: the loop runs (not at start-up or shutdown) */
    char *msg_buf;        /* under core_mu: NUL-terminated copy of an in-place payload */
    int64_t core_wake_ms; /* under core_mu: when the sleeping loop looks at its timers */
    bool timers_changed;  /* under core_mu: a command may have started a timer */
    struct config *cfg;
    struct state_store *store; /* thread-safe */
    struct queue *queue;       /* thread-safe */
    struct devmgr *devmgr;
    struct mqttc *mqtt; /* thread-safe */
    struct scenmgr *scenmgr;
    struct dispatch_ctx dispatch;
    struct sinks sinks;
    struct sink *store_sink; /* also in sinks: its error count */
    /* The sinks' memories (core_sink_memory): one store key each. */
    struct mem_slot {
        struct core *c;
        char key[32];
    } mem[CORE_MEMORY_SLOTS];
    size_t n_mem;
    bool connected;
    int64_t started_mono_ms;
    uint64_t own;
    uint64_t inplace_messages, inplace_locks, inplace_locks_max;
    /* Written on paho's thread, read anywhere. */
    atomic_uint_fast64_t received;
    atomic_uint_fast64_t oversize_rejected;
    atomic_uint_fast64_t dropped;
    atomic_int_fast64_t disconnected_since_ms; /* 0 while connected */
};

static void lock_core(struct core *c)
{
    wb_lock(&c->core_mu);
    owner_enter();
}

static void unlock_core(struct core *c)
{
    owner_leave();
    pthread_mutex_unlock(&c->core_mu);
}

/* ---- publishing -------------------------------------------------------- */

static wb_status publish(void *ud, const char *topic, const char *payload, size_t len, int qos,
                         bool retained)
{
    struct core *c = ud;
    if (!c->mqtt || !c->connected)
        return WB_ERR_MQTT; /* everything is republished after the next connect */
    return mqttc_publish(c->mqtt, topic, payload, len, qos, retained);
}

static size_t backlog(void *ud)
{
    return mqttc_backlog(((struct core *)ud)->mqtt);
}

struct mirror_publisher core_mirror_publisher(struct core *c)
{
    return (struct mirror_publisher){.fn = publish, .ud = c, .backlog = backlog};
}

/* A sink's memory of what it published (the Wiren Board mirror's
 * "wb:published", the Home Assistant sink's "ha:published"): one key of
 * the store, written like any other (batched, durable with the next
 * commit). */
static json_object *memory_load(void *ud)
{
    const struct mem_slot *m = ud;
    json_object *v = NULL;
    if (store_get(m->c->store, m->key, &v) != WB_OK)
        return NULL;
    return v;
}

static void memory_save(void *ud, json_object *v)
{
    const struct mem_slot *m = ud;
    wb_status st = store_set(m->c->store, m->key, v);
    if (st != WB_OK)
        log_warn("cannot remember the published topics in %s: %s", m->key, wb_strerror(st));
}

struct mirror_memory core_sink_memory(struct core *c, const char *key)
{
    struct mem_slot *m = NULL;
    for (size_t i = 0; i < c->n_mem && !m; i++)
        if (strcmp(c->mem[i].key, key) == 0)
            m = &c->mem[i];
    if (!m && c->n_mem < CORE_MEMORY_SLOTS && strlen(key) < sizeof(m->key)) {
        m = &c->mem[c->n_mem++];
        m->c = c;
        snprintf(m->key, sizeof(m->key), "%s", key);
    }
    if (!m)
        return (struct mirror_memory){0}; /* remembers nothing */
    return (struct mirror_memory){.load = memory_load, .save = memory_save, .ud = m};
}

/* paho's or the sender's thread: the broker's answer to a command
 * (mqttc_publish_acked, which never calls it inside itself). */
static void on_command_ack(void *ud, uint64_t token, int rc, const char *why)
{
    struct core *c = ud;
    lock_core(c);
    dispatch_on_ack(&c->dispatch, token, rc, why);
    /* A scenario may go on to its next step, or start a delay: the loop
     * looks at its timers again. */
    queue_kick(c->queue);
    unlock_core(c);
}

/* dispatch_ctx.publish_acked: commands are QoS 1 and wait for their PUBACK. */
static wb_status publish_acked(void *ud, const char *topic, const char *payload, size_t len,
                               uint64_t token)
{
    struct core *c = ud;
    if (!c->mqtt || !c->connected)
        return WB_ERR_MQTT;
    return mqttc_publish_acked(c->mqtt, topic, payload, len, 1, on_command_ack, c, token);
}

/* The device manager's filters, then each sink's, to mqttc. */
static void subscribe(struct core *c)
{
    size_t n_dev, total;
    const char *const *dev = devmgr_subscriptions(c->devmgr, &n_dev);
    total = n_dev;
    const char *const *sub[SINKS_MAX] = {0};
    size_t n_sub[SINKS_MAX] = {0};
    for (size_t i = 0; i < c->sinks.n; i++) {
        struct sink *s = c->sinks.s[i];
        if (s->ops->subscriptions) {
            sub[i] = s->ops->subscriptions(s, &n_sub[i]);
            total += n_sub[i];
        }
    }
    const char **all = malloc((total ? total : 1) * sizeof(*all));
    if (!all) {
        log_error("out of memory building the subscriptions");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_dev; i++)
        all[k++] = dev[i];
    for (size_t i = 0; i < c->sinks.n; i++)
        for (size_t j = 0; j < n_sub[i]; j++)
            all[k++] = sub[i][j];
    if (c->mqtt)
        mqttc_set_subscriptions(c->mqtt, all, k, 1); /* copies them */
    free(all);
}

/* ---- start-up and shutdown --------------------------------------------- */

struct core *core_create(struct config *cfg, struct state_store *store, struct queue *queue,
                         char *err, size_t errlen)
{
    struct core *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        cfg_free(cfg);
        return NULL;
    }
    pthread_mutex_init(&c->core_mu, NULL);
    c->cfg = cfg;
    c->store = store;
    c->queue = queue;
    c->started_mono_ms = util_mono_ms();
    atomic_init(&c->received, 0);
    atomic_init(&c->oversize_rejected, 0);
    atomic_init(&c->dropped, 0);
    atomic_init(&c->disconnected_since_ms, util_mono_ms());
    /* NULL: every message is queued. WBMB_APPLY_IN_PLACE=0 asks for that
     * (the benchmark's comparison of the two paths, bench/RESULTS.md). */
    const char *inplace = getenv("WBMB_APPLY_IN_PLACE");
    if (!inplace || strcmp(inplace, "0") != 0)
        c->msg_buf = malloc(PAYLOAD_MAX_LEN + 1);
    if (!(c->devmgr = devmgr_create(cfg, &c->sinks, NULL, err, errlen)))
        goto fail;
    devmgr_view(c->devmgr, &c->sinks.view);
    c->dispatch = (struct dispatch_ctx){.cfg = cfg,
                                        .devmgr = c->devmgr,
                                        .sinks = &c->sinks,
                                        .publish_acked = publish_acked,
                                        .publish_acked_ud = c};
    if (!(c->scenmgr = scenmgr_create(cfg, &c->dispatch, &c->sinks))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* The first sink, always: persistence is the core's own. */
    if (!(c->store_sink = store_sink_create(store, cfg)) ||
        sinks_add(&c->sinks, c->store_sink) != WB_OK) {
        snprintf(err, errlen, "out of memory");
        free(c->store_sink);
        c->store_sink = NULL;
        goto fail;
    }
    return c;
fail:
    core_destroy(c);
    return NULL;
}

wb_status core_add_sink(struct core *c, struct sink *s)
{
    if (!s)
        return WB_ERR_NOMEM;
    lock_core(c);
    wb_status st = sinks_add(&c->sinks, s);
    unlock_core(c);
    if (st != WB_OK && s->ops->destroy)
        s->ops->destroy(s);
    return st;
}

struct restore_ctx {
    struct devmgr *m;
    size_t restored;
};

static int restore_device(const char *key, json_object *v, void *ud)
{
    struct restore_ctx *rc = ud;
    if (devmgr_restore_state(rc->m, key + strlen("device:"), v))
        rc->restored++;
    return 0;
}

/* One ordered range scan of "device:*" rather than a lookup per device:
 * one read transaction for 10 000 devices instead of 10 000. A device no
 * longer configured stays in the store untouched. */
static size_t restore_devices(struct core *c, struct devmgr *m)
{
    struct restore_ctx rc = {m, 0};
    if (store_list(c->store, "device:", restore_device, &rc) != WB_OK)
        log_warn("store: could not list the stored devices; starting with empty states");
    return rc.restored;
}

size_t core_restore(struct core *c)
{
    lock_core(c);
    size_t n = restore_devices(c, c->devmgr);
    devmgr_announce(c->devmgr, NULL);
    json_object *last = NULL;
    if (store_get(c->store, "scenario:last", &last) != WB_OK)
        last = NULL;
    scenmgr_restore(c->scenmgr, last);
    unlock_core(c);
    return n;
}

void core_set_mqtt(struct core *c, struct mqttc *mqtt)
{
    lock_core(c);
    c->mqtt = mqtt;
    subscribe(c);
    unlock_core(c);
}

/* ---- commands ------------------------------------------------------------ */

static void log_switch_result(void *ud, json_object *result)
{
    (void)ud;
    log_info("scenario request over: %s",
             json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
}

/* The bridge device's scenario control: a scenario id switches, "none"
 * shuts the active one down. Its outcome is an EV_COMMAND without a
 * command_logs row (the mirror shows it as the control's meta/error). */
static void scenario_command(struct core *c, const char *payload, size_t len)
{
    char id[128];
    bool ok = false;
    while (len > 0 && (payload[len - 1] == ' ' || payload[len - 1] == '\n'))
        len--;
    if (len == 0 || len >= sizeof(id)) {
        log_warn("scenario command: expected a scenario id or 'none'");
        id[0] = '\0';
    } else {
        memcpy(id, payload, len);
        id[len] = '\0';
        wb_status st = strcmp(id, "none") == 0
                           ? scenmgr_shutdown(c->scenmgr, log_switch_result, c)
                           : scenmgr_switch(c->scenmgr, id, log_switch_result, c);
        ok = st == WB_OK;
        if (!ok)
            log_warn("scenario command '%.64s' refused: %s", id,
                     st == WB_ERR_BUSY ? "a switch is already running" : "unknown scenario");
    }
    struct event ev = {.kind = EV_COMMAND, .now_ms = util_mono_ms()};
    ev.u.command = (struct ev_command){.device_id = c->cfg->bridge_device_id,
                                       .action = "scenario",
                                       .params = id,
                                       .source = "mqtt",
                                       .status = ok ? "sent" : "rejected",
                                       .verdict = ok ? EV_CMD_SENT : EV_CMD_INVALID};
    sinks_emit(&c->sinks, &ev);
}

/* A command a sink found on its input topics (a Wiren Board /on topic). */
static void route_command(struct core *c, const struct sink_command *cmd)
{
    c->timers_changed = true; /* a scenario or an action may wait on a timer */
    if (cmd->retained) {
        /* A retained command would re-run at every reconnect: never act on it. */
        log_debug("ignoring retained command on %s/%s", cmd->device_id, cmd->action);
        return;
    }
    if (strcmp(cmd->device_id, c->cfg->bridge_device_id) == 0) {
        if (strcmp(cmd->action, "scenario") == 0)
            scenario_command(c, cmd->payload, cmd->len);
        else
            log_warn("bridge device has no control '%.64s'", cmd->action);
        return;
    }
    struct dispatch_result res;
    dispatch_action_payload(&c->dispatch, cmd->device_id, cmd->action, cmd->payload, cmd->len,
                            "mqtt", &res);
}

/* One message, on the core: a sink's own topic, or the device manager's. */
static void handle_message(struct core *c, const char *topic, const char *payload, size_t len,
                           bool retained, int64_t now_ms)
{
    struct sink_command cmd;
    switch (sinks_input(&c->sinks, topic, payload, len, retained, &cmd)) {
    case SINK_IN_NONE:
        devmgr_handle_message(c->devmgr, topic, payload, len, now_ms);
        break;
    case SINK_IN_OWN:
        c->own++;
        break;
    case SINK_IN_COMMAND:
        route_command(c, &cmd);
        break;
    }
}

/* ---- paho's threads ------------------------------------------------------ */

void core_on_message(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    struct core *c = ud;
    atomic_fetch_add_explicit(&c->received, 1, memory_order_relaxed);
    if (len > PAYLOAD_MAX_LEN) {
        /* Bounded before it is copied anywhere: a 1 MB payload is refused. */
        atomic_fetch_add(&c->oversize_rejected, 1);
        log_warn("rejected message on '%s': payload of %zu bytes is over the %d byte limit", topic,
                 len, PAYLOAD_MAX_LEN);
        return;
    }
    /* Applied right here on paho's thread when nothing waits in the queue
     * (so nothing can be overtaken): see the top of this file. Queued
     * otherwise, behind what is already there. */
    if (queue_empty(c->queue)) {
        uint64_t locks0 = lockstat_thread();
        lock_core(c);
        if (c->apply_in_place && queue_empty(c->queue)) {
            memcpy(c->msg_buf, payload, len);
            c->msg_buf[len] = '\0';
            int64_t now = util_mono_ms();
            handle_message(c, topic, c->msg_buf, len, retained, now);
            /* Held mirror values that are due go out from here; wake the
             * loop when a timer now falls before its planned wake-up. */
            if (sinks_tick(&c->sinks, now, true) < c->core_wake_ms || c->timers_changed) {
                c->timers_changed = false;
                queue_kick(c->queue);
            }
            uint64_t locks = lockstat_thread() - locks0;
            c->inplace_messages++;
            c->inplace_locks += locks;
            if (locks > c->inplace_locks_max)
                c->inplace_locks_max = locks;
            unlock_core(c);
            return;
        }
        unlock_core(c);
    }
    if (queue_push(c->queue, QUEUE_MSG, topic, payload, len, retained) != WB_OK)
        atomic_fetch_add(&c->dropped, 1);
}

void core_on_connection(void *ud, bool connected)
{
    struct core *c = ud;
    /* /health: 503 once the broker has been away for more than 30 s. */
    atomic_store(&c->disconnected_since_ms, connected ? 0 : util_mono_ms());
    if (queue_push(c->queue, connected ? QUEUE_CONN_UP : QUEUE_CONN_DOWN, "", "", 0, false) !=
        WB_OK)
        atomic_fetch_add(&c->dropped, 1);
}

/* ---- the loop ------------------------------------------------------------ */

static void link_event(struct core *c, enum ev_kind kind)
{
    struct event ev = {.kind = kind, .now_ms = util_mono_ms()};
    sinks_emit(&c->sinks, &ev);
}

static void handle_item(struct core *c, const struct queue_item *it)
{
    switch (it->kind) {
    case QUEUE_MSG:
        handle_message(c, it->topic, it->payload, it->payload_len, it->retained, util_mono_ms());
        break;
    case QUEUE_CONN_UP:
        c->connected = true;
        /* The mirror clears the Last Will, then republishes every retained
         * topic from the current state. */
        link_event(c, EV_LINK_UP);
        break;
    case QUEUE_CONN_DOWN:
        c->connected = false;
        link_event(c, EV_LINK_DOWN);
        break;
    case QUEUE_CALL: {
        struct core_call *call;
        memcpy(&call, it->payload, sizeof(call));
        call->fn(c, call);
        break;
    }
    }
}

void core_run(struct core *c, const struct core_loop *l)
{
    int64_t next_dev_tick = 0, next_tick = 0;
    struct queue_item it;
    /* The loop wakes at least every QUEUE_POLL_MS (100 ms), so WATCHDOG=1
     * goes out on time for any WatchdogSec of 200 ms or more. */
    struct sdnotify_watchdog wd;
    sdnotify_watchdog_init(&wd);
    /* TEST ONLY (scripts/vm-test.sh): with WBMB_TEST_FREEZE_FILE set at
     * start-up, the loop freezes (no WATCHDOG=1, nothing applied; the MQTT
     * threads live on) once that file exists, so systemd's watchdog must
     * kill it. The file is removed first (best effort): the restarted
     * daemon does not freeze again. */
    const char *freeze_file = getenv("WBMB_TEST_FREEZE_FILE");
    if (freeze_file && !*freeze_file)
        freeze_file = NULL;
    owner_arm();
    lock_core(c);
    c->apply_in_place = c->msg_buf != NULL;
    unlock_core(c);
    while (!*l->stop) {
        sdnotify_watchdog_kick(&wd, util_mono_ms());
        if (freeze_file && access(freeze_file, F_OK) == 0) {
            log_warn("test freeze: %s exists, the core loop stops (WBMB_TEST_FREEZE_FILE)",
                     freeze_file);
            (void)unlink(freeze_file);
            while (!*l->stop)
                usleep(100 * 1000);
            break;
        }
        if (*l->reload) {
            *l->reload = 0;
            lock_core(c);
            l->on_reload(l->ud, c);
            unlock_core(c);
        }
        int64_t now = util_mono_ms();
        int wait = QUEUE_POLL_MS;
        if (next_tick - now < wait)
            wait = next_tick <= now ? 0 : (int)(next_tick - now);
        queue_wait(c->queue, wait);
        lock_core(c);
        /* Apply a burst of queued items before looking at timers again. */
        for (int i = 0; i < BURST_ITEMS && queue_pop(c->queue, &it, 0); i++)
            handle_item(c, &it);
        now = util_mono_ms();
        if (now >= next_dev_tick) {
            next_dev_tick = devmgr_tick(c->devmgr, now);
            if (next_dev_tick > now + 1000)
                next_dev_tick = now + 1000;
        }
        /* Scenario delays are timers: a step waits, messages keep flowing. */
        int64_t next_scen = scenmgr_tick(c->scenmgr, now);
        int64_t next_sink = sinks_tick(&c->sinks, now, false); /* held values, republish steps */
        int64_t next_ack = dispatch_tick(&c->dispatch, now);   /* overdue PUBACKs */
        next_tick = next_scen < next_dev_tick ? next_scen : next_dev_tick;
        if (next_sink < next_tick)
            next_tick = next_sink;
        if (next_ack < next_tick)
            next_tick = next_ack;
        c->core_wake_ms = next_tick < now + QUEUE_POLL_MS ? next_tick : now + QUEUE_POLL_MS;
        c->timers_changed = false;
        unlock_core(c);
    }
    lock_core(c);
    c->apply_in_place = false;
    unlock_core(c);
}

bool core_busy(struct core *c)
{
    return scenmgr_busy(c->scenmgr);
}

wb_status core_reload(struct core *c, struct config *ncfg)
{
    /* Keep the running bridge id: it names our Last Will topic. */
    char *keep_id = c->cfg->bridge_device_id;
    c->cfg->bridge_device_id = ncfg->bridge_device_id;
    ncfg->bridge_device_id = keep_id;
    char err[256];
    struct devmgr *nm = devmgr_create(ncfg, &c->sinks, c->devmgr, err, sizeof(err));
    if (!nm) {
        log_error("%s", err);
        ncfg->bridge_device_id = c->cfg->bridge_device_id;
        c->cfg->bridge_device_id = keep_id;
        return WB_ERR_NOMEM;
    }
    restore_devices(c, nm); /* the devices the reload added */
    devmgr_view(nm, &c->sinks.view);
    devmgr_announce(nm, c->devmgr); /* removed, added, changed; done */
    devmgr_destroy(c->devmgr);
    c->devmgr = nm;
    c->dispatch.devmgr = nm;
    c->dispatch.cfg = ncfg;
    scenmgr_set_config(c->scenmgr, ncfg);
    cfg_free(c->cfg);
    c->cfg = ncfg;
    subscribe(c);
    return WB_OK;
}

/* ---- shutdown -------------------------------------------------------------- */

void core_stop(struct core *c)
{
    if (!c)
        return;
    struct queue_item it;
    lock_core(c);
    if (c->queue) {
        queue_close(c->queue);
        while (queue_pop(c->queue, &it, 0))
            handle_item(c, &it);
    }
    /* Commands still waiting for their PUBACK fail now (their HTTP callers
     * and scenario steps are answered); the answers that come later find
     * nothing. Then a switch still waiting in a delay ends (its HTTP caller
     * gets 503), so no HTTP thread waits on the core when the server stops. */
    dispatch_abort(&c->dispatch, "the bridge is stopping");
    scenmgr_destroy(c->scenmgr);
    c->scenmgr = NULL;
    link_event(c, EV_STOPPING); /* the mirror's held values, offline markers */
    unlock_core(c);
}

void core_log_summary(struct core *c)
{
    struct devmgr_stats ds;
    struct store_status ss;
    struct queue_stats qs;
    struct core_stats cs;
    struct mqttc_stats ms;
    mqttc_get_stats(c->mqtt, &ms);
    lock_core(c);
    devmgr_get_stats(c->devmgr, &ds);
    core_get_stats(c, &cs);
    unlock_core(c);
    store_get_status(c->store, &ss);
    queue_get_stats(c->queue, &qs);
    log_info("stats: received=%llu applied=%llu unchanged=%llu rejected=%llu unknown=%llu "
             "dropped=%llu queue_full_waits=%llu commits=%llu rows_written=%llu syncs=%llu "
             "published=%llu coalesced=%llu",
             (unsigned long long)cs.received, (unsigned long long)ds.applied,
             (unsigned long long)ds.unchanged,
             (unsigned long long)(ds.rejected + cs.oversize_rejected),
             (unsigned long long)ds.unknown, (unsigned long long)cs.dropped,
             (unsigned long long)qs.full_waits, (unsigned long long)ss.commits,
             (unsigned long long)ss.rows_written, (unsigned long long)ss.syncs,
             (unsigned long long)ms.published, (unsigned long long)ms.coalesced);
}

void core_destroy(struct core *c)
{
    if (!c)
        return;
    lock_core(c);
    scenmgr_destroy(c->scenmgr);
    sinks_destroy(&c->sinks);
    devmgr_destroy(c->devmgr);
    unlock_core(c);
    owner_disarm();
    free(c->msg_buf);
    cfg_free(c->cfg);
    pthread_mutex_destroy(&c->core_mu);
    free(c);
}

/* ---- accessors ----------------------------------------------------------- */

const struct config *core_config(const struct core *c)
{
    return c->cfg;
}

struct devmgr *core_devmgr(struct core *c)
{
    return c->devmgr;
}

struct scenmgr *core_scenmgr(struct core *c)
{
    return c->scenmgr;
}

struct dispatch_ctx *core_dispatch(struct core *c)
{
    return &c->dispatch;
}

struct state_store *core_store(struct core *c)
{
    return c->store;
}

struct mqttc *core_mqtt(struct core *c)
{
    return c->mqtt;
}

struct queue *core_queue(struct core *c)
{
    return c->queue;
}

void core_get_stats(struct core *c, struct core_stats *out)
{
    *out = (struct core_stats){
        .received = atomic_load(&c->received),
        .oversize_rejected = atomic_load(&c->oversize_rejected),
        .dropped = atomic_load(&c->dropped),
        .own = c->own,
        .store_errors = store_sink_errors(c->store_sink),
        .disconnected_since_ms = atomic_load(&c->disconnected_since_ms),
        .started_mono_ms = c->started_mono_ms,
        .inplace_messages = c->inplace_messages,
        .inplace_locks = c->inplace_locks,
        .inplace_locks_max = c->inplace_locks_max,
    };
}

int64_t core_disconnected_since_ms(struct core *c)
{
    return atomic_load(&c->disconnected_since_ms);
}

int64_t core_started_ms(const struct core *c)
{
    return c->started_mono_ms;
}

/* ---- calls from other threads ------------------------------------------- */

int core_call_run(struct core *c, struct core_call *call)
{
    struct core_call *ptr = call;
    pthread_mutex_init(&call->mu, NULL);
    pthread_cond_init(&call->cv, NULL);
    call->done = false;
    call->body = NULL;
    call->text = NULL;
    if (queue_push(c->queue, QUEUE_CALL, "", &ptr, sizeof(ptr), false) != WB_OK) {
        call->status = 503;
        call->body = api_error("the bridge is shutting down");
    } else {
        pthread_mutex_lock(&call->mu);
        while (!call->done)
            pthread_cond_wait(&call->cv, &call->mu);
        pthread_mutex_unlock(&call->mu);
    }
    pthread_cond_destroy(&call->cv);
    pthread_mutex_destroy(&call->mu);
    return call->status;
}

void core_call_done(struct core_call *call, int status, json_object *body)
{
    pthread_mutex_lock(&call->mu);
    call->status = status;
    call->body = body;
    call->done = true;
    pthread_cond_signal(&call->cv);
    pthread_mutex_unlock(&call->mu);
}

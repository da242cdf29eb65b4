/*
 * app.c - start-up, the core loop and shutdown (STYLE.md: "start-up and
 * shutdown in src/app.c").
 *
 * Threads and data flow:
 *
 *   paho thread --on_message--> [bounded queue] --> core thread (this loop)
 *        |                                            |-> devmgr (owns all state)
 *        '-- queue empty: applied in place under core_mu (see core.h)
 *                                                     |-> store (group commit,
 *                                                     |          its own writer thread)
 *                                                     '-> mqttc_publish (mirror)
 *
 * Start-up order: config -> store -> device manager -> restore every
 * device:<id> -> MQTT client (connects in the background) -> loop.
 * Shutdown undoes it in reverse: stop intake (close the queue) -> apply what
 * was already queued -> offline markers -> flush the store -> disconnect ->
 * destroy. Signal handlers only set flags; the loop acts on them within one
 * poll period (QUEUE_POLL_MS).
 *
 * Republish after a connect (CONTRACT §5): the bridge device at once, then
 * every mirrored device in steps (republish_pump), a round from device 0 on
 * each connect and each reload; a lost connection ends the round:
 *
 *   idle --QUEUE_CONN_UP / reload while connected--> republishing
 *   republishing --republish_pump(): last device queued--> idle
 *   republishing --QUEUE_CONN_DOWN--> idle
 */
#include "wbmb/app.h"
#include "core/core.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/dispatch.h"
#include "wbmb/mirror.h"
#include "wbmb/mqttc.h"
#include "wbmb/payload.h"
#include "wbmb/queue.h"
#include "wbmb/scenmgr.h"
#include "wbmb/sdnotify.h"
#include "wbmb/state_store.h"
#include "wbmb/store_lock.h"
#include "wbmb/util.h"

#define QUEUE_CAPACITY 8192
#define APP_MALLOC_ARENAS 1
#define QUEUE_POLL_MS 100
#define SHUTDOWN_PUBLISH_WAIT_MS 2000
/* How long SIGTERM keeps retrying the final flush when the store fails (disk
 * full, read-only): with the MQTT wait above it stays within the 5 s of the
 * contract. */
#define SHUTDOWN_FLUSH_RETRY_MS 2000
#define SHUTDOWN_FLUSH_PAUSE_MS 100
/* The republish after a connect runs in steps of REPUBLISH_STEP_DEVICES
 * while fewer than REPUBLISH_BACKLOG publications wait for the sender
 * thread, and the loop looks again every REPUBLISH_POLL_MS until the round is
 * complete. Queued all at once, 10 000 devices (~50 000 publications, each a
 * heap copy in the outbox) made the bridge's peak memory. */
#define REPUBLISH_BACKLOG 256
#define REPUBLISH_STEP_DEVICES 16
#define REPUBLISH_POLL_MS 1

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void print_config_errors(const struct cfg_errors *errs, enum log_level lvl, bool to_log)
{
    for (size_t i = 0; i < errs->n; i++) {
        if (to_log)
            log_msg(lvl, "%s", errs->lines[i]);
        else
            fprintf(stderr, "%s\n", errs->lines[i]);
    }
}

/* paho thread: hand the message to the core, never touch state here. */
static void on_message(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    struct app *a = ud;
    if (len > PAYLOAD_MAX_LEN) {
        /* Bounded before it is copied anywhere: a 1 MB payload is refused. */
        atomic_fetch_add(&a->oversize_rejected, 1);
        log_warn("rejected message on '%s': payload of %zu bytes is over the %d byte limit", topic,
                 len, PAYLOAD_MAX_LEN);
        return;
    }
    /* Applied right here on paho's thread when nothing waits in the queue
     * (so nothing can be overtaken): no copy into the queue, no wake-up of
     * the core thread, no context switch per message. Queued otherwise,
     * behind what is already there. */
    if (queue_empty(a->queue)) {
        pthread_mutex_lock(&a->core_mu);
        if (a->apply_in_place && queue_empty(a->queue)) {
            memcpy(a->msg_buf, payload, len);
            a->msg_buf[len] = '\0';
            int64_t now = util_mono_ms();
            devmgr_handle_message(a->devmgr, topic, a->msg_buf, len, retained, now);
            /* Held mirror values that are due go out from here; wake the
             * loop when a timer now falls before its planned wake-up. */
            if (devmgr_flush_mirror(a->devmgr, now) < a->core_wake_ms || a->timers_changed) {
                a->timers_changed = false;
                queue_kick(a->queue);
            }
            pthread_mutex_unlock(&a->core_mu);
            return;
        }
        pthread_mutex_unlock(&a->core_mu);
    }
    if (queue_push(a->queue, QUEUE_MSG, topic, payload, len, retained) != WB_OK)
        atomic_fetch_add(&a->dropped, 1);
}

static void on_connection(void *ud, bool connected)
{
    struct app *a = ud;
    /* /health: 503 once the broker has been away for more than 30 s. */
    atomic_store(&a->disconnected_since_ms, connected ? 0 : util_mono_ms());
    if (queue_push(a->queue, connected ? QUEUE_CONN_UP : QUEUE_CONN_DOWN, "", "", 0, false) !=
        WB_OK)
        atomic_fetch_add(&a->dropped, 1);
}

static wb_status publish(void *ud, const char *topic, const char *payload, size_t len, int qos,
                         bool retained)
{
    struct app *a = ud;
    if (!a->mqtt || !a->connected)
        return WB_ERR_MQTT; /* everything is republished after the next connect */
    return mqttc_publish(a->mqtt, topic, payload, len, qos, retained);
}

/* paho's or the sender's thread: the broker's answer to a command
 * (mqttc_publish_acked). The core's lock is taken as for a message applied
 * in place; mqttc never calls this inside mqttc_publish_acked(), whose
 * caller holds that lock. */
static void on_command_ack(void *ud, uint64_t token, int rc, const char *why)
{
    struct app *a = ud;
    pthread_mutex_lock(&a->core_mu);
    dispatch_on_ack(&a->dispatch, token, rc, why);
    /* A scenario may go on to its next step, or start a delay: the loop
     * looks at its timers again. */
    queue_kick(a->queue);
    pthread_mutex_unlock(&a->core_mu);
}

/* dispatch_ctx.publish_acked: commands are QoS 1 and wait for their PUBACK. */
static wb_status publish_acked(void *ud, const char *topic, const char *payload, size_t len,
                               uint64_t token)
{
    struct app *a = ud;
    if (!a->mqtt || !a->connected)
        return WB_ERR_MQTT;
    return mqttc_publish_acked(a->mqtt, topic, payload, len, 1, on_command_ack, a, token);
}

static size_t pub_backlog(void *ud)
{
    return mqttc_backlog(((struct app *)ud)->mqtt);
}

static void publish_scenario_control(struct app *a)
{
    json_object *v = json_object_new_string(scenmgr_control_value(a->scenmgr));
    mirror_control_value(&a->pub, a->cfg->bridge_device_id, "scenario", v);
    json_object_put(v);
}

static void on_scenario_change(void *ud, json_object *last)
{
    publish_scenario_control(ud);
    api_on_scenario(ud, last);
}

static void publish_bridge_device(struct app *a)
{
    const char *id = a->cfg->bridge_device_id;
    mirror_device_meta(&a->pub, id, "MQTT bridge");
    mirror_device_error(&a->pub, id, "");
    mirror_control_meta(&a->pub, id, "scenario", "text", false, 1, NULL);
    publish_scenario_control(a);
}

static void log_switch_result(void *ud, json_object *result)
{
    (void)ud;
    log_info("scenario request over: %s",
             json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
}

/* /devices/<bridge>/controls/scenario/on: a scenario id switches, "none"
 * shuts the active one down. */
static void scenario_command(struct app *a, const char *payload, size_t len)
{
    char id[128];
    char topic[MIRROR_TOPIC_MAX];
    snprintf(topic, sizeof(topic), "/devices/%s/controls/scenario/meta/error",
             a->cfg->bridge_device_id);
    while (len > 0 && (payload[len - 1] == ' ' || payload[len - 1] == '\n'))
        len--;
    if (len == 0 || len >= sizeof(id)) {
        log_warn("scenario command: expected a scenario id or 'none'");
        mirror_publish_raw(&a->pub, topic, "w", 1, 1, true);
        return;
    }
    memcpy(id, payload, len);
    id[len] = '\0';
    wb_status st = strcmp(id, "none") == 0 ? scenmgr_shutdown(a->scenmgr, log_switch_result, a)
                                           : scenmgr_switch(a->scenmgr, id, log_switch_result, a);
    if (st == WB_OK) {
        mirror_publish_raw(&a->pub, topic, "", 0, 1, true);
        return;
    }
    log_warn("scenario command '%.64s' refused: %s", id,
             st == WB_ERR_BUSY ? "a switch is already running" : "unknown scenario");
    mirror_publish_raw(&a->pub, topic, "w", 1, 1, true);
}

static void on_control_command(void *ud, const char *device_id, const char *control,
                               const char *payload, size_t len, bool retained)
{
    struct app *a = ud;
    a->timers_changed = true; /* a scenario or an action may wait on a timer */
    if (retained) {
        /* A retained command would re-run at every reconnect: never act on it. */
        log_debug("ignoring retained command on %s/%s", device_id, control);
        return;
    }
    if (strcmp(device_id, a->cfg->bridge_device_id) == 0) {
        if (strcmp(control, "scenario") == 0)
            scenario_command(a, payload, len);
        else
            log_warn("bridge device has no control '%.64s'", control);
        return;
    }
    struct dispatch_result res;
    dispatch_action_payload(&a->dispatch, device_id, control, payload, len, "mqtt", &res);
}

static struct devmgr *build_devmgr(struct app *a, struct config *cfg, struct devmgr *previous)
{
    char err[256];
    struct devmgr_hooks hooks = {
        .on_state = api_on_state,
        .wants_state = api_wants_state,
        .on_connection = api_on_connection,
        .on_control_command = on_control_command,
        .ud = a,
    };
    struct devmgr *m = devmgr_create(cfg, a->store, &a->pub, &hooks, previous, err, sizeof(err));
    if (!m)
        log_error("%s", err);
    return m;
}

static bool same_str(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* Queues the next devices of the republish round while the sender thread's
 * backlog is short; ends the round after the last one. */
static void republish_pump(struct app *a)
{
    while (a->republishing && a->connected && mqttc_backlog(a->mqtt) < REPUBLISH_BACKLOG) {
        if (devmgr_publish_some(a->devmgr, &a->republish_next, REPUBLISH_STEP_DEVICES)) {
            a->republishing = false;
            log_debug("republished %zu devices", devmgr_count(a->devmgr));
        }
    }
}

/* A new round from the first device (a round in progress starts over: after
 * a reload its device indexes belong to the old manager). */
static void republish_start(struct app *a)
{
    a->republishing = true;
    a->republish_next = 0;
    republish_pump(a);
}

static void reload_config(struct app *a);

/* SIGHUP: parse into a fresh config, validate all of it, then swap it in.
 * An invalid file leaves the running config untouched. */
static void reload(struct app *a)
{
    if (scenmgr_busy(a->scenmgr)) {
        log_info("SIGHUP: a scenario switch is running; reloading when it is over");
        reload_requested = 1;
        return;
    }
    /* systemd: RELOADING=1 ... READY=1 brackets the reload, whatever its outcome. */
    sdnotify_reloading();
    reload_config(a);
    sdnotify_send("READY=1\nSTATUS=running");
}

static void reload_config(struct app *a)
{
    struct config *ncfg = NULL;
    struct cfg_errors errs = {0};
    log_info("SIGHUP: reloading %s", a->opts->config_path);
    if (cfg_load(a->opts->config_path, &ncfg, &errs) != WB_OK) {
        print_config_errors(&errs, LOG_LVL_ERROR, true);
        log_error("reload rejected: %zu error(s) in %s; keeping the running configuration", errs.n,
                  a->opts->config_path);
        cfg_errors_free(&errs);
        return;
    }
    struct devmgr *nm = build_devmgr(a, ncfg, a->devmgr);
    if (!nm) {
        cfg_free(ncfg);
        return;
    }
    devmgr_restore(nm);
    if (!same_str(ncfg->mqtt.host, a->cfg->mqtt.host) || ncfg->mqtt.port != a->cfg->mqtt.port ||
        !same_str(ncfg->persistence.db_path, a->cfg->persistence.db_path) ||
        !same_str(ncfg->http.listen, a->cfg->http.listen) ||
        strcmp(ncfg->bridge_device_id, a->cfg->bridge_device_id) != 0)
        log_warn("reload: changes to mqtt, persistence, http or bridge take effect at the next "
                 "restart");
    devmgr_destroy(a->devmgr);
    a->devmgr = nm;
    a->dispatch.devmgr = nm;
    a->dispatch.cfg = ncfg;
    scenmgr_set_config(a->scenmgr, ncfg);
    /* Keep the running bridge id: it names our Last Will topic. */
    char *keep_id = a->cfg->bridge_device_id;
    a->cfg->bridge_device_id = ncfg->bridge_device_id;
    ncfg->bridge_device_id = keep_id;
    cfg_free(a->cfg);
    a->cfg = ncfg;
    if (!a->opts->log_level_given)
        log_set_level(ncfg->log_level);
    size_t n;
    const char *const *subs = devmgr_subscriptions(nm, &n);
    mqttc_set_subscriptions(a->mqtt, subs, n, 1);
    if (a->connected)
        republish_start(a);
    log_info("reload done: %zu devices, %zu scenarios", ncfg->n_devices, ncfg->n_scenarios);
}

static void handle_item(struct app *a, const struct queue_item *it)
{
    switch (it->kind) {
    case QUEUE_MSG:
        devmgr_handle_message(a->devmgr, it->topic, it->payload, it->payload_len, it->retained,
                              util_mono_ms());
        break;
    case QUEUE_CONN_UP:
        a->connected = true;
        /* Clears the Last Will, then every retained topic from current state. */
        publish_bridge_device(a);
        republish_start(a);
        break;
    case QUEUE_CONN_DOWN:
        a->connected = false;
        a->republishing = false;
        break;
    case QUEUE_CALL: {
        struct core_call *call;
        memcpy(&call, it->payload, sizeof(call));
        call->fn(a, call);
        break;
    }
    }
}

static void log_summary(struct app *a)
{
    struct devmgr_stats ds;
    struct store_status ss;
    struct queue_stats qs;
    devmgr_get_stats(a->devmgr, &ds);
    store_get_status(a->store, &ss);
    queue_get_stats(a->queue, &qs);
    log_info("stats: received=%llu applied=%llu unchanged=%llu rejected=%llu unknown=%llu "
             "dropped=%llu queue_full_waits=%llu commits=%llu rows_written=%llu syncs=%llu",
             (unsigned long long)ds.received, (unsigned long long)ds.applied,
             (unsigned long long)ds.unchanged,
             (unsigned long long)(ds.rejected + atomic_load(&a->oversize_rejected)),
             (unsigned long long)ds.unknown, (unsigned long long)atomic_load(&a->dropped),
             (unsigned long long)qs.full_waits, (unsigned long long)ss.commits,
             (unsigned long long)ss.rows_written, (unsigned long long)ss.syncs);
}

static int start(struct app *a)
{
    struct cfg_errors errs = {0};
    if (cfg_load(a->opts->config_path, &a->cfg, &errs) != WB_OK) {
        print_config_errors(&errs, LOG_LVL_ERROR, false);
        cfg_errors_free(&errs);
        return APP_EXIT_CONFIG;
    }
    log_set_level(a->opts->log_level_given ? a->opts->log_level : a->cfg->log_level);
    log_info("wb-mqtt-bridge %s starting with %s (%zu devices, %zu scenarios)", WBMB_VERSION,
             a->opts->config_path, a->cfg->n_devices, a->cfg->n_scenarios);

    char err[512];
    const struct cfg_persistence *p = &a->cfg->persistence;
    struct store_config sc = {
        .backend = "sqlite",
        .db_path = p->db_path,
        .commit_interval_ms = p->commit_interval_ms,
        .sync_interval_ms = p->sync_interval_ms,
        .history_enabled = p->history_enabled,
        .history_max_rows = p->history_max_rows,
        .history_max_age_days = p->history_max_age_days,
    };
    /* One daemon per database, decided before anything is opened or
     * connected: a second one would take the first one's MQTT client id
     * and write the same file. */
    long holder;
    if (store_lock_acquire(p->db_path, &a->db_lock, &holder, err, sizeof(err)) != WB_OK) {
        log_error("cannot start on %s: %s", p->db_path, err);
        return APP_EXIT_FAILURE;
    }
    if (store_open(&a->store, &sc, err, sizeof(err)) != WB_OK) {
        log_error("cannot open the state store %s: %s", p->db_path, err);
        return APP_EXIT_FAILURE;
    }
    if (!(a->queue = queue_create(QUEUE_CAPACITY))) {
        log_error("out of memory");
        return APP_EXIT_FAILURE;
    }
    a->pub.fn = publish;
    a->pub.ud = a;
    a->pub.backlog = pub_backlog;
    if (!(a->devmgr = build_devmgr(a, a->cfg, NULL)))
        return APP_EXIT_FAILURE;
    int64_t t0 = util_mono_ms();
    size_t restored = devmgr_restore(a->devmgr);
    a->dispatch.cfg = a->cfg;
    a->dispatch.devmgr = a->devmgr;
    a->dispatch.store = a->store;
    a->dispatch.pub = &a->pub;
    a->dispatch.errors_set = json_object_new_object();
    a->dispatch.publish_acked = publish_acked;
    a->dispatch.publish_acked_ud = a;
    struct scenmgr_hooks sh = {.on_change = on_scenario_change, .ud = a};
    if (!(a->scenmgr = scenmgr_create(a->cfg, &a->dispatch, a->store, &sh))) {
        log_error("out of memory");
        return APP_EXIT_FAILURE;
    }
    scenmgr_restore(a->scenmgr);
    log_info("restored %zu of %zu devices from %s in %lld ms", restored, a->cfg->n_devices,
             p->db_path, (long long)(util_mono_ms() - t0));

    char will_topic[MIRROR_TOPIC_MAX];
    snprintf(will_topic, sizeof(will_topic), "/devices/%s/meta/error", a->cfg->bridge_device_id);
    const struct cfg_mqtt *mc = &a->cfg->mqtt;
    struct mqttc_options mo = {
        .host = mc->host,
        .port = mc->port,
        .client_id = mc->client_id,
        .username = mc->username,
        .password = mc->password,
        .keepalive_s = mc->keepalive_s,
        .protocol = mc->protocol,
        .flap_disconnects = mc->flap_disconnects,
        .flap_window_s = mc->flap_window_s,
        .tls = mc->tls,
        .verify_hostname = mc->tls_verify_hostname,
        .ca_file = mc->ca_file,
        .cert_file = mc->cert_file,
        .key_file = mc->key_file,
        .will_topic = will_topic,
        .will_payload = "offline",
        .will_retained = true,
        .will_qos = 1,
    };
    if (!(a->mqtt = mqttc_create(&mo, on_message, on_connection, a, err, sizeof(err)))) {
        log_error("cannot create the MQTT client: %s", err);
        return APP_EXIT_FAILURE;
    }
    size_t n;
    const char *const *subs = devmgr_subscriptions(a->devmgr, &n);
    mqttc_set_subscriptions(a->mqtt, subs, n, 1);
    if (mqttc_start(a->mqtt) != WB_OK) {
        log_error("cannot start the MQTT client");
        return APP_EXIT_FAILURE;
    }
    if (a->cfg->http.listen && a->cfg->http.listen[0]) {
        struct http_backend be;
        api_backend(a, &be);
        struct http_options ho = {.listen = a->cfg->http.listen, .token = a->cfg->http.token};
        if (!(a->http = http_start(&ho, &be, err, sizeof(err)))) {
            log_error("cannot start the HTTP API on %s: %s", a->cfg->http.listen, err);
            return APP_EXIT_FAILURE;
        }
        log_info("HTTP API on http://%s/%s", a->cfg->http.listen,
                 a->cfg->http.token ? " (POSTs need the bearer token)" : "");
    }
    return APP_EXIT_OK;
}

static void loop(struct app *a)
{
    int64_t next_dev_tick = 0, next_tick = 0;
    struct queue_item it;
    /* The loop wakes at least every QUEUE_POLL_MS (100 ms), so WATCHDOG=1
     * goes out on time for any WatchdogSec of 200 ms or more. */
    struct sdnotify_watchdog wd;
    sdnotify_watchdog_init(&wd);
    pthread_mutex_lock(&a->core_mu);
    a->apply_in_place = a->msg_buf != NULL;
    pthread_mutex_unlock(&a->core_mu);
    while (!stop_requested) {
        sdnotify_watchdog_kick(&wd, util_mono_ms());
        if (reload_requested) {
            reload_requested = 0;
            pthread_mutex_lock(&a->core_mu);
            reload(a);
            pthread_mutex_unlock(&a->core_mu);
        }
        int64_t now = util_mono_ms();
        int wait = QUEUE_POLL_MS;
        if (next_tick - now < wait)
            wait = next_tick <= now ? 0 : (int)(next_tick - now);
        if (a->republishing && wait > REPUBLISH_POLL_MS)
            wait = REPUBLISH_POLL_MS;
        queue_wait(a->queue, wait);
        pthread_mutex_lock(&a->core_mu);
        /* Apply a burst of queued items before looking at timers again. */
        for (int i = 0; i < 1024 && queue_pop(a->queue, &it, 0); i++)
            handle_item(a, &it);
        now = util_mono_ms();
        if (now >= next_dev_tick) {
            next_dev_tick = devmgr_tick(a->devmgr, now);
            if (next_dev_tick > now + 1000)
                next_dev_tick = now + 1000;
        }
        republish_pump(a);
        /* Scenario delays are timers: a step waits, messages keep flowing. */
        int64_t next_scen = scenmgr_tick(a->scenmgr, now);
        int64_t next_mirror = devmgr_flush_mirror(a->devmgr, now);
        int64_t next_ack = dispatch_tick(&a->dispatch, now); /* overdue PUBACKs */
        next_tick = next_scen < next_dev_tick ? next_scen : next_dev_tick;
        if (next_mirror < next_tick)
            next_tick = next_mirror;
        if (next_ack < next_tick)
            next_tick = next_ack;
        a->core_wake_ms = next_tick < now + QUEUE_POLL_MS ? next_tick : now + QUEUE_POLL_MS;
        a->timers_changed = false;
        pthread_mutex_unlock(&a->core_mu);
    }
    pthread_mutex_lock(&a->core_mu);
    a->apply_in_place = false;
    pthread_mutex_unlock(&a->core_mu);
}

/* The final flush, retried for SHUTDOWN_FLUSH_RETRY_MS while the store
 * fails: a fault that clears in that time (space freed) loses nothing.
 * Returns false when changes are still unwritten (store_close then logs how
 * many are lost). */
static bool final_flush(struct state_store *store)
{
    int64_t deadline = util_mono_ms() + SHUTDOWN_FLUSH_RETRY_MS;
    wb_status st = store_flush(store);
    if (st != WB_OK)
        log_error("final flush of the state store failed: %s; retrying for %d ms", wb_strerror(st),
                  SHUTDOWN_FLUSH_RETRY_MS);
    while (st != WB_OK && util_mono_ms() < deadline) {
        struct timespec pause = {0, SHUTDOWN_FLUSH_PAUSE_MS * 1000000L};
        nanosleep(&pause, NULL);
        st = store_flush(store);
    }
    if (st == WB_OK)
        return true;
    struct store_status ss;
    store_get_status(store, &ss);
    log_error("final flush of the state store failed: %s; %llu changes unwritten", wb_strerror(st),
              (unsigned long long)ss.pending);
    return ss.pending == 0;
}

/* Returns false when state changes could not be written (the exit is then
 * not clean: exit code 1). */
static bool shutdown_app(struct app *a)
{
    bool flushed = true;
    struct queue_item it;
    sdnotify_send("STOPPING=1");
    if (a->queue) {
        queue_close(a->queue);
        while (queue_pop(a->queue, &it, 0))
            handle_item(a, &it);
    }
    /* Commands still waiting for their PUBACK fail now (their HTTP callers
     * and scenario steps are answered); the answers that come later find
     * nothing. Then a switch still waiting in a delay ends (its HTTP caller
     * gets 503), so no HTTP thread waits on the core when the server stops. */
    pthread_mutex_lock(&a->core_mu);
    dispatch_abort(&a->dispatch, "the bridge is stopping");
    pthread_mutex_unlock(&a->core_mu);
    scenmgr_destroy(a->scenmgr);
    a->scenmgr = NULL;
    http_stop(a->http);
    a->http = NULL;
    if (a->devmgr && a->mqtt && a->connected) {
        devmgr_flush_mirror(a->devmgr, INT64_MAX); /* values held back by the interval */
        devmgr_publish_offline(a->devmgr);
        mirror_device_error(&a->pub, a->cfg->bridge_device_id, "offline");
    }
    if (a->store)
        flushed = final_flush(a->store);
    if (a->devmgr)
        log_summary(a);
    if (a->mqtt)
        mqttc_stop(a->mqtt, SHUTDOWN_PUBLISH_WAIT_MS);
    mqttc_destroy(a->mqtt);
    json_object_put(a->dispatch.errors_set);
    devmgr_destroy(a->devmgr);
    queue_destroy(a->queue);
    store_close(a->store);
    store_lock_release(a->db_lock);
    cfg_free(a->cfg);
    return flushed;
}

int app_run(const struct app_options *opts)
{
    /* glibc gives each new thread that contends its own malloc arena (up to
     * 8 per core); paho's threads, the sender and the store writer then each
     * keep a heap of freed small chunks after the connect burst. One arena
     * (the main heap, shared): with 10 000 devices the second arena still
     * held 6 MB after the republish, while the main heap had room left by
     * the config parse. tcache keeps the common small allocations
     * lock-free; ingest CPU per message measured no worse (39-41 us with
     * one arena, 43-44 with two, on a loaded host). */
    mallopt(M_ARENA_MAX, APP_MALLOC_ARENAS);
    struct app a;
    memset(&a, 0, sizeof(a));
    pthread_mutex_init(&a.core_mu, NULL);
    a.msg_buf = malloc(PAYLOAD_MAX_LEN + 1); /* NULL: every message is queued */
    a.opts = opts;
    a.started_mono_ms = util_mono_ms();
    atomic_init(&a.oversize_rejected, 0);
    atomic_init(&a.dropped, 0);
    atomic_init(&a.disconnected_since_ms, util_mono_ms());
    install_signals();
    int rc = start(&a);
    if (rc == APP_EXIT_OK) {
        /* The store is open and restored, MQTT connects (or retries) in the
         * background, HTTP listens: ready for systemd (Type=notify). */
        sdnotify_send("READY=1\nSTATUS=running");
        loop(&a);
        log_info("stopping");
    }
    bool flushed = shutdown_app(&a);
    if (rc == APP_EXIT_OK && !flushed) {
        log_error("stopped, but state changes were lost: the store kept failing");
        rc = APP_EXIT_FAILURE;
    } else if (rc == APP_EXIT_OK) {
        log_info("stopped cleanly");
    }
    free(a.msg_buf);
    pthread_mutex_destroy(&a.core_mu);
    return rc;
}

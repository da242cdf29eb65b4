/*
 * app.c - start-up, signals, reload and shutdown (STYLE.md: "start-up and
 * shutdown in src/app.c"). The loop, the handling of messages and the
 * routing of commands are the core's (core/core.c, whose top says who owns
 * the state); the changes go out through the sinks registered here.
 *
 * Start-up order: config -> lock file -> store -> queue -> core (device
 * manager, dispatcher, scenario manager, store sink) -> the mirror sink ->
 * restore every device:<id> and scenario:last -> MQTT client (connects in
 * the background) -> HTTP API and its live-events sink -> the core's loop.
 * Shutdown undoes it in reverse: stop intake (close the queue) -> apply
 * what was already queued -> fail pending commands, end a switch -> the
 * sinks' last word (offline markers) -> stop HTTP -> flush the store ->
 * disconnect -> destroy. Signal handlers only set flags; the loop acts on
 * them within one poll period.
 */
#include "wbmb/app.h"
#include "core/core.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/config.h"
#include "wbmb/ha.h"
#include "wbmb/http_sink.h"
#include "wbmb/mirror.h"
#include "wbmb/mqttc.h"
#include "wbmb/queue.h"
#include "wbmb/sdnotify.h"
#include "wbmb/state_store.h"
#include "wbmb/store_lock.h"
#include "wbmb/util.h"

#define QUEUE_CAPACITY 8192
#define APP_MALLOC_ARENAS 1
#define SHUTDOWN_PUBLISH_WAIT_MS 2000
/* How long SIGTERM keeps retrying the final flush when the store fails (disk
 * full, read-only): with the MQTT wait above it stays within the 5 s of the
 * contract. */
#define SHUTDOWN_FLUSH_RETRY_MS 2000
#define SHUTDOWN_FLUSH_PAUSE_MS 100

/* What start-up built, in order; shutdown_app() undoes it. */
struct app {
    const struct app_options *opts;
    struct store_lock *db_lock; /* <db_path>.lock, held from start() to shutdown's end */
    struct state_store *store;
    struct queue *queue;
    struct core *core;
    struct mqttc *mqtt;
    /* homeassistant.enabled: a second connection that only carries the
     * Home Assistant availability's Last Will (the first one carries Wiren
     * Board's), and says "online" after each connect. */
    struct mqttc *presence;
    char presence_topic[MIRROR_TOPIC_MAX];
    struct http_server *http;
};

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

static bool same_str(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void reload_config(struct app *a);

/* SIGHUP (on the core, core_loop.on_reload): parse into a fresh config,
 * validate all of it, then swap it in. An invalid file leaves the running
 * config untouched. */
static void reload(void *ud, struct core *c)
{
    struct app *a = ud;
    if (core_busy(c)) {
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
    const struct config *cur = core_config(a->core);
    bool restart_only = !same_str(ncfg->mqtt.host, cur->mqtt.host) ||
                        ncfg->mqtt.port != cur->mqtt.port ||
                        ncfg->persistence.backend != cur->persistence.backend ||
                        !same_str(ncfg->persistence.db_path, cur->persistence.db_path) ||
                        !same_str(ncfg->persistence.pg_conninfo, cur->persistence.pg_conninfo) ||
                        !same_str(ncfg->persistence.pg_site, cur->persistence.pg_site) ||
                        !same_str(ncfg->http.listen, cur->http.listen) ||
                        strcmp(ncfg->bridge_device_id, cur->bridge_device_id) != 0;
    size_t n_devices = ncfg->n_devices, n_scenarios = ncfg->n_scenarios;
    enum log_level level = ncfg->log_level;
    if (core_reload(a->core, ncfg) != WB_OK) {
        cfg_free(ncfg);
        return;
    }
    if (restart_only)
        log_warn("reload: changes to mqtt, persistence, http or bridge take effect at the next "
                 "restart");
    if (!a->opts->log_level_given)
        log_set_level(level);
    log_info("reload done: %zu devices, %zu scenarios", n_devices, n_scenarios);
}

/* ---- the Home Assistant presence connection ------------------------------ */

static void presence_message(void *ud, const char *topic, const void *payload, size_t len,
                             bool retained)
{
    (void)ud, (void)topic, (void)payload, (void)len, (void)retained; /* subscribes to nothing */
}

/* paho's thread: after every connect, "online" replaces the Last Will's
 * "offline" (mqttc_publish may be called from any thread). */
static void presence_connection(void *ud, bool connected)
{
    struct app *a = ud;
    if (connected && a->presence)
        mqttc_publish(a->presence, a->presence_topic, "online", 6, 1, true);
}

static wb_status presence_start(struct app *a, const struct config *cfg,
                                const struct mqttc_options *main_opts)
{
    if (!cfg->homeassistant.enabled)
        return WB_OK;
    char id[256];
    if (!ha_bridge_availability_topic(cfg, a->presence_topic, sizeof(a->presence_topic)) ||
        (size_t)snprintf(id, sizeof(id), "%s-ha", cfg->mqtt.client_id) >= sizeof(id)) {
        log_error("homeassistant: the availability topic or client id is too long");
        return WB_ERR_RANGE;
    }
    struct mqttc_options mo = *main_opts;
    mo.client_id = id;
    mo.will_topic = a->presence_topic;
    mo.will_payload = "offline";
    mo.will_retained = true;
    mo.will_qos = 1;
    mo.start_delay_ms = 500; /* not in the same instant as the main client */
    mo.own_library = true;   /* not paho's threads and sockets of the main client */
    char err[256];
    if (!(a->presence =
              mqttc_create(&mo, presence_message, presence_connection, a, err, sizeof(err)))) {
        log_error("homeassistant: cannot create the presence connection: %s", err);
        return WB_ERR_MQTT;
    }
    return mqttc_start(a->presence);
}

/* A clean stop: "offline" (the Last Will is not sent on a clean disconnect). */
static void presence_stop(struct app *a)
{
    if (!a->presence)
        return;
    if (mqttc_is_connected(a->presence))
        mqttc_publish(a->presence, a->presence_topic, "offline", 7, 1, true);
    mqttc_stop(a->presence, SHUTDOWN_PUBLISH_WAIT_MS);
    mqttc_destroy(a->presence);
    a->presence = NULL;
}

static int start(struct app *a)
{
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    if (cfg_load(a->opts->config_path, &cfg, &errs) != WB_OK) {
        print_config_errors(&errs, LOG_LVL_ERROR, false);
        cfg_errors_free(&errs);
        return APP_EXIT_CONFIG;
    }
    log_set_level(a->opts->log_level_given ? a->opts->log_level : cfg->log_level);
    log_info("wb-mqtt-bridge %s starting with %s (%zu devices, %zu scenarios)", WBMB_VERSION,
             a->opts->config_path, cfg->n_devices, cfg->n_scenarios);

    char err[512];
    const struct cfg_persistence *p = &cfg->persistence;
    struct store_config sc;
    store_config_from_cfg(p, &sc);
    /* One daemon per database, decided before anything is opened or
     * connected: a second one would take the first one's MQTT client id
     * and write the same file. */
    long holder;
    if (store_lock_acquire(p->db_path, &a->db_lock, &holder, err, sizeof(err)) != WB_OK) {
        log_error("cannot start on %s: %s", p->db_path, err);
        cfg_free(cfg);
        return APP_EXIT_FAILURE;
    }
    /* The database in log lines; a conninfo is never logged (a password). */
    const char *where = p->backend == CFG_STORE_POSTGRESQL ? "postgresql" : p->db_path;
    if (store_open(&a->store, &sc, err, sizeof(err)) != WB_OK) {
        log_error("cannot open the state store %s: %s", where, err);
        cfg_free(cfg);
        return APP_EXIT_FAILURE;
    }
    if (!(a->queue = queue_create(QUEUE_CAPACITY))) {
        log_error("out of memory");
        cfg_free(cfg);
        return APP_EXIT_FAILURE;
    }
    if (!(a->core = core_create(cfg, a->store, a->queue, err, sizeof(err)))) {
        log_error("%s", err); /* cfg went with it */
        return APP_EXIT_FAILURE;
    }
    /* The sinks, in the order they see each change (the store's is the
     * core's first). A new kind of output is one more line here. */
    struct mirror_publisher pub = core_mirror_publisher(a->core);
    struct mirror_memory mem = core_sink_memory(a->core, "wb:published");
    if (core_add_sink(a->core, mirror_sink_create(cfg, &pub, &mem)) != WB_OK) {
        log_error("out of memory");
        return APP_EXIT_FAILURE;
    }
    /* Registered when off too: it clears what an earlier run announced. */
    struct mirror_memory ha_mem = core_sink_memory(a->core, "ha:published");
    if (core_add_sink(a->core, ha_sink_create(cfg, &pub, &ha_mem)) != WB_OK) {
        log_error("out of memory");
        return APP_EXIT_FAILURE;
    }
    int64_t t0 = util_mono_ms();
    size_t restored = core_restore(a->core);
    log_info("restored %zu of %zu devices from %s in %lld ms", restored, cfg->n_devices, where,
             (long long)(util_mono_ms() - t0));

    char will_topic[MIRROR_TOPIC_MAX];
    if (!mirror_will_topic(will_topic, sizeof(will_topic), cfg->bridge_device_id)) {
        log_error("bridge.device_id is too long for a topic");
        return APP_EXIT_FAILURE;
    }
    const struct cfg_mqtt *mc = &cfg->mqtt;
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
    if (!(a->mqtt =
              mqttc_create(&mo, core_on_message, core_on_connection, a->core, err, sizeof(err)))) {
        log_error("cannot create the MQTT client: %s", err);
        return APP_EXIT_FAILURE;
    }
    core_set_mqtt(a->core, a->mqtt);
    if (mqttc_start(a->mqtt) != WB_OK) {
        log_error("cannot start the MQTT client");
        return APP_EXIT_FAILURE;
    }
    if (presence_start(a, cfg, &mo) != WB_OK)
        return APP_EXIT_FAILURE;
    if (cfg->http.listen && cfg->http.listen[0]) {
        struct http_backend be;
        api_backend(a->core, &be);
        struct http_options ho = {.listen = cfg->http.listen, .token = cfg->http.token};
        if (!(a->http = http_start(&ho, &be, err, sizeof(err)))) {
            log_error("cannot start the HTTP API on %s: %s", cfg->http.listen, err);
            return APP_EXIT_FAILURE;
        }
        if (core_add_sink(a->core, http_sink_create(a->http)) != WB_OK) {
            log_error("out of memory");
            return APP_EXIT_FAILURE;
        }
        log_info("HTTP API on http://%s/%s", cfg->http.listen,
                 cfg->http.token ? " (POSTs need the bearer token)" : "");
    }
    return APP_EXIT_OK;
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
    sdnotify_send("STOPPING=1");
    core_stop(a->core);
    http_stop(a->http);
    a->http = NULL;
    if (a->store)
        flushed = final_flush(a->store);
    if (a->core)
        core_log_summary(a->core);
    if (a->mqtt)
        mqttc_stop(a->mqtt, SHUTDOWN_PUBLISH_WAIT_MS);
    mqttc_destroy(a->mqtt);
    presence_stop(a);
    core_destroy(a->core);
    queue_destroy(a->queue);
    store_close(a->store);
    store_lock_release(a->db_lock);
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
    a.opts = opts;
    install_signals();
    int rc = start(&a);
    if (rc == APP_EXIT_OK) {
        /* The store is open and restored, MQTT connects (or retries) in the
         * background, HTTP listens: ready for systemd (Type=notify). */
        sdnotify_send("READY=1\nSTATUS=running");
        struct core_loop l = {
            .stop = &stop_requested, .reload = &reload_requested, .on_reload = reload, .ud = &a};
        core_run(a.core, &l);
        log_info("stopping");
    }
    bool flushed = shutdown_app(&a);
    if (rc == APP_EXIT_OK && !flushed) {
        log_error("stopped, but state changes were lost: the store kept failing");
        rc = APP_EXIT_FAILURE;
    } else if (rc == APP_EXIT_OK) {
        log_info("stopped cleanly");
    }
    return rc;
}

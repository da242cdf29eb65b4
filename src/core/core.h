/*
 * core.h - the core: the one owner of device and scenario state (core.c's
 * top says who that is and why). Internal to src/: app.c builds it at
 * start-up and tears it down at shutdown, api.c answers HTTP through core
 * calls, paho's threads hand it messages and connection changes.
 *
 * Its struct is private to core.c. Other threads reach the state only
 * through core_call_run(): the call travels through the same queue as MQTT
 * messages, runs on the core, and the caller sleeps until core_call_done()
 * is called for it. The accessors below are for code that runs on the core
 * (core calls), except those marked thread-safe.
 */
#ifndef WBMB_CORE_H
#define WBMB_CORE_H

#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/dispatch.h"
#include "wbmb/http.h"
#include "wbmb/mirror.h"
#include "wbmb/mqttc.h"
#include "wbmb/queue.h"
#include "wbmb/scenmgr.h"
#include "wbmb/sink.h"
#include "wbmb/state_store.h"

struct core;

/* Builds the core for cfg (owned from now on, also on failure: core_destroy
 * frees it and every config a reload brings), store and queue (borrowed,
 * thread-safe): the device manager, the dispatcher, the scenario manager,
 * and the first sink, the store's (store_sink.h). Returns NULL with a
 * reason in err. */
struct core *core_create(struct config *cfg, struct state_store *store, struct queue *queue,
                         char *err, size_t errlen);
/* core_destroy(NULL) is a no-op. Destroys the sinks too. */
void core_destroy(struct core *c);

/* Registers a sink (owned from now on, also when refused; NULL: out of
 * memory). At start-up, before core_restore(), except the HTTP sink, which
 * starts with the HTTP server after it. */
wb_status core_add_sink(struct core *c, struct sink *s);

/* Loads every device:<id> and scenario:last from the store and announces
 * the devices to the sinks. Returns the number of devices restored. */
size_t core_restore(struct core *c);

/* The MQTT client (borrowed; created with core_on_message and
 * core_on_connection): the core publishes through it and subscribes to what
 * the device manager and the sinks need. */
void core_set_mqtt(struct core *c, struct mqttc *mqtt);
/* The publisher the mirror sink uses (publishes only while connected). */
struct mirror_publisher core_mirror_publisher(struct core *c);
/* A sink's memory of its retained topics: the store's key (at most 31
 * bytes; the Wiren Board mirror's "wb:published"). Up to CORE_MEMORY_SLOTS
 * keys; past that, or for a longer key, a memory that remembers nothing. */
#define CORE_MEMORY_SLOTS 4
struct mirror_memory core_sink_memory(struct core *c, const char *key);

/* paho's threads (mqttc_message_cb, mqttc_connection_cb); ud is the core. */
void core_on_message(void *ud, const char *topic, const void *payload, size_t len, bool retained);
void core_on_connection(void *ud, bool connected);

/* The loop's flags (set by signal handlers) and what a reload does. */
struct core_loop {
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *reload;
    /* Runs on the core when *reload was set (and cleared). */
    void (*on_reload)(void *ud, struct core *c);
    void *ud;
};

/* Runs the loop until *l->stop. */
void core_run(struct core *c, const struct core_loop *l);

/* A reload (on the core, from core_loop.on_reload): swaps in ncfg (owned
 * on success; the caller frees it on failure). The running bridge id is
 * kept: it names the Last Will. */
wb_status core_reload(struct core *c, struct config *ncfg);
/* A scenario switch runs (a reload waits for it). */
bool core_busy(struct core *c);

/* Shutdown, before the HTTP server stops: no more intake (the queue is
 * closed), what was queued is applied, pending commands and a running
 * switch fail, the sinks get EV_STOPPING. */
void core_stop(struct core *c);

/* Logs the day's counters (at shutdown, after the store's last flush). */
void core_log_summary(struct core *c);

/* The config in force (on the core, or before the loop runs). */
const struct config *core_config(const struct core *c);
struct devmgr *core_devmgr(struct core *c);
struct scenmgr *core_scenmgr(struct core *c);
struct dispatch_ctx *core_dispatch(struct core *c);
/* Thread-safe. */
struct state_store *core_store(struct core *c);
struct mqttc *core_mqtt(struct core *c);
struct queue *core_queue(struct core *c);

struct core_stats {
    uint64_t received;             /* messages from paho, every one */
    uint64_t oversize_rejected;    /* payloads over PAYLOAD_MAX_LEN, refused on paho's thread */
    uint64_t dropped;              /* messages or calls the closed queue refused */
    uint64_t own;                  /* our own publications seen again, ignored */
    uint64_t store_errors;         /* store calls of the store sink that failed */
    int64_t disconnected_since_ms; /* monotonic; 0 while connected */
    int64_t started_mono_ms;
    /* Debug builds (lockstat.h): messages applied in place on paho's
     * thread, the mutexes taken for them, the most for one. */
    uint64_t inplace_messages, inplace_locks, inplace_locks_max;
};
/* On the core (a core call). */
void core_get_stats(struct core *c, struct core_stats *out);
/* Thread-safe: when the broker went away (0 while connected), when the
 * core started (monotonic ms). */
int64_t core_disconnected_since_ms(struct core *c);
int64_t core_started_ms(const struct core *c);

struct core_call;
typedef void (*core_call_fn)(struct core *c, struct core_call *call);

/* A request from another thread to the core. */
struct core_call {
    core_call_fn fn;
    struct core *core; /* set by call functions that complete later (an action) */
    /* arguments */
    const char *id;
    json_object *request;
    /* results, set by core_call_done */
    int status;
    json_object *body;
    char *text;
    /* completion */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

/* Runs call->fn on the core and waits until it calls core_call_done().
 * Returns call->status; 503 with an error body when the core is stopping. */
int core_call_run(struct core *c, struct core_call *call);
/* Completes a call (on the core); body ownership passes to the caller. */
void core_call_done(struct core_call *call, int status, json_object *body);

/* {"error": msg} */
json_object *api_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The HTTP backend of this core (api.c). */
void api_backend(struct core *c, struct http_backend *be);

#endif

/*
 * core.h - the daemon's core context, shared by app.c (start-up, the loop,
 * shutdown) and api.c (the HTTP backend). Internal to src/.
 *
 * Everything in struct app belongs to "the core" except the fields marked
 * otherwise: whoever holds core_mu. That is the core thread (the loop in
 * app.c), or paho's receive thread applying a message in place when nothing
 * is queued ahead of it (app.c on_message). Other threads reach the core only
 * through core_call_run(): the call travels through the same queue as MQTT
 * messages, runs on the core thread, and the caller sleeps until
 * core_call_done() is called for it.
 */
#ifndef WBMB_CORE_H
#define WBMB_CORE_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wbmb/app.h"
#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/dispatch.h"
#include "wbmb/http.h"
#include "wbmb/mirror.h"
#include "wbmb/mqttc.h"
#include "wbmb/queue.h"
#include "wbmb/scenmgr.h"
#include "wbmb/state_store.h"

struct app {
    /* Taken around every queue pop and the work it leads to, and by paho's
     * thread for a message applied in place. Invariant: with core_mu held
     * and the queue empty, everything pushed so far has been handled, so a
     * message applied in place never overtakes an earlier one. */
    pthread_mutex_t core_mu;
    bool apply_in_place;  /* under core_mu: the loop runs (not at start-up or shutdown) */
    char *msg_buf;        /* under core_mu: NUL-terminated copy of an in-place payload */
    int64_t core_wake_ms; /* under core_mu: when the sleeping loop looks at its timers */
    bool timers_changed;  /* under core_mu: a command may have started a timer */
    const struct app_options *opts;
    struct config *cfg;
    struct state_store *store;  /* thread-safe */
    struct store_lock *db_lock; /* <db_path>.lock, held from start() to shutdown's end */
    struct queue *queue;        /* thread-safe */
    struct devmgr *devmgr;
    struct mqttc *mqtt; /* thread-safe */
    struct scenmgr *scenmgr;
    struct dispatch_ctx dispatch;
    struct mirror_publisher pub;
    struct http_server *http; /* thread-safe */
    bool connected;
    bool republishing;     /* a republish round is in progress (app.c) */
    size_t republish_next; /* its next device index */
    int64_t started_mono_ms;
    /* Written on paho's thread, read anywhere. */
    atomic_uint_fast64_t oversize_rejected;
    atomic_uint_fast64_t dropped;
    atomic_int_fast64_t disconnected_since_ms; /* 0 while connected */
};

struct core_call;
typedef void (*core_call_fn)(struct app *a, struct core_call *c);

/* A request from another thread to the core thread. */
struct core_call {
    core_call_fn fn;
    struct app *app; /* set by call functions that complete later (an action) */
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

/* Runs c->fn on the core thread and waits until it calls core_call_done().
 * Returns c->status; 503 with an error body when the core is stopping. */
int core_call_run(struct app *a, struct core_call *c);
/* Completes a call (core thread); body ownership passes to the caller. */
void core_call_done(struct core_call *c, int status, json_object *body);

/* {"error": msg} */
json_object *api_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The HTTP backend of this core (api.c). */
void api_backend(struct app *a, struct http_backend *be);
/* Core-thread hooks: live events for SSE clients. */
void api_on_state(void *ud, const char *device_id, json_object *changed, json_object *state);
bool api_wants_state(void *ud); /* an SSE client listens */
void api_on_connection(void *ud, const char *device_id, bool online, const char *event);
void api_on_scenario(struct app *a, json_object *scenario_last);

#endif

/*
 * mqttc_int.h - internals shared by mqttc.c (connection, subscriptions,
 * callbacks, stop) and mqttc_send.c (publications: the outbox, the sender
 * thread, the direct path from the receive thread). See mqttc.c's top for
 * the states and the locking rules.
 */
#ifndef WBMB_MQTT_MQTTC_INT_H
#define WBMB_MQTT_MQTTC_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <MQTTAsync.h>

#include "mqtt/outbox.h"
#include "mqtt/paho_api.h"
#include "wbmb/lockstat.h"
#include "wbmb/mqttc.h"

#define BACKOFF_FIRST_S 1u
#define BACKOFF_MAX_S 30u
/* How long mqttc_destroy() lets an unstopped client drain. */
#define DESTROY_STOP_TIMEOUT_MS 1000u
/* When the outbox holds more than SENDER_BACKLOG publications the sender is
 * behind the core: it then pauses SENDER_BACKLOG_PAUSE_MS (at most once per
 * SENDER_BACKLOG_EVERY_MS) so retained values coalesce and the CPU goes to
 * the intake. A sender that keeps up never pauses, so light load keeps its
 * low latency. (A nice 10 sender thread did the same under our own load but
 * starved behind unrelated busy processes: p99 latency 100-200 ms.) */
#define SENDER_BACKLOG 256
#define SENDER_BACKLOG_PAUSE_MS 5
#define SENDER_BACKLOG_EVERY_MS 20
/* Publications handed to paho and not yet written (QoS 0) or acknowledged
 * (QoS 1). Beyond it the sender waits and the outbox coalesces: paho keeps a
 * heap copy and a command per publication, so the connect-time burst of a big
 * config (meta + value of every control) otherwise sits in paho's memory. */
#define SENDER_MAX_INFLIGHT 512

enum conn_state { ST_IDLE, ST_BACKOFF, ST_CONNECTING, ST_CONNECTED, ST_STOPPED };

/* mqttc_options.flap_*: more than 3 connection losses within 60 s. */
#define FLAP_DEFAULT_DISCONNECTS 3u
#define FLAP_DEFAULT_WINDOW_S 60u

/* The times of the last max_losses + 1 connection losses (mqttc_diag.c). */
struct flap_window {
    int64_t *t; /* ring of cap = max_losses + 1 */
    unsigned cap, max_losses;
    uint64_t n; /* losses noted */
    int64_t window_ms;
};

/* 0 arguments take the defaults. WB_ERR_NOMEM when out of memory. */
wb_status flap_init(struct flap_window *f, unsigned max_losses, unsigned window_s);
void flap_free(struct flap_window *f);
void flap_note(struct flap_window *f, int64_t now_ms);
/* More than max_losses losses within the window ending at now_ms. */
bool flap_is_flapping(const struct flap_window *f, int64_t now_ms);

struct mqttc {
    MQTTAsync cli;
    const struct paho_api *api; /* the library that made cli (paho_api.h) */
    /* Owned copies of the options (NULL when not given). */
    char *host, *client_id, *username, *password;
    char *ca_file, *cert_file, *key_file, *will_topic, *will_payload;
    int port;
    unsigned keepalive_s;
    bool v5;              /* MQTT 5 (else 3.1.1): picks paho's *5 callbacks */
    bool verify_hostname; /* TLS: MQTTAsync_SSLOptions.verify */
    bool tls, will_retained;
    int will_qos;

    mqttc_message_cb on_message;
    mqttc_connection_cb on_connection;
    void *ud;

    pthread_t thr;
    bool thr_started;
    struct outbox *out;
    pthread_t sender;
    bool sender_started;
    volatile bool sender_stop;  /* written before outbox_wake(), read after take */
    atomic_int sender_inflight; /* see SENDER_MAX_INFLIGHT; waits on cv */
    /* QoS 1/2 publications in paho's hands, and how many the broker takes at
     * once (MQTT 5 Receive Maximum, less one for a SUBSCRIBE in flight).
     * paho blocks its whole command queue - QoS 0 behind it too - on a QoS 1
     * publication past that limit and looks again only after up to 1 s, so
     * the sender never hands it one more (mosquitto's default is 20). */
    atomic_int qos_inflight;
    atomic_int qos_limit;
    /* A subscription change made while connected, applied by the sender
     * thread (under mu): the caller (the core thread) must never call paho,
     * whose lock paho's receive thread may hold while it waits for room in
     * the core's queue. */
    bool resub_pending;
    char **resub_gone;
    size_t resub_ngone;

    pthread_mutex_t mu;
    pthread_cond_t cv;  /* CLOCK_MONOTONIC; any change of the fields below */
    enum conn_state st; /* written only by set_st_locked() */
    bool stopping;      /* mqttc_stop() began: no more connects (set_stopping_locked()) */
    /* st == ST_CONNECTED && !stopping, for mqttc_publish*() (per message,
     * no lock): stored (release) under mu by up_sync_locked() after every
     * write of st or stopping, loaded (acquire) by mqttc_up() without mu.
     * All its stores are made under mu, so it follows their order: a
     * publication made after mqttc_stop() set stopping (happens-before) is
     * refused, as when it was read under mu. */
    atomic_bool up;
    bool disconnect_done; /* the c->api->disconnect() callback ran */
    unsigned backoff_s;   /* the delay before the next retry */
    unsigned jitter_seed; /* rand_r() state of the retry jitter */
    unsigned start_delay_ms;
    int64_t retry_at_ms; /* util_mono_ms() of the next attempt (BACKOFF) */
    char **subs;
    size_t nsubs;
    int sub_qos;
    /* Callbacks running now, and mqttc_destroy() waiting for none: atomics,
     * so the receive path never takes mu (see cb_enter()). */
    atomic_int cb_active;
    atomic_bool draining;
    /* Counted outside mu (per message), copied into stats by get_stats. */
    atomic_uint_fast64_t n_received, n_published, n_publish_failures;
    /* Subscription rounds (subscribe_all), each sent in chunks: under mu.
     * A round whose gen is no longer sub_gen stops at its next callback;
     * rounds paho never calls back for are freed by mqttc_destroy(). */
    struct sub_round *rounds;
    unsigned sub_gen;
    struct mqttc_stats stats;
    struct flap_window flaps;
    /* OpenSSL's errors of the current connect attempt (mqttc_ssl_error_cb). */
    char tls_errors[768];
    /* A connect failed with paho's generic "TCP/TLS connect failure": the
     * reconnect thread finds the cause (mqttc_diagnose) and logs it. */
    bool diag_pending;
    unsigned diag_retry_s;
};

/* mu held (or c not shared yet): keeps `up` in step with st and stopping. */
static inline void up_sync_locked(struct mqttc *c)
{
    atomic_store_explicit(&c->up, c->st == ST_CONNECTED && !c->stopping, memory_order_release);
}

static inline void set_st_locked(struct mqttc *c, enum conn_state st)
{
    c->st = st;
    up_sync_locked(c);
}

static inline void set_stopping_locked(struct mqttc *c)
{
    c->stopping = true;
    up_sync_locked(c);
}

/* Connected and not stopping, without mu (see `up`). */
static inline bool mqttc_up(struct mqttc *c)
{
    return atomic_load_explicit(&c->up, memory_order_acquire);
}

static inline void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Marks a paho callback as running; paired with cb_leave(). No lock: the
 * receive thread runs this per message, and mu is shared with the sender. */
static inline void cb_enter(struct mqttc *c)
{
    atomic_fetch_add(&c->cb_active, 1);
}

/* Once mqttc_destroy() drains, the last callback leaves under mu and wakes
 * it (so c stays alive until the unlock). Before that, a plain decrement:
 * a drain that starts in between sees the count on its next timed check. */
static inline void cb_leave_counting(struct mqttc *c, bool received)
{
    if (received)
        atomic_fetch_add_explicit(&c->n_received, 1, memory_order_relaxed);
    if (!atomic_load(&c->draining)) {
        atomic_fetch_sub(&c->cb_active, 1);
        return;
    }
    wb_lock(&c->mu);
    if (atomic_fetch_sub(&c->cb_active, 1) == 1)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline void cb_leave(struct mqttc *c)
{
    cb_leave_counting(c, false);
}

/* Waits on c->cv until deadline_ms (util_mono_ms() clock); mu held. */
static inline void cv_wait_until(struct mqttc *c, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* mqttc_sub.c: (re)subscribes the whole set in chunks; mu not held. */
void mqttc_subscribe_all(struct mqttc *c);
/* mqttc_sub.c: frees the rounds paho never answered (mqttc_destroy). */
void mqttc_free_rounds(struct mqttc *c);

/* mqttc_diag.c: MQTTAsync_SSLOptions.ssl_error_cb (u is the client). */
int mqttc_ssl_error_cb(const char *str, size_t len, void *u);
/* mqttc_diag.c: the cause of a failed TCP/TLS connect step, in words, from
 * a TCP probe of the broker (up to 2 s; mu not held) and tls_errors. */
void mqttc_diagnose(struct mqttc *c, const char *tls_errors, char *out, size_t outlen);

/* "broker refused: Not authorized (0x87)", "connection lost (paho -9)": the
 * words of an MQTT 5 reason code (>= 0) or of a paho error code (< 0). */
void mqttc_reason(struct mqttc *c, int rc, const char *msg, char *out, size_t outlen);
/* mqttc_diag.c: the words of an MQTT 3.1.1 CONNACK return code, or NULL. */
const char *mqttc_connack_text(int code);

/* mqttc_send.c: the sender thread, and its stop (joins it). */
void *mqttc_sender_main(void *arg);
void mqttc_stop_sender(struct mqttc *c);

/* The client whose message callback runs on this thread (paho's receive
 * thread, inside on_message_arrived), else NULL. paho calls that callback
 * with its lock held and lets a callback call MQTTAsync_send() (it skips the
 * lock for its own threads), so a publication made from there can skip the
 * outbox and the sender thread: see mqttc_publish(). */
extern _Thread_local struct mqttc *mqttc_in_callback;

#endif

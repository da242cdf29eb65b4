/*
 * mqttc.c - the MQTT connection: one paho MQTTAsync client (MQTT 3.1.1,
 * clean session, no persistence) kept connected for ever.
 *
 * This module owns the paho handle, copies of every option string, the
 * current subscription set, the connection statistics and one small
 * "reconnect" thread. paho's automaticReconnect only helps after a first
 * successful connect, so every connect attempt (the very first included) is
 * made by the reconnect thread, which sleeps on a condition variable until
 * the backoff deadline passes or mqttc_stop() wakes it. The backoff starts at
 * 1 s, doubles after every failure up to 30 s, and falls back to 1 s after a
 * successful connect.
 *
 * Invariants:
 *  - every field below `mu` is read and written only with `mu` held;
 *  - no paho function is ever called with `mu` held: paho's thread takes its
 *    own lock before calling us back, so holding ours across a paho call
 *    could deadlock with a callback waiting for `mu`;
 *  - paho callbacks never block for long: they update state under `mu`,
 *    signal the reconnect thread and return;
 *  - `cb_active` counts callbacks currently running, so mqttc_destroy()
 *    does not free the object under a callback that is still returning.
 *
 * Connection states (c->st) and the function behind each transition:
 *
 *   DISCONNECTED (ST_IDLE)
 *        | mqttc_start(): first attempt due at once
 *        v
 *   WAITING BACKOFF (ST_BACKOFF) <-------------------------------------------+
 *        | reconnect_main(): deadline passed, MQTTAsync_connect()             |
 *        v                                                                    |
 *   CONNECTING (ST_CONNECTING) --on_connect_failure(): "MQTT connect failed:  |
 *        |                        reason; retrying in N s", backoff *= 2 -----+
 *        | on_connect_success(): "MQTT connected to host:port",               |
 *        | subscribeMany(set), on_connection(true), backoff = 1 s             |
 *        v                                                                    |
 *   CONNECTED (ST_CONNECTED)                                                  |
 *        | on_connection_lost(): on_connection(false)                         |
 *        v                                                                    |
 *   LOST --"MQTT connection lost: reason; retrying in N s"--------------------+
 *
 *   any state --mqttc_stop(): join the reconnect thread, let a connect in
 *   flight finish, drain pending publications, MQTTAsync_disconnect()
 *   (a clean DISCONNECT, so no Last Will)--> STOPPED (ST_STOPPED)
 *
 * Publications (mqttc_send.c): mqttc_publish() only puts the message in an
 * outbox (mqtt/outbox.h) and one sender thread (mqttc_sender_main) hands it
 * to MQTTAsync_send(). The caller never takes paho's lock: paho holds that lock
 * while our message callback runs, and the callback may block on the core's
 * full queue, so a core thread calling MQTTAsync_send() directly deadlocks
 * under load. Retained publications of one topic coalesce in the outbox; a
 * lost connection clears it (the owner republishes after the next connect).
 * One exception: a publication made inside our own message callback (the
 * core applying a message in place on paho's receive thread) goes straight
 * to MQTTAsync_send() while the outbox is idle: that thread holds paho's
 * lock already, and the detour cost ~15 us of CPU per mirror publication.
 *
 * LOST is not stored: on_connection_lost() goes straight to ST_BACKOFF.
 * Retries are never sooner than 1 s, which also leaves paho time to finish
 * tearing down the failed attempt before the next MQTTAsync_connect().
 */
#include "wbmb/mqttc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>

#include "mqtt/mqttc_int.h"
#include "mqtt/outbox.h"
#include "mqtt/paho_api.h"
#include "wbmb/log.h"
#include "wbmb/topic_gate.h"
#include "wbmb/util.h"

/* ---- small helpers ---------------------------------------------------- */

static char *dup_opt(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

/* Deep copy of a string vector; NULL on allocation failure (or n == 0). */
static char **dup_strv(const char *const *v, size_t n)
{
    if (n == 0)
        return NULL;
    char **d = calloc(n, sizeof(*d));
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        d[i] = strdup(v[i]);
        if (!d[i]) {
            free_strv(d, i);
            return NULL;
        }
    }
    return d;
}

/* Marks a paho callback as running; paired with cb_leave(). No lock: the
 * receive thread runs this per message, and mu is shared with the sender. */
static void cb_enter(struct mqttc *c)
{
    atomic_fetch_add(&c->cb_active, 1);
}

/* Once mqttc_destroy() drains, the last callback leaves under mu and wakes
 * it (so c stays alive until the unlock). Before that, a plain decrement:
 * a drain that starts in between sees the count on its next timed check. */
static void cb_leave_counting(struct mqttc *c, bool received)
{
    if (received)
        atomic_fetch_add_explicit(&c->n_received, 1, memory_order_relaxed);
    if (!atomic_load(&c->draining)) {
        atomic_fetch_sub(&c->cb_active, 1);
        return;
    }
    pthread_mutex_lock(&c->mu);
    if (atomic_fetch_sub(&c->cb_active, 1) == 1)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void cb_leave(struct mqttc *c)
{
    cb_leave_counting(c, false);
}

/* Schedules the next connect attempt after a failure or a loss and logs the
 * state change; mu held. */
static void schedule_retry_locked(struct mqttc *c, const char *what, const char *reason)
{
    unsigned d = c->backoff_s;
    log_warn("MQTT %s: %s; retrying in %u s", what, reason, d);
    c->retry_at_ms = util_mono_ms() + (int64_t)d * 1000;
    c->backoff_s = d * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : d * 2;
    c->st = ST_BACKOFF;
    pthread_cond_broadcast(&c->cv);
}

/* Filters per SUBSCRIBE packet. One packet of 10 000 filters made paho hold
 * about 5 MB (copies, its own allocation tracking, the 200 KB packet) until
 * the SUBACK; the next chunk is sent when the previous one is answered. */
#define SUB_CHUNK 256

/* One subscription round: c->subs from the start, a chunk at a time. The
 * filters are copied from c->subs under mu per chunk, so the round holds
 * nothing big. A round ends when done, superseded (gen), stopped, or when
 * paho refuses a chunk; one paho never answers (the connection went) is
 * freed by mqttc_destroy(). */
struct sub_round {
    struct mqttc *c;
    struct sub_round *next_round; /* c->rounds */
    size_t sent;
    unsigned gen;
};

static void round_free_locked(struct mqttc *c, struct sub_round *r)
{
    for (struct sub_round **p = &c->rounds; *p; p = &(*p)->next_round)
        if (*p == r) {
            *p = r->next_round;
            break;
        }
    free(r);
}

static void on_sub_success(void *ctx, MQTTAsync_successData *resp);
static void on_sub_failure(void *ctx, MQTTAsync_failureData *resp);

/* Sends the round's next chunk or ends the round. r is not touched after
 * paho has it: its callback may run at once on paho's thread. */
static void round_next(struct sub_round *r)
{
    struct mqttc *c = r->c;
    char *chunk[SUB_CHUNK];
    int qoss[SUB_CHUNK];
    size_t k = 0, first;
    pthread_mutex_lock(&c->mu);
    if (r->gen == c->sub_gen && !c->stopping && c->st == ST_CONNECTED)
        for (; k < SUB_CHUNK && r->sent + k < c->nsubs; k++) {
            if (!(chunk[k] = strdup(c->subs[r->sent + k]))) {
                log_error("MQTT subscribe: out of memory");
                break;
            }
            qoss[k] = c->sub_qos;
        }
    first = r->sent;
    r->sent += k;
    if (k == 0)
        round_free_locked(c, r);
    pthread_mutex_unlock(&c->mu);
    if (k == 0)
        return;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_sub_success;
    ro.onFailure = on_sub_failure;
    ro.context = r;
    int rc = c->api->subscribe_many(c->cli, (int)k, chunk, qoss, &ro); /* paho copies */
    for (size_t i = 0; i < k; i++)
        free(chunk[i]);
    if (rc != MQTTASYNC_SUCCESS) {
        log_warn("MQTT subscribe to filters %zu.. failed: %s", first + 1, c->api->strerror(rc));
        pthread_mutex_lock(&c->mu);
        round_free_locked(c, r);
        pthread_mutex_unlock(&c->mu);
    }
}

static void on_sub_success(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    struct sub_round *r = ctx;
    struct mqttc *c = r->c;
    cb_enter(c);
    round_next(r);
    cb_leave(c);
}

static void on_sub_failure(void *ctx, MQTTAsync_failureData *resp)
{
    struct sub_round *r = ctx;
    struct mqttc *c = r->c;
    cb_enter(c);
    log_warn("MQTT subscribe refused: %s",
             resp && resp->message ? resp->message
                                   : c->api->strerror(resp ? resp->code : MQTTASYNC_FAILURE));
    round_next(r); /* the other chunks still go out while connected */
    cb_leave(c);
}

/* Subscribes to all of c->subs, in chunks; a new round supersedes one still
 * running. Called without mu. */
void mqttc_subscribe_all(struct mqttc *c)
{
    struct sub_round *r = calloc(1, sizeof(*r));
    if (!r) {
        log_error("MQTT subscribe: out of memory");
        return;
    }
    pthread_mutex_lock(&c->mu);
    *r = (struct sub_round){.c = c, .next_round = c->rounds, .gen = ++c->sub_gen};
    c->rounds = r;
    pthread_mutex_unlock(&c->mu);
    round_next(r);
}

/* ---- paho callbacks (paho's thread) ----------------------------------- */

static void on_connect_success(void *ctx, MQTTAsync_successData *resp)
{
    struct mqttc *c = ctx;
    cb_enter(c);
    pthread_mutex_lock(&c->mu);
    c->st = ST_CONNECTED;
    atomic_store(&c->sender_inflight, 0); /* died with the old session */
    if (c->stopping) {
        /* mqttc_stop() is waiting for this attempt to end; it disconnects. */
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        cb_leave(c);
        return;
    }
    c->backoff_s = BACKOFF_FIRST_S;
    c->stats.connected = true;
    c->stats.connects++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);

    log_info("MQTT connected to %s:%d", c->host, c->port);
    /* paho never sets TCP_NODELAY: two small publications in a row would
     * wait for the broker's delayed ACK (Nagle), ~40 ms on loopback. */
    util_tcp_nodelay_to_port(c->port);
    mqttc_subscribe_all(c); /* chunks copied from c->subs under mu */
    if (c->on_connection)
        c->on_connection(c->ud, true);
    cb_leave(c);
}

/* MQTT 3.1.1 CONNACK return codes; paho reports them as the failure code
 * with the bare message "CONNACK return code". */
static const char *connack_text(int code)
{
    switch (code) {
    case 1:
        return "unacceptable protocol version";
    case 2:
        return "client identifier rejected";
    case 3:
        return "server unavailable";
    case 4:
        return "bad user name or password";
    case 5:
        return "not authorized";
    default:
        return NULL;
    }
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
    struct mqttc *c = ctx;
    char reason[160];
    const char *ck =
        resp && resp->message && strstr(resp->message, "CONNACK") ? connack_text(resp->code) : NULL;
    if (ck)
        snprintf(reason, sizeof(reason), "broker refused: %s", ck);
    else if (resp && resp->message)
        snprintf(reason, sizeof(reason), "%s (%d)", resp->message, resp->code);
    else
        snprintf(reason, sizeof(reason), "%s",
                 c->api->strerror(resp ? resp->code : MQTTASYNC_FAILURE));
    cb_enter(c);
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        c->st = ST_STOPPED;
        pthread_cond_broadcast(&c->cv);
    } else {
        schedule_retry_locked(c, "connect failed", reason);
    }
    pthread_mutex_unlock(&c->mu);
    cb_leave(c);
}

static void on_connection_lost(void *ctx, char *cause)
{
    struct mqttc *c = ctx;
    cb_enter(c);
    pthread_mutex_lock(&c->mu);
    bool was_up = c->stats.connected;
    c->stats.connected = false;
    if (was_up)
        c->stats.disconnects++;
    if (c->stopping) {
        c->st = ST_STOPPED;
        pthread_cond_broadcast(&c->cv);
    } else {
        /* paho (3.1.1) passes NULL as the cause in practice. */
        schedule_retry_locked(c, "connection lost", cause ? cause : "closed by peer or timed out");
    }
    pthread_mutex_unlock(&c->mu);
    /* paho refuses sends now; the owner republishes after the next connect. */
    outbox_clear(c->out);
    if (was_up && c->on_connection)
        c->on_connection(c->ud, false);
    cb_leave(c);
}

static int on_message_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct mqttc *c = ctx;
    cb_enter(c);
    /* topic_len == 0 means topic is NUL-terminated; otherwise it may contain
     * NULs and is not guaranteed to be terminated, so make a terminated copy. */
    char stackbuf[256];
    char *t = topic, *heap = NULL;
    if (topic_len > 0) {
        size_t tl = (size_t)topic_len;
        t = tl < sizeof(stackbuf) ? stackbuf : (heap = malloc(tl + 1));
        if (t) {
            memcpy(t, topic, tl);
            t[tl] = '\0';
        }
    }
    if (t) {
        if (c->on_message) {
            mqttc_in_callback = c; /* mqttc_publish() may hand to paho directly */
            c->on_message(c->ud, t, m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
                          m->retained != 0);
            mqttc_in_callback = NULL;
        }
    } else {
        log_error("MQTT message dropped: out of memory");
    }
    free(heap);
    c->api->free_message(&m);
    c->api->free(topic);
    cb_leave_counting(c, t != NULL);
    return 1; /* handled: paho must not redeliver it */
}

static void on_disconnect_done(void *ctx, MQTTAsync_successData *resp)
{
    struct mqttc *c = ctx;
    cb_enter(c);
    pthread_mutex_lock(&c->mu);
    c->disconnect_done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    cb_leave(c);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData *resp)
{
    on_disconnect_done(ctx, NULL);
}

/* ---- reconnect thread ------------------------------------------------- */

/* Issues one asynchronous connect; the result arrives in
 * on_connect_success() / on_connect_failure(). */
static int start_connect(struct mqttc *c)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions so = MQTTAsync_SSLOptions_initializer;

    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.cleansession = 1;
    co.keepAliveInterval = (int)c->keepalive_s;
    co.connectTimeout = 10;
    co.automaticReconnect = 0; /* ours, see the file comment */
    co.username = c->username;
    co.password = c->password;
    co.onSuccess = on_connect_success;
    co.onFailure = on_connect_failure;
    co.context = c;
    if (c->will_topic) {
        wo.topicName = c->will_topic;
        wo.message = c->will_payload ? c->will_payload : "";
        wo.retained = c->will_retained;
        wo.qos = c->will_qos;
        co.will = &wo;
    }
    if (c->tls) {
        so.trustStore = c->ca_file;
        so.keyStore = c->cert_file;
        so.privateKey = c->key_file;
        /* Verify the broker's chain when we have a CA to verify it with.
         * Host name checks (verify) stay off: brokers on Wiren Board are
         * usually addressed by IP and their certificates lack IP SANs. */
        so.enableServerCertAuth = c->ca_file != NULL;
        co.ssl = &so;
    }
    /* paho copies everything it keeps from co, wo and so. */
    return c->api->connect(c->cli, &co);
}

static void *reconnect_main(void *arg)
{
    struct mqttc *c = arg;
    pthread_setname_np(pthread_self(), "wbmb-reconnect"); /* top -H, perf, gdb */
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        if (c->st != ST_BACKOFF) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        if (util_mono_ms() < c->retry_at_ms) {
            cv_wait_until(c, c->retry_at_ms);
            continue;
        }
        c->st = ST_CONNECTING;
        pthread_mutex_unlock(&c->mu);
        log_debug("MQTT connecting to %s:%d", c->host, c->port);
        int rc = start_connect(c);
        pthread_mutex_lock(&c->mu);
        if (rc != MQTTASYNC_SUCCESS) {
            if (c->stopping)
                c->st = ST_STOPPED;
            else
                schedule_retry_locked(c, "connect failed", c->api->strerror(rc));
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- public API ------------------------------------------------------- */

/* The copied options; the password is wiped before it is freed. */
static void free_options(struct mqttc *c)
{
    if (c->password)
        explicit_bzero(c->password, strlen(c->password));
    free(c->host);
    free(c->client_id);
    free(c->username);
    free(c->password);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->will_topic);
    free(c->will_payload);
}

struct mqttc *mqttc_create(const struct mqttc_options *opts, mqttc_message_cb on_message,
                           mqttc_connection_cb on_connection, void *ud, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!opts || !opts->host || !opts->host[0] || opts->port < 1 || opts->port > 65535 ||
        !opts->client_id || opts->will_qos < 0 || opts->will_qos > 2) {
        snprintf(err, errlen, "invalid MQTT options (host, port, client id or will qos)");
        return NULL;
    }
    /* The Last Will goes out too: the topic gate (topic_gate.h) checks it. */
    if (opts->will_topic && tgate_admit(opts->will_topic, TGATE_NAME) != TGATE_OK) {
        snprintf(err, errlen, "invalid Last Will topic (see the log)");
        return NULL;
    }

    struct mqttc *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bool mu_ok = false, cv_ok = false;
    bool oom = false;
    c->host = dup_opt(opts->host, &oom);
    c->client_id = dup_opt(opts->client_id, &oom);
    c->username = dup_opt(opts->username, &oom);
    c->password = dup_opt(opts->password, &oom);
    c->ca_file = dup_opt(opts->ca_file, &oom);
    c->cert_file = dup_opt(opts->cert_file, &oom);
    c->key_file = dup_opt(opts->key_file, &oom);
    c->will_topic = dup_opt(opts->will_topic, &oom);
    c->will_payload = dup_opt(opts->will_payload, &oom);
    c->out = outbox_create();
    if (oom || !c->out) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->port = opts->port;
    c->keepalive_s = opts->keepalive_s;
    c->tls = opts->tls;
    c->will_retained = opts->will_retained;
    c->will_qos = opts->will_qos;
    c->on_message = on_message;
    c->on_connection = on_connection;
    c->ud = ud;
    c->st = ST_IDLE;
    c->backoff_s = BACKOFF_FIRST_S;

    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        snprintf(err, errlen, "mutex init failed");
        goto fail;
    }
    mu_ok = true;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* util_mono_ms() deadlines */
    cv_ok = pthread_cond_init(&c->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok) {
        snprintf(err, errlen, "condition variable init failed");
        goto fail;
    }

    /* IPv6 literals need brackets in a URI. */
    bool v6 = strchr(c->host, ':') && c->host[0] != '[';
    char uri[512];
    int ul = snprintf(uri, sizeof(uri), "%s://%s%s%s:%d", c->tls ? "ssl" : "tcp", v6 ? "[" : "",
                      c->host, v6 ? "]" : "", c->port);
    if (ul < 0 || (size_t)ul >= sizeof(uri)) {
        snprintf(err, errlen, "MQTT host name too long");
        goto fail;
    }
    /* Plain TCP loads libpaho-mqtt3a, which does not pull in OpenSSL (about
     * 2 MB of resident pages); TLS loads libpaho-mqtt3as. */
    if (!(c->api = paho_api(c->tls, err, errlen)))
        goto fail;
    /* OpenSSL 1.1+ initialises itself when a TLS context is first made;
     * paho's own explicit start-up (all algorithms, all error strings) only
     * costs memory, ~3 MB of libcrypto pages. */
    MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
    io.do_openssl_init = 0;
    c->api->global_init(&io);
    int rc = c->api->create(&c->cli, uri, c->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        c->cli = NULL;
        snprintf(err, errlen, "MQTT client for %s: %s", uri, c->api->strerror(rc));
        goto fail;
    }
    rc = c->api->set_callbacks(c->cli, c, on_connection_lost, on_message_arrived, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, errlen, "MQTT callbacks: %s", c->api->strerror(rc));
        goto fail;
    }
    return c;

fail:
    if (c->cli)
        c->api->destroy(&c->cli);
    outbox_destroy(c->out);
    if (cv_ok)
        pthread_cond_destroy(&c->cv);
    if (mu_ok)
        pthread_mutex_destroy(&c->mu);
    free_options(c);
    free(c);
    return NULL;
}

wb_status mqttc_start(struct mqttc *c)
{
    if (!c)
        return WB_ERR_INVALID;
    pthread_mutex_lock(&c->mu);
    if (c->st != ST_IDLE) {
        pthread_mutex_unlock(&c->mu);
        return WB_ERR_INVALID;
    }
    c->st = ST_BACKOFF;
    c->retry_at_ms = util_mono_ms(); /* the first attempt at once */
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->thr, NULL, reconnect_main, c) != 0) {
        pthread_mutex_lock(&c->mu);
        c->st = ST_IDLE;
        pthread_mutex_unlock(&c->mu);
        log_error("MQTT: cannot start the reconnect thread");
        return WB_ERR_NOMEM;
    }
    c->thr_started = true;
    if (pthread_create(&c->sender, NULL, mqttc_sender_main, c) != 0) {
        log_error("MQTT: cannot start the sender thread");
        return WB_ERR_NOMEM; /* mqttc_stop() joins the reconnect thread */
    }
    c->sender_started = true;
    return WB_OK;
}

wb_status mqttc_set_subscriptions(struct mqttc *c, const char *const *filters, size_t n, int qos)
{
    if (!c || (n && !filters) || qos < 0 || qos > 2 || n > INT_MAX)
        return WB_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (!filters[i] || !filters[i][0])
            return WB_ERR_INVALID;
    /* The topic gate (topic_gate.h): a filter the broker would refuse is
     * left out of the set (counted and logged), never sent. */
    const char **admitted = n ? malloc(n * sizeof(*admitted)) : NULL;
    if (n && !admitted)
        return WB_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (tgate_admit(filters[i], TGATE_FILTER) == TGATE_OK)
            admitted[k++] = filters[i];
    filters = admitted;
    n = k;
    char **fresh = dup_strv(filters, n);
    if (n && !fresh) {
        free(admitted);
        return WB_ERR_NOMEM;
    }

    pthread_mutex_lock(&c->mu);
    bool up = c->st == ST_CONNECTED && !c->stopping;
    if (up && c->nsubs) {
        /* Filters dropped from the set are unsubscribed by the sender
         * thread; a reconnect (clean session) would forget them anyway. */
        char **gone = realloc(c->resub_gone, (c->resub_ngone + c->nsubs) * sizeof(*gone));
        if (gone) {
            c->resub_gone = gone;
            for (size_t i = 0; i < c->nsubs; i++) {
                bool kept = false;
                for (size_t j = 0; j < n && !kept; j++)
                    kept = strcmp(c->subs[i], filters[j]) == 0;
                if (!kept) {
                    c->resub_gone[c->resub_ngone++] = c->subs[i];
                    c->subs[i] = NULL; /* ownership moves to resub_gone */
                }
            }
        }
    }
    free_strv(c->subs, c->nsubs);
    c->subs = fresh;
    c->nsubs = n;
    c->sub_qos = qos;
    if (up)
        c->resub_pending = true;
    pthread_mutex_unlock(&c->mu);
    if (up)
        outbox_wake(c->out);
    free(admitted);
    return WB_OK;
}

bool mqttc_is_connected(struct mqttc *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&c->mu);
    bool up = c->stats.connected;
    pthread_mutex_unlock(&c->mu);
    return up;
}

void mqttc_get_stats(struct mqttc *c, struct mqttc_stats *out)
{
    if (!out)
        return;
    if (!c) {
        memset(out, 0, sizeof(*out));
        return;
    }
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
    out->received = atomic_load(&c->n_received);
    out->published = atomic_load(&c->n_published);
    out->publish_failures = atomic_load(&c->n_publish_failures);
}

/* True while paho still holds publications not yet handed to the broker
 * (QoS 0 not yet written, QoS 1 not yet acknowledged). */
static bool has_pending(struct mqttc *c)
{
    MQTTAsync_token *tokens = NULL;
    if (c->api->get_pending_tokens(c->cli, &tokens) != MQTTASYNC_SUCCESS)
        return false;
    bool pending = tokens && tokens[0] != -1;
    c->api->free(tokens);
    return pending;
}

/* Stops for good (a stopped client cannot be started again). The drain and
 * the wait for a connect in flight share timeout_ms; the DISCONNECT itself
 * may take up to 1 s more. A connect still unanswered at the deadline is
 * abandoned: paho cannot disconnect it, so mqttc_destroy() drops its socket,
 * and a broker that had already accepted it would publish the will. */
void mqttc_stop(struct mqttc *c, unsigned timeout_ms)
{
    if (!c)
        return;
    int64_t deadline = util_mono_ms() + timeout_ms;

    pthread_mutex_lock(&c->mu);
    if (c->stopping || c->st == ST_IDLE) {
        c->stopping = true;
        c->st = ST_STOPPED;
        pthread_mutex_unlock(&c->mu);
        mqttc_stop_sender(c);
        return;
    }
    c->stopping = true; /* new publications are refused from here on */
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->thr_started) {
        pthread_join(c->thr, NULL); /* never blocked for long: it only waits on cv */
        c->thr_started = false;
    }

    /* A connect in flight must end before we can disconnect it; otherwise
     * destroying the client would drop the TCP connection and fire the will. */
    pthread_mutex_lock(&c->mu);
    while (c->st == ST_CONNECTING && util_mono_ms() < deadline)
        cv_wait_until(c, deadline);
    bool up = c->st == ST_CONNECTED || c->st == ST_CONNECTING;
    pthread_mutex_unlock(&c->mu);

    if (up) {
        while (!outbox_idle(c->out) && util_mono_ms() < deadline)
            sleep_ms(2);
        mqttc_stop_sender(c);
        while (has_pending(c) && util_mono_ms() < deadline)
            sleep_ms(5);
        int64_t left = deadline - util_mono_ms();
        MQTTAsync_disconnectOptions dopt = MQTTAsync_disconnectOptions_initializer;
        dopt.timeout = left > 0 ? (int)left : 0;
        dopt.onSuccess = on_disconnect_done;
        dopt.onFailure = on_disconnect_failed;
        dopt.context = c;
        int rc = c->api->disconnect(c->cli, &dopt);
        pthread_mutex_lock(&c->mu);
        if (rc == MQTTASYNC_SUCCESS) {
            /* The DISCONNECT packet is written within moments; allow a
             * little beyond the caller's deadline so it always goes out. */
            int64_t hard = (left > 0 ? deadline : util_mono_ms()) + 1000;
            while (!c->disconnect_done && util_mono_ms() < hard)
                cv_wait_until(c, hard);
        } else if (rc == MQTTASYNC_DISCONNECTED) {
            /* paho refuses to disconnect a connect still waiting for its
             * CONNACK; MQTTAsync_destroy() will drop the socket. */
            log_info("MQTT stop: connect attempt to %s:%d abandoned", c->host, c->port);
        } else {
            log_warn("MQTT disconnect: %s", c->api->strerror(rc));
        }
        pthread_mutex_unlock(&c->mu);
    }

    mqttc_stop_sender(c); /* when the connection was not up */
    pthread_mutex_lock(&c->mu);
    bool was_up = c->stats.connected;
    c->stats.connected = false;
    c->st = ST_STOPPED;
    pthread_mutex_unlock(&c->mu);
    if (was_up)
        log_info("MQTT disconnected from %s:%d", c->host, c->port);
}

void mqttc_destroy(struct mqttc *c)
{
    if (!c)
        return;
    mqttc_stop(c, DESTROY_STOP_TIMEOUT_MS);
    c->api->destroy(&c->cli);
    /* paho calls no new callback for a destroyed handle; wait for the ones
     * that may still be returning before freeing what they touch. */
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->draining, true);
    /* Timed: a callback that decremented just before draining was set did
     * not broadcast (see cb_leave_counting()). */
    while (atomic_load(&c->cb_active) > 0)
        cv_wait_until(c, util_mono_ms() + 10);
    pthread_mutex_unlock(&c->mu);

    while (c->rounds) /* chunks paho dropped with the connection */
        round_free_locked(c, c->rounds);
    free_strv(c->resub_gone, c->resub_ngone);
    free_strv(c->subs, c->nsubs);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free_options(c);
    outbox_destroy(c->out);
    free(c);
}

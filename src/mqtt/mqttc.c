/*
 * mqttc.c - the MQTT connection: one paho MQTTAsync client (MQTT 5 with
 * clean start, or MQTT 3.1.1 with a clean session; no persistence) kept
 * connected for ever.
 *
 * This module owns the paho handle, copies of every option string, the
 * current subscription set, the connection statistics and one small
 * "reconnect" thread. paho's automaticReconnect only helps after a first
 * successful connect, so every connect attempt (the very first included) is
 * made by the reconnect thread, which sleeps on a condition variable until
 * the backoff deadline passes or mqttc_stop() wakes it. The backoff starts at
 * 1 s, doubles after every failure up to 30 s, and falls back to 1 s after a
 * successful connect. paho wants the *5 callbacks from a client made for MQTT
 * 5 and the others from a 3.1.1 one: c->v5 picks them everywhere.
 *
 * Invariants:
 *  - every field below `mu` is read and written only with `mu` held, but
 *    the atomics, each of which says how it is kept (`up`, the lock-free
 *    mirror of st and stopping that mqttc_publish() reads, is stored only
 *    under `mu`, by set_st_locked() and set_stopping_locked());
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
 *   CONNECTING (ST_CONNECTING) --connect_failed(): "MQTT connect failed:      |
 *        |                        reason; retrying in N s", backoff *= 2 -----+
 *        |     (paho's generic "TCP/TLS connect failure": reconnect_main()    |
 *        |      logs the cause found by mqttc_diagnose(), mqttc_diag.c)       |
 *        | connected(): "MQTT connected to host:port (MQTT 5, TLS)",          |
 *        | mqttc_subscribe_all() (mqttc_sub.c), on_connection(true),          |
 *        | backoff = 1 s                                                      |
 *        v                                                                    |
 *   CONNECTED (ST_CONNECTED)                                                  |
 *        | connection_gone(): from on_connection_lost() (socket, keepalive)   |
 *        | or on_disconnected() (MQTT 5 DISCONNECT with its reason code);     |
 *        | counted in the flap window, on_connection(false)                   |
 *        v                                                                    |
 *   LOST --"MQTT connection lost: reason; retrying in N s"--------------------+
 *
 *   any state --mqttc_stop(): join the reconnect thread, let a connect in
 *   flight finish, drain pending publications, MQTTAsync_disconnect()
 *   (a clean DISCONNECT, so no Last Will)--> STOPPED (ST_STOPPED)
 *
 * More than flap_disconnects losses within flap_window_s make the connection
 * "flapping" (mqttc_stats.flapping; /health says so) until the window has
 * room again.
 *
 * Publications (mqttc_send.c): mqttc_publish() only puts the message in an
 * outbox (mqtt/outbox.h) and one sender thread (mqttc_sender_main) hands it
 * to MQTTAsync_send(). The caller never takes paho's lock: paho holds that lock
 * while our message callback runs, and the callback may block on the core's
 * full queue, so a core thread calling MQTTAsync_send() directly deadlocks
 * under load. Retained publications of one topic coalesce in the outbox; a
 * lost connection clears it (the owner republishes after the next connect).
 * One exception: a publication made inside our own message callback (a
 * message applied in place on paho's receive thread) goes straight to
 * MQTTAsync_send() while the outbox is idle: that thread holds paho's lock
 * already, and the detour cost ~15 us of CPU per mirror publication.
 * mqttc_publish_acked() (commands) always goes through the outbox; its
 * outcome (PUBACK reason code, or why it never got one) is reported once,
 * never inside mqttc_publish_acked() itself.
 *
 * Order: publications ordered by happens-before in their callers (made by
 * one thread, or by threads that synchronise with each other) are handed to
 * paho, and so sent, in that order; concurrent publications that nothing
 * orders have no order. mqttc needs no lock of its callers for it: the
 * outbox is a FIFO drained by one sender thread, which takes a publication
 * and calls outbox_done() only after its MQTTAsync_send() returned; the
 * direct path sends only when outbox_idle() (nothing queued, nothing in the
 * sender's hand), read with acquire ordering against the outbox's release,
 * so every earlier publication of the caller that went through the outbox
 * was already handed to paho. The one exception is coalescing: a retained
 * publication that replaces a queued one of its topic takes that one's
 * place, so it goes out before what was queued between the two (the broker
 * still ends with the newest value of every topic). Neither the up-check nor
 * the idle check takes a lock (atomics; see mqttc_int.h and outbox.c).
 *
 * LOST is not stored: connection_gone() goes straight to ST_BACKOFF.
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
#include "wbmb/lockstat.h"
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

/* Schedules the next connect attempt after a failure or a loss and logs the
 * state change; mu held. */
static void schedule_retry_locked(struct mqttc *c, const char *what, const char *reason)
{
    unsigned d = c->backoff_s;
    if (what) /* NULL: reconnect_main() logs it with its cause */
        log_warn("MQTT %s: %s; retrying in %u s", what, reason, d);
    /* Up to a quarter more, at random: two clients of one process that lost
     * the broker together would otherwise retry in the same millisecond
     * every time, and Debian's paho 1.3.11 can leave two connects begun in
     * the same instant both unanswered until the connect timeout (seen as
     * "TCP connect timeout" with the broker logging a connection that never
     * sent CONNECT). */
    unsigned jitter = (unsigned)rand_r(&c->jitter_seed) % (d * 250 + 1);
    c->retry_at_ms = util_mono_ms() + (int64_t)d * 1000 + jitter;
    c->backoff_s = d * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : d * 2;
    set_st_locked(c, ST_BACKOFF);
    pthread_cond_broadcast(&c->cv);
}

/* ---- paho callbacks (paho's thread) ----------------------------------- */

static void connected(struct mqttc *c)
{
    cb_enter(c);
    wb_lock(&c->mu);
    set_st_locked(c, ST_CONNECTED);
    atomic_store(&c->sender_inflight, 0); /* died with the old session */
    atomic_store(&c->qos_inflight, 0);
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

    log_info("MQTT connected to %s:%d (MQTT %s%s)", c->host, c->port, c->v5 ? "5" : "3.1.1",
             c->tls ? c->verify_hostname ? ", TLS" : ", TLS without host name check" : "");
    /* paho never sets TCP_NODELAY: two small publications in a row would
     * wait for the broker's delayed ACK (Nagle), ~40 ms on loopback. */
    util_tcp_nodelay_to_port(c->port);
    mqttc_subscribe_all(c); /* chunks copied from c->subs under mu */
    if (c->on_connection)
        c->on_connection(c->ud, true);
    cb_leave(c);
}

static void on_connect_success(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    struct mqttc *c = ctx;
    atomic_store(&c->qos_limit, 65534); /* 3.1.1: paho's own limit, 65535 */
    connected(c);
}

static void on_connect_success5(void *ctx, MQTTAsync_successData5 *resp)
{
    struct mqttc *c = ctx;
    int recv_max = 65535; /* no Receive Maximum in the CONNACK */
    for (int i = 0; resp && i < resp->properties.count; i++)
        if (resp->properties.array[i].identifier == MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)
            recv_max = resp->properties.array[i].value.integer2;
    atomic_store(&c->qos_limit, recv_max > 1 ? recv_max - 1 : 1);
    connected(c);
}

/* A connect attempt failed: code/message from paho, reason5 the CONNACK's
 * MQTT 5 reason code (0 when none). paho's generic TCP/TLS failure is
 * diagnosed by the reconnect thread before it is logged. */
static void connect_failed(struct mqttc *c, int code, const char *message, int reason5)
{
    char reason[200];
    bool connack = message && strstr(message, "CONNACK");
    const char *ck = connack && !c->v5 ? mqttc_connack_text(code) : NULL;
    bool generic = !connack && message && strstr(message, "TCP/TLS connect failure");
    if (ck)
        snprintf(reason, sizeof(reason), "broker refused: %s", ck);
    else if (connack && reason5 >= 0x80)
        mqttc_reason(c, reason5, NULL, reason, sizeof(reason));
    else
        mqttc_reason(c, code, message, reason, sizeof(reason));
    if (c->v5 && reason5 == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION)
        snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason),
                 "; set mqtt.protocol: 3.1.1 for this broker");
    cb_enter(c);
    wb_lock(&c->mu);
    if (c->stopping) {
        set_st_locked(c, ST_STOPPED);
        pthread_cond_broadcast(&c->cv);
    } else if (generic) {
        c->diag_pending = true; /* logged by reconnect_main() with its cause */
        c->diag_retry_s = c->backoff_s;
        schedule_retry_locked(c, NULL, NULL);
    } else {
        schedule_retry_locked(c, "connect failed", reason);
    }
    pthread_mutex_unlock(&c->mu);
    cb_leave(c);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
    connect_failed(ctx, resp ? resp->code : MQTTASYNC_FAILURE, resp ? resp->message : NULL, 0);
}

static void on_connect_failure5(void *ctx, MQTTAsync_failureData5 *resp)
{
    connect_failed(ctx, resp ? resp->code : MQTTASYNC_FAILURE, resp ? resp->message : NULL,
                   resp ? (int)resp->reasonCode : 0);
}

/* The connection is gone: a loss paho saw (on_connection_lost) or a
 * DISCONNECT from the broker (on_disconnected, MQTT 5; paho then does not
 * call on_connection_lost). Counted in the flap window and logged with its
 * reason. */
static void connection_gone(struct mqttc *c, const char *reason)
{
    cb_enter(c);
    wb_lock(&c->mu);
    bool was_up = c->stats.connected;
    if (c->st != ST_CONNECTED && !was_up) {
        pthread_mutex_unlock(&c->mu); /* already handled */
        cb_leave(c);
        return;
    }
    c->stats.connected = false;
    if (was_up) {
        c->stats.disconnects++;
        flap_note(&c->flaps, util_mono_ms());
    }
    if (c->stopping) {
        set_st_locked(c, ST_STOPPED);
        pthread_cond_broadcast(&c->cv);
    } else {
        schedule_retry_locked(c, "connection lost", reason);
        if (flap_is_flapping(&c->flaps, util_mono_ms()))
            log_error("MQTT connection is flapping: more than %u losses within %lld s",
                      c->flaps.max_losses, (long long)(c->flaps.window_ms / 1000));
    }
    pthread_mutex_unlock(&c->mu);
    /* paho refuses sends now; the owner republishes after the next connect. */
    outbox_clear(c->out, "connection lost before it was sent");
    if (was_up && c->on_connection)
        c->on_connection(c->ud, false);
    cb_leave(c);
}

static void on_connection_lost(void *ctx, char *cause)
{
    /* paho passes NULL as the cause in practice: a socket error, the
     * broker closing the TCP connection, or a keepalive timeout. */
    connection_gone(ctx, cause ? cause
                               : "the socket closed or the keepalive timed out (no reason from "
                                 "the broker)");
}

static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
    (void)props;
    struct mqttc *c = ctx;
    char why[200];
    const char *t = c->api->reason_text(rc);
    snprintf(why, sizeof(why), "the broker sent DISCONNECT: %s (0x%02X)", t ? t : "no reason",
             (unsigned)rc);
    connection_gone(c, why);
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
    (void)resp;
    struct mqttc *c = ctx;
    cb_enter(c);
    wb_lock(&c->mu);
    c->disconnect_done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    cb_leave(c);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData *resp)
{
    (void)resp;
    on_disconnect_done(ctx, NULL);
}

/* ---- reconnect thread ------------------------------------------------- */

/* Issues one asynchronous connect; the result arrives in
 * on_connect_success*() / on_connect_failure*(). */
static int start_connect(struct mqttc *c)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions so = MQTTAsync_SSLOptions_initializer;

    if (c->v5) {
        co = co5; /* cleanstart = 1: no session is kept, as with 3.1.1 */
        co.onSuccess5 = on_connect_success5;
        co.onFailure5 = on_connect_failure5;
    } else {
        co.MQTTVersion = MQTTVERSION_3_1_1;
        co.cleansession = 1;
        co.onSuccess = on_connect_success;
        co.onFailure = on_connect_failure;
    }
    co.keepAliveInterval = (int)c->keepalive_s;
    co.connectTimeout = 10;
    co.automaticReconnect = 0; /* ours, see the file comment */
    co.username = c->username;
    co.password = c->password;
    co.context = c;
    if (c->will_topic) {
        wo.topicName = c->will_topic;
        wo.message = c->will_payload ? c->will_payload : "";
        wo.retained = c->will_retained;
        wo.qos = c->will_qos;
        co.will = &wo;
    }
    if (c->tls) {
        so.trustStore = c->ca_file; /* NULL: the system's CAs */
        so.keyStore = c->cert_file;
        so.privateKey = c->key_file;
        /* The chain is always verified (against ca_file, or the system's
         * CAs); the host name too unless verify_hostname is false: a chain
         * check alone accepts any certificate the CA ever signed. */
        so.enableServerCertAuth = 1;
        so.verify = c->verify_hostname ? 1 : 0;
        so.ssl_error_cb = mqttc_ssl_error_cb;
        so.ssl_error_context = c;
        co.ssl = &so;
        wb_lock(&c->mu);
        c->tls_errors[0] = '\0';
        pthread_mutex_unlock(&c->mu);
    }
    /* paho copies everything it keeps from co, wo and so. */
    return c->api->connect(c->cli, &co);
}

/* The cause of a failed TCP/TLS step, found and logged here (the probe may
 * take up to 2 s: never on paho's thread). mu held on entry and return. */
static void log_diagnosis_locked(struct mqttc *c)
{
    char errs[sizeof(c->tls_errors)], cause[1024];
    unsigned retry = c->diag_retry_s;
    c->diag_pending = false;
    memcpy(errs, c->tls_errors, sizeof(errs));
    pthread_mutex_unlock(&c->mu);
    mqttc_diagnose(c, errs, cause, sizeof(cause));
    log_warn("MQTT connect failed: %s; retrying in %u s", cause, retry);
    wb_lock(&c->mu);
}

static void *reconnect_main(void *arg)
{
    struct mqttc *c = arg;
    pthread_setname_np(pthread_self(), "wbmb-reconnect"); /* top -H, perf, gdb */
    wb_lock(&c->mu);
    while (!c->stopping) {
        if (c->diag_pending) {
            log_diagnosis_locked(c);
            continue;
        }
        if (c->st != ST_BACKOFF) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        if (util_mono_ms() < c->retry_at_ms) {
            cv_wait_until(c, c->retry_at_ms);
            continue;
        }
        set_st_locked(c, ST_CONNECTING);
        pthread_mutex_unlock(&c->mu);
        log_debug("MQTT connecting to %s:%d", c->host, c->port);
        int rc = start_connect(c);
        wb_lock(&c->mu);
        if (rc != MQTTASYNC_SUCCESS) {
            if (c->stopping)
                set_st_locked(c, ST_STOPPED);
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
    if (flap_init(&c->flaps, opts->flap_disconnects, opts->flap_window_s) != WB_OK) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->port = opts->port;
    c->keepalive_s = opts->keepalive_s;
    c->v5 = opts->protocol != 4;
    c->stats.protocol = c->v5 ? 5 : 4;
    c->verify_hostname = opts->verify_hostname;
    c->tls = opts->tls;
    c->will_retained = opts->will_retained;
    c->will_qos = opts->will_qos;
    c->on_message = on_message;
    c->on_connection = on_connection;
    c->ud = ud;
    set_st_locked(c, ST_IDLE);
    c->backoff_s = BACKOFF_FIRST_S;
    c->start_delay_ms = opts->start_delay_ms;
    c->jitter_seed = (unsigned)(uintptr_t)c ^ (unsigned)util_mono_ms();

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
    if (!(c->api = paho_api(c->tls || opts->own_library, err, errlen)))
        goto fail;
    /* OpenSSL 1.1+ initialises itself when a TLS context is first made;
     * paho's own explicit start-up (all algorithms, all error strings) only
     * costs memory, ~3 MB of libcrypto pages. */
    MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
    io.do_openssl_init = 0;
    c->api->global_init(&io);
    /* MQTT 5 needs a client made for it. Its create options also bound
     * the commands paho queues (100 by default; none without options): the
     * sender bounds them itself (SENDER_MAX_INFLIGHT). */
    MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
    cro.maxBufferedMessages = INT_MAX;
    int rc = c->v5 ? c->api->create_with_options(&c->cli, uri, c->client_id,
                                                 MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro)
                   : c->api->create(&c->cli, uri, c->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
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
    /* MQTT 5: a DISCONNECT from the broker (with its reason code) arrives
     * here, and paho then does not call on_connection_lost(). */
    if (c->v5 && (rc = c->api->set_disconnected(c->cli, c, on_disconnected)) != MQTTASYNC_SUCCESS) {
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
    flap_free(&c->flaps);
    free(c);
    return NULL;
}

wb_status mqttc_start(struct mqttc *c)
{
    if (!c)
        return WB_ERR_INVALID;
    wb_lock(&c->mu);
    if (c->st != ST_IDLE) {
        pthread_mutex_unlock(&c->mu);
        return WB_ERR_INVALID;
    }
    set_st_locked(c, ST_BACKOFF);
    c->retry_at_ms = util_mono_ms() + c->start_delay_ms; /* the first attempt */
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->thr, NULL, reconnect_main, c) != 0) {
        wb_lock(&c->mu);
        set_st_locked(c, ST_IDLE);
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

bool mqttc_is_connected(struct mqttc *c)
{
    if (!c)
        return false;
    wb_lock(&c->mu);
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
    wb_lock(&c->mu);
    *out = c->stats;
    out->flapping = flap_is_flapping(&c->flaps, util_mono_ms());
    pthread_mutex_unlock(&c->mu);
    out->received = atomic_load(&c->n_received);
    out->published = atomic_load(&c->n_published);
    out->publish_failures = atomic_load(&c->n_publish_failures);
    out->coalesced = outbox_coalesced(c->out);
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

    wb_lock(&c->mu);
    if (c->stopping || c->st == ST_IDLE) {
        set_stopping_locked(c);
        set_st_locked(c, ST_STOPPED);
        pthread_mutex_unlock(&c->mu);
        mqttc_stop_sender(c);
        return;
    }
    set_stopping_locked(c); /* new publications are refused from here on */
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->thr_started) {
        pthread_join(c->thr, NULL); /* never blocked for long: it only waits on cv */
        c->thr_started = false;
    }

    /* A connect in flight must end before we can disconnect it; otherwise
     * destroying the client would drop the TCP connection and fire the will. */
    wb_lock(&c->mu);
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
        wb_lock(&c->mu);
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
    wb_lock(&c->mu);
    bool was_up = c->stats.connected;
    c->stats.connected = false;
    set_st_locked(c, ST_STOPPED);
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
    wb_lock(&c->mu);
    atomic_store(&c->draining, true);
    /* Timed: a callback that decremented just before draining was set did
     * not broadcast (see cb_leave_counting()). */
    while (atomic_load(&c->cb_active) > 0)
        cv_wait_until(c, util_mono_ms() + 10);
    pthread_mutex_unlock(&c->mu);

    mqttc_free_rounds(c); /* chunks paho dropped with the connection */
    flap_free(&c->flaps);
    free_strv(c->resub_gone, c->resub_ngone);
    free_strv(c->subs, c->nsubs);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free_options(c);
    outbox_destroy(c->out);
    free(c);
}

/*
 * mqttc_send.c - mqttc's publications (see mqttc.c's top): mqttc_publish()
 * puts them in the outbox, the sender thread hands them to paho, and one
 * made inside our own message callback goes to paho directly while the
 * outbox is idle.
 */
#include "mqtt/mqttc_int.h"

#include <limits.h>
#include <string.h>

#include <MQTTAsync.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/topic_gate.h"
#include "wbmb/util.h"

_Thread_local struct mqttc *mqttc_in_callback;

/* paho's thread: a publication was written (QoS 0) or acknowledged (QoS 1),
 * or failed: either way it left paho. */
static void sent_done(struct mqttc *c, bool qos)
{
    bool was_full = qos && atomic_fetch_sub(&c->qos_inflight, 1) >= atomic_load(&c->qos_limit);
    if (atomic_fetch_sub(&c->sender_inflight, 1) < SENDER_MAX_INFLIGHT && !was_full)
        return;
    wb_lock(&c->mu); /* the sender may wait for room */
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* One pair of callbacks per protocol and QoS 0 / QoS 1+ (which counts in
 * qos_inflight); ctx is the client. */
static void on_send_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    sent_done(ctx, false);
}

static void on_send_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    sent_done(ctx, false);
}

static void on_send_ok_q(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    sent_done(ctx, true);
}

static void on_send_fail_q(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    sent_done(ctx, true);
}

static void on_send_ok5(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r;
    sent_done(ctx, false);
}

static void on_send_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    sent_done(ctx, false);
}

static void on_send_ok5_q(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r;
    sent_done(ctx, true);
}

static void on_send_fail5_q(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    sent_done(ctx, true);
}

/* Room for one more QoS 1/2 publication in paho (see qos_limit). */
static bool qos_room(struct mqttc *c)
{
    return atomic_load(&c->qos_inflight) < atomic_load(&c->qos_limit);
}

/* A publication whose outcome is wanted (mqttc_publish_acked), in paho's
 * hands: freed by its callback, which paho calls exactly once (also with
 * MQTTASYNC_OPERATION_INCOMPLETE when the session ends without an answer). */
struct send_ack {
    struct mqttc *c;
    mqttc_ack_cb ack;
    void *ud;
    uint64_t token;
};

static void acked(struct send_ack *a, int rc, const char *msg)
{
    struct mqttc *c = a->c;
    char why[200] = "";
    cb_enter(c);
    if (rc != 0) {
        mqttc_reason(c, rc, msg, why, sizeof(why));
        if (rc >= 0x80) {
            wb_lock(&c->mu);
            c->stats.publish_refused++;
            pthread_mutex_unlock(&c->mu);
        }
    }
    a->ack(a->ud, a->token, rc, why);
    sent_done(c, true);
    free(a);
    cb_leave(c);
}

static void on_acked_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    acked(ctx, 0, NULL); /* 3.1.1: a PUBACK carries no reason */
}

static void on_acked_fail(void *ctx, MQTTAsync_failureData *r)
{
    acked(ctx, r && r->code < 0 ? r->code : MQTTASYNC_FAILURE, r ? r->message : NULL);
}

static void on_acked_ok5(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r; /* a reason code below 0x80 (0x10: no matching subscribers) */
    acked(ctx, 0, NULL);
}

static void on_acked_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    int rc = !r                      ? MQTTASYNC_FAILURE
             : r->reasonCode >= 0x80 ? (int)r->reasonCode
             : r->code < 0           ? r->code
                                     : MQTTASYNC_FAILURE;
    acked(ctx, rc, r ? r->message : NULL);
}

/* Sender thread: a subscription change recorded by mqttc_set_subscriptions()
 * while connected is applied here, outside mu. */
static void apply_pending_resub(struct mqttc *c)
{
    wb_lock(&c->mu);
    if (!c->resub_pending) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->resub_pending = false;
    char **gone = c->resub_gone;
    size_t ngone = c->resub_ngone;
    c->resub_gone = NULL;
    c->resub_ngone = 0;
    bool up = c->st == ST_CONNECTED && !c->stopping;
    pthread_mutex_unlock(&c->mu);
    if (up && ngone) {
        int rc = c->api->unsubscribe_many(c->cli, (int)ngone, gone, NULL);
        if (rc != MQTTASYNC_SUCCESS)
            log_warn("MQTT unsubscribe failed: %s", c->api->strerror(rc));
    }
    if (up)
        mqttc_subscribe_all(c);
    free_strv(gone, ngone);
}

/* MQTTAsync_send() of one publication; counted in flight until paho calls
 * back. Called by the sender thread and, see mqttc_publish(), by the
 * receive thread inside its message callback. */
static int hand_to_paho(struct mqttc *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retained, struct send_ack *a)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    bool q = qos > 0;
    if (c->v5) {
        ro.onSuccess5 = a ? on_acked_ok5 : q ? on_send_ok5_q : on_send_ok5;
        ro.onFailure5 = a ? on_acked_fail5 : q ? on_send_fail5_q : on_send_fail5;
    } else {
        ro.onSuccess = a ? on_acked_ok : q ? on_send_ok_q : on_send_ok;
        ro.onFailure = a ? on_acked_fail : q ? on_send_fail_q : on_send_fail;
    }
    ro.context = a ? (void *)a : (void *)c;
    atomic_fetch_add(&c->sender_inflight, 1);
    if (q)
        atomic_fetch_add(&c->qos_inflight, 1);
    int rc = c->api->send(c->cli, topic, (int)len, payload, qos, retained, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_fetch_sub(&c->sender_inflight, 1);
        if (q)
            atomic_fetch_sub(&c->qos_inflight, 1);
        atomic_fetch_add(&c->n_publish_failures, 1);
        log_debug("MQTT publish to %s refused: %s", topic, c->api->strerror(rc));
    }
    return rc;
}

/* The sender's hand-over of a publication with an outcome: a refusal by
 * paho is reported through its callback (we are not inside
 * mqttc_publish_acked() here). */
static void hand_acked(struct mqttc *c, struct outbox_msg *m)
{
    struct send_ack *a = malloc(sizeof(*a));
    if (!a) {
        m->ack(m->ack_ud, m->token, MQTTASYNC_FAILURE, "out of memory");
        m->ack = NULL;
        return;
    }
    *a = (struct send_ack){.c = c, .ack = m->ack, .ud = m->ack_ud, .token = m->token};
    m->ack = NULL; /* paho's callback tells from here on */
    int rc = hand_to_paho(c, m->topic, m->payload, m->len, m->qos, false, a);
    if (rc != MQTTASYNC_SUCCESS) {
        char why[160];
        mqttc_reason(c, rc, NULL, why, sizeof(why));
        a->ack(a->ud, a->token, rc, why);
        free(a);
    }
}

/* Takes publications from the outbox and hands them to paho. */
void *mqttc_sender_main(void *arg)
{
    struct mqttc *c = arg;
    pthread_setname_np(pthread_self(), "wbmb-sender"); /* top -H, perf, gdb */
    int64_t next_pause_ms = 0;
    while (!c->sender_stop) {
        if (outbox_depth(c->out) > SENDER_BACKLOG && util_mono_ms() >= next_pause_ms) {
            sleep_ms(SENDER_BACKLOG_PAUSE_MS);
            next_pause_ms = util_mono_ms() + SENDER_BACKLOG_EVERY_MS;
        }
        apply_pending_resub(c);
        if (atomic_load(&c->sender_inflight) >= SENDER_MAX_INFLIGHT) {
            /* Bounded wait: a connection lost with publications in flight
             * may not report them all, so the count is reset on the next
             * connect. sent_done() broadcasts under mu, after its decrement. */
            wb_lock(&c->mu);
            if (atomic_load(&c->sender_inflight) >= SENDER_MAX_INFLIGHT && !c->sender_stop)
                cv_wait_until(c, util_mono_ms() + 100);
            pthread_mutex_unlock(&c->mu);
            continue;
        }
        struct outbox_msg *m = outbox_take(c->out, 100);
        if (!m)
            continue;
        /* A QoS 1 publication past the broker's Receive Maximum waits here
         * (in hand, so the order is kept) until a PUBACK makes room. */
        while (m->qos > 0 && !qos_room(c) && !c->sender_stop) {
            wb_lock(&c->mu);
            if (!qos_room(c) && !c->sender_stop && c->st == ST_CONNECTED)
                cv_wait_until(c, util_mono_ms() + 100);
            bool up = c->st == ST_CONNECTED;
            pthread_mutex_unlock(&c->mu);
            if (!up)
                break; /* paho refuses it; an acked one is told so */
        }
        if (m->ack)
            hand_acked(c, m);
        else
            hand_to_paho(c, m->topic, m->payload, m->len, m->qos, m->retained, NULL);
        /* Done only now that MQTTAsync_send() returned: the direct path of
         * mqttc_publish() relies on it (outbox_idle()). */
        outbox_done(c->out, m);
    }
    return NULL;
}

void mqttc_stop_sender(struct mqttc *c)
{
    if (!c->sender_started)
        return;
    c->sender_stop = true;
    outbox_wake(c->out);
    pthread_join(c->sender, NULL);
    c->sender_started = false;
}

wb_status mqttc_publish(struct mqttc *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retained)
{
    if (!c || !topic || !topic[0] || (qos != 0 && qos != 1) || len > INT_MAX || (len && !payload))
        return WB_ERR_INVALID;
    /* The topic gate (topic_gate.h): a topic the broker would answer with a
     * disconnect is refused here, counted and logged, never sent. */
    if (tgate_admit(topic, TGATE_NAME) != TGATE_OK) {
        atomic_fetch_add(&c->n_publish_failures, 1);
        return WB_ERR_INVALID;
    }
    if (!mqttc_up(c)) { /* no lock: see `up` (mqttc_int.h) */
        atomic_fetch_add(&c->n_publish_failures, 1);
        return WB_ERR_MQTT;
    }
    /* Inside our own message callback on paho's receive thread (a message
     * applied in place), with nothing queued or in the sender's hand:
     * straight to paho. That thread already holds paho's lock, which the
     * sender thread would have to wait for. The order (mqttc.c's top,
     * "Order") is kept: every publication that happens-before this one and
     * went to the outbox is, when outbox_idle() says so, already done, and
     * the sender marks one done only after its MQTTAsync_send() returned;
     * the acquire load in outbox_idle() pairs with the release in the
     * outbox's counts, so that send happens-before the one below. One that
     * is still queued or in hand makes this one queue behind it. Otherwise
     * the outbox: a refusal by paho later is counted in publish_failures. */
    if (mqttc_in_callback == c && atomic_load(&c->sender_inflight) < SENDER_MAX_INFLIGHT &&
        (qos == 0 || qos_room(c)) && outbox_idle(c->out)) {
        hand_to_paho(c, topic, len ? payload : "", len, qos, retained, NULL);
        atomic_fetch_add(&c->n_published, 1);
        return WB_OK;
    }
    wb_status st = outbox_put(c->out, topic, len ? payload : "", len, qos, retained);
    atomic_fetch_add(st == WB_OK ? &c->n_published : &c->n_publish_failures, 1);
    return st == WB_OK ? WB_OK : WB_ERR_MQTT;
}

wb_status mqttc_publish_acked(struct mqttc *c, const char *topic, const void *payload, size_t len,
                              int qos, mqttc_ack_cb ack, void *ud, uint64_t token)
{
    if (!c || !topic || !topic[0] || (qos != 1 && qos != 2) || len > INT_MAX || (len && !payload) ||
        !ack)
        return WB_ERR_INVALID;
    if (tgate_admit(topic, TGATE_NAME) != TGATE_OK) { /* the gate, as in mqttc_publish() */
        atomic_fetch_add(&c->n_publish_failures, 1);
        return WB_ERR_INVALID;
    }
    if (!mqttc_up(c)) { /* no lock, as in mqttc_publish() */
        atomic_fetch_add(&c->n_publish_failures, 1);
        return WB_ERR_MQTT;
    }
    /* Always through the outbox and the sender thread, even on paho's
     * receive thread: the ack callback is never called inside
     * mqttc_publish_acked() (a caller may hold a lock the callback takes). */
    wb_status st = outbox_put_acked(c->out, topic, len ? payload : "", len, qos, ack, ud, token);
    atomic_fetch_add(st == WB_OK ? &c->n_published : &c->n_publish_failures, 1);
    return st == WB_OK ? WB_OK : WB_ERR_MQTT;
}

size_t mqttc_backlog(struct mqttc *c)
{
    return c ? outbox_depth(c->out) : 0; /* no lock (an atomic count) */
}

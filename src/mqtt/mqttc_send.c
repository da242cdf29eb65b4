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

#include "wbmb/log.h"
#include "wbmb/topic_gate.h"
#include "wbmb/util.h"

_Thread_local struct mqttc *mqttc_in_callback;

/* paho's thread: a publication was written (QoS 0) or acknowledged (QoS 1),
 * or failed: either way it left paho. */
static void sent_done(struct mqttc *c)
{
    if (atomic_fetch_sub(&c->sender_inflight, 1) < SENDER_MAX_INFLIGHT)
        return;
    pthread_mutex_lock(&c->mu); /* the sender may wait for room */
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_send_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    sent_done(ctx);
}

static void on_send_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    sent_done(ctx);
}

/* Sender thread: a subscription change recorded by mqttc_set_subscriptions()
 * while connected is applied here, outside mu. */
static void apply_pending_resub(struct mqttc *c)
{
    pthread_mutex_lock(&c->mu);
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
static void hand_to_paho(struct mqttc *c, const char *topic, const void *payload, size_t len,
                         int qos, bool retained)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_send_ok;
    ro.onFailure = on_send_fail;
    ro.context = c;
    atomic_fetch_add(&c->sender_inflight, 1);
    int rc = c->api->send(c->cli, topic, (int)len, payload, qos, retained, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_fetch_sub(&c->sender_inflight, 1);
        atomic_fetch_add(&c->n_publish_failures, 1);
        log_debug("MQTT publish to %s refused: %s", topic, c->api->strerror(rc));
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
            pthread_mutex_lock(&c->mu);
            if (atomic_load(&c->sender_inflight) >= SENDER_MAX_INFLIGHT && !c->sender_stop)
                cv_wait_until(c, util_mono_ms() + 100);
            pthread_mutex_unlock(&c->mu);
            continue;
        }
        struct outbox_msg *m = outbox_take(c->out, 100);
        if (!m)
            continue;
        hand_to_paho(c, m->topic, m->payload, m->len, m->qos, m->retained);
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
    pthread_mutex_lock(&c->mu);
    bool up = c->st == ST_CONNECTED && !c->stopping;
    pthread_mutex_unlock(&c->mu);
    if (!up) {
        atomic_fetch_add(&c->n_publish_failures, 1);
        return WB_ERR_MQTT;
    }
    /* Inside our own message callback on paho's receive thread (the core
     * applying a message in place), with nothing queued or in the sender's
     * hand: straight to paho. That thread already holds paho's lock, which
     * the sender thread would have to wait for; and with the outbox idle
     * nothing older can overtake, so the order of the publications is kept
     * (every publisher runs under the core's lock). Otherwise the outbox: a
     * refusal by paho later is counted in publish_failures. */
    if (mqttc_in_callback == c && atomic_load(&c->sender_inflight) < SENDER_MAX_INFLIGHT &&
        outbox_idle(c->out)) {
        hand_to_paho(c, topic, len ? payload : "", len, qos, retained);
        atomic_fetch_add(&c->n_published, 1);
        return WB_OK;
    }
    wb_status st = outbox_put(c->out, topic, len ? payload : "", len, qos, retained);
    atomic_fetch_add(st == WB_OK ? &c->n_published : &c->n_publish_failures, 1);
    return st == WB_OK ? WB_OK : WB_ERR_MQTT;
}

size_t mqttc_backlog(struct mqttc *c)
{
    return c ? outbox_depth(c->out) : 0;
}

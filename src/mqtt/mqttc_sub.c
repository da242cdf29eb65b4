/*
 * mqttc_sub.c - mqttc's subscriptions (see mqttc.c's top): the whole set is
 * (re)subscribed after every connect and after every change, in SUBSCRIBE
 * packets of SUB_CHUNK filters, the next one sent when the broker has
 * answered the previous one.
 *
 * Every SUBACK is read filter by filter: a reason code >= 0x80 (MQTT 5:
 * "Not authorized" 0x87, ...; MQTT 3.1.1: 0x80 "failure", no reason) means
 * the broker refused that filter. Each refusal is logged at error level with
 * its filter and counted (mqttc_stats.subscriptions_refused); the other
 * filters of the packet and the next packets are not affected.
 */
#include "mqtt/mqttc_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/topic_gate.h"

/* Filters per SUBSCRIBE packet. One packet of 10 000 filters made paho hold
 * about 5 MB (copies, its own allocation tracking, the 200 KB packet) until
 * the SUBACK; the next chunk is sent when the previous one is answered. */
#define SUB_CHUNK 256
/* Refusals logged one by one per round; the rest are summed up. */
#define SUB_LOG_MAX 20

/* One subscription round: c->subs from the start, a chunk at a time. The
 * filters of the chunk in flight are copied from c->subs under mu and kept
 * until its SUBACK names them. A round ends when done, superseded (gen),
 * stopped, or when paho refuses a chunk; one paho never answers (the
 * connection went) is freed by mqttc_free_rounds(). */
struct sub_round {
    struct mqttc *c;
    struct sub_round *next_round; /* c->rounds */
    size_t sent;
    unsigned gen;
    size_t k; /* filters in the chunk in flight */
    char *chunk[SUB_CHUNK];
    size_t refused; /* in this round */
};

static void chunk_free(struct sub_round *r)
{
    for (size_t i = 0; i < r->k; i++)
        free(r->chunk[i]);
    r->k = 0;
}

static void round_free_locked(struct mqttc *c, struct sub_round *r)
{
    for (struct sub_round **p = &c->rounds; *p; p = &(*p)->next_round)
        if (*p == r) {
            *p = r->next_round;
            break;
        }
    chunk_free(r);
    free(r);
}

void mqttc_free_rounds(struct mqttc *c)
{
    while (c->rounds)
        round_free_locked(c, c->rounds);
}

static void on_sub_success(void *ctx, MQTTAsync_successData *resp);
static void on_sub_failure(void *ctx, MQTTAsync_failureData *resp);
static void on_sub_success5(void *ctx, MQTTAsync_successData5 *resp);
static void on_sub_failure5(void *ctx, MQTTAsync_failureData5 *resp);

/* Sends the round's next chunk or ends the round. r is not touched after
 * paho has it: its callback may run at once on paho's thread. */
static void round_next(struct sub_round *r)
{
    struct mqttc *c = r->c;
    int qoss[SUB_CHUNK];
    size_t k = 0, first;
    wb_lock(&c->mu);
    chunk_free(r);
    if (r->gen == c->sub_gen && !c->stopping && c->st == ST_CONNECTED)
        for (; k < SUB_CHUNK && r->sent + k < c->nsubs; k++) {
            if (!(r->chunk[k] = strdup(c->subs[r->sent + k]))) {
                log_error("MQTT subscribe: out of memory");
                break;
            }
            qoss[k] = c->sub_qos;
        }
    r->k = k;
    first = r->sent;
    r->sent += k;
    if (k == 0) {
        if (r->refused > SUB_LOG_MAX)
            log_error("MQTT: the broker refused %zu subscriptions in all (%d logged above)",
                      r->refused, SUB_LOG_MAX);
        round_free_locked(c, r);
    }
    pthread_mutex_unlock(&c->mu);
    if (k == 0)
        return;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    if (c->v5) {
        ro.onSuccess5 = on_sub_success5;
        ro.onFailure5 = on_sub_failure5;
    } else {
        ro.onSuccess = on_sub_success;
        ro.onFailure = on_sub_failure;
    }
    ro.context = r;
    /* paho copies the filters; r->chunk stays ours until the answer. */
    int rc = c->api->subscribe_many(c->cli, (int)k, r->chunk, qoss, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        log_warn("MQTT subscribe to filters %zu.. failed: %s", first + 1, c->api->strerror(rc));
        wb_lock(&c->mu);
        round_free_locked(c, r);
        pthread_mutex_unlock(&c->mu);
    }
}

/* The broker's answer to the chunk in flight: codes[i] for filter i (n of
 * them), or one code for all when codes is NULL. */
static void chunk_answered(struct sub_round *r, const int *codes,
                           const enum MQTTReasonCodes *codes5, size_t n, int one)
{
    struct mqttc *c = r->c;
    wb_lock(&c->mu);
    for (size_t i = 0; i < r->k; i++) {
        int rc = codes && i < n ? codes[i] : codes5 && i < n ? (int)codes5[i] : one;
        if (rc < 0x80)
            continue;
        c->stats.subscriptions_refused++;
        if (++r->refused <= SUB_LOG_MAX) {
            char why[160];
            mqttc_reason(c, rc, NULL, why, sizeof(why));
            log_error("MQTT subscription to '%s' refused: %s", r->chunk[i], why);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void on_sub_success(void *ctx, MQTTAsync_successData *resp)
{
    struct sub_round *r = ctx;
    struct mqttc *c = r->c;
    cb_enter(c);
    /* 3.1.1: one granted QoS per filter, 0x80 for a refused one. */
    if (resp && r->k > 1)
        chunk_answered(r, resp->alt.qosList, NULL, r->k, 0);
    else if (resp)
        chunk_answered(r, NULL, NULL, 0, resp->alt.qos);
    round_next(r);
    cb_leave(c);
}

static void on_sub_failure(void *ctx, MQTTAsync_failureData *resp)
{
    struct sub_round *r = ctx;
    struct mqttc *c = r->c;
    cb_enter(c);
    if (resp && resp->code == 0x80) /* a single filter refused */
        chunk_answered(r, NULL, NULL, 0, 0x80);
    else
        log_warn("MQTT subscribe failed: %s",
                 resp && resp->message ? resp->message
                                       : c->api->strerror(resp ? resp->code : MQTTASYNC_FAILURE));
    round_next(r); /* the other chunks still go out while connected */
    cb_leave(c);
}

static void on_sub_success5(void *ctx, MQTTAsync_successData5 *resp)
{
    struct sub_round *r = ctx;
    struct mqttc *c = r->c;
    cb_enter(c);
    /* paho fills reasonCodes only for more than one filter. */
    if (resp && r->k > 1 && resp->alt.sub.reasonCodeCount > 1 && resp->alt.sub.reasonCodes)
        chunk_answered(r, NULL, resp->alt.sub.reasonCodes, (size_t)resp->alt.sub.reasonCodeCount,
                       0);
    else if (resp)
        chunk_answered(r, NULL, NULL, 0, (int)resp->reasonCode);
    round_next(r);
    cb_leave(c);
}

static void on_sub_failure5(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct sub_round *r = ctx;
    struct mqttc *c = r->c;
    cb_enter(c);
    if (resp && resp->reasonCode >= 0x80) /* a single filter refused */
        chunk_answered(r, NULL, NULL, 0, (int)resp->reasonCode);
    else
        log_warn("MQTT subscribe failed: %s",
                 resp && resp->message ? resp->message
                                       : c->api->strerror(resp ? resp->code : MQTTASYNC_FAILURE));
    round_next(r);
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
    wb_lock(&c->mu);
    r->c = c;
    r->next_round = c->rounds;
    r->gen = ++c->sub_gen;
    c->rounds = r;
    pthread_mutex_unlock(&c->mu);
    round_next(r);
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

    wb_lock(&c->mu);
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

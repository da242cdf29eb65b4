/*
 * outbox.c - the coalescing FIFO of publications (see outbox.h).
 *
 * One mutex guards a singly linked FIFO and a chained hash table of the
 * retained entries by topic (power-of-two buckets, doubled when the load
 * passes 1). Invariant: an entry is in the table iff it is retained and still
 * in the FIFO; outbox_take() unlinks it from both.
 *
 * outbox_depth() and outbox_idle() take no lock (mqttc_publish() and
 * mqttc_backlog() run per message): two atomic mirrors, `n_depth` (== depth)
 * and `n_pending` (== depth + taken: queued or in the sender's hand), are
 * stored (release) by counts_locked() under mu after every change of depth
 * or taken, and loaded (acquire) without it. All their stores are made
 * under mu, so their order is mu's order; an acquire load that reads 0 from
 * n_pending synchronizes with the mu section that stored that 0, and every
 * publication put before it (in mu's order) was then neither queued nor in
 * hand: it was cleared, or outbox_done() ran for it - after the sender's
 * MQTTAsync_send() returned - in an earlier mu section. So a caller that
 * sees outbox_idle() true after its own outbox_put() (one thread, or
 * threads ordered by happens-before) sees that publication already handed
 * to paho (or dropped): see mqttc_publish()'s direct path.
 */
#include "mqtt/outbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/lockstat.h"
#include "wbmb/util.h"

struct outbox {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    struct outbox_msg *head, *tail;
    struct outbox_msg **buckets;
    size_t nbuckets, nretained, depth;
    size_t taken;                     /* taken and not yet done */
    atomic_size_t n_depth, n_pending; /* see the top; stored by counts_locked() */
    uint64_t coalesced;
    bool woken;
};

struct outbox *outbox_create(void)
{
    struct outbox *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->nbuckets = 256;
    o->buckets = calloc(o->nbuckets, sizeof(*o->buckets));
    if (!o->buckets) {
        free(o);
        return NULL;
    }
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &ca);
    pthread_condattr_destroy(&ca);
    return o;
}

/* Caller holds mu, after changing depth or taken: the lock-free mirrors. */
static void counts_locked(struct outbox *o)
{
    atomic_store_explicit(&o->n_depth, o->depth, memory_order_release);
    atomic_store_explicit(&o->n_pending, o->depth + o->taken, memory_order_release);
}

static void outbox_msg_free(struct outbox_msg *m)
{
    if (!m)
        return;
    free(m->payload);
    free(m);
}

/* Tells an acked publication that it never went out. */
static void msg_dropped(struct outbox_msg *m, const char *why)
{
    if (m->ack)
        m->ack(m->ack_ud, m->token, -1, why);
    m->ack = NULL;
}

size_t outbox_clear(struct outbox *o, const char *why)
{
    wb_lock(&o->mu);
    struct outbox_msg *m = o->head;
    size_t n = o->depth;
    o->head = o->tail = NULL;
    memset(o->buckets, 0, o->nbuckets * sizeof(*o->buckets));
    o->nretained = o->depth = 0;
    counts_locked(o);
    pthread_mutex_unlock(&o->mu);
    while (m) {
        struct outbox_msg *next = m->next;
        msg_dropped(m, why);
        outbox_msg_free(m);
        m = next;
    }
    return n;
}

void outbox_destroy(struct outbox *o)
{
    if (!o)
        return;
    outbox_clear(o, "the MQTT client was destroyed");
    free(o->buckets);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

static char *dup_payload(const void *payload, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        if (len)
            memcpy(p, payload, len);
        p[len] = '\0';
    }
    return p;
}

/* Caller holds mu. A failed grow keeps the old table (longer chains). */
static void grow(struct outbox *o)
{
    size_t n = o->nbuckets * 2;
    struct outbox_msg **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < o->nbuckets; i++) {
        struct outbox_msg *m = o->buckets[i];
        while (m) {
            struct outbox_msg *next = m->hnext;
            m->hnext = b[m->hash & (n - 1)];
            b[m->hash & (n - 1)] = m;
            m = next;
        }
    }
    free(o->buckets);
    o->buckets = b;
    o->nbuckets = n;
}

static wb_status put(struct outbox *o, const char *topic, const void *payload, size_t len, int qos,
                     bool retained, void (*ack)(void *, uint64_t, int, const char *), void *ud,
                     uint64_t token)
{
    uint32_t h = retained ? util_hash_str(topic) : 0;
    char *p = dup_payload(payload, len);
    if (!p)
        return WB_ERR_NOMEM;
    if (retained) { /* coalesced in place: no allocation (one lock) */
        wb_lock(&o->mu);
        for (struct outbox_msg *m = o->buckets[h & (o->nbuckets - 1)]; m; m = m->hnext) {
            if (m->hash == h && strcmp(m->topic, topic) == 0) {
                char *old = m->payload;
                m->payload = p;
                m->len = len;
                if (qos > m->qos)
                    m->qos = qos;
                o->coalesced++;
                pthread_mutex_unlock(&o->mu);
                free(old);
                return WB_OK;
            }
        }
        pthread_mutex_unlock(&o->mu);
    }

    size_t tl = strlen(topic) + 1;
    struct outbox_msg *m = malloc(sizeof(*m) + tl);
    if (!m) {
        free(p);
        return WB_ERR_NOMEM;
    }
    memcpy(m->topic, topic, tl);
    m->next = m->hnext = NULL;
    m->hash = h;
    m->qos = qos;
    m->retained = retained;
    m->len = len;
    m->payload = p;
    m->ack = ack;
    m->ack_ud = ud;
    m->token = token;

    wb_lock(&o->mu);
    if (retained) {
        /* Another producer may have queued the topic meanwhile. */
        for (struct outbox_msg *x = o->buckets[h & (o->nbuckets - 1)]; x; x = x->hnext) {
            if (x->hash == h && strcmp(x->topic, topic) == 0) {
                m->payload = x->payload;
                x->payload = p;
                x->len = len;
                if (qos > x->qos)
                    x->qos = qos;
                o->coalesced++;
                pthread_mutex_unlock(&o->mu);
                outbox_msg_free(m);
                return WB_OK;
            }
        }
        if (o->nretained + 1 > o->nbuckets)
            grow(o);
        m->hnext = o->buckets[h & (o->nbuckets - 1)];
        o->buckets[h & (o->nbuckets - 1)] = m;
        o->nretained++;
    }
    if (o->tail)
        o->tail->next = m;
    else
        o->head = m;
    o->tail = m;
    o->depth++;
    counts_locked(o);
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return WB_OK;
}

wb_status outbox_put(struct outbox *o, const char *topic, const void *payload, size_t len, int qos,
                     bool retained)
{
    return put(o, topic, payload, len, qos, retained, NULL, NULL, 0);
}

wb_status outbox_put_acked(struct outbox *o, const char *topic, const void *payload, size_t len,
                           int qos, void (*ack)(void *, uint64_t, int, const char *), void *ud,
                           uint64_t token)
{
    return put(o, topic, payload, len, qos, false, ack, ud, token);
}

struct outbox_msg *outbox_take(struct outbox *o, int timeout_ms)
{
    wb_lock(&o->mu);
    if (!o->head && timeout_ms > 0 && !o->woken) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!o->head && !o->woken)
            if (pthread_cond_timedwait(&o->cv, &o->mu, &ts) != 0)
                break;
    }
    o->woken = false;
    struct outbox_msg *m = o->head;
    if (m) {
        o->head = m->next;
        if (!o->head)
            o->tail = NULL;
        o->depth--;
        if (m->retained) {
            struct outbox_msg **pp = &o->buckets[m->hash & (o->nbuckets - 1)];
            while (*pp != m)
                pp = &(*pp)->hnext;
            *pp = m->hnext;
            o->nretained--;
        }
        m->next = m->hnext = NULL;
        o->taken++;
        counts_locked(o);
    }
    pthread_mutex_unlock(&o->mu);
    return m;
}

void outbox_done(struct outbox *o, struct outbox_msg *m)
{
    if (!m)
        return;
    msg_dropped(m, "not sent");
    outbox_msg_free(m);
    wb_lock(&o->mu);
    o->taken--;
    counts_locked(o);
    pthread_mutex_unlock(&o->mu);
}

bool outbox_idle(struct outbox *o)
{
    /* No lock: see the top (acquire pairs with counts_locked()'s release). */
    return atomic_load_explicit(&o->n_pending, memory_order_acquire) == 0;
}

void outbox_wake(struct outbox *o)
{
    wb_lock(&o->mu);
    o->woken = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

size_t outbox_depth(struct outbox *o)
{
    return atomic_load_explicit(&o->n_depth, memory_order_acquire); /* no lock */
}

uint64_t outbox_coalesced(struct outbox *o)
{
    wb_lock(&o->mu);
    uint64_t n = o->coalesced;
    pthread_mutex_unlock(&o->mu);
    return n;
}

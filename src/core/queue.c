/*
 * queue.c - bounded MPSC ring between paho's thread and the core thread.
 *
 * Invariants: slots[head .. head+count) hold queued items in arrival order;
 * the consumer owns slot `held` (the item it popped last) until its next pop,
 * so that slot is not counted free until then. One mutex guards indices; the
 * copy into a slot happens under it too (messages are small and the copy is
 * cheaper than a second lock round-trip).
 *
 * `depth` mirrors `count` for queue_empty(), which takes no lock (it runs
 * per message on paho's receive thread): it is written only under mu, at
 * the same points as count (store release), and read without mu (load
 * acquire). It is one atomic object, so a reader gets a value count really
 * had at some moment during the call: the answer the locked read gave.
 * Nothing is read through it (the slots stay under mu), so the ordering is
 * only there to make "empty" mean "the pops written before are visible";
 * a caller that acts on the answer re-checks it under its own lock, the
 * one its consumer pops under, which is what orders its data.
 */
#include "wbmb/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/lockstat.h"
#include "wbmb/util.h"

struct slot {
    enum queue_kind kind;
    bool retained;
    char *buf; /* topic '\0' payload '\0' */
    size_t cap;
    size_t topic_len;
    size_t payload_len;
    int64_t received_mono_us;
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    struct slot *slots;
    size_t capacity;
    size_t head;         /* next slot to pop */
    size_t count;        /* queued items */
    atomic_size_t depth; /* == count; written under mu, read without it */
    bool holding;        /* the consumer holds the slot before head */
    bool closed;
    bool kicked; /* queue_kick(): the next wait returns at once */
    struct queue_stats stats;
};

struct queue *queue_create(size_t capacity)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->slots = calloc(capacity, sizeof(*q->slots));
    if (!q->slots)
        goto fail;
    q->capacity = capacity;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    pthread_condattr_destroy(&ca);
    q->stats.capacity = capacity;
    return q;
fail:
    free(q);
    return NULL;
}

void queue_destroy(struct queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->capacity; i++)
        free(q->slots[i].buf);
    free(q->slots);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static size_t used_slots(const struct queue *q)
{
    return q->count + (q->holding ? 1 : 0);
}

wb_status queue_push(struct queue *q, enum queue_kind kind, const char *topic, const void *payload,
                     size_t len, bool retained)
{
    size_t tlen = topic ? strlen(topic) : 0;
    size_t need = tlen + len + 2;
    int64_t now = util_mono_us();

    wb_lock(&q->mu);
    if (!q->closed && used_slots(q) >= q->capacity) {
        q->stats.full_waits++;
        while (!q->closed && used_slots(q) >= q->capacity)
            pthread_cond_wait(&q->not_full, &q->mu);
    }
    if (q->closed) {
        q->stats.rejected++;
        pthread_mutex_unlock(&q->mu);
        return WB_ERR_BUSY;
    }
    struct slot *s = &q->slots[(q->head + q->count) % q->capacity];
    if (s->cap < need || (s->cap > QUEUE_SLOT_KEEP && need <= QUEUE_SLOT_KEEP)) {
        /* Grow to the next power of two (at least 128 bytes) rather than
         * straight to QUEUE_SLOT_KEEP: a full ring of small messages then
         * pins ~1 MB instead of capacity * 2 KB (16 MB, most of the peak
         * RSS measured with 8192 slots). Shrink back when a big buffer would
         * otherwise stay pinned by a slot that now carries small ones. */
        size_t ncap = 128;
        while (ncap < need && ncap < QUEUE_SLOT_KEEP)
            ncap *= 2;
        if (ncap < need)
            ncap = need;
        char *nb = malloc(ncap);
        if (!nb) {
            q->stats.rejected++;
            pthread_mutex_unlock(&q->mu);
            return WB_ERR_NOMEM;
        }
        if (!s->buf)
            q->stats.buffers++;
        free(s->buf);
        s->buf = nb;
        s->cap = ncap;
    }
    if (tlen)
        memcpy(s->buf, topic, tlen);
    s->buf[tlen] = '\0';
    if (len)
        memcpy(s->buf + tlen + 1, payload, len);
    s->buf[tlen + 1 + len] = '\0';
    s->topic_len = tlen;
    s->payload_len = len;
    s->kind = kind;
    s->retained = retained;
    s->received_mono_us = now;
    q->count++;
    atomic_store_explicit(&q->depth, q->count, memory_order_release);
    q->stats.pushed++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return WB_OK;
}

/* Caller holds mu: waits up to timeout_ms while nothing is queued. */
static void wait_locked(struct queue *q, int timeout_ms)
{
    if (q->count != 0 || timeout_ms <= 0 || q->kicked) {
        q->kicked = false;
        return;
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (q->count == 0 && !q->closed && !q->kicked) {
        if (pthread_cond_timedwait(&q->not_empty, &q->mu, &dl) == ETIMEDOUT)
            break;
    }
    q->kicked = false;
}

void queue_kick(struct queue *q)
{
    wb_lock(&q->mu);
    q->kicked = true;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

bool queue_wait(struct queue *q, int timeout_ms)
{
    wb_lock(&q->mu);
    wait_locked(q, timeout_ms);
    bool have = q->count != 0;
    pthread_mutex_unlock(&q->mu);
    return have;
}

bool queue_empty(struct queue *q)
{
    /* No lock: see `depth` at the top. */
    return atomic_load_explicit(&q->depth, memory_order_acquire) == 0;
}

bool queue_pop(struct queue *q, struct queue_item *out, int timeout_ms)
{
    wb_lock(&q->mu);
    if (q->holding) {
        q->holding = false;
        pthread_cond_signal(&q->not_full);
    }
    /* Empty and nothing held: start again at slot 0, so a queue that never
     * holds more than a few messages only ever uses (and keeps buffers in)
     * its first few slots, not the whole ring as head goes round. */
    if (q->count == 0)
        q->head = 0;
    wait_locked(q, timeout_ms);
    if (q->count == 0) {
        pthread_mutex_unlock(&q->mu);
        return false;
    }
    struct slot *s = &q->slots[q->head];
    q->head = (q->head + 1) % q->capacity;
    q->count--;
    atomic_store_explicit(&q->depth, q->count, memory_order_release);
    q->holding = true;
    q->stats.popped++;
    pthread_mutex_unlock(&q->mu);

    out->kind = s->kind;
    out->topic = s->buf;
    out->payload = s->buf + s->topic_len + 1;
    out->payload_len = s->payload_len;
    out->retained = s->retained;
    out->received_mono_us = s->received_mono_us;
    return true;
}

void queue_close(struct queue *q)
{
    wb_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

void queue_get_stats(struct queue *q, struct queue_stats *out)
{
    wb_lock(&q->mu);
    *out = q->stats;
    out->depth = q->count;
    pthread_mutex_unlock(&q->mu);
}

/*
 * queue.h - the bounded queue between paho's thread and the core thread.
 *
 * Multi-producer, single-consumer ring of fixed slots. Each slot keeps its
 * own buffer and reuses it, so a warmed-up queue allocates nothing per
 * message (a message larger than QUEUE_SLOT_KEEP bytes gets a buffer of its
 * own that is freed when the slot is reused).
 *
 * Overflow policy: a producer never drops a message while the queue is open.
 * When the ring is full, queue_push() blocks until the core frees a slot;
 * that back-pressure stops paho reading the socket, and the broker (with
 * max_queued_messages 0) keeps the messages for us. Every wait is counted.
 * After queue_close() pushes fail at once and the caller counts the message
 * as dropped.
 */
#ifndef WBMB_QUEUE_H
#define WBMB_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

#define QUEUE_SLOT_KEEP 2048

/* QUEUE_CALL carries a pointer (struct core_call *) as its payload bytes. */
enum queue_kind { QUEUE_MSG, QUEUE_CONN_UP, QUEUE_CONN_DOWN, QUEUE_CALL };

/* A popped item; topic and payload point into the slot and are valid until
 * the next queue_pop() of the consumer. payload is NUL-terminated too. */
struct queue_item {
    enum queue_kind kind;
    const char *topic;
    const char *payload;
    size_t payload_len;
    bool retained;
    int64_t received_mono_us; /* when the producer pushed it */
};

struct queue_stats {
    uint64_t pushed;
    uint64_t popped;
    uint64_t full_waits; /* pushes that had to wait for a free slot */
    uint64_t rejected;   /* pushes refused because the queue was closed */
    size_t depth;
    size_t capacity;
    size_t buffers; /* slots holding a message buffer (memory pinned by the ring) */
};

struct queue;

/* capacity slots; NULL on allocation failure. */
struct queue *queue_create(size_t capacity);
/* queue_destroy(NULL) is a no-op. */
void queue_destroy(struct queue *q);

/* Copies the message in; blocks while full. WB_ERR_BUSY once closed. */
wb_status queue_push(struct queue *q, enum queue_kind kind, const char *topic, const void *payload,
                     size_t len, bool retained);

/* Waits up to timeout_ms (0 = do not wait) for an item. Returns true and
 * fills *out, or false when none came. Releases the previous item. */
bool queue_pop(struct queue *q, struct queue_item *out, int timeout_ms);

/* Waits up to timeout_ms for an item without taking it; true when one is
 * queued. queue_empty() says whether nothing is queued right now; it takes
 * no lock (an atomic count), so a caller that acts on it re-checks it under
 * the lock its consumer pops under. */
bool queue_wait(struct queue *q, int timeout_ms);
/* Ends the current (or next) queue_wait() early without queueing anything. */
void queue_kick(struct queue *q);
bool queue_empty(struct queue *q);

/* Refuses further pushes and wakes blocked producers; items already queued
 * can still be popped. */
void queue_close(struct queue *q);

void queue_get_stats(struct queue *q, struct queue_stats *out);

#endif

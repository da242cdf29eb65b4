/*
 * outbox.h - publications waiting for mqttc's sender thread (internal to
 * src/mqtt/).
 *
 * Why it exists: paho's receive thread holds paho's global lock while it runs
 * our message callback, and that callback blocks when the core's queue is
 * full (back-pressure). If the core thread then called MQTTAsync_send()
 * itself it would wait for that lock: a deadlock. So the core only puts
 * publications here (never blocks, never calls paho) and one sender thread
 * hands them to paho.
 *
 * Bounded by coalescing: a retained publication replaces a queued retained
 * one of the same topic in place (its place in the FIFO is kept, its payload
 * becomes the newest). A retained topic is state, so the broker ends with the
 * same value; the queue holds at most one entry per retained topic plus the
 * non-retained publications (commands), which are never coalesced.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef WBMB_MQTT_OUTBOX_H
#define WBMB_MQTT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

struct outbox_msg {
    struct outbox_msg *next;  /* FIFO */
    struct outbox_msg *hnext; /* topic hash chain (retained only) */
    uint32_t hash;
    int qos;
    bool retained;
    size_t len;
    /* Set for a publication whose outcome is wanted (mqttc_publish_acked):
     * called once, also when the outbox drops it (outbox_clear/destroy). */
    void (*ack)(void *ud, uint64_t token, int rc, const char *why);
    void *ack_ud;
    uint64_t token;
    char *payload; /* owned, NUL-terminated */
    char topic[];  /* inline */
};

struct outbox;

/* NULL on allocation failure. */
struct outbox *outbox_create(void);
/* outbox_destroy(NULL) is a no-op; queued publications are dropped. */
void outbox_destroy(struct outbox *o);

/* Copies topic and payload; WB_ERR_NOMEM when out of memory. Never blocks. */
wb_status outbox_put(struct outbox *o, const char *topic, const void *payload, size_t len, int qos,
                     bool retained);
/* outbox_put() of a non-retained publication with an outcome callback (see
 * struct outbox_msg); the callback is not called when this fails. */
wb_status outbox_put_acked(struct outbox *o, const char *topic, const void *payload, size_t len,
                           int qos, void (*ack)(void *, uint64_t, int, const char *), void *ud,
                           uint64_t token);
/* The oldest publication, removed; waits up to timeout_ms for one. NULL when
 * none came or outbox_wake() was called. Hand it back with outbox_done(). */
struct outbox_msg *outbox_take(struct outbox *o, int timeout_ms);
/* Frees a taken publication: it is no longer "in hand" for outbox_idle().
 * The sender calls it only after its MQTTAsync_send() returned. */
void outbox_done(struct outbox *o, struct outbox_msg *m);
/* True when nothing is queued and no taken publication is still in hand.
 * Takes no lock (an atomic, load acquire): true after an outbox_put() that
 * happens-before the call means that publication's outbox_done() (or its
 * drop by outbox_clear()) happens-before it too (see outbox.c's top). */
bool outbox_idle(struct outbox *o);
/* Wakes a waiting outbox_take(). */
void outbox_wake(struct outbox *o);
/* Drops everything queued (the acked ones are told, with rc -1 and why,
 * outside the outbox's lock); returns how many were dropped. */
size_t outbox_clear(struct outbox *o, const char *why);
/* Publications queued now (not counting one in the sender's hand); takes no
 * lock. */
size_t outbox_depth(struct outbox *o);
/* Publications coalesced away since creation. */
uint64_t outbox_coalesced(struct outbox *o);

#endif

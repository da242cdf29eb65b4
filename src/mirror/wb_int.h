/*
 * wb_int.h - the mirror sink's own types (internal to src/mirror/), shared
 * by wb.c (events, input, republish, errors) and wb_throttle.c
 * (bridge.mirror_min_interval_ms, backpressure, held values, control
 * metas and values of one field).
 *
 * The sink keeps its Wiren Board bookkeeping per device index (struct
 * wdev), beside the device manager's state, never in it: which controls
 * have their meta out, which value waits for the interval, which control
 * shows meta/error "r".
 */
#ifndef WBMB_MIRROR_WB_INT_H
#define WBMB_MIRROR_WB_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirror/mirror_rate.h"
#include "wbmb/config.h"
#include "wbmb/mirror.h"
#include "wbmb/sink.h"

#define ECHO_SLOTS 32
#define ECHO_TTL_MS 10000
#define MIRROR_THROTTLED 64 /* controls per device under the interval; later ones: every change */
#define PUB_INLINE 2        /* pub_ms entries kept in struct wdev, no allocation */
#define FB_INLINE 8         /* field bits kept in struct wdev, no allocation */
/* With the sender's queue above MIRROR_BACKLOG_MAX, throttled values are
 * held and the queue looked at again this much later. */
#define MIRROR_BUSY_RETRY_MS 10
/* A flush checks the queue again after this many publications. */
#define MIRROR_FLUSH_CHECK 64
/* The republish after a connect runs in steps of REPUBLISH_STEP_DEVICES
 * while fewer than REPUBLISH_BACKLOG publications wait for the sender
 * thread, and asks for a tick every REPUBLISH_POLL_MS until the round is
 * complete. Queued all at once, 10 000 devices (~50 000 publications, each a
 * heap copy in the outbox) made the bridge's peak memory. */
#define REPUBLISH_BACKLOG 256
#define REPUBLISH_STEP_DEVICES 16
#define REPUBLISH_POLL_MS 1
/* Warnings about field names that cannot be controls: lines per second. */
#define NAME_WARN_PER_S 10

/* Control types (a control meta's "type"). */
enum ctl_type { CTL_NONE, CTL_SWITCH, CTL_VALUE, CTL_TEXT };

/* Per-field bits (one byte per field). */
#define FB_KNOWN 0x01u     /* the bits below were worked out */
#define FB_MIRRORED 0x02u  /* the name can be a control (mirror_field_name_ok) */
#define FB_ERR_SHOWN 0x04u /* meta/error "r" published (the value is null) */
#define FB_DECL_SHIFT 3    /* 2 bits: enum ctl_type of a plain binding of the field */
#define FB_META_SHIFT 5    /* 2 bits: enum ctl_type last published in the meta */

struct wdev {
    /* bridge.mirror_min_interval_ms, per control (field in insertion order,
     * the first MIRROR_THROTTLED of them): when its value was last published
     * (monotonic ms, wrapping 32 bits, compared as a signed difference; 0 =
     * never) and whether a newer value waits for the interval (held bit i). */
    union {
        uint32_t *heap;                /* n_pub > PUB_INLINE */
        uint32_t in_place[PUB_INLINE]; /* most devices: one or two controls */
    } pub;
    uint64_t held;
    union {
        uint8_t *heap; /* cap_fb > FB_INLINE */
        uint8_t in_place[FB_INLINE];
    } fb;
    uint16_t n_fb, cap_fb; /* fields whose bits exist */
    /* Control metas published since the last republish of the device: those
     * of the first meta_count fields, so no per-device set is needed. */
    uint16_t meta_count;
    uint16_t n_pub;
    uint16_t next_order;
    bool dirty; /* in wb.dirty */
};

struct wb {
    struct sink base; /* first: the sink */
    const struct config *cfg;
    struct mirror_publisher pub;
    struct wdev *devs; /* per device index of the current view */
    size_t n_devs;
    struct wdev *next; /* being built by a start-up's or reload's device events */
    size_t n_next;
    bool building;
    uint32_t *dirty; /* indices of devices with held values */
    size_t n_dirty;
    int64_t next_scan_ms;     /* wb_flush does nothing before this */
    struct mirror_rate mrate; /* the interval's stretch under a flood */
    bool connected;
    bool republishing;     /* a republish round is in progress */
    size_t republish_next; /* its next device index */
    char *scenario;        /* the scenario control's value: an id or "none" */
    /* Input: the /on filters (owned). */
    char **subs;
    size_t n_subs;
    json_object *errors_set; /* "device/action" keys whose meta/error is "w" */
    /* Our own command publications that will come back to us as input
     * (an action whose topic is one of our /on topics): ignored once. */
    struct {
        char *topic;
        char *payload;
        size_t len;
        int64_t until_ms;
    } echo[ECHO_SLOTS];
    size_t echo_next;
    int64_t warn_window_ms;
    unsigned warn_in_window;
};

/* ---- wb_throttle.c ------------------------------------------------------- */

/* d's bits of every field of sd, worked out for the new ones (warning
 * about names that cannot be controls); false when out of memory. */
bool wb_fields_known(struct wb *w, struct wdev *d, const struct sink_device *sd);
uint8_t *wb_fb(struct wdev *d);
/* Publishes the control metas d still lacks, then field fi's value unless
 * the interval or backpressure holds it. */
void wb_publish_field(struct wb *w, struct wdev *d, const struct sink_device *sd, size_t fi);
/* Publishes the held values that are due; returns when the next one is
 * (INT64_MAX: none). now_ms INT64_MAX: everything (shutdown). */
int64_t wb_flush(struct wb *w, const struct sink_view *view, int64_t now_ms);
/* Whether device_id's control action shows meta/error "w" (errors_set). */
bool wb_write_error(const struct wb *w, const char *device_id, const char *action);
/* Sets or clears it; true when that changed it. */
bool wb_set_write_error(struct wb *w, const char *device_id, const char *action, bool error);
/* Frees d's arrays. */
void wb_dev_free(struct wdev *d);
/* Every retained topic of one mirrored device, from its current state. */
void wb_publish_device(struct wb *w, struct wdev *d, const struct sink_device *sd);

#endif

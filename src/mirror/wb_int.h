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
    bool dirty;   /* in wb.dirty */
    bool offline; /* its availability said offline: every control shows "r" */
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
    /* What was published and must go (wb_controls.c): device id -> its
     * control names joined by '/'. Filled from the memory at the first
     * connect (what the last run published and this one does not) and by
     * reloads that remove something; cleared while connected. */
    struct mirror_memory mem;
    json_object *old_mem; /* the memory as loaded, until the first connect */
    json_object *stale;
    bool mem_dirty; /* the remembered set may have changed: save it */
    bool mem_saved; /* mem_hash is the hash of what the store holds */
    uint32_t mem_hash;
    int64_t mem_due_ms; /* not before */
    /* "device/action" -> the value an action control shows when no field
     * follows it: the last one sent. */
    json_object *action_values;
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

/* ---- wb_controls.c ------------------------------------------------------- */

/* The config's dynamic control types (ctl_type) by name. */
extern const char *const wb_ctl_name[];

/* Whether field of c is a writable switch: its switch: actions, or the
 * first actions without required params whose set writes true and false to
 * it; *on and *off set when so. An explicit wb.readonly: true wins. */
bool wb_field_switch(const struct cfg_device *c, const char *field, const struct cfg_action **on,
                     const struct cfg_action **off);
/* The state field that action a (one param) writes its param to (set:
 * {FIELD: "{param}"}); NULL when none. */
const char *wb_action_follows(const struct cfg_action *a);
/* Publishes field fi's control meta (type dyn when the config does not
 * fix one; order when wb.order does not). */
wb_status wb_field_meta(struct wb *w, const struct sink_device *sd, size_t fi, enum ctl_type dyn,
                        int order);
/* An action's control: meta, value (when it has one) and error. */
void wb_publish_action(struct wb *w, struct wdev *d, const struct sink_device *sd,
                       const struct cfg_action *a, int order);
/* Publishes the value of every action control that follows field fi. */
void wb_publish_followers(struct wb *w, const struct sink_device *sd, size_t fi);
/* The text of a control's meta/error: "r" when r, then "w" after a failed
 * write; "" when neither. */
wb_status wb_control_error(struct wb *w, const char *device_id, const char *control, bool r);
/* An availability edge of sd: every control shows "r" while offline. */
void wb_availability(struct wb *w, struct wdev *d, const struct sink_device *sd, bool online);
/* A command on action of dev ended (params: its JSON text or NULL): its
 * control, and every switch that runs it, show "w" while the last write
 * failed; a value sent through a param no field follows becomes the
 * control's value. */
void wb_command_result(struct wb *w, const struct cfg_device *dev, const char *action,
                       const char *params, bool error, const struct sink_view *view);
/* The /on of a switch field: the action to run for payload, NULL (and a
 * "w") when the payload is neither 1/0, true/false nor on/off. */
const struct cfg_action *wb_switch_input(struct wb *w, const struct cfg_device *dev,
                                         const char *field, const char *payload, size_t len);
/* The candidate switch fields of a device, for the /on filters: calls fn
 * once per distinct writable switch field. */
void wb_switch_fields(const struct cfg_device *c, void (*fn)(void *ud, const char *field),
                      void *ud);

/* Removal: what a reload removed (dev of the old config, its fields) is
 * cleared at once when connected, else remembered in stale. */
void wb_device_removed(struct wb *w, const struct sink_device *sd);
/* Kept by a reload: its old actions that are gone, or everything when it
 * is no longer mirrored. */
void wb_device_changed(struct wb *w, const struct sink_device *sd, const struct cfg_device *old);
/* At the connect: works out what the last run published and this one does
 * not (old_mem), then clears everything stale. */
void wb_clear_stale(struct wb *w, const struct sink_view *view);
/* Saves the remembered set when it changed (from the tick; now_ms
 * INT64_MAX: at once). */
void wb_memory_tick(struct wb *w, const struct sink_view *view, int64_t now_ms);

#endif

/*
 * devmgr.h - the device manager: turns MQTT messages into device state.
 *
 * Owned by the core thread and touched by no other: it routes a topic to the
 * state bindings and availability topics of the config (hash lookup for
 * exact topics, a topic tree for wildcards), parses payloads strictly,
 * merges the changes into each device's state, and for every transition
 * (a message that changes at least one field):
 *   - writes the persisted state (transient fields left out) to the store
 *     as "device:<id>" and, with history on, appends a snapshot;
 *   - republishes the changed fields on the device's Wiren Board mirror;
 *   - tells its observer (hooks), e.g. the live events of the HTTP API.
 * A message that changes nothing is no transition and writes nothing. A
 * JSON message applies field by field: a bad field is left out alone and
 * counted (stats.fields_rejected); a field whose name cannot be a control
 * is applied but not mirrored (README, bad-input rules).
 */
#ifndef WBMB_DEVMGR_H
#define WBMB_DEVMGR_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/mirror.h"
#include "wbmb/state_store.h"
#include "wbmb/status.h"

struct devmgr;

/* Observer of the device manager (all calls on the core thread; objects are
 * borrowed for the call). Any member may be NULL. */
struct devmgr_hooks {
    void (*on_state)(void *ud, const char *device_id, json_object *changed, json_object *state);
    /* Optional: false when on_state would ignore the call (nobody listens);
     * the changed set is then not built. NULL = always call on_state. */
    bool (*wants_state)(void *ud);
    void (*on_connection)(void *ud, const char *device_id, bool online, const char *event);
    /* A message on /devices/<mirrored id>/controls/<control>/on. */
    void (*on_control_command)(void *ud, const char *device_id, const char *control,
                               const char *payload, size_t len, bool retained);
    void *ud;
};

struct devmgr_stats {
    uint64_t received;        /* messages handed to devmgr_handle_message */
    uint64_t applied;         /* messages that changed state (transitions) */
    uint64_t unchanged;       /* valid messages that changed nothing */
    uint64_t rejected;        /* malformed payloads; JSON messages whose every field was rejected */
    uint64_t fields_rejected; /* fields of JSON messages rejected alone (devmgr_fields.c) */
    uint64_t unknown;         /* topics no binding matches */
    uint64_t own;             /* our own publications seen again, ignored */
    uint64_t store_errors;    /* store calls that failed */
};

/* Builds the manager for cfg (borrowed; must outlive the manager). When
 * previous is not NULL, the in-memory state of devices with the same id is
 * carried over from it (SIGHUP reload) instead of being restored from the
 * store. Returns NULL with a reason in err. */
struct devmgr *devmgr_create(const struct config *cfg, struct state_store *store,
                             const struct mirror_publisher *pub, const struct devmgr_hooks *hooks,
                             struct devmgr *previous, char *err, size_t errlen);
/* devmgr_destroy(NULL) is a no-op. */
void devmgr_destroy(struct devmgr *m);

/* Loads every configured device's "device:<id>" from the store (devices
 * carried over from a previous manager are skipped) and writes the devices
 * table rows. Returns the number of devices restored. */
size_t devmgr_restore(struct devmgr *m);

/* The topic filters to subscribe to; valid until the manager is destroyed. */
const char *const *devmgr_subscriptions(struct devmgr *m, size_t *n);

/* Applies one message. now_ms is a monotonic time stamp. */
void devmgr_handle_message(struct devmgr *m, const char *topic, const char *payload, size_t len,
                           bool retained, int64_t now_ms);

/* Applies a set of field changes to a device as one transition (actions'
 * optimistic updates). Returns WB_ERR_NOT_FOUND for an unknown device. */
wb_status devmgr_apply(struct devmgr *m, const char *device_id, json_object *changes);

/* Called before publishing a command to topic: when topic is one of our own
 * /devices/<id>/controls/<x>/on topics, the message coming back from the
 * broker is recognised as ours and ignored (the bridge never consumes its
 * own publications). */
void devmgr_expect_echo(struct devmgr *m, const char *topic, const char *payload, size_t len);

/* Availability timeouts; returns the next time (monotonic ms) it needs a
 * tick, or INT64_MAX when none. */
int64_t devmgr_tick(struct devmgr *m, int64_t now_ms);

/* Publishes the latest value of every mirrored control held back by
 * bridge.mirror_min_interval_ms whose interval is over; returns when the
 * next one is due (INT64_MAX: none). Cheap when nothing waits. */
int64_t devmgr_flush_mirror(struct devmgr *m, int64_t now_ms);

/* Republishes every mirrored device (meta, control metas, values) and clears
 * their error marker: after every (re)connect. */
void devmgr_publish_all(struct devmgr *m);
/* The same in steps, so a big config is not queued all at once: republishes
 * the next max_devices mirrored devices from index *next (0 starts a round)
 * and advances *next. Returns true when the round is complete. */
bool devmgr_publish_some(struct devmgr *m, size_t *next, size_t max_devices);
/* Marks every mirrored device offline (meta/error = "offline"): at shutdown. */
void devmgr_publish_offline(struct devmgr *m);

/* Read access for the core thread (HTTP snapshots are built from these). */
size_t devmgr_count(const struct devmgr *m);
const struct cfg_device *devmgr_device_cfg(const struct devmgr *m, size_t i);
/* The state of device i / of id as a new object the caller puts (NULL
 * when unknown); its values are shared with the device manager, so it is
 * read on the core thread only (or deep-copied). */
json_object *devmgr_device_state_new(const struct devmgr *m, size_t i);
json_object *devmgr_state_new(const struct devmgr *m, const char *device_id);
bool devmgr_has_device(const struct devmgr *m, const char *device_id);
bool devmgr_device_online(const struct devmgr *m, size_t i);

void devmgr_get_stats(const struct devmgr *m, struct devmgr_stats *out);

#endif

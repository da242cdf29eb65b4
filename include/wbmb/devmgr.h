/*
 * devmgr.h - the device manager: turns MQTT messages into device state.
 *
 * Owned by the core (core.c's top; asserted with OWNER_ASSERT at every entry
 * point): it routes a topic to the state bindings and availability topics
 * of the config (hash lookup for exact topics, a topic tree for wildcards),
 * parses payloads strictly, merges the changes into each device's state,
 * and emits every change as one event to the sinks (sink.h): EV_FIELDS for
 * a transition (a message that changes at least one field, with the old and
 * the new values), EV_AVAILABILITY for an online/offline edge, and the
 * device events of a start-up or reload (devmgr_announce). It writes
 * nothing and publishes nothing itself: the store sink persists, the Wiren
 * Board sink mirrors, the HTTP sink tells SSE clients.
 *
 * A message that changes nothing is no transition and emits nothing. A
 * JSON message applies field by field: a bad field is left out alone and
 * counted (stats.fields_rejected).
 */
#ifndef WBMB_DEVMGR_H
#define WBMB_DEVMGR_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/sink.h"
#include "wbmb/status.h"

struct devmgr;

struct devmgr_stats {
    uint64_t received;        /* messages handed to devmgr_handle_message */
    uint64_t applied;         /* messages that changed state (transitions) */
    uint64_t unchanged;       /* valid messages that changed nothing */
    uint64_t rejected;        /* malformed payloads; JSON messages whose every field was rejected */
    uint64_t fields_rejected; /* fields of JSON messages rejected alone (devmgr_fields.c) */
    uint64_t unknown;         /* topics no binding matches */
};

/* Builds the manager for cfg (borrowed; must outlive the manager); its
 * events go to sinks (borrowed; NULL: none). When previous is not NULL, the
 * in-memory state of devices with the same id is carried over from it
 * (SIGHUP reload) instead of being restored from the store. Returns NULL
 * with a reason in err. */
struct devmgr *devmgr_create(const struct config *cfg, const struct sinks *sinks,
                             struct devmgr *previous, char *err, size_t errlen);
/* devmgr_destroy(NULL) is a no-op. */
void devmgr_destroy(struct devmgr *m);

/* The stored state of device_id (a "device:<id>" value, borrowed), at
 * start-up or for a device a reload added: its persisted fields are set
 * without any event. Returns false for a device that is unknown, carried
 * over from the previous manager, or whose value is not a JSON object. */
bool devmgr_restore_state(struct devmgr *m, const char *device_id, json_object *state);

/* Tells the sinks which devices there are: EV_DEVICE_REMOVED for each
 * device of previous (may be NULL) that is gone, EV_DEVICE_ADDED or
 * EV_DEVICE_CHANGED (carried over) for each device of m, in index order,
 * then EV_DEVICES_DONE. After the restore and after a reload. */
void devmgr_announce(struct devmgr *m, const struct devmgr *previous);

/* The devices as the sinks read them (valid while m lives). */
void devmgr_view(const struct devmgr *m, struct sink_view *out);

/* The topic filters to subscribe to; valid until the manager is destroyed. */
const char *const *devmgr_subscriptions(struct devmgr *m, size_t *n);

/* Applies one message. now_ms is a monotonic time stamp. */
void devmgr_handle_message(struct devmgr *m, const char *topic, const char *payload, size_t len,
                           int64_t now_ms);

/* Applies a set of field changes to a device as one transition (actions'
 * optimistic updates). Returns WB_ERR_NOT_FOUND for an unknown device. */
wb_status devmgr_apply(struct devmgr *m, const char *device_id, json_object *changes);

/* Availability timeouts; returns the next time (monotonic ms) it needs a
 * tick, or INT64_MAX when none. */
int64_t devmgr_tick(struct devmgr *m, int64_t now_ms);

/* Read access for the core thread (HTTP snapshots are built from these). */
size_t devmgr_count(const struct devmgr *m);
const struct cfg_device *devmgr_device_cfg(const struct devmgr *m, size_t i);
/* The state of device i / of id as a new object the caller puts (NULL
 * when unknown); its values are shared with the device manager, so it is
 * read on the core thread only (or deep-copied). */
json_object *devmgr_device_state_new(const struct devmgr *m, size_t i);
json_object *devmgr_state_new(const struct devmgr *m, const char *device_id);
bool devmgr_has_device(const struct devmgr *m, const char *device_id);
/* The index of device_id (the config's index, cfg_device_index), -1 when unknown. */
long devmgr_find(const struct devmgr *m, const char *device_id);
bool devmgr_device_online(const struct devmgr *m, size_t i);

void devmgr_get_stats(const struct devmgr *m, struct devmgr_stats *out);

#endif

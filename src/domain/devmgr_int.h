/*
 * devmgr_int.h - the device manager's own types, shared by its three files
 * (internal to src/domain): devmgr.c (routing, transitions, availability,
 * events), devmgr_state.c (the field arrays), devmgr_fields.c (JSON
 * messages field by field, field warnings).
 */
#ifndef WBMB_DOMAIN_DEVMGR_INT_H
#define WBMB_DOMAIN_DEVMGR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/devmgr.h"
#include "wbmb/sink.h"
#include "wbmb/strix.h"
#include "wbmb/util.h"

#define MAX_ROUTES_PER_MSG 64

enum route_kind { ROUTE_STATE, ROUTE_AVAILABILITY };

struct dev;

struct route {
    enum route_kind kind;
    struct dev *dev;
    const struct cfg_state_binding *binding; /* ROUTE_STATE */
};

/* A state field is a struct dev_field (sink.h): name interned in the
 * manager's name table, v an owned reference. Fields are never removed, so
 * an index stays valid. */

struct dev {
    const struct cfg_device *cfg;
    struct dev_field *f; /* in insertion order */
    int64_t last_msg_ms;
    int64_t connected_ms; /* wall clock of the last online edge; 0 = never */
    uint16_t n_f, cap_f;
    bool tracked : 1; /* has an availability section */
    bool known : 1;   /* availability seen at least once */
    bool online : 1;
    bool carried : 1; /* state carried over from a previous manager */
};

struct devmgr {
    const struct config *cfg;
    const struct sinks *sinks; /* where every change goes (sink.h) */
    struct dev *devs;
    size_t n_devs;
    struct route *routes;
    size_t n_routes;
    struct ttree *tree;
    /* id -> device index: open addressing over the config's own id strings
     * (no copies; a json-c table cost ~250 bytes per device). */
    struct strix ix;
    /* Subscriptions: the config's own topic strings (the config outlives
     * the manager). */
    const char **subs;
    size_t n_subs, cap_subs;
    struct devmgr_stats stats;
    /* Field names, each stored once for all devices ("value", "power",
     * ...): open addressing, at most half full, owned. Only names of fields
     * that exist are added, so the table is bounded like the states. */
    char **names;
    size_t names_mask, n_names;
    /* (device index, field name) pairs already warned about: hashes, 0 = free. */
    uint64_t *warned;
    size_t warned_mask, n_warned;
    int64_t warn_window_ms;
    unsigned warn_in_window;
    uint64_t warn_held; /* warnings not logged for the rate limit */
};

/* Fields a device may hold: a JSON payload cannot grow a state without
 * bound (new fields past it are rejected, one by one). */
#define DEV_MAX_FIELDS 1024
#define DEV_MAX_FIELDS_TEXT "1024"
/* Longest field name taken from a message (longer: the field is rejected). */
#define DEV_FIELD_NAME_MAX 128
/* Field warnings: at most this many lines per second (the next one says how
 * many were held back), each (device, field) once while the set of those
 * already warned about has room. */
#define FIELD_WARN_PER_S 10
#define FIELD_WARN_SET_MAX 4096

/* ---- devmgr_state.c ------------------------------------------------------ */

bool dm_is_transient(const struct cfg_device *d, const char *field);
int dm_field_find(const struct dev *d, const char *name);
/* The manager's copy of name, added when new; NULL when out of memory. */
const char *dm_intern(struct devmgr *m, const char *name);
/* A new field record for d: name interned by the caller, v taken. */
struct dev_field dm_field_make(const struct dev *d, const char *name, json_object *v);
/* Sets name to v (taking the reference) in place or as a new last field.
 * Returns the field's index, or -1 (v released) when out of memory or full.
 * The old value's reference passes to *old when old is not NULL (NULL for
 * a new field), else it is released. */
int dm_field_set(struct devmgr *m, struct dev *d, const char *name, json_object *v,
                 json_object **old);
void dm_fields_free(struct dev *d);
/* The state as a new json-c object; values are shared references. */
json_object *dm_state_object(const struct dev *d);

/* ---- devmgr_fields.c ----------------------------------------------------- */

/* Moves the fields a JSON message msg carries for binding b into changes
 * (payload_map_fields' rules) one by one: a field whose name is longer than
 * DEV_FIELD_NAME_MAX or whose value holds NaN, Infinity or a number beyond
 * double range is left out, counted in stats.fields_rejected and warned
 * about (dm_warn_field). Returns the number of fields rejected. */
size_t dm_fields_from_message(struct devmgr *m, struct dev *d, const struct cfg_state_binding *b,
                              json_object *msg, json_object *changes);
/* Logs "device <id>: field '<name>' <why>" once per device and field, at
 * most FIELD_WARN_PER_S lines a second. */
void dm_warn_field(struct devmgr *m, const struct dev *d, const char *name, const char *why);
void dm_warn_free(struct devmgr *m);

#endif

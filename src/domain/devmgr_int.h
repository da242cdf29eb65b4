/*
 * devmgr_int.h - the device manager's own types, shared by its four files
 * (internal to src/domain): devmgr.c (routing, transitions, availability),
 * devmgr_state.c (the field arrays and their JSON text), devmgr_fields.c
 * (JSON messages field by field, field warnings, control types),
 * devmgr_mirror.c (the Wiren Board mirror: throttle, backpressure,
 * republish, nulls as meta/error "r").
 */
#ifndef WBMB_DOMAIN_DEVMGR_INT_H
#define WBMB_DOMAIN_DEVMGR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domain/mirror_rate.h"
#include "wbmb/devmgr.h"
#include "wbmb/strix.h"
#include "wbmb/util.h"

#define MAX_ROUTES_PER_MSG 64
#define RESTORE_ROWS_PER_FLUSH 1024 /* devices rows queued at start-up before a flush */
#define ECHO_SLOTS 32
#define MIRROR_THROTTLED 64 /* controls per device under the interval; later ones: every change */
#define PUB_INLINE 2        /* pub_ms entries kept in struct dev, no allocation */
#define ECHO_TTL_MS 10000
/* With the sender's queue above MIRROR_BACKLOG_MAX, throttled values are
 * held and the queue looked at again this much later. */
#define MIRROR_BUSY_RETRY_MS 10
/* A flush checks the queue again after this many publications. */
#define MIRROR_FLUSH_CHECK 64

enum route_kind { ROUTE_STATE, ROUTE_AVAILABILITY };

struct dev;

struct route {
    enum route_kind kind;
    struct dev *dev;
    const struct cfg_state_binding *binding; /* ROUTE_STATE */
};

/* Control types of the mirror (a field's meta "type"). */
enum ctl_type { CTL_NONE, CTL_SWITCH, CTL_VALUE, CTL_TEXT };

/* One state field. Fields are never removed, so an index stays valid. */
struct field {
    const char *name;       /* interned in the manager's name table */
    json_object *v;         /* owned reference; NULL is a JSON null (json-c's null) */
    bool transient : 1;     /* never persisted (cfg transient list) */
    bool mirrored : 1;      /* the name is a control name (mirror_field_name_ok) */
    bool err_shown : 1;     /* meta/error "r" published (the value is null) */
    unsigned declared : 2;  /* enum ctl_type of a plain binding of this field; CTL_NONE */
    unsigned meta_type : 2; /* enum ctl_type last published in the control's meta */
};

struct dev {
    const struct cfg_device *cfg;
    struct field *f; /* in insertion order */
    /* bridge.mirror_min_interval_ms, per control (field in insertion order,
     * the first MIRROR_THROTTLED of them): when its value was last published
     * (monotonic ms, wrapping 32 bits, compared as a signed difference; 0 =
     * never) and whether a newer value waits for the interval (held bit i). */
    union {
        uint32_t *heap;                /* n_pub > PUB_INLINE */
        uint32_t in_place[PUB_INLINE]; /* most devices: one or two controls */
    } pub;
    uint64_t held;
    int64_t last_msg_ms;
    int64_t connected_ms; /* wall clock of the last online edge; 0 = never */
    int next_order;
    uint16_t n_f, cap_f;
    /* Control metas published since the last devmgr_publish_all(): those of
     * the first meta_count fields, so no per-device set is needed. */
    uint16_t meta_count;
    uint16_t n_pub;
    bool mirror_dirty : 1; /* in devmgr.dirty */
    bool tracked : 1;      /* has an availability section */
    bool known : 1;        /* availability seen at least once */
    bool online : 1;
    bool carried : 1; /* state carried over from a previous manager */
};

struct devmgr {
    const struct config *cfg;
    struct state_store *store;
    struct mirror_publisher pub;
    struct devmgr_hooks hooks;
    struct dev *devs;
    size_t n_devs;
    struct route *routes;
    size_t n_routes;
    struct ttree *tree;
    /* id -> device index: open addressing over the config's own id strings
     * (no copies; a json-c table cost ~250 bytes per device). */
    struct strix ix;
    /* Subscriptions: the config's own topic strings (the config outlives
     * the manager) and, owned in `made`, the generated /on filters. */
    const char **subs;
    size_t n_subs, cap_subs;
    char **made;
    size_t n_made, cap_made;
    struct devmgr_stats stats;
    uint32_t *dirty; /* indices of devices with mirror_dirty set */
    size_t n_dirty;
    int64_t next_scan_ms;     /* devmgr_flush_mirror does nothing before this */
    struct mirror_rate mrate; /* the interval's stretch under a flood */
    char key[256];            /* "device:<id>" scratch */
    char *json;               /* persisted-state text scratch (grows, reused) */
    /* Field names, each stored once for all devices ("value", "power",
     * ...): open addressing, at most half full, owned. Only names of fields
     * that exist are added, so the table is bounded like the states. */
    char **names;
    size_t names_mask, n_names;
    size_t json_cap;
    /* Our own command publications that will come back to us as input
     * (an action whose topic is one of our /on topics): ignored once. */
    struct {
        char *topic;
        char *payload;
        int64_t until_ms;
    } echo[ECHO_SLOTS];
    size_t echo_next;
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
#define DEV_FIELD_NAME_MAX MIRROR_FIELD_MAX
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
struct field dm_field_make(const struct dev *d, const char *name, json_object *v);
/* Sets name to v (taking the reference) in place or as a new last field.
 * Returns the field's index, or -1 (v released) when out of memory or full. */
int dm_field_set(struct devmgr *m, struct dev *d, const char *name, json_object *v);
void dm_fields_free(struct dev *d);
/* The state as a new json-c object; values are shared references. */
json_object *dm_state_object(const struct dev *d);
/* The persisted state of d as JSON text in m's scratch buffer (valid until
 * the next call); NULL when out of memory. */
const char *dm_persisted_json(struct devmgr *m, const struct dev *d);

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
/* The control type the mirror shows for field f of d. */
enum ctl_type dm_control_type(const struct field *f);
/* The declared control type of field name (a plain binding's type), or CTL_NONE. */
enum ctl_type dm_declared_type(const struct cfg_device *c, const char *name);

/* ---- devmgr_mirror.c ----------------------------------------------------- */

/* Publishes the control metas d still lacks, then field fi's value unless
 * the interval or backpressure holds it. */
void dm_publish_field(struct devmgr *m, struct dev *d, size_t fi);

#endif

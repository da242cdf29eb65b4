/*
 * sink.h - change events, and the sinks that receive them.
 *
 * The device manager, the dispatcher and the scenario manager (src/domain)
 * own the state; every change they make goes out as one typed event to the
 * sinks registered at start-up: the store writer (store_sink.c), the Wiren
 * Board mirror (mirror/wb.c), the live events of the HTTP API
 * (http_sink.c). A new kind of output is one new file that implements
 * struct sink_ops, plus one sinks_add() line in app.c.
 *
 * Rules every sink keeps:
 *  - events arrive on the core (core.c's top: whoever holds the core's
 *    lock), one at a time, in the order the changes were made; everything an
 *    event points to is borrowed for the call;
 *  - a sink never blocks the core: what it cannot hand on at once it holds
 *    (coalesced per topic or per key: the latest value wins) and sends from
 *    its tick;
 *  - a sink never changes state: it may read the devices through the view
 *    it is given (struct sink_view), and it may turn its own input topics
 *    into commands (sink_ops.input), which the core routes like any other
 *    request.
 *
 * This header is in the lowest layer (README, "Layers"): it names the
 * config's types by forward declaration only and includes no module above.
 */
#ifndef WBMB_SINK_H
#define WBMB_SINK_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

struct cfg_device;
struct config;

/* A state field as the device manager keeps it (its own record). */
struct dev_field {
    const char *name; /* interned by the device manager */
    json_object *v;   /* NULL is a JSON null */
    bool transient;   /* never persisted (devices[].transient) */
};

/* A device as sinks see it. Field indexes are stable: fields are never
 * removed, new ones are appended. */
struct sink_device {
    const struct cfg_device *cfg;
    uint32_t index; /* the device manager's index, until the next EV_DEVICES_DONE */
    bool online;
    int64_t connected_ms;      /* wall clock of the last online edge; 0 = never */
    const struct dev_field *f; /* the whole state, in insertion order */
    size_t n_f;
};

/* Read access to every device (the device manager implements it). */
struct sink_view {
    size_t (*count)(const void *ud);
    /* false when i >= count */
    bool (*device)(const void *ud, size_t i, struct sink_device *out);
    const void *ud;
};

enum ev_kind {
    EV_DEVICE_ADDED,   /* start-up (after the restore) or a reload added it */
    EV_DEVICE_CHANGED, /* a reload kept it: device.changed.old_cfg was its config */
    EV_DEVICE_REMOVED, /* a reload dropped it: dev is the old config's */
    EV_DEVICES_DONE,   /* after a start-up's or reload's device events: new indexes */
    EV_FIELDS,         /* one transition of one device */
    EV_AVAILABILITY,   /* online/offline edge of a device */
    EV_SCENARIO,       /* scenario:last changed */
    EV_COMMAND,        /* a command's outcome (sent, failed, rejected) */
    EV_LINK_UP,        /* connected to the broker */
    EV_LINK_DOWN,      /* the connection is gone */
    EV_STOPPING,       /* shutdown: the last word before the store's flush */
};

/* A changed field: its new value is dev->f[index].v. */
struct ev_change {
    uint32_t index;
    json_object *old_v; /* NULL: JSON null, or new_field */
    bool new_field;
};

/* How a command ended, as a UI shows it. */
enum ev_verdict {
    EV_CMD_SENT,        /* the broker acknowledged it */
    EV_CMD_INVALID,     /* refused before sending: bad params */
    EV_CMD_REFUSED,     /* the broker refused it (PUBACK >= 0x80) */
    EV_CMD_UNDELIVERED, /* not delivered: no broker, no PUBACK, stopping */
    EV_CMD_UNKNOWN,     /* unknown device or action */
};

struct ev_command {
    const char *command_id;       /* NULL: no command_logs row (the scenario control) */
    const struct cfg_device *dev; /* NULL for an unknown device and the bridge */
    const char *device_id;
    const char *action;
    const char *params; /* JSON text, NULL when none */
    const char *source; /* "mqtt", "http", "scenario" */
    const char *status; /* "sent", "failed", "rejected" */
    const char *error;  /* NULL when sent */
    const char *created_at, *completed_at;
    enum ev_verdict verdict;
};

struct event {
    enum ev_kind kind;
    int64_t now_ms;                /* monotonic */
    const struct sink_device *dev; /* device events; NULL otherwise */
    union {
        struct {
            const struct cfg_device *old_cfg;
            uint32_t old_index; /* its index before the reload */
        } changed;              /* EV_DEVICE_CHANGED */
        struct {
            const struct config *cfg; /* the config in force from now on */
            bool reload;              /* false at start-up */
        } done;                       /* EV_DEVICES_DONE */
        struct {
            const struct ev_change *c;
            size_t n;
            bool persisted; /* a persisted field changed: the stored state changes */
        } fields;           /* EV_FIELDS */
        struct {
            bool online;
            const char *why; /* "online", "offline", "timeout" */
            const char *ts;  /* ISO-8601 wall clock of the edge */
        } availability;      /* EV_AVAILABILITY */
        struct {
            json_object *last;  /* the scenario:last object */
            const char *active; /* the active scenario id, or "none" */
            bool stored;        /* read from the store at start-up: nothing to write */
        } scenario;             /* EV_SCENARIO */
        struct ev_command command;
    } u;
};

/* A command a sink found on one of its input topics. */
struct sink_command {
    const char *device_id; /* borrowed from the sink or the topic, valid for the call */
    const char *action;    /* an action name, or "scenario" on the bridge device */
    const char *payload;
    size_t len;
    bool retained;
};

enum sink_input {
    SINK_IN_NONE,    /* not one of the sink's topics */
    SINK_IN_OWN,     /* the sink's own publication seen again: ignore it */
    SINK_IN_COMMAND, /* *cmd filled: the core runs it */
};

struct sink;

struct sink_ops {
    const char *name;
    /* Every event, in order (required). */
    void (*event)(struct sink *s, const struct event *ev, const struct sink_view *view);
    /* Optional: deferred work (held values, republish steps). Returns when it
     * wants the next tick (monotonic ms), INT64_MAX when idle. light: called
     * on a message's path (paho's thread applying it in place): only what is
     * due and cheap; bulk work (a republish round) waits for the loop's tick,
     * which keeps its pace and the memory it holds bounded. */
    int64_t (*tick)(struct sink *s, const struct sink_view *view, int64_t now_ms, bool light);
    /* Optional: the topic filters of its input (valid until the next
     * EV_DEVICES_DONE); *n set. */
    const char *const *(*subscriptions)(struct sink *s, size_t *n);
    /* Optional: a message that may be on one of its input topics. */
    enum sink_input (*input)(struct sink *s, const char *topic, const char *payload, size_t len,
                             bool retained, struct sink_command *cmd);
    /* Optional: the bridge is about to publish a command to topic; when that
     * is one of the sink's input topics, the copy that comes back is ours
     * (input() then says SINK_IN_OWN once). */
    void (*expect_echo)(struct sink *s, const char *topic, const char *payload, size_t len);
    /* Optional: frees the sink (NULL-safe). */
    void (*destroy)(struct sink *s);
};

/* Every sink begins with its ops (like struct state_store). */
struct sink {
    const struct sink_ops *ops;
};

#define SINKS_MAX 8

/* The registered sinks, called in registration order. */
struct sinks {
    struct sink *s[SINKS_MAX];
    size_t n;
    struct sink_view view; /* the current devices (set by the core) */
};

/* Registers s (borrowed; freed by sinks_destroy). WB_ERR_RANGE when full. */
wb_status sinks_add(struct sinks *set, struct sink *s);
/* Destroys every sink (in reverse order) and empties the set. */
void sinks_destroy(struct sinks *set);

/* Hands ev to every sink. NULL set: nothing. */
void sinks_emit(const struct sinks *set, const struct event *ev);
/* The soonest next tick of all sinks (INT64_MAX: none); light: see
 * sink_ops.tick. */
int64_t sinks_tick(const struct sinks *set, int64_t now_ms, bool light);
/* The first sink that claims topic; SINK_IN_NONE when none does. */
enum sink_input sinks_input(const struct sinks *set, const char *topic, const char *payload,
                            size_t len, bool retained, struct sink_command *cmd);
void sinks_expect_echo(const struct sinks *set, const char *topic, const char *payload, size_t len);

#endif

/*
 * ha_int.h - the Home Assistant sink's own types (internal to src/mirror/),
 * shared by ha.c (events, the republish round, input, state topics) and
 * ha_discovery.c (which entities a device has, their discovery payloads,
 * the memory of what was announced).
 *
 * Nothing about an entity is kept between announcements: the entities of a
 * device are worked out from its config and its state each time its config
 * is published (at a connect, a reload, Home Assistant's birth, a new field
 * of a merged JSON object), which is rare. The hot path (a transition) only
 * writes the device's state topic.
 */
#ifndef WBMB_MIRROR_HA_INT_H
#define WBMB_MIRROR_HA_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/ha.h"
#include "wbmb/mirror.h"
#include "wbmb/sink.h"

#define HA_TOPIC_MAX 512
#define HA_KEY_MAX 80 /* a component key: a name of up to 64 bytes, "_" and 8 hex digits */
/* The republish round: devices per step while fewer publications than
 * HA_REPUBLISH_BACKLOG wait for the sender (as the mirror's round). */
#define HA_REPUBLISH_BACKLOG 256
#define HA_REPUBLISH_STEP 8
#define HA_REPUBLISH_POLL_MS 1
/* A device's config goes out again for a new field at most this often (a
 * device whose every message adds a key would otherwise send its whole,
 * growing config each time). */
#define HA_REANNOUNCE_MS 1000
/* New fields make the memory stale: saved at most this often for them. */
#define HA_MEMORY_SAVE_MS 60000

enum ha_platform {
    HA_P_NONE,
    HA_P_SENSOR,
    HA_P_BINARY_SENSOR,
    HA_P_SWITCH,
    HA_P_NUMBER,
    HA_P_SELECT,
    HA_P_BUTTON,
    HA_P_TEXT,
};

/* "sensor", "binary_sensor", ...; NULL for HA_P_NONE. */
const char *ha_platform_name(enum ha_platform p);
/* The platform of a name, HA_P_NONE when unknown. */
enum ha_platform ha_platform_of(const char *name);

/* One entity of a device. */
struct ha_entity {
    enum ha_platform p;
    char key[HA_KEY_MAX];              /* its key in cmps, the end of its unique_id */
    const char *field;                 /* the state field it shows; NULL: none */
    const struct cfg_action *action;   /* its command; NULL: a field's own */
    const struct cfg_action *on, *off; /* a switch field's actions */
    const struct cfg_field_spec *spec; /* the field's, NULL when none */
    bool numeric;                      /* a sensor of numbers */
};

struct ha {
    struct sink base; /* first: the sink */
    const struct config *cfg;
    const struct cfg_homeassistant *hc; /* &cfg->homeassistant */
    struct mirror_publisher pub;
    bool enabled;
    bool connected;
    /* The republish round (configs, availability, states) after a connect,
     * a reload or Home Assistant's birth; the bridge's own device first. */
    bool republishing;
    size_t republish_next;
    int64_t birth_due_ms; /* a round starts then (INT64_MAX: none) */
    /* Per device index of the current view (allocated only while enabled). */
    struct hdev {
        int64_t last_ms;      /* its state topic was last published then (monotonic) */
        int64_t announced_ms; /* its config was last published outside a round then */
        uint32_t announced;   /* its number of fields when its config was last
                               * published: a new field may be a new entity */
        bool held;            /* a newer state waits for state_interval_ms */
        bool reannounce;      /* its config waits for HA_REANNOUNCE_MS */
        bool queued;          /* in queue (held or reannounce, or was) */
    } * devs;
    size_t n_devs;
    uint32_t *queue; /* indices of the devices with something waiting, each once */
    size_t n_queue;
    int64_t next_flush_ms; /* the soonest of it is due then (INT64_MAX: none) */
    /* Input: <base>/+/+/set and the status topic. */
    char *subs[2];
    size_t n_subs;
    char *scenario;    /* the active scenario id or "none" */
    json_object *last; /* scenario:last (owned), NULL before the first */
    /* What was announced (the store's "ha:published"): {"prefix", "node",
     * "base", "devices": {"<device>": "key:platform/..."}}. */
    struct mirror_memory mem;
    json_object *memory; /* what was announced (saved when mem_dirty), or NULL */
    bool mem_dirty;
    int64_t mem_due_ms;
    /* The state topic's text, reused (grown when needed). */
    char *buf;
    size_t cap;
    int64_t warn_window_ms;
    unsigned warn_in_window;
};

/* ---- ha_discovery.c ------------------------------------------------------ */

/* The entities of device sd (fields first, then actions) into *out (a new
 * array, free() it); their number, 0 with *out NULL when none or out of
 * memory. */
size_t ha_entities(const struct sink_device *sd, struct ha_entity **out);
/* The device's discovery payload with its entities, and stubs ({"p": ...})
 * for the components of old ("key:platform/..." as remembered, NULL: none)
 * it no longer has. NULL when out of memory. *names: this announcement's
 * "key:platform/..." (owned by the caller), NULL when out of memory. */
json_object *ha_device_config(const struct ha *h, const struct sink_device *sd, const char *old,
                              char **names);
/* The bridge's own device: the scenario select and the status sensor. */
json_object *ha_bridge_config(const struct ha *h, const char *old, char **names);
/* An object id, unique id and topic part of a device id: the bridge's own
 * id with characters outside [A-Za-z0-9_-] as '_'. */
void ha_object_id(const char *id, char *buf, size_t cap);

/* ---- ha.c ---------------------------------------------------------------- */

/* <base>/<device>/<leaf> into buf; false when it does not fit. */
bool ha_topic(const struct ha *h, const char *device_id, const char *leaf, char *buf, size_t cap);

#endif

/*
 * mirror.h - the Wiren Board mirror (src/mirror/): every device as Wiren
 * Board's conventions publish it (CONTRACT §5), as one sink (sink.h). This
 * module is the only place that builds or parses a /devices/... topic.
 *
 *   /devices/<id>/meta                     {"driver":"wb-mqtt-bridge","title":{"en":NAME}}
 *   /devices/<id>/meta/name                NAME (legacy, bridge.wb_legacy_meta)
 *   /devices/<id>/meta/error               "offline" while the bridge is down, "" otherwise
 *   /devices/<id>/controls/<c>             the value: booleans 1/0, numbers, text
 *   /devices/<id>/controls/<c>/meta        {"type":...,"readonly":...,"order":N,"title":{...},
 *                                          units, min, max, precision, hidden, enum}
 *   /devices/<id>/controls/<c>/meta/<key>  legacy copies: type, readonly (1/0), order, min,
 *                                          max, units, precision
 *   /devices/<id>/controls/<c>/meta/error  a mix of "r" (offline, or a null value) and
 *                                          "w" (the last write failed); "" otherwise
 *   /devices/<id>/controls/<c>/on          input: an action's control, or a switch field's
 *
 * What each control is (pushbutton, switch, range, value, text) is worked
 * out in wb_controls.c from the config.
 *
 * A value goes out byte-exact with its length (a string with a NUL
 * included). A JSON null is never a value payload (an empty retained
 * payload would delete the control's value on the broker): the control's
 * meta/error says "r" instead.
 *
 * Everything here is retained except pushes through mirror_publish_raw()
 * with retained = false. The publisher is a function pointer so the mirror
 * can be tested without a broker.
 */
#ifndef WBMB_MIRROR_H
#define WBMB_MIRROR_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "wbmb/config.h"
#include "wbmb/sink.h"
#include "wbmb/status.h"

#define MIRROR_TOPIC_MAX 512
#define MIRROR_FIELD_MAX 128 /* longest state field name that is mirrored */

typedef wb_status (*mirror_publish_fn)(void *ud, const char *topic, const char *payload, size_t len,
                                       int qos, bool retained);

struct mirror_publisher {
    mirror_publish_fn fn; /* NULL = publish nothing */
    void *ud;
    /* Optional: publications waiting to be sent (the device manager holds
     * throttled values back while it is above MIRROR_BACKLOG_MAX). */
    size_t (*backlog)(void *ud);
};

/* Publications that may wait in the sender's queue before the mirror holds
 * values back (their latest values go out later). */
#define MIRROR_BACKLOG_MAX 1024

/* Formats a state value the Wiren Board way into buf (booleans 1/0, numbers
 * as text, strings verbatim, objects/arrays as JSON). Returns the length, or
 * the length it would need when cap is too small (like snprintf). */
size_t mirror_format_value(json_object *v, char *buf, size_t cap);

/* true when name can be a control name: at most MIRROR_FIELD_MAX bytes and
 * one topic level by the gate's rules (topic_gate.h: non-empty, no / + #,
 * valid UTF-8 without control characters or non-characters). */
bool mirror_field_name_ok(const char *name);

wb_status mirror_publish_raw(const struct mirror_publisher *p, const char *topic,
                             const char *payload, size_t len, int qos, bool retained);
/* /devices/<id>/meta (and, legacy, /devices/<id>/meta/name = title). */
wb_status mirror_device_meta(const struct mirror_publisher *p, const char *device_id,
                             const char *title, bool legacy);
wb_status mirror_device_error(const struct mirror_publisher *p, const char *device_id,
                              const char *error);
/* /devices/<id>/controls/<control>/meta = meta (borrowed); legacy: also the
 * subtopics meta/type, meta/readonly (1/0), meta/order, meta/min, meta/max,
 * meta/units and meta/precision of the keys meta has. */
wb_status mirror_control_meta(const struct mirror_publisher *p, const char *device_id,
                              const char *control, json_object *meta, bool legacy);
/* Empty retained payloads on every topic of a control (value, meta,
 * meta/error, the legacy subtopics) or of a device's own topics (meta,
 * meta/error, meta/name): the broker forgets them, a UI drops them. */
wb_status mirror_clear_control(const struct mirror_publisher *p, const char *device_id,
                               const char *control);
wb_status mirror_clear_device(const struct mirror_publisher *p, const char *device_id);
/* /devices/<id>/controls/<control>/meta/error (retained; "" clears it). */
wb_status mirror_control_error(const struct mirror_publisher *p, const char *device_id,
                               const char *control, const char *error);
wb_status mirror_control_value(const struct mirror_publisher *p, const char *device_id,
                               const char *control, json_object *value);

/* Where the mirror remembers what it has published, across restarts (the
 * core keeps it in the store, key "wb:published": {"<device>": "c1/c2/..."},
 * control names joined by '/', which no control name holds). A restart with
 * a smaller config clears what the last run published and this one does
 * not. */
struct mirror_memory {
    json_object *(*load)(void *ud);         /* a new reference, or NULL: nothing */
    void (*save)(void *ud, json_object *v); /* v borrowed */
    void *ud;
};

/* The mirror sink for cfg (borrowed until the next EV_DEVICES_DONE brings
 * the next one) publishing through pub (copied), remembering through mem
 * (copied; NULL: remembers nothing). NULL when out of memory. Freed through
 * its ops (sinks_destroy). */
struct sink *mirror_sink_create(const struct config *cfg, const struct mirror_publisher *pub,
                                const struct mirror_memory *mem);

/* The mirror's config check (cfg_add_check): a state topic without
 * wildcards inside /devices/<id>/ of a mirrored device is refused. */
void mirror_check_config(const struct config *cfg, struct cfg_check *chk);

/* The bridge's own error topic, its Last Will: /devices/<bridge_id>/meta/error.
 * false when it does not fit in cap. */
bool mirror_will_topic(char *buf, size_t cap, const char *bridge_id);

#endif

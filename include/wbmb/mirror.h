/*
 * mirror.h - Wiren Board conventions for publishing a device (CONTRACT §5).
 *
 *   /devices/<id>/meta                     {"driver":"wb-mqtt-bridge","title":{"en":NAME}}
 *   /devices/<id>/meta/error               "offline" while the bridge is down, "" otherwise
 *   /devices/<id>/controls/<c>             the value: booleans 1/0, numbers, text
 *   /devices/<id>/controls/<c>/meta
 * {"type":"switch|value|text|pushbutton","readonly":true,"order":N,...}
 *   /devices/<id>/controls/<c>/meta/error  "r" while the value is null, "" otherwise
 *
 * A value goes out byte-exact with its length (a string with a NUL
 * included). A JSON null is never a value payload (an empty retained
 * payload would delete the control's value on the broker): the device
 * manager publishes the control's meta/error "r" instead.
 *
 * Everything here is retained except pushes through mirror_publish_raw()
 * with retained = false. The publisher is a function pointer so the device
 * manager can be tested without a broker.
 */
#ifndef WBMB_MIRROR_H
#define WBMB_MIRROR_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

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

/* Publications that may wait in the sender's queue before the device
 * manager holds mirrored values back (their latest values go out later). */
#define MIRROR_BACKLOG_MAX 1024

/* Formats a state value the Wiren Board way into buf (booleans 1/0, numbers
 * as text, strings verbatim, objects/arrays as JSON). Returns the length, or
 * the length it would need when cap is too small (like snprintf). */
size_t mirror_format_value(json_object *v, char *buf, size_t cap);

/* The control type for a value: "switch", "value" or "text". */
const char *mirror_control_type(json_object *v);

/* true when name can be a control name: at most MIRROR_FIELD_MAX bytes and
 * one topic level by the gate's rules (topic_gate.h: non-empty, no / + #,
 * valid UTF-8 without control characters or non-characters). */
bool mirror_field_name_ok(const char *name);

wb_status mirror_publish_raw(const struct mirror_publisher *p, const char *topic,
                             const char *payload, size_t len, int qos, bool retained);
wb_status mirror_device_meta(const struct mirror_publisher *p, const char *device_id,
                             const char *title);
wb_status mirror_device_error(const struct mirror_publisher *p, const char *device_id,
                              const char *error);
/* meta_extra: more keys merged into the control meta (may be NULL). */
wb_status mirror_control_meta(const struct mirror_publisher *p, const char *device_id,
                              const char *control, const char *type, bool readonly, int order,
                              json_object *meta_extra);
/* /devices/<id>/controls/<control>/meta/error (retained; "" clears it). */
wb_status mirror_control_error(const struct mirror_publisher *p, const char *device_id,
                               const char *control, const char *error);
wb_status mirror_control_value(const struct mirror_publisher *p, const char *device_id,
                               const char *control, json_object *value);

#endif

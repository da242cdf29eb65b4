/*
 * mirror.c - Wiren Board topic and payload formats (see mirror.h), used by
 * the mirror sink (wb.c, wb_throttle.c).
 *
 * Topic and value buffers live on the stack and are bounded: a name that
 * would overflow MIRROR_TOPIC_MAX is refused with WB_ERR_RANGE rather than
 * truncated into a wrong topic.
 *
 * QoS: control values go out at QoS 0, everything else (meta, errors) at
 * QoS 1. A value is retained state that the bridge republishes in full after
 * every (re)connect, so QoS 1 would buy nothing on a live connection, while
 * it costs paho a tracked in-flight message (and an O(in-flight) message id
 * search) per transition: with QoS 1 values the bridge managed ~7 k msg/s,
 * paho's own list walks being the top of the profile.
 */
#include "wbmb/mirror.h"
#include "wbmb/util.h"
#include "wbmb/topic_gate.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

wb_status mirror_publish_raw(const struct mirror_publisher *p, const char *topic,
                             const char *payload, size_t len, int qos, bool retained)
{
    if (!p || !p->fn)
        return WB_OK;
    return p->fn(p->ud, topic, payload, len, qos, retained);
}

size_t mirror_format_value(json_object *v, char *buf, size_t cap)
{
    int n;
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        n = snprintf(buf, cap, "%d", json_object_get_boolean(v) ? 1 : 0);
        break;
    case json_type_int:
        if (cap >= 21)
            return util_format_i64(json_object_get_int64(v), buf);
        n = snprintf(buf, cap, "%lld", (long long)json_object_get_int64(v));
        break;
    case json_type_double:
        n = snprintf(buf, cap, "%.17g", json_object_get_double(v));
        /* Prefer the shortest text that reads back to the same double. */
        for (int prec = 1; prec < 17; prec++) {
            char tmp[40];
            snprintf(tmp, sizeof(tmp), "%.*g", prec, json_object_get_double(v));
            double back = 0;
            sscanf(tmp, "%lf", &back);
            if (back == json_object_get_double(v)) {
                n = snprintf(buf, cap, "%s", tmp);
                break;
            }
        }
        break;
    case json_type_string: {
        /* The exact bytes, an embedded NUL included: "%s" would stop at
         * the NUL and leave the rest of buf as it was. */
        size_t len = (size_t)json_object_get_string_len(v);
        if (len < cap) {
            memcpy(buf, json_object_get_string(v), len);
            buf[len] = '\0';
        } else if (cap) {
            buf[0] = '\0';
        }
        return len;
    }
    case json_type_null: /* never published by the device manager (mirror.h) */
        n = snprintf(buf, cap, "%s", "");
        break;
    default:
        n = snprintf(buf, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        break;
    }
    return n < 0 ? 0 : (size_t)n;
}

bool mirror_field_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len <= MIRROR_FIELD_MAX && tgate_check(name, len, TGATE_LEVEL) == TGATE_OK;
}

wb_status mirror_device_meta(const struct mirror_publisher *p, const char *device_id,
                             const char *title, bool legacy)
{
    char topic[MIRROR_TOPIC_MAX];
    if ((size_t)snprintf(topic, sizeof(topic), "/devices/%s/meta", device_id) >= sizeof(topic))
        return WB_ERR_RANGE;
    json_object *meta = json_object_new_object();
    json_object *t = json_object_new_object();
    json_object_object_add(meta, "driver", json_object_new_string("wb-mqtt-bridge"));
    json_object_object_add(t, "en", json_object_new_string(title));
    json_object_object_add(meta, "title", t);
    const char *s = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN);
    wb_status st = mirror_publish_raw(p, topic, s, strlen(s), 1, true);
    json_object_put(meta);
    /* The legacy form: the device's name on its own subtopic. */
    if (st == WB_OK && legacy && strlen(topic) + 5 < sizeof(topic)) {
        strcat(topic, "/name");
        st = mirror_publish_raw(p, topic, title, strlen(title), 1, true);
    }
    return st;
}

wb_status mirror_device_error(const struct mirror_publisher *p, const char *device_id,
                              const char *error)
{
    char topic[MIRROR_TOPIC_MAX];
    if ((size_t)snprintf(topic, sizeof(topic), "/devices/%s/meta/error", device_id) >=
        sizeof(topic))
        return WB_ERR_RANGE;
    return mirror_publish_raw(p, topic, error, strlen(error), 1, true);
}

/* The legacy meta subtopics (conventions before v1.4), each a copy of one
 * key of the JSON meta; meta/readonly is 1 or 0. */
static const char *const legacy_keys[] = {"type", "readonly", "order",    "min",
                                          "max",  "units",    "precision"};
#define N_LEGACY (sizeof(legacy_keys) / sizeof(*legacy_keys))

wb_status mirror_control_meta(const struct mirror_publisher *p, const char *device_id,
                              const char *control, json_object *meta, bool legacy)
{
    char topic[MIRROR_TOPIC_MAX];
    int n = snprintf(topic, sizeof(topic), "/devices/%s/controls/%s/meta", device_id, control);
    if (n < 0 || (size_t)n + sizeof("/precision") > sizeof(topic))
        return WB_ERR_RANGE;
    const char *s = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN);
    wb_status st = mirror_publish_raw(p, topic, s, strlen(s), 1, true);
    for (size_t i = 0; st == WB_OK && legacy && i < N_LEGACY; i++) {
        json_object *v;
        if (!json_object_object_get_ex(meta, legacy_keys[i], &v))
            continue;
        char buf[64];
        const char *text;
        size_t len;
        if (json_object_is_type(v, json_type_boolean)) {
            text = json_object_get_boolean(v) ? "1" : "0";
            len = 1;
        } else if (json_object_is_type(v, json_type_string)) {
            text = json_object_get_string(v);
            len = (size_t)json_object_get_string_len(v);
        } else {
            len = mirror_format_value(v, buf, sizeof(buf));
            if (len >= sizeof(buf))
                continue;
            text = buf;
        }
        snprintf(topic + n, sizeof(topic) - (size_t)n, "/%s", legacy_keys[i]);
        st = mirror_publish_raw(p, topic, text, len, 1, true);
    }
    return st;
}

wb_status mirror_clear_control(const struct mirror_publisher *p, const char *device_id,
                               const char *control)
{
    char topic[MIRROR_TOPIC_MAX];
    int n = snprintf(topic, sizeof(topic), "/devices/%s/controls/%s", device_id, control);
    if (n < 0 || (size_t)n + sizeof("/meta/precision") > sizeof(topic))
        return WB_ERR_RANGE;
    /* Meta first: a UI that sees the value go while the meta stays would
     * show a control without a value for a moment. */
    static const char *const tails[] = {"/meta/error", "/meta", ""};
    wb_status st = WB_OK;
    for (size_t i = 0; i < N_LEGACY && st == WB_OK; i++) {
        snprintf(topic + n, sizeof(topic) - (size_t)n, "/meta/%s", legacy_keys[i]);
        st = mirror_publish_raw(p, topic, "", 0, 1, true);
    }
    for (size_t i = 0; i < sizeof(tails) / sizeof(*tails) && st == WB_OK; i++) {
        snprintf(topic + n, sizeof(topic) - (size_t)n, "%s", tails[i]);
        st = mirror_publish_raw(p, topic, "", 0, 1, true);
    }
    return st;
}

wb_status mirror_clear_device(const struct mirror_publisher *p, const char *device_id)
{
    char topic[MIRROR_TOPIC_MAX];
    int n = snprintf(topic, sizeof(topic), "/devices/%s/meta", device_id);
    if (n < 0 || (size_t)n + sizeof("/error") > sizeof(topic))
        return WB_ERR_RANGE;
    static const char *const tails[] = {"/error", "/name", ""};
    wb_status st = WB_OK;
    for (size_t i = 0; i < sizeof(tails) / sizeof(*tails) && st == WB_OK; i++) {
        snprintf(topic + n, sizeof(topic) - (size_t)n, "%s", tails[i]);
        st = mirror_publish_raw(p, topic, "", 0, 1, true);
    }
    return st;
}

wb_status mirror_control_value(const struct mirror_publisher *p, const char *device_id,
                               const char *control, json_object *value)
{
    char topic[MIRROR_TOPIC_MAX];
    char small[256];
    /* Built by hand: this runs once per changed field (see format_int). */
    static const char pre[] = "/devices/", mid[] = "/controls/";
    size_t il = strlen(device_id), cl = strlen(control);
    if (sizeof(pre) - 1 + il + sizeof(mid) - 1 + cl >= sizeof(topic))
        return WB_ERR_RANGE;
    char *t = topic;
    memcpy(t, pre, sizeof(pre) - 1);
    t += sizeof(pre) - 1;
    memcpy(t, device_id, il);
    t += il;
    memcpy(t, mid, sizeof(mid) - 1);
    t += sizeof(mid) - 1;
    memcpy(t, control, cl + 1);
    size_t len = mirror_format_value(value, small, sizeof(small));
    if (len < sizeof(small))
        return mirror_publish_raw(p, topic, small, len, 0, true);
    /* Long strings or objects: publish the library's own text, no copy. A
     * string goes out with its own length (it may hold a NUL). */
    if (json_object_is_type(value, json_type_string))
        return mirror_publish_raw(p, topic, json_object_get_string(value), len, 0, true);
    const char *s = json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN);
    return mirror_publish_raw(p, topic, s, strlen(s), 0, true);
}

wb_status mirror_control_error(const struct mirror_publisher *p, const char *device_id,
                               const char *control, const char *error)
{
    char topic[MIRROR_TOPIC_MAX];
    if ((size_t)snprintf(topic, sizeof(topic), "/devices/%s/controls/%s/meta/error", device_id,
                         control) >= sizeof(topic))
        return WB_ERR_RANGE;
    return mirror_publish_raw(p, topic, error, strlen(error), 1, true);
}

bool mirror_will_topic(char *buf, size_t cap, const char *bridge_id)
{
    return (size_t)snprintf(buf, cap, "/devices/%s/meta/error", bridge_id) < cap;
}

/* A state topic without wildcards inside /devices/<id>/ of a mirrored
 * device is the bridge's own mirror topic: the bridge never consumes its own
 * publications, so such a binding would silently never fire (and its device
 * would fight the mirror). Refuse it with the way out. */
void mirror_check_config(const struct config *cfg, struct cfg_check *chk)
{
    static const char prefix[] = "/devices/";
    const size_t plen = sizeof(prefix) - 1;
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct cfg_device *d = &cfg->devices[i];
        for (size_t k = 0; k < d->n_state; k++) {
            const char *t = d->state[k].topic;
            if (!t || strncmp(t, prefix, plen) != 0 || strpbrk(t, "+#"))
                continue;
            const char *slash = strchr(t + plen, '/');
            size_t n = slash ? (size_t)(slash - t - plen) : strlen(t + plen);
            char id[MIRROR_TOPIC_MAX];
            if (n >= sizeof(id))
                continue; /* longer than any device id can be */
            memcpy(id, t + plen, n);
            id[n] = '\0';
            long j = cfg_device_index(cfg, id);
            if (j < 0 || !cfg->devices[j].wb_mirror)
                continue;
            cfg_check_error(chk, d->state[k].mark.line, d->state[k].mark.column,
                            "state topic '%s' of device '%s' is inside /devices/%s/, the bridge's "
                            "own mirror of device '%s': use the real device's topic, or set "
                            "wb_mirror: false on '%s'",
                            t, d->id ? d->id : "?", id, id, id);
        }
    }
}

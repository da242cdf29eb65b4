/*
 * fuzz_pipeline.c - libFuzzer target: the whole path of a device message,
 * payload -> device state -> every outgoing publication, with an oracle.
 *
 * The input is a sequence of messages, each [topic selector byte][length,
 * 2 bytes little endian][payload], applied in order to a fresh device
 * manager (memory store, the store and mirror sinks, no interval) whose bindings cover every
 * type: a JSON object merged whole, one mapped by dotted paths, bool, int,
 * float and string, with the Home Assistant sink on; connected from the start
 * (EV_LINK_UP and ticks until the round is done: tests/unit/pipeline_fixture.h),
 * then republished again at the end as after a reconnect. Some messages go to
 * the sink's own command and birth topics.
 * Every publication is checked as it goes out:
 *   - its topic passes the topic gate (tgate_check, TGATE_NAME);
 *   - a control value is exactly the bytes the field's current value
 *     formats to (a string byte for byte, NULs included; length equal),
 *     never a null;
 *   - a control meta is a JSON object with a known type; a meta/error is
 *     "", "r" or "offline";
 *   - the bridge's own device (the mirror's EV_LINK_UP) shows scenario "none";
 *   - a Home Assistant state topic is one JSON object equal to the device's
 *     state (numbers by value); a discovery config is a JSON object whose
 *     every component has a platform and a unique_id (or is a removal stub).
 * At the end the stored state ("device:<id>") equals the served one (the
 * same values over SQLite and HTTP). Any violation aborts.
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/ha.h"
#include "wbmb/log.h"
#include "wbmb/mirror.h"
#include "wbmb/state_store.h"
#include "wbmb/topic_gate.h"
#include "../unit/pipeline_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *yaml = "bridge: {device_id: br, mirror_min_interval_ms: 0}\n"
                          "homeassistant: {enabled: true, node_id: n, base_topic: hb}\n"
                          "devices:\n"
                          "  - id: z\n"
                          "    state:\n"
                          "      - {topic: z2m/z, type: json}\n"
                          "      - {topic: z2m/m, type: json, fields: {p: power, e: a.b.e}}\n"
                          "      - {topic: z/b, field: b, type: bool}\n"
                          "      - {topic: z/i, field: i, type: int}\n"
                          "      - {topic: z/f, field: f, type: float}\n"
                          "      - {topic: z/s, field: s, type: string}\n"
                          "    actions:\n"
                          "      on: {topic: cmd/z/on, set: {b: true}}\n"
                          "      off: {topic: cmd/z/off, set: {b: false}}\n"
                          "    transient: [t]\n"
                          "  - id: o\n"
                          "    state:\n"
                          "      - {topic: z2m/o, type: json}\n";

static const char *const topics[] = {"z2m/z",
                                     "z2m/m",
                                     "z/b",
                                     "z/i",
                                     "z/f",
                                     "z/s",
                                     "z2m/o",
                                     "hb/z/b/set",
                                     "hb/z/on/set",
                                     "homeassistant/status",
                                     "hb/br/scenario/set"};
#define N_TOPICS (sizeof(topics) / sizeof(topics[0]))

static struct config *cfg;
static struct devmgr *dm;

static void check(int cond, const char *what, const char *topic)
{
    if (cond)
        return;
    fprintf(stderr, "oracle: %s (topic '%s')\n", what, topic);
    abort();
}

/* The value text the mirror must send for v (mirror.h's rules), compared
 * with payload[0..len); doubles by the value they read back as. */
static void check_value(json_object *v, const char *topic, const char *payload, size_t len)
{
    char buf[64];
    switch (json_object_get_type(v)) {
    case json_type_null:
        check(0, "a null published as a value", topic);
        break;
    case json_type_boolean:
        check(len == 1 && payload[0] == (json_object_get_boolean(v) ? '1' : '0'), "boolean", topic);
        break;
    case json_type_int: {
        int n = snprintf(buf, sizeof(buf), "%" PRId64, json_object_get_int64(v));
        check((size_t)n == len && memcmp(buf, payload, len) == 0, "integer text", topic);
        break;
    }
    case json_type_double: {
        check(len > 0 && len < sizeof(buf), "double length", topic);
        memcpy(buf, payload, len);
        buf[len] = '\0';
        char *end = NULL;
        double d = strtod(buf, &end);
        check(end == buf + len && d == json_object_get_double(v) && isfinite(d), "double text",
              topic);
        break;
    }
    case json_type_string:
        check((size_t)json_object_get_string_len(v) == len &&
                  memcmp(json_object_get_string(v), payload, len) == 0,
              "string bytes", topic);
        break;
    default: {
        const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        check(strlen(t) == len && memcmp(t, payload, len) == 0, "JSON text", topic);
    }
    }
}

/* a and b hold the same fields with the same values (numbers by value:
 * JSON text does not keep 5.0 apart from 5). */
static bool same_state(json_object *a, json_object *b)
{
    if (json_object_object_length(a) != json_object_object_length(b))
        return false;
    json_object_object_foreach(a, k, va)
    {
        json_object *vb;
        if (!json_object_object_get_ex(b, k, &vb))
            return false;
        bool na =
            json_object_is_type(va, json_type_int) || json_object_is_type(va, json_type_double);
        bool nb =
            json_object_is_type(vb, json_type_int) || json_object_is_type(vb, json_type_double);
        if (na && nb ? json_object_get_double(va) != json_object_get_double(vb)
                     : !json_object_equal(va, vb))
            return false;
    }
    return true;
}

static json_object *parse_object(const char *payload, size_t len, const char *topic)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, payload, (int)len);
    check(o && json_tokener_get_parse_end(tok) == len && json_object_is_type(o, json_type_object),
          "not one JSON object", topic);
    json_tokener_free(tok);
    return o;
}

/* The Home Assistant sink's publications. */
static void check_ha(const char *topic, const char *payload, size_t len)
{
    size_t tl = strlen(topic);
    if (len == 0)
        return; /* clearing */
    if (strncmp(topic, "hb/", 3) == 0 && tl > 6 && strcmp(topic + tl - 6, "/state") == 0) {
        char dev[16];
        size_t il = tl - 6 - 3;
        check(il < sizeof(dev), "state topic's device", topic);
        memcpy(dev, topic + 3, il);
        dev[il] = '\0';
        json_object *got = parse_object(payload, len, topic);
        if (strcmp(dev, "br") != 0) {
            json_object *st = devmgr_state_new(dm, dev);
            check(st && same_state(got, st), "state topic differs from the state", topic);
            json_object_put(st);
        }
        json_object_put(got);
    } else if (strncmp(topic, "homeassistant/device/n/", 23) == 0) {
        json_object *got = parse_object(payload, len, topic);
        json_object *cmps = NULL;
        check(json_object_object_get_ex(got, "cmps", &cmps), "config without cmps", topic);
        json_object_object_foreach(cmps, k, c)
        {
            (void)k;
            check(json_object_object_get_ex(c, "p", NULL), "component without a platform", topic);
            check(json_object_object_length(c) == 1 ||
                      json_object_object_get_ex(c, "unique_id", NULL),
                  "component without a unique_id", topic);
        }
        json_object_put(got);
    }
}

static wb_status oracle(void *ud, const char *topic, const char *payload, size_t len, int qos,
                        bool retained)
{
    (void)ud, (void)qos, (void)retained;
    size_t tl = strlen(topic);
    check(tgate_check(topic, tl, TGATE_NAME) == TGATE_OK, "topic refused by the gate", topic);
    check(len == 0 || payload != NULL, "payload pointer", topic);
    check_ha(topic, payload, len);
    if (strncmp(topic, "/devices/", 9) != 0)
        return WB_OK;
    const char *id = topic + 9, *slash = strchr(id, '/');
    check(slash != NULL, "device topic shape", topic);
    char dev[16];
    size_t il = (size_t)(slash - id);
    check(il < sizeof(dev), "device id", topic);
    memcpy(dev, id, il);
    dev[il] = '\0';
    const char *rest = slash + 1;
    if (strcmp(rest, "meta") == 0) {
        json_object *m = json_tokener_parse(payload ? payload : "");
        check(json_object_is_type(m, json_type_object), "device meta", topic);
        json_object_put(m);
        return WB_OK;
    }
    if (strcmp(rest, "meta/error") == 0 || strcmp(rest, "meta/name") == 0)
        return WB_OK; /* meta/name: the legacy device title */
    check(strncmp(rest, "controls/", 9) == 0, "controls topic", topic);
    const char *ctl = rest + 9, *tail = strchr(ctl, '/');
    char name[MIRROR_FIELD_MAX + 1];
    size_t nl = tail ? (size_t)(tail - ctl) : strlen(ctl);
    check(nl <= MIRROR_FIELD_MAX, "control name length", topic);
    memcpy(name, ctl, nl);
    name[nl] = '\0';
    check(mirror_field_name_ok(name), "control name", topic);
    if (tail && strcmp(tail, "/meta/error") == 0) {
        check((len == 0) || (len == 1 && payload[0] == 'r') ||
                  (len == 7 && memcmp(payload, "offline", 7) == 0),
              "control error", topic);
        return WB_OK;
    }
    /* The legacy meta subtopics (bridge.wb_legacy_meta): copies of the
     * JSON meta's keys; meta/type one of the types below. */
    static const char *const legacy[] = {"/meta/type",     "/meta/readonly", "/meta/order",
                                         "/meta/min",      "/meta/max",      "/meta/units",
                                         "/meta/precision"};
    for (size_t i = 0; tail && i < sizeof(legacy) / sizeof(*legacy); i++) {
        if (strcmp(tail, legacy[i]) != 0)
            continue;
        check(len > 0, "legacy meta value", topic);
        if (i == 0)
            check((len == 6 && memcmp(payload, "switch", 6) == 0) ||
                      (len == 5 && memcmp(payload, "value", 5) == 0) ||
                      (len == 4 && memcmp(payload, "text", 4) == 0) ||
                      (len == 10 && memcmp(payload, "pushbutton", 10) == 0),
                  "legacy meta type", topic);
        return WB_OK;
    }
    if (tail) {
        check(strcmp(tail, "/meta") == 0, "control sub-topic", topic);
        char *copy = strndup(payload, len);
        json_object *m = json_tokener_parse(copy);
        const char *type = json_object_get_string(json_object_object_get(m, "type"));
        check(type && (strcmp(type, "switch") == 0 || strcmp(type, "value") == 0 ||
                       strcmp(type, "text") == 0 || strcmp(type, "pushbutton") == 0),
              "control meta type", topic);
        json_object_put(m);
        free(copy);
        return WB_OK;
    }
    if (strcmp(dev, cfg->bridge_device_id) == 0) {
        /* The bridge's own device (published at EV_LINK_UP): its only
         * value is the scenario control, "none" (no scenario manager). */
        check(strcmp(name, "scenario") == 0 && len == 4 && memcmp(payload, "none", 4) == 0,
              "bridge device value", topic);
        return WB_OK;
    }
    json_object *st = devmgr_state_new(dm, dev);
    check(st != NULL, "value of an unknown device", topic);
    json_object *v = NULL;
    check(json_object_object_get_ex(st, name, &v), "value of a field not in the state", topic);
    check_value(v, topic, payload, len);
    json_object_put(st);
    return WB_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        log_set_level(LOG_LVL_ERROR);
        struct cfg_errors errs = {0};
        if (cfg_parse("fuzz.yaml", yaml, strlen(yaml), &cfg, &errs) != WB_OK)
            abort();
    }
    struct state_store *store = NULL;
    struct store_config sc = {.backend = "memory"};
    if (store_open(&store, &sc, NULL, 0) != WB_OK)
        abort();
    struct mirror_publisher pub = {oracle, NULL, NULL};
    struct pf pf;
    pf_open_with(&pf, cfg, store, &pub, NULL, ha_sink_create(cfg, &pub, NULL), NULL, NULL);
    dm = pf.dm;
    pf_republish(&pf); /* connected: the Home Assistant sink publishes states */
    size_t i = 0;
    for (int k = 0; k < 32 && i + 3 <= size; k++) {
        const char *topic = topics[data[i] % N_TOPICS];
        size_t len = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
        i += 3;
        if (len > size - i)
            len = size - i;
        pf_feed_at(&pf, topic, (const char *)data + i, len, false, 1000 + k);
        i += len;
    }
    pf_republish(&pf); /* as after a connect */
    (void)pf_tick(&pf, INT64_MAX);
    /* The stored state is the served one, field for field (transient t aside). */
    static const char *const ids[] = {"z", "o"};
    for (size_t d = 0; d < 2; d++) {
        char key[16];
        snprintf(key, sizeof(key), "device:%s", ids[d]);
        json_object *served = devmgr_state_new(dm, ids[d]);
        if (d == 0)
            json_object_object_del(served, "t"); /* z.t is transient */
        json_object *kept = NULL;
        if (store_get(store, key, &kept) != WB_OK)
            kept = json_object_new_object();
        check(json_object_equal(served, kept), "stored state differs from the served one", key);
        json_object_put(kept);
        json_object_put(served);
    }
    pf_close(&pf);
    dm = NULL;
    store_close(store);
    return 0;
}

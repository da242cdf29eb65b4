/*
 * test_ha.c - the Home Assistant sink (src/mirror/ha.c, ha_discovery.c)
 * through the core's wiring (pipeline_fixture.h), against a publisher that
 * keeps what a broker would retain: the entity of every kind of field and
 * action, the state topic (odd keys and NULs included) and its interval,
 * availability, the
 * commands Home Assistant sends, the birth message's republish after its
 * delay, and what a reload, a restart or switching the sink off removes.
 * The end-to-end test with a real broker and a consumer that validates as
 * Home Assistant does is tests/integration/test_homeassistant.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mirror/ha_int.h"
#include "pipeline_fixture.h"

#define HA_ON                                                                                      \
    "homeassistant: {enabled: true, node_id: n1, base_topic: hb, republish_delay_ms: 500, "        \
    "state_interval_ms: 0}\n"

static const char *yaml_devices =
    "bridge: {device_id: br, mirror_min_interval_ms: 0}\n"
    "devices:\n"
    "  - id: tv\n"
    "    name: TV\n"
    "    type: television\n"
    "    state:\n"
    "      - {topic: relay/K1, field: power, type: bool}\n"
    "      - {topic: tv/vol, field: volume, type: int}\n"
    "      - topic: tv/watts\n"
    "        field: watts\n"
    "        type: float\n"
    "        wb: {units: W, title: {en: Power draw}}\n"
    "        homeassistant: {device_class: power, icon: 'mdi:flash'}\n"
    "      - {topic: tv/door, field: door, type: bool}\n"
    "      - {topic: tv/label, field: label, type: string}\n"
    "    availability: {topic: tv/availability}\n"
    "    actions:\n"
    "      power_on: {topic: cmd/tv/power, payload: '1', set: {power: true}}\n"
    "      power_off: {topic: cmd/tv/power, payload: '0', set: {power: false}}\n"
    "      set_volume:\n"
    "        topic: cmd/tv/volume\n"
    "        payload: '{level}'\n"
    "        params: {level: {type: int, min: 0, max: 100, required: true}}\n"
    "        set: {volume: '{level}'}\n"
    "      set_gain:\n"
    "        topic: cmd/tv/gain\n"
    "        payload: '{db}'\n"
    "        params: {db: {type: float, min: -10, max: 10, required: true}}\n"
    "      set_input:\n"
    "        topic: cmd/tv/input\n"
    "        payload: '{input}'\n"
    "        params: {input: {type: enum, values: [hdmi1, hdmi2], required: true}}\n"
    "      set_mute:\n"
    "        topic: cmd/tv/mute\n"
    "        payload: '{on}'\n"
    "        params: {on: {type: bool, required: true}}\n"
    "      say:\n"
    "        topic: cmd/tv/say\n"
    "        payload: '{text}'\n"
    "        params: {text: {type: string, max: 40}}\n"
    "      reboot:\n"
    "        topic: cmd/tv/reboot\n"
    "        homeassistant: {device_class: restart, entity_category: config}\n"
    "      two:\n"
    "        topic: cmd/tv/two\n"
    "        payload: '{a}{b}'\n"
    "        params: {a: {type: int}, b: {type: int}}\n"
    "  - id: sensor\n"
    "    state:\n"
    "      - topic: z2m/sensor\n"
    "        type: json\n"
    "  - id: lamp\n"
    "    state:\n"
    "      - {topic: lamp/state, field: on, type: bool}\n"
    "    actions:\n"
    "      blink: {topic: cmd/lamp/blink}\n"
    "scenarios:\n"
    "  - id: movie\n"
    "    name: Movie\n"
    "    devices: [tv]\n"
    "    startup: [{device: tv, action: power_on}]\n";

/* The same without the lamp and without tv's say and reboot. */
static const char *yaml_smaller =
    "bridge: {device_id: br, mirror_min_interval_ms: 0}\n" HA_ON "devices:\n"
    "  - id: tv\n"
    "    name: TV\n"
    "    state:\n"
    "      - {topic: relay/K1, field: power, type: bool}\n"
    "    availability: {topic: tv/availability}\n"
    "    actions:\n"
    "      power_on: {topic: cmd/tv/power, payload: '1', set: {power: true}}\n"
    "      power_off: {topic: cmd/tv/power, payload: '0', set: {power: false}}\n"
    "  - id: sensor\n"
    "    state:\n"
    "      - topic: z2m/sensor\n"
    "        type: json\n";

struct fixture {
    struct config *cfg;
    struct state_store *store;
    struct pf pf;
    json_object *broker; /* topic -> retained payload (a string) */
    json_object *memory; /* the sink's memory (what the store would hold) */
    unsigned configs;    /* config publications */
    char last_cmd[128];
    char last_payload[64];
    int commands;
};

static wb_status retain(void *ud, const char *topic, const char *payload, size_t len, int qos,
                        bool retained)
{
    struct fixture *f = ud;
    if (!retained)
        return WB_OK;
    if (strncmp(topic, "homeassistant/", 14) == 0) {
        assert_int_equal(qos, 1); /* configs: QoS 1, as Zigbee2MQTT */
        f->configs++;
    }
    if (len == 0)
        json_object_object_del(f->broker, topic);
    else
        json_object_object_add(f->broker, topic, json_object_new_string_len(payload, (int)len));
    return WB_OK;
}

static json_object *mem_load(void *ud)
{
    struct fixture *f = ud;
    return f->memory ? json_object_get(f->memory) : NULL;
}

static void mem_save(void *ud, json_object *v)
{
    struct fixture *f = ud;
    json_object_put(f->memory);
    f->memory = NULL;
    json_object_deep_copy(v, &f->memory, NULL);
}

static void on_cmd(void *ud, const struct sink_command *cmd)
{
    struct fixture *f = ud;
    f->commands++;
    snprintf(f->last_cmd, sizeof(f->last_cmd), "%s/%s", cmd->device_id, cmd->action);
    snprintf(f->last_payload, sizeof(f->last_payload), "%.*s", (int)cmd->len, cmd->payload);
}

static struct config *parse(const char *text)
{
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    if (cfg_parse("t.yaml", text, strlen(text), &cfg, &errs) != WB_OK) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.lines[i]);
        cfg_errors_free(&errs);
        return NULL;
    }
    return cfg;
}

static struct config *parse_with(const char *ha, const char *devices)
{
    /* The bridge: line first, then the homeassistant: block, then the rest. */
    const char *rest = strchr(devices, '\n') + 1;
    size_t n = strlen(devices) + strlen(ha) + 1;
    char *text = malloc(n);
    snprintf(text, n, "%.*s%s%s", (int)(rest - devices), devices, ha, rest);
    struct config *cfg = parse(text);
    free(text);
    return cfg;
}

static bool ha_republishing(const struct fixture *f)
{
    return ((const struct ha *)f->pf.extra)->republishing;
}

/* Ticks until both rounds (the mirror's and the sink's) are complete. */
static void finish(struct fixture *f)
{
    for (int i = 0; pf_republishing(&f->pf) || ha_republishing(f); i++) {
        assert_true(i < 100000);
        pf_tick(&f->pf, util_mono_ms());
    }
}

static void open_pipeline(struct fixture *f, const struct config *cfg)
{
    struct mirror_publisher pub = {retain, f, NULL};
    struct mirror_memory mem = {mem_load, mem_save, f};
    struct sink *ha = ha_sink_create(cfg, &pub, &mem);
    assert_non_null(ha);
    pf_open_with(&f->pf, cfg, f->store, &pub, NULL, ha, NULL, NULL);
    f->pf.on_command = on_cmd;
    f->pf.command_ud = f;
}

static void connect(struct fixture *f)
{
    pf_event(&f->pf, EV_LINK_UP);
    finish(f);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || !(f->cfg = parse_with(HA_ON, yaml_devices)))
        return -1;
    struct store_config sc = {.backend = "memory"};
    if (store_open(&f->store, &sc, NULL, 0) != WB_OK)
        return -1;
    f->broker = json_object_new_object();
    open_pipeline(f, f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pf_close(&f->pf);
    store_close(f->store);
    cfg_free(f->cfg);
    json_object_put(f->broker);
    json_object_put(f->memory);
    free(f);
    return 0;
}

static const char *topic(struct fixture *f, const char *t)
{
    json_object *v;
    return json_object_object_get_ex(f->broker, t, &v) ? json_object_get_string(v) : NULL;
}

/* The retained JSON of a topic, parsed (freed at the next call). */
static json_object *g_json;

static json_object *json_at(struct fixture *f, const char *t)
{
    json_object_put(g_json);
    const char *s = topic(f, t);
    g_json = s ? json_tokener_parse(s) : NULL;
    return g_json;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return v ? json_object_get_string(v) : NULL;
}

static json_object *component(struct fixture *f, const char *dev, const char *key)
{
    char t[256];
    snprintf(t, sizeof(t), "homeassistant/device/n1/%s/config", dev);
    return get(get(json_at(f, t), "cmps"), key);
}

static void msg(struct fixture *f, const char *t, const char *payload)
{
    pf_feed(&f->pf, t, payload, strlen(payload), false);
}

static void test_entities(void **state)
{
    struct fixture *f = *state;
    connect(f);
    json_object *root = json_at(f, "homeassistant/device/n1/tv/config");
    assert_non_null(root);
    assert_string_equal(
        json_object_get_string(json_object_array_get_idx(get(get(root, "dev"), "identifiers"), 0)),
        "n1_tv");
    assert_string_equal(str(get(root, "dev"), "name"), "TV");
    assert_string_equal(str(get(root, "dev"), "model"), "television");
    assert_string_equal(str(get(root, "dev"), "via_device"), "n1_br");
    assert_string_equal(str(get(root, "o"), "name"), "wb-mqtt-bridge");

    /* A bool with on/off actions: a switch; its actions get no entities. */
    json_object *c = component(f, "tv", "power");
    assert_string_equal(str(c, "p"), "switch");
    assert_string_equal(str(c, "unique_id"), "n1_tv_power");
    assert_string_equal(str(c, "command_topic"), "hb/tv/power/set");
    assert_string_equal(str(c, "state_topic"), "hb/tv/state");
    assert_string_equal(str(c, "value_template"), "{{ value_json.get('power') }}");
    assert_string_equal(str(c, "state_on"), "True");
    assert_string_equal(str(c, "payload_on"), "ON");
    json_object *av = get(c, "availability");
    assert_int_equal(json_object_array_length(av), 2);
    assert_string_equal(str(json_object_array_get_idx(av, 0), "topic"), "hb/br/availability");
    assert_string_equal(str(json_object_array_get_idx(av, 1), "topic"), "hb/tv/availability");
    assert_string_equal(str(c, "availability_mode"), "all");
    assert_null(component(f, "tv", "power_on"));
    assert_null(component(f, "tv", "power_off"));

    c = component(f, "tv", "volume");
    assert_string_equal(str(c, "p"), "sensor");
    assert_string_equal(str(c, "state_class"), "measurement");
    c = component(f, "tv", "watts");
    assert_string_equal(str(c, "p"), "sensor");
    assert_string_equal(str(c, "name"), "Power draw");
    assert_string_equal(str(c, "unit_of_measurement"), "W");
    assert_string_equal(str(c, "device_class"), "power");
    assert_string_equal(str(c, "icon"), "mdi:flash");
    c = component(f, "tv", "door");
    assert_string_equal(str(c, "p"), "binary_sensor");
    assert_string_equal(str(c, "payload_on"), "True");
    c = component(f, "tv", "label");
    assert_string_equal(str(c, "p"), "sensor");
    assert_null(get(c, "state_class"));

    c = component(f, "tv", "set_volume");
    assert_string_equal(str(c, "p"), "number");
    assert_string_equal(str(c, "name"), "Set volume");
    assert_int_equal(json_object_get_int(get(c, "min")), 0);
    assert_int_equal(json_object_get_int(get(c, "max")), 100);
    assert_int_equal(json_object_get_int(get(c, "step")), 1);
    assert_string_equal(str(c, "value_template"), "{{ value_json.get('volume') }}");
    assert_string_equal(str(c, "command_topic"), "hb/tv/set_volume/set");
    c = component(f, "tv", "set_gain");
    assert_string_equal(str(c, "p"), "number");
    assert_true(json_object_get_boolean(get(c, "optimistic")));
    c = component(f, "tv", "set_input");
    assert_string_equal(str(c, "p"), "select");
    assert_int_equal(json_object_array_length(get(c, "options")), 2);
    c = component(f, "tv", "set_mute");
    assert_string_equal(str(c, "p"), "switch");
    c = component(f, "tv", "say");
    assert_string_equal(str(c, "p"), "text");
    assert_int_equal(json_object_get_int(get(c, "max")), 40);
    c = component(f, "tv", "reboot");
    assert_string_equal(str(c, "p"), "button");
    assert_string_equal(str(c, "payload_press"), "PRESS");
    assert_string_equal(str(c, "device_class"), "restart");
    assert_string_equal(str(c, "entity_category"), "config");
    assert_null(component(f, "tv", "two")); /* several params: no entity */

    /* The bridge: the scenario select and the status sensor. */
    c = component(f, "br", "scenario");
    assert_string_equal(str(c, "p"), "select");
    assert_string_equal(str(c, "command_topic"), "hb/br/scenario/set");
    json_object *ops = get(c, "options");
    assert_int_equal(json_object_array_length(ops), 2);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(ops, 0)), "movie");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(ops, 1)), "none");
    assert_string_equal(str(component(f, "br", "scenario_status"), "p"), "sensor");
    assert_string_equal(topic(f, "hb/br/availability"), "online");
    assert_string_equal(str(json_at(f, "hb/br/state"), "scenario"), "none");

    /* A device with availability starts unknown: offline until it says so. */
    assert_string_equal(topic(f, "hb/tv/availability"), "offline");
    assert_string_equal(topic(f, "hb/lamp/availability"), "online");
    msg(f, "tv/availability", "online");
    assert_string_equal(topic(f, "hb/tv/availability"), "online");
}

static void test_state_topic(void **state)
{
    struct fixture *f = *state;
    connect(f);
    msg(f, "relay/K1", "1");
    msg(f, "tv/vol", "30");
    msg(f, "tv/watts", "12.5");
    json_object *st = json_at(f, "hb/tv/state");
    assert_non_null(st);
    assert_true(json_object_get_boolean(get(st, "power")));
    assert_int_equal(json_object_get_int(get(st, "volume")), 30);
    assert_true(json_object_get_double(get(st, "watts")) == 12.5);

    /* Odd keys and a NUL in a value: still one valid JSON object. A field
     * whose name would break the template gets no entity, only its value. */
    static const char z2m[] = "{\"a\\\"b\": 1, \"x'y\": true, \"tz\": \"v\\u0000w\", "
                              "\"temperature\": 21.5, \"nested\": {\"k\": [1, 2]}}";
    pf_feed(&f->pf, "z2m/sensor", z2m, sizeof(z2m) - 1, false);
    st = json_at(f, "hb/sensor/state");
    assert_non_null(st);
    assert_true(json_object_get_double(get(st, "temperature")) == 21.5);
    assert_int_equal(json_object_get_int(get(st, "a\"b")), 1);
    json_object *v = get(st, "x'y");
    assert_non_null(v);
    assert_true(json_object_get_boolean(v));
    v = get(st, "tz");
    assert_non_null(v);
    assert_int_equal(json_object_get_string_len(v), 3);
    assert_memory_equal(json_object_get_string(v), "v\0w", 3);
    /* A new field of a merged object: the config comes again with it. */
    json_object *c = component(f, "sensor", "temperature");
    assert_non_null(c);
    assert_string_equal(str(c, "p"), "sensor");
    assert_string_equal(str(c, "state_class"), "measurement");
    /* Objects are in the state only; a quote in a name: no entity. */
    json_object *cmps = get(json_at(f, "homeassistant/device/n1/sensor/config"), "cmps");
    assert_int_equal(json_object_object_length(cmps), 2);
    assert_non_null(get(cmps, "temperature"));
    assert_string_equal(str(get(cmps, "tz"), "p"), "sensor");
}

static void test_state_interval(void **state)
{
    struct fixture *f = *state;
    pf_close(&f->pf);
    struct config *cfg = parse_with("homeassistant: {enabled: true, node_id: n1, base_topic: hb, "
                                    "state_interval_ms: 1000}\n",
                                    yaml_devices);
    assert_non_null(cfg);
    open_pipeline(f, cfg);
    connect(f);
    pf_feed_at(&f->pf, "tv/vol", "1", 1, false, 5000);
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/tv/state"), "volume")), 1);
    pf_feed_at(&f->pf, "tv/vol", "2", 1, false, 5100);
    pf_feed_at(&f->pf, "tv/vol", "3", 1, false, 5200);
    /* Held for the interval: the broker still has 1, and the sink asks for
     * a tick when it ends. */
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/tv/state"), "volume")), 1);
    struct sink *ha = f->pf.extra;
    assert_int_equal(ha->ops->tick(ha, &f->pf.sinks.view, 5500, true), 6000);
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/tv/state"), "volume")), 1);
    ha->ops->tick(ha, &f->pf.sinks.view, 6000, true);
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/tv/state"), "volume")), 3);
    assert_int_equal(ha->ops->tick(ha, &f->pf.sinks.view, 6001, true), INT64_MAX);
    /* Another device is not held by this one's interval. */
    pf_feed_at(&f->pf, "lamp/state", "1", 1, false, 6100);
    assert_true(json_object_get_boolean(get(json_at(f, "hb/lamp/state"), "on")));
    pf_feed_at(&f->pf, "tv/vol", "4", 1, false, 7100); /* the interval is over: at once */
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/tv/state"), "volume")), 4);
    pf_feed_at(&f->pf, "tv/vol", "5", 1, false, 7200);
    pf_event(&f->pf, EV_STOPPING); /* a stop publishes what waits */
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/tv/state"), "volume")), 5);
    assert_string_equal(topic(f, "hb/br/availability"), "offline");
    pf_close(&f->pf);
    cfg_free(cfg);
    open_pipeline(f, f->cfg);
}

/* A device whose messages keep adding keys: its config goes out again at
 * most once a second, with every key that came meanwhile. */
static void test_new_fields_rate(void **state)
{
    struct fixture *f = *state;
    connect(f);
    struct sink *ha = f->pf.extra;
    pf_feed_at(&f->pf, "z2m/sensor", "{\"a\": 1}", 8, false, 5000);
    assert_non_null(component(f, "sensor", "a"));
    unsigned n = f->configs;
    pf_feed_at(&f->pf, "z2m/sensor", "{\"b\": 2}", 8, false, 5100);
    pf_feed_at(&f->pf, "z2m/sensor", "{\"c\": 3}", 8, false, 5200);
    assert_int_equal(f->configs, n); /* not yet */
    assert_null(component(f, "sensor", "b"));
    assert_int_equal(json_object_get_int(get(json_at(f, "hb/sensor/state"), "c")), 3);
    assert_int_equal(ha->ops->tick(ha, &f->pf.sinks.view, 5500, true), 6000);
    ha->ops->tick(ha, &f->pf.sinks.view, 6000, true);
    assert_int_equal(f->configs, n + 1); /* once, with both */
    assert_non_null(component(f, "sensor", "b"));
    assert_non_null(component(f, "sensor", "c"));
    assert_int_equal(ha->ops->tick(ha, &f->pf.sinks.view, 6001, true), INT64_MAX);
}

static void test_commands(void **state)
{
    struct fixture *f = *state;
    connect(f);
    msg(f, "hb/tv/power/set", "ON");
    assert_string_equal(f->last_cmd, "tv/power_on");
    msg(f, "hb/tv/power/set", "OFF");
    assert_string_equal(f->last_cmd, "tv/power_off");
    int n = f->commands;
    msg(f, "hb/tv/power/set", "maybe");
    assert_int_equal(f->commands, n); /* refused with a warning */
    msg(f, "hb/tv/set_volume/set", "30");
    assert_string_equal(f->last_cmd, "tv/set_volume");
    assert_string_equal(f->last_payload, "30");
    msg(f, "hb/tv/set_input/set", "hdmi2");
    assert_string_equal(f->last_cmd, "tv/set_input");
    assert_string_equal(f->last_payload, "hdmi2");
    msg(f, "hb/tv/reboot/set", "PRESS");
    assert_string_equal(f->last_cmd, "tv/reboot");
    msg(f, "hb/br/scenario/set", "movie");
    assert_string_equal(f->last_cmd, "br/scenario");
    assert_string_equal(f->last_payload, "movie");
    n = f->commands;
    uint64_t own = f->pf.own;
    msg(f, "hb/nosuch/power/set", "ON");
    msg(f, "hb/tv/nosuch/set", "ON");
    msg(f, "hb/tv/state", "{}");                       /* our own state seen again */
    msg(f, "homeassistant/device/n1/tv/config", "{}"); /* and our own config */
    assert_int_equal(f->commands, n);
    assert_int_equal(f->pf.own, own + 4);
    msg(f, "homeassistant/device/other/tv/config", "{}"); /* another node's: not ours */
    assert_int_equal(f->pf.own, own + 4);
    /* Retained commands never run. */
    pf_feed(&f->pf, "hb/tv/set_volume/set", "5", 1, true);
    assert_int_equal(f->commands, n);
    assert_int_equal(f->pf.retained_ignored, 1);
}

static void test_birth_republishes(void **state)
{
    struct fixture *f = *state;
    connect(f);
    unsigned before = f->configs;
    /* The configs are gone from the broker (Home Assistant restarted with
     * a broker that lost them); its birth brings them back after the delay. */
    json_object_object_del(f->broker, "homeassistant/device/n1/tv/config");
    int64_t now = util_mono_ms();
    msg(f, "homeassistant/status", "online");
    int64_t next = pf_tick(&f->pf, now);
    assert_true(next >= now + 400 && next <= now + 600);
    assert_int_equal(f->configs, before);
    assert_null(topic(f, "homeassistant/device/n1/tv/config"));
    pf_tick(&f->pf, now + 1000);
    finish(f);
    assert_int_equal(f->configs, before + 4); /* the bridge and three devices */
    assert_non_null(topic(f, "homeassistant/device/n1/tv/config"));
    /* "offline" does nothing. */
    msg(f, "homeassistant/status", "offline");
    assert_int_equal(pf_tick(&f->pf, now + 2000), INT64_MAX);
}

static void test_reload_removes(void **state)
{
    struct fixture *f = *state;
    connect(f);
    msg(f, "lamp/state", "1");
    assert_non_null(topic(f, "homeassistant/device/n1/lamp/config"));
    assert_non_null(topic(f, "hb/lamp/state"));
    struct config *small = parse(yaml_smaller);
    assert_non_null(small);
    pf_reload(&f->pf, small);
    finish(f);
    /* The lamp is gone: config, state and availability cleared. */
    assert_null(topic(f, "homeassistant/device/n1/lamp/config"));
    assert_null(topic(f, "hb/lamp/state"));
    assert_null(topic(f, "hb/lamp/availability"));
    /* tv's removed entities come once as platform-only stubs. */
    json_object *c = component(f, "tv", "reboot");
    assert_non_null(c);
    assert_string_equal(str(c, "p"), "button");
    assert_int_equal(json_object_object_length(c), 1);
    assert_string_equal(str(component(f, "tv", "power"), "p"), "switch");
    /* The memory now has what is announced: a second round sends no stubs. */
    pf_event(&f->pf, EV_LINK_DOWN);
    connect(f);
    assert_null(component(f, "tv", "reboot"));
    pf_close(&f->pf);
    memset(&f->pf, 0, sizeof(f->pf));
    cfg_free(small);
    open_pipeline(f, f->cfg); /* teardown closes it */
}

static void test_restart_removes(void **state)
{
    struct fixture *f = *state;
    connect(f);
    assert_non_null(topic(f, "homeassistant/device/n1/lamp/config"));
    assert_non_null(f->memory);
    /* A new process with a smaller config and the same store. */
    pf_close(&f->pf);
    struct config *small = parse(yaml_smaller);
    assert_non_null(small);
    open_pipeline(f, small);
    connect(f);
    assert_null(topic(f, "homeassistant/device/n1/lamp/config"));
    assert_non_null(topic(f, "homeassistant/device/n1/tv/config"));
    assert_string_equal(str(component(f, "tv", "say"), "p"), "text"); /* a stub */
    pf_close(&f->pf);
    cfg_free(small);

    /* Switched off: everything announced is cleared, and forgotten. */
    struct config *off = parse(yaml_devices);
    assert_non_null(off);
    assert_false(off->homeassistant.enabled);
    open_pipeline(f, off);
    connect(f);
    assert_null(topic(f, "homeassistant/device/n1/tv/config"));
    assert_null(topic(f, "homeassistant/device/n1/br/config"));
    assert_null(topic(f, "hb/tv/state"));
    json_object *devs = get(f->memory, "devices");
    assert_non_null(devs);
    assert_int_equal(json_object_object_length(devs), 0);
    /* Nothing subscribed, nothing taken as input while off. */
    size_t n;
    pf_subscriptions(&f->pf, &n);
    uint64_t own = f->pf.own;
    msg(f, "hb/tv/power/set", "ON");
    assert_int_equal(f->pf.own, own);
    pf_close(&f->pf);
    cfg_free(off);
    open_pipeline(f, f->cfg);
}

static void test_node_change_clears_old(void **state)
{
    struct fixture *f = *state;
    connect(f);
    pf_close(&f->pf);
    struct config *moved =
        parse_with("homeassistant: {enabled: true, node_id: n2, base_topic: hb2}\n", yaml_devices);
    assert_non_null(moved);
    open_pipeline(f, moved);
    connect(f);
    assert_null(topic(f, "homeassistant/device/n1/tv/config"));
    assert_null(topic(f, "hb/tv/state"));
    assert_non_null(topic(f, "homeassistant/device/n2/tv/config"));
    assert_null(get(get(json_at(f, "homeassistant/device/n2/tv/config"), "cmps"), "nosuch"));
    pf_close(&f->pf);
    cfg_free(moved);
    open_pipeline(f, f->cfg);
}

static void test_config_check(void **state)
{
    (void)state;
    cfg_add_check(ha_check_config);
    const char *bad = "homeassistant: {enabled: true, base_topic: hb}\n"
                      "devices:\n"
                      "  - id: d\n"
                      "    state:\n"
                      "      - {topic: hb/d/state, field: x, type: int}\n"
                      "    actions:\n"
                      "      a: {topic: hb/x/a/set}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_not_equal(cfg_parse("t.yaml", bad, strlen(bad), &cfg, &errs), WB_OK);
    assert_int_equal(errs.n, 2);
    assert_non_null(strstr(errs.lines[0], "t.yaml:5:"));
    assert_non_null(strstr(errs.lines[0], "Home Assistant"));
    assert_non_null(strstr(errs.lines[1], "t.yaml:7:"));
    cfg_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_entities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_fields_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_birth_republishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_change_clears_old, setup, teardown),
        cmocka_unit_test(test_config_check),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_object_put(g_json);
    return rc;
}

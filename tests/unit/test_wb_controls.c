/*
 * test_wb_controls.c - the Wiren Board mirror's controls (src/mirror/
 * wb_controls.c) through the core's wiring (pipeline_fixture.h), against a
 * publisher that keeps what a broker would retain (an empty retained
 * payload deletes the topic): the control kinds and their metas, the
 * writable switch's /on, "r" for an offline device, "w" after a refused
 * write, and what a reload or a restart with a smaller config removed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pipeline_fixture.h"

static const char *yaml_full =
    "bridge: {device_id: br, mirror_min_interval_ms: 0}\n"
    "devices:\n"
    "  - id: tv\n"
    "    name: TV\n"
    "    state:\n"
    "      - {topic: relay/K1, field: power, type: bool}\n"
    "      - {topic: tv/vol, field: volume, type: int}\n"
    "      - {topic: tv/watts, field: watts, type: float}\n"
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
    "        params: {text: {type: string, default: hello}}\n"
    "  - id: lamp\n"
    "    state:\n"
    "      - {topic: lamp/state, field: on, type: bool}\n"
    "    actions:\n"
    "      blink: {topic: cmd/lamp/blink}\n"
    "  - id: heater\n"
    "    state:\n"
    "      - topic: heater/t\n"
    "        field: temp\n"
    "        type: float\n"
    "        wb: {type: temperature, units: deg C, min: -40, max: 125, precision: 0.1, order: 7,\n"
    "             title: {en: Temperature, ru: Температура}}\n"
    "      - topic: heater/mode\n"
    "        field: mode\n"
    "        type: string\n"
    "        wb: {enum: {eco: {en: Eco, ru: Эко}, comfort: {en: Comfort}}, hidden: true}\n"
    "      - topic: heater/relay\n"
    "        field: relay\n"
    "        type: bool\n"
    "        switch: {on: start, off: stop}\n"
    "      - topic: heater/lock\n"
    "        field: lock\n"
    "        type: bool\n"
    "        wb: {readonly: true}\n"
    "    actions:\n"
    "      start: {topic: cmd/heater, payload: '1'}\n"
    "      stop: {topic: cmd/heater, payload: '0'}\n"
    "      lock_on: {topic: cmd/heater/lock, payload: '1', set: {lock: true}}\n"
    "      lock_off: {topic: cmd/heater/lock, payload: '0', set: {lock: false}}\n"
    "scenarios:\n"
    "  - id: movie\n"
    "    name: Movie night\n"
    "    devices: [tv]\n"
    "    startup: [{device: tv, action: power_on}]\n";

/* The same flat after the lamp went and the tv lost set_gain and say. */
static const char *yaml_small =
    "bridge: {device_id: br, mirror_min_interval_ms: 0}\n"
    "devices:\n"
    "  - id: tv\n"
    "    name: TV\n"
    "    state:\n"
    "      - {topic: relay/K1, field: power, type: bool}\n"
    "      - {topic: tv/vol, field: volume, type: int}\n"
    "      - {topic: tv/watts, field: watts, type: float}\n"
    "    availability: {topic: tv/availability}\n"
    "    actions:\n"
    "      power_on: {topic: cmd/tv/power, payload: '1', set: {power: true}}\n"
    "      power_off: {topic: cmd/tv/power, payload: '0', set: {power: false}}\n"
    "      set_volume:\n"
    "        topic: cmd/tv/volume\n"
    "        payload: '{level}'\n"
    "        params: {level: {type: int, min: 0, max: 100, required: true}}\n"
    "        set: {volume: '{level}'}\n"
    "      set_input:\n"
    "        topic: cmd/tv/input\n"
    "        payload: '{input}'\n"
    "        params: {input: {type: enum, values: [hdmi1, hdmi2], required: true}}\n"
    "      set_mute:\n"
    "        topic: cmd/tv/mute\n"
    "        payload: '{on}'\n"
    "        params: {on: {type: bool, required: true}}\n";

struct fixture {
    struct config *cfg, *cfg2;
    struct state_store *store;
    struct pf pf;
    json_object *broker; /* topic -> retained payload (a string) */
    json_object *memory; /* the mirror's memory (what the store would hold) */
    char last_cmd[128];
    char last_payload[64];
    int commands;
};

static wb_status retain(void *ud, const char *topic, const char *payload, size_t len, int qos,
                        bool retained)
{
    (void)qos;
    struct fixture *f = ud;
    if (!retained)
        return WB_OK;
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

/* A fresh process's pipeline, its mirror remembering in f->memory (as
 * app.c wires it to the store). */
static void open_pipeline(struct fixture *f, const struct config *cfg)
{
    struct mirror_publisher pub = {retain, f, NULL};
    struct mirror_memory mem = {mem_load, mem_save, f};
    pf_open_mem(&f->pf, cfg, f->store, &pub, &mem, NULL, NULL);
    f->pf.on_command = on_cmd;
    f->pf.command_ud = f;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->cfg = parse(yaml_full);
    f->cfg2 = parse(yaml_small);
    if (!f || !f->cfg || !f->cfg2)
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
    cfg_free(f->cfg2);
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

/* The retained meta of a control, parsed (freed at the next call). */
static json_object *g_meta;

static json_object *meta(struct fixture *f, const char *dev, const char *ctl)
{
    char t[256];
    snprintf(t, sizeof(t), "/devices/%s/controls/%s/meta", dev, ctl);
    json_object_put(g_meta);
    const char *s = topic(f, t);
    g_meta = s ? json_tokener_parse(s) : NULL;
    return g_meta;
}

static const char *mstr(json_object *m, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(m, key, &v) ? json_object_get_string(v) : NULL;
}

static void msg(struct fixture *f, const char *t, const char *payload)
{
    pf_feed(&f->pf, t, payload, strlen(payload), false);
}

static void test_control_kinds(void **state)
{
    struct fixture *f = *state;
    msg(f, "relay/K1", "0");
    msg(f, "tv/vol", "20");
    pf_republish(&f->pf);

    /* A field switched by power_on/power_off (derived from their set). */
    json_object *m = meta(f, "tv", "power");
    assert_non_null(m);
    assert_string_equal(mstr(m, "type"), "switch");
    assert_string_equal(mstr(m, "readonly"), "false");
    assert_string_equal(topic(f, "/devices/tv/controls/power"), "0");
    /* A field nothing writes stays read-only. */
    m = meta(f, "tv", "volume");
    assert_string_equal(mstr(m, "type"), "value");
    assert_string_equal(mstr(m, "readonly"), "true");
    /* One int param with min and max: a range showing the field it sets. */
    m = meta(f, "tv", "set_volume");
    assert_string_equal(mstr(m, "type"), "range");
    assert_string_equal(mstr(m, "readonly"), "false");
    assert_string_equal(mstr(m, "min"), "0");
    assert_string_equal(mstr(m, "max"), "100");
    assert_string_equal(topic(f, "/devices/tv/controls/set_volume"), "20");
    /* A float param: a value; no field: its min until one is sent. */
    m = meta(f, "tv", "set_gain");
    assert_string_equal(mstr(m, "type"), "value");
    assert_string_equal(topic(f, "/devices/tv/controls/set_gain"), "-10");
    /* An enum: a text with the values as its enum, the first as value. */
    m = meta(f, "tv", "set_input");
    assert_string_equal(mstr(m, "type"), "text");
    json_object *e = json_object_object_get(m, "enum");
    assert_non_null(json_object_object_get(e, "hdmi1"));
    assert_non_null(json_object_object_get(e, "hdmi2"));
    assert_string_equal(topic(f, "/devices/tv/controls/set_input"), "hdmi1");
    /* A bool param: a writable switch; a string with a default: a text. */
    assert_string_equal(mstr(meta(f, "tv", "set_mute"), "type"), "switch");
    assert_string_equal(topic(f, "/devices/tv/controls/set_mute"), "0");
    assert_string_equal(mstr(meta(f, "tv", "say"), "type"), "text");
    assert_string_equal(topic(f, "/devices/tv/controls/say"), "hello");
    /* No params: a pushbutton. */
    assert_string_equal(mstr(meta(f, "tv", "power_on"), "type"), "pushbutton");
    assert_string_equal(mstr(meta(f, "lamp", "blink"), "type"), "pushbutton");
    /* Legacy subtopics beside the JSON meta (bridge.wb_legacy_meta). */
    assert_true(f->cfg->wb_legacy_meta); /* the default */
    {
        assert_string_equal(topic(f, "/devices/tv/controls/set_volume/meta/type"), "range");
        assert_string_equal(topic(f, "/devices/tv/controls/set_volume/meta/readonly"), "0");
        assert_string_equal(topic(f, "/devices/tv/controls/set_volume/meta/max"), "100");
        assert_string_equal(topic(f, "/devices/tv/controls/volume/meta/readonly"), "1");
        assert_string_equal(topic(f, "/devices/tv/meta/name"), "TV");
    }
    /* The scenario control: a choice of the ids and none. */
    m = meta(f, "br", "scenario");
    assert_string_equal(mstr(m, "type"), "text");
    assert_string_equal(mstr(m, "readonly"), "false");
    e = json_object_object_get(m, "enum");
    assert_string_equal(mstr(json_object_object_get(e, "movie"), "en"), "Movie night");
    assert_non_null(json_object_object_get(e, "none"));
    assert_string_equal(topic(f, "/devices/br/controls/scenario"), "none");

    /* The followed field moves the range's value. */
    msg(f, "tv/vol", "35");
    assert_string_equal(topic(f, "/devices/tv/controls/set_volume"), "35");
}

/* The wb: block of a field and an explicit switch: {on, off}. */
static void test_wb_meta(void **state)
{
    struct fixture *f = *state;
    msg(f, "heater/t", "21.5");
    msg(f, "heater/mode", "eco");
    msg(f, "heater/relay", "1");
    msg(f, "heater/lock", "0");
    pf_republish(&f->pf);
    json_object *m = meta(f, "heater", "temp");
    assert_string_equal(mstr(m, "type"), "temperature");
    assert_string_equal(mstr(m, "units"), "deg C");
    assert_string_equal(mstr(m, "min"), "-40");
    assert_string_equal(mstr(m, "max"), "125");
    assert_string_equal(mstr(m, "precision"), "0.1");
    assert_string_equal(mstr(m, "order"), "7");
    assert_string_equal(mstr(m, "readonly"), "true");
    json_object *t = json_object_object_get(m, "title");
    assert_string_equal(mstr(t, "en"), "Temperature");
    assert_string_equal(mstr(t, "ru"), "Температура");
    assert_string_equal(topic(f, "/devices/heater/controls/temp/meta/units"), "deg C");
    assert_string_equal(topic(f, "/devices/heater/controls/temp/meta/precision"), "0.1");
    m = meta(f, "heater", "mode");
    assert_string_equal(mstr(m, "type"), "text");
    assert_string_equal(mstr(m, "hidden"), "true");
    json_object *e = json_object_object_get(m, "enum");
    assert_string_equal(mstr(json_object_object_get(e, "eco"), "ru"), "Эко");
    assert_string_equal(mstr(json_object_object_get(e, "comfort"), "en"), "Comfort");
    /* switch: {on: start, off: stop} makes relay writable. */
    m = meta(f, "heater", "relay");
    assert_string_equal(mstr(m, "type"), "switch");
    assert_string_equal(mstr(m, "readonly"), "false");
    msg(f, "/devices/heater/controls/relay/on", "0");
    assert_string_equal(f->last_cmd, "heater/stop");
    /* wb.readonly: true wins over the derived lock_on/lock_off switch. */
    bool before_found = false;
    m = meta(f, "heater", "lock");
    assert_string_equal(mstr(m, "readonly"), "true");
    size_t n;
    const char *const *subs = pf_subscriptions(&f->pf, &n);
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(subs[i], "/devices/heater/controls/lock/on");
        if (strcmp(subs[i], "/devices/heater/controls/relay/on") == 0)
            before_found = true;
    }
    assert_true(before_found);
    /* Written anyway: not turned into lock_on (the core refuses the
     * unknown action "lock"). */
    msg(f, "/devices/heater/controls/lock/on", "1");
    assert_string_equal(f->last_cmd, "heater/lock");
}

static void test_switch_input(void **state)
{
    struct fixture *f = *state;
    pf_republish(&f->pf);
    size_t n;
    const char *const *subs = pf_subscriptions(&f->pf, &n);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= strcmp(subs[i], "/devices/tv/controls/power/on") == 0;
    assert_true(found);

    msg(f, "/devices/tv/controls/power/on", "1");
    assert_int_equal(f->commands, 1);
    assert_string_equal(f->last_cmd, "tv/power_on");
    msg(f, "/devices/tv/controls/power/on", " 0\n");
    assert_string_equal(f->last_cmd, "tv/power_off");
    msg(f, "/devices/tv/controls/power/on", "true");
    assert_string_equal(f->last_cmd, "tv/power_on");
    /* Anything else: no command, and the control shows the failed write. */
    msg(f, "/devices/tv/controls/power/on", "maybe");
    assert_int_equal(f->commands, 3);
    assert_string_equal(topic(f, "/devices/tv/controls/power/meta/error"), "w");
    /* Retained: never acted on. */
    pf_feed(&f->pf, "/devices/tv/controls/power/on", "1", 1, true);
    assert_int_equal(f->commands, 3);
    /* A one-param action's /on carries the value. */
    msg(f, "/devices/tv/controls/set_volume/on", "42");
    assert_string_equal(f->last_cmd, "tv/set_volume");
    assert_string_equal(f->last_payload, "42");
}

static void command(struct fixture *f, const char *action, enum ev_verdict v, const char *params)
{
    struct event ev = {.kind = EV_COMMAND, .now_ms = util_mono_ms()};
    ev.u.command = (struct ev_command){.dev = cfg_find_device(f->cfg, "tv"),
                                       .device_id = "tv",
                                       .action = action,
                                       .params = params,
                                       .verdict = v};
    sinks_emit(&f->pf.sinks, &ev);
}

static void test_write_errors(void **state)
{
    struct fixture *f = *state;
    msg(f, "relay/K1", "0");
    pf_republish(&f->pf);
    command(f, "power_on", EV_CMD_REFUSED, NULL);
    assert_string_equal(topic(f, "/devices/tv/controls/power_on/meta/error"), "w");
    assert_string_equal(topic(f, "/devices/tv/controls/power/meta/error"), "w");
    /* A republish keeps them. */
    json_object_object_del(f->broker, "/devices/tv/controls/power/meta/error");
    pf_republish(&f->pf);
    assert_string_equal(topic(f, "/devices/tv/controls/power/meta/error"), "w");
    command(f, "power_off", EV_CMD_SENT, NULL);
    assert_null(topic(f, "/devices/tv/controls/power/meta/error")); /* "" deletes it */
    assert_string_equal(topic(f, "/devices/tv/controls/power_on/meta/error"), "w");
    command(f, "power_on", EV_CMD_SENT, NULL);
    assert_null(topic(f, "/devices/tv/controls/power_on/meta/error")); /* "" deletes it */
    /* A value sent through a param no field follows becomes the value. */
    command(f, "set_gain", EV_CMD_SENT, "{\"db\":2.5}");
    assert_string_equal(topic(f, "/devices/tv/controls/set_gain"), "2.5");
    pf_republish(&f->pf);
    assert_string_equal(topic(f, "/devices/tv/controls/set_gain"), "2.5");
}

static void test_offline_marks_every_control(void **state)
{
    struct fixture *f = *state;
    msg(f, "relay/K1", "1");
    msg(f, "tv/vol", "20");
    msg(f, "tv/availability", "online");
    pf_republish(&f->pf);
    assert_null(topic(f, "/devices/tv/controls/power/meta/error"));
    msg(f, "tv/availability", "offline");
    assert_string_equal(topic(f, "/devices/tv/controls/power/meta/error"), "r");
    assert_string_equal(topic(f, "/devices/tv/controls/volume/meta/error"), "r");
    assert_string_equal(topic(f, "/devices/tv/controls/set_volume/meta/error"), "r");
    assert_string_equal(topic(f, "/devices/tv/controls/power_on/meta/error"), "r");
    assert_string_equal(topic(f, "/devices/tv/controls/power"), "1"); /* the last value stays */
    assert_null(topic(f, "/devices/lamp/controls/on/meta/error"));    /* another device */
    /* Both: offline and a failed write. */
    command(f, "power_on", EV_CMD_REFUSED, NULL);
    assert_string_equal(topic(f, "/devices/tv/controls/power/meta/error"), "rw");
    /* A republish while offline shows it again. */
    json_object_object_del(f->broker, "/devices/tv/controls/volume/meta/error");
    pf_republish(&f->pf);
    assert_string_equal(topic(f, "/devices/tv/controls/volume/meta/error"), "r");
    msg(f, "tv/availability", "online");
    assert_null(topic(f, "/devices/tv/controls/volume/meta/error")); /* "" deletes it */
    assert_string_equal(topic(f, "/devices/tv/controls/power/meta/error"), "w");
    assert_null(topic(f, "/devices/tv/controls/set_volume/meta/error")); /* "" deletes it */
}

static bool any_topic_of(struct fixture *f, const char *prefix)
{
    json_object_object_foreach(f->broker, k, v)
    {
        (void)v;
        if (strncmp(k, prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
}

static void test_reload_removes(void **state)
{
    struct fixture *f = *state;
    msg(f, "lamp/state", "1");
    msg(f, "relay/K1", "1");
    pf_republish(&f->pf);
    assert_true(any_topic_of(f, "/devices/lamp/"));
    assert_non_null(topic(f, "/devices/tv/controls/set_gain/meta"));
    pf_reload(&f->pf, f->cfg2);
    pf_republish_finish(&f->pf);
    assert_false(any_topic_of(f, "/devices/lamp/"));
    assert_false(any_topic_of(f, "/devices/tv/controls/set_gain"));
    assert_false(any_topic_of(f, "/devices/tv/controls/say"));
    assert_non_null(topic(f, "/devices/tv/controls/set_volume/meta"));
    assert_string_equal(topic(f, "/devices/tv/controls/power"), "1");
    pf_tick(&f->pf, util_mono_ms()); /* the memory is saved from a tick */
    assert_non_null(f->memory);
    assert_null(json_object_object_get(f->memory, "lamp"));
}

static void test_restart_removes(void **state)
{
    struct fixture *f = *state;
    msg(f, "lamp/state", "1");
    msg(f, "relay/K1", "1");
    pf_republish(&f->pf);
    pf_event(&f->pf, EV_STOPPING); /* saves the memory */
    assert_non_null(f->memory);
    assert_string_equal(json_object_get_string(json_object_object_get(f->memory, "lamp")),
                        "on/blink");
    pf_close(&f->pf);
    /* A restart with the smaller config: the broker kept everything. */
    json_object *kept = NULL;
    json_object_deep_copy(f->broker, &kept, NULL);
    open_pipeline(f, f->cfg2);
    pf_republish(&f->pf);
    assert_false(any_topic_of(f, "/devices/lamp/"));
    assert_false(any_topic_of(f, "/devices/tv/controls/set_gain"));
    assert_false(any_topic_of(f, "/devices/tv/controls/say"));
    assert_non_null(topic(f, "/devices/tv/controls/set_volume/meta"));
    assert_non_null(topic(f, "/devices/tv/controls/power/meta"));
    /* The same config again: nothing is cleared, nothing is rewritten. */
    pf_event(&f->pf, EV_STOPPING);
    json_object *mem1 = json_object_get(f->memory);
    pf_close(&f->pf);
    size_t before = (size_t)json_object_object_length(f->broker);
    open_pipeline(f, f->cfg2);
    pf_republish(&f->pf);
    pf_event(&f->pf, EV_STOPPING);
    assert_int_equal(json_object_object_length(f->broker), before);
    assert_ptr_equal(f->memory, mem1); /* not saved again */
    json_object_put(mem1);
    json_object_put(kept);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wb_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_marks_every_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_removes, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_object_put(g_meta);
    return rc;
}

/*
 * test_scenmgr.c - dispatch and the scenario manager on the memory store
 * (through the store sink: command_logs, scenario:last) with a recording
 * publisher that can be made to fail (broker away), for the commands and
 * the mirror sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/api_rows.h"
#include "pipeline_fixture.h"
#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/dispatch.h"
#include "wbmb/scenmgr.h"
#include "wbmb/state_store.h"
#include "wbmb/util.h"

static const char *yaml = "bridge: {device_id: br}\n"
                          "devices:\n"
                          "  - id: tv\n"
                          "    actions:\n"
                          "      on: {topic: cmd/tv, payload: '1', set: {power: true}}\n"
                          "      off: {topic: cmd/tv, payload: '0', set: {power: false}}\n"
                          "  - id: amp\n"
                          "    actions:\n"
                          "      on: {topic: cmd/amp, payload: '1', set: {power: true}}\n"
                          "      off: {topic: cmd/amp, payload: '0', set: {power: false}}\n"
                          "      vol:\n"
                          "        topic: cmd/amp/vol\n"
                          "        payload: '{v}'\n"
                          "        params: {v: {type: int, min: 0, max: 10, required: true}}\n"
                          "        set: {vol: '{v}'}\n"
                          "scenarios:\n"
                          "  - id: a\n"
                          "    devices: [tv, amp]\n"
                          "    startup:\n"
                          "      - {device: tv, action: 'on'}\n"
                          "      - {device: amp, action: 'on', delay_after_ms: 50}\n"
                          "      - {device: amp, action: vol, params: {v: 3}}\n"
                          "    shutdown:\n"
                          "      - {device: tv, action: 'off'}\n"
                          "      - {device: amp, action: 'off'}\n"
                          "  - id: b\n"
                          "    devices: [amp]\n"
                          "    startup:\n"
                          "      - {device: amp, action: 'on', when: 'power != true'}\n"
                          "      - {device: amp, action: vol, params: {v: 5}}\n"
                          "    shutdown:\n"
                          "      - {device: amp, action: 'off'}\n";

struct fixture {
    struct config *cfg;
    struct state_store *store;
    struct devmgr *dm; /* pf.dm */
    struct pf pf;      /* store sink, mirror (publishing through record) */
    struct dispatch_ctx d;
    struct scenmgr *sm;
    struct mirror_publisher pub;
    bool broker_down;
    char log[2048]; /* "topic=payload;" of commands and non-retained publications */
    int done_calls;
    bool last_success;
};

static wb_status record(void *ud, const char *topic, const char *payload, size_t len, int qos,
                        bool retained)
{
    (void)qos;
    struct fixture *f = ud;
    if (f->broker_down)
        return WB_ERR_MQTT;
    if (!retained) {
        size_t n = strlen(f->log);
        snprintf(f->log + n, sizeof(f->log) - n, "%s=%.*s;", topic, (int)len, payload);
    }
    return WB_OK;
}

/* dispatch_ctx.publish: a command (QoS 1, never retained). */
static wb_status record_command(void *ud, const char *topic, const char *payload, size_t len)
{
    return record(ud, topic, payload, len, 1, false);
}

/* dispatch_ctx.publish_acked: records the command and its token; the test
 * answers with dispatch_on_ack() as the broker would. */
static uint64_t g_tokens[8];
static int g_ntokens;

static wb_status record_acked(void *ud, const char *topic, const char *payload, size_t len,
                              uint64_t token)
{
    struct fixture *f = ud;
    if (f->broker_down)
        return WB_ERR_MQTT;
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof(f->log) - n, "%s=%.*s;", topic, (int)len, payload);
    if (g_ntokens < 8)
        g_tokens[g_ntokens++] = token;
    return WB_OK;
}

static struct dispatch_result g_done;
static int g_done_calls;

static void command_done(void *ud, const struct dispatch_result *r)
{
    (void)ud;
    g_done = *r;
    g_done_calls++;
}

static void acked_mode(struct fixture *f)
{
    f->d.publish_acked = record_acked;
    f->d.publish_acked_ud = f;
    g_ntokens = 0;
    g_done_calls = 0;
}

static const char *command_row(struct fixture *f, const char *id, const char *col)
{
    static char buf[300];
    json_object *rows = NULL;
    struct store_command_filter flt = {0};
    buf[0] = '\0';
    assert_int_equal(api_command_query(f->store, &flt, 100, &rows), WB_OK);
    for (size_t i = 0; i < json_object_array_length(rows); i++) {
        json_object *r = json_object_array_get_idx(rows, i);
        if (strcmp(json_object_get_string(json_object_object_get(r, "command_id")), id) == 0) {
            json_object *v = json_object_object_get(r, col);
            snprintf(buf, sizeof(buf), "%s", v ? json_object_get_string(v) : "(null)");
        }
    }
    json_object_put(rows);
    return buf;
}

static void done(void *ud, json_object *result)
{
    struct fixture *f = ud;
    f->done_calls++;
    f->last_success = json_object_get_boolean(json_object_object_get(result, "success"));
}

static void start(struct fixture *f)
{
    f->sm = scenmgr_create(f->cfg, &f->d, &f->pf.sinks);
    assert_non_null(f->sm);
    /* core_restore(): scenario:last as the store holds it. */
    json_object *last = NULL;
    if (store_get(f->store, "scenario:last", &last) != WB_OK)
        last = NULL;
    scenmgr_restore(f->sm, last);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cfg_errors errs = {0};
    if (cfg_parse("t.yaml", yaml, strlen(yaml), &f->cfg, &errs) != WB_OK) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.lines[i]);
        return -1;
    }
    struct store_config sc = {.backend = "memory"};
    store_open(&f->store, &sc, NULL, 0);
    f->pub.fn = record;
    f->pub.ud = f;
    pf_open(&f->pf, f->cfg, f->store, &f->pub, NULL, NULL);
    f->dm = f->pf.dm;
    f->d = (struct dispatch_ctx){.cfg = f->cfg,
                                 .devmgr = f->dm,
                                 .sinks = &f->pf.sinks,
                                 .publish = record_command,
                                 .publish_ud = f};
    start(f);
    *state = f;
    return 0;
}

/* devmgr_state_new(dm, id), released at the next call and at teardown. */
static json_object *g_state;

static json_object *state_of(struct devmgr *dm, const char *id)
{
    json_object_put(g_state);
    g_state = devmgr_state_new(dm, id);
    return g_state;
}

static int teardown(void **state)
{
    json_object_put(g_state);
    g_state = NULL;
    struct fixture *f = *state;
    dispatch_abort(&f->d, "teardown"); /* what still waits for a PUBACK */
    scenmgr_destroy(f->sm);
    pf_close(&f->pf);
    store_close(f->store);
    cfg_free(f->cfg);
    free(f);
    return 0;
}

static const char *last_field(struct fixture *f, const char *key)
{
    json_object *v = json_object_object_get(scenmgr_state(f->sm), key);
    return v ? json_object_get_string(v) : NULL;
}

static void wait_idle(struct fixture *f)
{
    int64_t deadline = util_mono_ms() + 5000;
    while (scenmgr_busy(f->sm) && util_mono_ms() < deadline)
        scenmgr_tick(f->sm, util_mono_ms());
    assert_false(scenmgr_busy(f->sm));
}

static void test_dispatch(void **state)
{
    struct fixture *f = *state;
    struct dispatch_result r;
    json_object *p = json_tokener_parse("{\"v\": 7}");
    assert_int_equal(dispatch_action(&f->d, "amp", "vol", p, "http", &r), WB_OK);
    assert_string_equal(r.status, "sent");
    assert_string_equal(f->log, "cmd/amp/vol=7;");
    assert_int_equal(json_object_get_int(json_object_object_get(state_of(f->dm, "amp"), "vol")), 7);
    json_object_put(p);
    p = json_tokener_parse("{\"v\": 70}");
    assert_int_equal(dispatch_action(&f->d, "amp", "vol", p, "http", &r), WB_ERR_INVALID);
    assert_string_equal(r.status, "rejected");
    assert_non_null(strstr(r.error, "maximum"));
    json_object_put(p);
    assert_int_equal(dispatch_action(&f->d, "nope", "x", NULL, "mqtt", &r), WB_ERR_NOT_FOUND);
    assert_int_equal(dispatch_action_payload(&f->d, "amp", "vol", "abc", 3, "mqtt", &r),
                     WB_ERR_INVALID);
    assert_int_equal(dispatch_action_payload(&f->d, "amp", "vol", "4", 1, "mqtt", &r), WB_OK);
    f->broker_down = true;
    assert_int_equal(dispatch_action(&f->d, "tv", "on", NULL, "mqtt", &r), WB_ERR_MQTT);
    assert_string_equal(r.status, "failed");
    assert_null(json_object_object_get(state_of(f->dm, "tv"), "power")); /* no set */
    f->broker_down = false;
    assert_string_equal(f->log, "cmd/amp/vol=7;cmd/amp/vol=4;");

    struct store_command_filter flt = {.status = "rejected"};
    json_object *rows = NULL;
    assert_int_equal(api_command_query(f->store, &flt, 10, &rows), WB_OK);
    assert_int_equal(json_object_array_length(rows), 3);
    json_object_put(rows);
    flt.status = "failed";
    api_command_query(f->store, &flt, 10, &rows);
    assert_int_equal(json_object_array_length(rows), 1);
    json_object_put(rows);
}

static void test_switch_with_delay_and_busy(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(scenmgr_switch(f->sm, "zzz", done, f), WB_ERR_NOT_FOUND);
    assert_int_equal(scenmgr_switch(f->sm, "a", done, f), WB_OK);
    /* stopped at the 50 ms delay after amp/on, status switching persisted */
    assert_true(scenmgr_busy(f->sm));
    assert_string_equal(f->log, "cmd/tv=1;cmd/amp=1;");
    assert_string_equal(last_field(f, "status"), "switching");
    json_object *v = NULL;
    assert_int_equal(store_get(f->store, "scenario:last", &v), WB_OK);
    assert_string_equal(json_object_get_string(json_object_object_get(v, "status")), "switching");
    json_object_put(v);
    assert_int_equal(scenmgr_switch(f->sm, "b", done, f), WB_ERR_BUSY);
    assert_int_equal(scenmgr_shutdown(f->sm, done, f), WB_ERR_BUSY);
    int64_t start_ms = util_mono_ms();
    wait_idle(f);
    assert_true(util_mono_ms() - start_ms >= 40);
    assert_string_equal(f->log, "cmd/tv=1;cmd/amp=1;cmd/amp/vol=3;");
    assert_int_equal(f->done_calls, 1);
    assert_true(f->last_success);
    assert_string_equal(last_field(f, "status"), "active");
    assert_string_equal(last_field(f, "scenario_id"), "a");
    assert_string_equal(scenmgr_control_value(f->sm), "a");

    /* again: a no-op */
    f->log[0] = '\0';
    assert_int_equal(scenmgr_switch(f->sm, "a", done, f), WB_OK);
    assert_string_equal(f->log, "");
    assert_int_equal(f->done_calls, 2);

    /* a -> b: tv shut down, shared amp not; b's amp/on skipped by when */
    assert_int_equal(scenmgr_switch(f->sm, "b", done, f), WB_OK);
    wait_idle(f);
    assert_string_equal(f->log, "cmd/tv=0;cmd/amp/vol=5;");
    assert_string_equal(last_field(f, "scenario_id"), "b");

    f->log[0] = '\0';
    assert_int_equal(scenmgr_shutdown(f->sm, done, f), WB_OK);
    wait_idle(f);
    assert_string_equal(f->log, "cmd/amp=0;");
    assert_string_equal(last_field(f, "status"), "off");
    assert_null(json_object_object_get(scenmgr_state(f->sm), "scenario_id"));
    assert_string_equal(scenmgr_control_value(f->sm), "none");
}

static void test_failed_steps(void **state)
{
    struct fixture *f = *state;
    f->broker_down = true;
    assert_int_equal(scenmgr_switch(f->sm, "b", done, f), WB_OK);
    wait_idle(f);
    f->broker_down = false;
    assert_false(f->last_success);
    assert_string_equal(last_field(f, "status"), "failed");
    json_object *fs = json_object_object_get(scenmgr_state(f->sm), "failed_steps");
    assert_int_equal(json_object_array_length(fs), 2); /* both steps ran, both failed */
    assert_non_null(strstr(last_field(f, "error"), "2 step(s) failed"));
}

/* Issue 14, defect 6: a command is "sent" only on its PUBACK; a refusal
 * (reason code >= 0x80) makes it "failed" with the reason in
 * command_logs.error and its optimistic set is not applied. */
static void test_pending_commands(void **state)
{
    struct fixture *f = *state;
    acked_mode(f);
    struct dispatch_result r;
    assert_int_equal(dispatch_action_cb(&f->d, "tv", "on", NULL, "http", command_done, NULL, &r),
                     WB_OK);
    assert_true(r.pending);
    assert_int_equal(g_ntokens, 1);
    assert_string_equal(f->log, "cmd/tv=1;");
    assert_null(json_object_object_get(state_of(f->dm, "tv"), "power")); /* not yet */
    assert_string_equal(command_row(f, r.command_id, "status"), "");     /* no row yet */
    assert_int_equal(g_done_calls, 0);

    dispatch_on_ack(&f->d, g_tokens[0], 0x87, "broker refused: Not authorized (0x87)");
    assert_int_equal(g_done_calls, 1);
    assert_string_equal(g_done.status, "failed");
    assert_true(g_done.refused);
    assert_int_equal(g_done.st, WB_ERR_MQTT);
    assert_non_null(strstr(g_done.error, "Not authorized (0x87)"));
    assert_null(json_object_object_get(state_of(f->dm, "tv"), "power")); /* never applied */
    assert_string_equal(command_row(f, r.command_id, "status"), "failed");
    assert_non_null(strstr(command_row(f, r.command_id, "error"), "Not authorized (0x87)"));
    /* A second answer for the same token changes nothing. */
    dispatch_on_ack(&f->d, g_tokens[0], 0, "");
    assert_int_equal(g_done_calls, 1);

    /* Acknowledged: sent, and the set is applied then. */
    assert_int_equal(dispatch_action_cb(&f->d, "tv", "on", NULL, "http", command_done, NULL, &r),
                     WB_OK);
    assert_true(r.pending);
    dispatch_on_ack(&f->d, g_tokens[1], 0, "");
    assert_string_equal(g_done.status, "sent");
    assert_int_equal(g_done.st, WB_OK);
    assert_true(json_object_get_boolean(json_object_object_get(state_of(f->dm, "tv"), "power")));
    assert_string_equal(command_row(f, r.command_id, "status"), "sent");

    /* No PUBACK within DISPATCH_ACK_TIMEOUT_MS: failed, not refused. */
    assert_int_equal(dispatch_action_cb(&f->d, "tv", "off", NULL, "mqtt", NULL, NULL, &r), WB_OK);
    assert_true(r.pending);
    int64_t next = dispatch_tick(&f->d, util_mono_ms());
    assert_true(next != INT64_MAX && next <= util_mono_ms() + DISPATCH_ACK_TIMEOUT_MS);
    assert_int_equal(dispatch_tick(&f->d, next), INT64_MAX);
    assert_string_equal(command_row(f, r.command_id, "status"), "failed");
    assert_non_null(strstr(command_row(f, r.command_id, "error"), "no PUBACK"));
    assert_true(json_object_get_boolean(json_object_object_get(state_of(f->dm, "tv"), "power")));
    dispatch_on_ack(&f->d, g_tokens[2], 0, ""); /* late: only logged */

    /* The broker away: failed at once, done not called. */
    f->broker_down = true;
    g_done_calls = 0;
    assert_int_equal(dispatch_action_cb(&f->d, "tv", "off", NULL, "http", command_done, NULL, &r),
                     WB_ERR_MQTT);
    assert_false(r.pending);
    assert_string_equal(r.status, "failed");
    assert_int_equal(g_done_calls, 0);
    f->broker_down = false;

    /* Shutdown: what waits fails, and so does what comes after. */
    assert_int_equal(dispatch_action_cb(&f->d, "amp", "on", NULL, "http", command_done, NULL, &r),
                     WB_OK);
    dispatch_abort(&f->d, "the bridge is stopping");
    assert_int_equal(g_done_calls, 1);
    assert_string_equal(g_done.status, "failed");
    assert_non_null(strstr(g_done.error, "stopping"));
    assert_int_equal(dispatch_action_cb(&f->d, "amp", "on", NULL, "http", command_done, NULL, &r),
                     WB_ERR_MQTT);
    assert_false(r.pending);
}

/* A scenario step waits for its PUBACK: the next step's `when` sees its
 * set, and a refused step is a failed step. */
static void test_scenario_waits_for_pubacks(void **state)
{
    struct fixture *f = *state;
    acked_mode(f);
    assert_int_equal(scenmgr_switch(f->sm, "b", done, f), WB_OK);
    assert_string_equal(f->log, "cmd/amp=1;"); /* only the first step */
    scenmgr_tick(f->sm, util_mono_ms() + 10000);
    assert_string_equal(f->log, "cmd/amp=1;"); /* still waiting: no timer moves it */
    dispatch_on_ack(&f->d, g_tokens[0], 0x87, "broker refused: Not authorized (0x87)");
    assert_string_equal(f->log, "cmd/amp=1;cmd/amp/vol=5;");
    assert_true(scenmgr_busy(f->sm));
    /* The last step too: a tick before its PUBACK does not end the plan. */
    scenmgr_tick(f->sm, util_mono_ms() + 10000);
    assert_true(scenmgr_busy(f->sm));
    dispatch_on_ack(&f->d, g_tokens[1], 0, "");
    assert_false(scenmgr_busy(f->sm));
    assert_int_equal(f->done_calls, 1);
    assert_false(f->last_success);
    json_object *fs = json_object_object_get(scenmgr_state(f->sm), "failed_steps");
    assert_int_equal(json_object_array_length(fs), 1);
    assert_non_null(strstr(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(fs, 0), "error")),
        "Not authorized"));
    /* amp/on was refused: its set never applied, vol's was. */
    assert_null(json_object_object_get(state_of(f->dm, "amp"), "power"));
    assert_int_equal(json_object_get_int(json_object_object_get(state_of(f->dm, "amp"), "vol")), 5);

    /* Scenario a: tv/on acknowledged, then amp/on's 50 ms delay starts only
     * after its PUBACK. */
    f->log[0] = '\0';
    g_ntokens = 0;
    assert_int_equal(scenmgr_switch(f->sm, "a", done, f), WB_OK);
    assert_string_equal(f->log, "cmd/tv=1;"); /* amp is shared with b: not shut down */
    dispatch_on_ack(&f->d, g_tokens[0], 0, "");
    assert_string_equal(f->log, "cmd/tv=1;cmd/amp=1;");
    int64_t acked = util_mono_ms();
    dispatch_on_ack(&f->d, g_tokens[1], 0, "");
    int64_t deadline = util_mono_ms() + 5000;
    while (!strstr(f->log, "vol") && util_mono_ms() < deadline)
        scenmgr_tick(f->sm, util_mono_ms());
    assert_true(util_mono_ms() - acked >= 40); /* the delay counts from the PUBACK */
    assert_string_equal(f->log, "cmd/tv=1;cmd/amp=1;cmd/amp/vol=3;");
    dispatch_on_ack(&f->d, g_tokens[2], 0, "");
    assert_false(scenmgr_busy(f->sm));
    assert_true(f->last_success);
}

static void test_restore_interrupted(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(scenmgr_switch(f->sm, "a", done, f), WB_OK);
    assert_true(scenmgr_busy(f->sm));
    /* The process dies here: a new manager restores from the store. */
    struct scenmgr *old = f->sm;
    f->log[0] = '\0';
    start(f);
    assert_string_equal(last_field(f, "status"), "failed");
    assert_non_null(strstr(last_field(f, "error"), "interrupted"));
    assert_string_equal(f->log, ""); /* restoring sends nothing */
    scenmgr_destroy(old);            /* ends the old switch: its callback fails */
    assert_false(f->last_success);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dispatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_with_delay_and_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scenario_waits_for_pubacks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

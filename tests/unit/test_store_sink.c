/*
 * test_store_sink.c - unit tests of the history policy (issue 21): the
 * config keys (persistence.history and devices[].history), the store sink
 * that applies them (store_sink.c: all, interval, off, fields, exclude; a
 * transition not recorded still updates the state; EV_STOPPING closes the
 * open intervals) and the intervals themselves (store_sink_hist.c:
 * min/max/mean/n, closing at the end or at the next transition after it).
 *
 * Built from the real sources over the memory backend (every change is
 * committed before the call returns); the intervals take the wall clock as
 * a parameter, so closing is tested without waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store_sink_hist.h"
#include "wbmb/config.h"
#include "wbmb/state_store.h"
#include "wbmb/store_sink.h"
#include "wbmb/util.h"

/* ---- fixture ------------------------------------------------------------- */

struct fx {
    struct config *cfg;
    struct state_store *s;
    struct sink *sink;
    struct dev_field f[4];
    struct sink_device d;
};

static const char base_yaml[] =
    "persistence:\n"
    "  backend: memory\n"
    "  history:\n"
    "    mode: %s\n"
    "devices:\n"
    "  - id: th\n"
    "    state:\n"
    "      - {topic: z/th, type: json, fields: {t: temperature, h: humidity, mode: mode}}\n"
    "%s";

static struct config *parse(const char *text, struct cfg_errors *errs)
{
    struct config *cfg = NULL;
    wb_status st = cfg_parse("t.yaml", text, strlen(text), &cfg, errs);
    return st == WB_OK ? cfg : NULL;
}

static void fx_start(struct fx *x, const char *mode, const char *device_extra)
{
    char text[2048];
    snprintf(text, sizeof(text), base_yaml, mode, device_extra);
    struct cfg_errors errs = {0};
    x->cfg = parse(text, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.lines[i]);
    cfg_errors_free(&errs);
    assert_non_null(x->cfg);
    struct store_config sc;
    store_config_from_cfg(&x->cfg->persistence, &sc);
    assert_int_equal(store_open(&x->s, &sc, NULL, 0), WB_OK);
    x->sink = store_sink_create(x->s, x->cfg);
    assert_non_null(x->sink);
    x->f[0] = (struct dev_field){.name = "t"};
    x->f[1] = (struct dev_field){.name = "h"};
    x->f[2] = (struct dev_field){.name = "mode"};
    x->d = (struct sink_device){.cfg = &x->cfg->devices[0], .index = 0, .f = x->f, .n_f = 3};
}

static int teardown(void **state)
{
    struct fx *x = *state;
    if (x->sink)
        x->sink->ops->destroy(x->sink);
    store_close(x->s);
    for (int i = 0; i < 4; i++)
        json_object_put(x->f[i].v);
    cfg_free(x->cfg);
    free(x);
    return 0;
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

/* Sets field i to v (a new value, owned by the fixture) and hands the
 * sink the EV_FIELDS of that one change. */
static void change(struct fx *x, uint32_t i, json_object *v)
{
    json_object_put(x->f[i].v);
    x->f[i].v = v;
    struct ev_change c = {.index = i};
    struct event ev = {.kind = EV_FIELDS, .dev = &x->d};
    ev.u.fields.c = &c;
    ev.u.fields.n = 1;
    ev.u.fields.persisted = true;
    x->sink->ops->event(x->sink, &ev, NULL);
}

static void event(struct fx *x, enum ev_kind k)
{
    struct event ev = {.kind = k};
    x->sink->ops->event(x->sink, &ev, NULL);
}

static size_t rows(struct fx *x, struct store_rows *r)
{
    assert_int_equal(store_history_rows(x->s, "th", 0, r), WB_OK);
    return r->n;
}

static void assert_state(struct fx *x, const char *want)
{
    json_object *got = NULL;
    assert_int_equal(store_get(x->s, "device:th", &got), WB_OK);
    assert_string_equal(json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN), want);
    json_object_put(got);
}

/* ---- config ------------------------------------------------------------- */

static void t_config_defaults(void **state)
{
    (void)state;
    struct cfg_errors errs = {0};
    struct config *cfg = parse("devices:\n  - id: a\n", &errs);
    assert_non_null(cfg);
    struct cfg_history p;
    cfg_history_policy(cfg, &cfg->devices[0], &p);
    assert_int_equal(p.mode, CFG_HIST_ALL);
    assert_int_equal(p.interval_ms, 60000);
    assert_null(p.fields);
    assert_true(cfg_history_records(&p, "anything"));
    cfg_free(cfg);
    /* enabled: false is mode off, whatever the device says. */
    cfg = parse("persistence: {history: {enabled: false}}\n"
                "devices:\n  - {id: a, history: {mode: all}}\n",
                &errs);
    assert_non_null(cfg);
    cfg_history_policy(cfg, &cfg->devices[0], &p);
    assert_int_equal(p.mode, CFG_HIST_OFF);
    cfg_free(cfg);
}

static void t_config_override(void **state)
{
    (void)state;
    struct cfg_errors errs = {0};
    struct config *cfg =
        parse("persistence:\n"
              "  history: {mode: interval, interval_ms: 5000, exclude: [linkquality]}\n"
              "devices:\n"
              "  - id: a\n"
              "    state: [{topic: z/a, type: json, fields: {t: t, linkquality: lq}}]\n"
              "  - id: b\n"
              "    state: [{topic: z/b, type: float, field: t}]\n"
              "    history: {mode: all, fields: [t]}\n"
              "  - id: c\n"
              "    history: {interval_ms: 1000}\n",
              &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.lines[i]);
    assert_non_null(cfg);
    struct cfg_history p;
    cfg_history_policy(cfg, &cfg->devices[0], &p);
    assert_int_equal(p.mode, CFG_HIST_INTERVAL);
    assert_int_equal(p.interval_ms, 5000);
    assert_true(cfg_history_records(&p, "t"));
    assert_false(cfg_history_records(&p, "linkquality"));
    cfg_history_policy(cfg, &cfg->devices[1], &p);
    assert_int_equal(p.mode, CFG_HIST_ALL);
    assert_true(cfg_history_records(&p, "t"));
    assert_false(cfg_history_records(&p, "h"));
    assert_false(cfg_history_records(&p, "linkquality")); /* the default's exclude stays */
    cfg_history_policy(cfg, &cfg->devices[2], &p);
    assert_int_equal(p.mode, CFG_HIST_INTERVAL);
    assert_int_equal(p.interval_ms, 1000);
    cfg_free(cfg);
}

/* Each bad value is a FILE:LINE:COLUMN error; a field the device does not
 * have is one too. */
static void t_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"persistence: {history: {mode: sometimes}}\n",
         "t.yaml:1:31: mode must be one of all|interval|off, got 'sometimes'"},
        {"persistence: {history: {interval_ms: 10}}\n", "interval_ms"},
        {"persistence: {history: {fields: x}}\n", "must be a list"},
        {"devices:\n  - {id: a, history: {mode: every}}\n",
         "mode must be one of all|interval|off, got 'every'"},
        {"devices:\n  - id: a\n    state: [{topic: z/a, type: int, field: n}]\n"
         "    history: {fields: [n, nope]}\n",
         "t.yaml:4:27: history fields of device 'a' names 'nope', which is not a state field"},
        {"devices:\n  - id: a\n    state: [{topic: z/a, type: int, field: n}]\n"
         "    history: {exclude: [gone]}\n",
         "history exclude of device 'a' names 'gone'"},
        {"devices:\n  - {id: a, history: {period: 5}}\n", "period"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg_errors errs = {0};
        struct config *cfg = parse(cases[i].yaml, &errs);
        assert_null(cfg);
        bool found = false;
        for (size_t k = 0; k < errs.n; k++)
            found = found || strstr(errs.lines[k], cases[i].want);
        if (!found)
            for (size_t k = 0; k < errs.n; k++)
                fprintf(stderr, "case %zu: %s\n", i, errs.lines[k]);
        assert_true(found);
        cfg_errors_free(&errs);
    }
    /* A JSON binding without fields: merges whatever comes, nothing to check. */
    struct cfg_errors errs = {0};
    struct config *cfg = parse("devices:\n  - id: a\n    state: [{topic: z/a, type: json}]\n"
                               "    history: {fields: [anything]}\n",
                               &errs);
    assert_non_null(cfg);
    cfg_free(cfg);
}

/* ---- the sink ------------------------------------------------------------ */

static void t_mode_all(void **state)
{
    struct fx *x = *state;
    fx_start(x, "all", "");
    for (int i = 0; i < 3; i++)
        change(x, 0, json_object_new_int(20 + i));
    struct store_rows r;
    assert_int_equal(rows(x, &r), 3);
    assert_string_equal(r.history[0].state, "{\"t\":22,\"h\":null,\"mode\":null}");
    assert_null(r.history[0].kind);
    store_rows_free(&r);
    assert_int_equal(store_sink_errors(x->sink), 0);
}

static void t_mode_off(void **state)
{
    struct fx *x = *state;
    fx_start(x, "all", "    history: {mode: off}\n");
    change(x, 0, json_object_new_int(20));
    change(x, 0, json_object_new_int(21));
    struct store_rows r;
    assert_int_equal(rows(x, &r), 0);
    store_rows_free(&r);
    assert_state(x, "{\"t\":21,\"h\":null,\"mode\":null}"); /* the state is still kept */
}

/* fields: only those are recorded; a transition of another field writes
 * no row but still updates the state. */
static void t_fields_exclude(void **state)
{
    struct fx *x = *state;
    fx_start(x, "all", "    history: {fields: [t, mode], exclude: [mode]}\n");
    change(x, 0, json_object_new_int(20));
    change(x, 1, json_object_new_int(55));       /* humidity: not recorded */
    change(x, 2, json_object_new_string("eco")); /* excluded */
    change(x, 0, json_object_new_int(21));
    struct store_rows r;
    assert_int_equal(rows(x, &r), 2);
    assert_string_equal(r.history[0].state, "{\"t\":21}");
    assert_string_equal(r.history[1].state, "{\"t\":20}");
    store_rows_free(&r);
    assert_state(x, "{\"t\":21,\"h\":55,\"mode\":\"eco\"}");
}

/* interval: nothing until the interval is closed; EV_STOPPING closes it
 * (SIGTERM loses nothing). */
static void t_interval_flush_at_stop(void **state)
{
    struct fx *x = *state;
    fx_start(x, "interval", "    history: {interval_ms: 86400000}\n");
    change(x, 0, json_object_new_int(20));
    change(x, 0, json_object_new_double(23.5));
    change(x, 2, json_object_new_string("eco"));
    change(x, 0, json_object_new_int(21));
    struct store_rows r;
    assert_int_equal(rows(x, &r), 0);
    store_rows_free(&r);
    /* Due at the end of the day: the tick asks to be called then. */
    int64_t next = x->sink->ops->tick(x->sink, NULL, 1000, false);
    assert_true(next > 1000 && next <= 1000 + 86400000);
    assert_state(x, "{\"t\":21,\"h\":null,\"mode\":\"eco\"}");
    event(x, EV_STOPPING);
    assert_int_equal(rows(x, &r), 1);
    assert_string_equal(r.history[0].kind, "interval");
    assert_string_equal(r.history[0].state, "{\"t\":21,\"h\":null,\"mode\":\"eco\"}");
    /* t sampled at each of the 4 transitions: 20, 23.5, 23.5, 21. */
    json_object *st = json_tokener_parse(r.history[0].stats), *t, *v;
    assert_non_null(st);
    assert_true(json_object_object_get_ex(st, "t", &t));
    assert_false(json_object_object_get_ex(st, "mode", NULL));
    assert_true(json_object_object_get_ex(t, "min", &v));
    assert_true(json_object_get_double(v) == 20.0);
    assert_true(json_object_object_get_ex(t, "max", &v));
    assert_true(json_object_get_double(v) == 23.5);
    assert_true(json_object_object_get_ex(t, "mean", &v));
    assert_true(json_object_get_double(v) == 22.0);
    assert_true(json_object_object_get_ex(t, "n", &v));
    assert_int_equal(json_object_get_int(v), 4);
    json_object_put(st);
    store_rows_free(&r);
    assert_int_equal(x->sink->ops->tick(x->sink, NULL, 1000, false), INT64_MAX);
    event(x, EV_STOPPING); /* nothing open: nothing more */
    assert_int_equal(rows(x, &r), 1);
    store_rows_free(&r);
}

/* A reload (EV_DEVICES_DONE) writes the open intervals out first. */
static void t_interval_reload(void **state)
{
    struct fx *x = *state;
    fx_start(x, "interval", "");
    change(x, 0, json_object_new_int(20));
    struct event ev = {.kind = EV_DEVICES_DONE};
    ev.u.done.cfg = x->cfg;
    ev.u.done.reload = true;
    x->sink->ops->event(x->sink, &ev, NULL);
    struct store_rows r;
    assert_int_equal(rows(x, &r), 1);
    store_rows_free(&r);
}

/* The intervals by themselves, with a chosen clock: aligned to multiples
 * of interval_ms, closed at the end (close) or by the next transition after
 * it (add), each row with its own samples. */
static void t_intervals_clock(void **state)
{
    struct fx *x = *state;
    fx_start(x, "interval", "    history: {interval_ms: 10000, exclude: [h]}\n");
    struct store_shist *h = store_shist_create(x->s);
    assert_non_null(h);
    struct cfg_history p;
    cfg_history_policy(x->cfg, x->d.cfg, &p);
    int64_t t0 = util_wall_ms() - 60000;
    t0 -= t0 % 10000; /* an interval's start */
    x->f[0].v = json_object_new_int(10);
    x->f[1].v = json_object_new_int(99); /* excluded: no stats */
    assert_int_equal(store_shist_add(h, &p, &x->d, "{\"t\":10}", t0 + 1), WB_OK);
    json_object_put(x->f[0].v);
    x->f[0].v = json_object_new_int(30);
    assert_int_equal(store_shist_add(h, &p, &x->d, "{\"t\":30}", t0 + 9999), WB_OK);
    assert_true(store_shist_due(h) == t0 + 10000);
    assert_int_equal(store_shist_close(h, t0 + 9999, false), 0); /* not yet */
    struct store_rows r;
    assert_int_equal(rows(x, &r), 0);
    store_rows_free(&r);
    /* The next transition, in the next interval, closes the first. */
    json_object_put(x->f[0].v);
    x->f[0].v = json_object_new_int(5);
    assert_int_equal(store_shist_add(h, &p, &x->d, "{\"t\":5}", t0 + 10000), WB_OK);
    assert_int_equal(rows(x, &r), 1);
    assert_string_equal(r.history[0].state, "{\"t\":30}");
    assert_string_equal(r.history[0].stats,
                        "{\"t\":{\"min\":10.0,\"max\":30.0,\"mean\":20.0,\"n\":2}}");
    store_rows_free(&r);
    assert_true(store_shist_due(h) == t0 + 20000);
    /* The end passes with no transition: close() (the tick) writes it. */
    assert_int_equal(store_shist_close(h, t0 + 20000, false), 0);
    assert_true(store_shist_due(h) == INT64_MAX);
    assert_int_equal(rows(x, &r), 2);
    assert_string_equal(r.history[0].stats,
                        "{\"t\":{\"min\":5.0,\"max\":5.0,\"mean\":5.0,\"n\":1}}");
    store_rows_free(&r);
    store_shist_destroy(h);
    store_shist_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_config_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(t_config_override, setup, teardown),
        cmocka_unit_test_setup_teardown(t_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(t_mode_all, setup, teardown),
        cmocka_unit_test_setup_teardown(t_mode_off, setup, teardown),
        cmocka_unit_test_setup_teardown(t_fields_exclude, setup, teardown),
        cmocka_unit_test_setup_teardown(t_interval_flush_at_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(t_interval_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(t_intervals_clock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

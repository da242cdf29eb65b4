/*
 * test_devmgr.c - the device manager wired as the core wires it
 * (pipeline_fixture.h): the memory store behind the store sink, the Wiren
 * Board mirror sink with a recording publisher, and a recording sink:
 * routing, strict parsing, transitions, transient fields, the mirror, own
 * publications, commands, availability, restore and reload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/api_rows.h"
#include "domain/devmgr_int.h"
#include "pipeline_fixture.h"
#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/state_store.h"
#include "wbmb/util.h"

/* Devices rows the store sink queues at start-up before a flush
 * (ROWS_PER_FLUSH, private to src/store/store_sink.c). */
#define STORE_ROWS_PER_FLUSH 1024

static const char *yaml =
    "bridge: {device_id: br, mirror_min_interval_ms: 0}\n"
    "persistence: {history: {enabled: true}}\n"
    "devices:\n"
    "  - id: tv\n"
    "    name: TV\n"
    "    state:\n"
    "      - {topic: relay/K1, field: power, type: bool}\n"
    "      - {topic: vol/+, field: volume, type: int}\n"
    "    actions:\n"
    "      power_on: {topic: cmd/tv, payload: '1', set: {power: true}}\n"
    "  - id: plug\n"
    "    state:\n"
    "      - {topic: z2m/plug, type: json, fields: {w: power, e: meter.energy}}\n"
    "    transient: [w]\n"
    "    availability: {topic: z2m/plug/availability}\n"
    "  - id: sensor\n"
    "    wb_mirror: false\n"
    "    state:\n"
    "      - {topic: '/devices/+/controls/temp', field: t, type: float}\n"
    "    availability: {timeout_s: 5}\n";

struct pubrec {
    char topic[256];
    char payload[256];
    bool retained;
};

struct fixture {
    struct config *cfg;
    struct state_store *store;
    struct devmgr *dm; /* pf.dm */
    struct pf pf;
    struct pubrec pubs[256];
    size_t n_pubs;
    int states, connections, commands;
    bool nobody_listens; /* wants_state answers false */
    size_t backlog;      /* what the publisher reports as queued */
    bool queue_sim;      /* backlog: REPUBLISH_BACKLOG while anything is queued */
    size_t queued;
    char last_changed[256];
    char last_command[128];
};

static wb_status record(void *ud, const char *topic, const char *payload, size_t len, int qos,
                        bool retained)
{
    (void)qos;
    struct fixture *f = ud;
    if (f->n_pubs < 256) {
        struct pubrec *p = &f->pubs[f->n_pubs++];
        snprintf(p->topic, sizeof(p->topic), "%s", topic);
        snprintf(p->payload, sizeof(p->payload), "%.*s", (int)len, payload);
        p->retained = retained;
    }
    f->queued++;
    return WB_OK;
}

static const char *published(struct fixture *f, const char *topic)
{
    for (size_t i = f->n_pubs; i-- > 0;)
        if (strcmp(f->pubs[i].topic, topic) == 0)
            return f->pubs[i].payload;
    return NULL;
}

/* The recording sink: EV_FIELDS as the old on_state hook saw them (the
 * changed set {name: new value}), while somebody listens; availability
 * edges. */
static void on_event(void *ud, const struct event *ev, const struct sink_view *view)
{
    (void)view;
    struct fixture *f = ud;
    if (ev->kind == EV_AVAILABILITY) {
        f->connections++;
        return;
    }
    if (ev->kind != EV_FIELDS || f->nobody_listens)
        return;
    f->states++;
    json_object *changed = json_object_new_object();
    for (size_t i = 0; i < ev->u.fields.n; i++) {
        const struct dev_field *fl = &ev->dev->f[ev->u.fields.c[i].index];
        json_object_object_add(changed, fl->name, json_object_get(fl->v));
    }
    snprintf(f->last_changed, sizeof(f->last_changed), "%s",
             json_object_to_json_string_ext(changed, JSON_C_TO_STRING_PLAIN));
    json_object_put(changed);
}

/* route_command()'s target: the command as the old hook saw it. */
static void on_cmd(void *ud, const struct sink_command *cmd)
{
    struct fixture *f = ud;
    f->commands++;
    snprintf(f->last_command, sizeof(f->last_command), "%s/%s", cmd->device_id, cmd->action);
}

static size_t backlog(void *ud)
{
    struct fixture *f = ud;
    if (f->queue_sim)
        return f->queued ? REPUBLISH_BACKLOG : 0;
    return f->backlog;
}

/* A fresh process's pipeline on f->cfg and f->store (core_create +
 * core_restore); returns how many devices were restored. */
static size_t open_pipeline(struct fixture *f)
{
    struct mirror_publisher pub = {record, f, backlog};
    size_t n = pf_open(&f->pf, f->cfg, f->store, &pub, on_event, f);
    f->pf.on_command = on_cmd;
    f->pf.command_ud = f;
    f->dm = f->pf.dm;
    return n;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cfg_errors errs = {0};
    if (cfg_parse("test.yaml", yaml, strlen(yaml), &f->cfg, &errs) != WB_OK) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.lines[i]);
        return -1;
    }
    struct store_config sc = {.backend = "memory", .history_enabled = true};
    if (store_open(&f->store, &sc, NULL, 0) != WB_OK)
        return -1;
    open_pipeline(f);
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
    pf_close(&f->pf);
    store_close(f->store);
    cfg_free(f->cfg);
    free(f);
    return 0;
}

static json_object *stored(struct fixture *f, const char *key)
{
    json_object *v = NULL;
    store_get(f->store, key, &v);
    return v;
}

static void msg(struct fixture *f, const char *topic, const char *payload)
{
    pf_feed(&f->pf, topic, payload, strlen(payload), false);
}

static void test_subscriptions(void **state)
{
    struct fixture *f = *state;
    size_t n;
    const char *const *subs = pf_subscriptions(&f->pf, &n);
    const char *want[] = {"relay/K1",
                          "vol/+",
                          "z2m/plug",
                          "z2m/plug/availability",
                          "/devices/+/controls/temp",
                          "/devices/br/controls/scenario/on",
                          "/devices/tv/controls/power_on/on"};
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(subs[k], want[i]) == 0;
        assert_true(found);
    }
}

static void test_transition_persisted_and_mirrored(void **state)
{
    struct fixture *f = *state;
    msg(f, "relay/K1", "ON");
    json_object *v = stored(f, "device:tv");
    assert_non_null(v);
    assert_true(json_object_get_boolean(json_object_object_get(v, "power")));
    json_object_put(v);
    assert_string_equal(published(f, "/devices/tv/controls/power"), "1");
    assert_non_null(strstr(published(f, "/devices/tv/controls/power/meta"), "\"switch\""));
    assert_int_equal(f->states, 1);

    /* The same value again: no transition, nothing written or published. */
    size_t pubs = f->n_pubs;
    struct store_status before, after;
    store_get_status(f->store, &before);
    msg(f, "relay/K1", "1");
    store_get_status(f->store, &after);
    assert_int_equal(after.sets, before.sets);
    assert_int_equal(f->n_pubs, pubs);
    struct devmgr_stats st;
    devmgr_get_stats(f->dm, &st);
    assert_int_equal(st.applied, 1);
    assert_int_equal(st.unchanged, 1);

    msg(f, "vol/main", "42");
    v = stored(f, "device:tv");
    assert_int_equal(json_object_get_int(json_object_object_get(v, "volume")), 42);
    json_object_put(v);
    json_object *hist = NULL;
    assert_int_equal(api_history_query(f->store, "tv", 10, &hist), WB_OK);
    assert_int_equal(json_object_array_length(hist), 2);
    json_object_put(hist);
}

static void test_rejections(void **state)
{
    struct fixture *f = *state;
    msg(f, "vol/x", "7");
    const char *bad[] = {"abc", "1.5", "", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        msg(f, "vol/x", bad[i]);
    msg(f, "z2m/plug", "{\"power\": ");
    msg(f, "z2m/plug", "[1]");
    msg(f, "nobody/listens", "1");
    struct devmgr_stats st;
    devmgr_get_stats(f->dm, &st);
    assert_int_equal(st.rejected, 7);
    assert_int_equal(st.unknown, 1);
    json_object *v = stored(f, "device:tv");
    assert_int_equal(json_object_get_int(json_object_object_get(v, "volume")), 7);
    json_object_put(v);
}

static void test_json_transient(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/plug", "{\"power\": 12.5, \"meter\": {\"energy\": 3}, \"other\": 1}");
    json_object *v = stored(f, "device:plug");
    assert_non_null(v);
    assert_int_equal(json_object_get_int(json_object_object_get(v, "e")), 3);
    assert_null(json_object_object_get(v, "w"));     /* transient */
    assert_null(json_object_object_get(v, "other")); /* not mapped */
    json_object_put(v);
    json_object *live = state_of(f->dm, "plug");
    assert_true(json_object_get_double(json_object_object_get(live, "w")) == 12.5);
    assert_string_equal(published(f, "/devices/plug/controls/w"), "12.5");

    /* Only a transient field changes: served and mirrored, not written. */
    struct store_status before, after;
    store_get_status(f->store, &before);
    msg(f, "z2m/plug", "{\"power\": 13, \"meter\": {\"energy\": 3}}");
    store_get_status(f->store, &after);
    assert_int_equal(after.sets, before.sets);
    assert_string_equal(published(f, "/devices/plug/controls/w"), "13");
}

/* The changed set of each transition (EV_FIELDS) reaches the recording
 * sink, which stands for the live events and drops them while nobody
 * listens; the transition itself (store, mirror) does not depend on it. */
static void test_changed_set(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/plug", "{\"power\": 5, \"meter\": {\"energy\": 7}}");
    assert_int_equal(f->states, 1);
    assert_string_equal(f->last_changed, "{\"w\":5,\"e\":7}");
    msg(f, "z2m/plug", "{\"power\": 6, \"meter\": {\"energy\": 7}}");
    assert_int_equal(f->states, 2);
    assert_string_equal(f->last_changed, "{\"w\":6}");
    f->nobody_listens = true;
    msg(f, "z2m/plug", "{\"power\": 8, \"meter\": {\"energy\": 9}}");
    msg(f, "vol/a", "3");
    assert_int_equal(f->states, 2);
    assert_string_equal(published(f, "/devices/plug/controls/e"), "9");
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "3");
    json_object *v = stored(f, "device:plug");
    assert_int_equal(json_object_get_int(json_object_object_get(v, "e")), 9);
    json_object_put(v);
}

/* bridge.mirror_min_interval_ms: the first change goes out at once, faster
 * ones are held and coalesced, the flush publishes the latest value; the
 * store gets every transition regardless. */
static void test_mirror_throttle(void **state)
{
    struct fixture *f = *state;
    f->cfg->mirror_min_interval_ms = 60000; /* no machine is that slow */
    msg(f, "vol/a", "10");
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "10");
    size_t n = f->n_pubs;
    msg(f, "vol/a", "11");
    msg(f, "vol/a", "12");
    assert_int_equal(f->n_pubs, n); /* held */
    json_object *v = stored(f, "device:tv");
    assert_int_equal(json_object_get_int(json_object_object_get(v, "volume")), 12);
    json_object_put(v);
    /* Not due yet: nothing goes out, the due time is returned. */
    int64_t now = util_mono_ms();
    int64_t due = pf_tick(&f->pf, now);
    assert_true(due > now && due != INT64_MAX);
    assert_int_equal(f->n_pubs, n);
    /* A reconnect republishes the held value at once; nothing waits then. */
    pf_republish(&f->pf);
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "12");
    n = f->n_pubs;
    assert_int_equal(pf_tick(&f->pf, due), INT64_MAX);
    assert_int_equal(f->n_pubs, n);
    /* Held again right after that publication; when due, exactly one
     * publication, of the latest value. */
    msg(f, "vol/a", "13");
    msg(f, "vol/a", "14");
    assert_int_equal(f->n_pubs, n);
    now = util_mono_ms();
    due = pf_tick(&f->pf, now);
    assert_true(due > now && due != INT64_MAX);
    assert_int_equal(pf_tick(&f->pf, due), INT64_MAX);
    assert_int_equal(f->n_pubs, n + 1);
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "14");
    /* Shutdown (INT64_MAX) sends what is held whatever the time. */
    msg(f, "vol/a", "15");
    assert_int_equal(f->n_pubs, n + 1);
    assert_int_equal(pf_tick(&f->pf, INT64_MAX), INT64_MAX);
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "15");
}

/* The mirror's rate: a second with more than MIRROR_RATE_HIGH publications
 * doubles the interval (up to MIRROR_STRETCH_CAP_MS), a calm one halves it,
 * a quiet gap resets it; an interval of 0 or >= the cap never stretches. */
static void test_mirror_rate_stretch(void **state)
{
    (void)state;
    struct mirror_rate r = {0};
    int64_t t = 5000;
    assert_false(mirror_rate_roll(&r, t, 250)); /* no window yet */
    assert_int_equal(mirror_rate_interval(&r, 250), 250);
    for (unsigned i = 0; i <= MIRROR_RATE_HIGH; i++)
        mirror_rate_note(&r, t + i % 900);
    assert_false(mirror_rate_roll(&r, t + 999, 250)); /* the second is not over */
    assert_true(mirror_rate_roll(&r, t + 1000, 250));
    assert_int_equal(mirror_rate_interval(&r, 250), 500);
    assert_int_equal(mirror_rate_interval(&r, 0), 0);
    assert_int_equal(mirror_rate_interval(&r, 1000), 1000);
    assert_int_equal(mirror_rate_interval(&r, 700), 1000); /* capped */
    /* Exactly MIRROR_RATE_HIGH is not over it: no change. */
    for (unsigned i = 0; i < MIRROR_RATE_HIGH; i++)
        mirror_rate_note(&r, t + 1000 + i % 900);
    assert_false(mirror_rate_roll(&r, t + 2000, 250));
    for (unsigned i = 0; i <= MIRROR_RATE_HIGH; i++)
        mirror_rate_note(&r, t + 2000 + i % 900);
    assert_true(mirror_rate_roll(&r, t + 3000, 250));
    assert_int_equal(mirror_rate_interval(&r, 250), 1000);
    /* At the cap a flood changes nothing more. */
    for (unsigned i = 0; i <= 3 * MIRROR_RATE_HIGH; i++)
        mirror_rate_note(&r, t + 3000 + i % 900);
    assert_false(mirror_rate_roll(&r, t + 4000, 250));
    assert_int_equal(mirror_rate_interval(&r, 250), 1000);
    /* A calm second (under a quarter of the limit) halves it. */
    for (unsigned i = 0; i < MIRROR_RATE_HIGH / 4 - 1; i++)
        mirror_rate_note(&r, t + 4000 + i);
    assert_true(mirror_rate_roll(&r, t + 5000, 250));
    assert_int_equal(mirror_rate_interval(&r, 250), 500);
    /* Two seconds without a roll: quiet, back to the configured interval. */
    mirror_rate_note(&r, t + 5001);
    assert_true(mirror_rate_roll(&r, t + 7000, 250));
    assert_int_equal(mirror_rate_interval(&r, 250), 250);
}

/* Restore registers every configured device in the devices table, in
 * chunks: with 2 500 devices no more than a chunk of rows waits in the
 * store's memory afterwards (the rest is committed), and all of them are in
 * the database after the next commit. */
static void test_restore_registers_devices_in_chunks(void **state)
{
    (void)state;
    enum { N = 2500 };
    size_t cap = 64 + (size_t)N * 128, len = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    len += (size_t)snprintf(y + len, cap - len, "devices:\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(
            y + len, cap - len,
            "  - {id: d%d, wb_mirror: false, state: [{topic: t/%d, field: v, type: int}]}\n", i, i);
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    wb_status pst = cfg_parse("many.yaml", y, len, &cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.lines[i]);
    cfg_errors_free(&errs);
    free(y);
    assert_int_equal(pst, WB_OK);
    char dir[] = "/tmp/wbmb-devmgr-XXXXXX", db[64], cmd[160];
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/state.db", dir);
    struct store_config sc = {.db_path = db, .commit_interval_ms = 60000};
    struct state_store *st = NULL;
    assert_int_equal(store_open(&st, &sc, NULL, 0), WB_OK);
    struct fixture f = {0};
    f.cfg = cfg;
    f.store = st;
    open_pipeline(&f);
    struct store_status ss;
    store_get_status(st, &ss);
    assert_true(ss.pending > 0 && ss.pending <= STORE_ROWS_PER_FLUSH);
    assert_int_equal(store_flush(st), WB_OK);
    snprintf(cmd, sizeof(cmd), "sqlite3 %s 'SELECT count(*) FROM devices'", db);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int rows = -1;
    assert_int_equal(fscanf(p, "%d", &rows), 1);
    pclose(p);
    assert_int_equal(rows, N);
    pf_close(&f.pf);
    store_close(st);
    cfg_free(cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Backpressure: while the sender's queue is over MIRROR_BACKLOG_MAX, even a
 * first change is held, a flush sends nothing and asks again soon; when the
 * queue drains the latest value goes out once; shutdown sends regardless. */
static void test_mirror_backpressure(void **state)
{
    struct fixture *f = *state;
    f->cfg->mirror_min_interval_ms = 100;
    f->cfg->wb_legacy_meta = false; /* one publication per meta: counted below */
    f->backlog = MIRROR_BACKLOG_MAX + 1;
    size_t n = f->n_pubs;
    msg(f, "vol/a", "20");
    msg(f, "vol/a", "21");
    assert_null(published(f, "/devices/tv/controls/volume")); /* meta only */
    assert_int_equal(f->n_pubs, n + 1);
    json_object *v = stored(f, "device:tv"); /* the store saw both */
    assert_int_equal(json_object_get_int(json_object_object_get(v, "volume")), 21);
    json_object_put(v);
    int64_t now = util_mono_ms() + 1000; /* past any interval */
    int64_t due = pf_tick(&f->pf, now);
    assert_true(due > now && due <= now + 100); /* soon, not never */
    assert_int_equal(f->n_pubs, n + 1);
    f->backlog = 0;
    assert_int_equal(pf_tick(&f->pf, due), INT64_MAX);
    assert_int_equal(f->n_pubs, n + 2);
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "21");
    /* Busy again: held; shutdown sends it anyway. */
    f->backlog = MIRROR_BACKLOG_MAX + 1;
    msg(f, "vol/a", "22");
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "21");
    assert_int_equal(pf_tick(&f->pf, INT64_MAX), INT64_MAX);
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "22");
}

/* Throttling a device with more controls than fit in struct dev: every
 * control's first change goes out, later ones are held and flushed. */
static void test_throttle_many_controls(void **state)
{
    struct fixture *f = *state;
    static const char *y = "bridge: {mirror_min_interval_ms: 60000}\n"
                           "devices:\n"
                           "  - id: multi\n"
                           "    state:\n"
                           "      - {topic: m/in, type: json}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(cfg_parse("multi.yaml", y, strlen(y), &cfg, &errs), WB_OK);
    struct mirror_publisher pub = {record, f, backlog};
    struct pf multi;
    pf_open(&multi, cfg, f->store, &pub, NULL, NULL);
    const char *one = "{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1}";
    const char *two = "{\"a\":2,\"b\":2,\"c\":2,\"d\":2,\"e\":2}";
    pf_feed_at(&multi, "m/in", one, strlen(one), false, 1000);
    const char *ctl[] = {"a", "b", "c", "d", "e"};
    char topic[64];
    for (int i = 0; i < 5; i++) {
        snprintf(topic, sizeof(topic), "/devices/multi/controls/%s", ctl[i]);
        assert_string_equal(published(f, topic), "1");
    }
    size_t n = f->n_pubs;
    pf_feed_at(&multi, "m/in", two, strlen(two), false, 1001);
    assert_int_equal(f->n_pubs, n); /* all five held */
    assert_int_equal(pf_tick(&multi, INT64_MAX), INT64_MAX);
    assert_int_equal(f->n_pubs, n + 5);
    for (int i = 0; i < 5; i++) {
        snprintf(topic, sizeof(topic), "/devices/multi/controls/%s", ctl[i]);
        assert_string_equal(published(f, topic), "2");
    }
    pf_close(&multi);
    cfg_free(cfg);
}

static void test_own_and_commands(void **state)
{
    struct fixture *f = *state;
    /* sensor's wildcard matches our own mirror topic of tv: ignored */
    msg(f, "/devices/tv/controls/temp", "20");
    struct devmgr_stats st;
    devmgr_get_stats(f->dm, &st);
    assert_int_equal(f->pf.own, 1);
    assert_int_equal(st.applied, 0);
    /* a foreign device's topic is input */
    msg(f, "/devices/wb-msw/controls/temp", "20.5");
    json_object *v = stored(f, "device:sensor");
    assert_true(json_object_get_double(json_object_object_get(v, "t")) == 20.5);
    json_object_put(v);
    assert_null(published(f, "/devices/sensor/controls/t")); /* wb_mirror: false */
    msg(f, "/devices/tv/controls/power_on/on", "1");
    msg(f, "/devices/br/controls/scenario/on", "movie");
    assert_int_equal(f->commands, 2);
    assert_string_equal(f->last_command, "br/scenario");
    /* An action of ours publishing to one of our own /on topics: the copy
     * the broker sends back is ignored once, a later user command is not. */
    sinks_expect_echo(&f->pf.sinks, "/devices/tv/controls/power_on/on", "1", 1);
    sinks_expect_echo(&f->pf.sinks, "some/device/on", "1", 1); /* not ours: not tracked */
    msg(f, "/devices/tv/controls/power_on/on", "1");
    assert_int_equal(f->commands, 2);
    msg(f, "/devices/tv/controls/power_on/on", "1");
    assert_int_equal(f->commands, 3);
}

static void test_availability(void **state)
{
    struct fixture *f = *state;
    assert_false(devmgr_device_online(f->dm, 1));
    msg(f, "z2m/plug/availability", "online");
    msg(f, "z2m/plug/availability", "online");
    msg(f, "z2m/plug/availability", "offline");
    msg(f, "z2m/plug/availability", "bogus");
    json_object *rows = NULL;
    assert_int_equal(api_connection_query(f->store, "plug", 10, &rows), WB_OK);
    assert_int_equal(json_object_array_length(rows), 2);
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(rows, 0), "event")),
        "offline");
    json_object_put(rows);

    /* timeout_s: a state message brings it online, silence takes it offline */
    pf_feed_at(&f->pf, "/devices/x/controls/temp", "1", 1, false, 10000);
    assert_true(devmgr_device_online(f->dm, 2));
    assert_true(devmgr_tick(f->dm, 12000) <= 15000);
    assert_true(devmgr_device_online(f->dm, 2));
    devmgr_tick(f->dm, 15001);
    assert_false(devmgr_device_online(f->dm, 2));
    assert_int_equal(api_connection_query(f->store, "sensor", 10, &rows), WB_OK);
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(rows, 0), "event")),
        "timeout");
    json_object_put(rows);
    assert_int_equal(f->connections, 4);
}

/* Devices sharing a topic: one subscription per filter, every binding fed. */
static void test_shared_topic_subscribed_once(void **state)
{
    (void)state;
    static const char *y = "devices:\n"
                           "  - id: a\n"
                           "    wb_mirror: false\n"
                           "    state:\n"
                           "      - {topic: bus/t, field: t, type: int}\n"
                           "      - {topic: bus/+/w, field: w, type: int}\n"
                           "  - id: b\n"
                           "    wb_mirror: false\n"
                           "    state:\n"
                           "      - {topic: bus/t, field: temp, type: int}\n"
                           "      - {topic: bus/+/w, field: watts, type: int}\n"
                           "    availability: {topic: bus/t, online: '1', offline: '0'}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(cfg_parse("shared.yaml", y, strlen(y), &cfg, &errs), WB_OK);
    struct store_config sc = {.backend = "memory"};
    struct state_store *store = NULL;
    assert_int_equal(store_open(&store, &sc, NULL, 0), WB_OK);
    struct pf p;
    pf_open(&p, cfg, store, NULL, NULL, NULL);
    struct devmgr *dm = p.dm;
    size_t n;
    const char *const *subs = pf_subscriptions(&p, &n);
    int t = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        t += strcmp(subs[i], "bus/t") == 0;
        w += strcmp(subs[i], "bus/+/w") == 0;
    }
    assert_int_equal(t, 1);
    assert_int_equal(w, 1);
    assert_int_equal(n, 3); /* and the bridge's scenario command */
    pf_feed(&p, "bus/x/w", "42", 2, false);
    json_object *sa = devmgr_state_new(dm, "a"), *sb = devmgr_state_new(dm, "b");
    assert_int_equal(json_object_get_int(json_object_object_get(sa, "w")), 42);
    assert_int_equal(json_object_get_int(json_object_object_get(sb, "watts")), 42);
    json_object_put(sa);
    json_object_put(sb);
    pf_close(&p);
    store_close(store);
    cfg_free(cfg);
}

/* The persisted state is written as JSON text straight from the device's
 * fields: every JSON type, escapes and nesting read back equal to what came
 * in (in the store and through devmgr_state_new), and a payload cannot
 * grow a state past its field bound. */
static void test_state_text_and_bound(void **state)
{
    (void)state;
    static const char *y = "devices:\n"
                           "  - id: raw\n"
                           "    state:\n"
                           "      - {topic: raw/in, type: json}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(cfg_parse("raw.yaml", y, strlen(y), &cfg, &errs), WB_OK);
    struct store_config sc = {.backend = "memory", .history_enabled = true};
    struct state_store *store = NULL;
    assert_int_equal(store_open(&store, &sc, NULL, 0), WB_OK);
    struct pf p;
    pf_open(&p, cfg, store, NULL, NULL, NULL);
    struct devmgr *dm = p.dm;

    const char *in = "{\"i\": -9007199254740993, \"d\": 1.50, \"t\": true, \"f\": false,"
                     " \"n\": null, \"s\": \"q\\\" b\\\\ sl/ nl\\n tab\\t \\u0001 \\u00e9\","
                     " \"o\": {\"a\": [1, \"x\", {\"b\": null}]}, \"e\": \"\"}";
    pf_feed(&p, "raw/in", in, strlen(in), false);
    struct devmgr_stats st;
    devmgr_get_stats(dm, &st);
    assert_int_equal(st.applied, 1);
    assert_int_equal(store_sink_errors(p.store_sink), 0);
    json_object *want = json_tokener_parse(in), *got = NULL;
    assert_int_equal(store_get(store, "device:raw", &got), WB_OK);
    assert_true(json_object_equal(got, want));
    json_object_put(got);
    got = devmgr_state_new(dm, "raw");
    assert_true(json_object_equal(got, want));
    json_object_put(got);
    json_object_put(want);

    /* 1 100 new fields in one message: the first ones up to the bound are
     * applied and persisted, the rest refused, nothing crashes. */
    size_t cap = 1100 * 24 + 16, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{");
    for (int i = 0; i < 1100; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"k%d\": %d", i ? ", " : "", i, i);
    snprintf(big + n, cap - n, "}");
    pf_feed_at(&p, "raw/in", big, strlen(big), false, 2000);
    free(big);
    got = devmgr_state_new(dm, "raw");
    assert_int_equal(json_object_object_length(got), 1024);
    assert_int_equal(json_object_get_int(json_object_object_get(got, "k1015")), 1015);
    assert_null(json_object_object_get(got, "k1016"));
    json_object_put(got);
    assert_int_equal(store_get(store, "device:raw", &got), WB_OK);
    assert_int_equal(json_object_object_length(got), 1024);
    json_object_put(got);

    pf_close(&p);
    store_close(store);
    cfg_free(cfg);
}

static void test_restore_and_reload(void **state)
{
    struct fixture *f = *state;
    msg(f, "relay/K1", "1");
    msg(f, "z2m/plug", "{\"power\": 5, \"meter\": {\"energy\": 9}}");
    /* A new process restores from the store: transient w is gone. */
    pf_close(&f->pf);
    assert_int_equal(open_pipeline(f), 2);
    json_object *plug = state_of(f->dm, "plug");
    assert_int_equal(json_object_get_int(json_object_object_get(plug, "e")), 9);
    assert_null(json_object_object_get(plug, "w"));
    /* A connect republishes values, metas and pushbuttons */
    f->n_pubs = 0;
    pf_republish(&f->pf);
    assert_string_equal(published(f, "/devices/tv/controls/power"), "1");
    assert_non_null(strstr(published(f, "/devices/tv/controls/power_on/meta"), "pushbutton"));
    assert_string_equal(published(f, "/devices/tv/meta/error"), "");
    /* Reload: live state (with transient fields) carried over. */
    msg(f, "z2m/plug", "{\"power\": 6, \"meter\": {\"energy\": 9}}");
    assert_int_equal(pf_reload(&f->pf, f->cfg), 0);
    f->dm = f->pf.dm;
    assert_int_equal(json_object_get_int(json_object_object_get(state_of(f->dm, "plug"), "w")), 6);
    pf_republish_finish(&f->pf); /* a reload while connected republishes */
    /* Shutdown: the offline markers. */
    pf_event(&f->pf, EV_STOPPING);
    assert_string_equal(published(f, "/devices/tv/meta/error"), "offline");
    assert_null(published(f, "/devices/sensor/meta/error"));
}

static void test_apply(void **state)
{
    struct fixture *f = *state;
    json_object *ch = json_object_new_object();
    json_object_object_add(ch, "power", json_object_new_boolean(1));
    assert_int_equal(devmgr_apply(f->dm, "tv", ch), WB_OK);
    assert_int_equal(devmgr_apply(f->dm, "nope", ch), WB_ERR_NOT_FOUND);
    json_object_put(ch);
    json_object *v = stored(f, "device:tv");
    assert_true(json_object_get_boolean(json_object_object_get(v, "power")));
    json_object_put(v);
}

/* How many publications went to topic since the records were cleared. */
static int count_pubs(struct fixture *f, const char *topic)
{
    int n = 0;
    for (size_t i = 0; i < f->n_pubs; i++)
        n += strcmp(f->pubs[i].topic, topic) == 0;
    return n;
}

/* A control meta goes out once per field and connection round: for a new
 * field when it first appears, for every field again after a republish. */
static void test_control_metas_once(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/plug", "{\"power\": 5}");
    msg(f, "z2m/plug", "{\"power\": 6}");
    assert_int_equal(count_pubs(f, "/devices/plug/controls/w/meta"), 1);
    assert_int_equal(count_pubs(f, "/devices/plug/controls/w"), 2);
    /* A second field appears later: its meta only, with the next order. */
    msg(f, "z2m/plug", "{\"power\": 6, \"meter\": {\"energy\": 1}}");
    assert_int_equal(count_pubs(f, "/devices/plug/controls/w/meta"), 1);
    assert_int_equal(count_pubs(f, "/devices/plug/controls/e/meta"), 1);
    assert_non_null(strstr(published(f, "/devices/plug/controls/e/meta"), "\"order\":2"));
    /* Two new fields in one message: both metas, then both values. */
    msg(f, "relay/K1", "1");
    msg(f, "vol/x", "7");
    assert_non_null(strstr(published(f, "/devices/tv/controls/power/meta"), "\"order\":1"));
    assert_non_null(strstr(published(f, "/devices/tv/controls/volume/meta"), "\"order\":2"));
    /* After a republish every meta is sent once more, values too. */
    f->n_pubs = 0;
    pf_republish(&f->pf);
    assert_int_equal(count_pubs(f, "/devices/plug/controls/w/meta"), 1);
    assert_int_equal(count_pubs(f, "/devices/plug/controls/e/meta"), 1);
    assert_int_equal(count_pubs(f, "/devices/tv/controls/volume/meta"), 1);
    assert_string_equal(published(f, "/devices/tv/controls/volume"), "7");
    msg(f, "vol/x", "8");
    assert_int_equal(count_pubs(f, "/devices/tv/controls/volume/meta"), 1);
    /* No mirror, no metas. */
    msg(f, "/devices/a/controls/temp", "1.5");
    assert_int_equal(count_pubs(f, "/devices/sensor/controls/t/meta"), 0);
}

/* The republish after a connect covers every mirrored device in steps of
 * REPUBLISH_STEP_DEVICES while the sender's queue is short (the tick asks
 * again soon while the round runs), publishes exactly what a round in one
 * go publishes, and a finished round (the unmirrored last device skipped)
 * says so. */
static void test_publish_in_steps(void **state)
{
    struct fixture *f = *state;
    enum { N = REPUBLISH_STEP_DEVICES + 4 };
    char y[4096];
    size_t len = (size_t)snprintf(y, sizeof(y), "devices:\n");
    for (int i = 0; i < N; i++)
        len +=
            (size_t)snprintf(y + len, sizeof(y) - len,
                             "  - {id: m%d, state: [{topic: m/%d, field: v, type: int}]}\n", i, i);
    len += (size_t)snprintf(y + len, sizeof(y) - len,
                            "  - {id: u, wb_mirror: false, state: [{topic: u/v, field: v, type: "
                            "int}]}\n");
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(cfg_parse("steps.yaml", y, len, &cfg, &errs), WB_OK);
    struct mirror_publisher pub = {record, f, backlog};
    struct pf p;
    pf_open(&p, cfg, f->store, &pub, NULL, NULL);
    char topic[64];
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "m/%d", i);
        pf_feed(&p, topic, "1", 1, false);
    }
    pf_feed(&p, "u/v", "1", 1, false);
    f->n_pubs = 0;
    pf_republish(&p);
    size_t all = f->n_pubs;
    assert_true(all < 256);
    struct pubrec ref[256];
    memcpy(ref, f->pubs, all * sizeof(ref[0]));
    pf_event(&p, EV_LINK_DOWN);

    f->n_pubs = 0;
    f->queue_sim = true;
    f->queued = 0;
    pf_event(&p, EV_LINK_UP); /* the bridge device at once */
    size_t bridge = f->n_pubs;
    snprintf(topic, sizeof(topic), "/devices/%s/meta", cfg->bridge_device_id);
    assert_non_null(published(f, topic));
    assert_null(published(f, "/devices/m0/meta"));
    /* The queue is long: nothing more, and a tick is wanted soon. */
    int64_t now = util_mono_ms();
    assert_int_equal(pf_tick(&p, now), now + REPUBLISH_POLL_MS);
    assert_int_equal(f->n_pubs, bridge);
    /* Drained: one step of devices. */
    f->queued = 0;
    now = util_mono_ms();
    assert_int_equal(pf_tick(&p, now), now + REPUBLISH_POLL_MS);
    snprintf(topic, sizeof(topic), "/devices/m%d/meta", REPUBLISH_STEP_DEVICES - 1);
    assert_non_null(published(f, topic));
    snprintf(topic, sizeof(topic), "/devices/m%d/meta", REPUBLISH_STEP_DEVICES);
    assert_null(published(f, topic));
    assert_true(pf_republishing(&p));
    /* The rest, then the unmirrored u is skipped: the round is complete. */
    f->queued = 0;
    assert_int_equal(pf_tick(&p, util_mono_ms()), INT64_MAX);
    assert_false(pf_republishing(&p));
    assert_null(published(f, "/devices/u/meta"));
    assert_int_equal(f->n_pubs, all);
    for (size_t i = 0; i < all; i++) {
        assert_string_equal(f->pubs[i].topic, ref[i].topic);
        assert_string_equal(f->pubs[i].payload, ref[i].payload);
    }
    /* Nothing left. */
    f->queued = 0;
    assert_int_equal(pf_tick(&p, util_mono_ms()), INT64_MAX);
    assert_int_equal(f->n_pubs, all);
    f->queue_sim = false;
    pf_close(&p);
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transition_persisted_and_mirrored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_transient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mirror_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mirror_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_many_controls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_and_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_availability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_and_reload, setup, teardown),
        cmocka_unit_test(test_state_text_and_bound),
        cmocka_unit_test(test_shared_topic_subscribed_once),
        cmocka_unit_test_setup_teardown(test_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_metas_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_in_steps, setup, teardown),
        cmocka_unit_test(test_mirror_rate_stretch),
        cmocka_unit_test(test_restore_registers_devices_in_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

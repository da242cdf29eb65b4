/*
 * test_topic_gate.c - the topic gate (topic_gate.h): MQTT's UTF-8 rules for
 * topic names, filters and single levels, mosquitto's limits, the counted
 * and rate-limited tgate_admit(), the log-safe excerpt, and the gate in
 * the real publish and subscribe path (mqttc against a real mosquitto):
 * what it refuses is never sent, so the broker never drops the client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "broker_fixture.h"
#include "wbmb/config.h"
#include "wbmb/mirror.h"
#include "wbmb/mqttc.h"
#include "wbmb/topic_gate.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(tgate_check(S("/devices/tv/controls/power"), TGATE_NAME), TGATE_OK);
    assert_int_equal(tgate_check(S("a"), TGATE_NAME), TGATE_OK);
    assert_int_equal(tgate_check(S("/"), TGATE_NAME), TGATE_OK);
    assert_int_equal(tgate_check(S("a//b. $x"), TGATE_NAME), TGATE_OK);
    assert_int_equal(tgate_check(S("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80"), TGATE_NAME),
                     TGATE_OK);
    assert_int_equal(tgate_check(S(""), TGATE_NAME), TGATE_EMPTY);
    assert_int_equal(tgate_check(NULL, 0, TGATE_NAME), TGATE_EMPTY);
    assert_int_equal(tgate_check(S("a+b"), TGATE_NAME), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("a/#"), TGATE_NAME), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("a/+/b"), TGATE_NAME), TGATE_WILDCARD);
}

/* Every code point MQTT and mosquitto refuse, one by one. */
static void test_characters(void **state)
{
    (void)state;
    char t[8];
    for (int c = 1; c < 0x20; c++) {
        t[0] = 'a', t[1] = (char)c, t[2] = 'b';
        assert_int_equal(tgate_check(t, 3, TGATE_NAME), TGATE_CONTROL);
        assert_int_equal(tgate_check(t, 3, TGATE_LEVEL), TGATE_CONTROL);
    }
    assert_int_equal(tgate_check(S("a\x7f"), TGATE_NAME), TGATE_CONTROL);
    assert_int_equal(tgate_check(S("a\0b"), TGATE_NAME), TGATE_NUL);
    /* U+0080..U+009F (C1 controls), encoded as C2 80..C2 9F */
    for (int c = 0x80; c <= 0x9F; c++) {
        t[0] = (char)0xC2, t[1] = (char)c;
        assert_int_equal(tgate_check(t, 2, TGATE_NAME), TGATE_CONTROL);
    }
    assert_int_equal(tgate_check(S("\xc2\xa0"), TGATE_NAME), TGATE_OK); /* U+00A0 */
    /* non-characters: U+FDD0..U+FDEF and U+nFFFE/U+nFFFF in every plane */
    assert_int_equal(tgate_check(S("\xef\xb7\x90"), TGATE_NAME), TGATE_NONCHAR);     /* U+FDD0 */
    assert_int_equal(tgate_check(S("\xef\xb7\xaf"), TGATE_NAME), TGATE_NONCHAR);     /* U+FDEF */
    assert_int_equal(tgate_check(S("\xef\xb7\xb0"), TGATE_NAME), TGATE_OK);          /* U+FDF0 */
    assert_int_equal(tgate_check(S("\xef\xbf\xbe"), TGATE_NAME), TGATE_NONCHAR);     /* U+FFFE */
    assert_int_equal(tgate_check(S("\xef\xbf\xbf"), TGATE_NAME), TGATE_NONCHAR);     /* U+FFFF */
    assert_int_equal(tgate_check(S("\xef\xbf\xbd"), TGATE_NAME), TGATE_OK);          /* U+FFFD */
    assert_int_equal(tgate_check(S("\xf0\x9f\xbf\xbe"), TGATE_NAME), TGATE_NONCHAR); /* 1FFFE */
    assert_int_equal(tgate_check(S("\xf4\x8f\xbf\xbf"), TGATE_NAME), TGATE_NONCHAR); /* 10FFFF */
    /* malformed: surrogates, overlongs, stray continuation, beyond U+10FFFF, truncated */
    assert_int_equal(tgate_check(S("\xed\xa0\x80"), TGATE_NAME), TGATE_BAD_UTF8); /* D800 */
    assert_int_equal(tgate_check(S("\xed\xbf\xbf"), TGATE_NAME), TGATE_BAD_UTF8); /* DFFF */
    assert_int_equal(tgate_check(S("\xc0\xaf"), TGATE_NAME), TGATE_BAD_UTF8);     /* '/' */
    assert_int_equal(tgate_check(S("\xc0\x80"), TGATE_NAME), TGATE_BAD_UTF8);     /* NUL */
    assert_int_equal(tgate_check(S("\xe0\x80\xaf"), TGATE_NAME), TGATE_BAD_UTF8);
    assert_int_equal(tgate_check(S("\xf0\x80\x80\xaf"), TGATE_NAME), TGATE_BAD_UTF8);
    assert_int_equal(tgate_check(S("\x80"), TGATE_NAME), TGATE_BAD_UTF8);
    assert_int_equal(tgate_check(S("\xf4\x90\x80\x80"), TGATE_NAME), TGATE_BAD_UTF8);
    assert_int_equal(tgate_check(S("\xf5\x80\x80\x80"), TGATE_NAME), TGATE_BAD_UTF8);
    assert_int_equal(tgate_check(S("a\xe2\x82"), TGATE_NAME), TGATE_BAD_UTF8);
    assert_int_equal(tgate_check(S("\xff"), TGATE_NAME), TGATE_BAD_UTF8);
}

static void test_filters_and_levels(void **state)
{
    (void)state;
    assert_int_equal(tgate_check(S("#"), TGATE_FILTER), TGATE_OK);
    assert_int_equal(tgate_check(S("+"), TGATE_FILTER), TGATE_OK);
    assert_int_equal(tgate_check(S("/devices/+/controls/#"), TGATE_FILTER), TGATE_OK);
    assert_int_equal(tgate_check(S("a/+/+"), TGATE_FILTER), TGATE_OK);
    assert_int_equal(tgate_check(S("a/#/b"), TGATE_FILTER), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("a/b#"), TGATE_FILTER), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("a/+b"), TGATE_FILTER), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("a+/b"), TGATE_FILTER), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("a/\x09/+"), TGATE_FILTER), TGATE_CONTROL);
    assert_int_equal(tgate_check(S("temperature"), TGATE_LEVEL), TGATE_OK);
    assert_int_equal(tgate_check(S("a.b c-d"), TGATE_LEVEL), TGATE_OK);
    assert_int_equal(tgate_check(S("a/b"), TGATE_LEVEL), TGATE_SEPARATOR);
    assert_int_equal(tgate_check(S("+"), TGATE_LEVEL), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S("#"), TGATE_LEVEL), TGATE_WILDCARD);
    assert_int_equal(tgate_check(S(""), TGATE_LEVEL), TGATE_EMPTY);
    /* the mirror's control names: the level rules and at most 128 bytes */
    char name[MIRROR_FIELD_MAX + 2];
    memset(name, 'n', sizeof(name));
    name[MIRROR_FIELD_MAX] = '\0';
    assert_true(mirror_field_name_ok(name));
    name[MIRROR_FIELD_MAX] = 'n', name[MIRROR_FIELD_MAX + 1] = '\0';
    assert_false(mirror_field_name_ok(name));
    assert_false(mirror_field_name_ok("a\tb"));
    assert_false(mirror_field_name_ok("a\xc2\x85"));
    assert_false(mirror_field_name_ok("a\xef\xbf\xbe"));
    assert_false(mirror_field_name_ok("a\xef\xb7\x90"));
    assert_false(mirror_field_name_ok("a\x7f"));
    assert_false(mirror_field_name_ok(""));
    assert_true(mirror_field_name_ok("battery"));
}

/* mosquitto's limits: 65 535 bytes, 200 levels (more drops the client). */
static void test_limits(void **state)
{
    (void)state;
    size_t n = TGATE_MAX_LEN + 1;
    char *t = malloc(n);
    memset(t, 'a', n);
    assert_int_equal(tgate_check(t, TGATE_MAX_LEN, TGATE_NAME), TGATE_OK);
    assert_int_equal(tgate_check(t, n, TGATE_NAME), TGATE_TOO_LONG);
    for (size_t i = 0; i < TGATE_MAX_LEVELS; i++)
        t[2 * i + 1] = '/';
    assert_int_equal(tgate_check(t, 2 * TGATE_MAX_LEVELS + 1, TGATE_NAME), TGATE_OK);
    t[2 * TGATE_MAX_LEVELS + 1] = '/';
    assert_int_equal(tgate_check(t, 2 * TGATE_MAX_LEVELS + 3, TGATE_NAME), TGATE_TOO_DEEP);
    free(t);
}

static void test_admit_counts(void **state)
{
    (void)state;
    uint64_t before = tgate_refused();
    assert_int_equal(tgate_admit("/devices/x/controls/ok", TGATE_NAME), TGATE_OK);
    assert_int_equal(tgate_refused(), before);
    for (int i = 0; i < 50; i++) /* logged once a second at most, counted every time */
        assert_int_equal(tgate_admit("/devices/x/controls/a\tb", TGATE_NAME), TGATE_CONTROL);
    assert_int_equal(tgate_admit("x/#", TGATE_NAME), TGATE_WILDCARD);
    assert_int_equal(tgate_admit("x/#", TGATE_FILTER), TGATE_OK);
    assert_int_equal(tgate_admit(NULL, TGATE_NAME), TGATE_EMPTY);
    assert_int_equal(tgate_refused(), before + 52);
    for (int v = 0; v < TGATE_VERDICT_COUNT_; v++)
        assert_non_null(tgate_strerror((enum tgate_verdict)v));
}

static void test_excerpt(void **state)
{
    (void)state;
    char out[16];
    tgate_excerpt(S("a\tb\xc2\x85"), out, sizeof(out));
    assert_string_equal(out, "a?b??");
    tgate_excerpt(S("0123456789abcdefghij"), out, sizeof(out));
    assert_string_equal(out, "0123456789ab...");
    tgate_excerpt(S(""), out, sizeof(out));
    assert_string_equal(out, "");
}

struct seen {
    atomic_int msgs, after, ups, downs;
};

static void on_msg(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    (void)payload, (void)len, (void)retained;
    struct seen *s = ud;
    atomic_fetch_add(&s->msgs, 1);
    if (strcmp(topic, "gate/after") == 0)
        atomic_fetch_add(&s->after, 1);
}

static void on_conn(void *ud, bool up)
{
    struct seen *s = ud;
    atomic_fetch_add(up ? &s->ups : &s->downs, 1);
}

static bool wait_until(atomic_int *v, int at_least)
{
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (atomic_load(v) < at_least && util_mono_ms() < end)
        sleep_ms(10);
    return atomic_load(v) >= at_least;
}

/* Defect 1 at the client: before the gate, mqttc_publish() handed a topic
 * with a TAB to paho, mosquitto dropped the connection ("malformed
 * packet") and the reconnect started over. Now it is refused, counted, and
 * the connection stays up; a bad filter is left out of the subscription. */
static void test_mqttc_refuses_and_stays_connected(void **state)
{
    (void)state;
    struct broker b;
    broker_prepare(&b, free_port(), NULL);
    broker_run(&b);
    struct seen s = {0};
    struct mqttc_options o = {
        .host = "127.0.0.1", .port = b.port, .client_id = "t-gate", .keepalive_s = 5};
    char err[256];
    struct mqttc *c = mqttc_create(&o, on_msg, on_conn, &s, err, sizeof(err));
    assert_non_null(c);
    const char *filters[] = {"bad\t/#", "gate/#", "x/#/y"};
    uint64_t refused0 = tgate_refused();
    assert_int_equal(mqttc_set_subscriptions(c, filters, 3, 0), WB_OK);
    assert_int_equal(tgate_refused(), refused0 + 2);
    assert_int_equal(mqttc_start(c), WB_OK);
    assert_true(wait_until(&s.ups, 1));
    /* the subscription is asynchronous: probe until one comes back */
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (atomic_load(&s.msgs) == 0 && util_mono_ms() < end) {
        mqttc_publish(c, "gate/probe", "p", 1, 0, false);
        sleep_ms(50);
    }
    assert_true(atomic_load(&s.msgs) > 0);
    char deep[2 * TGATE_MAX_LEVELS + 16] = "gate"; /* 201 levels below gate */
    for (size_t i = 4; i < 2 * TGATE_MAX_LEVELS + 6; i += 2)
        memcpy(deep + i, "/x", 3);
    const char *bad[] = {"gate/a\tb",
                         "gate/\x7f",
                         "gate/\xc2\x85",
                         "gate/\xef\xbf\xbe",
                         "gate/\xef\xb7\x90",
                         "gate/\xed\xa0\x80",
                         "gate/\xc0\xaf",
                         "gate/x+",
                         "gate/#",
                         deep,
                         ""};
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    refused0 = tgate_refused();
    for (size_t i = 0; i < nbad; i++) {
        assert_int_equal(mqttc_publish(c, bad[i], "v", 1, 1, true), WB_ERR_INVALID);
        assert_int_equal(mqttc_publish(c, bad[i], "v", 1, 0, false), WB_ERR_INVALID);
    }
    assert_int_equal(tgate_refused(), refused0 + 2 * (nbad - 1)); /* "" is refused before */
    assert_int_equal(mqttc_publish(c, "gate/after", "ok", 2, 1, false), WB_OK);
    assert_true(wait_until(&s.after, 1));
    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_true(st.connected);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.disconnects, 0);
    assert_int_equal(atomic_load(&s.downs), 0);
    mqttc_stop(c, 1000);
    mqttc_destroy(c);
    broker_cleanup(&b);
    /* The Last Will is a publication too. */
    o.will_topic = "/devices/br/meta/error\x7f";
    o.will_payload = "offline";
    assert_null(mqttc_create(&o, on_msg, on_conn, &s, err, sizeof(err)));
    assert_string_equal(err, "invalid Last Will topic (see the log)");
}

/* The config loader uses the gate for configured topics and field names:
 * what the broker would refuse is a config error (FILE:LINE:COLUMN). */
static void test_config_uses_the_gate(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "devices:\n  - id: d\n    state:\n      - {topic: \"a\\tb\", field: x, type: int}\n",
        "devices:\n  - id: d\n    state:\n      - {topic: \"a\\u0085/+\", field: x, type: int}\n",
        "devices:\n  - id: d\n    state:\n      - {topic: a/b, field: \"x\\u007f\", type: int}\n",
        "devices:\n  - id: d\n    state:\n      - {topic: a/b, type: json, fields: {\"y\\ufffe\": "
        "p}}\n",
        "devices:\n  - id: d\n    actions:\n      go: {topic: \"cmd/\\x01\", payload: '1'}\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config *cfg = NULL;
        struct cfg_errors errs = {0};
        assert_int_equal(cfg_parse("t.yaml", bad[i], strlen(bad[i]), &cfg, &errs), WB_ERR_CONFIG);
        assert_null(cfg);
        assert_true(errs.n >= 1);
        assert_non_null(strstr(errs.lines[0], "t.yaml:"));
        cfg_errors_free(&errs);
    }
    static const char good[] =
        "devices:\n  - id: d\n    state:\n      - {topic: \"caf\\u00e9/+\", field: \"t\\u00e9\", "
        "type: int}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(cfg_parse("t.yaml", good, strlen(good), &cfg, &errs), WB_OK);
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_characters),
        cmocka_unit_test(test_filters_and_levels),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_admit_counts),
        cmocka_unit_test(test_excerpt),
        cmocka_unit_test(test_mqttc_refuses_and_stays_connected),
        cmocka_unit_test(test_config_uses_the_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

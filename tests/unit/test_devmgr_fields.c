/*
 * test_devmgr_fields.c - a JSON state message applied field by field
 * (devmgr_fields.c) and what the mirror makes of odd fields: names that
 * cannot be a control (applied, stored, served, never published), bad
 * values rejected alone and counted, integers beyond int64 as doubles,
 * NULs in values published byte-exact, nulls as meta/error "r", and a
 * control's meta type following its value. The recording publisher checks
 * every topic against the topic gate (an oracle for the whole mirror).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "domain/devmgr_int.h"
#include "pipeline_fixture.h"
#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/mirror.h"
#include "wbmb/state_store.h"
#include "wbmb/topic_gate.h"

static const char *yaml =
    "bridge: {device_id: br, mirror_min_interval_ms: 0, wb_legacy_meta: false}\n"
    "devices:\n"
    "  - id: z\n"
    "    state:\n"
    "      - {topic: z2m/z, type: json}\n"
    "      - {topic: z/relay, field: power, type: bool}\n"
    "  - id: other\n"
    "    state:\n"
    "      - {topic: z2m/other, type: json}\n";

#define MAX_PUBS 4096

struct pubrec {
    char topic[512];
    char *payload; /* exactly len bytes (+ a NUL for convenience) */
    size_t len;
};

struct fixture {
    struct config *cfg;
    struct state_store *store;
    struct devmgr *dm; /* pf.dm */
    struct pf pf;
    struct pubrec pubs[MAX_PUBS];
    size_t n_pubs;
};

static wb_status record(void *ud, const char *topic, const char *payload, size_t len, int qos,
                        bool retained)
{
    (void)qos, (void)retained;
    struct fixture *f = ud;
    /* The oracle: nothing the mirror publishes may fail the gate. */
    if (tgate_check(topic, strlen(topic), TGATE_NAME) != TGATE_OK)
        fail_msg("published to a topic the gate refuses: '%s'", topic);
    assert_true(f->n_pubs < MAX_PUBS);
    struct pubrec *p = &f->pubs[f->n_pubs++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->payload = malloc(len + 1);
    memcpy(p->payload, payload, len);
    p->payload[len] = '\0';
    p->len = len;
    return WB_OK;
}

static void clear_pubs(struct fixture *f)
{
    for (size_t i = 0; i < f->n_pubs; i++)
        free(f->pubs[i].payload);
    f->n_pubs = 0;
}

/* The last publication to topic, or NULL. */
static const struct pubrec *last_pub(struct fixture *f, const char *topic)
{
    for (size_t i = f->n_pubs; i-- > 0;)
        if (strcmp(f->pubs[i].topic, topic) == 0)
            return &f->pubs[i];
    return NULL;
}

static const char *published(struct fixture *f, const char *topic)
{
    const struct pubrec *p = last_pub(f, topic);
    return p ? p->payload : NULL;
}

static int count_pubs(struct fixture *f, const char *topic)
{
    int n = 0;
    for (size_t i = 0; i < f->n_pubs; i++)
        n += strcmp(f->pubs[i].topic, topic) == 0;
    return n;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cfg_errors errs = {0};
    if (cfg_parse("test.yaml", yaml, strlen(yaml), &f->cfg, &errs) != WB_OK)
        return -1;
    struct store_config sc = {.backend = "memory"};
    if (store_open(&f->store, &sc, NULL, 0) != WB_OK)
        return -1;
    struct mirror_publisher pub = {record, f, NULL};
    pf_open(&f->pf, f->cfg, f->store, &pub, NULL, NULL);
    f->dm = f->pf.dm;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pf_close(&f->pf);
    store_close(f->store);
    cfg_free(f->cfg);
    clear_pubs(f);
    free(f);
    return 0;
}

static void msgn(struct fixture *f, const char *topic, const char *payload, size_t len)
{
    pf_feed(&f->pf, topic, payload, len, false);
}

static void msg(struct fixture *f, const char *topic, const char *payload)
{
    msgn(f, topic, payload, strlen(payload));
}

/* The device's state (HTTP's view) as compact JSON text, in buf. */
static const char *state_text(struct fixture *f, const char *id, char *buf, size_t cap)
{
    json_object *s = devmgr_state_new(f->dm, id);
    snprintf(buf, cap, "%s", json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN));
    json_object_put(s);
    return buf;
}

/* What the store holds for key as JSON text, in buf. */
static const char *stored_text(struct fixture *f, const char *key, char *buf, size_t cap)
{
    json_object *v = NULL;
    assert_int_equal(store_get(f->store, key, &v), WB_OK);
    snprintf(buf, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    json_object_put(v);
    return buf;
}

static struct devmgr_stats stats(struct fixture *f)
{
    struct devmgr_stats st;
    devmgr_get_stats(f->dm, &st);
    return st;
}

/* Defect 1: a key that cannot be a topic level (a TAB, U+007F, U+0085,
 * U+FFFE, U+FDD0, empty, '/', '+', '#') was published as a control topic
 * (mosquitto drops the connection) or refused the whole message. Now every
 * field applies, is stored and served; only real control names go out. */
static void test_odd_keys_applied_not_mirrored(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/z",
        "{\"temperature\":21.5,\"a\\tb\":1,\"c\\u007f\":2,\"d\\u0085\":3,\"e\\ufffe\":4,"
        "\"f\\ufdd0\":5,\"\":6,\"g/h\":7,\"i+\":8,\"#\":9,\"j.k\":10}");
    char buf[1024];
    json_object *s = devmgr_state_new(f->dm, "z");
    assert_int_equal(json_object_object_length(s), 11);
    assert_int_equal(json_object_get_int(json_object_object_get(s, "a\tb")), 1);
    assert_int_equal(json_object_get_int(json_object_object_get(s, "")), 6);
    assert_int_equal(json_object_get_int(json_object_object_get(s, "g/h")), 7);
    json_object_put(s);
    stored_text(f, "device:z", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"a\\tb\":1"));
    assert_non_null(strstr(buf, "\"g\\/h\":7"));
    assert_string_equal(published(f, "/devices/z/controls/temperature"), "21.5");
    assert_string_equal(published(f, "/devices/z/controls/j.k"), "10");
    /* nothing else but the two controls' values and metas */
    assert_int_equal(f->n_pubs, 4);
    struct devmgr_stats st = stats(f);
    assert_int_equal(st.applied, 1);
    assert_int_equal(st.fields_rejected, 0);
    /* A republish (after a connect) keeps to the same rule. */
    clear_pubs(f);
    pf_republish(&f->pf);
    assert_string_equal(published(f, "/devices/z/controls/temperature"), "21.5");
    assert_null(published(f, "/devices/z/controls/a\tb"));
}

/* Defect 2: a string with a NUL went out with its length but the bytes
 * after the NUL were whatever the buffer held; a long one was cut at it. */
static void test_nul_in_value_byte_exact(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/z", "{\"v\":\"\\u0000QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\"}");
    const struct pubrec *p = last_pub(f, "/devices/z/controls/v");
    assert_non_null(p);
    assert_int_equal(p->len, 31);
    assert_memory_equal(p->payload, "\0QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", 31);
    /* longer than the formatting buffer: the library's text, its length */
    char big[700] = "{\"w\":\"ab\\u0000";
    size_t n = strlen(big);
    memset(big + n, 'Z', 600);
    memcpy(big + n + 600, "\"}", 3);
    msg(f, "z2m/z", big);
    p = last_pub(f, "/devices/z/controls/w");
    assert_non_null(p);
    assert_int_equal(p->len, 603);
    assert_memory_equal(p->payload, "ab\0ZZZ", 6);
    assert_int_equal(p->payload[602], 'Z');
    /* and mirror_format_value() itself */
    char out[64];
    memset(out, 'X', sizeof(out));
    json_object *v = json_object_new_string_len("a\0b", 3);
    assert_int_equal(mirror_format_value(v, out, sizeof(out)), 3);
    assert_memory_equal(out, "a\0b", 4);
    assert_int_equal(mirror_format_value(v, out, 2), 3); /* too small: the length it needs */
    json_object_put(v);
}

/* Defect 3: one bad field (a long name, a number beyond range) refused the
 * message; an integer beyond int64 was refused while 1e23 was taken. */
static void test_bad_fields_rejected_alone(void **state)
{
    struct fixture *f = *state;
    char m[512], name[DEV_FIELD_NAME_MAX + 2];
    memset(name, 'n', sizeof(name));
    name[DEV_FIELD_NAME_MAX + 1] = '\0';
    snprintf(m, sizeof(m),
             "{\"ok\":1,\"%s\":2,\"big\":9223372036854775808,\"neg\":-9223372036854775809,"
             "\"huge\":1e400,\"nan\":NaN,\"inf\":{\"x\":[-Infinity]},\"e23\":1e23,"
             "\"max\":9223372036854775807}",
             name);
    msg(f, "z2m/z", m);
    struct devmgr_stats st = stats(f);
    assert_int_equal(st.applied, 1);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.fields_rejected, 4); /* the long name, huge, nan, inf */
    json_object *s = devmgr_state_new(f->dm, "z");
    assert_int_equal(json_object_object_length(s), 5);
    assert_true(json_object_is_type(json_object_object_get(s, "big"), json_type_double));
    assert_true(json_object_get_double(json_object_object_get(s, "big")) == 9223372036854775808.0);
    assert_true(json_object_get_double(json_object_object_get(s, "neg")) == -9223372036854775808.0);
    assert_true(json_object_is_type(json_object_object_get(s, "max"), json_type_int));
    assert_true(json_object_get_int64(json_object_object_get(s, "max")) == INT64_MAX);
    json_object_put(s);
    char buf[1024];
    stored_text(f, "device:z", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"big\":9223372036854775808.0"));
    assert_non_null(strstr(buf, "\"max\":9223372036854775807"));
    assert_null(strstr(buf, "huge"));
    assert_string_equal(published(f, "/devices/z/controls/big"), "9.223372036854776e+18");
    assert_string_equal(published(f, "/devices/z/controls/e23"), "1e+23");
    /* the stored text reads back as the same double (restore) */
    json_object *back = json_tokener_parse(buf);
    assert_true(json_object_get_double(json_object_object_get(back, "big")) ==
                9223372036854775808.0);
    json_object_put(back);
    /* Only bad fields: a rejected message, nothing applied. */
    msg(f, "z2m/z", "{\"huge\":-1e999}");
    st = stats(f);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.applied, 1);
    assert_int_equal(st.fields_rejected, 5);
    /* A key with an escaped NUL would be cut by json-c: the message is refused. */
    msg(f, "z2m/z", "{\"ok\":2,\"a\\u0000b\":1}");
    assert_int_equal(stats(f).rejected, 2);
    s = devmgr_state_new(f->dm, "z");
    assert_int_equal(json_object_get_int(json_object_object_get(s, "ok")), 1); /* unchanged */
    json_object_put(s);
    /* The other device applies throughout. */
    msg(f, "z2m/other", "{\"t\":1}");
    assert_string_equal(published(f, "/devices/other/controls/t"), "1");
}

/* Many bad fields in one message (more than one batch of deletions). */
static void test_many_bad_fields(void **state)
{
    struct fixture *f = *state;
    char m[4096];
    size_t n = (size_t)sprintf(m, "{\"good\":1");
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(m + n, ",\"bad%d\":%s", i, i & 1 ? "1e400" : "[NaN]");
    sprintf(m + n, "}");
    msg(f, "z2m/z", m);
    assert_int_equal(stats(f).fields_rejected, 40);
    json_object *s = devmgr_state_new(f->dm, "z");
    assert_int_equal(json_object_object_length(s), 1);
    json_object_put(s);
}

/* Past DEV_MAX_FIELDS a new field is rejected alone; changes to the
 * fields the device has still apply. */
static void test_field_limit_per_field(void **state)
{
    struct fixture *f = *state;
    char *m = malloc(64 * 1024);
    size_t n = 0;
    n += (size_t)sprintf(m + n, "{");
    for (int i = 0; i < DEV_MAX_FIELDS; i++)
        n += (size_t)sprintf(m + n, "%s\"k%d\":1", i ? "," : "", i);
    sprintf(m + n, "}");
    msg(f, "z2m/z", m);
    assert_int_equal(stats(f).fields_rejected, 0);
    msg(f, "z2m/z", "{\"new\":1,\"k5\":2}");
    assert_int_equal(stats(f).fields_rejected, 1);
    assert_int_equal(stats(f).applied, 2);
    assert_string_equal(published(f, "/devices/z/controls/k5"), "2");
    free(m);
}

/* Defect 4: a null went out as an empty retained value (deleting the
 * value on the broker); now the control keeps its value and says "r". */
static void test_null_is_a_read_error(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/z", "{\"battery\":87}");
    assert_string_equal(published(f, "/devices/z/controls/battery"), "87");
    clear_pubs(f);
    msg(f, "z2m/z", "{\"battery\":null}");
    assert_int_equal(count_pubs(f, "/devices/z/controls/battery"), 0);
    assert_string_equal(published(f, "/devices/z/controls/battery/meta/error"), "r");
    char buf[256];
    assert_string_equal(state_text(f, "z", buf, sizeof(buf)), "{\"battery\":null}");
    assert_string_equal(stored_text(f, "device:z", buf, sizeof(buf)), "{\"battery\":null}");
    /* a republish keeps to it */
    clear_pubs(f);
    pf_republish(&f->pf);
    assert_int_equal(count_pubs(f, "/devices/z/controls/battery"), 0);
    assert_string_equal(published(f, "/devices/z/controls/battery/meta/error"), "r");
    /* a value clears the error */
    clear_pubs(f);
    msg(f, "z2m/z", "{\"battery\":88}");
    assert_string_equal(published(f, "/devices/z/controls/battery/meta/error"), "");
    assert_string_equal(published(f, "/devices/z/controls/battery"), "88");
    clear_pubs(f);
    msg(f, "z2m/z", "{\"battery\":89}");
    assert_int_equal(count_pubs(f, "/devices/z/controls/battery/meta/error"), 0);
    /* no payload of any publication was ever empty except error clears */
}

/* A held (throttled) value must not go out after a null replaced it. */
static void test_null_drops_held_value(void **state)
{
    struct fixture *f = *state;
    f->cfg->mirror_min_interval_ms = 60000;
    msg(f, "z2m/z", "{\"b\":1}");
    msg(f, "z2m/z", "{\"b\":2}"); /* held */
    msg(f, "z2m/z", "{\"b\":null}");
    clear_pubs(f);
    pf_tick(&f->pf, INT64_MAX);
    assert_int_equal(count_pubs(f, "/devices/z/controls/b"), 0);
}

/* Defect 4: the meta type was fixed by the first value (null then 87 stayed
 * "text"); it now follows the value, unless a plain binding declares it. */
static void test_meta_type_follows_value(void **state)
{
    struct fixture *f = *state;
    msg(f, "z2m/z", "{\"x\":null}");
    assert_non_null(strstr(published(f, "/devices/z/controls/x/meta"), "\"type\":\"text\""));
    msg(f, "z2m/z", "{\"x\":87}");
    assert_non_null(strstr(published(f, "/devices/z/controls/x/meta"), "\"type\":\"value\""));
    assert_int_equal(count_pubs(f, "/devices/z/controls/x/meta"), 2);
    msg(f, "z2m/z", "{\"x\":88}");
    assert_int_equal(count_pubs(f, "/devices/z/controls/x/meta"), 2);
    msg(f, "z2m/z", "{\"x\":null}"); /* unknown: the type stays */
    assert_int_equal(count_pubs(f, "/devices/z/controls/x/meta"), 2);
    msg(f, "z2m/z", "{\"x\":true}");
    assert_non_null(strstr(published(f, "/devices/z/controls/x/meta"), "\"type\":\"switch\""));
    msg(f, "z2m/z", "{\"x\":\"abc\",\"y\":1}");
    assert_non_null(strstr(published(f, "/devices/z/controls/x/meta"), "\"type\":\"text\""));
    assert_non_null(strstr(published(f, "/devices/z/controls/x/meta"), "\"order\":1"));
    assert_non_null(strstr(published(f, "/devices/z/controls/y/meta"), "\"order\":2"));
    /* power is declared bool by z/relay: a text value keeps it a switch */
    msg(f, "z/relay", "1");
    assert_non_null(strstr(published(f, "/devices/z/controls/power/meta"), "\"type\":\"switch\""));
    msg(f, "z2m/z", "{\"power\":\"weird\"}");
    assert_int_equal(count_pubs(f, "/devices/z/controls/power/meta"), 1);
    assert_string_equal(published(f, "/devices/z/controls/power"), "weird");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_odd_keys_applied_not_mirrored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_in_value_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fields_rejected_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_field_limit_per_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_bad_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_is_a_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_drops_held_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_type_follows_value, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

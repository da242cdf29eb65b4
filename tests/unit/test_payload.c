/*
 * test_payload.c - unit tests of src/domain/payload.c: the strict scalar
 * rules per type (with the nasty inputs devices really send), JSON object
 * parsing limits, field mapping, and the UTF-8 validator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbmb/payload.h"

#define S(lit) lit, sizeof(lit) - 1

struct scase {
    const char *buf;
    size_t len;
    wb_status st;
    const char *want; /* json text of the value when st == WB_OK */
};

static void run_cases(enum cfg_value_type type, const struct scase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_object *v = (json_object *)1;
        char err[200] = "";
        wb_status st = payload_parse_scalar(type, c[i].buf, c[i].len, &v, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("type %d case %zu '%.*s': status %d want %d (%s)", (int)type, i, (int)c[i].len,
                     c[i].buf, (int)st, (int)c[i].st, err);
        if (st != WB_OK) {
            assert_null(v);
            assert_true(err[0] != '\0');
            continue;
        }
        const char *got = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        if (strcmp(got, c[i].want) != 0)
            fail_msg("type %d case %zu: got %s want %s", (int)type, i, got, c[i].want);
        json_object_put(v);
    }
}

#define RUN(type, arr) run_cases(type, arr, sizeof(arr) / sizeof(*arr))

static void test_bool(void **state)
{
    (void)state;
    static const struct scase c[] = {
        {S("1"), WB_OK, "true"},
        {S("0"), WB_OK, "false"},
        {S("true"), WB_OK, "true"},
        {S("TRUE"), WB_OK, "true"},
        {S("False"), WB_OK, "false"},
        {S("on"), WB_OK, "true"},
        {S("OFF"), WB_OK, "false"},
        {S("  oN\r\n"), WB_OK, "true"},
        {S("\t0 "), WB_OK, "false"},
        {S(""), WB_ERR_INVALID, NULL},
        {S("   "), WB_ERR_INVALID, NULL},
        {S("abc"), WB_ERR_INVALID, NULL},
        {S("2"), WB_ERR_INVALID, NULL},
        {S("yes"), WB_ERR_INVALID, NULL},
        {S("01"), WB_ERR_INVALID, NULL},
        {S("1.0"), WB_ERR_INVALID, NULL},
        {S("t rue"), WB_ERR_INVALID, NULL},
        {S("truex"), WB_ERR_INVALID, NULL},
        {S("1\0"), WB_ERR_INVALID, NULL},
        {S("\xc2\xa0"
           "1"),
         WB_ERR_INVALID, NULL},
    };
    RUN(CFG_T_BOOL, c);

    char err[200];
    json_object *v;
    assert_int_equal(payload_parse_scalar(CFG_T_BOOL, S("abc"), &v, err, sizeof(err)),
                     WB_ERR_INVALID);
    assert_string_equal(err, "expected a boolean (1/0, true/false, on/off), got 'abc'");
    /* The quote is bounded and sanitised of control chars and bad UTF-8. */
    char big[300];
    memset(big, 'x', sizeof(big));
    big[1] = '\x1b';
    big[2] = '\xff';
    assert_int_equal(payload_parse_scalar(CFG_T_BOOL, big, sizeof(big), &v, err, sizeof(err)),
                     WB_ERR_INVALID);
    assert_non_null(strstr(err, "'x??xxx"));
    assert_non_null(strstr(err, "...'"));
    assert_true(strlen(err) < 120);
    for (const char *p = err; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    /* A NULL err buffer is allowed. */
    assert_int_equal(payload_parse_scalar(CFG_T_BOOL, S("x"), &v, NULL, 0), WB_ERR_INVALID);
}

static void test_int(void **state)
{
    (void)state;
    static const struct scase c[] = {
        {S("0"), WB_OK, "0"},
        {S("42"), WB_OK, "42"},
        {S("+1"), WB_OK, "1"},
        {S("-0"), WB_OK, "0"},
        {S("-17"), WB_OK, "-17"},
        {S(" 12 \n"), WB_OK, "12"},
        {S("007"), WB_OK, "7"},
        {S("9223372036854775807"), WB_OK, "9223372036854775807"},
        {S("-9223372036854775808"), WB_OK, "-9223372036854775808"},
        {S("9223372036854775808"), WB_ERR_RANGE, NULL},
        {S("-9223372036854775809"), WB_ERR_RANGE, NULL},
        {S("99999999999999999999999999"), WB_ERR_RANGE, NULL},
        {S("99999999999999999999999999x"), WB_ERR_INVALID, NULL},
        {S(""), WB_ERR_INVALID, NULL},
        {S(" "), WB_ERR_INVALID, NULL},
        {S("+"), WB_ERR_INVALID, NULL},
        {S("-"), WB_ERR_INVALID, NULL},
        {S("1.0"), WB_ERR_INVALID, NULL},
        {S("1e3"), WB_ERR_INVALID, NULL},
        {S("0x10"), WB_ERR_INVALID, NULL},
        {S("--1"), WB_ERR_INVALID, NULL},
        {S("1 2"), WB_ERR_INVALID, NULL},
        {S("12abc"), WB_ERR_INVALID, NULL},
        {S("true"), WB_ERR_INVALID, NULL},
        {S("1\0"
           "2"),
         WB_ERR_INVALID, NULL},
        {S("\xd9\xa3"), WB_ERR_INVALID, NULL}, /* Arabic-Indic digit three */
    };
    RUN(CFG_T_INT, c);
}

static void test_float(void **state)
{
    (void)state;
    static const struct scase c[] = {
        {S("21.5"), WB_OK, "21.5"},
        {S("-0.25"), WB_OK, "-0.25"},
        {S("30"), WB_OK, "30.0"},
        {S("+1"), WB_OK, "1.0"},
        {S(".5"), WB_OK, "0.5"},
        {S("1e3"), WB_OK, "1000.0"},
        {S(" 2.5E-1\t"), WB_OK, "0.25"},
        {S("1e-400"), WB_OK, "0.0"}, /* underflow rounds to zero */
        {S("1e400"), WB_ERR_RANGE, NULL},
        {S("-1e400"), WB_ERR_RANGE, NULL},
        {S("nan"), WB_ERR_INVALID, NULL},
        {S("NaN"), WB_ERR_INVALID, NULL},
        {S("inf"), WB_ERR_INVALID, NULL},
        {S("-Infinity"), WB_ERR_INVALID, NULL},
        {S("0x10"), WB_ERR_INVALID, NULL},
        {S("0x1p3"), WB_ERR_INVALID, NULL},
        {S(""), WB_ERR_INVALID, NULL},
        {S("."), WB_ERR_INVALID, NULL},
        {S("e5"), WB_ERR_INVALID, NULL},
        {S("1e"), WB_ERR_INVALID, NULL},
        {S("1.2.3"), WB_ERR_INVALID, NULL},
        {S("1,5"), WB_ERR_INVALID, NULL},
        {S("- 1"), WB_ERR_INVALID, NULL},
        {S("1\0"), WB_ERR_INVALID, NULL},
    };
    RUN(CFG_T_FLOAT, c);

    /* A long but valid number goes through the heap copy. */
    char big[400];
    memset(big, '0', sizeof(big));
    big[0] = '1';
    big[1] = '.';
    json_object *v = NULL;
    assert_int_equal(payload_parse_scalar(CFG_T_FLOAT, big, sizeof(big), &v, NULL, 0), WB_OK);
    assert_true(json_object_get_double(v) == 1.0);
    json_object_put(v);
}

static void test_string(void **state)
{
    (void)state;
    static const struct scase c[] = {
        {S("hello"), WB_OK, "\"hello\""},
        {S(" spaced "), WB_OK, "\" spaced \""}, /* verbatim: not trimmed */
        {S(""), WB_OK, "\"\""},
        {S("\xd0\x9f\xd1\x80\xd0\xb8"), WB_OK, "\"\\u041f\\u0440\\u0438\""},
        {S("\xf0\x9f\x98\x80"), WB_OK, "\"\\ud83d\\ude00\""},
        {S("\xc0\xaf"), WB_ERR_INVALID, NULL},
        {S("\xed\xa0\x80"), WB_ERR_INVALID, NULL},
        {S("\xe2\x82"), WB_ERR_INVALID, NULL},
        {S("a\0b"), WB_ERR_INVALID, NULL},
    };
    /* json-c may or may not escape non-ASCII; compare the parsed string instead. */
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        json_object *v = NULL;
        wb_status st = payload_parse_scalar(CFG_T_STRING, c[i].buf, c[i].len, &v, NULL, 0);
        assert_int_equal(st, c[i].st);
        if (st != WB_OK)
            continue;
        assert_int_equal(json_object_get_string_len(v), (int)c[i].len);
        assert_memory_equal(json_object_get_string(v), c[i].buf, c[i].len);
        json_object_put(v);
    }
    char *big = malloc(PAYLOAD_MAX_STRING + 1);
    assert_non_null(big);
    memset(big, 'a', PAYLOAD_MAX_STRING + 1);
    json_object *v = NULL;
    assert_int_equal(payload_parse_scalar(CFG_T_STRING, big, PAYLOAD_MAX_STRING, &v, NULL, 0),
                     WB_OK);
    json_object_put(v);
    assert_int_equal(payload_parse_scalar(CFG_T_STRING, big, PAYLOAD_MAX_STRING + 1, &v, NULL, 0),
                     WB_ERR_INVALID);
    assert_null(v);
    free(big);
    /* JSON is not a scalar type. */
    assert_int_equal(payload_parse_scalar(CFG_T_JSON, S("{}"), &v, NULL, 0), WB_ERR_INVALID);
}

static void test_too_long(void **state)
{
    (void)state;
    size_t n = PAYLOAD_MAX_LEN + 1;
    char *buf = malloc(n);
    assert_non_null(buf);
    memset(buf, ' ', n);
    buf[0] = '1';
    json_object *v = NULL;
    char err[200];
    for (int t = CFG_T_BOOL; t <= CFG_T_STRING; t++) {
        assert_int_equal(payload_parse_scalar((enum cfg_value_type)t, buf, n, &v, err, sizeof(err)),
                         WB_ERR_INVALID);
        assert_non_null(strstr(err, "too long"));
    }
    /* At the limit, white space around a number is fine. */
    assert_int_equal(payload_parse_scalar(CFG_T_INT, buf, n - 1, &v, NULL, 0), WB_OK);
    json_object_put(v);
    buf[0] = '{';
    assert_int_equal(payload_parse_object(buf, n, &v, err, sizeof(err)), WB_ERR_INVALID);
    free(buf);
}

static void test_object(void **state)
{
    (void)state;
    static const struct scase c[] = {
        {S("{\"a\":1}"), WB_OK, "{\"a\":1}"},
        {S("  {\"a\":{\"b\":[1,2,{\"c\":null}]}}\n "), WB_OK, "{\"a\":{\"b\":[1,2,{\"c\":null}]}}"},
        {S("{}"), WB_OK, "{}"},
        {S("{\"s\":\"\\u00e9\\\"\"}"), WB_OK, "{\"s\":\"\xc3\xa9\\\"\"}"},
        {S("{\"a\":1}x"), WB_ERR_INVALID, NULL},
        {S("{\"a\":1}{\"b\":2}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":1"), WB_ERR_INVALID, NULL},
        {S("[1,2]"), WB_ERR_INVALID, NULL},
        {S("1"), WB_ERR_INVALID, NULL},
        {S("\"str\""), WB_ERR_INVALID, NULL},
        {S("null"), WB_ERR_INVALID, NULL},
        {S(""), WB_ERR_INVALID, NULL},
        {S("  "), WB_ERR_INVALID, NULL},
        {S("{\"a\":NaN}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":Infinity}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":-Infinity}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":1e400}"), WB_ERR_RANGE, NULL},
        {S("{\"a\":[1e400]}"), WB_ERR_RANGE, NULL},
        {S("{'a':1}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":1,}"), WB_ERR_INVALID, NULL},
        {S("{a:1}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":\"\xc0\xaf\"}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":\"\xed\xa0\x80\"}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":\"\xe2\x82\"}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":1}\0"), WB_ERR_INVALID, NULL},
        {S("{\"a\":\"x\ny\"}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":1.}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":01}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":+1}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":.5}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":0x10}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":-}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":True}"), WB_ERR_INVALID, NULL},
        {S("{/*c*/\"a\":1}"), WB_ERR_INVALID, NULL},
        {S("{\"a\":9223372036854775808}"), WB_ERR_RANGE, NULL},
        {S("{\"a\":-9223372036854775809}"), WB_ERR_RANGE, NULL},
        {S("{\"a\":-9223372036854775808,\"b\":-1.5e-3,\"c\":0,\"d\":[-0.0,1E+2]}"), WB_OK,
         "{\"a\":-9223372036854775808,\"b\":-1.5e-3,\"c\":0,\"d\":[-0.0,1E+2]}"},
        {S("{\"k-1\":\"it's 5 \\\" 'x' 1.\"}"), WB_OK, "{\"k-1\":\"it's 5 \\\" 'x' 1.\"}"},
        {S("{\"a\":\"x\0y\"}"), WB_ERR_INVALID, NULL},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        json_object *v = (json_object *)1;
        char err[200] = "";
        wb_status st = payload_parse_object(c[i].buf, c[i].len, &v, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("object case %zu '%.*s': status %d want %d (%s)", i, (int)c[i].len, c[i].buf,
                     (int)st, (int)c[i].st, err);
        if (st != WB_OK) {
            assert_null(v);
            assert_true(err[0] != '\0');
            continue;
        }
        assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), c[i].want);
        json_object_put(v);
    }
}

/* n nested objects {"a":{"a":...}} */
static char *nested(int n, size_t *len)
{
    char *b = malloc((size_t)n * 6 + 8);
    size_t o = 0;
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(b + o, "{\"a\":");
    o += (size_t)sprintf(b + o, "1");
    for (int i = 0; i < n; i++)
        b[o++] = '}';
    b[o] = '\0';
    *len = o;
    return b;
}

static void test_depth(void **state)
{
    (void)state;
    size_t len;
    json_object *v = NULL;
    char *b = nested(PAYLOAD_MAX_DEPTH - 1, &len);
    assert_int_equal(payload_parse_object(b, len, &v, NULL, 0), WB_OK);
    json_object_put(v);
    free(b);
    b = nested(100, &len);
    assert_int_equal(payload_parse_object(b, len, &v, NULL, 0), WB_ERR_INVALID);
    assert_null(v);
    free(b);
    b = nested(PAYLOAD_MAX_DEPTH + 1, &len);
    assert_int_equal(payload_parse_object(b, len, &v, NULL, 0), WB_ERR_INVALID);
    free(b);
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } c[] = {
        {S(""), true},
        {S("plain ascii"), true},
        {S("\xc2\x80"), true},          /* U+0080 */
        {S("\xdf\xbf"), true},          /* U+07FF */
        {S("\xe0\xa0\x80"), true},      /* U+0800 */
        {S("\xed\x9f\xbf"), true},      /* U+D7FF */
        {S("\xee\x80\x80"), true},      /* U+E000 */
        {S("\xef\xbf\xbf"), true},      /* U+FFFF */
        {S("\xf0\x90\x80\x80"), true},  /* U+10000 */
        {S("\xf4\x8f\xbf\xbf"), true},  /* U+10FFFF */
        {S("\xc0\xaf"), false},         /* overlong '/' */
        {S("\xc1\xbf"), false},         /* overlong */
        {S("\xe0\x80\xaf"), false},     /* overlong 3-byte */
        {S("\xf0\x80\x80\xaf"), false}, /* overlong 4-byte */
        {S("\xed\xa0\x80"), false},     /* U+D800 surrogate */
        {S("\xed\xbf\xbf"), false},     /* U+DFFF surrogate */
        {S("\xf4\x90\x80\x80"), false}, /* U+110000 */
        {S("\xf5\x80\x80\x80"), false}, /* lead beyond F4 */
        {S("\xff"), false},
        {S("\x80"), false},     /* lone continuation */
        {S("\xe2\x82"), false}, /* truncated euro sign */
        {S("a\xe2\x82"), false},
        {S("\xe2\x82\xac"), true},  /* euro sign */
        {S("\xe2\x82x"), false},    /* bad continuation */
        {S("\xf0\x9f\x98"), false}, /* truncated 4-byte */
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++)
        if (payload_utf8_valid(c[i].s, c[i].len) != c[i].ok)
            fail_msg("utf8 case %zu", i);
}

static json_object *parse(const char *s)
{
    json_object *v = NULL;
    assert_int_equal(payload_parse_object(s, strlen(s), &v, NULL, 0), WB_OK);
    return v;
}

static void test_map_fields(void **state)
{
    (void)state;
    json_object *msg = parse("{\"power\":12.5,\"energy\":{\"total\":3,\"today\":{\"kwh\":1}},"
                             "\"state\":\"ON\",\"arr\":[1],\"n\":null}");
    struct cfg_field_map fm[] = {
        {.field = "power_w", .path = "power"},
        {.field = "energy_kwh", .path = "energy.total"},
        {.field = "today", .path = "energy.today.kwh"},
        {.field = "missing", .path = "nope"},
        {.field = "deep_missing", .path = "energy.x.y"},
        {.field = "through_scalar", .path = "power.x"},
        {.field = "through_array", .path = "arr.0"},
        {.field = "whole", .path = "energy"},
        {.field = "empty_seg", .path = "energy..total"},
        {.field = "null_field", .path = "n"},
    };
    struct cfg_state_binding b = {
        .topic = "z/plug", .type = CFG_T_JSON, .fields = fm, .n_fields = sizeof(fm) / sizeof(*fm)};
    json_object *ch = json_object_new_object();
    assert_int_equal(payload_map_fields(&b, msg, ch), 5);
    assert_string_equal(json_object_to_json_string_ext(ch, JSON_C_TO_STRING_PLAIN),
                        "{\"power_w\":12.5,\"energy_kwh\":3,\"today\":1,"
                        "\"whole\":{\"total\":3,\"today\":{\"kwh\":1}},\"null_field\":null}");
    /* Values are new references: the message can go first. */
    json_object_put(msg);
    json_object *w = NULL;
    assert_true(json_object_object_get_ex(ch, "whole", &w));
    assert_int_equal(json_object_object_length(w), 2);
    json_object_put(ch);

    /* Without a mapping, every top-level key. */
    msg = parse("{\"a\":1,\"b\":{\"c\":true}}");
    struct cfg_state_binding all = {.topic = "t", .type = CFG_T_JSON};
    ch = json_object_new_object();
    json_object_object_add(ch, "a", json_object_new_int(0));
    assert_int_equal(payload_map_fields(&all, msg, ch), 2);
    json_object_put(msg);
    assert_string_equal(json_object_to_json_string_ext(ch, JSON_C_TO_STRING_PLAIN),
                        "{\"a\":1,\"b\":{\"c\":true}}");
    /* Not an object: nothing. */
    json_object *arr = json_object_new_array();
    assert_int_equal(payload_map_fields(&all, arr, ch), 0);
    assert_int_equal(payload_map_fields(&all, NULL, ch), 0);
    json_object_put(arr);
    json_object_put(ch);
}

/* ---- issue 17: map and scale, availability ------------------------------ */

static char *binding_str(const struct cfg_state_binding *b, const char *payload, wb_status *st)
{
    json_object *v = NULL;
    char err[128] = "";
    *st = payload_parse_binding(b, payload, strlen(payload), &v, err, sizeof(err));
    if (*st != WB_OK) {
        assert_null(v);
        assert_true(err[0] != '\0');
        return NULL;
    }
    char *s = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    json_object_put(v);
    return s;
}

#define EXPECT_BINDING(b, payload, want)                                                           \
    do {                                                                                           \
        wb_status st_;                                                                             \
        char *got_ = binding_str((b), (payload), &st_);                                            \
        if (!got_)                                                                                 \
            fail_msg("'%s' refused (%d), wanted %s", (payload), st_, (want));                      \
        if (strcmp(got_, (want)) != 0)                                                             \
            fail_msg("'%s' gave %s, wanted %s", (payload), got_, (want));                          \
        free(got_);                                                                                \
    } while (0)

#define EXPECT_REFUSED(b, payload, status)                                                         \
    do {                                                                                           \
        wb_status st_;                                                                             \
        char *got_ = binding_str((b), (payload), &st_);                                            \
        if (got_)                                                                                  \
            fail_msg("'%s' gave %s, wanted a refusal", (payload), got_);                           \
        assert_int_equal(st_, (status));                                                           \
    } while (0)

static void test_binding_map_scale(void **state)
{
    (void)state;
    /* type: bool, map: {ON: true, OFF: false}: mapped first, then the usual. */
    struct cfg_map_entry onoff[] = {{.from = "ON", .to = json_object_new_boolean(1)},
                                    {.from = "OFF", .to = json_object_new_boolean(0)}};
    struct cfg_state_binding b = {.topic = "t", .type = CFG_T_BOOL, .field = "on"};
    struct cfg_field_spec b_spec = {0};
    b.spec = &b_spec;
    b.spec->map = onoff;
    b.spec->n_map = 2;
    EXPECT_BINDING(&b, "ON", "true");
    EXPECT_BINDING(&b, " OFF\n", "false"); /* bool payloads are trimmed */
    EXPECT_BINDING(&b, "1", "true");       /* unmapped: the normal conversion */
    EXPECT_BINDING(&b, "off", "false");
    EXPECT_REFUSED(&b, "Ja", WB_ERR_INVALID);

    /* type: int, scale: 10, map: {"n/a": -1}: the mapped value is scaled too. */
    struct cfg_map_entry na[] = {{.from = "n/a", .to = json_object_new_int64(-1)}};
    struct cfg_state_binding i = {.topic = "t", .type = CFG_T_INT, .field = "i"};
    struct cfg_field_spec i_spec = {0};
    i.spec = &i_spec;
    i.spec->has_scale = true;
    i.spec->scale = 10;
    EXPECT_BINDING(&i, "21", "210");
    EXPECT_BINDING(&i, "-3", "-30");
    EXPECT_REFUSED(&i, "1.5", WB_ERR_INVALID);
    EXPECT_REFUSED(&i, "922337203685477581", WB_ERR_RANGE); /* * 10 is past int64 */
    i.spec->map = na;
    i.spec->n_map = 1;
    EXPECT_BINDING(&i, "n/a", "-10");

    /* type: float, scale: 0.1 */
    struct cfg_state_binding f = {.topic = "t", .type = CFG_T_FLOAT, .field = "f"};
    struct cfg_field_spec f_spec = {0};
    f.spec = &f_spec;
    f.spec->has_scale = true;
    f.spec->scale = 0.5;
    EXPECT_BINDING(&f, "3", "1.5");
    EXPECT_BINDING(&f, " 2.5 ", "1.25");
    f.spec->scale = 1e10;
    EXPECT_REFUSED(&f, "1e300", WB_ERR_RANGE);
    EXPECT_REFUSED(&f, "x", WB_ERR_INVALID);

    /* type: string: mapped verbatim (no trimming), unmapped text kept. */
    struct cfg_map_entry one[] = {{.from = "1", .to = json_object_new_string("one")}};
    struct cfg_state_binding s = {.topic = "t", .type = CFG_T_STRING, .field = "s"};
    struct cfg_field_spec s_spec = {0};
    s.spec = &s_spec;
    s.spec->map = one;
    s.spec->n_map = 1;
    EXPECT_BINDING(&s, "1", "\"one\"");
    EXPECT_BINDING(&s, " 1", "\" 1\"");
    EXPECT_BINDING(&s, "2", "\"2\"");

    /* A mapped value is a copy: the config's object is never shared. */
    json_object *v = NULL;
    assert_int_equal(payload_parse_binding(&b, "ON", 2, &v, NULL, 0), WB_OK);
    assert_ptr_not_equal(v, onoff[0].to);
    json_object_put(v);
    json_object_put(onoff[0].to);
    json_object_put(onoff[1].to);
    json_object_put(na[0].to);
    json_object_put(one[0].to);
}

/* The long form of fields entries: map and scale on JSON values. */
static void test_json_field_specs(void **state)
{
    (void)state;
    json_object *msg = parse("{\"state\":\"ON\",\"power\":125,\"energy\":1500,\"v\":229.5,"
                             "\"n\":true,\"x\":\"text\",\"code\":2,\"f\":1.50,\"nul\":null}");
    struct cfg_map_entry onoff[] = {{.from = "ON", .to = json_object_new_boolean(1)},
                                    {.from = "OFF", .to = json_object_new_boolean(0)}};
    struct cfg_map_entry codes[] = {{.from = "2", .to = json_object_new_string("heat")},
                                    {.from = "true", .to = json_object_new_string("yes")},
                                    {.from = "1.50", .to = json_object_new_int64(3)}};
    struct cfg_field_map fm[] = {
        {.field = "on",
         .path = "state",
         .spec = &(struct cfg_field_spec){.map = onoff, .n_map = 2}},
        {.field = "power",
         .path = "power",
         .spec = &(struct cfg_field_spec){.has_scale = true, .scale = 0.1}},
        {.field = "energy",
         .path = "energy",
         .spec = &(struct cfg_field_spec){.has_scale = true, .scale = 0.001}},
        {.field = "kw",
         .path = "power",
         .spec = &(struct cfg_field_spec){.has_scale = true, .scale = 2}},
        {.field = "volts",
         .path = "v",
         .spec = &(struct cfg_field_spec){.has_scale = true, .scale = 2}},
        {.field = "flag", .path = "n", .spec = &(struct cfg_field_spec){.map = codes, .n_map = 3}},
        {.field = "text",
         .path = "x",
         .spec = &(struct cfg_field_spec){.has_scale = true, .scale = 2}},
        {.field = "mode",
         .path = "code",
         .spec = &(struct cfg_field_spec){.map = codes, .n_map = 3}},
        {.field = "f",
         .path = "f",
         .spec =
             &(struct cfg_field_spec){.map = codes, .n_map = 3, .has_scale = true, .scale = 10}},
        {.field = "nul", .path = "nul", .spec = &(struct cfg_field_spec){.map = codes, .n_map = 3}},
        {.field = "plain", .path = "state"},
    };
    struct cfg_state_binding b = {
        .topic = "z/plug", .type = CFG_T_JSON, .fields = fm, .n_fields = sizeof(fm) / sizeof(*fm)};
    json_object *ch = json_object_new_object();
    assert_int_equal(payload_map_fields(&b, msg, ch), 11);
    /* 125 * 0.1 is not whole: a double; 1500 * 0.001 is 1.5; 125 * 2 stays
     * an int; a double stays a double; a string ignores the scale; the
     * mapped 3 of "1.50" is scaled to 30. */
    assert_string_equal(json_object_to_json_string_ext(ch, JSON_C_TO_STRING_PLAIN),
                        "{\"on\":true,\"power\":12.5,\"energy\":1.5,\"kw\":250,\"volts\":459.0,"
                        "\"flag\":\"yes\",\"text\":\"text\",\"mode\":\"heat\",\"f\":30,"
                        "\"nul\":null,\"plain\":\"ON\"}");
    json_object_put(ch);
    json_object_put(msg);

    /* An integral product of an int stays an int. */
    msg = parse("{\"e\":2000}");
    struct cfg_field_map kwh[] = {
        {.field = "e",
         .path = "e",
         .spec = &(struct cfg_field_spec){.has_scale = true, .scale = 0.001}}};
    struct cfg_state_binding b2 = {.topic = "t", .type = CFG_T_JSON, .fields = kwh, .n_fields = 1};
    ch = json_object_new_object();
    assert_int_equal(payload_map_fields(&b2, msg, ch), 1);
    assert_true(json_object_is_type(json_object_object_get(ch, "e"), json_type_int));
    assert_int_equal(json_object_get_int64(json_object_object_get(ch, "e")), 2);
    json_object_put(ch);
    json_object_put(msg);
    for (size_t i = 0; i < 2; i++)
        json_object_put(onoff[i].to);
    for (size_t i = 0; i < 3; i++)
        json_object_put(codes[i].to);
}

static void test_availability_payloads(void **state)
{
    (void)state;
    struct cfg_availability a = {
        .topic = "t", .online = "online", .offline = "offline", .json_field = "state"};
    static const struct {
        const char *p;
        int want;
    } c[] = {
        {"online", 1},
        {"offline", 0},
        {"  online\r\n", 1},
        {"{\"state\":\"online\"}", 1},
        {"{\"state\": \"offline\"}", 0},
        {" { \"state\":\"online\" } ", 1},
        {"{\n  \"state\" : \"offline\"\n}\n", 0},
        {"{\"state\":\"online\",\"extra\":1}", 1},
        {"{\"status\":\"online\"}", -1},
        {"{\"state\":\"ONLINE\"}", -1},
        {"{\"state\":true}", -1},
        {"{\"state\":\"online\"", -1},
        {"{\"state\":\"online\"} x", -1},
        {"[\"online\"]", -1},
        {"Online", -1},
        {"", -1},
        {"on line", -1},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++)
        if (payload_availability(&a, c[i].p, strlen(c[i].p)) != c[i].want)
            fail_msg("availability case %zu ('%s')", i, c[i].p);
    /* Another key, and a boolean value read as JSON writes it. */
    struct cfg_availability b = {
        .topic = "t", .online = "true", .offline = "false", .json_field = "available"};
    assert_int_equal(payload_availability(&b, "{\"available\":true}", 18), 1);
    assert_int_equal(payload_availability(&b, "{\"available\":false}", 19), 0);
    assert_int_equal(payload_availability(&b, "{\"state\":\"online\"}", 18), -1);
    /* An online payload configured as JSON text still matches as is. */
    struct cfg_availability j = {.topic = "t",
                                 .online = "{\"state\":\"online\"}",
                                 .offline = "{\"state\":\"offline\"}",
                                 .json_field = "state"};
    assert_int_equal(payload_availability(&j, "{\"state\":\"online\"}", 18), 1);
    assert_int_equal(payload_availability(&j, "{\"state\": \"online\"}", 19), -1);
    /* A NUL byte and an oversized payload are never a match. */
    assert_int_equal(payload_availability(&a, "online\0", 7), -1);
    assert_int_equal(payload_availability(&a, "online", PAYLOAD_MAX_LEN + 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_float),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_map_fields),
        cmocka_unit_test(test_binding_map_scale),
        cmocka_unit_test(test_json_field_specs),
        cmocka_unit_test(test_availability_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

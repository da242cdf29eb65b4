/*
 * test_action.c - unit tests of src/domain/action.c: param validation for
 * every type, bound, default, enum and required path; params from /on
 * payloads; payload templates (plain and JSON mode, escaping, literal
 * braces, errors); the typed "set" update; step conditions.
 *
 * Config structs are built by hand: the config loader is not used here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbmb/action.h"

static json_object *J(const char *text)
{
    json_object *v = json_tokener_parse(text);
    if (!v && strcmp(text, "null") != 0)
        fail_msg("bad test JSON: %s", text);
    return v;
}

static const char *plain(json_object *v)
{
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static char *modes[] = {"auto", "cool", "heat"};

/* The action every validation case runs against. */
static struct cfg_param params[] = {
    {.name = "level", .type = CFG_T_INT, .has_min = true, .min = 0, .has_max = true, .max = 100},
    {.name = "temp",
     .type = CFG_T_FLOAT,
     .has_min = true,
     .min = -10.5,
     .has_max = true,
     .max = 40},
    {.name = "on", .type = CFG_T_BOOL},
    {.name = "label", .type = CFG_T_STRING, .has_min = true, .min = 2, .has_max = true, .max = 5},
    {.name = "mode", .type = CFG_T_ENUM, .enum_values = modes, .n_enum_values = 3},
    {.name = "big", .type = CFG_T_INT},
    {.name = "req", .type = CFG_T_INT, .required = true},
    {.name = "def", .type = CFG_T_INT, .default_value = NULL},
};
static struct cfg_action act = {.name = "tune",
                                .topic = "x/on",
                                .payload = "{level}",
                                .params = params,
                                .n_params = sizeof(params) / sizeof(*params)};

static int setup(void **state)
{
    (void)state;
    params[7].default_value = json_object_new_int(7);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_object_put(params[7].default_value);
    params[7].default_value = NULL;
    return 0;
}

static void test_validate_table(void **state)
{
    (void)state;
    static const struct {
        const char *in; /* params JSON ("req" is added when absent) */
        wb_status st;
        const char *want; /* result JSON, or a substring of the error */
    } c[] = {
        {"{\"req\":1}", WB_OK, "{\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"def\":9}", WB_OK, "{\"req\":1,\"def\":9}"},
        {"{\"req\":1,\"level\":30}", WB_OK, "{\"level\":30,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"level\":30.0}", WB_OK, "{\"level\":30,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"level\":0}", WB_OK, "{\"level\":0,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"level\":100}", WB_OK, "{\"level\":100,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"level\":150}", WB_ERR_RANGE, "param 'level': 150 is above the maximum 100"},
        {"{\"req\":1,\"level\":-1}", WB_ERR_RANGE, "param 'level': -1 is below the minimum 0"},
        {"{\"req\":1,\"level\":30.5}", WB_ERR_INVALID,
         "param 'level': expected an integer, got 30.5"},
        {"{\"req\":1,\"level\":\"30\"}", WB_ERR_INVALID, "expected an integer, got a string"},
        {"{\"req\":1,\"level\":true}", WB_ERR_INVALID, "expected an integer, got a boolean"},
        {"{\"req\":1,\"level\":null}", WB_ERR_INVALID, "expected an integer, got null"},
        {"{\"req\":1,\"big\":9223372036854775807}", WB_OK,
         "{\"big\":9223372036854775807,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"big\":-9223372036854775808}", WB_OK,
         "{\"big\":-9223372036854775808,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"big\":18446744073709551615}", WB_ERR_RANGE, "64-bit integer range"},
        {"{\"req\":1,\"big\":9.3e18}", WB_ERR_RANGE, "64-bit integer range"},
        {"{\"req\":1,\"big\":-9.3e18}", WB_ERR_RANGE, "64-bit integer range"},
        {"{\"req\":1,\"big\":1e300}", WB_ERR_RANGE, "64-bit integer range"},
        {"{\"req\":1,\"big\":-9.2233720368547758e18}", WB_OK,
         "{\"big\":-9223372036854775808,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"temp\":21.5}", WB_OK, "{\"temp\":21.5,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"temp\":21}", WB_OK, "{\"temp\":21.0,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"temp\":-10.5}", WB_OK, "{\"temp\":-10.5,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"temp\":-10.6}", WB_ERR_RANGE,
         "param 'temp': -10.6 is below the minimum -10.5"},
        {"{\"req\":1,\"temp\":40.01}", WB_ERR_RANGE, "param 'temp': 40.01 is above the maximum 40"},
        {"{\"req\":1,\"temp\":\"21\"}", WB_ERR_INVALID,
         "param 'temp': expected a number, got a string"},
        {"{\"req\":1,\"on\":true}", WB_OK, "{\"on\":true,\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"on\":1}", WB_ERR_INVALID, "param 'on': expected a boolean, got a number"},
        {"{\"req\":1,\"on\":\"true\"}", WB_ERR_INVALID, "expected a boolean, got a string"},
        {"{\"req\":1,\"label\":\"ab\"}", WB_OK, "{\"label\":\"ab\",\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"label\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", WB_OK, NULL},
        {"{\"req\":1,\"label\":\"a\"}", WB_ERR_RANGE, "param 'label': string shorter than 2"},
        {"{\"req\":1,\"label\":\"abcdef\"}", WB_ERR_RANGE, "param 'label': string longer than 5"},
        {"{\"req\":1,\"label\":5}", WB_ERR_INVALID,
         "param 'label': expected a string, got a number"},
        {"{\"req\":1,\"mode\":\"cool\"}", WB_OK, "{\"mode\":\"cool\",\"req\":1,\"def\":7}"},
        {"{\"req\":1,\"mode\":\"COOL\"}", WB_ERR_INVALID, "param 'mode': 'COOL' is not one of"},
        {"{\"req\":1,\"mode\":\"coo\"}", WB_ERR_INVALID, "is not one of the allowed values"},
        {"{\"req\":1,\"mode\":1}", WB_ERR_INVALID, "param 'mode': expected a string"},
        {"{}", WB_ERR_INVALID, "param 'req' is required"},
        {"{\"req\":1,\"nope\":1}", WB_ERR_INVALID, "action 'tune' has no param 'nope'"},
        {"[1]", WB_ERR_INVALID, "params must be a JSON object, got an array"},
        {"5", WB_ERR_INVALID, "params must be a JSON object, got a number"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        json_object *in = J(c[i].in);
        json_object *out = (json_object *)1;
        char err[200] = "";
        wb_status st = action_validate(&act, in, &out, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("case %zu %s: status %d want %d (%s)", i, c[i].in, (int)st, (int)c[i].st, err);
        if (st == WB_OK) {
            if (c[i].want && strcmp(plain(out), c[i].want) != 0)
                fail_msg("case %zu: got %s want %s", i, plain(out), c[i].want);
            json_object_put(out);
        } else {
            assert_null(out);
            if (!strstr(err, c[i].want))
                fail_msg("case %zu: error '%s' lacks '%s'", i, err, c[i].want);
        }
        json_object_put(in);
    }
}

static void test_validate_null_and_no_params(void **state)
{
    (void)state;
    struct cfg_action none = {.name = "power_on", .topic = "t", .payload = "1"};
    json_object *out = NULL;
    char err[200];
    assert_int_equal(action_validate(&none, NULL, &out, err, sizeof(err)), WB_OK);
    assert_string_equal(plain(out), "{}");
    json_object_put(out);
    json_object *in = J("{\"x\":1}");
    assert_int_equal(action_validate(&none, in, &out, err, sizeof(err)), WB_ERR_INVALID);
    json_object_put(in);
    /* NULL input to an action with a required param. */
    assert_int_equal(action_validate(&act, NULL, &out, err, sizeof(err)), WB_ERR_INVALID);
    assert_string_equal(err, "param 'req' is required");
    /* A default that breaks its own bounds is caught, not passed on. */
    struct cfg_param bad = {.name = "p",
                            .type = CFG_T_INT,
                            .has_max = true,
                            .max = 1,
                            .default_value = json_object_new_int(5)};
    struct cfg_action a = {.name = "a", .params = &bad, .n_params = 1};
    assert_int_equal(action_validate(&a, NULL, &out, err, sizeof(err)), WB_ERR_RANGE);
    json_object_put(bad.default_value);
    /* The default in the result is a copy, not the config's object. */
    json_object *cfgdef = params[7].default_value;
    in = J("{\"req\":1}");
    assert_int_equal(action_validate(&act, in, &out, err, sizeof(err)), WB_OK);
    json_object *d = NULL;
    assert_true(json_object_object_get_ex(out, "def", &d));
    assert_ptr_not_equal(d, cfgdef);
    json_object_put(out);
    json_object_put(in);
}

/* A string param with a NUL ("\u0000" in an HTTP body) was rendered into
 * the command and then cut at the NUL (the payload's length was taken with
 * strlen): it is refused, so a command goes out with its exact bytes. */
static void test_string_param_with_nul(void **state)
{
    (void)state;
    struct cfg_param pt = {.name = "text", .type = CFG_T_STRING};
    struct cfg_action a = {
        .name = "say", .topic = "t", .payload = "{text}", .params = &pt, .n_params = 1};
    json_object *in = json_object_new_object(), *out = NULL;
    json_object_object_add(in, "text", json_object_new_string_len("ab\0cd", 5));
    char err[200];
    assert_int_equal(action_validate(&a, in, &out, err, sizeof(err)), WB_ERR_INVALID);
    assert_string_equal(err, "param 'text': string contains a NUL character");
    assert_null(out);
    json_object_put(in);
}

static struct cfg_param p_level = {.name = "level", .type = CFG_T_INT, .required = true};
static struct cfg_param p_temp = {.name = "temp", .type = CFG_T_FLOAT};
static struct cfg_param p_on = {.name = "on", .type = CFG_T_BOOL};
static struct cfg_param p_input = {
    .name = "input", .type = CFG_T_ENUM, .enum_values = modes, .n_enum_values = 3};
static struct cfg_param p_text = {.name = "text", .type = CFG_T_STRING};

static void test_params_from_payload(void **state)
{
    (void)state;
    struct cfg_param two[] = {p_level, p_on};
    struct cfg_action a_none = {.name = "power_on"};
    struct cfg_action a_int = {.name = "set_volume", .params = &p_level, .n_params = 1};
    struct cfg_action a_float = {.name = "set_temp", .params = &p_temp, .n_params = 1};
    struct cfg_action a_bool = {.name = "set_on", .params = &p_on, .n_params = 1};
    struct cfg_action a_enum = {.name = "set_input", .params = &p_input, .n_params = 1};
    struct cfg_action a_text = {.name = "say", .params = &p_text, .n_params = 1};
    struct cfg_action a_two = {.name = "multi", .params = two, .n_params = 2};
    static const char *const a_names[] = {"none", "int", "float", "bool", "enum", "text", "two"};
    const struct cfg_action *acts[] = {&a_none, &a_int,  &a_float, &a_bool,
                                       &a_enum, &a_text, &a_two};
    static const struct {
        int act;
        const char *payload;
        wb_status st;
        const char *want; /* JSON or error substring */
    } c[] = {
        {0, "1", WB_OK, "{}"},
        {0, "", WB_OK, "{}"},
        {0, "whatever", WB_OK, "{}"},
        {0, "{\"x\":1}", WB_OK, "{\"x\":1}"}, /* validation rejects x later */
        {1, "30", WB_OK, "{\"level\":30}"},
        {1, " 30\n", WB_OK, "{\"level\":30}"},
        {1, "{\"level\":31}", WB_OK, "{\"level\":31}"},
        {1, "30.5", WB_ERR_INVALID, "param 'level': expected an integer, got '30.5'"},
        {1, "9223372036854775808", WB_ERR_RANGE, "param 'level': integer out of range"},
        {1, "", WB_ERR_INVALID, "expected an integer"},
        {1, "{\"level\":", WB_ERR_INVALID, "action 'set_volume': truncated JSON"},
        {1, "[30]", WB_ERR_INVALID, "expected an integer"},
        {2, "21.5", WB_OK, "{\"temp\":21.5}"},
        {2, "nan", WB_ERR_INVALID, "expected a number"},
        {2, "1e400", WB_ERR_RANGE, "out of range"},
        {3, "ON", WB_OK, "{\"on\":true}"},
        {3, "0", WB_OK, "{\"on\":false}"},
        {3, "maybe", WB_ERR_INVALID, "expected a boolean"},
        {4, "hdmi1", WB_OK, "{\"input\":\"hdmi1\"}"}, /* enum checked by action_validate */
        {5, " hello {world} ", WB_OK, "{\"text\":\" hello {world} \"}"},
        {5, "{broken", WB_OK, "{\"text\":\"{broken\"}"},
        {5, "{\"text\":\"x\"}", WB_OK, "{\"text\":\"x\"}"},
        {5, "\xed\xa0\x80", WB_ERR_INVALID, "UTF-8"},
        {6, "{\"level\":1,\"on\":true}", WB_OK, "{\"level\":1,\"on\":true}"},
        {6, "1", WB_ERR_INVALID, "action 'multi' takes 2 params: send a JSON object"},
        {6, "{\"level\":1}x", WB_ERR_INVALID, "trailing garbage"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        json_object *out = (json_object *)1;
        char err[200] = "";
        wb_status st = action_params_from_payload(acts[c[i].act], c[i].payload,
                                                  strlen(c[i].payload), &out, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("case %zu (%s, '%s'): status %d want %d (%s)", i, a_names[c[i].act],
                     c[i].payload, (int)st, (int)c[i].st, err);
        if (st == WB_OK) {
            if (strcmp(plain(out), c[i].want) != 0)
                fail_msg("case %zu: got %s want %s", i, plain(out), c[i].want);
            json_object_put(out);
        } else {
            assert_null(out);
            if (!strstr(err, c[i].want))
                fail_msg("case %zu: error '%s' lacks '%s'", i, err, c[i].want);
        }
    }
    /* An embedded NUL is refused even for a string param. */
    json_object *out = NULL;
    assert_int_equal(action_params_from_payload(&a_text, "a\0b", 3, &out, NULL, 0), WB_ERR_INVALID);
}

static void test_render_payload(void **state)
{
    (void)state;
    struct cfg_param ps[] = {p_level, p_temp, p_on, p_text};
    struct cfg_action a = {.name = "act", .params = ps, .n_params = 4};
    json_object *vals = J("{\"level\":30,\"temp\":21.5,\"on\":true,\"text\":\"a\\\"b\\\\c\\n\"}");
    static const struct {
        const char *tpl;
        wb_status st;
        const char *want; /* output or error substring */
    } c[] = {
        {NULL, WB_OK, "1"}, /* no template: "1" */
        {"", WB_OK, ""},
        {"{level}", WB_OK, "30"},
        {"{temp}", WB_OK, "21.5"},
        {"{on}", WB_OK, "true"},
        {"{text}", WB_OK, "a\"b\\c\n"},
        {"vol={level};t={temp}", WB_OK, "vol=30;t=21.5"},
        {"{{literal}}", WB_OK, "{literal}"},
        {"{{{level}}}", WB_OK, "{30}"},
        {"{unknown}", WB_ERR_INVALID, "unknown placeholder '{unknown}'"},
        {"{level", WB_ERR_INVALID, "stray '{'"},
        {"a}b", WB_ERR_INVALID, "stray '}'"},
        {"{}", WB_OK, "{}"}, /* an empty JSON object template */
        {"{\"level\": {level}, \"t\": {temp}, \"on\": {on}}", WB_OK,
         "{\"level\": 30, \"t\": 21.5, \"on\": true}"},
        {"{\"msg\": \"say {text}!\"}", WB_OK, "{\"msg\": \"say a\\\"b\\\\c\\n!\"}"},
        {"{\"msg\": {text}}", WB_OK, "{\"msg\": \"a\\\"b\\\\c\\n\"}"},
        {" { \"a\": {\"b\": [{level}]}, \"c\": {} }", WB_OK,
         " { \"a\": {\"b\": [30]}, \"c\": {} }"},
        {"{\"s\": \"{{x}} \\\"{level}\\\"\"}", WB_OK, "{\"s\": \"{x} \\\"30\\\"\"}"},
        {"{\"s\": \"{x\"}", WB_ERR_INVALID, "stray '{'"},
        {"{\"a\": {nope}}", WB_ERR_INVALID, "unknown placeholder '{nope}'"},
        {"{\"a\": {level}", WB_ERR_INVALID, "does not render to valid JSON"},
        {"{\"a\": x{level}}", WB_ERR_INVALID, "does not render to valid JSON"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        a.payload = (char *)c[i].tpl;
        char *out = (char *)1;
        char err[200] = "";
        wb_status st = action_render_payload(&a, vals, &out, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("case %zu '%s': status %d want %d (%s)", i, c[i].tpl ? c[i].tpl : "NULL",
                     (int)st, (int)c[i].st, err);
        if (st == WB_OK) {
            if (strcmp(out, c[i].want) != 0)
                fail_msg("case %zu: got '%s' want '%s'", i, out, c[i].want);
            free(out);
        } else {
            assert_null(out);
            if (!strstr(err, c[i].want))
                fail_msg("case %zu: error '%s' lacks '%s'", i, err, c[i].want);
        }
    }
    /* A declared param absent from params. */
    json_object *partial = J("{\"level\":1}");
    a.payload = "{temp}";
    char *out = NULL;
    char err[200];
    assert_int_equal(action_render_payload(&a, partial, &out, err, sizeof(err)), WB_ERR_INVALID);
    assert_non_null(strstr(err, "param 'temp' has no value"));
    json_object_put(partial);
    /* Doubles in shortest round-trip form; ints stay ints. */
    json_object *nums = J("{\"temp\":0.1,\"level\":-9223372036854775808}");
    a.payload = "{temp} {level}";
    assert_int_equal(action_render_payload(&a, nums, &out, err, sizeof(err)), WB_OK);
    assert_string_equal(out, "0.1 -9223372036854775808");
    free(out);
    json_object_put(nums);
    /* The output is bounded. */
    size_t n = 40000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_object *bigv = json_object_new_object();
    json_object_object_add(bigv, "text", json_object_new_string(big));
    a.payload = "{text}{text}";
    assert_int_equal(action_render_payload(&a, bigv, &out, err, sizeof(err)), WB_ERR_RANGE);
    assert_null(out);
    a.payload = "{text}";
    assert_int_equal(action_render_payload(&a, bigv, &out, err, sizeof(err)), WB_OK);
    assert_int_equal(strlen(out), n);
    free(out);
    json_object_put(bigv);
    free(big);
    json_object_put(vals);
}

static void test_render_set(void **state)
{
    (void)state;
    struct cfg_param ps[] = {p_level, p_temp, p_on, p_text};
    struct cfg_action a = {.name = "act", .params = ps, .n_params = 4};
    json_object *vals = J("{\"level\":30,\"temp\":21.5,\"on\":false,\"text\":\"hi\"}");
    json_object *out = (json_object *)1;
    char err[200] = "";
    /* No set: NULL. */
    assert_int_equal(action_render_set(&a, vals, &out, err, sizeof(err)), WB_OK);
    assert_null(out);

    a.set = J("{\"volume\":\"{level}\",\"t\":\"{temp}\",\"power\":\"{on}\",\"s\":\"{text}\","
              "\"label\":\"vol {level}%\",\"lit\":\"{{level}}\",\"fixed\":true,\"n\":5,"
              "\"x\":null,\"obj\":{\"a\":1}}");
    assert_int_equal(action_render_set(&a, vals, &out, err, sizeof(err)), WB_OK);
    assert_string_equal(plain(out),
                        "{\"volume\":30,\"t\":21.5,\"power\":false,\"s\":\"hi\","
                        "\"label\":\"vol 30%\",\"lit\":\"{level}\",\"fixed\":true,\"n\":5,"
                        "\"x\":null,\"obj\":{\"a\":1}}");
    /* Values are copies: changing the result leaves config and params alone. */
    json_object *obj = NULL;
    assert_true(json_object_object_get_ex(out, "obj", &obj));
    json_object_object_add(obj, "b", json_object_new_int(2));
    json_object_put(out);
    assert_string_equal(plain(json_object_object_get(a.set, "obj")), "{\"a\":1}");
    json_object_put(a.set);

    /* An absent optional param leaves its field out. */
    a.set = J("{\"volume\":\"{level}\",\"t\":\"{temp}\"}");
    json_object *some = J("{\"level\":1}");
    assert_int_equal(action_render_set(&a, some, &out, err, sizeof(err)), WB_OK);
    assert_string_equal(plain(out), "{\"volume\":1}");
    json_object_put(out);
    json_object_put(some);
    json_object_put(a.set);

    /* Unknown placeholders are errors, in both forms. */
    a.set = J("{\"v\":\"{nope}\"}");
    assert_int_equal(action_render_set(&a, vals, &out, err, sizeof(err)), WB_ERR_INVALID);
    assert_null(out);
    assert_non_null(strstr(err, "unknown placeholder"));
    json_object_put(a.set);
    a.set = J("{\"v\":\"x {nope}\"}");
    assert_int_equal(action_render_set(&a, vals, &out, err, sizeof(err)), WB_ERR_INVALID);
    assert_non_null(strstr(err, "unknown placeholder"));
    json_object_put(a.set);
    json_object_put(vals);
}

static void test_conditions(void **state)
{
    (void)state;
    json_object *st = J("{\"vol\":30,\"temp\":21.5,\"power\":true,\"input\":\"hdmi1\","
                        "\"zero\":0,\"nul\":null,\"big\":9007199254740993,\"sfalse\":\"true\"}");
    static const struct {
        const char *field;
        const char *value;
        bool eq_holds; /* result for ==; != is its negation */
    } c[] = {
        {"vol", "30", true},
        {"vol", "30.0", true},
        {"vol", "31", false},
        {"vol", "30.5", false},
        {"vol", "\"30\"", false},
        {"temp", "21.5", true},
        {"temp", "21", false},
        {"power", "true", true},
        {"power", "false", false},
        {"power", "1", false},
        {"power", "\"true\"", false},
        {"sfalse", "true", false},
        {"sfalse", "\"true\"", true},
        {"zero", "false", false},
        {"zero", "0", true},
        {"zero", "-0.0", true},
        {"input", "\"hdmi1\"", true},
        {"input", "\"HDMI1\"", false},
        {"missing", "1", false},
        {"missing", "\"x\"", false},
        {"nul", "1", false},
        {"big", "9007199254740993", true},
        {"big", "9007199254740992.0", false}, /* no precision loss through double */
        {"big", "9007199254740992", false},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        struct cfg_condition cond = {
            .field = (char *)c[i].field, .op = CFG_COND_EQ, .value = J(c[i].value)};
        if (action_condition_holds(&cond, st) != c[i].eq_holds)
            fail_msg("case %zu: %s == %s should be %d", i, c[i].field, c[i].value, c[i].eq_holds);
        cond.op = CFG_COND_NE;
        if (action_condition_holds(&cond, st) == c[i].eq_holds)
            fail_msg("case %zu: %s != %s should be %d", i, c[i].field, c[i].value, !c[i].eq_holds);
        json_object_put(cond.value);
    }
    /* No state at all: like a missing field. No condition: holds. */
    struct cfg_condition cond = {.field = "vol", .op = CFG_COND_EQ, .value = J("30")};
    assert_false(action_condition_holds(&cond, NULL));
    cond.op = CFG_COND_NE;
    assert_true(action_condition_holds(&cond, NULL));
    assert_true(action_condition_holds(NULL, st));
    json_object_put(cond.value);
    json_object_put(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_param_with_nul),
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_null_and_no_params),
        cmocka_unit_test(test_params_from_payload),
        cmocka_unit_test(test_render_payload),
        cmocka_unit_test(test_render_set),
        cmocka_unit_test(test_conditions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

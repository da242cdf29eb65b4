/*
 * test_template.c - unit tests of src/common/template.c: placeholder names,
 * JSON-object detection, the walk (literal braces, contexts, stray braces,
 * escaped quotes, forced plain mode) and tmpl_check() (undeclared names,
 * JSON that does not render to an object, the length and depth bounds).
 *
 * No config or params: the names a template may use are a small table here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbmb/template.h"

static void test_names(void **state)
{
    (void)state;
    for (const char *c = "azAZ09_-."; *c; c++)
        assert_true(tmpl_name_char(*c));
    for (const char *c = "{} \"/+#\\"; *c; c++)
        assert_false(tmpl_name_char(*c));
    assert_int_equal(tmpl_placeholder_len("{abc}"), 3);
    assert_int_equal(tmpl_placeholder_len("{a.b-c_D9}tail"), 8);
    assert_int_equal(tmpl_placeholder_len("{}"), 0);
    assert_int_equal(tmpl_placeholder_len("{a b}"), 0);
    assert_int_equal(tmpl_placeholder_len("{abc"), 0);
    assert_int_equal(tmpl_placeholder_len("{{a}}"), 0);
    assert_int_equal(tmpl_placeholder_len("{\"a\"}"), 0);
}

static void test_is_json(void **state)
{
    (void)state;
    assert_true(tmpl_is_json("{}"));
    assert_true(tmpl_is_json(" {\"a\": 1}"));
    assert_true(tmpl_is_json("\n\t{ \r\n}"));
    assert_true(tmpl_is_json("{ \"a\": {x}}"));
    assert_false(tmpl_is_json("{level}"));
    assert_false(tmpl_is_json("{{\"a\"}}"));
    assert_false(tmpl_is_json(""));
    assert_false(tmpl_is_json("x{}"));
    assert_false(tmpl_is_json("1"));
}

/* The walk rendered as text: literal text as is, a placeholder as
 * [name:P|S|V] (plain, JSON string, JSON value). */
struct trace {
    char out[256];
    size_t len;
    const char *fail_on; /* a name the placeholder callback refuses */
};

static void trace_text(void *arg, const char *s, size_t n)
{
    struct trace *t = arg;
    assert_true(t->len + n < sizeof(t->out));
    memcpy(t->out + t->len, s, n);
    t->len += n;
    t->out[t->len] = '\0';
}

static wb_status trace_placeholder(void *arg, const char *name, size_t n, enum tmpl_ctx ctx)
{
    struct trace *t = arg;
    if (t->fail_on && strlen(t->fail_on) == n && memcmp(t->fail_on, name, n) == 0)
        return WB_ERR_RANGE;
    char buf[64];
    snprintf(buf, sizeof(buf), "[%.*s:%c]", (int)n, name, "PSV"[ctx]);
    trace_text(t, buf, strlen(buf));
    return WB_OK;
}

static const struct tmpl_ops trace_ops = {.text = trace_text, .placeholder = trace_placeholder};

static void test_walk(void **state)
{
    (void)state;
    static const struct {
        const char *t;
        bool json;
        wb_status st;
        const char *want; /* the trace, or an error substring */
    } c[] = {
        {"", false, WB_OK, ""},
        {"1", false, WB_OK, "1"},
        {"a{{b}}{x}c", false, WB_OK, "a{b}[x:P]c"},
        {"{{{x}}}", false, WB_OK, "{[x:P]}"},
        {"{x}{y}", false, WB_OK, "[x:P][y:P]"},
        {"a}b", false, WB_ERR_INVALID, "stray '}' at offset 1 of the template"},
        {"ab{", false, WB_ERR_INVALID, "stray '{' at offset 2 of the template"},
        {"{a b}", false, WB_ERR_INVALID, "stray '{' at offset 0"},
        {"{\"s\": \"v={x}\", \"n\": {y}}", true, WB_OK, "{\"s\": \"v=[x:S]\", \"n\": [y:V]}"},
        /* JSON structure braces are text; inside strings the plain rules hold. */
        {"{\"a\": {\"b\": [{x}]}}", true, WB_OK, "{\"a\": {\"b\": [[x:V]]}}"},
        {"{\"s\": \"{{x}}\"}", true, WB_OK, "{\"s\": \"{x}\"}"},
        {"{\"s\": \"{\"}", true, WB_ERR_INVALID, "stray '{' at offset 7"},
        {"{\"s\": \"}\"}", true, WB_ERR_INVALID, "stray '}' at offset 7"},
        /* An escaped quote does not end the string. */
        {"{\"s\": \"\\\"{x}\\\"\", \"v\": {y}}", true, WB_OK,
         "{\"s\": \"\\\"[x:S]\\\"\", \"v\": [y:V]}"},
        /* A set string is read in plain mode even when it looks like JSON. */
        {"{\"a\": 1}", false, WB_ERR_INVALID, "stray '{' at offset 0"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        struct trace t = {.len = 0};
        char err[200] = "";
        wb_status st = tmpl_walk(c[i].t, c[i].json, &trace_ops, &t, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("case %zu '%s': status %d want %d (%s)", i, c[i].t, (int)st, (int)c[i].st,
                     err);
        if (st == WB_OK && strcmp(t.out, c[i].want) != 0)
            fail_msg("case %zu: got '%s' want '%s'", i, t.out, c[i].want);
        if (st != WB_OK && !strstr(err, c[i].want))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, c[i].want);
    }
    /* The placeholder callback's status stops the walk and comes out as is. */
    struct trace t = {.fail_on = "y"};
    char err[200] = "";
    assert_int_equal(tmpl_walk("a{x}b{y}c", false, &trace_ops, &t, err, sizeof(err)), WB_ERR_RANGE);
    assert_string_equal(t.out, "a[x:P]b");
    /* Text may be dropped. */
    const struct tmpl_ops only_names = {.placeholder = trace_placeholder};
    struct trace t2 = {.len = 0};
    assert_int_equal(tmpl_walk("a{x}b", false, &only_names, &t2, err, sizeof(err)), WB_OK);
    assert_string_equal(t2.out, "[x:P]");
}

/* n: a number, b: a boolean, s: a string; anything else is undeclared. */
static enum tmpl_kind kind_of(void *arg, const char *name, size_t n)
{
    int *asked = arg;
    (*asked)++;
    if (n == 1 && name[0] == 'n')
        return TMPL_NUMBER;
    if (n == 1 && name[0] == 'b')
        return TMPL_BOOL;
    if (n == 1 && name[0] == 's')
        return TMPL_STRING;
    return TMPL_UNDECLARED;
}

static wb_status check(const char *t, char *err, size_t errlen)
{
    int asked = 0;
    return tmpl_check(t, tmpl_is_json(t), kind_of, &asked, err, errlen);
}

/* {"a": {"a": ... {"a": 1} ...}} nested depth objects deep. */
static char *nested(int depth)
{
    char *t = malloc((size_t)depth * 8 + 8);
    assert_non_null(t);
    t[0] = '\0';
    for (int i = 0; i < depth - 1; i++)
        strcat(t, "{\"a\": ");
    strcat(t, "{\"a\": {n}}");
    for (int i = 0; i < depth - 1; i++)
        strcat(t, "}");
    return t;
}

static void test_check(void **state)
{
    (void)state;
    static const struct {
        const char *t;
        wb_status st;
        const char *err; /* substring, for failures */
    } c[] = {
        {"", WB_OK, NULL},
        {"vol={n};on={b};say {s}", WB_OK, NULL},
        {"{{literal}} {n}", WB_OK, NULL},
        {"{nope}", WB_ERR_INVALID, "unknown placeholder '{nope}'"},
        {"a}b", WB_ERR_INVALID, "stray '}'"},
        {"{}", WB_OK, NULL},
        {"{\"n\": {n}, \"b\": {b}, \"s\": {s}, \"in\": \"<{s}> {n} {b}\"}", WB_OK, NULL},
        {" { \"a\": {\"b\": [{n}, {s}]}, \"c\": {} } \n", WB_OK, NULL},
        {"{\"a\": {nope}}", WB_ERR_INVALID, "unknown placeholder '{nope}'"},
        {"{\"a\": {n}", WB_ERR_INVALID, "does not render to valid JSON"},
        {"{\"a\": x{n}}", WB_ERR_INVALID, "does not render to valid JSON"},
        {"{\"a\": 1} {\"b\": 2}", WB_ERR_INVALID, "trailing text after the object"},
        /* A string stand-in at a value position is quoted: two make no value. */
        {"{\"a\": {s}{s}}", WB_ERR_INVALID, "does not render to valid JSON"},
        /* Strict grammar: no single quotes, no NaN. */
        {"{\"a\": 'x'}", WB_ERR_INVALID, "does not render to valid JSON"},
        {"{\"a\": NaN}", WB_ERR_INVALID, "not a finite number"},
        {"{\"a\": [1, {\"b\": -Infinity}]}", WB_ERR_INVALID, "not a finite number"},
        {"{\"a\": 1e999}", WB_ERR_INVALID, "not a finite number"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++) {
        char err[200] = "";
        wb_status st = check(c[i].t, err, sizeof(err));
        if (st != c[i].st)
            fail_msg("case %zu '%s': status %d want %d (%s)", i, c[i].t, (int)st, (int)c[i].st,
                     err);
        if (st != WB_OK && !strstr(err, c[i].err))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, c[i].err);
    }

    /* Every placeholder is asked about, in plain and JSON mode alike. */
    int asked = 0;
    char err[200];
    assert_int_equal(tmpl_check("{n}{b}{s}", false, kind_of, &asked, err, sizeof(err)), WB_OK);
    assert_int_equal(asked, 3);

    /* Depth: as deep as a payload may be (the same json-c tokener depth,
     * which counts one level more than the objects: see test_payload.c),
     * not deeper. */
    char *t = nested(TMPL_MAX_DEPTH - 1);
    wb_status st = check(t, err, sizeof(err));
    free(t);
    assert_int_equal(st, WB_OK);
    t = nested(TMPL_MAX_DEPTH);
    st = check(t, err, sizeof(err));
    free(t);
    assert_int_equal(st, WB_ERR_INVALID);

    /* Length: the stand-in rendering must fit in a payload. */
    char *big = malloc(TMPL_MAX_LEN + 2);
    assert_non_null(big);
    memset(big, 'x', TMPL_MAX_LEN);
    big[TMPL_MAX_LEN] = '\0';
    assert_int_equal(check(big, err, sizeof(err)), WB_OK);
    big[TMPL_MAX_LEN - 1] = '{';
    big[TMPL_MAX_LEN] = 's';
    big[TMPL_MAX_LEN + 1] = '}';
    big = realloc(big, TMPL_MAX_LEN + 3);
    assert_non_null(big);
    big[TMPL_MAX_LEN + 2] = '\0';
    assert_int_equal(check(big, err, sizeof(err)), WB_ERR_RANGE);
    assert_non_null(strstr(err, "more than 65536 bytes"));
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_is_json),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

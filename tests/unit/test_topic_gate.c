/*
 * test_topic_gate.c - the topic gate (topic_gate.h): MQTT's UTF-8 rules for
 * topic names, filters and single levels, mosquitto's limits, the counted
 * and rate-limited tgate_admit(), and the log-safe excerpt.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbmb/mirror.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_characters),
        cmocka_unit_test(test_filters_and_levels),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_admit_counts),
        cmocka_unit_test(test_excerpt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_util.c - the hand-written formatters of the message path against
 * the libc functions they replace: ISO-8601 time stamps (gmtime_r +
 * snprintf) over leap years, century rules, negative times and every
 * millisecond field; decimal int64 text (snprintf "%lld") at the edges;
 * joins truncated exactly as snprintf truncates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wbmb/util.h"

static void libc_iso(int64_t ms, char out[64])
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

static void check_iso(int64_t ms)
{
    char want[64], got[UTIL_TS_LEN + 8];
    memset(got, 'x', sizeof(got));
    util_iso8601_from_ms(ms, got);
    assert_int_equal(strlen(got), UTIL_TS_LEN - 1);
    /* libc is the oracle only where its time_t holds the time: Debian 12's
     * armhf has a 32-bit time_t (1901-12-13 to 2038-01-19), where gmtime
     * of a wider value wraps; t_iso_known covers the years beyond. */
    int64_t sec = ms / 1000 - (ms % 1000 < 0);
    if ((int64_t)(time_t)sec != sec)
        return;
    libc_iso(ms, want);
    if (strcmp(want, got) != 0)
        fail_msg("%" PRId64 ": want %s, got %s", ms, want, got);
}

static void t_iso_known(void **state)
{
    (void)state;
    char b[UTIL_TS_LEN];
    util_iso8601_from_ms(0, b);
    assert_string_equal(b, "1970-01-01T00:00:00.000Z");
    util_iso8601_from_ms(1795138669123LL, b);
    assert_string_equal(b, "2026-11-20T01:37:49.123Z");
    util_iso8601_from_ms(951782400000LL, b); /* 2000 is a leap year */
    assert_string_equal(b, "2000-02-29T00:00:00.000Z");
    util_iso8601_from_ms(-1, b);
    assert_string_equal(b, "1969-12-31T23:59:59.999Z");
    /* Beyond a 32-bit time_t, both ways (the formatter is integer-only). */
    util_iso8601_from_ms(2147483648000LL, b);
    assert_string_equal(b, "2038-01-19T03:14:08.000Z");
    util_iso8601_from_ms(4107542400000LL, b); /* 2100 is not a leap year */
    assert_string_equal(b, "2100-03-01T00:00:00.000Z");
    util_iso8601_from_ms(7289654399999LL, b);
    assert_string_equal(b, "2200-12-31T23:59:59.999Z");
    util_iso8601_from_ms(-2209018465073LL, b);
    assert_string_equal(b, "1899-12-31T15:45:34.927Z");
}

/* Every day from 1900 to 2200 at a varying time of day, and a spread of
 * milliseconds, against gmtime_r. */
static void t_iso_against_libc(void **state)
{
    (void)state;
    const int64_t day = 86400000;
    for (int64_t d = -25567; d < 84000; d++)
        check_iso(d * day + (d * 7919) % day);
    for (int64_t ms = -5000; ms < 5000; ms += 7)
        check_iso(1795138669000LL + ms);
    check_iso(253402300799999LL); /* 9999-12-31T23:59:59.999Z */
}

static void t_i64(void **state)
{
    (void)state;
    const int64_t v[] = {0, 1, -1, 9, 10, -10, 123456789, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32], got[UTIL_I64_LEN];
        int n = snprintf(want, sizeof(want), "%" PRId64, v[i]);
        assert_int_equal(util_format_i64(v[i], got), (size_t)n);
        assert_string_equal(got, want);
    }
}

static void t_join(void **state)
{
    (void)state;
    char b[12];
    assert_int_equal(util_join(b, sizeof(b), "device", ":", "tv"), 9);
    assert_string_equal(b, "device:tv");
    /* truncated to cap - 1 bytes, as snprintf("%s%s%s") would */
    assert_int_equal(util_join(b, sizeof(b), "device", ":", "living_room"), 11);
    assert_string_equal(b, "device:livi");
    assert_int_equal(util_join(b, 1, "a", "/", "b"), 0);
    assert_string_equal(b, "");
    assert_int_equal(util_join(b, sizeof(b), "", "/", ""), 1);
    assert_string_equal(b, "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_iso_known),
        cmocka_unit_test(t_iso_against_libc),
        cmocka_unit_test(t_i64),
        cmocka_unit_test(t_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

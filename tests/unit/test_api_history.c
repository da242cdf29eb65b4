/*
 * test_api_history.c - unit tests of src/core/api_history.c: the times the
 * history query takes and the down-sampling into buckets. The parameters'
 * 400s over a real store are in test_store.c (t_history_buckets), the HTTP
 * round trip in tests/integration/test_history_query.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/api_history.h"
#include "wbmb/util.h"

#define T0 1796277600000LL /* 2026-12-03T06:00:00Z */

static void t_times(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {
        {"2026-12-03T06:00:00Z", T0},
        {"2026-12-03t06:00:00z", T0},
        {"2026-12-03T06:00:00.123Z", T0 + 123},
        {"2026-12-03T06:00:00.1Z", T0 + 100},
        {"2026-12-03T06:00:00.123456789Z", T0 + 123},
        {"2026-12-03T07:00:00+01:00", T0},
        {"2026-12-03T07:30:00+0130", T0},
        {"2026-12-03T07:00:00 01:00", T0}, /* '+' unescaped in a query string */
        {"2026-12-03T01:00:00-05:00", T0},
        {"2026-12-03T06:00:00,5Z", T0 + 500},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"0001-01-01T00:00:00Z", -62135596800000LL},
        {"1796277600000", T0},
        {"0", 0},
        {"-1000", -1000},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = 42;
        assert_int_equal(api_time_parse(good[i].in, &ms), 0);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {
        "",
        "now",
        "2026-12-03",
        "2026-12-03T06:00:00",  /* no zone */
        "2026-12-03 06:00:00Z", /* a space for T */
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-12-32T00:00:00Z",
        "2026-12-03T24:00:00Z",
        "2026-12-03T06:60:00Z",
        "2026-12-03T06:00:60Z",
        "2026-12-03T06:00:00.Z",
        "2026-12-03T06:00:00.1234567890Z",
        "2026-12-03T06:00:00Zx",
        "2026-12-03T06:00:00+1:00",
        "2026-12-03T06:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "12a",
        "--5",
        "9999999999999999",
        "1e3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms;
        assert_int_equal(api_time_parse(bad[i], &ms), -1);
    }
    /* The store's own ISO-8601 round-trips. */
    char ts[UTIL_TS_LEN];
    int64_t ms;
    util_iso8601_from_ms(T0 + 86400123, ts);
    assert_int_equal(api_time_parse(ts, &ms), 0);
    assert_int_equal(ms, T0 + 86400123);
}

static void add_row(struct store_rows *r, int64_t ms, const char *state, const char *stats)
{
    char ts[UTIL_TS_LEN];
    util_iso8601_from_ms(ms, ts);
    const char *f[] = {"tv", ts, state, stats ? "interval" : NULL, stats};
    assert_int_equal(store_rows_add(r, f), WB_OK);
}

static void add(struct store_rows *r, int64_t ms, const char *state)
{
    add_row(r, ms, state, NULL);
}

static void assert_json(json_object *o, const char *want)
{
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), want);
}

/* Ten one-minute spans over [T0, T0 + 10 min): rows in spans 0, 1 and 7,
 * span 7 with a field that turns from a number into a string. */
static void t_buckets(void **state)
{
    (void)state;
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    add(&r, T0, "{\"t\":20,\"on\":true}");
    add(&r, T0 + 30000, "{\"t\":21.5,\"on\":false}");
    add(&r, T0 + 59999, "{\"t\":22}");
    add(&r, T0 + 60000, "{\"t\":-1,\"on\":true}");
    add(&r, T0 + 7 * 60000 + 1, "{\"t\":5,\"s\":1}");
    add(&r, T0 + 7 * 60000 + 2, "{\"t\":7,\"s\":\"x\",\"z\":null}");
    json_object *b = api_history_buckets(&r, T0, T0 + 600000 - 1, 10, true, NULL);
    assert_int_equal(json_object_array_length(b), 3);
    assert_json(json_object_array_get_idx(b, 0),
                "{\"ts\":\"2026-12-03T06:00:59.999Z\",\"state\":{\"t\":21.166666666666668,"
                "\"on\":false},\"stats\":{\"t\":{\"min\":20,\"max\":22,\"mean\":21.166666666666668,"
                "\"n\":3}},\"n\":3}");
    assert_json(json_object_array_get_idx(b, 1),
                "{\"ts\":\"2026-12-03T06:01:00.000Z\",\"state\":{\"t\":-1,\"on\":true},"
                "\"stats\":{\"t\":{\"min\":-1,\"max\":-1,\"mean\":-1,\"n\":1}},\"n\":1}");
    assert_json(json_object_array_get_idx(b, 2),
                "{\"ts\":\"2026-12-03T06:07:00.002Z\",\"state\":{\"t\":6,\"s\":\"x\",\"z\":null},"
                "\"stats\":{\"t\":{\"min\":5,\"max\":7,\"mean\":6,\"n\":2}},\"n\":2}");
    json_object_put(b);
    /* Newest first, one field only. */
    const char *fields[] = {"on", NULL};
    b = api_history_buckets(&r, T0, T0 + 600000 - 1, 10, false, fields);
    assert_int_equal(json_object_array_length(b), 3);
    assert_json(json_object_array_get_idx(b, 0),
                "{\"ts\":\"2026-12-03T06:07:00.002Z\",\"state\":{},\"stats\":{},\"n\":2}");
    assert_json(json_object_array_get_idx(b, 2),
                "{\"ts\":\"2026-12-03T06:00:59.999Z\",\"state\":{\"on\":false},\"stats\":{},"
                "\"n\":3}");
    json_object_put(b);
    /* One bucket for everything; rows outside the range left out. */
    b = api_history_buckets(&r, T0 + 1, T0 + 60000, 1, true, NULL);
    assert_int_equal(json_object_array_length(b), 1);
    json_object *n;
    assert_true(json_object_object_get_ex(json_object_array_get_idx(b, 0), "n", &n));
    assert_int_equal(json_object_get_int(n), 3);
    json_object_put(b);
    /* Spans of 43 ms: the rows 1 ms apart share one (two pairs). */
    b = api_history_buckets(&r, T0, T0 + 7 * 60000 + 2, 10000, true, NULL);
    assert_int_equal(json_object_array_length(b), 4);
    json_object_put(b);
    store_rows_free(&r);
}

/* Never more than max_points buckets, whatever the rows. */
static void t_bucket_bound(void **state)
{
    (void)state;
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    for (int i = 0; i < 5000; i++)
        add(&r, T0 + i * 17, "{\"v\":1}");
    for (int n = 1; n <= 600; n += 37) {
        json_object *b = api_history_buckets(&r, T0, T0 + 4999 * 17, n, n % 2, NULL);
        assert_true(json_object_array_length(b) <= (size_t)n);
        assert_true(json_object_array_length(b) >= (size_t)(n < 5000 ? n * 9 / 10 : 1));
        size_t total = 0;
        for (size_t i = 0; i < json_object_array_length(b); i++) {
            json_object *c;
            assert_true(json_object_object_get_ex(json_object_array_get_idx(b, i), "n", &c));
            total += (size_t)json_object_get_int(c);
        }
        assert_int_equal(total, 5000);
        json_object_put(b);
    }
    store_rows_free(&r);
}

/* Interval rows (mode interval) carry their own min/max/mean/n: a bucket
 * folds them in as the samples they stand for, a plain row beside them
 * counts once, and a field without stats falls back to its value. */
static void t_buckets_of_intervals(void **state)
{
    (void)state;
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    add_row(&r, T0 + 10000, "{\"t\":21,\"on\":true}",
            "{\"t\":{\"min\":18,\"max\":25,\"mean\":20,\"n\":4}}");
    add_row(&r, T0 + 20000, "{\"t\":22}", "{\"t\":{\"min\":19,\"max\":30,\"mean\":26,\"n\":2}}");
    add(&r, T0 + 30000, "{\"t\":24}");
    add_row(&r, T0 + 40000, "{\"t\":23}", "{\"t\":\"bogus\"}");
    json_object *b = api_history_buckets(&r, T0, T0 + 59999, 1, true, NULL);
    assert_int_equal(json_object_array_length(b), 1);
    /* n = 4 + 2 + 1 + 1; sum = 80 + 52 + 24 + 23 = 179 */
    assert_json(json_object_array_get_idx(b, 0),
                "{\"ts\":\"2026-12-03T06:00:40.000Z\",\"state\":{\"t\":22.375,\"on\":true},"
                "\"stats\":{\"t\":{\"min\":18,\"max\":30,\"mean\":22.375,\"n\":8}},\"n\":4}");
    json_object_put(b);
    store_rows_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_times),
        cmocka_unit_test(t_buckets),
        cmocka_unit_test(t_buckets_of_intervals),
        cmocka_unit_test(t_bucket_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_topic_tree.c - unit tests of src/domain/topic_tree.c: filter
 * validation, exact and wildcard matching against MQTT rules ($-topics,
 * "a/#" matching "a", empty levels), several values per filter, and a large
 * number of exact filters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbmb/topic_tree.h"

/* Collects matched values (small ints cast to pointers) as a bit set. */
struct hits {
    uint64_t bits;
    size_t calls;
};

static void collect(void *value, void *ud)
{
    struct hits *h = ud;
    h->bits |= 1ULL << (uintptr_t)value;
    h->calls++;
}

/* ttree_add_ex tells whether a filter is new: the device manager
 * subscribes once per filter without scanning its list. */
static void test_add_reports_first(void **state)
{
    (void)state;
    struct ttree *t = ttree_create();
    int a, b;
    bool first = false;
    assert_int_equal(ttree_add_ex(t, "x/y", &a, &first), WB_OK);
    assert_true(first);
    assert_int_equal(ttree_add_ex(t, "x/y", &b, &first), WB_OK);
    assert_false(first);
    assert_int_equal(ttree_add_ex(t, "x/+", &a, &first), WB_OK);
    assert_true(first);
    assert_int_equal(ttree_add_ex(t, "x/+", &b, &first), WB_OK);
    assert_false(first);
    assert_int_equal(ttree_add_ex(t, "x/#", &a, NULL), WB_OK);
    first = true;
    assert_int_equal(ttree_add_ex(t, "x/#/z", &a, &first), WB_ERR_INVALID);
    assert_false(first);
    assert_int_equal(ttree_match(t, "x/y", NULL, NULL), 5);
    ttree_destroy(t);
}

static void test_validate(void **state)
{
    (void)state;
    static const char *const good[] = {"a",    "a/b", "#",  "+",      "a/#",   "+/+/x", "/",
                                       "a//b", "/a",  "a/", "$SYS/#", "a/+/b", "+/#",   "é/ü"};
    static const char *const bad[] = {"",   "a/#/b", "a+", "#a", "a#",
                                      "+a", "a/b#",  "##", "++", "#/a"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        assert_int_equal(ttree_validate_filter(good[i]), WB_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(ttree_validate_filter(bad[i]), WB_ERR_INVALID);
    }
    assert_int_equal(ttree_validate_filter(NULL), WB_ERR_INVALID);

    struct ttree *t = ttree_create();
    assert_non_null(t);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(ttree_add(t, bad[i], (void *)1), WB_ERR_INVALID);
    assert_int_equal(ttree_match(t, "a", collect, NULL), 0);
    ttree_destroy(t);
    ttree_destroy(NULL);
}

/* One table of filters (value = index), then each topic with its expected set. */
static const char *const filters[] = {
    /* 0 */ "a",
    /* 1 */ "a/#",
    /* 2 */ "#",
    /* 3 */ "+/+/x",
    /* 4 */ "a/+",
    /* 5 */ "a/b",
    /* 6 */ "+",
    /* 7 */ "$SYS/#",
    /* 8 */ "$SYS/broker/+",
    /* 9 */ "a//b",
    /* 10 */ "a/+/b",
    /* 11 */ "/devices/+/controls/+",
    /* 12 */ "/devices/relay/controls/K1",
    /* 13 */ "+/#",
    /* 14 */ "zigbee2mqtt/tv_plug",
    /* 15 */ "a/b/#",
};

#define B(n) (1ULL << (n))

static const struct {
    const char *topic;
    uint64_t want;
} cases[] = {
    {"a", B(0) | B(1) | B(2) | B(6) | B(13)},
    {"a/b", B(1) | B(2) | B(4) | B(5) | B(13) | B(15)},
    {"a/c", B(1) | B(2) | B(4) | B(13)},
    {"a/b/x", B(1) | B(2) | B(3) | B(13) | B(15)},
    {"q/r/x", B(2) | B(3) | B(13)},
    {"q/r/y", B(2) | B(13)},
    {"a//b", B(1) | B(2) | B(9) | B(10) | B(13)},
    {"a/", B(1) | B(2) | B(4) | B(13)},
    {"b", B(2) | B(6) | B(13)},
    {"$SYS", B(7)},
    {"$SYS/broker/uptime", B(7) | B(8)},
    {"$SYS/x/x", B(7)},
    {"$other", 0},
    {"a/$SYS", B(1) | B(2) | B(4) | B(13)},
    {"/devices/relay/controls/K1", B(2) | B(11) | B(12) | B(13)},
    {"/devices/relay/controls/K2", B(2) | B(11) | B(13)},
    {"/devices/relay/controls/K1/on", B(2) | B(13)},
    {"zigbee2mqtt/tv_plug", B(2) | B(13) | B(14)},
    {"zigbee2mqtt/tv_plug/availability", B(2) | B(13)},
    {"/", B(2) | B(13)},
    {"A", B(2) | B(6) | B(13)}, /* case sensitive */
};

static void test_match_table(void **state)
{
    (void)state;
    struct ttree *t = ttree_create();
    assert_non_null(t);
    for (size_t i = 0; i < sizeof(filters) / sizeof(*filters); i++)
        assert_int_equal(ttree_add(t, filters[i], (void *)(uintptr_t)i), WB_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct hits h = {0};
        size_t n = ttree_match(t, cases[i].topic, collect, &h);
        if (h.bits != cases[i].want)
            fail_msg("topic '%s': got %#llx want %#llx", cases[i].topic, (unsigned long long)h.bits,
                     (unsigned long long)cases[i].want);
        assert_int_equal(n, h.calls);
        assert_int_equal(n, (size_t)__builtin_popcountll(cases[i].want));
    }
    /* Topics with wildcards, or empty, never match. */
    assert_int_equal(ttree_match(t, "a/+", collect, &(struct hits){0}), 0);
    assert_int_equal(ttree_match(t, "#", collect, &(struct hits){0}), 0);
    assert_int_equal(ttree_match(t, "", collect, &(struct hits){0}), 0);
    assert_int_equal(ttree_match(t, NULL, collect, &(struct hits){0}), 0);
    /* A NULL callback still counts. */
    assert_int_equal(ttree_match(t, "a", NULL, NULL), 5);
    ttree_destroy(t);
}

static void test_several_values(void **state)
{
    (void)state;
    struct ttree *t = ttree_create();
    assert_non_null(t);
    assert_int_equal(ttree_add(t, "x/y", (void *)1), WB_OK);
    assert_int_equal(ttree_add(t, "x/y", (void *)2), WB_OK);
    assert_int_equal(ttree_add(t, "x/y", (void *)3), WB_OK);
    assert_int_equal(ttree_add(t, "x/+", (void *)4), WB_OK);
    assert_int_equal(ttree_add(t, "x/+", (void *)5), WB_OK);
    assert_int_equal(ttree_add(t, "x/#", (void *)6), WB_OK);
    struct hits h = {0};
    assert_int_equal(ttree_match(t, "x/y", collect, &h), 6);
    assert_int_equal(h.bits, B(1) | B(2) | B(3) | B(4) | B(5) | B(6));
    h = (struct hits){0};
    assert_int_equal(ttree_match(t, "x", collect, &h), 1);
    assert_int_equal(h.bits, B(6));
    /* The same value under two matching filters is reported once per pair. */
    assert_int_equal(ttree_add(t, "x/#", (void *)1), WB_OK);
    h = (struct hits){0};
    assert_int_equal(ttree_match(t, "x/y", collect, &h), 7);
    ttree_destroy(t);
}

static void count_cb(void *value, void *ud)
{
    size_t *seen = ud;
    *seen = (size_t)(uintptr_t)value;
}

static void test_many_exact(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct ttree *t = ttree_create();
    assert_non_null(t);
    char topic[64];
    for (size_t i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "/devices/dev%zu/controls/c%zu", i % 97, i);
        assert_int_equal(ttree_add(t, topic, (void *)(uintptr_t)(i + 1)), WB_OK);
    }
    assert_int_equal(ttree_add(t, "/devices/+/controls/c5", (void *)(uintptr_t)(N + 1)), WB_OK);
    for (size_t i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "/devices/dev%zu/controls/c%zu", i % 97, i);
        size_t seen = 0;
        size_t n = ttree_match(t, topic, count_cb, &seen);
        if (i == 5) {
            assert_int_equal(n, 2);
            continue;
        }
        assert_int_equal(n, 1);
        assert_int_equal(seen, i + 1);
    }
    /* Near misses. */
    assert_int_equal(ttree_match(t, "/devices/dev0/controls/c1", NULL, NULL), 0);
    assert_int_equal(ttree_match(t, "/devices/dev1/controls/c1/", NULL, NULL), 0);
    assert_int_equal(ttree_match(t, "/devices/dev1/controls/c", NULL, NULL), 0);
    assert_int_equal(ttree_match(t, "/devices/x/controls/c5", NULL, NULL), 1);
    ttree_destroy(t);
}

static void test_many_wildcards(void **state)
{
    (void)state;
    /* Many literal siblings under wildcard filters exercise the sorted
     * children arrays (insertion in both orders). */
    struct ttree *t = ttree_create();
    assert_non_null(t);
    char f[64];
    for (int i = 0; i < 500; i++) {
        int k = (i * 7919) % 500;
        snprintf(f, sizeof(f), "site/k%d/+", k);
        assert_int_equal(ttree_add(t, f, (void *)(uintptr_t)(k + 1)), WB_OK);
    }
    for (int k = 0; k < 500; k++) {
        snprintf(f, sizeof(f), "site/k%d/temp", k);
        size_t seen = 0;
        assert_int_equal(ttree_match(t, f, count_cb, &seen), 1);
        assert_int_equal(seen, (size_t)k + 1);
        snprintf(f, sizeof(f), "site/k%d", k);
        assert_int_equal(ttree_match(t, f, NULL, NULL), 0);
    }
    ttree_destroy(t);
}

static void test_long_topic(void **state)
{
    (void)state;
    struct ttree *t = ttree_create();
    assert_non_null(t);
    assert_int_equal(ttree_add(t, "#", (void *)1), WB_OK);
    assert_int_equal(ttree_add(t, "+/+", (void *)2), WB_OK);
    /* 30 000 empty levels: the walk must not recurse per topic level. */
    size_t n = 30000;
    char *topic = malloc(n + 1);
    assert_non_null(topic);
    memset(topic, '/', n);
    topic[n] = '\0';
    assert_int_equal(ttree_match(t, topic, NULL, NULL), 1);
    free(topic);
    /* An over-long filter is rejected. */
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    assert_int_equal(ttree_validate_filter(big), WB_ERR_INVALID);
    free(big);
    ttree_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_reports_first), cmocka_unit_test(test_validate),
        cmocka_unit_test(test_match_table),       cmocka_unit_test(test_several_values),
        cmocka_unit_test(test_many_exact),        cmocka_unit_test(test_many_wildcards),
        cmocka_unit_test(test_long_topic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

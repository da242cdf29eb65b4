/*
 * test_strix.c - the string index over an owner's array: found and absent
 * keys, growth rebuilding from the owner's keys, colliding probes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "wbmb/strix.h"

#define N 1000

static char keys[N][16];

static const char *key_at(const void *owner, uint32_t pos)
{
    return ((const char(*)[16])owner)[pos];
}

static void test_find_grow(void **state)
{
    (void)state;
    struct strix x = {0};
    assert_int_equal(strix_find(&x, "k0", key_at, keys), -1); /* never reserved */
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        assert_true(strix_reserve(&x, (size_t)i + 1, (size_t)i, key_at, keys));
        strix_put(&x, keys[i], (uint32_t)i);
        assert_true(x.cap >= 2 * ((size_t)i + 1)); /* at most half full */
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(strix_find(&x, keys[i], key_at, keys), i);
    assert_int_equal(strix_find(&x, "k1000", key_at, keys), -1);
    assert_int_equal(strix_find(&x, "", key_at, keys), -1);
    size_t cap = x.cap;
    assert_true(strix_reserve(&x, N, N, key_at, keys)); /* room already: unchanged */
    assert_int_equal(x.cap, cap);
    strix_free(&x);
    assert_int_equal(x.cap, 0);
    assert_int_equal(strix_find(&x, "k1", key_at, keys), -1);
    strix_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_find_grow)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_mqttc_diag.c - the pure parts of mqttc_diag.c: the disconnect window
 * behind /health's "flapping" (issue 14: a reconnect loop every ~2 s kept
 * /health "ok" because each short connection restarted the 30 s timer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mqtt/mqttc_int.h"

static void test_flap_defaults(void **state)
{
    (void)state;
    struct flap_window f;
    assert_int_equal(flap_init(&f, 0, 0), WB_OK);
    assert_int_equal(f.max_losses, FLAP_DEFAULT_DISCONNECTS);
    assert_int_equal(f.window_ms, (int64_t)FLAP_DEFAULT_WINDOW_S * 1000);
    /* A loss every 2 s: the 4th within 60 s makes it flapping. */
    int64_t t = 1000000;
    for (unsigned i = 0; i < FLAP_DEFAULT_DISCONNECTS; i++) {
        flap_note(&f, t);
        assert_false(flap_is_flapping(&f, t));
        t += 2000;
    }
    flap_note(&f, t);
    assert_true(flap_is_flapping(&f, t));
    /* Flapping until the oldest of the last four leaves the window... */
    assert_true(flap_is_flapping(&f, t + 60000 - 6000 - 1));
    assert_false(flap_is_flapping(&f, t + 60000 - 6000));
    flap_free(&f);
    flap_free(&f); /* twice is harmless */
}

static void test_flap_spread_out(void **state)
{
    (void)state;
    struct flap_window f;
    assert_int_equal(flap_init(&f, 2, 10), WB_OK);
    /* Losses 6 s apart never put three within 10 s. */
    int64_t t = 0;
    for (int i = 0; i < 20; i++, t += 6000) {
        flap_note(&f, t);
        assert_false(flap_is_flapping(&f, t));
    }
    /* Two more quickly: three within 10 s. */
    flap_note(&f, t);
    flap_note(&f, t + 100);
    assert_true(flap_is_flapping(&f, t + 100));
    flap_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flap_defaults),
        cmocka_unit_test(test_flap_spread_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

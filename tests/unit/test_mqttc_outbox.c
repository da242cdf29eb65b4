/*
 * test_mqttc_outbox.c - mqttc's outbox (src/mqtt/outbox.h): the lock-free
 * counts behind mqttc_backlog() (outbox_depth) and the direct path of
 * mqttc_publish() (outbox_idle) across put, take, done, coalescing and
 * clear, and that reading them takes no lock (lockstat.h, debug builds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mqtt/outbox.h"
#include "wbmb/lockstat.h"

static void test_depth_and_idle(void **state)
{
    (void)state;
    struct outbox *o = outbox_create();
    assert_non_null(o);
    assert_int_equal(outbox_depth(o), 0);
    assert_true(outbox_idle(o));

    assert_int_equal(outbox_put(o, "cmd/a", "1", 1, 1, false), WB_OK);
    assert_int_equal(outbox_depth(o), 1);
    assert_false(outbox_idle(o));
    assert_int_equal(outbox_put(o, "state/x", "1", 1, 0, true), WB_OK);
    assert_int_equal(outbox_depth(o), 2);
    /* coalesced into the queued state/x: no new entry */
    assert_int_equal(outbox_put(o, "state/x", "22", 2, 0, true), WB_OK);
    assert_int_equal(outbox_depth(o), 2);
    assert_int_equal(outbox_coalesced(o), 1);
    /* a command is never coalesced */
    assert_int_equal(outbox_put(o, "cmd/a", "2", 1, 1, false), WB_OK);
    assert_int_equal(outbox_depth(o), 3);

    struct outbox_msg *m = outbox_take(o, 0);
    assert_non_null(m);
    assert_string_equal(m->topic, "cmd/a");
    assert_int_equal(outbox_depth(o), 2);
    assert_false(outbox_idle(o));
    outbox_done(o, m);
    assert_int_equal(outbox_depth(o), 2);
    assert_false(outbox_idle(o));

    m = outbox_take(o, 0);
    assert_non_null(m);
    assert_string_equal(m->topic, "state/x");
    assert_string_equal(m->payload, "22");
    /* taken, so a new state/x is a new entry, not coalesced into the one in
     * hand */
    assert_int_equal(outbox_put(o, "state/x", "3", 1, 0, true), WB_OK);
    assert_int_equal(outbox_depth(o), 2);
    assert_int_equal(outbox_coalesced(o), 1);
    outbox_done(o, m);

    m = outbox_take(o, 0);
    assert_string_equal(m->topic, "cmd/a");
    outbox_done(o, m);
    m = outbox_take(o, 0);
    assert_string_equal(m->topic, "state/x");
    /* nothing queued, but one still in the sender's hand: not idle */
    assert_int_equal(outbox_depth(o), 0);
    assert_false(outbox_idle(o));
    outbox_done(o, m);
    assert_int_equal(outbox_depth(o), 0);
    assert_true(outbox_idle(o));
    assert_null(outbox_take(o, 0));
    assert_true(outbox_idle(o));
    outbox_destroy(o);
}

static int acks;
static void on_ack(void *ud, uint64_t token, int rc, const char *why)
{
    (void)ud;
    (void)token;
    (void)why;
    assert_int_equal(rc, -1);
    acks++;
}

static void test_clear(void **state)
{
    (void)state;
    struct outbox *o = outbox_create();
    assert_non_null(o);
    assert_int_equal(outbox_put(o, "a", "1", 1, 0, true), WB_OK);
    assert_int_equal(outbox_put(o, "b", "1", 1, 0, true), WB_OK);
    assert_int_equal(outbox_put_acked(o, "c", "1", 1, 1, on_ack, NULL, 7), WB_OK);
    assert_int_equal(outbox_put(o, "d", "1", 1, 0, false), WB_OK);
    assert_int_equal(outbox_depth(o), 4);
    struct outbox_msg *m = outbox_take(o, 0); /* "a" in hand */
    assert_non_null(m);
    acks = 0;
    assert_int_equal(outbox_clear(o, "test"), 3);
    assert_int_equal(acks, 1);
    assert_int_equal(outbox_depth(o), 0);
    assert_false(outbox_idle(o)); /* "a" is still in hand */
    outbox_done(o, m);
    assert_true(outbox_idle(o));
    /* the table was cleared too: "b" is a new entry again */
    assert_int_equal(outbox_put(o, "b", "2", 1, 0, true), WB_OK);
    assert_int_equal(outbox_depth(o), 1);
    assert_false(outbox_idle(o));
    assert_int_equal(outbox_clear(o, "test"), 1);
    assert_true(outbox_idle(o));
    outbox_destroy(o);
}

/* Reading the counts takes no lock; a put of a command takes exactly one
 * (the outbox's), a coalescing put one, a put of a new retained topic two
 * (the look-up, then the insert). */
static void test_lock_counts(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip(); /* lockstat counts in debug builds only */
#endif
    struct outbox *o = outbox_create();
    assert_non_null(o);
    assert_int_equal(outbox_put(o, "a", "1", 1, 0, true), WB_OK);
    uint64_t n = lockstat_thread();
    assert_int_equal(outbox_depth(o), 1);
    assert_false(outbox_idle(o));
    assert_int_equal(lockstat_thread() - n, 0);

    n = lockstat_thread();
    assert_int_equal(outbox_put(o, "cmd", "1", 1, 1, false), WB_OK);
    assert_int_equal(lockstat_thread() - n, 1);
    n = lockstat_thread();
    assert_int_equal(outbox_put(o, "a", "2", 1, 0, true), WB_OK);
    assert_int_equal(lockstat_thread() - n, 1);
    n = lockstat_thread();
    assert_int_equal(outbox_put(o, "b", "1", 1, 0, true), WB_OK);
    assert_int_equal(lockstat_thread() - n, 2);
    outbox_destroy(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_and_idle),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_lock_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

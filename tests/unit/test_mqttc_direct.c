/*
 * test_mqttc_direct.c - publications made inside the message callback (the
 * core applying a message in place on paho's receive thread) go to paho
 * directly while the outbox is idle, through the outbox otherwise; either
 * way their order holds and the latest value arrives (a retained
 * publication waiting in the outbox may be replaced by a newer one of the
 * same topic: that is the outbox's coalescing). And the lock budget of
 * the message path (lockstat.h): the up-check, the idle check and
 * mqttc_backlog() take no lock. Against a real mosquitto.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "broker_fixture.h"
#include "wbmb/http.h"
#include "wbmb/lockstat.h"
#include "wbmb/mqttc.h"
#include "wbmb/queue.h"

#define ECHO_N 2000

static struct broker g_broker;

/* The echo client: every message on echo/in is republished from inside the
 * callback on echo/out (retained, QoS 0, as the mirror does) and, every
 * tenth, also from the test's own thread on echo/side (the outbox path). */
struct echo {
    struct mqttc *c;
    atomic_int seen;
    wb_status last_err;
};

/* The receiver: the order of echo/out payloads. */
struct sink {
    pthread_mutex_t mu;
    int n, last, out_of_order;
};

static void on_echo(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    (void)retained;
    struct echo *e = ud;
    if (strcmp(topic, "echo/in") != 0)
        return;
    wb_status st = mqttc_publish(e->c, "echo/out", payload, len, 0, true);
    if (st != WB_OK)
        e->last_err = st;
    if (!(len == 1 && *(const char *)payload == '0')) /* not a probe */
        atomic_fetch_add(&e->seen, 1);
}

static void on_sink(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    (void)retained;
    struct sink *s = ud;
    if (strcmp(topic, "echo/out") != 0)
        return;
    char buf[32];
    size_t l = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
    memcpy(buf, payload, l);
    buf[l] = '\0';
    int v = atoi(buf);
    pthread_mutex_lock(&s->mu);
    if (v <= s->last)
        s->out_of_order++;
    s->last = v;
    s->n++;
    pthread_mutex_unlock(&s->mu);
}

static void on_conn_ignore(void *ud, bool up)
{
    (void)ud;
    (void)up;
}

static struct mqttc *client(const char *id, mqttc_message_cb cb, void *ud)
{
    struct mqttc_options o = {
        .host = "127.0.0.1", .port = g_broker.port, .client_id = id, .keepalive_s = 5};
    char err[256];
    struct mqttc *c = mqttc_create(&o, cb, on_conn_ignore, ud, err, sizeof(err));
    if (!c)
        fail_msg("mqttc_create: %s", err);
    return c;
}

static int sink_n(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int sink_last(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    int v = s->last;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void test_publish_inside_callback(void **state)
{
    (void)state;
    struct echo e = {.last_err = WB_OK};
    atomic_init(&e.seen, 0);
    struct sink s = {.last = 0};
    pthread_mutex_init(&s.mu, NULL);
    e.c = client("t-echo", on_echo, &e);
    struct mqttc *rx = client("t-echo-rx", on_sink, &s);
    struct mqttc *tx = client("t-echo-tx", NULL, NULL);
    const char *fin[] = {"echo/in"}, *fout[] = {"echo/out"};
    assert_int_equal(mqttc_set_subscriptions(e.c, fin, 1, 0), WB_OK);
    assert_int_equal(mqttc_set_subscriptions(rx, fout, 1, 0), WB_OK);
    assert_int_equal(mqttc_start(e.c), WB_OK);
    assert_int_equal(mqttc_start(rx), WB_OK);
    assert_int_equal(mqttc_start(tx), WB_OK);
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (!(mqttc_is_connected(e.c) && mqttc_is_connected(rx) && mqttc_is_connected(tx))) {
        assert_true(util_mono_ms() < end);
        sleep_ms(10);
    }

    /* Probe until both subscriptions are active: a "0" echoed and seen. */
    end = util_mono_ms() + DEADLINE_MS;
    while (sink_n(&s) == 0) {
        assert_true(util_mono_ms() < end);
        assert_int_equal(mqttc_publish(tx, "echo/in", "0", 1, 1, false), WB_OK);
        sleep_ms(50);
    }
    pthread_mutex_lock(&s.mu);
    s.n = 0;
    s.last = 0;
    s.out_of_order = 0;
    pthread_mutex_unlock(&s.mu);

    /* QoS 1 in, so the broker delivers every one, in order; meanwhile the
     * echo client also publishes from this thread (outbox, sender thread). */
    for (int i = 1; i <= ECHO_N; i++) {
        char buf[16];
        int l = snprintf(buf, sizeof(buf), "%d", i);
        assert_int_equal(mqttc_publish(tx, "echo/in", buf, (size_t)l, 1, false), WB_OK);
        if (i % 10 == 0)
            assert_int_equal(mqttc_publish(e.c, "echo/side", buf, (size_t)l, 0, false), WB_OK);
    }
    end = util_mono_ms() + 6 * DEADLINE_MS;
    while (atomic_load(&e.seen) < ECHO_N || sink_last(&s) < ECHO_N) {
        if (util_mono_ms() > end)
            fail_msg("echoed %d of %d, received %d, last %d", atomic_load(&e.seen), ECHO_N,
                     sink_n(&s), sink_last(&s));
        sleep_ms(10);
    }
    pthread_mutex_lock(&s.mu);
    assert_int_equal(atomic_load(&e.seen), ECHO_N); /* every one echoed once */
    assert_int_equal(s.last, ECHO_N);               /* the latest value arrived */
    assert_true(s.n > 0 && s.n <= ECHO_N);          /* coalesced, never duplicated */
    assert_int_equal(s.out_of_order, 0);
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(e.last_err, WB_OK);
    struct mqttc_stats st;
    mqttc_get_stats(e.c, &st);
    assert_int_equal(st.publish_failures, 0);
    assert_true(st.published >= ECHO_N + ECHO_N / 10);
    assert_true(st.received >= (uint64_t)ECHO_N);
    mqttc_stop(e.c, 5000);
    mqttc_destroy(e.c);
    mqttc_destroy(rx);
    mqttc_destroy(tx);
    pthread_mutex_destroy(&s.mu);
}

/* The lock budget: inside the message callback, with the outbox idle (this
 * client publishes only from there), mqttc_backlog() and mqttc_publish()
 * (the direct path) take no lock of ours; from another thread a publication
 * goes to the outbox and takes its lock only (the up-check takes none). */
struct budget {
    struct mqttc *c;
    atomic_int seen, failed;
    atomic_uint_fast64_t backlog_locks, publish_locks; /* summed over messages */
};

static void on_budget(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    (void)retained;
    struct budget *b = ud;
    if (strcmp(topic, "lock/in") != 0)
        return;
    uint64_t n = lockstat_thread();
    (void)mqttc_backlog(b->c);
    atomic_fetch_add(&b->backlog_locks, lockstat_thread() - n);
    n = lockstat_thread();
    wb_status st = mqttc_publish(b->c, "lock/out", payload, len, 0, true);
    atomic_fetch_add(&b->publish_locks, lockstat_thread() - n);
    if (st != WB_OK)
        atomic_fetch_add(&b->failed, 1);
    atomic_fetch_add(&b->seen, 1);
}

static atomic_int budget_acks;
static void on_budget_ack(void *ud, uint64_t token, int rc, const char *why)
{
    (void)ud;
    (void)token;
    (void)why;
    if (rc == 0)
        atomic_fetch_add(&budget_acks, 1);
}

static void test_lock_budget(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip(); /* lockstat counts in debug builds only */
#endif
    struct budget b;
    memset(&b, 0, sizeof(b));
    b.c = client("t-budget", on_budget, &b);
    struct mqttc *tx = client("t-budget-tx", NULL, NULL);
    const char *fin[] = {"lock/in"};
    assert_int_equal(mqttc_set_subscriptions(b.c, fin, 1, 0), WB_OK);

    /* Refused while not connected: the up-check takes no lock either. */
    uint64_t n = lockstat_thread();
    assert_int_equal(mqttc_publish(b.c, "lock/x", "1", 1, 0, false), WB_ERR_MQTT);
    assert_int_equal(mqttc_publish_acked(b.c, "lock/x", "1", 1, 1, on_budget_ack, NULL, 1),
                     WB_ERR_MQTT);
    assert_int_equal(lockstat_thread() - n, 0);

    assert_int_equal(mqttc_start(b.c), WB_OK);
    assert_int_equal(mqttc_start(tx), WB_OK);
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (!(mqttc_is_connected(b.c) && mqttc_is_connected(tx))) {
        assert_true(util_mono_ms() < end);
        sleep_ms(10);
    }
    /* Probe until the subscription is active. */
    end = util_mono_ms() + DEADLINE_MS;
    while (atomic_load(&b.seen) == 0) {
        assert_true(util_mono_ms() < end);
        assert_int_equal(mqttc_publish(tx, "lock/in", "0", 1, 1, false), WB_OK);
        sleep_ms(50);
    }
    int probes = atomic_load(&b.seen);
    for (int i = 1; i <= 50; i++) {
        char buf[16];
        int l = snprintf(buf, sizeof(buf), "%d", i);
        assert_int_equal(mqttc_publish(tx, "lock/in", buf, (size_t)l, 1, false), WB_OK);
    }
    end = util_mono_ms() + DEADLINE_MS;
    while (atomic_load(&b.seen) < probes + 50) {
        assert_true(util_mono_ms() < end);
        sleep_ms(10);
    }
    assert_int_equal(atomic_load(&b.failed), 0);
    assert_int_equal(atomic_load(&b.backlog_locks), 0);
    assert_int_equal(atomic_load(&b.publish_locks), 0); /* direct path: none */

    /* This thread, the outbox idle: the reads take no lock. */
    end = util_mono_ms() + DEADLINE_MS;
    while (mqttc_backlog(b.c) != 0) {
        assert_true(util_mono_ms() < end);
        sleep_ms(10);
    }
    struct queue *q = queue_create(4);
    assert_non_null(q);
    n = lockstat_thread();
    assert_int_equal(mqttc_backlog(b.c), 0);
    assert_int_equal(lockstat_thread() - n, 0);
    n = lockstat_thread();
    assert_true(queue_empty(q));
    assert_int_equal(lockstat_thread() - n, 0);
    n = lockstat_thread();
    assert_int_equal(http_sse_clients(NULL), 0);
    assert_int_equal(lockstat_thread() - n, 0);
    queue_destroy(q);

    /* Not in the callback: the outbox path, whose put of a non-retained
     * publication takes one lock (the outbox's) and the up-check none. */
    n = lockstat_thread();
    assert_int_equal(mqttc_publish(b.c, "lock/cmd", "1", 1, 0, false), WB_OK);
    assert_int_equal(lockstat_thread() - n, 1);
    atomic_store(&budget_acks, 0);
    n = lockstat_thread();
    assert_int_equal(mqttc_publish_acked(b.c, "lock/cmd", "2", 1, 1, on_budget_ack, NULL, 2),
                     WB_OK);
    assert_int_equal(lockstat_thread() - n, 1);
    end = util_mono_ms() + DEADLINE_MS;
    while (atomic_load(&budget_acks) == 0) {
        assert_true(util_mono_ms() < end);
        sleep_ms(10);
    }
    mqttc_stop(b.c, 5000);
    /* Refused once stopping: still without a lock. */
    n = lockstat_thread();
    assert_int_equal(mqttc_publish(b.c, "lock/x", "1", 1, 0, false), WB_ERR_MQTT);
    assert_int_equal(lockstat_thread() - n, 0);
    mqttc_destroy(b.c);
    mqttc_destroy(tx);
}

static int group_setup(void **state)
{
    (void)state;
    broker_prepare(&g_broker, free_port(), NULL);
    broker_run(&g_broker);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    broker_cleanup(&g_broker);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_inside_callback),
        cmocka_unit_test(test_lock_budget),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

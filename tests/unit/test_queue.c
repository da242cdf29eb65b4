/*
 * test_queue.c - the bounded queue between paho's thread and the core:
 * order, time-outs, blocking when full (never dropping), close, and
 * queue_empty() (lock-free) across push and pop.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbmb/lockstat.h"
#include "wbmb/queue.h"

static void test_order_and_content(void **state)
{
    (void)state;
    struct queue *q = queue_create(8);
    assert_non_null(q);
    assert_int_equal(queue_push(q, QUEUE_MSG, "a/b", "hello", 5, false), WB_OK);
    assert_int_equal(queue_push(q, QUEUE_MSG, "c", "", 0, true), WB_OK);
    assert_int_equal(queue_push(q, QUEUE_CONN_UP, "", "", 0, false), WB_OK);
    struct queue_item it;
    assert_true(queue_pop(q, &it, 0));
    assert_int_equal(it.kind, QUEUE_MSG);
    assert_string_equal(it.topic, "a/b");
    assert_int_equal(it.payload_len, 5);
    assert_memory_equal(it.payload, "hello", 5);
    assert_int_equal(it.payload[5], '\0');
    assert_false(it.retained);
    assert_true(queue_pop(q, &it, 0));
    assert_string_equal(it.topic, "c");
    assert_int_equal(it.payload_len, 0);
    assert_true(it.retained);
    assert_true(queue_pop(q, &it, 0));
    assert_int_equal(it.kind, QUEUE_CONN_UP);
    assert_false(queue_pop(q, &it, 0));
    assert_false(queue_pop(q, &it, 20)); /* times out */
    struct queue_stats st;
    queue_get_stats(q, &st);
    assert_int_equal(st.pushed, 3);
    assert_int_equal(st.popped, 3);
    assert_int_equal(st.depth, 0);
    queue_destroy(q);
    queue_destroy(NULL);
}

/* A consumer that keeps up: however many messages pass, the ring only
 * ever keeps buffers in as many slots as were queued at once (plus the one
 * the consumer holds), and order and content survive the restarts at 0. */
static void test_keeps_few_buffers(void **state)
{
    (void)state;
    struct queue *q = queue_create(8192);
    assert_non_null(q);
    struct queue_item it;
    char topic[32];
    for (int round = 0; round < 5000; round++) {
        int k = 1 + round % 3;
        for (int i = 0; i < k; i++) {
            snprintf(topic, sizeof(topic), "t/%d/%d", round, i);
            assert_int_equal(queue_push(q, QUEUE_MSG, topic, "x", 1, false), WB_OK);
        }
        for (int i = 0; i < k; i++) {
            assert_true(queue_pop(q, &it, 0));
            snprintf(topic, sizeof(topic), "t/%d/%d", round, i);
            assert_string_equal(it.topic, topic);
        }
        assert_false(queue_pop(q, &it, 0));
    }
    struct queue_stats st;
    queue_get_stats(q, &st);
    assert_int_equal(st.pushed, st.popped);
    assert_true(st.buffers <= 4);
    queue_destroy(q);
}

static void test_big_message(void **state)
{
    (void)state;
    struct queue *q = queue_create(4);
    size_t n = QUEUE_SLOT_KEEP * 3;
    char *big = malloc(n);
    memset(big, 'x', n);
    struct queue_item it;
    for (int round = 0; round < 4; round++) {
        assert_int_equal(queue_push(q, QUEUE_MSG, "big", big, n, false), WB_OK);
        assert_int_equal(queue_push(q, QUEUE_MSG, "small", "s", 1, false), WB_OK);
        assert_true(queue_pop(q, &it, 0));
        assert_int_equal(it.payload_len, n);
        assert_memory_equal(it.payload, big, n);
        assert_true(queue_pop(q, &it, 0));
        assert_string_equal(it.payload, "s");
    }
    free(big);
    queue_destroy(q);
}

#define N_MSGS 20000

struct producer {
    struct queue *q;
    int id;
    int sent;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    char buf[32];
    for (int i = 0; i < N_MSGS; i++) {
        int len = snprintf(buf, sizeof(buf), "%d", i);
        if (queue_push(p->q, QUEUE_MSG, p->id ? "p1" : "p0", buf, (size_t)len, false) != WB_OK)
            break;
        p->sent++;
    }
    return NULL;
}

/* Two producers and a queue of 16 slots: every message arrives, in order per
 * producer, and the producers had to wait (back-pressure, not drops). */
static void test_full_blocks_never_drops(void **state)
{
    (void)state;
    struct queue *q = queue_create(16);
    struct producer p[2] = {{q, 0, 0}, {q, 1, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, produce, &p[i]);
    int next[2] = {0, 0};
    struct queue_item it;
    while (next[0] < N_MSGS || next[1] < N_MSGS) {
        if (!queue_pop(q, &it, 5000))
            fail_msg("queue stalled at %d/%d", next[0], next[1]);
        int who = it.topic[1] - '0';
        assert_int_equal(atoi(it.payload), next[who]);
        next[who]++;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    struct queue_stats st;
    queue_get_stats(q, &st);
    assert_int_equal(st.pushed, 2 * N_MSGS);
    assert_int_equal(st.rejected, 0);
    assert_true(st.full_waits > 0);
    queue_destroy(q);
}

static void *push_one(void *arg)
{
    struct queue *q = arg;
    return (void *)(intptr_t)queue_push(q, QUEUE_MSG, "t", "x", 1, false);
}

static void test_close_wakes_blocked_producer(void **state)
{
    (void)state;
    struct queue *q = queue_create(1);
    assert_int_equal(queue_push(q, QUEUE_MSG, "t", "1", 1, false), WB_OK);
    pthread_t t;
    pthread_create(&t, NULL, push_one, q); /* blocks: the queue is full */
    queue_close(q);
    void *rv;
    pthread_join(t, &rv);
    assert_int_equal((int)(intptr_t)rv, WB_ERR_BUSY);
    struct queue_item it;
    assert_true(queue_pop(q, &it, 0)); /* queued items survive close */
    assert_string_equal(it.payload, "1");
    assert_false(queue_pop(q, &it, 0));
    assert_int_equal(queue_push(q, QUEUE_MSG, "t", "2", 1, false), WB_ERR_BUSY);
    queue_destroy(q);
}

/* queue_empty() follows every push and pop (the slot the consumer still
 * holds is not "queued"), and takes no lock. */
static void test_empty(void **state)
{
    (void)state;
    struct queue *q = queue_create(4);
    struct queue_item it;
    assert_true(queue_empty(q));
    assert_int_equal(queue_push(q, QUEUE_MSG, "a", "1", 1, false), WB_OK);
    assert_false(queue_empty(q));
    assert_int_equal(queue_push(q, QUEUE_CALL, "", "2", 1, false), WB_OK);
    assert_false(queue_empty(q));
    assert_true(queue_pop(q, &it, 0));
    assert_false(queue_empty(q));
    assert_true(queue_pop(q, &it, 0));
    assert_true(queue_empty(q)); /* the held slot does not count */
    assert_false(queue_pop(q, &it, 0));
    assert_true(queue_empty(q));
    /* round the ring a few times */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(queue_push(q, QUEUE_MSG, "a", "1", 1, false), WB_OK);
        assert_int_equal(queue_push(q, QUEUE_MSG, "b", "2", 1, false), WB_OK);
        assert_int_equal(queue_push(q, QUEUE_MSG, "c", "3", 1, false), WB_OK);
        assert_true(queue_pop(q, &it, 0));
        assert_false(queue_empty(q));
        assert_true(queue_pop(q, &it, 0));
        assert_true(queue_pop(q, &it, 0));
        assert_true(queue_empty(q));
    }
    assert_int_equal(queue_push(q, QUEUE_MSG, "a", "1", 1, false), WB_OK);
    queue_close(q);
    assert_false(queue_empty(q)); /* queued items survive close */
    assert_int_equal(queue_push(q, QUEUE_MSG, "a", "1", 1, false), WB_ERR_BUSY);
    assert_true(queue_pop(q, &it, 0));
    assert_false(queue_pop(q, &it, 0));
    assert_true(queue_empty(q));
#ifndef NDEBUG
    uint64_t n = lockstat_thread();
    assert_true(queue_empty(q));
    assert_int_equal(lockstat_thread() - n, 0);
    n = lockstat_thread();
    assert_false(queue_pop(q, &it, 0));
    assert_int_equal(lockstat_thread() - n, 1); /* counted: pop takes the lock */
#endif
    queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_content),
        cmocka_unit_test(test_keeps_few_buffers),
        cmocka_unit_test(test_big_message),
        cmocka_unit_test(test_full_blocks_never_drops),
        cmocka_unit_test(test_close_wakes_blocked_producer),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

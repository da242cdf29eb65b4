/*
 * mqtt_sink.c - the bare subscriber of the end-to-end benchmark: the ceiling.
 *
 * Usage: mqtt_sink [-h HOST] [-p PORT] [-t FILTER] [-n MSGS] [-q QOS] [-W IDLE_S]
 *
 * Subscribes to FILTER (default bench/#), prints "ready" once the broker
 * acknowledged the subscription, then only counts messages (the cheapest
 * possible consumer). It stops when MSGS arrived or nothing arrived for
 * IDLE_S seconds (default 10) and prints key=value lines:
 * count, first_us, last_us (CLOCK_REALTIME us), rate (count over
 * first..last) and cpu_us (its own user+system CPU since "ready", from
 * getrusage: what a bare paho subscriber costs). Exits 0 when all MSGS
 * arrived.
 */
#include <MQTTAsync.h>
#include <stdatomic.h>
#include "wbmb/util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static atomic_int state; /* 0 pending, 1 connected, 2 subscribed, -1 failed */
static atomic_long count;
static atomic_llong first_us, last_us;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int on_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    (void)ctx;
    (void)tlen;
    int64_t t = now_us();
    if (atomic_fetch_add(&count, 1) == 0)
        atomic_store(&first_us, t);
    atomic_store(&last_us, t);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    atomic_store(&state, (int)(intptr_t)ctx);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    fprintf(stderr, "mqtt_sink: failed: %d\n", r ? r->code : -1);
    atomic_store(&state, -1);
}

static int wait_state(int want)
{
    for (int i = 0; i < 10000 && atomic_load(&state) != want && atomic_load(&state) >= 0; i++)
        usleep(1000);
    return atomic_load(&state) == want;
}

/* This process's user + system CPU time in microseconds. */
static int64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *filter = "bench/#";
    int port = 1883, qos = 0, idle_s = 10, ch;
    long n = 200000;
    while ((ch = getopt(argc, argv, "h:p:t:n:q:W:")) != -1) {
        switch (ch) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 't':
            filter = optarg;
            break;
        case 'n':
            n = atol(optarg);
            break;
        case 'q':
            qos = atoi(optarg);
            break;
        case 'W':
            idle_s = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: mqtt_sink [-h HOST] [-p PORT] [-t FILTER] [-n MSGS] "
                            "[-q QOS] [-W IDLE_S]\n");
            return 2;
        }
    }
    char uri[256], id[64];
    snprintf(uri, sizeof(uri), "tcp://%s:%d", host, port);
    snprintf(id, sizeof(id), "wbmb-sink-%d", (int)getpid());
    MQTTAsync c;
    /* As the bridge does (src/mqtt/paho_api.c): Debian's paho formats a
     * trace of every protocol event unless told errors only. */
    if (!getenv("MQTT_C_CLIENT_TRACE") && !getenv("MQTT_C_CLIENT_TRACE_LEVEL"))
        MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
    if (MQTTAsync_create(&c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS)
        return 1;
    MQTTAsync_setCallbacks(c, NULL, NULL, on_msg, NULL);
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.onSuccess = on_ok;
    co.onFailure = on_fail;
    co.context = (void *)(intptr_t)1;
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS || !wait_state(1)) {
        fprintf(stderr, "mqtt_sink: cannot connect to %s\n", uri);
        return 1;
    }
    util_tcp_nodelay_to_port(port); /* like the bridge: no Nagle stalls */
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_ok;
    ro.onFailure = on_fail;
    ro.context = (void *)(intptr_t)2;
    if (MQTTAsync_subscribe(c, filter, qos, &ro) != MQTTASYNC_SUCCESS || !wait_state(2)) {
        fprintf(stderr, "mqtt_sink: cannot subscribe to %s\n", filter);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    int64_t cpu0 = cpu_us();
    long prev = -1;
    int64_t idle_since = now_us();
    while (atomic_load(&count) < n) {
        usleep(10000); /* 100 wake-ups a second: little beside the counting */
        long cur = atomic_load(&count);
        if (cur != prev) {
            prev = cur;
            idle_since = now_us();
        } else if (now_us() - idle_since > (int64_t)idle_s * 1000000) {
            break;
        }
    }
    long got = atomic_load(&count);
    int64_t f = atomic_load(&first_us), l = atomic_load(&last_us);
    printf("count=%ld\nfirst_us=%lld\nlast_us=%lld\nrate=%.0f\ncpu_us=%lld\n", got, (long long)f,
           (long long)l, (double)got * 1e6 / (double)(l > f ? l - f : 1),
           (long long)(cpu_us() - cpu0));
    MQTTAsync_disconnectOptions dopt = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_disconnect(c, &dopt);
    usleep(50000);
    MQTTAsync_destroy(&c);
    return got >= n ? 0 : 1;
}

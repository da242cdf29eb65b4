/*
 * mqtt_load.c - the load generator of the end-to-end benchmark.
 *
 * Usage: mqtt_load [-h HOST] [-p PORT] [-n MSGS] [-k DEVICES] [-q QOS]
 *                  [-r RATE] [-P PREFIX] [-L] [-W WAIT_S] [-w WARM]
 *
 * Publishes MSGS messages round-robin over DEVICES devices: message m goes to
 * device i = m % DEVICES with the sequence number seq = m / DEVICES + 1, so
 * every message changes its device's state (one transition each) and the last
 * seq of device i is the number of messages it got. Even devices get a plain
 * integer on PREFIX/dev<i>/value, odd ones a JSON object on PREFIX/dev<i>/json:
 * {"seq":N,"t":<send time, CLOCK_REALTIME us>}. RATE 0 (default) publishes at
 * full speed, otherwise at RATE msg/s (paced against the start time, so a
 * late message does not slow the following ones).
 *
 * -L measures publish -> applied latency: a second client subscribes to the
 * bridge's mirror topics /devices/+/controls/+ before the first publish; a
 * live (not retained) publication of control "value" or "seq" of device
 * <PREFIX>_dev<i> carries the seq, which gives back the message index and so
 * its send time. After the last publish it waits up to WAIT_S seconds (10)
 * for every device's last message to be seen. Not every message has a
 * mirror of its own: the bridge coalesces a retained topic's value with a
 * newer one still waiting to be sent (src/mqtt/outbox.h), so a device's
 * older seq can go out only as its newer one. lat_superseded counts the
 * messages not seen whose device's later seq was seen (the broker holds the
 * newer state), lat_lost those with none seen after them (the device's final
 * state never arrived: a real loss). With -w WARM the first WARM messages are a
 * warm-up: seen like the others but left out of p50/p99/max and reported on
 * their own (lat_warm_*). A bridge (and paho's threads in both processes)
 * just started shows one-off stalls of up to ~100 ms in its first second;
 * the warm-up keeps them out of the steady-state figures and in view.
 *
 * Prints key=value lines on stdout (times in CLOCK_REALTIME us) for
 * scripts/bench.sh; exits 0 when everything was sent (and, with -L, nothing
 * lost).
 */
#include <MQTTAsync.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wbmb/util.h"

struct opts {
    const char *host, *prefix;
    int port, qos;
    long n, k;
    double rate;
    int latency;
    int wait_s;
    long warm;
};

static int64_t now_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- connecting --------------------------------------------------------- */

static atomic_int connect_state; /* 0 pending, 1 ok, -1 failed */
static atomic_int subscribe_state;

static void on_conn_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&connect_state, 1);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    fprintf(stderr, "mqtt_load: connect failed: %d\n", r ? r->code : -1);
    atomic_store(&connect_state, -1);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&subscribe_state, 1);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&subscribe_state, -1);
}

static int wait_flag(atomic_int *flag, int timeout_ms)
{
    for (int i = 0; i < timeout_ms && atomic_load(flag) == 0; i++)
        usleep(1000);
    return atomic_load(flag);
}

static MQTTAsync connect_client(const struct opts *o, const char *id, MQTTAsync_messageArrived *ma,
                                void *ctx)
{
    char uri[256];
    snprintf(uri, sizeof(uri), "tcp://%s:%d", o->host, o->port);
    MQTTAsync c;
    /* As the bridge does (src/mqtt/paho_api.c): Debian's paho formats a
     * trace of every protocol event unless told errors only. */
    if (!getenv("MQTT_C_CLIENT_TRACE") && !getenv("MQTT_C_CLIENT_TRACE_LEVEL"))
        MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
    MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
    cro.sendWhileDisconnected = 0;
    if (MQTTAsync_createWithOptions(&c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro) !=
        MQTTASYNC_SUCCESS)
        return NULL;
    MQTTAsync_setCallbacks(c, ctx, NULL, ma, NULL);
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.maxInflight = 65535;
    co.onSuccess = on_conn_ok;
    co.onFailure = on_conn_fail;
    atomic_store(&connect_state, 0);
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS || wait_flag(&connect_state, 10000) != 1) {
        MQTTAsync_destroy(&c);
        return NULL;
    }
    util_tcp_nodelay_to_port(o->port); /* like the bridge: no Nagle stalls */
    return c;
}

/* ---- latency ------------------------------------------------------------ */

struct lat {
    const struct opts *o;
    int64_t *sent_us; /* per message index, 0 = not sent yet */
    int64_t *lat_us;  /* per message index, -1 = not seen */
    atomic_long seen;
    atomic_long finals; /* devices whose last message was seen */
    atomic_long strays; /* live publications we could not match */
    size_t plen;
};

static long parse_long(const char *p, size_t len, int *ok)
{
    long v = 0;
    *ok = len > 0 && len < 19;
    for (size_t i = 0; *ok && i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            *ok = 0;
        else
            v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* /devices/<prefix>_dev<i>/controls/<value|seq> with payload <seq>. */
static int on_mirror(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    struct lat *l = ctx;
    int64_t now = now_us(CLOCK_REALTIME);
    (void)tlen;
    const char *p = topic + 9; /* "/devices/" */
    int ok = !m->retained && strncmp(topic, "/devices/", 9) == 0 &&
             strncmp(p, l->o->prefix, l->plen) == 0 && strncmp(p + l->plen, "_dev", 4) == 0;
    if (ok) {
        p += l->plen + 4;
        const char *slash = strchr(p, '/');
        ok =
            slash && (strcmp(slash, "/controls/value") == 0 || strcmp(slash, "/controls/seq") == 0);
        if (ok) {
            long dev = parse_long(p, (size_t)(slash - p), &ok);
            long seq = ok ? parse_long(m->payload, (size_t)m->payloadlen, &ok) : 0;
            long idx = (seq - 1) * l->o->k + dev;
            if (ok && dev < l->o->k && seq >= 1 && idx < l->o->n && l->sent_us[idx] &&
                l->lat_us[idx] < 0) {
                l->lat_us[idx] = now - l->sent_us[idx];
                atomic_fetch_add(&l->seen, 1);
                if (idx >= l->o->n - l->o->k)
                    atomic_fetch_add(&l->finals, 1);
            } else {
                atomic_fetch_add(&l->strays, 1);
            }
        }
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the seen latencies of messages [from, to) into the front of buf;
 * returns how many. */
static long collect(const struct lat *l, long from, long to, int64_t *buf)
{
    long n = 0;
    for (long i = from; i < to; i++)
        if (l->lat_us[i] >= 0)
            buf[n++] = l->lat_us[i];
    qsort(buf, (size_t)n, sizeof(int64_t), cmp_i64);
    return n;
}

static void report_latency(struct lat *l)
{
    long total = l->o->n, warm = l->o->warm < total ? l->o->warm : 0;
    /* WBMB_LAT_DUMP=FILE: one line per message, "index sent_us latency_us"
     * (-1 = not seen), to see when in a run a slow stretch happened. */
    const char *dump = getenv("WBMB_LAT_DUMP");
    FILE *df = dump ? fopen(dump, "w") : NULL;
    for (long i = 0; df && i < total; i++)
        fprintf(df, "%ld %lld %lld\n", i, (long long)l->sent_us[i], (long long)l->lat_us[i]);
    if (df)
        fclose(df);
    int64_t *buf = malloc((size_t)total * sizeof(*buf));
    if (!buf)
        return;
    long seen_all = collect(l, 0, total, buf);
    printf("lat_seen=%ld\nlat_missing=%ld\nlat_strays=%ld\n", seen_all, total - seen_all,
           atomic_load(&l->strays));
    /* Newest first, per device: was a later message of it seen? */
    long k = l->o->k, superseded = 0, lost = 0;
    char *later = calloc((size_t)k, 1);
    for (long i = total - 1; later && i >= 0; i--) {
        if (l->lat_us[i] >= 0)
            later[i % k] = 1;
        else if (later[i % k])
            superseded++;
        else
            lost++;
    }
    if (later)
        printf("lat_superseded=%ld\nlat_lost=%ld\n", superseded, lost);
    free(later);
    long n = collect(l, warm, total, buf);
    if (n)
        printf("lat_p50_us=%lld\nlat_p99_us=%lld\nlat_max_us=%lld\n", (long long)buf[(n - 1) / 2],
               (long long)buf[(n * 99 - 1) / 100], (long long)buf[n - 1]);
    if (warm && (n = collect(l, 0, warm, buf)) > 0)
        printf("lat_warm_n=%ld\nlat_warm_p99_us=%lld\nlat_warm_max_us=%lld\n", warm,
               (long long)buf[(n * 99 - 1) / 100], (long long)buf[n - 1]);
    free(buf);
}

/* ---- publishing --------------------------------------------------------- */

static int publish_all(MQTTAsync c, const struct opts *o, struct lat *l)
{
    char topic[128], payload[96];
    int64_t t0 = now_us(CLOCK_MONOTONIC);
    int64_t start = now_us(CLOCK_REALTIME);
    long retries = 0;
    for (long m = 0; m < o->n; m++) {
        if (o->rate > 0) {
            int64_t due = t0 + (int64_t)((double)m * 1e6 / o->rate);
            int64_t wait = due - now_us(CLOCK_MONOTONIC);
            if (wait > 0)
                usleep((useconds_t)wait);
        }
        long dev = m % o->k, seq = m / o->k + 1;
        int64_t sent = now_us(CLOCK_REALTIME);
        int plen;
        if (dev % 2 == 0) {
            snprintf(topic, sizeof(topic), "%s/dev%ld/value", o->prefix, dev);
            plen = snprintf(payload, sizeof(payload), "%ld", seq);
        } else {
            snprintf(topic, sizeof(topic), "%s/dev%ld/json", o->prefix, dev);
            plen = snprintf(payload, sizeof(payload), "{\"seq\":%ld,\"t\":%lld}", seq,
                            (long long)sent);
        }
        if (l)
            l->sent_us[m] = sent;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int rc;
        while ((rc = MQTTAsync_send(c, topic, plen, payload, o->qos, 0, &ro)) !=
               MQTTASYNC_SUCCESS) {
            /* paho's command queue is full: let its thread drain it. */
            if (++retries > 1000000) {
                fprintf(stderr, "mqtt_load: publish refused: %d\n", rc);
                return -1;
            }
            usleep(100);
        }
    }
    /* Everything handed to paho; wait until its queue is on the wire (QoS 0)
     * or acknowledged (QoS 1). */
    for (int i = 0; i < 60000; i++) {
        MQTTAsync_token *toks = NULL;
        int busy =
            MQTTAsync_getPendingTokens(c, &toks) == MQTTASYNC_SUCCESS && toks && toks[0] != -1;
        MQTTAsync_free(toks);
        if (!busy && !MQTTAsync_isConnected(c))
            break;
        if (!busy)
            break;
        usleep(1000);
    }
    int64_t end = now_us(CLOCK_REALTIME);
    printf("start_us=%lld\nend_us=%lld\nsent=%ld\nsend_retries=%ld\npub_rate=%.0f\n",
           (long long)start, (long long)end, o->n, retries,
           (double)o->n * 1e6 / (double)(end - start > 0 ? end - start : 1));
    fflush(stdout);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: mqtt_load [-h HOST] [-p PORT] [-n MSGS] [-k DEVICES] [-q 0|1] "
                    "[-r RATE] [-P PREFIX] [-L] [-W WAIT_S] [-w WARM]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {
        .host = "127.0.0.1", .prefix = "bench", .port = 1883, .n = 200000, .k = 1000, .wait_s = 10};
    int ch;
    while ((ch = getopt(argc, argv, "h:p:n:k:q:r:P:LW:w:")) != -1) {
        switch (ch) {
        case 'h':
            o.host = optarg;
            break;
        case 'p':
            o.port = atoi(optarg);
            break;
        case 'n':
            o.n = atol(optarg);
            break;
        case 'k':
            o.k = atol(optarg);
            break;
        case 'q':
            o.qos = atoi(optarg);
            break;
        case 'r':
            o.rate = atof(optarg);
            break;
        case 'P':
            o.prefix = optarg;
            break;
        case 'L':
            o.latency = 1;
            break;
        case 'W':
            o.wait_s = atoi(optarg);
            break;
        case 'w':
            o.warm = atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (o.n <= 0 || o.k <= 0 || (o.qos != 0 && o.qos != 1))
        usage();

    struct lat l = {.o = &o, .plen = strlen(o.prefix)};
    MQTTAsync sub = NULL;
    char id[64];
    if (o.latency) {
        l.sent_us = calloc((size_t)o.n, sizeof(int64_t));
        l.lat_us = malloc((size_t)o.n * sizeof(int64_t));
        if (!l.sent_us || !l.lat_us)
            return 1;
        memset(l.lat_us, 0xff, (size_t)o.n * sizeof(int64_t)); /* -1 */
        snprintf(id, sizeof(id), "wbmb-lat-%d", (int)getpid());
        if (!(sub = connect_client(&o, id, on_mirror, &l))) {
            fprintf(stderr, "mqtt_load: cannot connect the latency subscriber\n");
            return 1;
        }
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = on_sub_ok;
        ro.onFailure = on_sub_fail;
        if (MQTTAsync_subscribe(sub, "/devices/+/controls/+", 0, &ro) != MQTTASYNC_SUCCESS ||
            wait_flag(&subscribe_state, 10000) != 1) {
            fprintf(stderr, "mqtt_load: subscribe failed\n");
            return 1;
        }
    }
    snprintf(id, sizeof(id), "wbmb-load-%d", (int)getpid());
    MQTTAsync pub = connect_client(&o, id, NULL, NULL);
    if (!pub) {
        fprintf(stderr, "mqtt_load: cannot connect to %s:%d\n", o.host, o.port);
        return 1;
    }
    int rc = publish_all(pub, &o, o.latency ? &l : NULL) == 0 ? 0 : 1;
    if (o.latency) {
        long devs = o.n < o.k ? o.n : o.k;
        for (int i = 0; i < o.wait_s * 1000 && atomic_load(&l.finals) < devs; i++)
            usleep(1000);
        report_latency(&l);
        if (atomic_load(&l.finals) < devs)
            rc = 1;
    }
    MQTTAsync_disconnectOptions dopt = MQTTAsync_disconnectOptions_initializer;
    dopt.timeout = 2000;
    MQTTAsync_disconnect(pub, &dopt);
    if (sub)
        MQTTAsync_disconnect(sub, &dopt);
    usleep(100000);
    MQTTAsync_destroy(&pub);
    if (sub)
        MQTTAsync_destroy(&sub);
    free(l.sent_us);
    free(l.lat_us);
    return rc;
}

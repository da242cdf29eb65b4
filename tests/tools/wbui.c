/*
 * wbui.c - a test client that reads and operates Wiren Board devices the
 * way the web UI (wb-mqtt-homeui) does, following the MQTT conventions v1.4.
 *
 * Usage:
 *   wbui [-h HOST] -p PORT [-t S] [--quiet-ms MS] MODE ARGS...
 *   wbui -p PORT dump  [--device D]...        model as JSON on stdout
 *   wbui -p PORT check [--device D]...        PROBLEM lines; exit 1 when any
 *   wbui -p PORT press DEVICE CONTROL [VALUE] publish what the UI would to /on
 *   wbui -p PORT wait DEVICE CONTROL VALUE    until the value equals VALUE
 *   wbui -p PORT wait DEVICE CONTROL --error X | --gone
 * Exit codes: 0 done, 1 the check found problems / press refused / wait
 * timed out, 2 usage error or no broker.
 *
 * dump prints {"devices": {D: {"meta", ["meta_invalid"], "error",
 * "legacy": {"name"}, "controls": {C: {"value", "meta", ["meta_invalid"],
 * "error", "legacy": {"type", "readonly", ...}, "type", "readonly",
 * "shown"}}}}, "stats": {"messages", "ignored", "dropped"}}; absent topics
 * are null, values are the raw payload strings.
 *
 * Besides /on in press, the only thing wbui publishes is one non-retained
 * marker to its own topic wbui/sync/<client id> (see on_subscribed()).
 *
 * The MQTT thread (paho's callbacks) only applies messages to the model
 * under the lock and signals the condition; the main thread waits on it:
 *
 *   connecting --on_connect--> subscribing --on_subscribed--> collecting
 *   collecting --marker back, then quiet period (quiet())--> settled
 *   settled or -t deadline --> done (dump, check)
 *   collecting --condition holds--> done (wait, press: then publish, PUBACK)
 *   any --on_connect_failure / deadline before SUBACK--> failed (exit 2)
 */
#include <MQTTAsync.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "wbui_check.h"
#include "wbui_model.h"

#define MAX_DEVICE_ARGS 64

enum link { L_CONNECTING, L_SUBSCRIBED, L_FAILED };

struct wbui {
    MQTTAsync client;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct wbui_model *model;
    enum link link;
    int64_t subscribed_ms, last_msg_ms;
    char sync_topic[96];
    bool synced;   /* our marker came back: the retained burst is complete */
    int published; /* 0 pending, 1 acknowledged, -1 failed */
};

struct args {
    const char *host;
    int port;
    double timeout_s;
    int quiet_ms;
    const char *mode;
    const char *pos[3];
    int npos;
    const char *devs[MAX_DEVICE_ARGS];
    size_t ndevs;
    const char *error;
    bool gone;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die_usage(const char *why) __attribute__((noreturn));
static void die_usage(const char *why)
{
    if (why)
        fprintf(stderr, "wbui: %s\n", why);
    fputs("usage: wbui [-h HOST] -p PORT [-t SECONDS] [--quiet-ms MS] MODE ...\n"
          "  dump  [--device D]...              print the device model as JSON\n"
          "  check [--device D]...              validate; PROBLEM lines, exit 1 when any\n"
          "  press DEVICE CONTROL [VALUE]       operate a control like the UI\n"
          "  wait  DEVICE CONTROL VALUE         wait until the control's value is VALUE\n"
          "  wait  DEVICE CONTROL --error X     wait until its meta/error is X ('' = none)\n"
          "  wait  DEVICE CONTROL --gone        wait until its value and meta are deleted\n",
          stderr);
    exit(2);
}

/* ---- MQTT callbacks (paho's thread) -------------------------------------- */

static int on_message(void *ctx, char *topic, int tlen, MQTTAsync_message *msg)
{
    struct wbui *u = ctx;
    size_t tl = tlen > 0 ? (size_t)tlen : strlen(topic);
    pthread_mutex_lock(&u->lock);
    if (tl == strlen(u->sync_topic) && memcmp(topic, u->sync_topic, tl) == 0)
        u->synced = true;
    else
        wbui_model_apply(u->model, topic, tl, msg->payload,
                         msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
    u->last_msg_ms = now_ms();
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static void set_link(struct wbui *u, enum link l)
{
    pthread_mutex_lock(&u->lock);
    u->link = l;
    if (l == L_SUBSCRIBED)
        u->subscribed_ms = u->last_msg_ms = now_ms();
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

static void on_lost(void *ctx, char *cause)
{
    struct wbui *u = ctx;
    fprintf(stderr, "wbui: connection lost%s%s\n", cause ? ": " : "", cause ? cause : "");
    set_link(u, L_FAILED);
}

/* The broker queued every retained message of /devices/# for us when it
 * handled the SUBSCRIBE; a message we publish afterwards to our own topic
 * is queued behind them, so its arrival means the burst is complete (even
 * when this process was too starved to notice a quiet period). */
static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
    struct wbui *u = ctx;
    set_link(u, L_SUBSCRIBED);
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = "sync";
    m.payloadlen = 4;
    m.qos = 1;
    MQTTAsync_sendMessage(u->client, u->sync_topic, &m, NULL);
}

static void on_failure(void *ctx, MQTTAsync_failureData *r)
{
    fprintf(stderr, "wbui: MQTT request failed (%d%s%s)\n", r ? r->code : 0,
            r && r->message ? ": " : "", r && r->message ? r->message : "");
    set_link(ctx, L_FAILED);
}

static void on_connect(void *ctx, MQTTAsync_successData *r)
{
    struct wbui *u = ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_subscribed;
    ro.onFailure = on_failure;
    ro.context = u;
    char *filters[2] = {"/devices/#", u->sync_topic};
    int qos[2] = {1, 1};
    if (MQTTAsync_subscribeMany(u->client, 2, filters, qos, &ro) != MQTTASYNC_SUCCESS)
        set_link(u, L_FAILED);
}

static void on_published(void *ctx, MQTTAsync_successData *r)
{
    struct wbui *u = ctx;
    pthread_mutex_lock(&u->lock);
    u->published = 1;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

static void on_publish_failed(void *ctx, MQTTAsync_failureData *r)
{
    struct wbui *u = ctx;
    pthread_mutex_lock(&u->lock);
    u->published = -1;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

/* ---- waiting (main thread, lock held) ------------------------------------ */

/* Waits on the condition until deadline_ms or at most 50 ms (so quiet
 * periods are noticed without a message). Returns false past the deadline. */
static bool wait_step(struct wbui *u, int64_t deadline_ms)
{
    int64_t now = now_ms();
    if (now >= deadline_ms)
        return false;
    int64_t until = now + 50 < deadline_ms ? now + 50 : deadline_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (until - now) * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&u->cond, &u->lock, &ts);
    return true;
}

/* Settled: the retained burst is complete (or the marker did not come back
 * within SYNC_WAIT_MS, e.g. an ACL refused it) and nothing arrived for the
 * quiet period. */
#define SYNC_WAIT_MS 3000
static bool quiet(const struct wbui *u, int quiet_ms)
{
    int64_t now = now_ms();
    return u->link == L_SUBSCRIBED && (u->synced || now - u->subscribed_ms >= SYNC_WAIT_MS) &&
           now - u->last_msg_ms >= quiet_ms;
}

/* Connects and subscribes; returns 0 with the lock held, or 2 (message
 * printed) when the broker did not answer before the deadline. */
static int start(struct wbui *u, const struct args *a, int64_t deadline_ms)
{
    char uri[300], id[64];
    snprintf(uri, sizeof(uri), "tcp://%s:%d", a->host, a->port);
    snprintf(id, sizeof(id), "wbui-%ld-%lld", (long)getpid(), (long long)now_ms());
    snprintf(u->sync_topic, sizeof(u->sync_topic), "wbui/sync/%s", id);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&u->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&u->lock, NULL);
    if (!(u->model = wbui_model_create())) {
        fputs("wbui: out of memory\n", stderr);
        pthread_mutex_lock(&u->lock);
        return 2;
    }
    if (MQTTAsync_create(&u->client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
            MQTTASYNC_SUCCESS ||
        MQTTAsync_setCallbacks(u->client, u, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "wbui: cannot create an MQTT client for %s\n", uri);
        pthread_mutex_lock(&u->lock);
        return 2;
    }
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 10;
    co.cleansession = 1;
    co.connectTimeout = 5;
    co.onSuccess = on_connect;
    co.onFailure = on_failure;
    co.context = u;
    /* paho's calls are made without our lock: its thread may be waiting
     * for it in a callback. */
    int crc = MQTTAsync_connect(u->client, &co);
    pthread_mutex_lock(&u->lock);
    if (crc != MQTTASYNC_SUCCESS)
        u->link = L_FAILED;
    while (u->link == L_CONNECTING && wait_step(u, deadline_ms))
        ;
    if (u->link != L_SUBSCRIBED) {
        fprintf(stderr, "wbui: no MQTT broker answered at %s\n", uri);
        return 2;
    }
    return 0;
}

/* Collects until nothing arrived for the quiet period or the deadline. */
static void settle(struct wbui *u, int quiet_ms, int64_t deadline_ms)
{
    while (u->link == L_SUBSCRIBED && !quiet(u, quiet_ms) && wait_step(u, deadline_ms))
        ;
}

static void stop(struct wbui *u)
{
    pthread_mutex_unlock(&u->lock);
    if (u->client) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        MQTTAsync_disconnect(u->client, &d);
        /* The disconnect is asynchronous; paho's destroy waits for its
         * thread, and the model is freed after no callback can run. */
        MQTTAsync_destroy(&u->client);
    }
    wbui_model_destroy(u->model);
}

/* ---- modes --------------------------------------------------------------- */

static int mode_dump(struct wbui *u, const struct args *a, int64_t deadline_ms)
{
    settle(u, a->quiet_ms, deadline_ms);
    return wbui_model_dump(u->model, a->devs, a->ndevs, stdout) == 0 ? 0 : 2;
}

static int mode_check(struct wbui *u, const struct args *a, int64_t deadline_ms)
{
    settle(u, a->quiet_ms, deadline_ms);
    int problems = 0;
    if (a->ndevs) {
        for (size_t i = 0; i < a->ndevs; i++) {
            struct wbui_device *d = wbui_model_device(u->model, a->devs[i]);
            if (d) {
                problems += wbui_check_device(d, stdout);
            } else {
                printf("PROBLEM %s: no such device\n", a->devs[i]);
                problems++;
            }
        }
    } else {
        size_t n;
        struct wbui_device **dv = wbui_model_devices(u->model, &n);
        for (size_t i = 0; i < n; i++)
            problems += wbui_check_device(dv[i], stdout);
        free(dv);
    }
    /* A dropped message may have belonged to any device: it fails a check
     * of everything, and is only a warning when the check is restricted. */
    const struct wbui_stats *st = wbui_model_stats(u->model);
    if (st->dropped && !a->ndevs) {
        printf("PROBLEM -: %lu messages dropped (over the tool's caps)\n", st->dropped);
        problems++;
    } else if (st->dropped) {
        fprintf(stderr, "wbui: warning: %lu messages dropped (over the tool's caps)\n",
                st->dropped);
    }
    fflush(stdout);
    return problems ? 1 : 0;
}

/* The UI sends numbers as JavaScript's String(Number(x)) prints them: the
 * shortest digits that read back as the same double, in plain notation
 * for exponents -7..20. */
static void js_number(double v, char *out, size_t n)
{
    if (v == 0) {
        snprintf(out, n, "0");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof(e), "%.*e", p - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e is [-]d[.ddd]e[+-]XX: split it into digits and the decimal point's
     * position pt (the value is 0.DIGITS * 10^pt). */
    bool neg = e[0] == '-';
    char digits[24];
    int k = 0;
    const char *s = e + neg;
    for (; *s && *s != 'e'; s++)
        if (*s != '.' && k < (int)sizeof(digits) - 1)
            digits[k++] = *s;
    digits[k] = '\0';
    int exp10 = atoi(s + 1), pt = exp10 + 1;
    char buf[64];
    size_t l = 0;
    if (k <= pt && pt <= 21) {
        l = (size_t)snprintf(buf, sizeof(buf), "%s", digits);
        for (int i = 0; i < pt - k; i++)
            buf[l++] = '0';
        buf[l] = '\0';
    } else if (0 < pt && pt <= 21) {
        snprintf(buf, sizeof(buf), "%.*s.%s", pt, digits, digits + pt);
    } else if (-6 < pt && pt <= 0) {
        buf[l++] = '0';
        buf[l++] = '.';
        for (int i = 0; i < -pt; i++)
            buf[l++] = '0';
        snprintf(buf + l, sizeof(buf) - l, "%s", digits);
    } else {
        snprintf(buf, sizeof(buf), "%c%s%se%c%d", digits[0], k > 1 ? "." : "", digits + 1,
                 exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(out, n, "%s%s", neg ? "-" : "", buf);
}

static int parse_bool(const char *s)
{
    static const char *const on[] = {"1", "on", "true"}, *const off[] = {"0", "off", "false"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, on[i]) == 0)
            return 1;
        if (strcasecmp(s, off[i]) == 0)
            return 0;
    }
    return -1;
}

static int refuse(const char *dev, const char *ctl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(const char *dev, const char *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wbui: %s/%s: ", dev, ctl);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* What the UI would send for VALUE (NULL when none given); 1 with a
 * message when it would not let the user do it. */
static int press_payload(const struct wbui_control *c, const char *value, char *out, size_t n)
{
    const char *dev = c->dev->name, *ctl = c->name, *why;
    const struct wbui_type *t = wbui_type_find(wbui_control_type(c));
    double num;
    int b;
    switch (t->kind) {
    case WBUI_K_PUSHBUTTON:
        snprintf(out, n, "1");
        return 0;
    case WBUI_K_BOOL:
        if (value) {
            if ((b = parse_bool(value)) < 0)
                return refuse(dev, ctl, "'%s' is not 1/0/on/off/true/false", value);
        } else {
            /* The UI's switch shows Boolean(Number(value)) and toggles it. */
            b = !(c->value && wbui_parse_number(c->value, &num) && num != 0);
        }
        snprintf(out, n, "%d", b);
        return 0;
    case WBUI_K_NUMBER:
        if (!value)
            return refuse(dev, ctl, "a %s control needs a VALUE", t->name);
        if ((why = wbui_check_number_input(c, value, &num)))
            return refuse(dev, ctl, "%s", why);
        /* Integers past 2^53 stay text in the UI (w1-id, big counters). */
        if (strspn(value, "0123456789") == strlen(value) && strlen(value) > 15)
            snprintf(out, n, "%s", value);
        else
            js_number(num, out, n);
        return 0;
    case WBUI_K_RGB:
        if (!value)
            return refuse(dev, ctl, "an rgb control needs a VALUE (R;G;B)");
        if ((why = wbui_check_rgb(value)))
            return refuse(dev, ctl, "%s", why);
        snprintf(out, n, "%s", value);
        return 0;
    case WBUI_K_TEXT:
        if (!value)
            return refuse(dev, ctl, "a text control needs a VALUE");
        if ((why = wbui_check_text_input(c, value)))
            return refuse(dev, ctl, "%s", why);
        if (strlen(value) >= n)
            return refuse(dev, ctl, "VALUE is too long");
        snprintf(out, n, "%s", value);
        return 0;
    }
    return 1;
}

static int mode_press(struct wbui *u, const struct args *a, int64_t deadline_ms)
{
    const char *dev = a->pos[0], *ctl = a->pos[1], *value = a->npos > 2 ? a->pos[2] : NULL;
    struct wbui_control *c;
    while (!wbui_control_shown(c = wbui_model_control(u->model, dev, ctl)) &&
           u->link == L_SUBSCRIBED && wait_step(u, deadline_ms))
        ;
    if (!wbui_control_shown(c)) {
        const char *ty = c ? wbui_control_type(c) : NULL;
        return refuse(dev, ctl, "not shown by the UI within the timeout (%s)",
                      !c                    ? "no such control"
                      : !ty                 ? "no type"
                      : !wbui_type_find(ty) ? "unknown type"
                                            : "no value");
    }
    /* The rest of the retained burst (a later meta, a newer value) first;
     * bounded so a busy broker cannot hold the press back. */
    int64_t settle_until = now_ms() + 2000;
    settle(u, a->quiet_ms, settle_until < deadline_ms ? settle_until : deadline_ms);
    c = wbui_model_control(u->model, dev, ctl);
    if (!wbui_control_shown(c))
        return refuse(dev, ctl, "disappeared before the press");
    if (wbui_control_readonly(c))
        return refuse(dev, ctl, "is read-only (the UI offers no input for it)");
    char payload[WBUI_MAX_PAYLOAD + 1], topic[WBUI_MAX_TOPIC + 16];
    if (press_payload(c, value, payload, sizeof(payload)))
        return 1;
    snprintf(topic, sizeof(topic), "/devices/%s/controls/%s/on", dev, ctl);
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = payload;
    m.payloadlen = (int)strlen(payload);
    m.qos = 1;
    m.retained = 0;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_published;
    ro.onFailure = on_publish_failed;
    ro.context = u;
    u->published = 0;
    pthread_mutex_unlock(&u->lock);
    int src = MQTTAsync_sendMessage(u->client, topic, &m, &ro);
    pthread_mutex_lock(&u->lock);
    if (src != MQTTASYNC_SUCCESS)
        return refuse(dev, ctl, "cannot publish");
    int64_t ack_deadline = now_ms() + 10000;
    while (u->published == 0 && u->link == L_SUBSCRIBED && wait_step(u, ack_deadline))
        ;
    if (u->published != 1)
        return refuse(dev, ctl, "the broker did not acknowledge %s", topic);
    printf("%s %s\n", topic, payload);
    fflush(stdout);
    return 0;
}

static bool wait_holds(const struct wbui *u, const struct args *a, bool settled)
{
    struct wbui_control *c = wbui_model_control(u->model, a->pos[0], a->pos[1]);
    if (a->gone)
        return settled && wbui_control_gone(c);
    if (a->error)
        return c && strcmp(c->error ? c->error : "", a->error) == 0 && (c->error || settled);
    return c && c->value && strcmp(c->value, a->pos[2]) == 0;
}

static int mode_wait(struct wbui *u, const struct args *a, int64_t deadline_ms)
{
    bool settled = false;
    for (;;) {
        settled = settled || quiet(u, a->quiet_ms);
        if (wait_holds(u, a, settled))
            return 0;
        if (u->link != L_SUBSCRIBED || !wait_step(u, deadline_ms))
            break;
    }
    struct wbui_control *c = wbui_model_control(u->model, a->pos[0], a->pos[1]);
    if (a->error)
        fprintf(stderr, "wbui: timeout: %s/%s meta/error is %s%s%s\n", a->pos[0], a->pos[1],
                c && c->error ? "'" : "", c && c->error ? c->error : "absent",
                c && c->error ? "'" : "");
    else
        fprintf(stderr, "wbui: timeout: %s/%s value is %s%s%s%s\n", a->pos[0], a->pos[1],
                c && c->value ? "'" : "", c && c->value ? c->value : "absent",
                c && c->value ? "'" : "", a->gone && c && c->meta.raw ? " (meta present)" : "");
    return 1;
}

/* ---- command line -------------------------------------------------------- */

static double parse_seconds(const char *s)
{
    double v;
    if (!wbui_parse_number(s, &v) || v <= 0 || v > 86400)
        die_usage("-t wants seconds (0 < S <= 86400)");
    return v;
}

static void parse_args(int argc, char **argv, struct args *a)
{
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has_next = i + 1 < argc;
        /* "-5" is a VALUE, not an option. */
        if (opts && s[0] == '-' && s[1] && !(s[1] >= '0' && s[1] <= '9') && s[1] != '.') {
            if (strcmp(s, "--") == 0) {
                opts = false;
            } else if (strcmp(s, "--help") == 0) {
                die_usage(NULL);
            } else if (strcmp(s, "--gone") == 0) {
                a->gone = true;
            } else if (!has_next) {
                die_usage("an option needs an argument");
            } else if (strcmp(s, "-h") == 0) {
                a->host = argv[++i];
            } else if (strcmp(s, "-p") == 0) {
                char *end;
                long p = strtol(argv[++i], &end, 10);
                if (*end || p <= 0 || p > 65535)
                    die_usage("-p wants a TCP port");
                a->port = (int)p;
            } else if (strcmp(s, "-t") == 0) {
                a->timeout_s = parse_seconds(argv[++i]);
            } else if (strcmp(s, "--quiet-ms") == 0) {
                double q;
                if (!wbui_parse_number(argv[++i], &q) || q < 1 || q > 60000)
                    die_usage("--quiet-ms wants 1..60000");
                a->quiet_ms = (int)q;
            } else if (strcmp(s, "--device") == 0) {
                if (a->ndevs == MAX_DEVICE_ARGS)
                    die_usage("too many --device");
                a->devs[a->ndevs++] = argv[++i];
            } else if (strcmp(s, "--error") == 0) {
                a->error = argv[++i];
            } else {
                die_usage("unknown option");
            }
        } else if (!a->mode) {
            a->mode = s;
        } else if (a->npos < 3) {
            a->pos[a->npos++] = s;
        } else {
            die_usage("too many arguments");
        }
    }
    if (!a->port)
        die_usage("-p PORT is required");
    if (!a->mode)
        die_usage("no MODE");
    bool wait = strcmp(a->mode, "wait") == 0, press = strcmp(a->mode, "press") == 0;
    if (!wait && !press && strcmp(a->mode, "dump") != 0 && strcmp(a->mode, "check") != 0)
        die_usage("MODE is dump, check, press or wait");
    if ((strcmp(a->mode, "dump") == 0 || strcmp(a->mode, "check") == 0) && a->npos)
        die_usage("dump and check take no arguments (use --device D)");
    if (press && (a->npos < 2 || a->ndevs || a->error || a->gone))
        die_usage("press DEVICE CONTROL [VALUE]");
    if (wait && (a->npos != 3 - (a->error || a->gone) || (a->error && a->gone) || a->ndevs))
        die_usage("wait DEVICE CONTROL (VALUE | --error X | --gone)");
    if (!wait && (a->error || a->gone))
        die_usage("--error and --gone are for wait");
    for (int i = 0; i < a->npos && (press || wait); i++)
        if (i < 2 &&
            (!*a->pos[i] || strpbrk(a->pos[i], "/+#") || strlen(a->pos[i]) > WBUI_MAX_NAME))
            die_usage("DEVICE and CONTROL are single topic levels");
}

int main(int argc, char **argv)
{
    struct args a = {.host = "127.0.0.1", .quiet_ms = 300};
    parse_args(argc, argv, &a);
    bool collect = strcmp(a.mode, "dump") == 0 || strcmp(a.mode, "check") == 0;
    if (a.timeout_s == 0)
        a.timeout_s = collect ? 5 : 10;
    int64_t deadline_ms = now_ms() + (int64_t)(a.timeout_s * 1000);
    struct wbui u = {0};
    int rc = start(&u, &a, deadline_ms);
    if (rc == 0) {
        if (strcmp(a.mode, "dump") == 0)
            rc = mode_dump(&u, &a, deadline_ms);
        else if (strcmp(a.mode, "check") == 0)
            rc = mode_check(&u, &a, deadline_ms);
        else if (strcmp(a.mode, "press") == 0)
            rc = mode_press(&u, &a, deadline_ms);
        else
            rc = mode_wait(&u, &a, deadline_ms);
        if (u.link == L_FAILED && rc == 0 && collect)
            rc = 2;
    }
    stop(&u);
    return rc;
}

/*
 * http_guard.c - the header deadline (see http_guard.h).
 *
 * A fixed table of slots (one per possible connection) under one mutex;
 * the watchdog scans it twice a second. Per slot:
 *
 *   opened/request_done --> WAITING --(request_started)--> BUSY
 *        WAITING --(deadline passed: shutdown(fd))--> CUT --(closed)--> free
 *
 * shutdown(2) rather than close(2): the socket still belongs to
 * libmicrohttpd, which sees the end of the stream and closes it itself.
 */
#include "http/http_guard.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "wbmb/util.h"

#define SCAN_MS 500

struct slot {
    const void *conn; /* NULL = free */
    int fd;
    bool waiting;
    int64_t since_ms;
};

struct http_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stop;
    int deadline_ms;
    int n;
    uint64_t dropped;
    struct slot slots[];
};

static struct slot *find(struct http_guard *g, const void *conn)
{
    for (int i = 0; i < g->n; i++)
        if (g->slots[i].conn == conn)
            return &g->slots[i];
    return NULL;
}

static void *watch(void *arg)
{
    struct http_guard *g = arg;
    pthread_setname_np(pthread_self(), "wbmb-http-guard"); /* top -H, perf, gdb */
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += SCAN_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        int64_t now = util_mono_ms();
        for (int i = 0; i < g->n; i++) {
            struct slot *s = &g->slots[i];
            if (s->conn && s->waiting && now - s->since_ms > g->deadline_ms) {
                shutdown(s->fd, SHUT_RDWR);
                s->waiting = false;
                g->dropped++;
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

struct http_guard *http_guard_create(int deadline_ms, int max_conns)
{
    struct http_guard *g = calloc(1, sizeof(*g) + (size_t)max_conns * sizeof(struct slot));
    if (!g)
        return NULL;
    g->deadline_ms = deadline_ms;
    g->n = max_conns;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&g->thread, NULL, watch, g) != 0)
        goto fail;
    return g;
fail:
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
    return NULL;
}

void http_guard_destroy(struct http_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static void set_waiting(struct http_guard *g, const void *conn, bool waiting)
{
    pthread_mutex_lock(&g->mu);
    struct slot *s = find(g, conn);
    if (s) {
        s->waiting = waiting;
        s->since_ms = util_mono_ms();
    }
    pthread_mutex_unlock(&g->mu);
}

void http_guard_opened(struct http_guard *g, const void *conn, int fd)
{
    pthread_mutex_lock(&g->mu);
    struct slot *s = find(g, NULL); /* a free slot; none = over the limit, not guarded */
    if (s) {
        s->conn = conn;
        s->fd = fd;
        s->waiting = true;
        s->since_ms = util_mono_ms();
    }
    pthread_mutex_unlock(&g->mu);
}

void http_guard_request_started(struct http_guard *g, const void *conn)
{
    set_waiting(g, conn, false);
}

void http_guard_request_done(struct http_guard *g, const void *conn)
{
    set_waiting(g, conn, true);
}

void http_guard_closed(struct http_guard *g, const void *conn)
{
    pthread_mutex_lock(&g->mu);
    struct slot *s = find(g, conn);
    if (s)
        s->conn = NULL;
    pthread_mutex_unlock(&g->mu);
}

uint64_t http_guard_dropped(struct http_guard *g)
{
    pthread_mutex_lock(&g->mu);
    uint64_t n = g->dropped;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/*
 * http_sse.c - Server-Sent Events clients: registry, bounded buffers,
 * broadcast and the libmicrohttpd pull callback.
 *
 * One mutex (s->lock) guards the client list and every client's buffer; one
 * condition variable wakes the readers. Each client is owned by its MHD
 * response: it is freed by the response's free callback (sse_free), which
 * first unlinks it from the list. The list is therefore a non-owning index of
 * live clients, and a client in the list still has an open socket (MHD
 * destroys the response before it closes the socket), which is what makes
 * shutdown(2) of a dropped client's socket safe under the lock.
 *
 *   http_sse_open ──► REGISTERED (buffers broadcasts, not readable yet)
 *                        │ init() returned: init event put in FRONT
 *                        ▼
 *                      READY ── sse_read: data, or ": ping" every heartbeat
 *                     │     │
 *   buffer would      │     │ http_sse_stop: END_OF_STREAM
 *   overflow (append) ▼     ▼
 *      DROPPED: unlinked, counted,     ENDED
 *      socket shut down, sse_read
 *      answers END_WITH_ERROR
 *                     │     │
 *                     ▼     ▼
 *          sse_free (response destroyed by MHD): unlinked if still linked, freed
 *
 * Putting init in front of what was buffered during init() keeps the order
 * "snapshot, then every change after registration": a change already in the
 * snapshot is replayed after it, which is harmless because state events carry
 * the device's full state.
 */
#include "http/http_sse.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http/mhd_api.h"
#include "wbmb/log.h"

int http_sse_heartbeat_ms = 15000;

/* The kernel send buffer of an SSE socket is kept small so that a client that
 * stops reading fills its bounded user-space buffer soon and is dropped,
 * instead of parking megabytes in the kernel. */
#define SSE_SNDBUF (64 * 1024)

struct sse_client {
    struct http_sse *sse;
    struct sse_client *prev, *next;
    bool linked;
    bool ready;
    bool dropped;
    int fd;
    char *buf;
    size_t off, len, cap; /* pending bytes are buf[off..len) */
    size_t limit;         /* max pending bytes; grows by the size of the init event */
};

struct http_sse {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct sse_client *head;
    bool stopping;
    uint64_t clients, dropped, events;
};

struct http_sse *http_sse_create(void)
{
    struct http_sse *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

void http_sse_stop(struct http_sse *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void http_sse_destroy(struct http_sse *s)
{
    if (!s)
        return;
    if (s->head)
        log_error("http: SSE registry destroyed with clients still linked");
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Caller holds s->lock. */
static void unlink_client(struct http_sse *s, struct sse_client *c)
{
    if (!c->linked)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->linked = false;
    s->clients--;
}

/* Appends n bytes (front=true: before the pending bytes). Caller holds the
 * lock. Returns false when the client's limit would be passed. */
static bool buf_put(struct sse_client *c, const char *p, size_t n, bool front)
{
    size_t pending = c->len - c->off;
    if (pending + n > c->limit)
        return false;
    if (c->off > 0) { /* compact: pending bytes to the start */
        memmove(c->buf, c->buf + c->off, pending);
        c->off = 0;
        c->len = pending;
    }
    if (c->len + n > c->cap) {
        size_t ncap = c->cap ? c->cap : 4096;
        char *nb;
        while (ncap < c->len + n)
            ncap *= 2;
        nb = realloc(c->buf, ncap);
        if (!nb)
            return false;
        c->buf = nb;
        c->cap = ncap;
    }
    if (front) {
        memmove(c->buf + n, c->buf, c->len);
        memcpy(c->buf, p, n);
    } else {
        memcpy(c->buf + c->len, p, n);
    }
    c->len += n;
    return true;
}

/* Caller holds the lock. The socket is shut down so that the connection
 * thread, likely blocked waiting for the socket to become writable, ends now
 * instead of at the idle timeout. */
static void drop_client(struct http_sse *s, struct sse_client *c)
{
    unlink_client(s, c);
    c->dropped = true;
    s->dropped++;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    free(c->buf);
    c->buf = NULL;
    c->off = c->len = c->cap = 0;
    log_warn("http: SSE client dropped (could not keep up)");
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* MHD pull callback, on the connection's own thread: blocks until there is
 * something to send (thread-per-connection mode may not return 0). */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    static const char ping[] = ": ping\n\n";
    struct sse_client *c = cls;
    struct http_sse *s = c->sse;
    struct timespec deadline;
    ssize_t ret;

    deadline_after(&deadline, http_sse_heartbeat_ms);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (c->dropped) {
            ret = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (s->stopping) {
            ret = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        if (c->ready && c->len > c->off) {
            size_t n = c->len - c->off;
            if (n > max)
                n = max;
            memcpy(out, c->buf + c->off, n);
            c->off += n;
            if (c->off == c->len)
                c->off = c->len = 0;
            ret = (ssize_t)n;
            break;
        }
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != ETIMEDOUT)
            continue;
        if (c->ready && c->len == c->off && max >= sizeof(ping) - 1) {
            memcpy(out, ping, sizeof(ping) - 1);
            ret = (ssize_t)(sizeof(ping) - 1);
            break;
        }
        deadline_after(&deadline, http_sse_heartbeat_ms);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static void sse_free(void *cls)
{
    struct sse_client *c = cls;
    struct http_sse *s = c->sse;
    pthread_mutex_lock(&s->lock);
    unlink_client(s, c);
    pthread_mutex_unlock(&s->lock);
    free(c->buf);
    free(c);
}

/* Formats one SSE record; malloc'd, NULL on error. JSON_C_TO_STRING_PLAIN
 * never emits a newline (strings escape it), so data fits on one line. */
static char *format_event(const char *event, json_object *data, size_t *n)
{
    const char *js = data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE)
                          : "null";
    char *msg = NULL;
    int len = asprintf(&msg, "event: %s\ndata: %s\n\n", event, js ? js : "null");
    if (len < 0)
        return NULL;
    *n = (size_t)len;
    return msg;
}

static bool event_name_ok(const char *e)
{
    size_t i;
    if (!e || !*e)
        return false;
    for (i = 0; e[i]; i++) {
        char ch = e[i];
        if (i >= 32 || !((ch >= 'a' && ch <= 'z') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

struct MHD_Response *http_sse_open(struct http_sse *s, struct MHD_Connection *conn,
                                   json_object *(*init)(void *ud), void *ud)
{
    struct sse_client *c = calloc(1, sizeof(*c));
    struct MHD_Response *r = NULL;
    const union MHD_ConnectionInfo *ci;
    json_object *snap;
    char *msg;
    size_t n = 0;

    if (!c)
        return NULL;
    c->sse = s;
    c->fd = -1;
    c->limit = HTTP_SSE_BUF_MAX;
    ci = mhd->get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        int sndbuf = SSE_SNDBUF;
        c->fd = ci->connect_fd;
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    r = mhd->create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, c, sse_free);
    if (!r) {
        free(c);
        return NULL;
    }
    /* From here on the client is owned by r: MHD_destroy_response frees it. */
    if (mhd->add_response_header(r, "Content-Type", "text/event-stream") != MHD_YES ||
        mhd->add_response_header(r, "Cache-Control", "no-cache") != MHD_YES ||
        mhd->add_response_header(r, "X-Accel-Buffering", "no") != MHD_YES)
        goto fail;

    pthread_mutex_lock(&s->lock);
    if (s->stopping || s->clients >= HTTP_SSE_MAX_CLIENTS) {
        pthread_mutex_unlock(&s->lock);
        goto fail;
    }
    c->next = s->head;
    if (s->head)
        s->head->prev = c;
    s->head = c;
    c->linked = true;
    s->clients++;
    pthread_mutex_unlock(&s->lock);

    /* The backend may block on the core thread, which may itself be calling
     * http_sse_broadcast: no lock may be held here. */
    snap = init ? init(ud) : NULL;
    msg = format_event("init", snap ? snap : NULL, &n);
    json_object_put(snap);

    pthread_mutex_lock(&s->lock);
    if (msg && !c->dropped) {
        c->limit += n;
        if (!buf_put(c, msg, n, true))
            drop_client(s, c);
    }
    c->ready = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    free(msg);
    return r;
fail:
    mhd->destroy_response(r);
    return NULL;
}

void http_sse_broadcast(struct http_sse *s, const char *event, json_object *data)
{
    struct sse_client *c, *next;
    char *msg;
    size_t n = 0;

    if (!s)
        return;
    if (!event_name_ok(event)) {
        log_warn("http: SSE event with an invalid name not sent");
        return;
    }
    msg = format_event(event, data, &n);
    if (!msg)
        return;
    pthread_mutex_lock(&s->lock);
    s->events++;
    for (c = s->head; c; c = next) {
        next = c->next;
        if (!buf_put(c, msg, n, false))
            drop_client(s, c);
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    free(msg);
}

void http_sse_counts(struct http_sse *s, uint64_t *clients, uint64_t *dropped, uint64_t *events)
{
    pthread_mutex_lock(&s->lock);
    *clients = s->clients;
    *dropped = s->dropped;
    *events = s->events;
    pthread_mutex_unlock(&s->lock);
}

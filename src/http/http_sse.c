/*
 * http_sse.c - Server-Sent Events clients: registry, bounded buffers,
 * event ids and the replay ring, broadcast and the libmicrohttpd pull
 * callback.
 *
 * One mutex (s->lock) guards the client list, every client's buffer, the
 * event sequence and the ring; the client count has a lock-free mirror
 * (nclients, for http_sse_client_count()) stored under it. Each client has an eventfd that
 * broadcasts signal; its reader (sse_read, on the connection's own MHD thread) polls that eventfd
 * together with the client's socket, so it wakes at once for new data, for the stop, and for the
 * peer going away (FIN or RST: POLLRDHUP, POLLHUP, POLLERR). Without watching the socket a dead
 * client would only be noticed when a write fails, one or two heartbeats (15-30 s) later, holding
 * one of the HTTP_SSE_MAX_CLIENTS slots all that time.
 *
 * Each client is owned by its MHD response: it is freed by the response's
 * free callback (sse_free), which first unlinks it from the list. The list is
 * therefore a non-owning index of live clients, and a client in the list
 * still has an open socket (MHD destroys the response before it closes the
 * socket), which is what makes shutdown(2) of a dropped client's socket safe
 * under the lock.
 *
 *   http_sse_open ──► REGISTERED (buffers broadcasts, not readable yet)
 *       │ Last-Event-ID in the ring: the events after it, READY at once
 *       │ else init() returned: init event (id = seq at registration) in FRONT
 *       ▼
 *     READY ── sse_read: data, or ": ping" every heartbeat
 *    │      │            │
 *    │      │            │ socket: peer closed or reset
 *    │      │            ▼
 *    │      │          GONE: unlinked at once (slot free), END_WITH_ERROR
 *    │      │ http_sse_stop: END_OF_STREAM (ENDED)
 *    │ buffer would overflow (append)
 *    ▼
 *   DROPPED: unlinked, counted, socket shut down, sse_read answers END_WITH_ERROR
 *    │
 *    ▼
 *   sse_free (response destroyed by MHD): unlinked if still linked, freed
 *
 * Event ids: s->seq is the id of the newest event; it starts at the wall
 * clock in microseconds when the registry is created, so that the ids of a
 * restarted daemon are above every id a client may remember from the
 * previous run (such an id is then outside the ring and gets an init instead
 * of a wrong replay). The ring holds every event with an id above s->floor;
 * a Last-Event-ID L can be resumed when floor <= L <= seq.
 *
 * Putting init in front of what was buffered during init() keeps the order
 * "snapshot, then every change after registration": a change already in the
 * snapshot is replayed after it, which is harmless because state events carry
 * the device's full state.
 */
#include "http/http_sse.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/mhd_api.h"
#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

int http_sse_heartbeat_ms = 15000;

/* The kernel send buffer of an SSE socket is kept small so that a client that
 * stops reading fills its bounded user-space buffer soon and is dropped,
 * instead of parking megabytes in the kernel. */
#define SSE_SNDBUF (64 * 1024)
/* Room before a formatted record for its "id: <20 digits>\n" line. */
#define ID_ROOM 32

/* One formatted record: text at mem + off, len bytes. */
struct sse_msg {
    char *mem;
    size_t off, len;
    uint64_t id;
};

struct sse_client {
    struct http_sse *sse;
    struct sse_client *prev, *next;
    bool linked;
    bool ready;
    bool dropped;
    bool gone;
    int fd;  /* the connection's socket (MHD's), -1 when unknown */
    int efd; /* eventfd: "look at the buffer again" */
    char *buf;
    size_t off, len, cap; /* pending bytes are buf[off..len) */
    size_t limit;         /* max pending bytes; grows by the size of the init event */
};

struct http_sse {
    pthread_mutex_t lock;
    struct sse_client *head;
    bool stopping;
    uint64_t clients, dropped, events;
    /* == clients: stored (release) under the lock wherever clients changes,
     * loaded (acquire) without it by http_sse_client_count(). */
    atomic_size_t nclients;
    uint64_t seq;   /* id of the newest event */
    uint64_t floor; /* every event with an id above it is in the ring */
    struct sse_msg ring[HTTP_SSE_RING_EVENTS];
    size_t ring_first, ring_n, ring_bytes;
};

struct http_sse *http_sse_create(void)
{
    struct http_sse *s = calloc(1, sizeof(*s));
    struct timespec ts;
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    s->seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    s->floor = s->seq;
    return s;
}

/* Caller holds the lock (or owns c alone). */
static void wake(struct sse_client *c)
{
    uint64_t one = 1;
    /* EAGAIN only when the counter is already huge: the reader wakes anyway */
    if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_debug("http: SSE wake-up failed: %s", strerror(errno));
}

void http_sse_stop(struct http_sse *s)
{
    struct sse_client *c;
    if (!s)
        return;
    wb_lock(&s->lock);
    s->stopping = true;
    for (c = s->head; c; c = c->next)
        wake(c);
    pthread_mutex_unlock(&s->lock);
}

static void ring_pop(struct http_sse *s)
{
    struct sse_msg *m = &s->ring[s->ring_first];
    s->floor = m->id;
    s->ring_bytes -= m->len;
    free(m->mem);
    m->mem = NULL;
    s->ring_first = (s->ring_first + 1) % HTTP_SSE_RING_EVENTS;
    s->ring_n--;
}

/* Takes ownership of m. Caller holds the lock. */
static void ring_push(struct http_sse *s, struct sse_msg *m)
{
    if (m->len > HTTP_SSE_RING_BYTES) { /* too big to replay: forget up to it */
        while (s->ring_n > 0)
            ring_pop(s);
        s->floor = m->id;
        free(m->mem);
        return;
    }
    while (s->ring_n == HTTP_SSE_RING_EVENTS || s->ring_bytes + m->len > HTTP_SSE_RING_BYTES)
        ring_pop(s);
    s->ring[(s->ring_first + s->ring_n) % HTTP_SSE_RING_EVENTS] = *m;
    s->ring_n++;
    s->ring_bytes += m->len;
}

void http_sse_destroy(struct http_sse *s)
{
    if (!s)
        return;
    if (s->head)
        log_error("http: SSE registry destroyed with clients still linked");
    while (s->ring_n > 0)
        ring_pop(s);
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
    atomic_store_explicit(&s->nclients, (size_t)s->clients, memory_order_release);
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
    wake(c);
    log_warn("http: SSE client dropped (could not keep up)");
}

/* Waits, without the lock, until the eventfd is signalled, the socket says
 * the peer is gone, or deadline_ms (monotonic) passes. Returns false when
 * the peer is gone. */
static bool wait_io(struct sse_client *c, int64_t deadline_ms)
{
    struct pollfd pfd[2] = {{c->fd, POLLRDHUP, 0}, {c->efd, POLLIN, 0}};
    int64_t left = deadline_ms - util_mono_ms();
    uint64_t count;
    int n;

    /* Only POLLRDHUP is asked of the socket (POLLHUP and POLLERR always
     * come): bytes the client sends after its request belong to MHD and must
     * not turn this into a busy loop. */
    n = poll(pfd, 2, left > 0 ? (int)(left < INT32_MAX ? left : INT32_MAX) : 0);
    if (n <= 0)
        return true; /* timeout, or EINTR: the caller looks again */
    if (pfd[1].revents & POLLIN) {
        if (read(c->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
            log_debug("http: SSE eventfd read failed: %s", strerror(errno));
    }
    return !(pfd[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* MHD pull callback, on the connection's own thread: blocks until there is
 * something to send (thread-per-connection mode may not return 0). */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    static const char ping[] = ": ping\n\n";
    struct sse_client *c = cls;
    struct http_sse *s = c->sse;
    int64_t deadline = util_mono_ms() + http_sse_heartbeat_ms;
    ssize_t ret;

    for (;;) {
        wb_lock(&s->lock);
        if (c->dropped || c->gone) {
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
        if (util_mono_ms() >= deadline) {
            if (c->ready && max >= sizeof(ping) - 1) {
                memcpy(out, ping, sizeof(ping) - 1);
                ret = (ssize_t)(sizeof(ping) - 1);
                break;
            }
            deadline = util_mono_ms() + http_sse_heartbeat_ms;
        }
        pthread_mutex_unlock(&s->lock);
        if (!wait_io(c, deadline)) {
            /* The peer closed or reset: free the slot now; MHD closes the
             * connection and destroys the response when we answer. */
            wb_lock(&s->lock);
            if (!c->dropped) {
                c->gone = true;
                unlink_client(s, c);
                log_debug("http: SSE client went away");
            }
            pthread_mutex_unlock(&s->lock);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static void sse_free(void *cls)
{
    struct sse_client *c = cls;
    struct http_sse *s = c->sse;
    wb_lock(&s->lock);
    unlink_client(s, c);
    pthread_mutex_unlock(&s->lock);
    close(c->efd);
    free(c->buf);
    free(c);
}

/* Formats one record without its id line (ID_ROOM bytes are left in front
 * for it, see msg_stamp). false on ENOMEM. JSON_C_TO_STRING_PLAIN never
 * emits a newline (strings escape it), so data fits on one line. */
static bool msg_format(struct sse_msg *m, const char *event, json_object *data)
{
    const char *js = data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE)
                          : "null";
    int n;
    if (!js)
        js = "null";
    n = snprintf(NULL, 0, "event: %s\ndata: %s\n\n", event, js);
    if (n < 0)
        return false;
    m->mem = malloc(ID_ROOM + (size_t)n + 1);
    if (!m->mem)
        return false;
    snprintf(m->mem + ID_ROOM, (size_t)n + 1, "event: %s\ndata: %s\n\n", event, js);
    m->off = ID_ROOM;
    m->len = (size_t)n;
    return true;
}

/* Puts "id: <id>\n" in front of a record made by msg_format (once). */
static void msg_stamp(struct sse_msg *m, uint64_t id)
{
    char line[ID_ROOM];
    int k = snprintf(line, sizeof(line), "id: %" PRIu64 "\n", id);
    m->off = ID_ROOM - (size_t)k;
    memcpy(m->mem + m->off, line, (size_t)k);
    m->len += (size_t)k;
    m->id = id;
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

/* A Last-Event-ID header: 1 to 20 decimal digits within uint64. */
static bool parse_event_id(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    size_t i;
    if (!v || !*v)
        return false;
    for (i = 0; v[i]; i++) {
        unsigned d = (unsigned)(v[i] - '0');
        if (d > 9 || i >= 20 || n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/* Copies the ring's events after `after` into c's buffer. Caller holds the
 * lock and has checked floor <= after <= seq. Returns the count. */
static size_t replay(struct http_sse *s, struct sse_client *c, uint64_t after)
{
    size_t i, n = 0;
    for (i = 0; i < s->ring_n; i++) {
        const struct sse_msg *m = &s->ring[(s->ring_first + i) % HTTP_SSE_RING_EVENTS];
        if (m->id <= after)
            continue;
        if (!buf_put(c, m->mem + m->off, m->len, false))
            return n; /* cannot happen: the ring is smaller than the limit */
        n++;
    }
    return n;
}

struct MHD_Response *http_sse_open(struct http_sse *s, struct MHD_Connection *conn,
                                   const char *last_event_id, json_object *(*init)(void *ud),
                                   void *ud)
{
    struct sse_client *c = calloc(1, sizeof(*c));
    struct MHD_Response *r = NULL;
    const union MHD_ConnectionInfo *ci;
    struct sse_msg m = {0};
    json_object *snap;
    uint64_t last = 0, init_id;
    bool resume;
    size_t replayed = 0;

    if (!c)
        return NULL;
    c->sse = s;
    c->fd = -1;
    c->limit = HTTP_SSE_BUF_MAX;
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0) {
        free(c);
        return NULL;
    }
    ci = mhd->get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        int sndbuf = SSE_SNDBUF;
        c->fd = ci->connect_fd;
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    r = mhd->create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, c, sse_free);
    if (!r) {
        close(c->efd);
        free(c);
        return NULL;
    }
    /* From here on the client is owned by r: MHD_destroy_response frees it. */
    if (mhd->add_response_header(r, "Content-Type", "text/event-stream") != MHD_YES ||
        mhd->add_response_header(r, "Cache-Control", "no-cache") != MHD_YES ||
        mhd->add_response_header(r, "X-Accel-Buffering", "no") != MHD_YES)
        goto fail;

    wb_lock(&s->lock);
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
    atomic_store_explicit(&s->nclients, (size_t)s->clients, memory_order_release);
    init_id = s->seq;
    resume = parse_event_id(last_event_id, &last) && last >= s->floor && last <= s->seq;
    if (resume) {
        replayed = replay(s, c, last);
        c->ready = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (resume) {
        log_debug("http: SSE client resumed after event %" PRIu64 " (%zu replayed)", last,
                  replayed);
        return r;
    }

    /* The backend may block on the core thread, which may itself be calling
     * http_sse_broadcast: no lock may be held here. */
    snap = init ? init(ud) : NULL;
    if (msg_format(&m, "init", snap))
        msg_stamp(&m, init_id);
    json_object_put(snap);

    wb_lock(&s->lock);
    if (m.mem && !c->dropped) {
        c->limit += m.len;
        if (!buf_put(c, m.mem + m.off, m.len, true))
            drop_client(s, c);
    }
    c->ready = true;
    wake(c);
    pthread_mutex_unlock(&s->lock);
    free(m.mem);
    return r;
fail:
    mhd->destroy_response(r);
    return NULL;
}

void http_sse_broadcast(struct http_sse *s, const char *event, json_object *data)
{
    struct sse_client *c, *next;
    struct sse_msg m = {0};

    if (!s)
        return;
    if (!event_name_ok(event)) {
        log_warn("http: SSE event with an invalid name not sent");
        return;
    }
    if (!msg_format(&m, event, data))
        return;
    wb_lock(&s->lock);
    msg_stamp(&m, ++s->seq);
    s->events++;
    for (c = s->head; c; c = next) {
        next = c->next;
        if (!buf_put(c, m.mem + m.off, m.len, false))
            drop_client(s, c);
        else
            wake(c);
    }
    ring_push(s, &m);
    pthread_mutex_unlock(&s->lock);
}

size_t http_sse_client_count(const struct http_sse *s)
{
    return s ? atomic_load_explicit(&s->nclients, memory_order_acquire) : 0;
}

void http_sse_counts(struct http_sse *s, uint64_t *clients, uint64_t *dropped, uint64_t *events)
{
    wb_lock(&s->lock);
    *clients = s->clients;
    *dropped = s->dropped;
    *events = s->events;
    pthread_mutex_unlock(&s->lock);
}

/*
 * test_http_limits.c - the HTTP module's edges under load and misuse, apart
 * from test_http.c (routing and answers): SSE slots freed as soon as a
 * client goes away, event ids and Last-Event-ID replay, and refused request
 * bodies drained so that the answer survives (no connection reset).
 *
 * One server without a token runs for the whole program, with a fake
 * backend that has only what these requests reach. Raw sockets on
 * 127.0.0.1; waiting is always polling with a deadline, and the deadlines
 * are far above what the code needs and far below the old behaviour they
 * guard against (e.g. 8 s for a slot that used to stay taken 15-30 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_sse.h" /* HTTP_SSE_* limits, http_sse_heartbeat_ms */
#include "wbmb/http.h"
#include "wbmb/util.h"

/* ---- fake backend ------------------------------------------------------ */

static json_object *fk_sse_init(void *ud)
{
    return json_tokener_parse("{\"devices\":[],\"scenario\":{}}");
}

static int fk_action(void *ud, const char *id, json_object *req, json_object **body)
{
    *body = json_object_new_object();
    return 200;
}

static const struct http_backend fake = {.post_action = fk_action, .sse_init = fk_sse_init};

static struct http_server *srv;
static unsigned port;

/* ---- raw connections --------------------------------------------------- */

static int connect_to(int sndbuf)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* A growing receive buffer of one raw connection. */
struct rx {
    int fd;
    char *buf;
    size_t len, cap;
    int err; /* errno of a failed recv, 0 */
    bool eof;
};

/* Reads what is there within wait_ms; false on EOF or error. */
static bool rx_more(struct rx *r, int wait_ms)
{
    struct pollfd pfd = {r->fd, POLLIN, 0};
    ssize_t n;
    if (poll(&pfd, 1, wait_ms) <= 0)
        return true;
    if (r->cap - r->len < 65536) {
        r->cap = r->cap ? r->cap * 2 : 131072;
        r->buf = realloc(r->buf, r->cap + 1);
        assert_non_null(r->buf);
    }
    n = recv(r->fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0) {
        r->err = n < 0 ? errno : 0;
        r->eof = true;
        return false;
    }
    r->len += (size_t)n;
    r->buf[r->len] = '\0';
    return true;
}

/* Reads until needle appears at or after from, or the deadline; returns the
 * offset just after the needle, or (size_t)-1. */
static size_t rx_until(struct rx *r, size_t from, const char *needle, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    for (;;) {
        if (r->buf && from < r->len) {
            char *hit = memmem(r->buf + from, r->len - from, needle, strlen(needle));
            if (hit)
                return (size_t)(hit - r->buf) + strlen(needle);
        }
        int64_t left = deadline - util_mono_ms();
        if (left <= 0 || !rx_more(r, (int)left))
            return (size_t)-1;
    }
}

static void rx_close(struct rx *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

static uint64_t stat_clients(void)
{
    struct http_stats st;
    http_get_stats(srv, &st);
    return st.sse_clients;
}

/* Polls the client gauge until it is n or timeout_ms passes. */
static void wait_clients(uint64_t n, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    while (stat_clients() != n && util_mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(stat_clients(), n);
}

/* Opens /events (extra: more header lines) and reads its headers; returns
 * the offset of the body, (size_t)-1 when the status is not 200. */
static size_t sse_connect(struct rx *r, const char *extra)
{
    char req[512];
    size_t at;
    int n = snprintf(req, sizeof(req), "GET /events HTTP/1.1\r\nHost: x\r\n%s\r\n", extra);
    r->fd = connect_to(0);
    assert_int_equal(send(r->fd, req, (size_t)n, MSG_NOSIGNAL), n);
    at = rx_until(r, 0, "\r\n\r\n", 10000);
    assert_true(at != (size_t)-1);
    return strncmp(r->buf, "HTTP/1.1 200", 12) == 0 ? at : (size_t)-1;
}

/* The id of the record at or after from whose "event:" line is event. */
static uint64_t id_of(struct rx *r, size_t from, const char *event)
{
    char needle[64], *p;
    snprintf(needle, sizeof(needle), "\nevent: %s\n", event);
    assert_true(rx_until(r, from, needle, 10000) != (size_t)-1);
    p = memmem(r->buf + from, r->len - from, needle, strlen(needle));
    while (p > r->buf && p[-1] != '\n')
        p--;
    assert_memory_equal(p, "id: ", 4);
    return strtoull(p + 4, NULL, 10);
}

static void broadcast_seq(int seq)
{
    json_object *ev = json_object_new_object();
    json_object_object_add(ev, "seq", json_object_new_int(seq));
    http_broadcast(srv, "state", ev);
    json_object_put(ev);
}

/* ---- SSE --------------------------------------------------------------- */

static void test_sse_slots_freed_at_once(void **state)
{
    struct rx c[HTTP_SSE_MAX_CLIENTS + 1], extra = {0};
    struct linger hard = {1, 0};
    size_t at;
    int i;

    /* the default heartbeat: the old code noticed a dead client only when a
     * ping failed, 15-30 s later */
    assert_int_equal(http_sse_heartbeat_ms, 15000);
    for (i = 0; i < HTTP_SSE_MAX_CLIENTS; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        at = sse_connect(&c[i], "");
        assert_true(at != (size_t)-1);
        assert_true(rx_until(&c[i], at, "event: init\n", 10000) != (size_t)-1);
    }
    wait_clients(HTTP_SSE_MAX_CLIENTS, 10000);
    /* the limit holds */
    memset(&c[i], 0, sizeof(c[i]));
    assert_true(sse_connect(&c[i], "") == (size_t)-1);
    assert_memory_equal(c[i].buf, "HTTP/1.1 503", 12);
    rx_close(&c[i]);
    /* page reloads: half close cleanly (FIN), half abort (RST) */
    for (i = 0; i < HTTP_SSE_MAX_CLIENTS; i++) {
        if (i % 2)
            setsockopt(c[i].fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        rx_close(&c[i]);
    }
    wait_clients(0, 8000);
    /* and a new client is accepted */
    at = sse_connect(&extra, "");
    assert_true(at != (size_t)-1);
    assert_true(rx_until(&extra, at, "event: init\n", 10000) != (size_t)-1);
    rx_close(&extra);
    wait_clients(0, 8000);
}

static void test_sse_ids_and_replay(void **state)
{
    struct rx a = {0}, b = {0}, d = {0};
    char hdr[128];
    uint64_t init_id, id1, id2, id3;
    size_t at, ba;
    int i;

    at = sse_connect(&a, "");
    assert_true(at != (size_t)-1);
    init_id = id_of(&a, at, "init");
    wait_clients(1, 10000);
    for (i = 1; i <= 3; i++)
        broadcast_seq(i);
    assert_true(rx_until(&a, at, "{\"seq\":3}\n\n", 10000) != (size_t)-1);
    id1 = id_of(&a, at, "state");
    at = rx_until(&a, at, "{\"seq\":1}\n\n", 10000);
    id2 = id_of(&a, at, "state");
    at = rx_until(&a, at, "{\"seq\":2}\n\n", 10000);
    id3 = id_of(&a, at, "state");
    /* one id per event, increasing by one; init names the newest before it */
    assert_true(id1 == init_id + 1 && id2 == id1 + 1 && id3 == id2 + 1);

    /* resumed after the first: exactly the two it missed, no init */
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %" PRIu64 "\r\n", id1);
    ba = sse_connect(&b, hdr);
    assert_true(ba != (size_t)-1);
    assert_true(rx_until(&b, ba, "{\"seq\":3}\n\n", 10000) != (size_t)-1);
    assert_non_null(strstr(b.buf + ba, "{\"seq\":2}"));
    assert_null(strstr(b.buf + ba, "event: init"));
    assert_null(strstr(b.buf + ba, "{\"seq\":1}"));
    assert_true(id_of(&b, ba, "state") == id2);
    rx_close(&b);

    /* resumed at the newest: nothing is replayed, the next event follows */
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %" PRIu64 "\r\n", id3);
    ba = sse_connect(&b, hdr);
    assert_true(ba != (size_t)-1);
    wait_clients(2, 10000);
    broadcast_seq(4);
    assert_true(rx_until(&b, ba, "{\"seq\":4}\n\n", 10000) != (size_t)-1);
    assert_null(strstr(b.buf + ba, "event: init"));
    assert_true(id_of(&b, ba, "state") == id3 + 1);
    rx_close(&b);

    /* unknown ids get a fresh init: garbage, a future id, an evicted one */
    static const char *const bad[] = {"Last-Event-ID: abc\r\n", "Last-Event-ID: -1\r\n",
                                      "Last-Event-ID: 99999999999999999999999\r\n", NULL};
    for (i = 0; bad[i]; i++) {
        ba = sse_connect(&b, bad[i]);
        assert_true(ba != (size_t)-1);
        assert_true(rx_until(&b, ba, "event: init\n", 10000) != (size_t)-1);
        rx_close(&b);
    }
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %" PRIu64 "\r\n", id3 + 1000);
    ba = sse_connect(&b, hdr);
    assert_true(rx_until(&b, ba, "event: init\n", 10000) != (size_t)-1);
    rx_close(&b);
    for (i = 0; i < HTTP_SSE_RING_EVENTS + 10; i++)
        broadcast_seq(100 + i);
    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %" PRIu64 "\r\n", id1);
    ba = sse_connect(&d, hdr);
    assert_true(ba != (size_t)-1);
    /* init's id is the newest event's, so a resume from it loses nothing */
    assert_true(id_of(&d, ba, "init") == id3 + 1 + HTTP_SSE_RING_EVENTS + 10);
    rx_close(&d);
    rx_close(&a);
    wait_clients(0, 8000);
}

/* ---- refused bodies ---------------------------------------------------- */

/* Sends a request with a body of n spaces (Content-Length, or chunked when
 * chunked) the way curl does: headers, then the body at once, reading
 * whatever comes back meanwhile. Returns true when every byte was sent; the
 * answer is left in r. */
static bool upload(struct rx *r, const char *path, size_t n, bool chunked)
{
    char head[256], *body = malloc(65536);
    size_t sent = 0;
    int k;
    bool ok = true;
    int64_t deadline = util_mono_ms() + 60000;

    assert_non_null(body);
    memset(body, ' ', 65536);
    r->fd = connect_to(64 * 1024);
    if (chunked)
        k = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", path);
    else
        k = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", path, n);
    assert_int_equal(send(r->fd, head, (size_t)k, MSG_NOSIGNAL), k);
    while (ok && sent < n) {
        size_t part = n - sent < 65536 ? n - sent : 65536;
        char line[32];
        struct pollfd pfd = {r->fd, POLLOUT, 0};
        if (chunked) {
            k = snprintf(line, sizeof(line), "%zx\r\n", part);
            ok = send(r->fd, line, (size_t)k, MSG_NOSIGNAL) == k;
        }
        while (ok && part > 0) {
            ssize_t w;
            poll(&pfd, 1, 1000);
            w = send(r->fd, body, part, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno == EAGAIN && util_mono_ms() < deadline) {
                rx_more(r, 0);
                continue;
            }
            ok = w > 0;
            if (ok) {
                part -= (size_t)w;
                sent += (size_t)w;
            }
        }
        if (ok && chunked)
            ok = send(r->fd, "\r\n", 2, MSG_NOSIGNAL) == 2;
    }
    if (ok && chunked)
        ok = send(r->fd, "0\r\n\r\n", 5, MSG_NOSIGNAL) == 5;
    free(body);
    return ok;
}

/* The answer in r is status with a JSON error body, complete. */
static void assert_answer(struct rx *r, const char *status)
{
    size_t at = rx_until(r, 0, "\r\n\r\n", 10000);
    assert_true(at != (size_t)-1);
    assert_memory_equal(r->buf, status, strlen(status));
    assert_true(rx_until(r, at, "\"}", 10000) != (size_t)-1);
    assert_non_null(strstr(r->buf + at, "{\"error\":\""));
}

static void test_refused_bodies_drained(void **state)
{
    struct rx r = {0};
    int i;

    /* 20 uploads over the limit in a row: each one sent in full, each
     * answer read in full (the old code answered at once and closed the
     * socket with most of the body unread: a reset, mostly while sending) */
    for (i = 0; i < 20; i++) {
        assert_true(upload(&r, "/devices/tv/action", 3 * 1024 * 1024, false));
        assert_answer(&r, "HTTP/1.1 413");
        assert_non_null(strcasestr(r.buf, "Connection: close"));
        rx_close(&r);
    }
    /* chunked over the limit: drained too, then 413 */
    assert_true(upload(&r, "/devices/tv/action", 1024 * 1024, true));
    assert_answer(&r, "HTTP/1.1 413");
    rx_close(&r);
    /* the other answers given before the body are drained the same way */
    assert_true(upload(&r, "/nowhere", 2 * 1024 * 1024, false));
    assert_answer(&r, "HTTP/1.1 404");
    rx_close(&r);
    assert_true(upload(&r, "/devices", 2 * 1024 * 1024, false));
    assert_answer(&r, "HTTP/1.1 405");
    rx_close(&r);
    /* a body announced above the drain bound: 413 before any byte of it,
     * so a client that waits for "100 Continue" reads it cleanly */
    r.fd = connect_to(0);
    {
        static const char req[] = "POST /devices/tv/action HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 104857600\r\nExpect: 100-continue\r\n\r\n";
        assert_int_equal(send(r.fd, req, sizeof(req) - 1, MSG_NOSIGNAL), sizeof(req) - 1);
    }
    assert_answer(&r, "HTTP/1.1 413");
    rx_close(&r);
    /* a chunked body that goes on past the bound: the connection is closed */
    upload(&r, "/devices/tv/action", 6 * 1024 * 1024, true);
    while (rx_more(&r, 10000) && !r.eof)
        ;
    assert_true(r.eof);
    assert_true(r.len == 0 || strncmp(r.buf, "HTTP/1.1 413", 12) == 0);
    rx_close(&r);
    /* and a good body still works */
    r.fd = connect_to(0);
    {
        static const char req[] = "POST /devices/tv/action HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 14\r\n\r\n{\"action\":\"x\"}";
        assert_int_equal(send(r.fd, req, sizeof(req) - 1, MSG_NOSIGNAL), sizeof(req) - 1);
    }
    assert_true(rx_until(&r, 0, "\r\n\r\n", 10000) != (size_t)-1);
    assert_memory_equal(r.buf, "HTTP/1.1 200", 12);
    rx_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_slots_freed_at_once),
        cmocka_unit_test(test_sse_ids_and_replay),
        cmocka_unit_test(test_refused_bodies_drained),
    };
    struct http_options o = {"127.0.0.1:0", NULL};
    char err[256];
    int rc;

    srv = http_start(&o, &fake, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "http_start: %s\n", err);
        return 1;
    }
    port = http_port(srv);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    http_stop(srv);
    return rc;
}

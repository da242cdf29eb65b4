/*
 * test_http.c - the HTTP module against a fake backend, driven by curl and
 * raw sockets on 127.0.0.1.
 *
 * Two servers run for the whole program: one without a token, one with the
 * token "s3cret". The fake backend answers canned JSON and records what it
 * was asked (under a mutex: MHD calls it from connection threads). Waiting
 * is always polling with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_sse.h" /* http_sse_heartbeat_ms: a test hook */
#include "wbmb/http.h"
#include "wbmb/lockstat.h"
#include "wbmb/util.h"

/* ---- fake backend ------------------------------------------------------ */

static pthread_mutex_t fk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int calls;
    char last[64];   /* name of the last backend function */
    char id[128];    /* id argument */
    char req[512];   /* request body as JSON */
    char status[16]; /* command-logs status filter, "-" for NULL */
    char dev[128];   /* command-logs device filter, "-" for NULL */
    int limit;
} fk;

static void record(const char *fn, const char *id, json_object *req)
{
    pthread_mutex_lock(&fk_lock);
    fk.calls++;
    snprintf(fk.last, sizeof(fk.last), "%s", fn);
    snprintf(fk.id, sizeof(fk.id), "%s", id ? id : "-");
    snprintf(fk.req, sizeof(fk.req), "%s",
             req ? json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN) : "-");
    pthread_mutex_unlock(&fk_lock);
}

static int err_body(int status, const char *msg, json_object **body)
{
    *body = json_object_new_object();
    json_object_object_add(*body, "error", json_object_new_string(msg));
    return status;
}

static int fk_devices(void *ud, json_object **body)
{
    record("get_devices", NULL, NULL);
    *body = json_tokener_parse("[{\"id\":\"tv\",\"name\":\"TV\",\"type\":\"tv\",\"online\":true,"
                               "\"state\":{\"power\":true}}]");
    return 200;
}

static int fk_device(void *ud, const char *id, json_object **body)
{
    record("get_device", id, NULL);
    if (strcmp(id, "tv") != 0)
        return err_body(404, "unknown device", body);
    *body = json_tokener_parse("{\"id\":\"tv\",\"actions\":[]}");
    return 200;
}

static int fk_device_state(void *ud, const char *id, json_object **body)
{
    record("get_device_state", id, NULL);
    if (strcmp(id, "tv") != 0)
        return err_body(404, "unknown device", body);
    *body = json_tokener_parse("{\"power\":true}");
    return 200;
}

static int fk_action(void *ud, const char *id, json_object *req, json_object **body)
{
    record("post_action", id, req);
    if (strcmp(id, "tv") != 0)
        return err_body(404, "unknown device", body);
    *body = json_tokener_parse("{\"command_id\":\"c1\",\"status\":\"sent\",\"state\":{}}");
    return 200;
}

static int fk_scen_state(void *ud, json_object **body)
{
    record("get_scenario_state", NULL, NULL);
    *body = json_tokener_parse("{\"scenario_id\":\"movie\",\"status\":\"active\"}");
    return 200;
}

static int fk_scenarios(void *ud, json_object **body)
{
    record("get_scenarios", NULL, NULL);
    *body = json_tokener_parse("[{\"id\":\"movie\",\"name\":\"Movie\",\"devices\":[\"tv\"]}]");
    return 200;
}

static int fk_switch(void *ud, json_object *req, json_object **body)
{
    json_object *v;
    const char *id;
    record("post_scenario_switch", NULL, req);
    json_object_object_get_ex(req, "id", &v);
    id = json_object_get_string(v);
    if (strcmp(id, "busy") == 0)
        return err_body(409, "a switch is running", body);
    if (strcmp(id, "movie") != 0)
        return err_body(404, "unknown scenario", body);
    *body = json_tokener_parse(
        "{\"success\":true,\"scenario_id\":\"movie\",\"shared_devices\":[],\"failed_steps\":[]}");
    return 200;
}

static int fk_shutdown(void *ud, json_object **body)
{
    record("post_scenario_shutdown", NULL, NULL);
    *body = json_tokener_parse(
        "{\"success\":true,\"scenario_id\":null,\"shared_devices\":[],\"failed_steps\":[]}");
    return 200;
}

static int fk_history(void *ud, const char *id, int limit, json_object **body)
{
    record("get_state_history", id, NULL);
    fk.limit = limit;
    *body = json_tokener_parse("[{\"ts\":\"2026-01-01T00:00:00.000Z\",\"state\":{}}]");
    return 200;
}

static int fk_logs(void *ud, const char *status, const char *dev, int limit, json_object **body)
{
    record("get_command_logs", NULL, NULL);
    snprintf(fk.status, sizeof(fk.status), "%s", status ? status : "-");
    snprintf(fk.dev, sizeof(fk.dev), "%s", dev ? dev : "-");
    fk.limit = limit;
    *body = json_object_new_array();
    return 200;
}

static int fk_conn(void *ud, const char *id, int limit, json_object **body)
{
    record("get_connection_history", id, NULL);
    fk.limit = limit;
    *body = json_tokener_parse("[{\"ts\":\"2026-01-01T00:00:00.000Z\",\"event\":\"online\"}]");
    return 200;
}

static int fk_health(void *ud, json_object **body)
{
    record("get_health", NULL, NULL);
    *body = json_tokener_parse(
        "{\"status\":\"ok\",\"mqtt\":\"connected\",\"db\":\"ok\",\"uptime_s\":1}");
    return 200;
}

static int fk_metrics(void *ud, char **text)
{
    record("get_metrics", NULL, NULL);
    *text = strdup("wbmb_messages_received_total 7\n");
    return 200;
}

static json_object *fk_sse_init(void *ud)
{
    record("sse_init", NULL, NULL);
    return json_tokener_parse("{\"devices\":[],\"scenario\":{}}");
}

static const struct http_backend fake = {
    NULL,          fk_devices,   fk_device, fk_device_state, fk_action,
    fk_scen_state, fk_scenarios, fk_switch, fk_shutdown,     fk_history,
    fk_logs,       fk_conn,      fk_health, fk_metrics,      fk_sse_init,
};

/* ---- helpers ----------------------------------------------------------- */

static struct http_server *srv, *srv_tok;
static unsigned port, port_tok;
static char tmpdir[256];
static char resp_body[1 << 16];
static char resp_head[1 << 14];

/* Runs curl with extra args against path on p; returns the status code (0
 * when curl got no answer) and leaves the body and headers in resp_*. */
static int curl_p(unsigned p, const char *args, const char *path)
{
    char cmd[2048], file[300];
    FILE *f;
    int code = -1;
    size_t n;

    snprintf(cmd, sizeof(cmd),
             "curl -s -m 10 --path-as-is -o %s/body -D %s/head -w '%%{http_code}' %s "
             "'http://127.0.0.1:%u%s'",
             tmpdir, tmpdir, args, p, path);
    f = popen(cmd, "r");
    assert_non_null(f);
    if (fscanf(f, "%d", &code) != 1)
        code = -1;
    pclose(f);
    snprintf(file, sizeof(file), "%s/body", tmpdir);
    resp_body[0] = '\0';
    f = fopen(file, "r");
    if (f) {
        n = fread(resp_body, 1, sizeof(resp_body) - 1, f);
        resp_body[n] = '\0';
        fclose(f);
        unlink(file);
    }
    snprintf(file, sizeof(file), "%s/head", tmpdir);
    resp_head[0] = '\0';
    f = fopen(file, "r");
    if (f) {
        n = fread(resp_head, 1, sizeof(resp_head) - 1, f);
        resp_head[n] = '\0';
        fclose(f);
        unlink(file);
    }
    return code;
}

static int curl(const char *args, const char *path)
{
    return curl_p(port, args, path);
}

/* The body must be {"error": "<string>"} and nothing else. */
static void assert_error_body(void)
{
    json_object *o = json_tokener_parse(resp_body), *v;
    assert_non_null(o);
    assert_true(json_object_is_type(o, json_type_object));
    assert_int_equal(json_object_object_length(o), 1);
    assert_true(json_object_object_get_ex(o, "error", &v));
    assert_true(json_object_is_type(v, json_type_string));
    json_object_put(o);
    assert_non_null(strcasestr(resp_head, "Content-Type: application/json"));
}

static int calls(void)
{
    int n;
    pthread_mutex_lock(&fk_lock);
    n = fk.calls;
    pthread_mutex_unlock(&fk_lock);
    return n;
}

static void write_file(const char *name, const char *data, size_t n)
{
    char path[300];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static int connect_to(unsigned p, int rcvbuf)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)p);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early (huge header): fine */
        s += w;
        n -= (size_t)w;
    }
}

/* A growing receive buffer of one raw connection. */
struct rx {
    int fd;
    char *buf;
    size_t len, cap;
};

/* Reads until needle appears (searching from *from) or the deadline; returns
 * the offset just after the needle, or (size_t)-1. */
static size_t rx_until(struct rx *r, size_t from, const char *needle, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    for (;;) {
        char *hit;
        if (r->buf && from < r->len) {
            hit = memmem(r->buf + from, r->len - from, needle, strlen(needle));
            if (hit)
                return (size_t)(hit - r->buf) + strlen(needle);
        }
        int64_t left = deadline - util_mono_ms();
        if (left <= 0)
            return (size_t)-1;
        struct pollfd pfd = {r->fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        if (r->cap - r->len < 65536) {
            r->cap = r->cap ? r->cap * 2 : 131072;
            r->buf = realloc(r->buf, r->cap);
            assert_non_null(r->buf);
        }
        ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
        if (n <= 0)
            return (size_t)-1;
        r->len += (size_t)n;
    }
}

static void rx_close(struct rx *r)
{
    close(r->fd);
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

static uint64_t stat_clients(void)
{
    struct http_stats st;
    http_get_stats(srv, &st);
    return st.sse_clients;
}

/* Both counts: http_get_stats() (under the SSE lock) and http_sse_clients()
 * (lock-free) agree once the registry settles. */
static void wait_clients(uint64_t n)
{
    int64_t deadline = util_mono_ms() + 10000;
    while ((stat_clients() != n || http_sse_clients(srv) != n) && util_mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(stat_clients(), n);
    assert_int_equal(http_sse_clients(srv), n);
}

/* ---- tests ------------------------------------------------------------- */

static void test_gets(void **state)
{
    json_object *o;
    assert_int_equal(curl("", "/health"), 200);
    assert_non_null(strstr(resp_body, "\"mqtt\":\"connected\""));
    assert_non_null(strcasestr(resp_head, "Content-Type: application/json"));
    assert_int_equal(curl("", "/devices"), 200);
    o = json_tokener_parse(resp_body);
    assert_true(json_object_is_type(o, json_type_array));
    json_object_put(o);
    assert_int_equal(curl("", "/devices/tv"), 200);
    assert_string_equal(fk.last, "get_device");
    assert_string_equal(fk.id, "tv");
    assert_int_equal(curl("", "/devices/tv/state"), 200);
    assert_string_equal(fk.last, "get_device_state");
    assert_string_equal(resp_body, "{\"power\":true}");
    assert_int_equal(curl("", "/scenario/state"), 200);
    assert_string_equal(fk.last, "get_scenario_state");
    assert_int_equal(curl("", "/scenarios"), 200);
    assert_string_equal(fk.last, "get_scenarios");
    assert_int_equal(curl("", "/state-history/tv?limit=50"), 200);
    assert_string_equal(fk.last, "get_state_history");
    assert_int_equal(fk.limit, 50);
    assert_int_equal(curl("", "/state-history/tv"), 200);
    assert_int_equal(fk.limit, 100);
    assert_int_equal(curl("", "/device-connection-history/tv?limit=1000"), 200);
    assert_string_equal(fk.last, "get_connection_history");
    assert_int_equal(fk.limit, 1000);
    assert_int_equal(curl("", "/command-logs?status=failed&device_id=tv&limit=3"), 200);
    assert_string_equal(fk.last, "get_command_logs");
    assert_string_equal(fk.status, "failed");
    assert_string_equal(fk.dev, "tv");
    assert_int_equal(fk.limit, 3);
    assert_int_equal(curl("", "/command-logs?status=&device_id="), 200);
    assert_string_equal(fk.status, "-");
    assert_string_equal(fk.dev, "-");
    assert_int_equal(curl("", "/metrics"), 200);
    assert_non_null(strstr(resp_body, "wbmb_messages_received_total 7\n"));
    assert_non_null(strstr(resp_body, "wbmb_http_requests_total "));
    assert_non_null(strstr(resp_body, "wbmb_http_responses_total{class=\"4xx\"} "));
    assert_non_null(strstr(resp_body, "wbmb_sse_clients "));
    assert_non_null(strstr(resp_body, "wbmb_sse_dropped_total "));
    assert_non_null(strcasestr(resp_head, "Content-Type: text/plain"));
    assert_int_equal(curl("", "/"), 200);
    assert_non_null(strcasestr(resp_head, "Content-Type: text/html"));
    assert_non_null(strcasestr(resp_body, "<!doctype html>"));
    assert_int_equal(curl("-I", "/health"), 200); /* HEAD */
}

static void test_posts(void **state)
{
    assert_int_equal(curl("-X POST -d '{\"action\":\"set_volume\",\"params\":{\"level\":30}}'",
                          "/devices/tv/action"),
                     200);
    assert_string_equal(fk.last, "post_action");
    assert_string_equal(fk.id, "tv");
    assert_string_equal(fk.req, "{\"action\":\"set_volume\",\"params\":{\"level\":30}}");
    assert_non_null(strstr(resp_body, "\"command_id\":\"c1\""));
    assert_int_equal(curl("-X POST -d '{\"action\":\"power_on\"}'", "/devices/tv/action"), 200);
    assert_int_equal(curl("-X POST -d '{\"id\":\"movie\"}'", "/scenario/switch"), 200);
    assert_string_equal(fk.last, "post_scenario_switch");
    assert_string_equal(fk.req, "{\"id\":\"movie\"}");
    assert_non_null(strstr(resp_body, "\"success\":true"));
    assert_int_equal(curl("-X POST", "/scenario/shutdown"), 200);
    assert_string_equal(fk.last, "post_scenario_shutdown");
    assert_int_equal(curl("-X POST -d '{}'", "/scenario/shutdown"), 200);
}

static void test_not_found(void **state)
{
    static const char *paths[] = {
        "/nope",           "/devices/",           "/devices//state",    "/health/",
        "/devices/TV",     "/devices/tv/state/x", "/devices/../health", "/devices/%2e%2e/health",
        "/devices/%2e%2e", "/devices/tv%2fstate", "//health",           "/state-history/",
        "/devices/a-b",    "/scenario",           "/events/x",
    };
    size_t i;
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        int before = calls();
        int code = curl("", paths[i]);
        if (code != 404)
            fail_msg("%s gave %d", paths[i], code);
        assert_error_body();
        assert_int_equal(calls(), before); /* the backend was never asked */
    }
    /* unknown device: the backend's 404 passes through */
    assert_int_equal(curl("", "/devices/nope"), 404);
    assert_error_body();
    assert_int_equal(curl("", "/devices/nope/state"), 404);
    assert_int_equal(curl("-X POST -d '{\"action\":\"x\"}'", "/devices/nope/action"), 404);
    assert_int_equal(curl("-X POST -d '{\"id\":\"other\"}'", "/scenario/switch"), 404);
    assert_error_body();
    assert_int_equal(curl("-X POST -d '{\"id\":\"../x\"}'", "/scenario/switch"), 404);
}

static void test_bad_requests(void **state)
{
    static const char *bodies[] = {
        "",                                  /* no body */
        "{",                                 /* truncated */
        "[1]",                               /* not an object */
        "\"action\"",                        /* not an object */
        "{\"action\":\"x\"} x",              /* trailing garbage */
        "{\"action\":\"x\"}{}",              /* two objects */
        "{'action':'x'}",                    /* not strict JSON */
        "{\"params\":{}}",                   /* missing action */
        "{\"action\":5}",                    /* wrong type */
        "{\"action\":\"x\",\"params\":[1]}", /* params not an object */
    };
    char deep[2048], args[2400];
    size_t i;
    int before = calls();
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        write_file("req.json", bodies[i], strlen(bodies[i]));
        snprintf(args, sizeof(args), "-X POST --data-binary @%s/req.json", tmpdir);
        int code = curl(args, "/devices/tv/action");
        if (code != 400)
            fail_msg("body '%s' gave %d", bodies[i], code);
        assert_error_body();
    }
    /* nesting deeper than the tokenizer's limit */
    strcpy(deep, "{\"action\":\"x\",\"params\":{\"a\":");
    for (i = 0; i < 100; i++)
        strcat(deep, "[");
    for (i = 0; i < 100; i++)
        strcat(deep, "]");
    strcat(deep, "}}");
    write_file("req.json", deep, strlen(deep));
    snprintf(args, sizeof(args), "-X POST --data-binary @%s/req.json", tmpdir);
    assert_int_equal(curl(args, "/devices/tv/action"), 400);
    assert_int_equal(curl("-X POST -d '{\"id\":7}'", "/scenario/switch"), 400);
    assert_int_equal(curl("-X POST -d '{}'", "/scenario/switch"), 400);
    assert_int_equal(curl("-X POST -d '[]'", "/scenario/shutdown"), 400);
    assert_int_equal(calls(), before);

    static const char *queries[] = {
        "/state-history/tv?limit=0",     "/state-history/tv?limit=1001",
        "/state-history/tv?limit=abc",   "/state-history/tv?limit=-1",
        "/state-history/tv?limit=10x",   "/state-history/tv?limit=99999999999999999999",
        "/command-logs?status=bogus",    "/command-logs?limit=0",
        "/command-logs?device_id=A%20B", "/device-connection-history/tv?limit=1.5",
    };
    for (i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        int code = curl("", queries[i]);
        if (code != 400)
            fail_msg("%s gave %d", queries[i], code);
        assert_error_body();
    }
    assert_int_equal(calls(), before);
}

static void test_methods(void **state)
{
    assert_int_equal(curl("-X POST -d '{}'", "/health"), 405);
    assert_error_body();
    assert_non_null(strcasestr(resp_head, "Allow: GET, HEAD"));
    assert_int_equal(curl("-X DELETE", "/devices/tv"), 405);
    assert_int_equal(curl("", "/devices/tv/action"), 405);
    assert_non_null(strcasestr(resp_head, "Allow: POST"));
    assert_int_equal(curl("", "/scenario/switch"), 405);
    assert_int_equal(curl("-X PUT -d '{}'", "/scenario/shutdown"), 405);
    assert_int_equal(curl("-X POST", "/events"), 405);
}

static void test_conflict(void **state)
{
    assert_int_equal(curl("-X POST -d '{\"id\":\"busy\"}'", "/scenario/switch"), 409);
    assert_error_body();
}

static void test_too_large(void **state)
{
    size_t n = 1024 * 1024, i;
    char *big = malloc(n), args[600];
    int before = calls();
    assert_non_null(big);
    /* a valid JSON object, so only its size is wrong */
    memset(big, ' ', n);
    memcpy(big, "{\"action\":\"x\"}", 14);
    write_file("big.json", big, n);
    snprintf(args, sizeof(args), "-X POST --data-binary @%s/big.json", tmpdir);
    assert_int_equal(curl(args, "/devices/tv/action"), 413);
    assert_error_body();
    /* without Content-Length (chunked): the rest of the body is read and
     * discarded (libmicrohttpd cannot answer mid-body), then 413 */
    snprintf(args, sizeof(args),
             "-X POST -H 'Transfer-Encoding: chunked' --data-binary @%s/big.json", tmpdir);
    assert_int_equal(curl(args, "/devices/tv/action"), 413);
    assert_error_body();
    /* exactly the limit is accepted as far as size goes (then 200 here) */
    for (i = 14; i < HTTP_MAX_BODY; i++)
        big[i] = ' ';
    write_file("max.json", big, HTTP_MAX_BODY);
    snprintf(args, sizeof(args), "-X POST --data-binary @%s/max.json", tmpdir);
    assert_int_equal(curl(args, "/devices/tv/action"), 200);
    assert_int_equal(calls(), before + 1);
    free(big);
    assert_int_equal(curl("", "/health"), 200);
}

static void test_auth(void **state)
{
    int before = calls();
    assert_int_equal(curl_p(port_tok, "-X POST -d '{\"id\":\"movie\"}'", "/scenario/switch"), 401);
    assert_error_body();
    assert_null(strstr(resp_body, "s3cret"));
    assert_int_equal(
        curl_p(port_tok, "-X POST -H 'Authorization: Bearer wrong' -d '{}'", "/scenario/shutdown"),
        401);
    assert_int_equal(curl_p(port_tok, "-X POST -H 'Authorization: Bearer s3cret0' -d '{}'",
                            "/scenario/shutdown"),
                     401);
    assert_int_equal(
        curl_p(port_tok, "-X POST -H 'Authorization: Bearer s3cre' -d '{}'", "/scenario/shutdown"),
        401);
    assert_int_equal(
        curl_p(port_tok, "-X POST -H 'Authorization: Basic s3cret' -d '{}'", "/scenario/shutdown"),
        401);
    assert_int_equal(curl_p(port_tok, "-X POST -d '{\"action\":\"x\"}'", "/devices/tv/action"),
                     401);
    assert_int_equal(calls(), before);
    assert_int_equal(curl_p(port_tok,
                            "-X POST -H 'Authorization: Bearer s3cret' -d '{\"id\":\"movie\"}'",
                            "/scenario/switch"),
                     200);
    assert_int_equal(curl_p(port_tok,
                            "-X POST -H 'Authorization: Bearer s3cret' -d '{\"action\":\"x\"}'",
                            "/devices/tv/action"),
                     200);
    /* GETs need no token */
    assert_int_equal(curl_p(port_tok, "", "/devices"), 200);
    assert_int_equal(curl_p(port_tok, "", "/health"), 200);
}

static void test_sse(void **state)
{
    struct rx a = {0}, slow = {0};
    struct http_stats st;
    json_object *ev;
    char pad[4001], needle[64];
    size_t at;
    int seq = 0;
    int64_t deadline;
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";

    /* short heartbeats: a closed client is noticed at the next write */
    http_sse_heartbeat_ms = 200;
    a.fd = connect_to(port, 0);
    send_all(a.fd, req, sizeof(req) - 1);
    at = rx_until(&a, 0, "\r\n\r\n", 5000);
    assert_true(at != (size_t)-1);
    assert_non_null(strcasestr(a.buf, "Content-Type: text/event-stream"));
    assert_non_null(strcasestr(a.buf, "Cache-Control: no-cache"));
    at = rx_until(&a, at, "event: init\ndata: {\"devices\":[],\"scenario\":{}}\n\n", 5000);
    assert_true(at != (size_t)-1);
    wait_clients(1);

    ev = json_tokener_parse(
        "{\"device_id\":\"tv\",\"changed\":[\"power\"],\"state\":{\"t\":\"a\\nb\"}}");
    http_broadcast(srv, "state", ev);
    json_object_put(ev);
    at = rx_until(&a, at,
                  "event: state\ndata: {\"device_id\":\"tv\",\"changed\":[\"power\"],"
                  "\"state\":{\"t\":\"a\\nb\"}}\n\n",
                  5000);
    assert_true(at != (size_t)-1);

    /* A client that never reads, with a tiny receive buffer, is dropped; the
     * reading client keeps receiving every event. */
    slow.fd = connect_to(port, 1024);
    send_all(slow.fd, req, sizeof(req) - 1);
    wait_clients(2);
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    deadline = util_mono_ms() + 30000;
    do {
        int k;
        for (k = 0; k < 16; k++) {
            ev = json_object_new_object();
            json_object_object_add(ev, "pad", json_object_new_string(pad));
            json_object_object_add(ev, "seq", json_object_new_int(++seq));
            http_broadcast(srv, "state", ev);
            json_object_put(ev);
        }
        snprintf(needle, sizeof(needle), "\"seq\":%d}", seq);
        at = rx_until(&a, at, needle, 5000);
        assert_true(at != (size_t)-1);
        http_get_stats(srv, &st);
    } while (st.sse_dropped == 0 && util_mono_ms() < deadline);
    assert_int_equal(st.sse_dropped, 1);
    wait_clients(1);
    ev = json_tokener_parse("{\"last\":true}");
    http_broadcast(srv, "scenario", ev);
    json_object_put(ev);
    assert_true(rx_until(&a, at, "event: scenario\ndata: {\"last\":true}\n\n", 5000) != (size_t)-1);
    /* the dropped client's socket is closed by the server: its FIN comes
     * after what the server had queued, which trickles through the tiny
     * window (7-35 s on a loaded machine, and under qemu-user): a wider
     * window now, and a generous deadline. */
    {
        char tmp[65536];
        ssize_t n;
        int wide = 256 * 1024;
        (void)setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &wide, sizeof(wide));
        deadline = util_mono_ms() + 90000;
        do {
            struct pollfd pfd = {slow.fd, POLLIN, 0};
            poll(&pfd, 1, 100);
            n = recv(slow.fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        } while (n != 0 && !(n < 0 && errno != EAGAIN) && util_mono_ms() < deadline);
        assert_true(n <= 0 && !(n < 0 && errno == EAGAIN));
    }
    http_get_stats(srv, &st);
    assert_true(st.events_broadcast >= (uint64_t)seq + 2);
    rx_close(&slow);
    rx_close(&a);
    wait_clients(0);
}

/* http_sse_clients() counts a connected client, without a lock. */
static void test_sse_clients(void **state)
{
    struct rx a = {0};
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(http_sse_clients(NULL), 0);
    assert_int_equal(http_sse_clients(srv), 0);
    a.fd = connect_to(port, 0);
    send_all(a.fd, req, sizeof(req) - 1);
    assert_true(rx_until(&a, 0, "event: init", 5000) != (size_t)-1);
    wait_clients(1);
    uint64_t n = lockstat_thread();
    assert_int_equal(http_sse_clients(srv), 1);
    assert_int_equal(lockstat_thread() - n, 0);
#ifndef NDEBUG
    n = lockstat_thread();
    assert_int_equal(stat_clients(), 1);
    assert_int_equal(lockstat_thread() - n, 1); /* http_get_stats: the SSE lock */
#endif
    rx_close(&a);
    wait_clients(0);
}

static void test_sse_heartbeat(void **state)
{
    struct rx a = {0};
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    a.fd = connect_to(port, 0);
    send_all(a.fd, req, sizeof(req) - 1);
    assert_true(rx_until(&a, 0, "event: init", 5000) != (size_t)-1);
    assert_true(rx_until(&a, 0, ": ping\n\n", 5000) != (size_t)-1);
    rx_close(&a);
    wait_clients(0);
    http_sse_heartbeat_ms = 15000;
}

static void test_huge_header(void **state)
{
    size_t n = 200 * 1024;
    char *req = malloc(n + 128);
    struct rx r = {0};
    assert_non_null(req);
    strcpy(req, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + strlen(req), 'a', n);
    strcpy(req + strlen("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ") + n, "\r\n\r\n");
    r.fd = connect_to(port, 0);
    send_all(r.fd, req, strlen(req));
    /* either a 4xx status line or a closed connection, never a crash */
    if (rx_until(&r, 0, "\r\n", 5000) != (size_t)-1)
        assert_memory_equal(r.buf, "HTTP/1.1 4", 10);
    rx_close(&r);
    free(req);
    assert_int_equal(curl("", "/health"), 200);
}

static void test_binds_loopback_only(void **state)
{
    struct ifaddrs *ifs, *i;
    char err[256];
    struct http_options bad = {"0.0.0.0:x", NULL};
    assert_null(http_start(&bad, &fake, err, sizeof(err)));
    bad.listen = "nohost:80";
    assert_null(http_start(&bad, &fake, err, sizeof(err)));
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%u", port);
    bad.listen = taken;
    assert_null(http_start(&bad, &fake, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot listen"));

    assert_int_equal(getifaddrs(&ifs), 0);
    for (i = ifs; i; i = i->ifa_next) {
        struct sockaddr_in sa;
        int fd;
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        memcpy(&sa, i->ifa_addr, sizeof(sa));
        if ((ntohl(sa.sin_addr.s_addr) >> 24) == 127)
            continue;
        sa.sin_port = htons((uint16_t)port);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);
    }
    freeifaddrs(ifs);
}

static void test_stop_with_clients(void **state)
{
    /* A server with a connected SSE client and a half-sent request stops
     * promptly. */
    struct http_options o = {"127.0.0.1:0", NULL};
    char err[256];
    struct http_server *h = http_start(&o, &fake, err, sizeof(err));
    struct rx a = {0}, b = {0};
    int64_t t0;
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_non_null(h);
    a.fd = connect_to(http_port(h), 0);
    send_all(a.fd, req, sizeof(req) - 1);
    assert_true(rx_until(&a, 0, "event: init", 5000) != (size_t)-1);
    b.fd = connect_to(http_port(h), 0);
    send_all(b.fd, "GET /hea", 8);
    t0 = util_mono_ms();
    http_stop(h);
    assert_true(util_mono_ms() - t0 < 3000);
    rx_close(&a);
    rx_close(&b);
    http_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gets),
        cmocka_unit_test(test_posts),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_conflict),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_sse),
        cmocka_unit_test(test_sse_clients),
        cmocka_unit_test(test_sse_heartbeat),
        cmocka_unit_test(test_huge_header),
        cmocka_unit_test(test_binds_loopback_only),
        cmocka_unit_test(test_stop_with_clients),
    };
    struct http_options o = {"127.0.0.1:0", NULL}, ot = {"localhost:0", "s3cret"};
    char err[256];
    int rc;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/wbmb-http-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    srv = http_start(&o, &fake, err, sizeof(err));
    srv_tok = http_start(&ot, &fake, err, sizeof(err));
    if (!srv || !srv_tok) {
        fprintf(stderr, "http_start: %s\n", err);
        return 1;
    }
    port = http_port(srv);
    port_tok = http_port(srv_tok);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    http_stop(srv);
    http_stop(srv_tok);
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            rc = rc ? rc : 1;
    }
    return rc;
}

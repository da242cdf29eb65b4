/*
 * http.c - the HTTP API of CONTRACT §6 on libmicrohttpd: listening socket,
 * routing, request limits, bearer-token check, JSON bodies and error answers.
 *
 * libmicrohttpd runs one internal thread that accepts and one thread per
 * connection (MHD_USE_THREAD_PER_CONNECTION), so a blocking backend call or a
 * long-lived SSE stream (http_sse.c) never holds up another request. The
 * module owns no device state: every answer comes from the struct
 * http_backend callbacks. Invariants:
 *   - every answer goes through queue_answer(), which counts it; every error
 *     body is {"error": "<fixed text>"} and never echoes request input;
 *   - path ids must match [a-z0-9_]{1,64}; the raw path is matched as is,
 *     never %-decoded nor normalised, so "..", "%2e%2e", "%2f" and other
 *     tricks simply do not match (404);
 *   - request bodies are held only for POST routes and never exceed
 *     HTTP_MAX_BODY;
 *   - a request refused before its body is read (401, 404, 405, 413) has
 *     its body read and discarded, up to DRAIN_MAX, before the answer is
 *     queued. libmicrohttpd closes a connection whose body was not read
 *     once the answer is sent, and a close with unread bytes in the socket
 *     makes the kernel send a reset, which can destroy the answer before the
 *     client (still uploading) reads it. Only a body announced above
 *     DRAIN_MAX is answered at once (a client that sent "Expect:
 *     100-continue" waits for it and sends nothing), and a chunked body
 *     still going at DRAIN_MAX has its connection closed.
 */
#include "wbmb/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_body.h"
#include "http/http_guard.h"
#include "http/http_page.h"
#include "http/mhd_api.h"
#include "http/http_sse.h"
#include "wbmb/log.h"

#define CONN_LIMIT 64
#define CONN_TIMEOUT_S 30
#define CONN_MEMORY (64 * 1024) /* per connection: headers and read buffer */
#define ID_MAX 64
#define TOKEN_MAX 4096
#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define DRAIN_MAX (4 * 1024 * 1024) /* refused bodies read and discarded up to this */

/* Total time a connection may take to send a request's headers (see
 * http_guard.h); a variable so tests can shorten it. */
int http_header_deadline_ms = 10000;

struct http_server {
    struct MHD_Daemon *mhd;
    struct http_backend be;
    struct http_sse *sse;
    struct http_guard *guard;      /* header deadline against slow-loris clients */
    char *token;                   /* NULL = no auth */
    uint64_t requests, r4xx, r5xx; /* updated with __atomic builtins */
};

/* ---- routes ------------------------------------------------------------ */

enum route_id {
    R_PAGE,
    R_HEALTH,
    R_METRICS,
    R_DEVICES,
    R_DEVICE,
    R_DEVICE_STATE,
    R_DEVICE_ACTION,
    R_SCEN_STATE,
    R_SCENARIOS,
    R_SCEN_SWITCH,
    R_SCEN_SHUTDOWN,
    R_STATE_HISTORY,
    R_COMMAND_LOGS,
    R_CONN_HISTORY,
    R_EVENTS,
};

/* A pattern is the path split on '/'; "*" stands for one id segment. */
struct route {
    enum route_id id;
    bool post;
    const char *seg[3];
};

static const struct route routes[] = {
    {R_PAGE, false, {NULL}},
    {R_HEALTH, false, {"health"}},
    {R_METRICS, false, {"metrics"}},
    {R_DEVICES, false, {"devices"}},
    {R_DEVICE, false, {"devices", "*"}},
    {R_DEVICE_STATE, false, {"devices", "*", "state"}},
    {R_DEVICE_ACTION, true, {"devices", "*", "action"}},
    {R_SCEN_STATE, false, {"scenario", "state"}},
    {R_SCENARIOS, false, {"scenarios"}},
    {R_SCEN_SWITCH, true, {"scenario", "switch"}},
    {R_SCEN_SHUTDOWN, true, {"scenario", "shutdown"}},
    {R_STATE_HISTORY, false, {"state-history", "*"}},
    {R_COMMAND_LOGS, false, {"command-logs"}},
    {R_CONN_HISTORY, false, {"device-connection-history", "*"}},
    {R_EVENTS, false, {"events"}},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static bool id_ok(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || n > ID_MAX)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* Matches url against one pattern; on success copies the id segment (if
 * any) into id. Empty segments ("//", a trailing "/") never match. */
static bool route_match(const struct route *r, const char *url, char id[ID_MAX + 1])
{
    const char *p = url;
    size_t i;
    if (*p != '/')
        return false;
    p++;
    if (!r->seg[0])
        return *p == '\0';
    for (i = 0; i < 3 && r->seg[i]; i++) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (strcmp(r->seg[i], "*") == 0) {
            if (!id_ok(p, n))
                return false;
            memcpy(id, p, n);
            id[n] = '\0';
        } else if (strlen(r->seg[i]) != n || memcmp(r->seg[i], p, n) != 0) {
            return false;
        }
        p += n;
        if (i + 1 < 3 && r->seg[i + 1]) {
            if (*p != '/')
                return false;
            p++;
        }
    }
    return *p == '\0';
}

/* ---- answers ----------------------------------------------------------- */

static enum MHD_Result queue_answer(struct http_server *h, struct MHD_Connection *c, int status,
                                    struct MHD_Response *r)
{
    enum MHD_Result ret;
    if (!r) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r = mhd->create_response_from_buffer(sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        mhd->add_response_header(r, "Content-Type", "application/json");
    }
    if (status >= 400 && status < 500)
        __atomic_fetch_add(&h->r4xx, 1, __ATOMIC_RELAXED);
    else if (status >= 500)
        __atomic_fetch_add(&h->r5xx, 1, __ATOMIC_RELAXED);
    ret = mhd->queue_response(c, (unsigned int)status, r);
    mhd->destroy_response(r);
    return ret;
}

static struct MHD_Response *text_response(const char *text, size_t len, const char *ctype)
{
    struct MHD_Response *r =
        mhd->create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return NULL;
    if (mhd->add_response_header(r, "Content-Type", ctype) != MHD_YES ||
        mhd->add_response_header(r, "Cache-Control", "no-store") != MHD_YES) {
        mhd->destroy_response(r);
        return NULL;
    }
    return r;
}

/* Answers with body (consumed; NULL = internal error). */
static enum MHD_Result answer_json(struct http_server *h, struct MHD_Connection *c, int status,
                                   json_object *body)
{
    const char *s;
    size_t n;
    struct MHD_Response *r = NULL;
    if (!body || status < 100 || status > 599) {
        json_object_put(body);
        log_error("http: backend gave no answer (status %d)", status);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body = json_object_new_object();
        if (body)
            json_object_object_add(body, "error", json_object_new_string("internal error"));
    }
    if (body) {
        s = json_object_to_json_string_length(
            body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (s)
            r = text_response(s, n, "application/json");
        json_object_put(body);
    }
    return queue_answer(h, c, status, r);
}

/* msg is a fixed text of this file, never request input. */
static enum MHD_Result answer_error(struct http_server *h, struct MHD_Connection *c, int status,
                                    const char *msg)
{
    json_object *o = json_object_new_object();
    if (o)
        json_object_object_add(o, "error", json_object_new_string(msg));
    return answer_json(h, c, status, o);
}

static enum MHD_Result answer_405(struct http_server *h, struct MHD_Connection *c,
                                  const char *allow)
{
    static const char body[] = "{\"error\":\"method not allowed\"}";
    struct MHD_Response *r = text_response(body, sizeof(body) - 1, "application/json");
    if (r && mhd->add_response_header(r, "Allow", allow) != MHD_YES) {
        mhd->destroy_response(r);
        r = NULL;
    }
    return queue_answer(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
}

static enum MHD_Result answer_401(struct http_server *h, struct MHD_Connection *c)
{
    static const char body[] = "{\"error\":\"unauthorized\"}";
    struct MHD_Response *r = text_response(body, sizeof(body) - 1, "application/json");
    if (r && mhd->add_response_header(r, "WWW-Authenticate", "Bearer") != MHD_YES) {
        mhd->destroy_response(r);
        r = NULL;
    }
    return queue_answer(h, c, MHD_HTTP_UNAUTHORIZED, r);
}

/* 413 with "Connection: close": the client should not reuse a connection
 * that just carried an oversized upload. */
static enum MHD_Result answer_413(struct http_server *h, struct MHD_Connection *c)
{
    static const char body[] = "{\"error\":\"request body too large\"}";
    struct MHD_Response *r = text_response(body, sizeof(body) - 1, "application/json");
    if (r && mhd->add_response_header(r, "Connection", "close") != MHD_YES) {
        mhd->destroy_response(r);
        r = NULL;
    }
    return queue_answer(h, c, MHD_HTTP_CONTENT_TOO_LARGE, r);
}

static enum MHD_Result answer_page(struct http_server *h, struct MHD_Connection *c)
{
    struct MHD_Response *r = mhd->create_response_from_buffer(
        http_page_index_html_len, (void *)http_page_index_html, MHD_RESPMEM_PERSISTENT);
    if (r && (mhd->add_response_header(r, "Content-Type", "text/html; charset=utf-8") != MHD_YES ||
              mhd->add_response_header(r, "Cache-Control", "no-cache") != MHD_YES ||
              mhd->add_response_header(r, "X-Content-Type-Options", "nosniff") != MHD_YES ||
              mhd->add_response_header(r, "Content-Security-Policy",
                                       "default-src 'self'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; img-src data:") != MHD_YES)) {
        mhd->destroy_response(r);
        r = NULL;
    }
    return queue_answer(h, c, MHD_HTTP_OK, r);
}

static enum MHD_Result answer_metrics(struct http_server *h, struct MHD_Connection *c)
{
    char *core = NULL, *all = NULL;
    struct http_stats st;
    struct MHD_Response *r = NULL;
    int status = h->be.get_metrics ? h->be.get_metrics(h->be.ud, &core) : 200;
    int n;

    http_get_stats(h, &st);
    n = asprintf(&all,
                 "%s"
                 "# HELP wbmb_http_requests_total HTTP requests received.\n"
                 "# TYPE wbmb_http_requests_total counter\n"
                 "wbmb_http_requests_total %llu\n"
                 "# HELP wbmb_http_responses_total HTTP error answers by class.\n"
                 "# TYPE wbmb_http_responses_total counter\n"
                 "wbmb_http_responses_total{class=\"4xx\"} %llu\n"
                 "wbmb_http_responses_total{class=\"5xx\"} %llu\n"
                 "# HELP wbmb_sse_clients Connected Server-Sent Events clients.\n"
                 "# TYPE wbmb_sse_clients gauge\n"
                 "wbmb_sse_clients %llu\n"
                 "# HELP wbmb_sse_dropped_total SSE clients dropped for a full buffer.\n"
                 "# TYPE wbmb_sse_dropped_total counter\n"
                 "wbmb_sse_dropped_total %llu\n"
                 "# HELP wbmb_sse_events_total Events broadcast to SSE clients.\n"
                 "# TYPE wbmb_sse_events_total counter\n"
                 "wbmb_sse_events_total %llu\n"
                 "# HELP wbmb_http_slow_clients_cut_total Connections cut for sending headers "
                 "too slowly.\n"
                 "# TYPE wbmb_http_slow_clients_cut_total counter\n"
                 "wbmb_http_slow_clients_cut_total %llu\n",
                 core ? core : "", (unsigned long long)st.requests,
                 (unsigned long long)st.responses_4xx, (unsigned long long)st.responses_5xx,
                 (unsigned long long)st.sse_clients, (unsigned long long)st.sse_dropped,
                 (unsigned long long)st.events_broadcast,
                 (unsigned long long)http_guard_dropped(h->guard));
    free(core);
    if (n < 0)
        return queue_answer(h, c, 500, NULL);
    r = text_response(all, (size_t)n, "text/plain; version=0.0.4; charset=utf-8");
    free(all);
    return queue_answer(h, c, status == 200 ? 200 : 500, r);
}

/* ---- requests ---------------------------------------------------------- */

/* Per-request state kept across the access-handler calls: of a POST whose
 * body is being read, or of a refused request whose body is being drained. */
struct post_ctx {
    const struct route *route;
    char id[ID_MAX + 1];
    char *body;
    size_t len;
    int reject;        /* 0, or the status answered once the body is drained */
    const char *allow; /* the Allow header of a 405 */
    size_t drained;    /* bytes of a refused body read and discarded */
};

static enum MHD_Result answer_reject(struct http_server *h, struct MHD_Connection *c, int status,
                                     const char *allow)
{
    switch (status) {
    case MHD_HTTP_UNAUTHORIZED:
        return answer_401(h, c);
    case MHD_HTTP_METHOD_NOT_ALLOWED:
        return answer_405(h, c, allow);
    case MHD_HTTP_CONTENT_TOO_LARGE:
        return answer_413(h, c);
    default:
        return answer_error(h, c, MHD_HTTP_NOT_FOUND, "not found");
    }
}

/* Refuses a request on its first call: at once when it has no body (or one
 * announced above DRAIN_MAX), else after draining the body (see the head
 * comment). status is 401, 404, 405 (allow set) or 413. */
static enum MHD_Result refuse(struct http_server *h, struct MHD_Connection *c, void **con_cls,
                              int status, const char *allow)
{
    const char *cl = mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    bool body, drainable = true;
    struct post_ctx *p;

    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        body = n > 0;
        drainable = *end == '\0' && n <= DRAIN_MAX;
    } else {
        body = mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
    }
    if (!body || !drainable || !(p = calloc(1, sizeof(*p))))
        return answer_reject(h, c, status, allow);
    p->reject = status;
    p->allow = allow;
    *con_cls = p;
    return MHD_YES;
}

/* Constant-time and length-independent: the loop runs over the presented
 * token only (its length is the client's own knowledge) and a length
 * mismatch is folded into the result instead of returning early. */
static bool token_ok(const char *expected, const char *header)
{
    size_t elen = strlen(expected), plen, i;
    const char *presented;
    unsigned char diff;
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return false;
    presented = header + 7;
    while (*presented == ' ')
        presented++;
    plen = strnlen(presented, TOKEN_MAX + 1);
    if (plen > TOKEN_MAX || elen == 0)
        return false;
    diff = (unsigned char)(plen != elen);
    for (i = 0; i < plen; i++)
        diff |= (unsigned char)(presented[i] ^ expected[i % elen]);
    return diff == 0;
}

/* Parses "limit": absent or empty = default; else a plain integer 1..1000. */
static bool parse_limit(struct MHD_Connection *c, int *out)
{
    const char *v = mhd->lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    long n = 0;
    size_t i;
    *out = LIMIT_DEFAULT;
    if (!v || !*v)
        return true;
    for (i = 0; v[i]; i++) {
        if (v[i] < '0' || v[i] > '9' || i >= 5)
            return false;
        n = n * 10 + (v[i] - '0');
    }
    if (n < 1 || n > LIMIT_MAX)
        return false;
    *out = (int)n;
    return true;
}

static enum MHD_Result do_get(struct http_server *h, struct MHD_Connection *c,
                              const struct route *r, const char *id)
{
    const struct http_backend *be = &h->be;
    json_object *body = NULL;
    int status, limit;

    switch (r->id) {
    case R_PAGE:
        return answer_page(h, c);
    case R_METRICS:
        return answer_metrics(h, c);
    case R_EVENTS: {
        const char *last = mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
        struct MHD_Response *resp = http_sse_open(h->sse, c, last, be->sse_init, be->ud);
        if (!resp)
            return answer_error(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event clients");
        return queue_answer(h, c, MHD_HTTP_OK, resp);
    }
    case R_HEALTH:
        status = be->get_health(be->ud, &body);
        break;
    case R_DEVICES:
        status = be->get_devices(be->ud, &body);
        break;
    case R_DEVICE:
        status = be->get_device(be->ud, id, &body);
        break;
    case R_DEVICE_STATE:
        status = be->get_device_state(be->ud, id, &body);
        break;
    case R_SCEN_STATE:
        status = be->get_scenario_state(be->ud, &body);
        break;
    case R_SCENARIOS:
        status = be->get_scenarios(be->ud, &body);
        break;
    case R_STATE_HISTORY:
    case R_CONN_HISTORY:
        if (!parse_limit(c, &limit))
            return answer_error(h, c, 400, "limit must be an integer 1..1000");
        status = r->id == R_STATE_HISTORY ? be->get_state_history(be->ud, id, limit, &body)
                                          : be->get_connection_history(be->ud, id, limit, &body);
        break;
    case R_COMMAND_LOGS: {
        const char *st = mhd->lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
        const char *dev = mhd->lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "device_id");
        if (!parse_limit(c, &limit))
            return answer_error(h, c, 400, "limit must be an integer 1..1000");
        if (st && !*st)
            st = NULL;
        if (dev && !*dev)
            dev = NULL;
        if (st && strcmp(st, "sent") != 0 && strcmp(st, "failed") != 0 &&
            strcmp(st, "rejected") != 0)
            return answer_error(h, c, 400, "status must be sent, failed or rejected");
        if (dev && !id_ok(dev, strlen(dev)))
            return answer_error(h, c, 400, "device_id must match [a-z0-9_]+");
        status = be->get_command_logs(be->ud, st, dev, limit, &body);
        break;
    }
    default:
        return answer_error(h, c, 500, "internal error");
    }
    return answer_json(h, c, status, body);
}

static enum MHD_Result do_post(struct http_server *h, struct MHD_Connection *c, struct post_ctx *p)
{
    const struct http_backend *be = &h->be;
    json_object *req = NULL, *body = NULL;
    const char *msg = NULL;
    enum http_body_kind kind = p->route->id == R_DEVICE_ACTION ? HTTP_BODY_ACTION
                               : p->route->id == R_SCEN_SWITCH ? HTTP_BODY_SWITCH
                                                               : HTTP_BODY_SHUTDOWN;
    int status = http_body_parse(kind, p->body, p->len, &req, &msg);

    if (status != 0)
        return answer_error(h, c, status, msg);
    switch (p->route->id) {
    case R_DEVICE_ACTION:
        status = be->post_action(be->ud, p->id, req, &body);
        break;
    case R_SCEN_SWITCH:
        status = be->post_scenario_switch(be->ud, req, &body);
        break;
    case R_SCEN_SHUTDOWN:
        status = be->post_scenario_shutdown(be->ud, &body);
        break;
    default:
        status = 500;
        break;
    }
    json_object_put(req);
    return answer_json(h, c, status, body);
}

/* First call of a request: route, method, auth and size checks. Answers at
 * once unless it is a valid POST whose body is still to come. */
static enum MHD_Result begin(struct http_server *h, struct MHD_Connection *c, const char *url,
                             const char *method, void **con_cls)
{
    const struct route *match = NULL;
    bool path_known = false, is_get, is_post;
    char id[ID_MAX + 1] = "";
    size_t i;

    __atomic_fetch_add(&h->requests, 1, __ATOMIC_RELAXED);
    http_guard_request_started(h->guard, c);
    is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    is_post = strcmp(method, "POST") == 0;
    for (i = 0; i < N_ROUTES; i++) {
        if (!route_match(&routes[i], url, id))
            continue;
        path_known = true;
        if ((routes[i].post && is_post) || (!routes[i].post && is_get)) {
            match = &routes[i];
            break;
        }
        /* path matched but not the method: remember for the Allow header */
        match = &routes[i];
    }
    if (!path_known)
        return refuse(h, c, con_cls, MHD_HTTP_NOT_FOUND, NULL);
    if (!((match->post && is_post) || (!match->post && is_get)))
        return refuse(h, c, con_cls, MHD_HTTP_METHOD_NOT_ALLOWED,
                      match->post ? "POST" : "GET, HEAD");
    if (!match->post)
        return do_get(h, c, match, id);

    if (h->token &&
        !token_ok(h->token, mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")))
        return refuse(h, c, con_cls, MHD_HTTP_UNAUTHORIZED, NULL);
    {
        const char *cl = mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > HTTP_MAX_BODY)
            return refuse(h, c, con_cls, MHD_HTTP_CONTENT_TOO_LARGE, NULL);
    }
    struct post_ctx *p = calloc(1, sizeof(*p));
    if (!p)
        return queue_answer(h, c, 500, NULL);
    p->route = match;
    memcpy(p->id, id, sizeof(id));
    *con_cls = p;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *h = cls;
    struct post_ctx *p = *con_cls;

    if (!p)
        return begin(h, c, url, method, con_cls);
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (p->reject) {
            p->drained += n;
            if (p->drained <= DRAIN_MAX)
                return MHD_YES;
            /* A chunked body still going: MHD cannot answer in the middle of
             * a body, so the connection is closed (counted as a 4xx). */
            __atomic_fetch_add(&h->r4xx, 1, __ATOMIC_RELAXED);
            log_debug("http: refused body longer than %d bytes, connection closed", DRAIN_MAX);
            return MHD_NO;
        }
        if (p->len + n > HTTP_MAX_BODY) {
            /* A chunked body past the limit: the rest is drained, then 413. */
            p->reject = MHD_HTTP_CONTENT_TOO_LARGE;
            p->drained = p->len + n;
            free(p->body);
            p->body = NULL;
            p->len = 0;
            return MHD_YES;
        }
        char *nb = realloc(p->body, p->len + n + 1);
        if (!nb)
            return MHD_NO;
        p->body = nb;
        memcpy(p->body + p->len, upload_data, n);
        p->len += n;
        p->body[p->len] = '\0';
        return MHD_YES;
    }
    if (p->reject)
        return answer_reject(h, c, p->reject, p->allow);
    return do_post(h, c, p);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *h = cls;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            mhd->get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            http_guard_opened(h->guard, c, ci->connect_fd);
    } else {
        http_guard_closed(h->guard, c);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *h = cls;
    http_guard_request_done(h->guard, c);
    struct post_ctx *p = *con_cls;
    if (p) {
        free(p->body);
        free(p);
        *con_cls = NULL;
    }
}

/* libmicrohttpd would %-decode the path before routing, turning
 * "/devices/tv%2fstate" into another route and "%2e%2e" into "..". Ids and
 * query values of this API never need escaping, so nothing is decoded: a
 * '%' anywhere makes an id or value invalid (404 or 400). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* MHD messages may quote a request line, never a header value. */
    char line[256];
    size_t n;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    log_debug("http: libmicrohttpd: %s", line);
}

/* ---- lifecycle --------------------------------------------------------- */

static bool parse_listen(const char *listen, struct sockaddr_in *sa)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char host[64];
    char *end;
    unsigned long port;
    size_t n;
    if (!colon)
        return false;
    n = (size_t)(colon - listen);
    if (n == 0 || n >= sizeof(host))
        return false;
    memcpy(host, listen, n);
    host[n] = '\0';
    port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port > 65535)
        return false;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1;
}

struct http_server *http_start(const struct http_options *opts, const struct http_backend *be,
                               char *err, size_t errlen)
{
    struct http_server *h = calloc(1, sizeof(*h));
    struct sockaddr_in sa;

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->be = *be;
    if (!mhd_api_load(err, errlen))
        goto fail;
    if (!parse_listen(opts->listen, &sa)) {
        snprintf(err, errlen, "http.listen must be IPV4:PORT or localhost:PORT");
        goto fail;
    }
    if (opts->token && opts->token[0]) {
        if (strlen(opts->token) > TOKEN_MAX) {
            snprintf(err, errlen, "http token longer than %d bytes", TOKEN_MAX);
            goto fail;
        }
        h->token = strdup(opts->token);
        if (!h->token) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    h->sse = http_sse_create();
    h->guard = http_guard_create(http_header_deadline_ms, CONN_LIMIT + 8);
    if (!h->sse || !h->guard) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    h->mhd = mhd->start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, h,
        MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not local?)", opts->listen);
        goto fail;
    }
    log_info("http: listening on %s (port %u)", opts->listen, (unsigned)http_port(h));
    return h;
fail:
    http_guard_destroy(h->guard);
    http_sse_destroy(h->sse);
    free(h->token);
    free(h);
    return NULL;
}

void http_stop(struct http_server *h)
{
    if (!h)
        return;
    /* Streams end first so no connection thread stays blocked in sse_read
     * while MHD_stop_daemon joins it. */
    http_sse_stop(h->sse);
    mhd->stop_daemon(h->mhd);
    http_guard_destroy(h->guard);
    http_sse_destroy(h->sse);
    free(h->token);
    free(h);
}

void http_broadcast(struct http_server *h, const char *event, json_object *data)
{
    if (h)
        http_sse_broadcast(h->sse, event, data);
}

void http_get_stats(struct http_server *h, struct http_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!h)
        return;
    out->requests = __atomic_load_n(&h->requests, __ATOMIC_RELAXED);
    out->responses_4xx = __atomic_load_n(&h->r4xx, __ATOMIC_RELAXED);
    out->responses_5xx = __atomic_load_n(&h->r5xx, __ATOMIC_RELAXED);
    http_sse_counts(h->sse, &out->sse_clients, &out->sse_dropped, &out->events_broadcast);
}

size_t http_sse_clients(const struct http_server *h)
{
    return h ? http_sse_client_count(h->sse) : 0;
}

uint16_t http_port(struct http_server *h)
{
    const union MHD_DaemonInfo *di;
    if (!h || !h->mhd)
        return 0;
    di = mhd->get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : 0;
}

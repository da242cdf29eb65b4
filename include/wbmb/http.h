/*
 * http.h - the HTTP API, live events and web page (CONTRACT §6), served by
 * libmicrohttpd on its own threads.
 *
 * The HTTP module owns sockets, routing, request limits, authentication,
 * JSON error bodies, the Server-Sent Events clients and the embedded page.
 * It owns no device state: every answer comes from a struct http_backend
 * implemented by the core (app.c), whose functions are thread-safe and ask
 * the core thread for a consistent snapshot or hand it the request.
 */
#ifndef WBMB_HTTP_H
#define WBMB_HTTP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

#define HTTP_MAX_BODY (64 * 1024) /* larger request bodies get 413 */

/*
 * The core's side. Every function returns an HTTP status code and sets
 * *body to a new JSON value the HTTP module frees: the answer on success,
 * {"error": "..."} otherwise. Called on libmicrohttpd threads, possibly
 * several at once; each may block while the core works on it (a scenario
 * switch waits until the switch is over).
 */
struct http_backend {
    void *ud;
    int (*get_devices)(void *ud, json_object **body);
    int (*get_device)(void *ud, const char *id, json_object **body);
    int (*get_device_state)(void *ud, const char *id, json_object **body);
    /* request: the parsed body object {"action": ..., "params": {...}} */
    int (*post_action)(void *ud, const char *id, json_object *request, json_object **body);
    int (*get_scenario_state)(void *ud, json_object **body);
    int (*get_scenarios)(void *ud, json_object **body);
    /* request: the parsed body object {"id": ...} */
    int (*post_scenario_switch)(void *ud, json_object *request, json_object **body);
    int (*post_scenario_shutdown)(void *ud, json_object **body);
    /* limit already validated (1..1000); status/device_id NULL = no filter */
    int (*get_state_history)(void *ud, const char *device_id, int limit, json_object **body);
    int (*get_command_logs)(void *ud, const char *status, const char *device_id, int limit,
                            json_object **body);
    int (*get_connection_history)(void *ud, const char *device_id, int limit, json_object **body);
    /* 200 or 503 with {"status","mqtt","db","uptime_s"} */
    int (*get_health)(void *ud, json_object **body);
    /* Prometheus text of the core's counters, malloc'd; the HTTP module
     * appends its own (requests, SSE clients). Returns 200. */
    int (*get_metrics)(void *ud, char **text);
    /* The data of the SSE "init" event: {"devices": [...], "scenario": {...}}. */
    json_object *(*sse_init)(void *ud);
};

struct http_options {
    const char *listen; /* "host:port"; host an IPv4 address or "localhost" */
    const char *token;  /* NULL = no auth; else POSTs need "Authorization: Bearer <token>" */
};

struct http_stats {
    uint64_t requests;
    uint64_t responses_4xx;
    uint64_t responses_5xx;
    uint64_t sse_clients;      /* connected now */
    uint64_t sse_dropped;      /* clients dropped for a full buffer */
    uint64_t events_broadcast; /* events handed to http_broadcast */
};

struct http_server;

/* Starts listening; NULL with a reason in err (e.g. the port is taken). The
 * backend and options are copied. */
struct http_server *http_start(const struct http_options *opts, const struct http_backend *be,
                               char *err, size_t errlen);
/* Closes every connection and stops; http_stop(NULL) is a no-op. SSE
 * streams end first, then it waits for requests in progress (so a backend
 * call blocked on the core must be able to finish). No http_broadcast may
 * run concurrently with or after it. */
void http_stop(struct http_server *h);

/* Sends an SSE event (event: name, data: the JSON on one line) to every
 * connected client. Any thread; never blocks on a slow client: a client
 * whose bounded buffer would overflow is dropped. data is borrowed. */
void http_broadcast(struct http_server *h, const char *event, json_object *data);

void http_get_stats(struct http_server *h, struct http_stats *out);
/* SSE clients connected now (http_stats.sse_clients) without taking a lock
 * (an atomic count), for a broadcaster that skips building events nobody
 * listens to; 0 for NULL. */
size_t http_sse_clients(const struct http_server *h);

/* The TCP port actually bound (useful with "host:0", which picks a free
 * port); 0 when unknown. Added by the HTTP module for its tests. */
uint16_t http_port(struct http_server *h);

#endif

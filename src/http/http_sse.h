/*
 * http_sse.h - the Server-Sent Events clients of GET /events.
 *
 * Owns the list of connected clients, each with a bounded outgoing buffer,
 * and turns broadcasts into "event: NAME\ndata: JSON\n\n" records. Never
 * blocks the broadcaster on a client: a client whose buffer would overflow is
 * dropped (counted) and its socket shut down. Used by http.c only.
 */
#ifndef WBMB_HTTP_SSE_H
#define WBMB_HTTP_SSE_H

#include <json-c/json.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_SSE_BUF_MAX (256 * 1024) /* pending bytes per client before it is dropped */
#define HTTP_SSE_MAX_CLIENTS 32

struct http_sse;

/* NULL when out of memory. */
struct http_sse *http_sse_create(void);
/* Ends every stream (readers wake up and finish); new clients are refused.
 * Call before MHD_stop_daemon so that no connection thread stays blocked. */
void http_sse_stop(struct http_sse *s);
/* Frees the registry; every response made by http_sse_open must already be
 * destroyed (i.e. after MHD_stop_daemon). NULL is a no-op. */
void http_sse_destroy(struct http_sse *s);

/* Registers a new client for connection c and returns its streaming response
 * (the caller queues and destroys it; the client dies with the response).
 * init(ud) gives the data of the first "init" event; it is called without
 * any lock held, after registration, so no broadcast is lost. Returns NULL
 * when the client limit is reached, the registry is stopping, or on ENOMEM. */
struct MHD_Response *http_sse_open(struct http_sse *s, struct MHD_Connection *c,
                                   json_object *(*init)(void *ud), void *ud);

/* Queues one event for every client; data is borrowed (NULL sends null). */
void http_sse_broadcast(struct http_sse *s, const char *event, json_object *data);

void http_sse_counts(struct http_sse *s, uint64_t *clients, uint64_t *dropped, uint64_t *events);

/* Heartbeat period in ms (15000); a test may shorten it before starting. */
extern int http_sse_heartbeat_ms;

#endif

/*
 * http_sse.h - the Server-Sent Events clients of GET /events.
 *
 * Owns the list of connected clients, each with a bounded outgoing buffer,
 * and a bounded ring of the most recent events. Turns broadcasts into
 * "id: N\nevent: NAME\ndata: JSON\n\n" records; ids increase by one per
 * event. A client reconnecting with a Last-Event-ID still in the ring gets
 * the events after it, anything else gets a fresh "init". Never blocks the
 * broadcaster on a client: a client whose buffer would overflow is dropped
 * (counted) and its socket shut down. A client that goes away (its socket
 * reports the peer's FIN or RST) frees its slot at once. Used by http.c only.
 */
#ifndef WBMB_HTTP_SSE_H
#define WBMB_HTTP_SSE_H

#include <json-c/json.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_SSE_BUF_MAX (256 * 1024) /* pending bytes per client before it is dropped */
#define HTTP_SSE_MAX_CLIENTS 32
/* The replay ring: at most this many events and bytes (must stay below
 * HTTP_SSE_BUF_MAX so that a replay always fits a new client's buffer). */
#define HTTP_SSE_RING_EVENTS 256
#define HTTP_SSE_RING_BYTES (128 * 1024)

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
 * last_event_id is the client's Last-Event-ID header (NULL when none): when
 * it names an event still in the ring (or the newest id), the client gets
 * the events after it and no init. Otherwise init(ud) gives the data of the
 * first "init" event, whose id is the newest event id at registration; it is
 * called without any lock held, after registration, so no broadcast is lost.
 * Returns NULL when the client limit is reached, the registry is stopping,
 * or on ENOMEM. */
struct MHD_Response *http_sse_open(struct http_sse *s, struct MHD_Connection *c,
                                   const char *last_event_id, json_object *(*init)(void *ud),
                                   void *ud);

/* Queues one event for every client and the ring; data is borrowed (NULL
 * sends null). */
void http_sse_broadcast(struct http_sse *s, const char *event, json_object *data);

void http_sse_counts(struct http_sse *s, uint64_t *clients, uint64_t *dropped, uint64_t *events);
/* Clients registered now, without the lock (an atomic kept with the list;
 * 0 for NULL). A client registered before its init() snapshot is taken, so
 * a broadcaster that sees 0 and skips an event cannot lose it for that
 * client, as long as the snapshot reads what the broadcaster wrote before
 * (ordered by the backend's own lock). */
size_t http_sse_client_count(const struct http_sse *s);

/* Heartbeat period in ms (15000); a test may shorten it before starting. */
extern int http_sse_heartbeat_ms;

#endif

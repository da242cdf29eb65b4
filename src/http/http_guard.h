/*
 * http_guard.h - a total deadline for receiving a request's headers.
 *
 * libmicrohttpd's connection timeout restarts on every byte, so a client that
 * trickles one header byte a second (slow-loris) would hold a connection slot
 * for ever; with a bounded number of connections, a few such clients lock
 * everyone out. The guard remembers when each connection began waiting for
 * headers and shuts the socket down once it has waited longer than the
 * deadline; libmicrohttpd then closes it as it would any broken connection.
 * Internal to src/http/.
 */
#ifndef WBMB_HTTP_GUARD_H
#define WBMB_HTTP_GUARD_H

#include <stdint.h>

struct http_guard;

/* Starts the watchdog thread; NULL on failure. */
struct http_guard *http_guard_create(int deadline_ms, int max_conns);
/* Joins the thread; http_guard_destroy(NULL) is a no-op. */
void http_guard_destroy(struct http_guard *g);

/* A connection opened (fd is its socket): it now waits for headers. */
void http_guard_opened(struct http_guard *g, const void *conn, int fd);
/* Its headers are complete: no deadline while the request runs. */
void http_guard_request_started(struct http_guard *g, const void *conn);
/* The request is over; a kept-alive connection waits for headers again. */
void http_guard_request_done(struct http_guard *g, const void *conn);
void http_guard_closed(struct http_guard *g, const void *conn);

/* Connections cut for missing the deadline. */
uint64_t http_guard_dropped(struct http_guard *g);

#endif

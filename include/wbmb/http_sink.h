/*
 * http_sink.h - the live events of the HTTP API (GET /events, SSE) as a
 * sink (sink.h):
 *
 *   EV_FIELDS        event "state":      {"device_id","changed":{...},"state":{...}}
 *   EV_AVAILABILITY  event "connection": {"device_id","online","event"}
 *   EV_SCENARIO      event "scenario":   the scenario:last object
 *
 * Nothing is built while no SSE client listens (one atomic read per
 * event), so the hot path pays nothing for the API.
 */
#ifndef WBMB_HTTP_SINK_H
#define WBMB_HTTP_SINK_H

#include "wbmb/http.h"
#include "wbmb/sink.h"

/* http is borrowed (it outlives the sink). NULL when out of memory. Freed
 * through its ops (sinks_destroy). */
struct sink *http_sink_create(struct http_server *http);

#endif

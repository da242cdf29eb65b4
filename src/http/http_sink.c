/*
 * http_sink.c - change events as SSE events (see http_sink.h). The JSON of
 * an event is built here, on the core, from the event's borrowed values;
 * http_broadcast() copies its text for each client.
 */
#include "wbmb/http_sink.h"

#include <stdlib.h>

#include "wbmb/config.h"

struct http_sink {
    struct sink base; /* first: the sink */
    struct http_server *http;
};

static const struct sink_ops http_sink_ops;

struct sink *http_sink_create(struct http_server *http)
{
    struct http_sink *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base.ops = &http_sink_ops;
    t->http = http;
    return &t->base;
}

static void destroy(struct sink *s)
{
    free(s);
}

static bool listened(const struct http_sink *t)
{
    return http_sse_clients(t->http) > 0;
}

static void state_event(struct http_sink *t, const struct event *ev)
{
    const struct sink_device *d = ev->dev;
    json_object *changed = json_object_new_object();
    json_object *state = json_object_new_object();
    for (size_t i = 0; i < ev->u.fields.n; i++) {
        const struct dev_field *f = &d->f[ev->u.fields.c[i].index];
        json_object_object_add(changed, f->name, json_object_get(f->v));
    }
    for (size_t i = 0; i < d->n_f; i++)
        json_object_object_add(state, d->f[i].name, json_object_get(d->f[i].v));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "device_id", json_object_new_string(d->cfg->id));
    json_object_object_add(o, "changed", changed);
    json_object_object_add(o, "state", state);
    http_broadcast(t->http, "state", o);
    json_object_put(o);
}

static void connection_event(struct http_sink *t, const struct event *ev)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "device_id", json_object_new_string(ev->dev->cfg->id));
    json_object_object_add(o, "online", json_object_new_boolean(ev->u.availability.online));
    json_object_object_add(o, "event", json_object_new_string(ev->u.availability.why));
    http_broadcast(t->http, "connection", o);
    json_object_put(o);
}

static void on_event(struct sink *s, const struct event *ev, const struct sink_view *view)
{
    (void)view;
    struct http_sink *t = (struct http_sink *)s;
    if (!listened(t))
        return; /* no JSON built on the hot path when nobody listens */
    switch (ev->kind) {
    case EV_FIELDS:
        state_event(t, ev);
        break;
    case EV_AVAILABILITY:
        connection_event(t, ev);
        break;
    case EV_SCENARIO:
        http_broadcast(t->http, "scenario", ev->u.scenario.last);
        break;
    default:
        break;
    }
}

static const struct sink_ops http_sink_ops = {
    .name = "http-events",
    .event = on_event,
    .destroy = destroy,
};

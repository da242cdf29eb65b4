/*
 * api_rows.c - the HTTP API's JSON of the store's rows (api_rows.h).
 *
 * The member order and the JSON types are part of the API (tests compare
 * the answers byte for byte): ts first, then the value; the command rows
 * in the command_logs column order.
 */
#include "core/api_rows.h"

#include <string.h>

static json_object *str_or_null(const char *t)
{
    return t ? json_object_new_string(t) : NULL;
}

/* JSON text parsed, or kept as a string when it is not JSON (a value
 * written by hand or by another program must still be shown). */
static json_object *json_or_str(const char *t)
{
    json_object *v = t ? json_tokener_parse(t) : NULL;
    return v ? v : str_or_null(t);
}

static json_object *command_json(const struct store_command_row *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "command_id", str_or_null(c->command_id));
    json_object_object_add(o, "device_id", str_or_null(c->device_id));
    json_object_object_add(o, "action", str_or_null(c->action));
    json_object_object_add(o, "params", json_or_str(c->params));
    json_object_object_add(o, "source", str_or_null(c->source));
    json_object_object_add(o, "status", str_or_null(c->status));
    json_object_object_add(o, "error", str_or_null(c->error));
    json_object_object_add(o, "created_at", str_or_null(c->created_at));
    json_object_object_add(o, "completed_at", str_or_null(c->completed_at));
    return o;
}

json_object *api_rows_json(const struct store_rows *r)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < r->n; i++) {
        json_object *o;
        if (r->kind == STORE_ROWS_COMMANDS) {
            o = command_json(&r->commands[i]);
        } else if (r->kind == STORE_ROWS_HISTORY) {
            o = json_object_new_object();
            json_object_object_add(o, "ts", str_or_null(r->history[i].ts));
            json_object_object_add(o, "state", json_or_str(r->history[i].state));
            /* Extra keys only when the row has them (schema 4's policy):
             * a plain row keeps the contract's exact {"ts","state"}. */
            const char *kind = r->history[i].kind;
            if (kind && strcmp(kind, "all") != 0)
                json_object_object_add(o, "kind", json_object_new_string(kind));
            if (r->history[i].stats)
                json_object_object_add(o, "stats", json_or_str(r->history[i].stats));
        } else {
            o = json_object_new_object();
            json_object_object_add(o, "ts", str_or_null(r->connections[i].ts));
            json_object_object_add(o, "event", str_or_null(r->connections[i].event));
        }
        json_object_array_add(arr, o);
    }
    return arr;
}

static wb_status to_json(wb_status st, struct store_rows *r, json_object **out)
{
    *out = st == WB_OK ? api_rows_json(r) : NULL;
    store_rows_free(r);
    return st;
}

wb_status api_history_query(struct state_store *s, const char *device_id, int limit,
                            json_object **out)
{
    struct store_rows r;
    return to_json(store_history_rows(s, device_id, limit, &r), &r, out);
}

wb_status api_connection_query(struct state_store *s, const char *device_id, int limit,
                               json_object **out)
{
    struct store_rows r;
    return to_json(store_connection_rows(s, device_id, limit, &r), &r, out);
}

wb_status api_command_query(struct state_store *s, const struct store_command_filter *f, int limit,
                            json_object **out)
{
    struct store_rows r;
    return to_json(store_command_rows(s, f, limit, &r), &r, out);
}

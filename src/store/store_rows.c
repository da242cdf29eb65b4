/*
 * store_rows.c - the row sets of the store's queries (struct store_rows,
 * state_store.h), and the JSON arrays store_*_query() make of them for the
 * tests and tools. The HTTP API builds its own JSON from the rows
 * (src/core/api_rows.c): the shape it serves is the API's, not the store's.
 */
#include <stdlib.h>
#include <string.h>

#include "wbmb/state_store.h"

/* ---- row sets ------------------------------------------------------------- */

static int kind_fields(enum store_rows_kind k)
{
    return k == STORE_ROWS_COMMANDS ? 9 : 3;
}

/* Points slot[] at the string members of row i, in struct order; the
 * members of a command row are const for its readers, the set owns them. */
static void row_slots(struct store_rows *r, size_t i, char **slot[9])
{
    switch (r->kind) {
    case STORE_ROWS_HISTORY:
        slot[0] = &r->history[i].device_id;
        slot[1] = &r->history[i].ts;
        slot[2] = &r->history[i].state;
        break;
    case STORE_ROWS_CONNECTIONS:
        slot[0] = &r->connections[i].device_id;
        slot[1] = &r->connections[i].event;
        slot[2] = &r->connections[i].ts;
        break;
    case STORE_ROWS_COMMANDS: {
        struct store_command_row *c = &r->commands[i];
        const char **m[] = {&c->command_id, &c->device_id,  &c->action,
                            &c->params,     &c->source,     &c->status,
                            &c->error,      &c->created_at, &c->completed_at};
        for (int k = 0; k < 9; k++)
            slot[k] = (char **)m[k];
        break;
    }
    }
}

wb_status store_rows_add(struct store_rows *r, const char *const *fields)
{
    static const size_t size[] = {[STORE_ROWS_HISTORY] = sizeof(struct store_history_row),
                                  [STORE_ROWS_CONNECTIONS] = sizeof(struct store_connection_row),
                                  [STORE_ROWS_COMMANDS] = sizeof(struct store_command_row)};
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        void *nv = realloc(r->history, ncap * size[r->kind]); /* the union's one pointer */
        if (!nv)
            return WB_ERR_NOMEM;
        r->history = nv;
        r->cap = ncap;
    }
    char **slot[9];
    row_slots(r, r->n, slot);
    int nf = kind_fields(r->kind);
    for (int k = 0; k < nf; k++)
        *slot[k] = NULL;
    r->n++; /* a half-copied row is freed with the set */
    for (int k = 0; k < nf; k++)
        if (fields[k] && !(*slot[k] = strdup(fields[k])))
            return WB_ERR_NOMEM;
    return WB_OK;
}

void store_rows_free(struct store_rows *r)
{
    char **slot[9];
    int nf = kind_fields(r->kind);
    for (size_t i = 0; i < r->n; i++) {
        row_slots(r, i, slot);
        for (int k = 0; k < nf; k++)
            free(*slot[k]);
    }
    free(r->history);
    *r = STORE_ROWS(r->kind);
}

/* ---- the JSON of the queries (tests and tools) ---------------------------- */

static json_object *str_or_null(const char *t)
{
    return t ? json_object_new_string(t) : NULL;
}

/* JSON text parsed, or kept as a string when it is not JSON. */
static json_object *json_or_str(const char *t)
{
    json_object *v = t ? json_tokener_parse(t) : NULL;
    return v ? v : str_or_null(t);
}

static json_object *rows_json(const struct store_rows *r)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < r->n; i++) {
        json_object *o = json_object_new_object();
        if (r->kind == STORE_ROWS_HISTORY) {
            json_object_object_add(o, "ts", str_or_null(r->history[i].ts));
            json_object_object_add(o, "state", json_or_str(r->history[i].state));
        } else if (r->kind == STORE_ROWS_CONNECTIONS) {
            json_object_object_add(o, "ts", str_or_null(r->connections[i].ts));
            json_object_object_add(o, "event", str_or_null(r->connections[i].event));
        } else {
            const struct store_command_row *c = &r->commands[i];
            json_object_object_add(o, "command_id", str_or_null(c->command_id));
            json_object_object_add(o, "device_id", str_or_null(c->device_id));
            json_object_object_add(o, "action", str_or_null(c->action));
            json_object_object_add(o, "params", json_or_str(c->params));
            json_object_object_add(o, "source", str_or_null(c->source));
            json_object_object_add(o, "status", str_or_null(c->status));
            json_object_object_add(o, "error", str_or_null(c->error));
            json_object_object_add(o, "created_at", str_or_null(c->created_at));
            json_object_object_add(o, "completed_at", str_or_null(c->completed_at));
        }
        json_object_array_add(arr, o);
    }
    return arr;
}

static wb_status to_json(wb_status st, struct store_rows *r, json_object **out)
{
    *out = st == WB_OK ? rows_json(r) : NULL;
    store_rows_free(r);
    return st;
}

wb_status store_history_query(struct state_store *s, const char *device_id, int limit,
                              json_object **out)
{
    struct store_rows r;
    return to_json(store_history_rows(s, device_id, limit, &r), &r, out);
}

wb_status store_connection_query(struct state_store *s, const char *device_id, int limit,
                                 json_object **out)
{
    struct store_rows r;
    return to_json(store_connection_rows(s, device_id, limit, &r), &r, out);
}

wb_status store_command_query(struct state_store *s, const struct store_command_filter *f,
                              int limit, json_object **out)
{
    struct store_rows r;
    return to_json(store_command_rows(s, f, limit, &r), &r, out);
}

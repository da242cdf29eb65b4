/*
 * store_front_read.c - the reads of the StateStore (state_store.h) over a
 * backend and the writer's queue.
 *
 * get/list overlay the pending and in-flight changes on the committed
 * rows: the overlay is snapshotted first and the backend read second, so a
 * commit landing between the two can only make a change appear twice (the
 * overlay wins), never disappear.
 *
 * The history, connection and command queries return rows
 * (struct store_rows); the store_*_query() functions turn them into the
 * JSON arrays the tests and tools read (the HTTP API builds its own JSON).
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_front.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

wb_status store_get(struct state_store *s, const char *key, json_object **out)
{
    struct state_store *f = s;
    *out = NULL;
    if (!key)
        return WB_ERR_INVALID;
    char *text = NULL;
    int found = f->w ? store_writer_peek(f->w, key, &text) : 0;
    if (found < 0)
        return WB_ERR_NOMEM;
    if (!found) {
        wb_status st = f->b->ops->get(f->b, key, &text);
        if (st != WB_OK)
            return st;
    }
    if (!text)
        return WB_ERR_NOT_FOUND; /* a pending delete */
    *out = json_tokener_parse(text);
    free(text);
    return *out ? WB_OK : WB_ERR_INVALID;
}

struct item {
    char *key, *text; /* text NULL = tombstone */
    int prio;         /* 2 pending, 1 inflight, 0 database */
};

struct items {
    struct item *v;
    size_t n, cap;
    size_t plen;
    const char *prefix;
};

static int items_add(const char *key, const char *text, int prio, void *ud)
{
    struct items *it = ud;
    if (it->n == it->cap) {
        size_t ncap = it->cap ? it->cap * 2 : 32;
        struct item *nv = realloc(it->v, ncap * sizeof(*nv));
        if (!nv)
            return 1;
        it->v = nv;
        it->cap = ncap;
    }
    struct item *x = &it->v[it->n];
    x->key = strdup(key);
    x->text = text ? strdup(text) : NULL;
    x->prio = prio;
    if (!x->key || (text && !x->text)) {
        free(x->key);
        free(x->text);
        return 1;
    }
    it->n++;
    return 0;
}

static int scan_add(const char *key, const char *text, void *ud)
{
    struct items *it = ud;
    if (strncmp(key, it->prefix, it->plen) != 0)
        return 0;
    return items_add(key, text, 0, ud) ? -1 : 0;
}

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : y->prio - x->prio;
}

wb_status store_list(struct state_store *s, const char *prefix, store_list_cb cb, void *ud)
{
    struct state_store *f = s;
    if (!prefix)
        prefix = "";
    struct items it = {.prefix = prefix, .plen = strlen(prefix)};
    wb_status ret = WB_OK;

    /* Overlay first, database second: see the top of the file. */
    if (f->w && store_writer_each_key(f->w, prefix, items_add, &it))
        ret = WB_ERR_NOMEM;
    if (ret == WB_OK)
        ret = f->b->ops->scan(f->b, prefix, scan_add, &it);

    if (ret == WB_OK && it.n)
        qsort(it.v, it.n, sizeof(*it.v), item_cmp);
    /* One parser for the whole list: json_tokener_parse() allocates and
     * frees a tokener per call, ~9 % of a 10 000-device restore. */
    json_tokener *tok = json_tokener_new();
    bool stopped = false;
    for (size_t i = 0; i < it.n; i++) {
        bool first = i == 0 || strcmp(it.v[i].key, it.v[i - 1].key) != 0;
        if (ret == WB_OK && !stopped && first && it.v[i].text) {
            json_object *v = NULL;
            if (tok) {
                json_tokener_reset(tok);
                v = json_tokener_parse_ex(tok, it.v[i].text, -1);
                if (json_tokener_get_error(tok) != json_tokener_success) {
                    json_object_put(v);
                    v = NULL;
                }
            } else {
                v = json_tokener_parse(it.v[i].text);
            }
            if (v)
                stopped = cb(it.v[i].key, v, ud) != 0;
            else /* written by hand or by another program (sqlite3, seed 000) */
                log_warn("store: %s: stored value is not valid JSON; skipped", it.v[i].key);
            json_object_put(v);
        }
    }
    if (tok)
        json_tokener_free(tok);
    for (size_t i = 0; i < it.n; i++) {
        free(it.v[i].key);
        free(it.v[i].text);
    }
    free(it.v);
    return ret;
}

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

/* ---- the queries ---------------------------------------------------------- */

wb_status store_history_rows(struct state_store *s, const char *device_id, int limit,
                             struct store_rows *out)
{
    struct state_store *f = s;
    *out = STORE_ROWS(STORE_ROWS_HISTORY);
    if (!device_id)
        return WB_ERR_INVALID;
    if (f->w)
        store_writer_flush(f->w); /* a failed flush still leaves committed rows */
    wb_status st = f->b->ops->history_rows(f->b, device_id, limit, out);
    if (st != WB_OK)
        store_rows_free(out);
    return st;
}

wb_status store_connection_rows(struct state_store *s, const char *device_id, int limit,
                                struct store_rows *out)
{
    struct state_store *f = s;
    *out = STORE_ROWS(STORE_ROWS_CONNECTIONS);
    if (!device_id)
        return WB_ERR_INVALID;
    if (f->w)
        store_writer_flush(f->w);
    wb_status st = f->b->ops->connection_rows(f->b, device_id, limit, out);
    if (st != WB_OK)
        store_rows_free(out);
    return st;
}

wb_status store_command_rows(struct state_store *s, const struct store_command_filter *flt,
                             int limit, struct store_rows *out)
{
    struct state_store *f = s;
    *out = STORE_ROWS(STORE_ROWS_COMMANDS);
    if (f->w)
        store_writer_flush(f->w);
    wb_status st = f->b->ops->command_rows(f->b, flt, limit, out);
    if (st != WB_OK)
        store_rows_free(out);
    return st;
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

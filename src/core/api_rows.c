/*
 * api_rows.c - the HTTP API's JSON of the store's rows (api_rows.h).
 *
 * The member order and the JSON types are part of the API (tests compare
 * the answers byte for byte): ts first, then the value; the command rows
 * in the command_logs column order.
 */
#include "core/api_rows.h"

#include <stdlib.h>
#include <string.h>

#include "wbmb/util.h"

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

/* ---- field selection and down-sampling ------------------------------------ */

bool api_field_listed(const char *fields, const char *name)
{
    if (!fields)
        return true;
    size_t n = strlen(name);
    for (const char *p = fields; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

/* A copy of obj (an object) with only the listed keys; obj itself (a new
 * reference) when fields is NULL or obj is not an object. */
static json_object *restrict_keys(json_object *obj, const char *fields)
{
    if (!fields || !json_object_is_type(obj, json_type_object))
        return obj;
    json_object *o = json_object_new_object();
    json_object_object_foreach(obj, k, v)
    {
        if (api_field_listed(fields, k))
            json_object_object_add(o, k, json_object_get(v));
    }
    json_object_put(obj);
    return o;
}

json_object *api_history_json(const struct store_rows *r, const char *fields)
{
    json_object *arr = api_rows_json(r);
    if (!fields || !arr)
        return arr;
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(arr, i), *v;
        const char *keys[] = {"state", "stats"};
        for (int k = 0; k < 2; k++)
            if (json_object_object_get_ex(o, keys[k], &v))
                json_object_object_add(o, keys[k], restrict_keys(json_object_get(v), fields));
    }
    return arr;
}

/* The running aggregate of one numeric field in a bucket. */
struct agg {
    double min, max, sum;
    int64_t n;
};

static bool is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static json_object *num(double d)
{
    /* Integers stay integers in the JSON (a count of 3, not 3.0). */
    if (d == (double)(int64_t)d && d > -9e15 && d < 9e15)
        return json_object_new_int64((int64_t)d);
    return json_object_new_double(d);
}

/* Adds one row (its state and, for an interval row, its stats) to the
 * bucket: values keyed by field, aggregates in aggs (a JSON object holding
 * struct agg blobs would be awkward: a parallel object of arrays is used,
 * [min, max, sum, n]). */
static void bucket_add(json_object *last, json_object *aggs, json_object *state, json_object *stats,
                       const char *fields)
{
    json_object_object_foreach(state, k, v)
    {
        if (!api_field_listed(fields, k))
            continue;
        json_object_object_add(last, k, json_object_get(v));
        if (!is_number(v))
            continue;
        struct agg a = {json_object_get_double(v), json_object_get_double(v),
                        json_object_get_double(v), 1};
        json_object *st, *x;
        if (stats && json_object_object_get_ex(stats, k, &st)) {
            int64_t n = json_object_object_get_ex(st, "n", &x) ? json_object_get_int64(x) : 0;
            if (n > 0 && json_object_object_get_ex(st, "mean", &x)) {
                a.sum = json_object_get_double(x) * (double)n;
                a.n = n;
            }
            if (json_object_object_get_ex(st, "min", &x))
                a.min = json_object_get_double(x);
            if (json_object_object_get_ex(st, "max", &x))
                a.max = json_object_get_double(x);
        }
        json_object *cur;
        if (!json_object_object_get_ex(aggs, k, &cur)) {
            cur = json_object_new_array();
            json_object_array_add(cur, json_object_new_double(a.min));
            json_object_array_add(cur, json_object_new_double(a.max));
            json_object_array_add(cur, json_object_new_double(a.sum));
            json_object_array_add(cur, json_object_new_int64(a.n));
            json_object_object_add(aggs, k, cur);
            continue;
        }
        double mn = json_object_get_double(json_object_array_get_idx(cur, 0));
        double mx = json_object_get_double(json_object_array_get_idx(cur, 1));
        double sum = json_object_get_double(json_object_array_get_idx(cur, 2));
        int64_t n = json_object_get_int64(json_object_array_get_idx(cur, 3));
        json_object_array_put_idx(cur, 0, json_object_new_double(a.min < mn ? a.min : mn));
        json_object_array_put_idx(cur, 1, json_object_new_double(a.max > mx ? a.max : mx));
        json_object_array_put_idx(cur, 2, json_object_new_double(sum + a.sum));
        json_object_array_put_idx(cur, 3, json_object_new_int64(n + a.n));
    }
}

/* The bucket's JSON object; takes last and aggs. */
static json_object *bucket_json(const char *ts, json_object *last, json_object *aggs, int64_t rows)
{
    json_object *o = json_object_new_object(), *stats = json_object_new_object();
    json_object_object_foreach(aggs, k, cur)
    {
        double mn = json_object_get_double(json_object_array_get_idx(cur, 0));
        double mx = json_object_get_double(json_object_array_get_idx(cur, 1));
        double sum = json_object_get_double(json_object_array_get_idx(cur, 2));
        int64_t n = json_object_get_int64(json_object_array_get_idx(cur, 3));
        double mean = n ? sum / (double)n : 0;
        json_object *s = json_object_new_object();
        json_object_object_add(s, "min", num(mn));
        json_object_object_add(s, "max", num(mx));
        json_object_object_add(s, "mean", num(mean));
        json_object_object_add(s, "n", json_object_new_int64(n));
        json_object_object_add(stats, k, s);
        json_object_object_add(last, k, num(mean));
    }
    json_object_put(aggs);
    json_object_object_add(o, "ts", json_object_new_string(ts));
    json_object_object_add(o, "state", last);
    json_object_object_add(o, "stats", stats);
    json_object_object_add(o, "n", json_object_new_int64(rows));
    return o;
}

json_object *api_history_buckets(const struct store_rows *rows, int64_t from_ms, int64_t to_ms,
                                 int max_points, const char *fields, bool desc)
{
    json_object *arr = json_object_new_array();
    if (!arr || rows->n == 0 || max_points < 1)
        return arr;
    int64_t first = 0;
    if (from_ms == INT64_MIN && !util_parse_time_ms(rows->history[0].ts, &first))
        first = 0;
    int64_t lo = from_ms == INT64_MIN ? first : from_ms;
    int64_t hi = to_ms == INT64_MAX ? util_wall_ms() : to_ms;
    if (hi < lo)
        hi = lo;
    /* Equal buckets of ceil((hi - lo + 1) / max_points) ms: at most max_points. */
    int64_t width = (hi - lo) / max_points + 1;
    int64_t cur_b = -1, nrows = 0;
    const char *cur_ts = NULL;
    json_object *last = NULL, *aggs = NULL;
    for (size_t i = 0; i <= rows->n; i++) {
        int64_t ms = 0, b = -1;
        json_object *state = NULL, *stats = NULL;
        if (i < rows->n) {
            const struct store_history_row *r = &rows->history[i];
            if (!util_parse_time_ms(r->ts, &ms) || ms < lo || ms > hi)
                continue;
            b = (ms - lo) / width;
        }
        if (b != cur_b && last) {
            json_object_array_add(arr, bucket_json(cur_ts, last, aggs, nrows));
            last = aggs = NULL;
        }
        if (i == rows->n)
            break;
        const struct store_history_row *r = &rows->history[i];
        state = r->state ? json_tokener_parse(r->state) : NULL;
        stats = r->stats ? json_tokener_parse(r->stats) : NULL;
        if (b != cur_b || !last) {
            last = json_object_new_object();
            aggs = json_object_new_object();
            nrows = 0;
            cur_b = b;
        }
        if (json_object_is_type(state, json_type_object))
            bucket_add(last, aggs, state,
                       json_object_is_type(stats, json_type_object) ? stats : NULL, fields);
        cur_ts = r->ts;
        nrows++;
        json_object_put(state);
        json_object_put(stats);
    }
    if (desc) {
        size_t n = json_object_array_length(arr);
        json_object *rev = json_object_new_array_ext((int)n);
        for (size_t i = n; i-- > 0;)
            json_object_array_add(rev, json_object_get(json_object_array_get_idx(arr, i)));
        json_object_put(arr);
        arr = rev;
    }
    return arr;
}

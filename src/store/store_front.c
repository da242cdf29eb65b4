/*
 * store_front.c - the StateStore functions (state_store.h) over one
 * backend (store_backend.h) and the backend-neutral writer
 * (store_writer.h): what a caller hands in is checked, serialised and
 * queued here; reads overlay what is queued on what the backend has
 * committed. The reads live in store_front_read.c.
 *
 * A read-only store (the state tool) has no writer: every write returns
 * WB_ERR_READONLY and nothing is ever pending.
 */
#include "store/store_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/util.h"

struct store_backend *store_front_backend(struct state_store *s)
{
    return F(s)->b;
}

static wb_status put(struct front_store *f, const char *key, char *text, bool is_set)
{
    if (!f->w) {
        free(text);
        return WB_ERR_READONLY;
    }
    return store_writer_put(f->w, key, text, is_set, NULL);
}

static wb_status fr_set(struct state_store *s, const char *key, json_object *value)
{
    if (!key || !value)
        return WB_ERR_INVALID;
    /* Serialised now, outside any lock: the caller may change value later. */
    char *text = strdup(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
    if (!text)
        return WB_ERR_NOMEM;
    return put(F(s), key, text, true);
}

static wb_status fr_del(struct state_store *s, const char *key)
{
    if (!key)
        return WB_ERR_INVALID;
    return put(F(s), key, NULL, false);
}

static wb_status fr_flush(struct state_store *s)
{
    return F(s)->w ? store_writer_flush(F(s)->w) : WB_OK;
}

static wb_status append(struct front_store *f, struct store_op *o)
{
    if (!f->w) {
        free(o);
        return WB_ERR_READONLY;
    }
    return store_writer_append(f->w, o);
}

/* The Unix time in ms of an ISO-8601 UTC timestamp as util_iso8601_*()
 * write it ("2026-11-23T04:28:53.695Z"; the fraction may be missing or
 * shorter). Returns false for anything else. */
static bool ts_parse_ms(const char *ts, int64_t *out)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 19)
        return false;
    const char *p = ts + n;
    int64_t ms = 0, scale = 100;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            ms += scale * (*p - '0');
    if (p[0] != 'Z' || p[1] != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm) * 1000 + ms;
    return true;
}

static wb_status fr_history_append(struct state_store *s, const char *device_id, json_object *state,
                                   const char *ts)
{
    struct front_store *f = F(s);
    if (!f->cfg.history_enabled)
        return WB_OK;
    if (!device_id || !state)
        return WB_ERR_INVALID;
    int64_t ms = util_wall_ms();
    if (ts && !ts_parse_ms(ts, &ms))
        return WB_ERR_INVALID;
    const char *fl[] = {device_id, json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN)};
    struct store_op *o = store_op_new(STORE_OP_HIST, 0, fl, 2);
    if (o)
        o->ms = ms;
    return append(f, o);
}

/* set + history_append of one JSON text, queued together under one lock,
 * so with commit_interval_ms 0 one commit carries both (store_transition).
 * The text comes from the device manager's own writer: it is stored as it
 * is, not parsed again on the hot path. */
static wb_status fr_transition(struct state_store *s, const char *key, const char *device_id,
                               const char *json, bool history)
{
    struct front_store *f = F(s);
    if (!f->w)
        return WB_ERR_READONLY;
    char *text = strdup(json);
    if (!text)
        return WB_ERR_NOMEM;
    struct store_op *o = NULL;
    if (history && f->cfg.history_enabled) {
        const char *fl[] = {device_id, text};
        if (!(o = store_op_new(STORE_OP_HIST, 0, fl, 2))) {
            free(text);
            return WB_ERR_NOMEM;
        }
        o->ms = util_wall_ms();
    }
    return store_writer_put(f->w, key, text, true, o);
}

static wb_status fr_connection_append(struct state_store *s, const char *device_id,
                                      const char *event, const char *ts)
{
    if (!device_id || !event)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    if (!ts) {
        util_iso8601_now(now);
        ts = now;
    }
    const char *fl[] = {device_id, event, ts};
    return append(F(s), store_op_new(STORE_OP_CONN, 0, fl, 3));
}

static wb_status fr_device_upsert(struct state_store *s, const struct store_device_row *r)
{
    if (!r || !r->device_id)
        return WB_ERR_INVALID;
    const char *fl[] = {r->device_id, r->device_type, r->name, r->last_seen, r->connected_at};
    return append(F(s), store_op_new(STORE_OP_DEVICE, r->is_online, fl, 5));
}

static wb_status fr_command_put(struct state_store *s, const struct store_command_row *r)
{
    if (!r || !r->command_id)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    util_iso8601_now(now);
    const char *fl[] = {
        r->command_id,  r->device_id, r->action, r->params,
        r->source,      r->status,    r->error,  r->created_at ? r->created_at : now,
        r->completed_at};
    return append(F(s), store_op_new(STORE_OP_CMD, 0, fl, 9));
}

static void fr_get_status(struct state_store *s, struct store_status *out)
{
    struct front_store *f = F(s);
    if (f->w) {
        store_writer_status(f->w, out);
        return;
    }
    *out = (struct store_status){.ok = true};
}

static void fr_close(struct state_store *s)
{
    struct front_store *f = F(s);
    store_writer_stop(f->w); /* flushes; the backend is still open */
    if (f->b)
        f->b->ops->close(f->b);
    free(f);
}

wb_status store_front_open(struct state_store **out, const struct store_config *cfg,
                           const struct store_backend_ops *bops, const struct store_ops *ops,
                           char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *out = NULL;
    struct front_store *f = calloc(1, sizeof(*f));
    if (!f)
        return WB_ERR_NOMEM;
    f->base.ops = ops;
    f->cfg = *cfg;
    f->cfg.backend = bops->name;
    f->cfg.db_path = NULL; /* not ours to keep; the backend keeps its own copy */
    wb_status st = bops->open(&f->b, cfg, err, errlen);
    if (st == WB_OK && !cfg->read_only &&
        !(f->w = store_writer_start(f->b, cfg, cfg->db_path, err, errlen)))
        st = WB_ERR_NOMEM;
    if (st != WB_OK) {
        fr_close(&f->base);
        return st;
    }
    *out = &f->base;
    return WB_OK;
}

/* The wide table of state_store.h, the same for every backend. */
#define FRONT_OPS(backend_name, open_fn)                                                           \
    {                                                                                              \
        .name = backend_name, .open = open_fn, .close = fr_close, .get = store_front_get,          \
        .set = fr_set, .del = fr_del, .list = store_front_list, .flush = fr_flush,                 \
        .history_append = fr_history_append, .transition = fr_transition,                          \
        .history_query = store_front_history_query, .connection_append = fr_connection_append,     \
        .connection_query = store_front_connection_query, .device_upsert = fr_device_upsert,       \
        .command_put = fr_command_put, .command_query = store_front_command_query,                 \
        .get_status = fr_get_status,                                                               \
    }

static wb_status sqlite_open(struct state_store **out, const struct store_config *cfg, char *err,
                             size_t errlen)
{
    return store_front_open(out, cfg, &store_sqlite_backend, &store_sqlite_ops, err, errlen);
}

const struct store_ops store_sqlite_ops = FRONT_OPS("sqlite", sqlite_open);

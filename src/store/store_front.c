/*
 * store_front.c - the StateStore functions (state_store.h) over one
 * backend (store_backend.h) and the backend-neutral writer
 * (store_writer.h): what a caller hands in is checked, serialised and
 * queued here; reads overlay what is queued on what the backend has
 * committed. The reads live in store_front_read.c (get, list) and
 * store_front_rows.c (the row queries).
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
    return s->b;
}

static wb_status put(struct state_store *f, const char *key, char *text, bool is_set)
{
    if (!f->w) {
        free(text);
        return WB_ERR_READONLY;
    }
    return store_writer_put(f->w, key, text, is_set, NULL);
}

wb_status store_set(struct state_store *s, const char *key, json_object *value)
{
    if (!key || !value)
        return WB_ERR_INVALID;
    /* Serialised now, outside any lock: the caller may change value later. */
    char *text = strdup(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
    if (!text)
        return WB_ERR_NOMEM;
    return put(s, key, text, true);
}

wb_status store_delete(struct state_store *s, const char *key)
{
    if (!key)
        return WB_ERR_INVALID;
    return put(s, key, NULL, false);
}

wb_status store_flush(struct state_store *s)
{
    return s->w ? store_writer_flush(s->w) : WB_OK;
}

static wb_status append(struct state_store *f, struct store_op *o)
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

wb_status store_history_append(struct state_store *s, const char *device_id, json_object *state,
                               const char *ts)
{
    struct state_store *f = s;
    if (!f->cfg.history_enabled)
        return WB_OK;
    if (!device_id || !state)
        return WB_ERR_INVALID;
    int64_t ms = util_wall_ms();
    if (ts && !ts_parse_ms(ts, &ms))
        return WB_ERR_INVALID;
    const char *fl[] = {device_id, json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN),
                        NULL, NULL};
    struct store_op *o = store_op_new(STORE_OP_HIST, 0, fl, 4);
    if (o)
        o->ms = ms;
    return append(f, o);
}

wb_status store_history_put(struct state_store *s, const struct store_history_entry *e)
{
    if (!s->cfg.history_enabled)
        return WB_OK;
    if (!e || !e->device_id || !e->state)
        return WB_ERR_INVALID;
    const char *fl[] = {e->device_id, e->state, e->kind, e->stats};
    struct store_op *o = store_op_new(STORE_OP_HIST, 0, fl, 4);
    if (o)
        o->ms = e->ms > 0 ? e->ms : util_wall_ms();
    return append(s, o);
}

/* set + history_append of one JSON text, queued together under one lock,
 * so with commit_interval_ms 0 one commit carries both (store_transition).
 * The text comes from the device manager's own writer: it is stored as it
 * is, not parsed again on the hot path. */
wb_status store_transition(struct state_store *s, const char *key, const char *device_id,
                           const char *json, bool history)
{
    if (!device_id)
        return WB_ERR_INVALID;
    struct store_history_entry e = {.device_id = device_id, .state = json};
    return store_transition_with(s, key, json, history ? &e : NULL);
}

wb_status store_transition_with(struct state_store *s, const char *key, const char *json,
                                const struct store_history_entry *e)
{
    struct state_store *f = s;
    if (!key || !json || (e && (!e->device_id || !e->state)))
        return WB_ERR_INVALID;
    if (!f->w)
        return WB_ERR_READONLY;
    char *text = strdup(json);
    if (!text)
        return WB_ERR_NOMEM;
    struct store_op *o = NULL;
    if (e && f->cfg.history_enabled) {
        const char *fl[] = {e->device_id, e->state, e->kind, e->stats};
        if (!(o = store_op_new(STORE_OP_HIST, 0, fl, 4))) {
            free(text);
            return WB_ERR_NOMEM;
        }
        o->ms = e->ms > 0 ? e->ms : util_wall_ms();
    }
    return store_writer_put(f->w, key, text, true, o);
}

wb_status store_connection_append(struct state_store *s, const char *device_id, const char *event,
                                  const char *ts)
{
    if (!device_id || !event)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    if (!ts) {
        util_iso8601_now(now);
        ts = now;
    }
    const char *fl[] = {device_id, event, ts};
    return append(s, store_op_new(STORE_OP_CONN, 0, fl, 3));
}

wb_status store_device_upsert(struct state_store *s, const struct store_device_row *r)
{
    if (!r || !r->device_id)
        return WB_ERR_INVALID;
    const char *fl[] = {r->device_id, r->device_type, r->name, r->last_seen, r->connected_at};
    return append(s, store_op_new(STORE_OP_DEVICE, r->is_online, fl, 5));
}

wb_status store_command_put(struct state_store *s, const struct store_command_row *r)
{
    if (!r || !r->command_id)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    util_iso8601_now(now);
    const char *fl[] = {
        r->command_id,  r->device_id, r->action, r->params,
        r->source,      r->status,    r->error,  r->created_at ? r->created_at : now,
        r->completed_at};
    return append(s, store_op_new(STORE_OP_CMD, 0, fl, 9));
}

void store_get_status(struct state_store *s, struct store_status *out)
{
    struct state_store *f = s;
    if (f->w) {
        store_writer_status(f->w, out);
        if (f->b->ops->status)
            f->b->ops->status(f->b, out);
        return;
    }
    *out = (struct store_status){.ok = true};
}

void store_close(struct state_store *s)
{
    struct state_store *f = s;
    if (!f)
        return;
    store_writer_stop(f->w); /* flushes; the backend is still open */
    if (f->b)
        f->b->ops->close(f->b);
    free(f);
}

wb_status store_front_open(struct state_store **out, const struct store_config *cfg,
                           const struct store_backend_ops *bops, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *out = NULL;
    struct state_store *f = calloc(1, sizeof(*f));
    if (!f)
        return WB_ERR_NOMEM;
    f->cfg = *cfg;
    f->cfg.backend = bops->name;
    f->cfg.db_path = NULL; /* not ours to keep; the backend keeps its own copy */
    wb_status st = bops->open(&f->b, cfg, err, errlen);
    if (st == WB_OK && !cfg->read_only &&
        !(f->w =
              store_writer_start(f->b, cfg, f->b->where ? f->b->where : cfg->db_path, err, errlen)))
        st = WB_ERR_NOMEM;
    if (st != WB_OK) {
        store_close(f);
        return st;
    }
    *out = f;
    return WB_OK;
}

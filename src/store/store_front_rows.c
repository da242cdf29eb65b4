/*
 * store_front_rows.c - the history, connection and command-log queries:
 * the backend's committed rows merged with the rows still queued in the
 * writer, so a row appended a moment ago is in the answer and no commit is
 * forced (a query used to flush first: every HTTP history read cost a
 * transaction and an fsync-bound wait).
 *
 * store_writer_read_rows() holds the writer's commits off while it hands
 * out the queued rows (newest first) and the backend is read, so no row is
 * seen twice or missed. Queued rows are newer than every committed one (the
 * database orders by insertion), so they come first; the limit applies to
 * the whole. History applies the retention of the config to the queued
 * rows too (max rows per device through the limit, max age by time).
 * A time range (struct store_history_query) selects among the rows kept:
 * the queued rows count against max rows whether in the range or not (the
 * backend is told how many, q->ahead), and with ascending order the
 * committed rows come first.
 *
 * Commands are upserts by command_id: a queued op may complete a command
 * that is already committed. Each queued command is folded (in order, with
 * the COALESCE rules of the upsert) onto its committed row, looked up by
 * id; the folded rows replace their committed versions, the filter is
 * applied to them, and the whole is ordered newest first by created_at
 * (queued rows first on a tie).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_front.h"
#include "wbmb/util.h"

struct dev_read {
    struct state_store *s;
    const char *device_id;
    int64_t lim;    /* INT64_MAX: none */
    int64_t cutoff; /* history: oldest ms kept, INT64_MIN: none */
    struct store_rows *out;
};

static bool full(const struct dev_read *r)
{
    return r->lim != INT64_MAX && (int64_t)r->out->n >= r->lim;
}

/* What the backend should still return: 0 = no limit. */
static int rest(const struct dev_read *r)
{
    return r->lim == INT64_MAX ? 0 : (int)(r->lim - (int64_t)r->out->n);
}

/* A history query: the queued rows of the device are seen first (newest
 * first); those kept by retention count in ahead, those in the range are
 * kept in queued. Then, with the writer still held off, the committed rows
 * are read and the two are put together in the order asked. */
struct hist_read {
    struct state_store *s;
    const struct store_history_query *q;
    int64_t cutoff;       /* oldest ms kept, INT64_MIN: none */
    int64_t maxr;         /* history_max_rows, INT64_MAX: none */
    int64_t ahead;        /* queued rows of the device that retention keeps */
    struct store_rows in; /* those of them in the range, newest first */
    struct store_rows *out;
};

static wb_status hist_op(const struct store_op *o, void *ud)
{
    struct hist_read *r = ud;
    if (o->kind != STORE_OP_HIST || r->ahead >= r->maxr || o->ms < r->cutoff ||
        strcmp(o->f[0], r->q->device_id) != 0)
        return WB_OK;
    r->ahead++;
    if (o->ms < r->q->from_ms || o->ms > r->q->to_ms)
        return WB_OK;
    char ts[UTIL_TS_LEN];
    util_iso8601_from_ms(o->ms, ts); /* the format SQLite generates from ts_ms */
    const char *f[] = {o->f[0], ts, o->f[1], o->f[2], o->f[3]};
    return store_rows_add(&r->in, f);
}

static bool hist_full(const struct hist_read *r)
{
    return r->q->limit > 0 && r->out->n >= (size_t)r->q->limit;
}

static wb_status copy_row(struct store_rows *out, const struct store_history_row *h)
{
    const char *f[] = {h->device_id, h->ts, h->state, h->kind, h->stats};
    return store_rows_add(out, f);
}

static wb_status hist_db(void *ud)
{
    struct hist_read *r = ud;
    struct store_backend *b = r->s->b;
    struct store_history_query q = *r->q;
    q.ahead = r->ahead;
    bool db = r->ahead < r->maxr; /* else retention keeps queued rows only */
    wb_status st = WB_OK;
    if (!q.ascending) {
        for (size_t i = 0; st == WB_OK && i < r->in.n && !hist_full(r); i++)
            st = copy_row(r->out, &r->in.history[i]);
        if (st != WB_OK || !db || hist_full(r))
            return st;
        if (q.limit > 0)
            q.limit -= (int)r->out->n;
        return b->ops->history_rows(b, &q, r->out);
    }
    if (db)
        st = b->ops->history_rows(b, &q, r->out);
    for (size_t i = r->in.n; st == WB_OK && i-- > 0 && !hist_full(r);)
        st = copy_row(r->out, &r->in.history[i]);
    return st;
}

static wb_status conn_op(const struct store_op *o, void *ud)
{
    struct dev_read *r = ud;
    if (o->kind != STORE_OP_CONN || full(r) || strcmp(o->f[0], r->device_id) != 0)
        return WB_OK;
    return store_rows_add(r->out, o->f);
}

static wb_status conn_db(void *ud)
{
    struct dev_read *r = ud;
    return full(r) ? WB_OK : r->s->b->ops->connection_rows(r->s->b, r->device_id, rest(r), r->out);
}

static wb_status rows_done(wb_status st, struct store_rows *out)
{
    if (st != WB_OK)
        store_rows_free(out);
    return st;
}

wb_status store_history_query(struct state_store *s, const struct store_history_query *q,
                              struct store_rows *out)
{
    *out = STORE_ROWS(STORE_ROWS_HISTORY);
    if (!q || !q->device_id || q->from_ms > q->to_ms)
        return WB_ERR_INVALID;
    struct hist_read r = {.s = s,
                          .q = q,
                          .cutoff = INT64_MIN,
                          .maxr = s->cfg.history_max_rows ? s->cfg.history_max_rows : INT64_MAX,
                          .in = STORE_ROWS(STORE_ROWS_HISTORY),
                          .out = out};
    if (s->cfg.history_max_age_days)
        r.cutoff = util_wall_ms() - (int64_t)s->cfg.history_max_age_days * 86400000;
    wb_status st = s->w ? store_writer_read_rows(s->w, hist_db, hist_op, &r) : hist_db(&r);
    store_rows_free(&r.in);
    return rows_done(st, out);
}

wb_status store_history_rows(struct state_store *s, const char *device_id, int limit,
                             struct store_rows *out)
{
    struct store_history_query q = STORE_HISTORY_QUERY(device_id);
    q.limit = limit;
    return store_history_query(s, &q, out);
}

wb_status store_connection_rows(struct state_store *s, const char *device_id, int limit,
                                struct store_rows *out)
{
    *out = STORE_ROWS(STORE_ROWS_CONNECTIONS);
    if (!device_id)
        return WB_ERR_INVALID;
    struct dev_read r = {s, device_id, limit > 0 ? limit : INT64_MAX, INT64_MIN, out};
    if (!s->w)
        return rows_done(conn_db(&r), out);
    return rows_done(store_writer_read_rows(s->w, conn_db, conn_op, &r), out);
}

/* ---- commands --------------------------------------------------------- */

struct cmd_read {
    struct state_store *s;
    const struct store_command_filter *f;
    int limit;
    struct store_rows queued; /* the queued ops as rows, newest first */
    struct store_rows folded; /* one row per queued command_id, committed + queued */
    struct store_rows db;     /* the committed rows matching f */
    struct store_rows *out;
};

static wb_status cmd_op(const struct store_op *o, void *ud)
{
    struct cmd_read *c = ud;
    return o->kind == STORE_OP_CMD ? store_rows_add(&c->queued, o->f) : WB_OK;
}

static ssize_t find_id(const struct store_rows *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->commands[i].command_id, id) == 0)
            return (ssize_t)i;
    return -1;
}

/* *dst = a copy of src (NULL stays NULL); the old string is freed. */
static wb_status replace(const char **dst, const char *src)
{
    char *n = src ? strdup(src) : NULL;
    if (src && !n)
        return WB_ERR_NOMEM;
    free((char *)*dst); /* owned by the row set */
    *dst = n;
    return WB_OK;
}

/* The upsert's ON CONFLICT rules: status, error and completed_at are the
 * new row's; device_id, action, params, source coalesce; created_at stays. */
static wb_status fold(struct store_command_row *r, const struct store_command_row *op)
{
    wb_status st = replace(&r->status, op->status);
    if (st == WB_OK)
        st = replace(&r->error, op->error);
    if (st == WB_OK)
        st = replace(&r->completed_at, op->completed_at);
    const char **keep[] = {&r->device_id, &r->action, &r->params, &r->source};
    const char *const nv[] = {op->device_id, op->action, op->params, op->source};
    for (int k = 0; st == WB_OK && k < 4; k++)
        if (nv[k])
            st = replace(keep[k], nv[k]);
    return st;
}

static const char *const *cmd_fields(const struct store_command_row *r, const char *f[9])
{
    const char *v[] = {r->command_id, r->device_id, r->action,     r->params,      r->source,
                       r->status,     r->error,     r->created_at, r->completed_at};
    memcpy(f, v, sizeof(v));
    return f;
}

static bool matches(const struct store_command_row *r, const struct store_command_filter *f)
{
    if (f && f->status && (!r->status || strcmp(f->status, r->status) != 0))
        return false;
    if (f && f->device_id && (!r->device_id || strcmp(f->device_id, r->device_id) != 0))
        return false;
    return !(f && f->command_id && strcmp(f->command_id, r->command_id) != 0);
}

/* Folds the queued ops, oldest first, onto their committed rows. */
static wb_status fold_queued(struct cmd_read *c)
{
    struct store_backend *b = c->s->b;
    const char *f[9];
    wb_status st = WB_OK;
    for (size_t i = c->queued.n; st == WB_OK && i-- > 0;) {
        const struct store_command_row *op = &c->queued.commands[i];
        ssize_t at = find_id(&c->folded, op->command_id);
        if (at < 0) {
            struct store_command_filter one = {.command_id = op->command_id};
            size_t n0 = c->folded.n;
            st = b->ops->command_rows(b, &one, 1, &c->folded);
            if (st == WB_OK && c->folded.n == n0) {
                st = store_rows_add(&c->folded, cmd_fields(op, f)); /* a new command */
                continue;
            }
            at = (ssize_t)n0;
        }
        if (st == WB_OK)
            st = fold(&c->folded.commands[at], op);
    }
    return st;
}

static wb_status cmd_db(void *ud)
{
    struct cmd_read *c = ud;
    struct store_backend *b = c->s->b;
    wb_status st = fold_queued(c);
    /* Committed rows replaced by folded ones drop out: ask for as many more. */
    int lim = c->limit > 0 ? c->limit + (int)c->folded.n : 0;
    if (st == WB_OK)
        st = b->ops->command_rows(b, c->f, lim, &c->db);
    if (st != WB_OK)
        return st;
    /* Candidates: the folded rows that match (newest first), then the
     * committed rows not folded; a stable insertion sort by created_at
     * descending keeps that order on ties. */
    size_t cap = c->folded.n + c->db.n, n = 0;
    const struct store_command_row **v = malloc((cap + 1) * sizeof(*v));
    if (!v)
        return WB_ERR_NOMEM;
    for (size_t i = c->folded.n; i-- > 0;)
        if (matches(&c->folded.commands[i], c->f))
            v[n++] = &c->folded.commands[i];
    for (size_t i = 0; i < c->db.n; i++)
        if (find_id(&c->folded, c->db.commands[i].command_id) < 0)
            v[n++] = &c->db.commands[i];
    for (size_t i = 1; i < n; i++) {
        const struct store_command_row *x = v[i];
        size_t j = i;
        while (j > 0 && strcmp(v[j - 1]->created_at ? v[j - 1]->created_at : "",
                               x->created_at ? x->created_at : "") < 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    const char *f[9];
    for (size_t i = 0; st == WB_OK && i < n && (c->limit <= 0 || (int)i < c->limit); i++)
        st = store_rows_add(c->out, cmd_fields(v[i], f));
    free(v);
    return st;
}

wb_status store_command_rows(struct state_store *s, const struct store_command_filter *flt,
                             int limit, struct store_rows *out)
{
    *out = STORE_ROWS(STORE_ROWS_COMMANDS);
    if (!s->w)
        return rows_done(s->b->ops->command_rows(s->b, flt, limit, out), out);
    struct cmd_read c = {.s = s,
                         .f = flt,
                         .limit = limit,
                         .queued = STORE_ROWS(STORE_ROWS_COMMANDS),
                         .folded = STORE_ROWS(STORE_ROWS_COMMANDS),
                         .db = STORE_ROWS(STORE_ROWS_COMMANDS),
                         .out = out};
    wb_status st = store_writer_read_rows(s->w, cmd_db, cmd_op, &c);
    store_rows_free(&c.queued);
    store_rows_free(&c.folded);
    store_rows_free(&c.db);
    return rows_done(st, out);
}

/*
 * store_pg_read.c - the read side of the PostgreSQL backend: committed rows
 * of this bridge's site only, on the readers' connection (s->r, under
 * rlock). A read whose connection is found broken connects again and runs
 * once more; a second failure is returned. The overlay of what is still
 * queued is store_front_read.c's, as for every backend.
 *
 * The history query applies the retention exactly, like SQLite's: of the
 * newest history_max_rows rows of the device, those not older than
 * history_max_age_days, those in the query's time range, in its order, at
 * most limit.
 */
#include "store/store_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

enum { R_GET, R_SCAN, R_HIST, R_HIST_ASC, R_CONN, R_CMD, R_COUNT };

const struct pg_stmt store_pg_rstmts[R_COUNT] = {
    [R_GET] = {"r_get", "SELECT value FROM state_store WHERE site = $1 AND key = $2", 2},
    /* A key range, not LIKE: '_' and '%' are ordinary characters. */
    [R_SCAN] = {"r_scan",
                "SELECT key, value FROM state_store WHERE site = $1 AND key >= $2"
                " AND ($3::text IS NULL OR key < $3) ORDER BY key",
                3},
    /* Retention first: rows from the $3-th newest of the device on ($3
     * NULL: all), not older than $4 (the age cutoff or the range's start,
     * whichever is later), up to $5; both walk idx_snapshots_device. */
    [R_HIST] =
        {"r_hist",
         "SELECT device_id, ts, state, kind, stats FROM device_state_snapshots WHERE site = $1"
         " AND device_id = $2 AND id >= CASE WHEN $3::bigint IS NULL THEN 0 ELSE coalesce(("
         "SELECT id FROM device_state_snapshots WHERE site = $1 AND device_id = $2"
         " ORDER BY id DESC OFFSET $3::bigint - 1 LIMIT 1), 0) END"
         " AND ts_ms >= $4::bigint AND ts_ms <= $5::bigint ORDER BY id DESC LIMIT $6::bigint",
         6},
    [R_HIST_ASC] =
        {"r_hist_asc",
         "SELECT device_id, ts, state, kind, stats FROM device_state_snapshots WHERE site = $1"
         " AND device_id = $2 AND id >= CASE WHEN $3::bigint IS NULL THEN 0 ELSE coalesce(("
         "SELECT id FROM device_state_snapshots WHERE site = $1 AND device_id = $2"
         " ORDER BY id DESC OFFSET $3::bigint - 1 LIMIT 1), 0) END"
         " AND ts_ms >= $4::bigint AND ts_ms <= $5::bigint ORDER BY id ASC LIMIT $6::bigint",
         6},
    [R_CONN] = {"r_conn",
                "SELECT device_id, event, ts FROM device_connection_logs"
                " WHERE site = $1 AND device_id = $2 ORDER BY id DESC LIMIT $3::bigint",
                3},
    [R_CMD] = {"r_cmd",
               "SELECT command_id, device_id, action, params, source, status, error, created_at,"
               " completed_at FROM command_logs WHERE site = $1"
               " AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR device_id = $3)"
               " AND ($4::text IS NULL OR command_id = $4)"
               " ORDER BY created_at DESC, seq DESC LIMIT $5::bigint",
               5},
};
const size_t store_pg_n_rstmts = R_COUNT;

/* Runs reader statement stmt; the caller holds rlock and PQclear()s the
 * result. NULL (logged) when it failed twice or the server is down. */
static PGresult *query(struct pg_store *s, int stmt, const char *const *params)
{
    char err[256];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->r && !(s->r = store_pg_connect(s, store_pg_rstmts, R_COUNT, err, sizeof(err))))
            break;
        PGresult *res = pq->execPrepared(s->r, store_pg_rstmts[stmt].name,
                                         store_pg_rstmts[stmt].nparams, params, NULL, NULL, 0);
        if (store_pg_ok(s->r, res, PGRES_TUPLES_OK, err, sizeof(err)))
            return res;
        pq->clear(res);
        if (pq->status(s->r) == CONNECTION_OK)
            break; /* the statement failed, not the connection */
        pq->finish(s->r);
        s->r = NULL;
    }
    log_warn("store: reading from postgresql: %s", err);
    return NULL;
}

static const char *val(PGresult *res, int row, int col)
{
    return pq->getisnull(res, row, col) ? NULL : pq->getvalue(res, row, col);
}

wb_status store_pg_get(struct store_backend *base, const char *key, char **text)
{
    struct pg_store *s = PG(base);
    *text = NULL;
    const char *p[] = {s->site, key};
    wb_lock(&s->rlock);
    PGresult *res = query(s, R_GET, p);
    wb_status ret = !res                                        ? WB_ERR_DB
                    : pq->ntuples(res) == 0                     ? WB_ERR_NOT_FOUND
                    : (*text = strdup(pq->getvalue(res, 0, 0))) ? WB_OK
                                                                : WB_ERR_NOMEM;
    pq->clear(res);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

/* The smallest string greater than every string starting with prefix:
 * the prefix with its last byte below 0xff incremented. 0 = no bound. */
static int prefix_upper(const char *prefix, char *out, size_t outlen)
{
    size_t n = strlen(prefix);
    if (n >= outlen)
        return 0;
    memcpy(out, prefix, n + 1);
    while (n > 0 && (unsigned char)out[n - 1] == 0xff)
        out[--n] = '\0';
    if (n == 0)
        return 0;
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return 1;
}

wb_status store_pg_scan(struct store_backend *base, const char *prefix, store_scan_cb cb, void *ud)
{
    struct pg_store *s = PG(base);
    char upper[1024];
    size_t plen = strlen(prefix);
    const char *p[] = {s->site, prefix, prefix_upper(prefix, upper, sizeof(upper)) ? upper : NULL};
    wb_lock(&s->rlock);
    PGresult *res = query(s, R_SCAN, p);
    pthread_mutex_unlock(&s->rlock);
    if (!res)
        return WB_ERR_DB;
    /* The callbacks run without rlock: they may read the store. */
    wb_status ret = WB_OK;
    for (int i = 0, n = pq->ntuples(res); i < n; i++) {
        const char *k = pq->getvalue(res, i, 0);
        if (strncmp(k, prefix, plen) != 0)
            continue;
        int r = cb(k, pq->getvalue(res, i, 1), ud);
        if (r) {
            ret = r < 0 ? WB_ERR_NOMEM : WB_OK;
            break;
        }
    }
    pq->clear(res);
    return ret;
}

/* Adds each result row (ncol columns in the row struct's order) to out. */
static wb_status rows(struct pg_store *s, int stmt, const char *const *params, int ncol,
                      struct store_rows *out)
{
    wb_lock(&s->rlock);
    PGresult *res = query(s, stmt, params);
    pthread_mutex_unlock(&s->rlock);
    if (!res)
        return WB_ERR_DB;
    wb_status ret = WB_OK;
    for (int i = 0, n = pq->ntuples(res); ret == WB_OK && i < n; i++) {
        const char *f[9];
        for (int c = 0; c < ncol; c++)
            f[c] = val(res, i, c);
        ret = store_rows_add(out, f);
    }
    pq->clear(res);
    return ret;
}

wb_status store_pg_history_rows(struct store_backend *base, const struct store_history_query *q,
                                struct store_rows *out)
{
    struct pg_store *s = PG(base);
    char max[24], from[24], to[24], lim[16];
    int64_t f = q->from_ms;
    if (s->cfg.history_max_age_days) {
        int64_t cut = util_wall_ms() - (int64_t)s->cfg.history_max_age_days * 86400000;
        if (cut > f)
            f = cut;
    }
    snprintf(max, sizeof(max), "%" PRId64, (int64_t)s->cfg.history_max_rows - q->ahead);
    snprintf(from, sizeof(from), "%" PRId64, f);
    snprintf(to, sizeof(to), "%" PRId64, q->to_ms);
    snprintf(lim, sizeof(lim), "%d", q->limit);
    const char *p[] = {s->site, q->device_id, s->cfg.history_max_rows ? max : NULL,
                       from,    to,           q->limit > 0 ? lim : NULL};
    return rows(s, q->ascending ? R_HIST_ASC : R_HIST, p, 5, out);
}

wb_status store_pg_connection_rows(struct store_backend *base, const char *device_id, int limit,
                                   struct store_rows *out)
{
    struct pg_store *s = PG(base);
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[] = {s->site, device_id, limit > 0 ? lim : NULL};
    return rows(s, R_CONN, p, 3, out);
}

wb_status store_pg_command_rows(struct store_backend *base, const struct store_command_filter *f,
                                int limit, struct store_rows *out)
{
    struct pg_store *s = PG(base);
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[] = {s->site, f ? f->status : NULL, f ? f->device_id : NULL,
                       f ? f->command_id : NULL, limit > 0 ? lim : NULL};
    return rows(s, R_CMD, p, 9, out);
}

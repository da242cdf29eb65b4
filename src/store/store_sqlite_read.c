/*
 * store_sqlite_read.c - the read side of the SQLite backend.
 *
 * Owns the reader connection's statements (s->r[], used only under rlock).
 * Everything here reads committed rows only; the overlay of what is still
 * queued is store_front_read.c's. scan() uses a key range (key >= prefix
 * AND key < prefix-with-last-byte+1), not LIKE, so it walks the primary-key
 * index and treats '_' and '%' as ordinary characters.
 */
#include "store/store_sqlite.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

static const char *const rsql[R_COUNT] = {
    [R_GET] = "SELECT value FROM state_store WHERE key = ?1",
    [R_LIST_FROM] = "SELECT key, value FROM state_store WHERE key >= ?1 ORDER BY key",
    [R_LIST_RANGE] = "SELECT key, value FROM state_store WHERE key >= ?1 AND key < ?2"
                     " ORDER BY key",
    /* The chain of device ?2 from its head ?1 (store_sqlite_history.c),
     * walked no further than id ?5 (the time bisection's lower bound).
     * m counts the rows at or after the age cutoff ?3 (ms) and stops the
     * walk at ?4 (history_max_rows: retention first); k counts the rows in
     * the range [?6, ?7] and stops a newest-first walk at the limit ?8.
     * The rows come out in the walk's order, newest first: a recursive CTE
     * without ORDER BY is a FIFO queue, so no sort (a temporary b-tree of
     * every row of the range) is needed. */
    [R_HIST] = "WITH RECURSIVE c(id, prev, ms, ts, state, kind, stats, m, k) AS ("
               " SELECT id, prev_id, ts_ms, ts, state, kind, stats, ts_ms >= ?3,"
               " ts_ms >= ?3 AND ts_ms BETWEEN ?6 AND ?7 FROM device_state_snapshots"
               " WHERE id = ?1 AND device_id = ?2"
               " UNION ALL"
               " SELECT s.id, s.prev_id, s.ts_ms, s.ts, s.state, s.kind, s.stats,"
               " c.m + (s.ts_ms >= ?3),"
               " c.k + (s.ts_ms >= ?3 AND s.ts_ms BETWEEN ?6 AND ?7) FROM c"
               " JOIN device_state_snapshots s ON s.id = c.prev"
               " WHERE s.id < c.id AND s.id >= ?5 AND s.device_id = ?2 AND c.m < ?4 AND c.k < ?8)"
               " SELECT ?2, ts, state, kind, stats FROM c WHERE ms >= ?3 AND ms BETWEEN ?6 AND ?7 "
               "LIMIT ?8",
    /* The same, oldest first, for a limit: the whole range is walked and
     * sorted (without a limit the newest-first rows are reversed instead). */
    [R_HIST_ASC] =
        "WITH RECURSIVE c(id, prev, ms, ts, state, kind, stats, m, k) AS ("
        " SELECT id, prev_id, ts_ms, ts, state, kind, stats, ts_ms >= ?3,"
        " ts_ms >= ?3 AND ts_ms BETWEEN ?6 AND ?7 FROM device_state_snapshots"
        " WHERE id = ?1 AND device_id = ?2"
        " UNION ALL"
        " SELECT s.id, s.prev_id, s.ts_ms, s.ts, s.state, s.kind, s.stats,"
        " c.m + (s.ts_ms >= ?3),"
        " c.k + (s.ts_ms >= ?3 AND s.ts_ms BETWEEN ?6 AND ?7) FROM c"
        " JOIN device_state_snapshots s ON s.id = c.prev"
        " WHERE s.id < c.id AND s.id >= ?5 AND s.device_id = ?2 AND c.m < ?4)"
        " SELECT ?2, ts, state, kind, stats FROM c WHERE ms >= ?3 AND ms BETWEEN ?6 AND ?7"
        " ORDER BY id ASC LIMIT ?8",
    /* The bounds and one rowid seek of the time bisection. */
    /* Two subqueries: min() and max() together in one SELECT would scan. */
    [R_IDS] = "SELECT (SELECT min(id) FROM device_state_snapshots),"
              " (SELECT max(id) FROM device_state_snapshots)",
    [R_SEEK] = "SELECT id, ts_ms FROM device_state_snapshots WHERE id >= ?1 ORDER BY id LIMIT 1",
    [R_CONN] = "SELECT device_id, event, ts FROM device_connection_logs WHERE device_id = ?1"
               " ORDER BY id DESC LIMIT ?2",
    [R_CMD] = "SELECT command_id, device_id, action, params, source, status, error, created_at,"
              " completed_at FROM command_logs WHERE (?1 IS NULL OR status = ?1)"
              " AND (?2 IS NULL OR device_id = ?2) ORDER BY created_at DESC, rowid DESC"
              " LIMIT ?3",
    /* One command by its id (the primary key), the other filters as R_CMD. */
    [R_CMD_ID] = "SELECT command_id, device_id, action, params, source, status, error,"
                 " created_at, completed_at FROM command_logs WHERE command_id = ?4"
                 " AND (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR device_id = ?2)"
                 " LIMIT ?3",
};

wb_status store_sqlite_prepare_reads(struct sqlite_store *s, char *err, size_t errlen)
{
    for (int i = 0; i < R_COUNT; i++)
        if (sqlite3_prepare_v3(s->rdb, rsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->r[i], NULL)) {
            snprintf(err, errlen, "%s: preparing statements: %s", s->db_path,
                     sqlite3_errmsg(s->rdb));
            return WB_ERR_DB;
        }
    return WB_OK;
}

/* ---- reads ------------------------------------------------------------ */

wb_status store_sqlite_get(struct store_backend *base, const char *key, char **text)
{
    struct sqlite_store *s = S(base);
    *text = NULL;
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[R_GET];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    wb_status ret = WB_ERR_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        ret = !t ? WB_ERR_INVALID : (*text = strdup(t)) ? WB_OK : WB_ERR_NOMEM;
    } else if (rc != SQLITE_DONE) {
        ret = store_sqlite_status(rc);
        log_warn("store: reading %s: %s", key, sqlite3_errmsg(s->rdb));
    }
    sqlite3_reset(st);
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

wb_status store_sqlite_scan(struct store_backend *base, const char *prefix, store_scan_cb cb,
                            void *ud)
{
    struct sqlite_store *s = S(base);
    size_t plen = strlen(prefix);
    wb_status ret = WB_OK;
    char upper[1024];
    wb_lock(&s->rlock);
    sqlite3_stmt *st =
        s->r[prefix_upper(prefix, upper, sizeof(upper)) ? R_LIST_RANGE : R_LIST_FROM];
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    if (st == s->r[R_LIST_RANGE])
        sqlite3_bind_text(st, 2, upper, -1, SQLITE_STATIC);
    int rc = SQLITE_DONE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        if (!k || strncmp(k, prefix, plen) != 0)
            continue;
        int r = cb(k, v, ud);
        if (r) {
            ret = r < 0 ? WB_ERR_NOMEM : WB_OK;
            rc = SQLITE_DONE;
            break;
        }
    }
    if (ret == WB_OK && rc != SQLITE_DONE)
        ret = store_sqlite_status(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

/* ---- the row queries -------------------------------------------------- */

/* Runs a prepared reader statement, adding each result row (ncol text
 * columns, in the row struct's order) to out. */
static wb_status query_rows(sqlite3_stmt *st, int ncol, struct store_rows *out)
{
    int rc;
    wb_status ret = WB_OK;
    while (ret == WB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *f[9];
        for (int i = 0; i < ncol; i++)
            f[i] = (const char *)sqlite3_column_text(st, i);
        ret = store_rows_add(out, f);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ret == WB_OK && rc != SQLITE_DONE)
        ret = store_sqlite_status(rc);
    return ret;
}

/* Two int64 columns of one row of st (run with its bindings); false when
 * there is no row or a NULL. Caller holds rlock. */
static bool step2(sqlite3_stmt *st, int64_t *a, int64_t *b)
{
    bool ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (ok) {
        *a = sqlite3_column_int64(st, 0);
        *b = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

/* The smallest id whose row is not older than from_ms: ts_ms grows
 * with id (rows are appended with the wall clock), so a bisection of the
 * whole table by rowid seeks (about 20 for a million rows, each a few
 * page reads the cache mostly has) finds where a time range starts without
 * any index on time. Rows below it are older than from_ms; a clock that
 * went back can only make a range miss rows written around the jump.
 * Caller holds rlock. */
static int64_t first_id_from(struct sqlite_store *s, int64_t from_ms)
{
    int64_t lo, hi, id, ms;
    if (!step2(s->r[R_IDS], &lo, &hi))
        return 0;
    int64_t end = hi + 1;
    while (lo < end) {
        int64_t mid = lo + (end - lo) / 2;
        sqlite3_bind_int64(s->r[R_SEEK], 1, mid);
        if (!step2(s->r[R_SEEK], &id, &ms) || ms >= from_ms)
            end = mid;
        else
            lo = id + 1;
    }
    return lo;
}

wb_status store_sqlite_history_rows(struct store_backend *base, const struct store_history_query *q,
                                    struct store_rows *out)
{
    struct sqlite_store *s = S(base);
    /* Retention runs in batches; the query applies the limits exactly. */
    int64_t keep =
        s->cfg.history_max_rows ? (int64_t)s->cfg.history_max_rows - q->ahead : INT64_MAX;
    int64_t cutoff = INT64_MIN;
    if (s->cfg.history_max_age_days)
        cutoff = util_wall_ms() - (int64_t)s->cfg.history_max_age_days * 86400000;
    int64_t from = q->from_ms > cutoff ? q->from_ms : cutoff;
    wb_lock(&s->lock);
    int64_t head = store_sqlite_hist_head(s, q->device_id);
    pthread_mutex_unlock(&s->lock);
    wb_lock(&s->rlock);
    int64_t lo = from > INT64_MIN ? first_id_from(s, from) : 0;
    /* Oldest first without a limit: the walk's rows, reversed below. */
    bool reverse = q->ascending && q->limit <= 0;
    size_t n0 = out->n;
    sqlite3_stmt *st = s->r[q->ascending && !reverse ? R_HIST_ASC : R_HIST];
    sqlite3_bind_int64(st, 1, head);
    sqlite3_bind_text(st, 2, q->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cutoff);
    sqlite3_bind_int64(st, 4, keep);
    sqlite3_bind_int64(st, 5, lo);
    sqlite3_bind_int64(st, 6, q->from_ms);
    sqlite3_bind_int64(st, 7, q->to_ms);
    sqlite3_bind_int64(st, 8, q->limit > 0 ? q->limit : INT64_MAX);
    wb_status ret = query_rows(st, 5, out);
    pthread_mutex_unlock(&s->rlock);
    for (size_t i = n0, j = out->n; reverse && ret == WB_OK && i + 1 < j; i++, j--) {
        struct store_history_row t = out->history[i];
        out->history[i] = out->history[j - 1];
        out->history[j - 1] = t;
    }
    return ret;
}

wb_status store_sqlite_connection_rows(struct store_backend *base, const char *device_id, int limit,
                                       struct store_rows *out)
{
    struct sqlite_store *s = S(base);
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[R_CONN];
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    wb_status ret = query_rows(st, 3, out);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

wb_status store_sqlite_command_rows(struct store_backend *base,
                                    const struct store_command_filter *f, int limit,
                                    struct store_rows *out)
{
    struct sqlite_store *s = S(base);
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[f && f->command_id ? R_CMD_ID : R_CMD];
    sqlite3_bind_text(st, 1, f ? f->status : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f ? f->device_id : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
    if (f && f->command_id)
        sqlite3_bind_text(st, 4, f->command_id, -1, SQLITE_STATIC);
    wb_status ret = query_rows(st, 9, out);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

/*
 * store_pg_write.c - one batch of the writer (store_writer.c) in one
 * PostgreSQL transaction, and the retention of the history.
 *
 * A batch is few statements, whatever its size: the state keys go in one
 * INSERT ... ON CONFLICT over unnest() of two text arrays and one DELETE
 * over an array, the history snapshots in one INSERT over unnest() of four
 * arrays (WITH ORDINALITY keeps their order, so ids grow in the order the
 * rows came); connection logs, devices and commands (few, and one command
 * may be upserted twice in a batch) one prepared INSERT each. The arrays
 * are bound as parameters in PostgreSQL's array text form; nothing of a
 * value ever becomes SQL text.
 *
 * Retention runs once a minute inside a commit: the rows of each device
 * that got history since the last pass beyond history_max_rows, and every
 * row older than history_max_age_days. Between passes the reads apply the
 * limits exactly (store_pg_read.c).
 *
 * A failed commit is rolled back and the batch is offered again by the
 * writer. When the connection itself is gone it is closed, and the next
 * commit connects again. A connection lost during COMMIT leaves the outcome
 * unknown: the batch is written again, which is harmless for the state
 * (upserts) and the commands (upserted by id) and may leave a history or
 * connection-log row twice.
 */
#include "store/store_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/util.h"

#define PRUNE_INTERVAL_MS 60000

enum { W_KV_PUT, W_KV_DEL, W_HIST, W_CONN, W_DEVICE, W_CMD, W_PRUNE_ROWS, W_PRUNE_AGE, W_COUNT };

const struct pg_stmt store_pg_wstmts[W_COUNT] = {
    [W_KV_PUT] = {"w_kv_put",
                  "INSERT INTO state_store(site, key, value, updated_ms, updated_at)"
                  " SELECT $1, k, v, $4::bigint, $5 FROM unnest($2::text[], $3::text[]) AS u(k, v)"
                  " ON CONFLICT (site, key) DO UPDATE SET value = excluded.value,"
                  " updated_ms = excluded.updated_ms, updated_at = excluded.updated_at",
                  5},
    [W_KV_DEL] = {"w_kv_del", "DELETE FROM state_store WHERE site = $1 AND key = ANY($2::text[])",
                  2},
    [W_HIST] = {"w_hist",
                "INSERT INTO device_state_snapshots(site, device_id, state, ts, ts_ms, kind, stats)"
                " SELECT $1, d, s, t, m, k, x FROM unnest($2::text[], $3::text[], $4::text[],"
                " $5::bigint[], $6::text[], $7::text[]) WITH ORDINALITY AS u(d, s, t, m, k, x, n)"
                " ORDER BY n",
                7},
    [W_CONN] = {"w_conn",
                "INSERT INTO device_connection_logs(site, device_id, event, ts)"
                " VALUES ($1, $2, $3, $4)",
                4},
    [W_DEVICE] = {"w_device",
                  "INSERT INTO devices(site, device_id, device_type, name, last_seen,"
                  " connected_at, is_online) VALUES ($1, $2, $3, $4, $5, $6, $7::integer)"
                  " ON CONFLICT (site, device_id) DO UPDATE"
                  " SET device_type = excluded.device_type, name = excluded.name,"
                  " is_online = excluded.is_online,"
                  " last_seen = COALESCE(excluded.last_seen, devices.last_seen),"
                  " connected_at = COALESCE(excluded.connected_at, devices.connected_at)",
                  7},
    [W_CMD] = {"w_cmd",
               "INSERT INTO command_logs(site, command_id, device_id, action, params, source,"
               " status, error, created_at, completed_at)"
               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
               " ON CONFLICT (site, command_id) DO UPDATE SET status = excluded.status,"
               " error = excluded.error, completed_at = excluded.completed_at,"
               " device_id = COALESCE(excluded.device_id, command_logs.device_id),"
               " action = COALESCE(excluded.action, command_logs.action),"
               " params = COALESCE(excluded.params, command_logs.params),"
               " source = COALESCE(excluded.source, command_logs.source)",
               10},
    /* The rows of device $2 older than its newest $3. */
    [W_PRUNE_ROWS] = {"w_prune_rows",
                      "DELETE FROM device_state_snapshots WHERE site = $1 AND device_id = $2"
                      " AND id <= (SELECT id FROM device_state_snapshots WHERE site = $1"
                      " AND device_id = $2 ORDER BY id DESC OFFSET $3::bigint LIMIT 1)",
                      3},
    [W_PRUNE_AGE] = {"w_prune_age",
                     "DELETE FROM device_state_snapshots WHERE site = $1 AND ts_ms < $2::bigint",
                     2},
};
const size_t store_pg_n_wstmts = W_COUNT;

/* ---- array parameters ------------------------------------------------------ */

/* A growing text buffer; oom sticks. */
struct buf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* Appends one element of an array literal: "..." with " and \ escaped, or
 * NULL. The caller writes "{", the commas and "}". */
static void put_elem(struct buf *b, const char *s)
{
    if (!s) {
        put(b, "NULL", 4);
        return;
    }
    put(b, "\"", 1);
    for (const char *p = s;;) {
        size_t run = strcspn(p, "\"\\");
        put(b, p, run);
        p += run;
        if (!*p)
            break;
        put(b, "\\", 1);
        put(b, p++, 1);
    }
    put(b, "\"", 1);
}

static void put_sep(struct buf *b, size_t i)
{
    put(b, i ? "," : "{", 1);
}

static void end_array(struct buf *b, size_t n)
{
    put(b, n ? "}" : "{}", n ? 1 : 2);
}

/* ---- one batch ------------------------------------------------------------- */

struct tx {
    struct pg_store *s;
    char *err;
    size_t errlen;
};

static bool run(struct tx *t, int stmt, const char *const *params)
{
    PGresult *res = pq->execPrepared(t->s->w, store_pg_wstmts[stmt].name,
                                     store_pg_wstmts[stmt].nparams, params, NULL, NULL, 0);
    bool ok = store_pg_ok(t->s->w, res, PGRES_COMMAND_OK, t->err, t->errlen);
    pq->clear(res);
    return ok;
}

static bool exec_plain(struct tx *t, const char *sql)
{
    PGresult *res = pq->exec(t->s->w, sql);
    bool ok = store_pg_ok(t->s->w, res, PGRES_COMMAND_OK, t->err, t->errlen);
    pq->clear(res);
    return ok;
}

static bool write_keys(struct tx *t, const struct store_batch *b, int64_t now_ms)
{
    struct buf keys = {0}, vals = {0}, dels = {0};
    size_t nput = 0, ndel = 0;
    for (size_t i = 0; i < b->kv.cap; i++) {
        const struct smap_entry *e = &b->kv.slots[i];
        if (!e->key)
            continue;
        if (e->text) {
            put_sep(&keys, nput);
            put_elem(&keys, e->key);
            put_sep(&vals, nput++);
            put_elem(&vals, e->text);
        } else {
            put_sep(&dels, ndel++);
            put_elem(&dels, e->key);
        }
    }
    end_array(&keys, nput);
    end_array(&vals, nput);
    end_array(&dels, ndel);
    bool ok = !keys.oom && !vals.oom && !dels.oom;
    if (!ok)
        snprintf(t->err, t->errlen, "out of memory");
    char ms[24], at[UTIL_TS_LEN];
    snprintf(ms, sizeof(ms), "%" PRId64, now_ms);
    util_iso8601_from_ms(now_ms, at);
    if (ok && nput) {
        const char *p[] = {t->s->site, keys.p, vals.p, ms, at};
        ok = run(t, W_KV_PUT, p);
    }
    if (ok && ndel) {
        const char *p[] = {t->s->site, dels.p};
        ok = run(t, W_KV_DEL, p);
    }
    free(keys.p);
    free(vals.p);
    free(dels.p);
    return ok;
}

static bool write_history(struct tx *t, const struct store_batch *b)
{
    /* device, state, ts, ts_ms, kind, stats: one array each */
    struct buf a[6] = {{0}};
    size_t n = 0;
    bool ok = true;
    for (const struct store_op *o = b->head; o; o = o->next) {
        if (o->kind != STORE_OP_HIST)
            continue;
        char at[UTIL_TS_LEN], num[24];
        util_iso8601_from_ms(o->ms, at);
        snprintf(num, sizeof(num), "%" PRId64, o->ms);
        for (int i = 0; i < 6; i++)
            put_sep(&a[i], n);
        n++;
        put_elem(&a[0], o->f[0]);
        put_elem(&a[1], o->f[1]);
        put_elem(&a[2], at);
        put(&a[3], num, strlen(num));
        put_elem(&a[4], o->f[2]);
        put_elem(&a[5], o->f[3]);
        if (smap_put(&t->s->touched, o->f[0], NULL, 0, NULL) != WB_OK)
            ok = false;
    }
    for (int i = 0; i < 6; i++) {
        end_array(&a[i], n);
        ok = ok && !a[i].oom;
    }
    if (!ok) {
        snprintf(t->err, t->errlen, "out of memory");
    } else if (n) {
        const char *p[] = {t->s->site, a[0].p, a[1].p, a[2].p, a[3].p, a[4].p, a[5].p};
        ok = run(t, W_HIST, p);
    }
    for (int i = 0; i < 6; i++)
        free(a[i].p);
    return ok;
}

static bool write_op(struct tx *t, const struct store_op *o)
{
    const char *p[10] = {t->s->site};
    int nf = store_op_nfields(o->kind);
    for (int i = 0; i < nf; i++)
        p[i + 1] = o->f[i];
    switch (o->kind) {
    case STORE_OP_CONN:
        return run(t, W_CONN, p);
    case STORE_OP_DEVICE:
        p[6] = o->flag ? "1" : "0";
        return run(t, W_DEVICE, p);
    case STORE_OP_CMD:
        return run(t, W_CMD, p);
    case STORE_OP_HIST:
        break;
    }
    return true;
}

/* Retention, once a minute (the commit decides when): history_max_rows for
 * the devices written since the last pass, history_max_age_days for all. */
static bool prune(struct tx *t)
{
    struct pg_store *s = t->s;
    if (s->cfg.history_max_rows)
        for (size_t i = 0; i < s->touched.cap; i++) {
            const char *dev = s->touched.slots[i].key;
            if (!dev)
                continue;
            char max[16];
            snprintf(max, sizeof(max), "%u", s->cfg.history_max_rows);
            const char *p[] = {s->site, dev, max};
            if (!run(t, W_PRUNE_ROWS, p))
                return false;
        }
    if (s->cfg.history_max_age_days) {
        char cut[24];
        snprintf(cut, sizeof(cut), "%" PRId64,
                 util_wall_ms() - (int64_t)s->cfg.history_max_age_days * 86400000);
        const char *p[] = {s->site, cut};
        if (!run(t, W_PRUNE_AGE, p))
            return false;
    }
    return true;
}

wb_status store_pg_commit(struct store_backend *base, const struct store_batch *b, char *err,
                          size_t errlen)
{
    struct pg_store *s = PG(base);
    if (!s->w && !(s->w = store_pg_connect(s, store_pg_wstmts, W_COUNT, err, errlen)))
        return WB_ERR_DB;
    struct tx t = {s, err, errlen};
    bool pruning = false;
    bool ok = exec_plain(&t, "BEGIN") && write_keys(&t, b, util_wall_ms()) && write_history(&t, b);
    for (const struct store_op *o = b->head; ok && o; o = o->next)
        ok = write_op(&t, o);
    if (ok) {
        int64_t now = util_mono_ms();
        pruning = !s->last_prune_ms || now - s->last_prune_ms >= PRUNE_INTERVAL_MS;
        if (pruning)
            ok = prune(&t);
    }
    if (ok)
        ok = exec_plain(&t, "COMMIT");
    if (ok) {
        if (pruning) {
            s->last_prune_ms = util_mono_ms();
            smap_clear(&s->touched);
        }
        return WB_OK;
    }
    if (pq->status(s->w) != CONNECTION_OK) {
        pq->finish(s->w);
        s->w = NULL;
    } else if (pq->transactionStatus(s->w) != PQTRANS_IDLE) {
        char ignored[64];
        struct tx r = {s, ignored, sizeof(ignored)};
        exec_plain(&r, "ROLLBACK");
    }
    return WB_ERR_DB;
}

/*
 * store_memory.c - the in-memory StateStore backend (store_backend.h; no
 * durability).
 *
 * Owns a hash map key -> JSON text, and plain arrays for history snapshots,
 * connection events, devices and commands; all under one mutex, so every
 * function may be called from any thread. It exists for the unit tests of
 * the modules above the store and for running without a disk
 * (persistence.backend: memory).
 *
 * It commits what the writer (store_writer.c) hands it like any backend,
 * but a commit here costs nothing, so it asks for no commit window
 * (base.no_window): every change is committed when the call returns,
 * status.pending is 0 then, and each set/delete/append is one commit.
 * Nothing needs a sync (base.durable_commits). History limits
 * (history_max_rows per device, history_max_age_days) are applied at commit
 * and query time, exactly.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_backend.h"
#include "wbmb/lockstat.h"
#include "wbmb/util.h"

/* One row: up to nine strings (history: device, state, ts, kind, stats; connection:
 * device, event, ts; device: the devices columns; command: the
 * command_logs columns, in struct store_command_row order). */
struct mrow {
    char *f[9];
    int flag;
};

struct mrows {
    struct mrow *v;
    size_t n, cap;
};

struct memory_store {
    struct store_backend base;
    struct store_config cfg;
    pthread_mutex_t lock;
    struct smap kv;
    struct mrows hist, conn, cmds, devices;
};

#define M(x) ((struct memory_store *)(x))

static void row_free(struct mrow *r)
{
    for (int i = 0; i < 9; i++)
        free(r->f[i]);
}

static void rows_free(struct mrows *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        row_free(&rs->v[i]);
    free(rs->v);
}

/* Fills r with copies of n strings (NULL stays NULL). */
static wb_status row_fill(struct mrow *r, const char *const *f, int n)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < n; i++)
        if (f[i] && !(r->f[i] = strdup(f[i]))) {
            row_free(r);
            return WB_ERR_NOMEM;
        }
    return WB_OK;
}

static wb_status rows_push(struct mrows *rs, const char *const *f, int n, int flag)
{
    if (rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 16;
        struct mrow *nv = realloc(rs->v, ncap * sizeof(*nv));
        if (!nv)
            return WB_ERR_NOMEM;
        rs->v = nv;
        rs->cap = ncap;
    }
    if (row_fill(&rs->v[rs->n], f, n) != WB_OK)
        return WB_ERR_NOMEM;
    rs->v[rs->n++].flag = flag;
    return WB_OK;
}

static void rows_remove(struct mrows *rs, size_t i)
{
    row_free(&rs->v[i]);
    memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof(*rs->v));
    rs->n--;
}

/* Index of the row whose field 0 equals id, or (size_t)-1. */
static size_t rows_find(const struct mrows *rs, const char *id)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->v[i].f[0], id) == 0)
            return i;
    return (size_t)-1;
}

/* Replaces row r's strings by f[], keeping the old value where keep[k] is
 * set and f[k] is NULL (the COALESCE of the SQLite upserts). */
static wb_status row_update(struct mrow *r, const char *const *f, int n, const bool *keep)
{
    struct mrow nr;
    const char *merged[9];
    for (int k = 0; k < n; k++)
        merged[k] = (!f[k] && keep[k]) ? r->f[k] : f[k];
    if (row_fill(&nr, merged, n) != WB_OK)
        return WB_ERR_NOMEM;
    nr.flag = r->flag;
    row_free(r);
    *r = nr;
    return WB_OK;
}

static void age_cutoff(const struct memory_store *m, char out[UTIL_TS_LEN])
{
    out[0] = '\0';
    if (m->cfg.history_max_age_days)
        util_iso8601_from_ms(util_wall_ms() - (int64_t)m->cfg.history_max_age_days * 86400000, out);
}

/* ---- commit ----------------------------------------------------------- */

/* Caller holds lock: appends a history row and applies the limits to its
 * device (its oldest rows go). */
static wb_status hist_append(struct memory_store *m, const struct store_op *o)
{
    char ts[UTIL_TS_LEN], cutoff[UTIL_TS_LEN];
    util_iso8601_from_ms(o->ms, ts);
    const char *device_id = o->f[0];
    const char *f[] = {device_id, o->f[1], ts, o->f[2], o->f[3]};
    wb_status st = rows_push(&m->hist, f, 5, 0);
    if (st != WB_OK)
        return st;
    size_t count = 0;
    for (size_t i = 0; i < m->hist.n; i++)
        count += strcmp(m->hist.v[i].f[0], device_id) == 0;
    age_cutoff(m, cutoff);
    for (size_t i = 0; i < m->hist.n;) {
        struct mrow *r = &m->hist.v[i];
        bool mine = strcmp(r->f[0], device_id) == 0;
        bool over = m->cfg.history_max_rows && count > m->cfg.history_max_rows;
        if (mine && (over || strcmp(r->f[2], cutoff) < 0)) {
            rows_remove(&m->hist, i);
            count--;
        } else {
            i++;
        }
    }
    return WB_OK;
}

static wb_status device_upsert(struct memory_store *m, const struct store_op *o)
{
    static const bool keep[] = {false, false, false, true, true};
    size_t i = rows_find(&m->devices, o->f[0]);
    if (i == (size_t)-1)
        return rows_push(&m->devices, o->f, 5, o->flag);
    wb_status st = row_update(&m->devices.v[i], o->f, 5, keep);
    if (st == WB_OK)
        m->devices.v[i].flag = o->flag;
    return st;
}

static wb_status command_put(struct memory_store *m, const struct store_op *o)
{
    /* Like the SQLite upsert: created_at is kept, identity columns coalesce. */
    static const bool keep[] = {false, true, true, true, true, false, false, true, false};
    size_t i = rows_find(&m->cmds, o->f[0]);
    if (i == (size_t)-1)
        return rows_push(&m->cmds, o->f, 9, 0);
    const char *f[9];
    memcpy(f, o->f, sizeof(f));
    f[7] = NULL; /* keep the original created_at */
    return row_update(&m->cmds.v[i], f, 9, keep);
}

static wb_status mem_commit(struct store_backend *b, const struct store_batch *batch, char *err,
                            size_t errlen)
{
    struct memory_store *m = M(b);
    wb_status st = WB_OK;
    wb_lock(&m->lock);
    for (size_t i = 0; st == WB_OK && i < batch->kv.cap; i++) {
        const struct smap_entry *e = &batch->kv.slots[i];
        if (!e->key)
            continue;
        char *text = e->text ? strdup(e->text) : NULL;
        /* A tombstone for a delete: the map never removes single entries. */
        st = e->text && !text ? WB_ERR_NOMEM : smap_put(&m->kv, e->key, text, 0, NULL);
    }
    for (const struct store_op *o = batch->head; st == WB_OK && o; o = o->next) {
        if (o->kind == STORE_OP_HIST)
            st = m->cfg.history_enabled ? hist_append(m, o) : WB_OK;
        else if (o->kind == STORE_OP_CONN)
            st = rows_push(&m->conn, o->f, 3, 0);
        else if (o->kind == STORE_OP_DEVICE)
            st = device_upsert(m, o);
        else
            st = command_put(m, o);
    }
    pthread_mutex_unlock(&m->lock);
    if (st != WB_OK)
        snprintf(err, errlen, "out of memory");
    return st;
}

/* ---- reads ------------------------------------------------------------ */

static wb_status mem_get(struct store_backend *b, const char *key, char **text)
{
    struct memory_store *m = M(b);
    *text = NULL;
    wb_status st = WB_ERR_NOT_FOUND;
    wb_lock(&m->lock);
    const struct smap_entry *e = smap_find(&m->kv, key);
    if (e && e->text)
        st = (*text = strdup(e->text)) ? WB_OK : WB_ERR_NOMEM;
    pthread_mutex_unlock(&m->lock);
    return st;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct smap_entry *const *)a)->key,
                  (*(const struct smap_entry *const *)b)->key);
}

static wb_status mem_scan(struct store_backend *b, const char *prefix, store_scan_cb cb, void *ud)
{
    struct memory_store *m = M(b);
    size_t plen = strlen(prefix), n = 0;
    wb_status st = WB_OK;
    /* The callback (store_front_read.c) only copies: it runs under lock. */
    wb_lock(&m->lock);
    const struct smap_entry **v = malloc((m->kv.count + 1) * sizeof(*v));
    for (size_t i = 0; v && i < m->kv.cap; i++) {
        const struct smap_entry *e = &m->kv.slots[i];
        if (e->key && e->text && strncmp(e->key, prefix, plen) == 0)
            v[n++] = e;
    }
    if (v) {
        qsort(v, n, sizeof(*v), entry_cmp);
        for (size_t i = 0; i < n; i++) {
            int r = cb(v[i]->key, v[i]->text, ud);
            if (r) {
                st = r < 0 ? WB_ERR_NOMEM : WB_OK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    free(v);
    return v ? st : WB_ERR_NOMEM;
}

/* Rows of device_id (field 0), newest first; history rows older than
 * cutoff (field 2) are skipped. Caller holds lock. */
static wb_status device_rows(const struct mrows *rs, const char *device_id, int limit,
                             const char *cutoff, struct store_rows *out)
{
    wb_status st = WB_OK;
    size_t n = 0;
    for (size_t i = rs->n; st == WB_OK && i-- > 0;) {
        const struct mrow *r = &rs->v[i];
        if (strcmp(r->f[0], device_id) != 0 || (cutoff && strcmp(r->f[2], cutoff) < 0))
            continue;
        if (limit > 0 && n >= (size_t)limit)
            break;
        /* Both row kinds keep their struct order: history device, ts,
         * state (stored device, state, ts); connection device, event, ts. */
        const char *hist[] = {r->f[0], r->f[2], r->f[1], r->f[3], r->f[4]};
        st =
            store_rows_add(out, out->kind == STORE_ROWS_HISTORY ? hist : (const char *const *)r->f);
        n++;
    }
    return st;
}

/* The bound of a range as stored text; "" = open (from) or NULL (to). */
static const char *range_ts(int64_t ms, bool open, char out[UTIL_TS_LEN])
{
    if (open)
        return NULL;
    util_iso8601_from_ms(ms, out);
    return out;
}

static wb_status mem_history_rows(struct store_backend *b, const struct store_history_query *q,
                                  struct store_rows *out)
{
    struct memory_store *m = M(b);
    char cutoff[UTIL_TS_LEN], fb[UTIL_TS_LEN], tb[UTIL_TS_LEN];
    /* The ISO-8601 texts of one format order like their times. */
    const char *from = range_ts(q->from_ms, q->from_ms == INT64_MIN, fb);
    const char *to = range_ts(q->to_ms, q->to_ms == INT64_MAX, tb);
    int64_t keep =
        m->cfg.history_max_rows ? (int64_t)m->cfg.history_max_rows - q->ahead : INT64_MAX;
    wb_lock(&m->lock);
    age_cutoff(m, cutoff);
    size_t *v = malloc((m->hist.n + 1) * sizeof(*v)), n = 0;
    int64_t kept = 0;
    /* Retention first (the newest keep rows not older than cutoff), then
     * the range; v holds the matches newest first. */
    for (size_t i = m->hist.n; v && kept < keep && i-- > 0;) {
        const struct mrow *r = &m->hist.v[i];
        if (strcmp(r->f[0], q->device_id) != 0 || strcmp(r->f[2], cutoff) < 0)
            continue;
        kept++;
        if ((!from || strcmp(r->f[2], from) >= 0) && (!to || strcmp(r->f[2], to) <= 0))
            v[n++] = i;
    }
    wb_status st = v ? WB_OK : WB_ERR_NOMEM;
    size_t lim = q->limit > 0 && (size_t)q->limit < n ? (size_t)q->limit : n;
    for (size_t k = 0; st == WB_OK && k < lim; k++) {
        const struct mrow *r = &m->hist.v[v[q->ascending ? n - 1 - k : k]];
        const char *f[] = {r->f[0], r->f[2], r->f[1], r->f[3], r->f[4]};
        st = store_rows_add(out, f);
    }
    pthread_mutex_unlock(&m->lock);
    free(v);
    return st;
}

static wb_status mem_connection_rows(struct store_backend *b, const char *device_id, int limit,
                                     struct store_rows *out)
{
    struct memory_store *m = M(b);
    wb_lock(&m->lock);
    wb_status st = device_rows(&m->conn, device_id, limit, NULL, out);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static wb_status mem_command_rows(struct store_backend *b, const struct store_command_filter *f,
                                  int limit, struct store_rows *out)
{
    struct memory_store *m = M(b);
    wb_lock(&m->lock);
    /* Newest first by created_at, then by insertion (the rowid order). */
    size_t *idx = malloc((m->cmds.n + 1) * sizeof(*idx));
    size_t n = 0;
    for (size_t i = m->cmds.n; idx && i-- > 0;) {
        const struct mrow *r = &m->cmds.v[i];
        if (f && f->status && (!r->f[5] || strcmp(f->status, r->f[5]) != 0))
            continue;
        if (f && f->device_id && (!r->f[1] || strcmp(f->device_id, r->f[1]) != 0))
            continue;
        if (f && f->command_id && strcmp(f->command_id, r->f[0]) != 0)
            continue;
        /* Insertion sort by created_at descending; stable for equal stamps. */
        size_t j = n++;
        while (j > 0 && strcmp(m->cmds.v[idx[j - 1]].f[7], r->f[7]) < 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    wb_status st = idx ? WB_OK : WB_ERR_NOMEM;
    for (size_t k = 0; st == WB_OK && k < n && (limit <= 0 || (int)k < limit); k++)
        st = store_rows_add(out, (const char *const *)m->cmds.v[idx[k]].f);
    pthread_mutex_unlock(&m->lock);
    free(idx);
    return st;
}

/* ---- open and close --------------------------------------------------- */

static wb_status mem_open(struct store_backend **out, const struct store_config *cfg, char *err,
                          size_t errlen)
{
    (void)err;
    (void)errlen;
    struct memory_store *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return WB_ERR_NOMEM;
    m->base.ops = &store_memory_backend;
    m->base.durable_commits = true; /* nothing to sync: as durable as it gets */
    m->base.no_window = true;
    m->cfg = *cfg;
    m->cfg.db_path = NULL; /* not used, and not ours to keep */
    m->cfg.backend = store_memory_backend.name;
    pthread_mutex_init(&m->lock, NULL);
    *out = &m->base;
    return WB_OK;
}

static void mem_close(struct store_backend *b)
{
    struct memory_store *m = M(b);
    smap_clear(&m->kv);
    rows_free(&m->hist);
    rows_free(&m->conn);
    rows_free(&m->cmds);
    rows_free(&m->devices);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

const struct store_backend_ops store_memory_backend = {
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .commit = mem_commit,
    .get = mem_get,
    .scan = mem_scan,
    .history_rows = mem_history_rows,
    .connection_rows = mem_connection_rows,
    .command_rows = mem_command_rows,
};

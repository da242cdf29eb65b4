/*
 * store_sqlite_history.c - the per-device history chains of the SQLite
 * backend: appending device_state_snapshots rows, following them per
 * device, and retention.
 *
 * Why chains and no per-device index: a group commit appends rows of many
 * devices, and an index on (device_id, id) gets one entry per device in a
 * different leaf page, so every commit rewrote about one index page per
 * device touched (in the WAL, and again at checkpoint). Instead each row
 * carries prev_id, the id of the same device's previous row, and the store
 * keeps every device's newest row id (its head) in memory. A commit then
 * only appends rows at the end of the table. Reading a device's history is
 * a walk head -> prev_id -> ..., one rowid lookup per row returned.
 *
 * Invariants:
 *   - ids only grow: rows are appended with the next rowid, and retention
 *     never deletes the newest row of the table, so an id is never reused;
 *   - along a chain ids strictly decrease and the device_id stays the same;
 *     the walks check both, so a broken or hand-edited chain only ends a
 *     walk early, it never loops or crosses into another device;
 *   - retention deletes a device's oldest rows (by count) or the oldest
 *     rows of the table (by age), so what remains of a chain is always its
 *     newest part.
 *
 * The heads are saved in device_state_heads (head id and row count per
 * device) every 60 s and at close, in the same transaction as the rows they
 * describe; at open the rows appended after the last save (id above the
 * highest saved head) are followed to bring the heads up to date, so a
 * kill -9 costs a short forward scan, never a wrong chain. Row counts only
 * decide when to prune; they may run high (never low) after a kill -9 and
 * are corrected by the next prune of the device.
 *
 * Retention, inside the writer's commits: a device is pruned to
 * history_max_rows when it has max_rows + max(100, max_rows / 10) rows,
 * checked after its appends and, for every device, at the first commit
 * after open. So a device keeps at most that many rows; queries apply
 * max_rows exactly. The prune walks the chain to the max_rows-th row and
 * deletes what lies behind it. For long chains (a walk of 1 000 rows or
 * more) the checkpointer's thread walks most of the way beforehand, on its
 * own connection, beside the writer: once a device has max_rows rows (and
 * again after each prune), after the COMMIT, it finds the row `depth` =
 * max_rows - 1.5 threshold rows from the committed head (the device's
 * `cut`). Rows are only appended at the head, so `depth + appends since`
 * is where the cut is at the next prune; when that is at most max_rows, the
 * prune walks from the cut instead of the head: about 1.5 threshold rows
 * (1 500 for the default 10 000) instead of max_rows + threshold (11 000;
 * 650 ms under the VM's emulator, all of it inside a commit). A device due
 * for a prune before its walk is done (the first commit after a start, or
 * the thread behind) waits for it up to max_rows + 2 threshold rows. A cut that is
 * gone (age retention deleted it) makes the prune delete nothing, and it
 * then walks from the head as before. Every 60 s the oldest rows of
 * the table up to the first one younger than history_max_age_days are
 * deleted in one id range (ts grows with id; a clock that went back only
 * delays this).
 *
 * Rows are small for the same reason: ts is a generated column computed
 * from ts_ms (an integer, 6 bytes instead of 24 bytes of text), and prev_id
 * is a small integer; a row of a typical device is about 50 bytes.
 *
 * All of it runs in the writer thread, except store_sqlite_hist_head(),
 * which readers call under s->lock (the lock of the chains).
 */
#include "store/store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

#define HEADS_SAVE_MS 60000
/* Chains whose prune walk is shorter than this are walked by the prune. */
#define HIST_WALK_MIN 1000

static int64_t threshold_of(int64_t max)
{
    return max / 10 < 100 ? 100 : max / 10;
}

/* How far from the head the background walk finds the cut; 0 = no walks.
 * The next prune comes about threshold appends later, give or take one
 * commit's appends and the walk's lateness, up to threshold / 2 more. */
static int64_t walk_depth(int64_t max)
{
    int64_t t = threshold_of(max), d = max - t - t / 2;
    return d >= HIST_WALK_MIN ? d : 0;
}

/* The background walk (run on the checkpointer's connection): the row ?3
 * rows from ?1 along device ?2's chain, ?1 counting as the first. */
static const char walk_sql[] = "WITH RECURSIVE c(id, prev, n) AS ("
                               " SELECT id, prev_id, 1 FROM device_state_snapshots"
                               " WHERE id = ?1 AND device_id = ?2"
                               " UNION ALL"
                               " SELECT s.id, s.prev_id, c.n + 1 FROM c"
                               " JOIN device_state_snapshots s ON s.id = c.prev"
                               " WHERE c.n < ?3 AND s.id < c.id AND s.device_id = ?2)"
                               " SELECT id FROM c WHERE n = ?3";

static const char *const hsql[H_COUNT] = {
    [H_APPEND] = "INSERT INTO device_state_snapshots(device_id, state, ts_ms, prev_id, kind, stats)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* c walks the chain of device ?2 from its head ?1, numbering the rows
     * newest first; rows past the newest ?3 go. */
    [H_PRUNE_ROWS] = "WITH RECURSIVE c(id, prev, n) AS ("
                     " SELECT id, prev_id, 1 FROM device_state_snapshots"
                     " WHERE id = ?1 AND device_id = ?2"
                     " UNION ALL"
                     " SELECT s.id, s.prev_id, c.n + 1 FROM c"
                     " JOIN device_state_snapshots s ON s.id = c.prev"
                     " WHERE s.id < c.id AND s.device_id = ?2)"
                     " DELETE FROM device_state_snapshots WHERE id IN"
                     " (SELECT id FROM c WHERE n > ?3)",
    /* The first row young enough to keep, scanning from the oldest; at most
     * the newest row of the table, which is always kept. */
    [H_AGE_CUT] = "SELECT coalesce((SELECT id FROM device_state_snapshots WHERE ts_ms >= ?1"
                  " ORDER BY id LIMIT 1), (SELECT max(id) FROM device_state_snapshots), 0)",
    [H_AGE_COUNT] = "SELECT device_id, count(*) FROM device_state_snapshots WHERE id < ?1"
                    " GROUP BY device_id",
    [H_PRUNE_AGE] = "DELETE FROM device_state_snapshots WHERE id < ?1",
    [H_HEAD_PUT] = "INSERT INTO device_state_heads(device_id, head_id, rows) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(device_id) DO UPDATE SET head_id = excluded.head_id,"
                   " rows = excluded.rows",
    [H_HEADS_LOAD] = "SELECT device_id, head_id, rows FROM device_state_heads",
    [H_HEADS_SCAN] = "SELECT id, device_id FROM device_state_snapshots WHERE id > ?1 ORDER BY id",
};

wb_status store_sqlite_hist_prepare(struct sqlite_store *s, char *err, size_t errlen)
{
    for (int i = 0; i < H_COUNT; i++)
        if (sqlite3_prepare_v3(s->wdb, hsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->h[i], NULL)) {
            snprintf(err, errlen, "%s: preparing statements: %s", s->db_path,
                     sqlite3_errmsg(s->wdb));
            return WB_ERR_DB;
        }
    return WB_OK;
}

/* ---- the in-memory chains ---------------------------------------------- */

static const char *chain_key(const void *s, uint32_t pos)
{
    return ((const struct sqlite_store *)s)->hist_devs[pos].id;
}

/* The index in hist_devs of device_id's chain, -1 when it has none. */
static long ix_find(const struct sqlite_store *s, const char *device_id)
{
    return strix_find(&s->hist_ix, device_id, chain_key, s);
}

/* The index of device_id's chain, created (under lock) when missing and
 * create is set. Returns -1 when absent or out of memory. */
static long dev_index(struct sqlite_store *s, const char *device_id, bool create)
{
    long idx = ix_find(s, device_id);
    if (idx >= 0 || !create)
        return idx;
    wb_lock(&s->lock);
    char *id = NULL;
    if (s->n_hist >= STRIX_EMPTY - 1 ||
        !strix_reserve(&s->hist_ix, s->n_hist + 1, s->n_hist, chain_key, s) ||
        !(id = strdup(device_id)))
        goto out;
    if (s->n_hist == s->cap_hist) {
        size_t ncap = s->cap_hist ? s->cap_hist * 2 : 64;
        struct hist_dev *nd = realloc(s->hist_devs, ncap * sizeof(*nd));
        if (!nd)
            goto out;
        s->hist_devs = nd;
        s->cap_hist = ncap;
    }
    idx = (long)s->n_hist++;
    s->hist_devs[idx] = (struct hist_dev){.id = id};
    strix_put(&s->hist_ix, id, (uint32_t)idx);
    id = NULL;
out:
    pthread_mutex_unlock(&s->lock);
    free(id);
    return idx;
}

/* Lists a chain as changed by the transaction being written, so that
 * store_sqlite_hist_end() can publish or undo it. */
static int touch(struct sqlite_store *s, size_t idx)
{
    struct hist_dev *d = &s->hist_devs[idx];
    if (!d->in_tx) {
        if (s->n_touched == s->cap_touched) {
            size_t ncap = s->cap_touched ? s->cap_touched * 2 : 64;
            size_t *nt = realloc(s->hist_touched, ncap * sizeof(*nt));
            if (!nt)
                return SQLITE_NOMEM;
            s->hist_touched = nt;
            s->cap_touched = ncap;
        }
        s->hist_touched[s->n_touched++] = idx;
        d->in_tx = true;
    }
    d->dirty = true;
    return SQLITE_OK;
}

int64_t store_sqlite_hist_head(struct sqlite_store *s, const char *device_id)
{
    long idx = ix_find(s, device_id);
    return idx >= 0 ? s->hist_devs[idx].c_head : 0;
}

/* Caller holds lock, after a successful commit: queues device idx's walk
 * unless one is queued or done. False when nothing was queued. */
static bool queue_walk(struct sqlite_store *s, size_t idx)
{
    struct hist_dev *d = &s->hist_devs[idx];
    if (d->walk != WALK_NONE)
        return false;
    if (s->n_walk_q == s->cap_walk_q) {
        size_t ncap = s->cap_walk_q ? s->cap_walk_q * 2 : 16;
        size_t *nq = realloc(s->walk_q, ncap * sizeof(*nq));
        if (!nq)
            return false; /* the prune walks it all */
        s->walk_q = nq;
        s->cap_walk_q = ncap;
    }
    s->walk_q[s->n_walk_q++] = idx;
    d->walk = WALK_QUEUED;
    return true;
}

bool store_sqlite_hist_end(struct sqlite_store *s, bool ok)
{
    bool walks = false;
    for (size_t i = 0; i < s->n_touched; i++) {
        struct hist_dev *d = &s->hist_devs[s->hist_touched[i]];
        /* After the COMMIT, so that the walk starts from this head. */
        if (d->walk_want && ok)
            walks = queue_walk(s, s->hist_touched[i]) || walks;
        d->walk_want = false;
        if (ok) {
            d->c_head = d->head;
            d->c_rows = d->rows;
            d->c_appends = d->appends;
        } else {
            d->head = d->c_head;
            d->rows = d->c_rows;
            d->appends = d->c_appends;
        }
        d->in_tx = false;
    }
    s->n_touched = 0;
    if (ok && s->heads_saved)
        for (size_t i = 0; i < s->n_hist; i++)
            s->hist_devs[i].dirty = false;
    s->heads_saved = false;
    return walks;
}

/* ---- writes inside a commit -------------------------------------------- */

int store_sqlite_hist_append(struct sqlite_store *s, const struct store_op *o)
{
    long idx = dev_index(s, o->f[0], true);
    if (idx < 0 || touch(s, (size_t)idx) != SQLITE_OK)
        return SQLITE_NOMEM;
    struct hist_dev *d = &s->hist_devs[idx];
    sqlite3_stmt *st = s->h[H_APPEND];
    sqlite3_bind_text(st, 1, o->f[0], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o->f[1], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, o->ms);
    if (d->head)
        sqlite3_bind_int64(st, 4, d->head);
    sqlite3_bind_text(st, 5, o->f[2], -1, SQLITE_STATIC); /* NULL binds NULL */
    sqlite3_bind_text(st, 6, o->f[3], -1, SQLITE_STATIC);
    int rc = store_sqlite_run(s, st);
    if (rc == SQLITE_OK) {
        d->head = sqlite3_last_insert_rowid(s->wdb);
        d->rows++;
        d->appends++;
    }
    return rc;
}

/* Deletes the rows of d's chain behind the keep-th row from `from`. */
static int prune_from(struct sqlite_store *s, struct hist_dev *d, int64_t from, int64_t keep)
{
    sqlite3_stmt *st = s->h[H_PRUNE_ROWS];
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, keep);
    return store_sqlite_run(s, st);
}

/* Keeps the newest max rows of one device: from its cut when the
 * background walk found one that is still at most max rows from the head,
 * else from the head. */
static int prune_device(struct sqlite_store *s, size_t idx, int64_t max)
{
    int rc = touch(s, idx);
    if (rc != SQLITE_OK)
        return rc;
    struct hist_dev *d = &s->hist_devs[idx];
    int64_t depth = walk_depth(max);
    wb_lock(&s->lock);
    int64_t cut = d->cut;
    uint32_t since = d->appends - d->cut_at; /* wraps like the counters */
    d->cut = 0;
    if (d->walk == WALK_DONE) /* a queued one still comes, and still counts */
        d->walk = WALK_NONE;
    pthread_mutex_unlock(&s->lock);
    int64_t pos = depth + (int64_t)since; /* the cut's place, 1 = the head */
    bool fast = cut && depth && pos <= max;
    rc = fast ? prune_from(s, d, cut, max - pos + 1) : prune_from(s, d, d->head, max);
    if (rc == SQLITE_OK && fast && sqlite3_changes(s->wdb) == 0) {
        fast = false; /* the cut is gone: walk it all */
        rc = prune_from(s, d, d->head, max);
    }
    if (rc != SQLITE_OK)
        return rc;
    if (sqlite3_changes(s->wdb) > 0 || d->rows > max)
        d->rows = max; /* exact when rows went; else an upper bound */
    wb_lock(&s->lock);
    if (fast)
        s->fast_prunes++;
    else
        s->full_prunes++;
    pthread_mutex_unlock(&s->lock);
    d->walk_want = depth > 0; /* the next cut, from the head this commit leaves */
    return SQLITE_OK;
}

/* Deletes the oldest rows of the table up to the first one newer than the
 * age limit, keeping the row counts. */
static int prune_age(struct sqlite_store *s)
{
    sqlite3_stmt *st = s->h[H_AGE_CUT];
    sqlite3_bind_int64(st, 1, util_wall_ms() - (int64_t)s->cfg.history_max_age_days * 86400000);
    int64_t cut = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        cut = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        snprintf(s->werr, sizeof(s->werr), "%s", sqlite3_errmsg(s->wdb));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK || cut <= 0)
        return rc;
    st = s->h[H_AGE_COUNT];
    sqlite3_bind_int64(st, 1, cut);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        long idx = dev_index(s, (const char *)sqlite3_column_text(st, 0), false);
        if (idx < 0)
            continue; /* rows no chain knows: nothing to count */
        rc = touch(s, (size_t)idx);
        struct hist_dev *d = &s->hist_devs[idx];
        d->rows -= sqlite3_column_int64(st, 1);
        if (d->rows < 0)
            d->rows = 0;
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc != SQLITE_OK)
        snprintf(s->werr, sizeof(s->werr), "%s", sqlite3_errmsg(s->wdb));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s->h[H_PRUNE_AGE], 1, cut);
    return store_sqlite_run(s, s->h[H_PRUNE_AGE]);
}

/* Writes the changed heads to device_state_heads. */
static int save_heads(struct sqlite_store *s)
{
    int rc = SQLITE_OK;
    for (size_t i = 0; i < s->n_hist && rc == SQLITE_OK; i++) {
        const struct hist_dev *d = &s->hist_devs[i];
        if (!d->dirty)
            continue;
        sqlite3_stmt *st = s->h[H_HEAD_PUT];
        sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, d->head);
        sqlite3_bind_int64(st, 3, d->rows);
        rc = store_sqlite_run(s, st);
    }
    if (rc == SQLITE_OK)
        s->heads_saved = true;
    return rc;
}

/* A device due for a prune whose walk has not been done (after a start,
 * or when the thread is behind) waits for it, up to max + 2 threshold rows:
 * the prune then walks from the cut rather than all of the chain inside
 * this commit. */
static int prune_or_wait(struct sqlite_store *s, size_t idx, int64_t max, int64_t threshold)
{
    struct hist_dev *d = &s->hist_devs[idx];
    if (walk_depth(max) && d->rows < max + 2 * threshold) {
        wb_lock(&s->lock);
        bool pending = d->walk != WALK_DONE;
        pthread_mutex_unlock(&s->lock);
        if (pending) {
            int rc = touch(s, idx); /* so that the walk is queued after the COMMIT */
            d->walk_want = true;
            return rc;
        }
    }
    return prune_device(s, idx, max);
}

int store_sqlite_hist_prune(struct sqlite_store *s)
{
    if (!s->cfg.history_enabled)
        return SQLITE_OK;
    int64_t max = s->cfg.history_max_rows;
    int64_t threshold = threshold_of(max);
    bool walks = walk_depth(max) > 0;
    int64_t now = util_mono_ms();
    bool first = s->last_prune_ms == 0;
    bool periodic = first || now - s->last_prune_ms >= HEADS_SAVE_MS;
    int rc = SQLITE_OK;
    if (max && first) {
        /* Also the devices without appends, e.g. after max_rows went down. */
        for (size_t i = 0; i < s->n_hist && rc == SQLITE_OK; i++)
            if (s->hist_devs[i].rows >= max + threshold)
                rc = prune_or_wait(s, i, max, threshold);
    } else if (max) {
        /* touch() may append to hist_touched: index it, don't hold a pointer. */
        for (size_t i = 0; i < s->n_touched && rc == SQLITE_OK; i++) {
            int64_t rows = s->hist_devs[s->hist_touched[i]].rows;
            if (rows >= max + threshold)
                rc = prune_or_wait(s, s->hist_touched[i], max, threshold);
            else if (walks && rows >= max)
                s->hist_devs[s->hist_touched[i]].walk_want = true; /* if none yet */
        }
    }
    if (periodic && rc == SQLITE_OK && s->cfg.history_max_age_days)
        rc = prune_age(s);
    if (periodic && rc == SQLITE_OK)
        rc = save_heads(s);
    if (periodic)
        s->last_prune_ms = now;
    return rc;
}

/* ---- the background walk (the checkpointer's thread) ---------------------- */

void store_sqlite_hist_walk(struct sqlite_store *s, sqlite3 *db, sqlite3_stmt **stp)
{
    int64_t depth = walk_depth(s->cfg.history_max_rows);
    if (!*stp &&
        sqlite3_prepare_v3(db, walk_sql, -1, SQLITE_PREPARE_PERSISTENT, stp, NULL) != SQLITE_OK) {
        /* The prunes walk it all, as without this thread. */
        log_warn("store: preparing the history walk: %s", sqlite3_errmsg(db));
        *stp = NULL;
    }
    for (;;) {
        wb_lock(&s->lock);
        if (!s->n_walk_q) {
            pthread_mutex_unlock(&s->lock);
            return;
        }
        size_t idx = s->walk_q[--s->n_walk_q];
        struct hist_dev *d = &s->hist_devs[idx];
        /* A committed pair: the head and the appends that led to it. The
         * id string lives until close, after this thread ended. */
        int64_t head = d->c_head;
        uint32_t at = d->c_appends;
        const char *id = d->id;
        pthread_mutex_unlock(&s->lock);
        if (!head || !depth || !*stp) {
            wb_lock(&s->lock);
            s->hist_devs[idx].walk = WALK_DONE;
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        sqlite3_bind_int64(*stp, 1, head);
        sqlite3_bind_text(*stp, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(*stp, 3, depth);
        int64_t cut = sqlite3_step(*stp) == SQLITE_ROW ? sqlite3_column_int64(*stp, 0) : 0;
        sqlite3_reset(*stp);
        sqlite3_clear_bindings(*stp);
        wb_lock(&s->lock);
        d = &s->hist_devs[idx]; /* the array may have moved */
        d->cut = cut;           /* 0: the chain is shorter than the counts said */
        d->cut_at = at;
        d->walk = WALK_DONE; /* until the next prune, found or not */
        s->walks++;
        pthread_mutex_unlock(&s->lock);
    }
}

void store_sqlite_hist_counts_for_test(struct state_store *store, uint64_t *walks, uint64_t *fast,
                                       uint64_t *full)
{
    struct sqlite_store *s = S(store_front_backend(store));
    wb_lock(&s->lock);
    *walks = s->walks;
    *fast = s->fast_prunes;
    *full = s->full_prunes;
    pthread_mutex_unlock(&s->lock);
}

/* ---- open and close ------------------------------------------------------- */

wb_status store_sqlite_hist_load(struct sqlite_store *s, char *err, size_t errlen)
{
    int64_t seen = 0;
    int rc;
    sqlite3_stmt *st = s->h[H_HEADS_LOAD];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        long idx = dev_index(s, (const char *)sqlite3_column_text(st, 0), true);
        if (idx < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        struct hist_dev *d = &s->hist_devs[idx];
        d->head = d->c_head = sqlite3_column_int64(st, 1);
        d->rows = d->c_rows = sqlite3_column_int64(st, 2);
        if (d->head > seen)
            seen = d->head;
    }
    sqlite3_reset(st);
    /* Rows appended after the last save: the highest saved head was the
     * newest row of the table then, and ids only grow. */
    size_t followed = 0;
    if (rc == SQLITE_DONE) {
        st = s->h[H_HEADS_SCAN];
        sqlite3_bind_int64(st, 1, seen);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            long idx = dev_index(s, (const char *)sqlite3_column_text(st, 1), true);
            if (idx < 0) {
                rc = SQLITE_NOMEM;
                break;
            }
            struct hist_dev *d = &s->hist_devs[idx];
            d->head = d->c_head = sqlite3_column_int64(st, 0);
            d->rows = ++d->c_rows;
            d->dirty = true;
            followed++;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: loading the history heads: %s", s->db_path,
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->wdb));
        return store_sqlite_status(rc);
    }
    if (followed)
        log_info("store: %zu history rows after the saved heads followed", followed);
    return WB_OK;
}

void store_sqlite_hist_close(struct sqlite_store *s)
{
    bool dirty = false;
    for (size_t i = 0; i < s->n_hist; i++)
        dirty = dirty || s->hist_devs[i].dirty;
    if (dirty && s->wdb && s->h[H_HEAD_PUT]) {
        int rc = store_sqlite_run(s, s->w[W_BEGIN]);
        if (rc == SQLITE_OK)
            rc = save_heads(s);
        if (rc == SQLITE_OK)
            rc = store_sqlite_run(s, s->w[W_COMMIT]);
        if (rc != SQLITE_OK) {
            if (!sqlite3_get_autocommit(s->wdb))
                store_sqlite_run(s, s->w[W_ROLLBACK]);
            /* Nothing is lost: the next open follows the rows instead. */
            log_warn("store: saving the history heads at close: %s", s->werr);
        }
    }
    for (int i = 0; i < H_COUNT; i++)
        sqlite3_finalize(s->h[i]);
    for (size_t i = 0; i < s->n_hist; i++)
        free(s->hist_devs[i].id);
    strix_free(&s->hist_ix);
    free(s->hist_devs);
    free(s->hist_touched);
    free(s->walk_q);
}

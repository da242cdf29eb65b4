/*
 * store_sqlite.c - the SQLite StateStore backend (store_backend.h): the
 * handle, one batch written per transaction, the WAL sync, open and close.
 * Reads live in store_sqlite_read.c, opening a file in store_sqlite_open.c,
 * the history chains in store_sqlite_history.c; the batches, the writer
 * thread and the committed/durable floors are the writer's (store_writer.c).
 *
 * Owns two connections to one WAL database: the writer's (wdb, used only
 * under wlock: by the writer thread, and by the test hook) and the readers'
 * (rdb, query_only, under rlock). History rows are chained per device
 * instead of indexed (store_sqlite_history.c), and state_store.updated_at is
 * generated from updated_ms: a commit of a hundred transitions writes about
 * 20 KiB (WAL and checkpoint together).
 *
 * Durability. A COMMIT makes changes visible and safe from kill -9 (the OS
 * page cache survives the process); only an fsync makes them survive a
 * power cut. With commit_interval_ms and sync_interval_ms both > 0 the
 * writer's connection runs synchronous=NORMAL (a COMMIT does not fsync) and
 * the writer calls sq_sync() at most sync_interval_ms after a commit, so a
 * power cut loses at most the commits of the last sync_interval_ms (plus the
 * commit window before them). Either interval 0 means synchronous=FULL:
 * each COMMIT is durable when it returns (base.durable_commits).
 */
#include "store/store_sqlite.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_map.h"
#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

static const char *const wsql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    /* A key already stored (the common case: a device's state) is one
     * UPDATE; the upsert only for new keys. The upsert checks the NOT NULL
     * of the generated updated_at twice (insert attempt, then update):
     * each check is a strftime(), ~2 300 instructions. */
    [W_UPDATE] = "UPDATE state_store SET value = ?2, updated_ms = ?3 WHERE key = ?1",
    [W_UPSERT] = "INSERT INTO state_store(key, value, updated_ms) VALUES(?1, ?2, ?3)"
                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                 " updated_ms = excluded.updated_ms",
    [W_DELETE] = "DELETE FROM state_store WHERE key = ?1",
    [W_CONN] = "INSERT INTO device_connection_logs(device_id, event, ts) VALUES(?1, ?2, ?3)",
    [W_DEVICE] = "INSERT INTO devices(device_id, device_type, name, last_seen, connected_at,"
                 " is_online) VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(device_id) DO UPDATE"
                 " SET device_type = excluded.device_type, name = excluded.name,"
                 " is_online = excluded.is_online,"
                 " last_seen = COALESCE(excluded.last_seen, last_seen),"
                 " connected_at = COALESCE(excluded.connected_at, connected_at)",
    [W_CMD] = "INSERT INTO command_logs(command_id, device_id, action, params, source, status,"
              " error, created_at, completed_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
              " ON CONFLICT(command_id) DO UPDATE SET status = excluded.status,"
              " error = excluded.error, completed_at = excluded.completed_at,"
              " device_id = COALESCE(excluded.device_id, device_id),"
              " action = COALESCE(excluded.action, action),"
              " params = COALESCE(excluded.params, params),"
              " source = COALESCE(excluded.source, source)",
};

/* ---- one batch, one transaction ----------------------------------------- */

int store_sqlite_run(struct sqlite_store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        rc = SQLITE_OK;
    else
        snprintf(s->werr, sizeof(s->werr), "%s", sqlite3_errmsg(s->wdb));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void bind_texts(sqlite3_stmt *st, const char *const *f, int n)
{
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(st, i + 1, f[i], -1, SQLITE_STATIC); /* NULL binds NULL */
}

static int write_op(struct sqlite_store *s, const struct store_op *o)
{
    if (o->kind == STORE_OP_HIST)
        return store_sqlite_hist_append(s, o);
    static const int stmt[] = {
        [STORE_OP_CONN] = W_CONN, [STORE_OP_DEVICE] = W_DEVICE, [STORE_OP_CMD] = W_CMD};
    sqlite3_stmt *st = s->w[stmt[o->kind]];
    bind_texts(st, o->f, store_op_nfields(o->kind));
    if (o->kind == STORE_OP_DEVICE)
        sqlite3_bind_int(st, 6, o->flag);
    return store_sqlite_run(s, st);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct smap_entry *const *)a)->key,
                  (*(const struct smap_entry *const *)b)->key);
}

/* Writes one batch in one transaction; on failure rolls back (unless SQLite
 * already did) and leaves the batch untouched for the caller to requeue. */
static int commit_batch(struct sqlite_store *s, const struct store_batch *b)
{
    int64_t now_ms = util_wall_ms(); /* updated_at, one for the whole commit */
    wb_lock(&s->wlock);
    /* Key order instead of hash order: B-tree inserts then walk the pages
     * sequentially (about 2x faster for big batches). Without memory for
     * the index the batch goes in hash order. */
    const struct smap_entry **order = malloc((b->kv.count + 1) * sizeof(*order));
    size_t n = 0;
    for (size_t i = 0; i < b->kv.cap; i++)
        if (b->kv.slots[i].key) {
            if (order)
                order[n] = &b->kv.slots[i];
            n++;
        }
    if (order)
        qsort(order, n, sizeof(*order), entry_cmp);
    int rc = store_sqlite_run(s, s->w[W_BEGIN]);
    for (size_t i = 0, j = 0; rc == SQLITE_OK && i < n; j++) {
        const struct smap_entry *e = order ? order[i] : &b->kv.slots[j];
        if (!e->key)
            continue;
        i++;
        if (!e->text) {
            sqlite3_bind_text(s->w[W_DELETE], 1, e->key, -1, SQLITE_STATIC);
            rc = store_sqlite_run(s, s->w[W_DELETE]);
            continue;
        }
        for (int w = W_UPDATE; w <= W_UPSERT; w++) {
            sqlite3_stmt *st = s->w[w];
            sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, e->text, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now_ms);
            rc = store_sqlite_run(s, st);
            if (rc != SQLITE_OK || sqlite3_changes(s->wdb) > 0)
                break;
        }
    }
    for (const struct store_op *o = b->head; rc == SQLITE_OK && o; o = o->next)
        rc = write_op(s, o);
    if (rc == SQLITE_OK)
        rc = store_sqlite_hist_prune(s);
    if (rc == SQLITE_OK)
        rc = store_sqlite_run(s, s->w[W_COMMIT]);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->wdb)) {
        /* Not through run(): the commit's error text must survive. */
        sqlite3_step(s->w[W_ROLLBACK]);
        sqlite3_reset(s->w[W_ROLLBACK]);
    }
    pthread_mutex_unlock(&s->wlock);
    free(order);
    return rc;
}

static wb_status sq_commit(struct store_backend *base, const struct store_batch *b, char *err,
                           size_t errlen)
{
    struct sqlite_store *s = S(base);
    int rc = commit_batch(s, b);
    /* Publish the new history heads to the readers, or roll the chains
     * back to the last COMMIT. */
    wb_lock(&s->lock);
    bool walks = store_sqlite_hist_end(s, rc == SQLITE_OK);
    pthread_mutex_unlock(&s->lock);
    if (walks)
        store_sqlite_ckpt_wake_walks(s);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "%s", s->werr);
    return store_sqlite_status(rc);
}

/* Makes every COMMIT so far durable: an fsync of the WAL file, through
 * the writer connection's own file handle (SQLITE_FCNTL_JOURNAL_POINTER).
 * In WAL mode with synchronous=NORMAL a COMMIT appends its frames (commit
 * marker last) without an fsync; once the WAL is synced those frames are
 * replayed by recovery after a power cut, exactly as if the COMMIT had run
 * with synchronous=FULL. The database file needs nothing: a checkpoint
 * syncs the WAL before it copies pages and the database after. This
 * writes no byte beyond the commits themselves, where a checkpoint per
 * interval would copy every changed page into the database file once more
 * (the bytes per sync interval: bench/RESULTS.md, README Benchmarks). */
static wb_status sq_sync(struct store_backend *base, char *err, size_t errlen)
{
    struct sqlite_store *s = S(base);
    wb_lock(&s->wlock);
    sqlite3_file *f = NULL;
    int rc = sqlite3_file_control(s->wdb, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
    if (rc == SQLITE_OK && f && f->pMethods)
        rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
    pthread_mutex_unlock(&s->wlock);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "fsync of the WAL: error %d", rc);
    return rc == SQLITE_OK ? WB_OK : store_sqlite_status(rc);
}

static void sq_status(struct store_backend *base, struct store_status *out)
{
    store_sqlite_ckpt_status(S(base), out);
}

wb_status store_sqlite_exec_for_test(struct state_store *store, const char *sql)
{
    struct sqlite_store *s = S(store_front_backend(store));
    wb_lock(&s->wlock);
    int rc = sqlite3_exec(s->wdb, sql, NULL, NULL, NULL);
    pthread_mutex_unlock(&s->wlock);
    return store_sqlite_status(rc);
}

/* ---- open and close ------------------------------------------------------ */

static void sq_close(struct store_backend *base)
{
    struct sqlite_store *s = S(base);
    if (!s)
        return;
    store_sqlite_ckpt_stop(s);
    store_sqlite_hist_close(s); /* uses s->w[] */
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(s->w[i]);
    for (int i = 0; i < R_COUNT; i++)
        sqlite3_finalize(s->r[i]);
    sqlite3_close(s->rdb);
    sqlite3_close(s->wdb);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->rlock);
    free(s->db_path);
    free(s);
}

static wb_status prepare_all(struct sqlite_store *s, char *err, size_t errlen)
{
    for (int i = 0; i < W_COUNT; i++)
        if (sqlite3_prepare_v3(s->wdb, wsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->w[i], NULL)) {
            snprintf(err, errlen, "%s: preparing statements: %s", s->db_path,
                     sqlite3_errmsg(s->wdb));
            return WB_ERR_DB;
        }
    wb_status st = store_sqlite_hist_prepare(s, err, errlen);
    return st == WB_OK ? store_sqlite_prepare_reads(s, err, errlen) : st;
}

static wb_status sq_open(struct store_backend **out, const struct store_config *cfg, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!cfg->db_path) {
        snprintf(err, errlen, "no db_path given for the sqlite store");
        return WB_ERR_INVALID;
    }
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (!s)
        return WB_ERR_NOMEM;
    s->base.ops = &store_sqlite_backend;
    s->cfg = *cfg;
    s->db_path = strdup(cfg->db_path);
    s->cfg.db_path = s->db_path;
    s->cfg.backend = store_sqlite_backend.name;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    wb_status st = WB_ERR_NOMEM;
    if (!s->db_path)
        goto fail;
    if (cfg->read_only) {
        /* The state tool: one reader connection, nothing is ever written. */
        st = store_sqlite_open_ro(s->db_path, &s->rdb, err, errlen);
        if (st == WB_OK)
            st = store_sqlite_prepare_reads(s, err, errlen);
        if (st != WB_OK)
            goto fail;
        *out = &s->base;
        return WB_OK;
    }
    st = store_sqlite_open_db(s->db_path, &s->wdb, err, errlen);
    if (st != WB_OK)
        goto fail;
    /* FULL makes each commit durable on its own when there is no window
     * or no sync interval; otherwise NORMAL plus sq_sync(). */
    s->base.durable_commits = cfg->commit_interval_ms == 0 || cfg->sync_interval_ms == 0;
    sqlite3_exec(s->wdb,
                 s->base.durable_commits ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                 NULL, NULL, NULL);
    st = WB_ERR_DB;
    if (sqlite3_open_v2(s->db_path, &s->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)) {
        snprintf(err, errlen, "%s: opening the reader connection: %s", s->db_path,
                 sqlite3_errmsg(s->rdb));
        goto fail;
    }
    sqlite3_busy_timeout(s->rdb, 5000);
    sqlite3_exec(s->rdb, "PRAGMA query_only=1", NULL, NULL, NULL);
    /* Memory: the reader serves restore scans and HTTP queries (pages also
     * in the OS cache); SQLite's default page cache is 2 MB per connection. */
    sqlite3_exec(s->rdb, "PRAGMA cache_size=-256", NULL, NULL, NULL);
    st = prepare_all(s, err, errlen);
    if (st == WB_OK)
        st = store_sqlite_hist_load(s, err, errlen);
    if (st != WB_OK)
        goto fail;
    /* quick_check and the history scan filled the writer's page cache with
     * pages read once; hand them back before the daemon builds its state
     * (peak RSS), the writer reads what it needs again from the OS cache. */
    sqlite3_db_release_memory(s->wdb);
    st = store_sqlite_ckpt_start(s, cfg->checkpoint_pages, err, errlen);
    if (st != WB_OK)
        goto fail;
    *out = &s->base;
    return WB_OK;
fail:
    sq_close(&s->base);
    return st;
}

const struct store_backend_ops store_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .commit = sq_commit,
    .sync = sq_sync,
    .get = store_sqlite_get,
    .scan = store_sqlite_scan,
    .history_rows = store_sqlite_history_rows,
    .connection_rows = store_sqlite_connection_rows,
    .command_rows = store_sqlite_command_rows,
    .status = sq_status,
};

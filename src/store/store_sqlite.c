/*
 * store_sqlite.c - the SQLite StateStore backend: the handle, the pending
 * changes, the writer thread and its group commit. Reads live in
 * store_sqlite_read.c, opening a file in store_sqlite_open.c.
 *
 * Owns two connections to one WAL database: the writer's (wdb, used only
 * under wlock: by the writer thread, and by the test hook) and the readers'
 * (rdb, query_only, under rlock). Callers never wait for a disk write unless
 * commit_interval_ms is 0 (set/del/append then flush before returning, and
 * the writer's connection runs synchronous=FULL) or they call flush.
 *
 * Pending changes live under `lock` in one batch: a hash map key -> latest
 * JSON text (NULL = delete tombstone), so N sets of one key inside a window
 * cost one row write, plus a FIFO of appended rows (history, connection log,
 * devices, commands). Every set() gets the next sequence number. History
 * rows are chained per device instead of indexed (store_sqlite_history.c),
 * and state_store.updated_at is generated from updated_ms: a commit of a
 * hundred transitions writes about 20 KiB (WAL and checkpoint together).
 *
 *   set/del/append --(lock)--> pending --(writer_main: swap)--> inflight
 *                                 ^                                |
 *                                 |                                | commit_batch():
 *                                 |  failed: requeue() under the   | BEGIN IMMEDIATE,
 *                                 +- newer pending values, back    | upserts in key order,
 *                                    off 50 ms .. 1 s, status !ok  | appends, retention, COMMIT
 *                                                                  |
 *   flush(): flush_req++, wake,    ok: committed_seq = max_seq, <--+
 *   wait until flush_done >= req       status ok, inflight freed
 *
 * The writer wakes when the first change of a window is commit_interval_ms
 * old (or the back-off after a failure expired), when a flush is requested,
 * when a WAL sync is due, and at close.
 *
 * Durability (the sync policy). A COMMIT makes changes visible and safe
 * from kill -9 (the OS page cache survives the process); only an fsync
 * makes them survive a power cut. With commit_interval_ms and
 * sync_interval_ms both > 0 the writer runs synchronous=NORMAL (a COMMIT
 * does not fsync) and syncs the WAL itself:
 *
 *   all durable --COMMIT--> unsynced (unsynced_ms = now)
 *        ^                     | unsynced_ms + sync_interval_ms passed, or
 *        |                     | close(): sync_wal_locked() fsyncs the WAL
 *        +---------------------+ durable_seq = committed_seq
 *
 * so a power cut loses at most the commits of the last sync_interval_ms
 * (plus the commit window before them). Either interval 0 means
 * synchronous=FULL: each COMMIT is durable when it returns.
 *
 * Invariant: a change is in exactly one of pending, inflight or
 * the database; nothing leaves pending/inflight except through a successful
 * COMMIT. The only loss is at close while the database keeps failing: that is
 * logged with the number of changes dropped.
 */
#include "store/store_sqlite.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_map.h"

#define WRITER_NICE 5
#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

static const char *const wsql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
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

/* ---- pending batches ------------------------------------------------- */

static struct op *op_new(enum op_kind kind, int flag, const char *const *fields, int n)
{
    size_t len[OP_FIELDS], total = sizeof(struct op) + (size_t)n * sizeof(const char *);
    for (int i = 0; i < n; i++) {
        len[i] = fields[i] ? strlen(fields[i]) + 1 : 0;
        total += len[i];
    }
    struct op *o = malloc(total);
    if (!o)
        return NULL;
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->flag = flag;
    char *p = (char *)&o->f[n];
    for (int i = 0; i < n; i++) {
        o->f[i] = NULL;
        if (!fields[i])
            continue;
        memcpy(p, fields[i], len[i]);
        o->f[i] = p;
        p += len[i];
    }
    return o;
}

static void batch_free(struct batch *b)
{
    smap_clear(&b->kv);
    while (b->head) {
        struct op *o = b->head;
        b->head = o->next;
        free(o);
    }
    memset(b, 0, sizeof(*b));
}

/* Caller holds lock. Starts the commit window on the first change. */
static void mark_pending(struct sqlite_store *s)
{
    if (s->first_pending_ms == 0) {
        s->first_pending_ms = util_mono_ms();
        pthread_cond_signal(&s->wake);
    }
}

/* Caller holds lock. */
static void append_op_locked(struct sqlite_store *s, struct op *o)
{
    if (s->pending.head)
        s->pending.tail->next = o;
    else
        s->pending.head = o;
    s->pending.tail = o;
    s->pending.nops++;
    mark_pending(s);
}

static wb_status enqueue_op(struct sqlite_store *s, struct op *o)
{
    if (!o)
        return WB_ERR_NOMEM;
    if (s->cfg.read_only) {
        free(o);
        return WB_ERR_READONLY;
    }
    wb_lock(&s->lock);
    append_op_locked(s, o);
    pthread_mutex_unlock(&s->lock);
    return s->cfg.commit_interval_ms == 0 ? s->base.ops->flush(&s->base) : WB_OK;
}

/* ---- the writer thread ----------------------------------------------- */

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

static int write_op(struct sqlite_store *s, const struct op *o)
{
    if (o->kind == OP_HIST)
        return store_sqlite_hist_append(s, o);
    static const int stmt[] = {[OP_CONN] = W_CONN, [OP_DEVICE] = W_DEVICE, [OP_CMD] = W_CMD};
    static const int nf[] = {[OP_CONN] = 3, [OP_DEVICE] = 5, [OP_CMD] = 9};
    sqlite3_stmt *st = s->w[stmt[o->kind]];
    bind_texts(st, o->f, nf[o->kind]);
    if (o->kind == OP_DEVICE)
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
static int commit_batch(struct sqlite_store *s, const struct batch *b)
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
        sqlite3_stmt *st = s->w[e->text ? W_UPSERT : W_DELETE];
        sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
        if (e->text) {
            sqlite3_bind_text(st, 2, e->text, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now_ms);
        }
        rc = store_sqlite_run(s, st);
    }
    for (const struct op *o = b->head; rc == SQLITE_OK && o; o = o->next)
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

/* Caller holds lock; the failed batch goes back under the newer changes. */
static void requeue(struct sqlite_store *s, struct batch *b)
{
    if (smap_merge_older(&s->pending.kv, &b->kv) != WB_OK)
        log_error("store: out of memory; %zu state changes lost", b->kv.count);
    if (b->head) {
        b->tail->next = s->pending.head;
        if (!s->pending.head)
            s->pending.tail = b->tail;
        s->pending.head = b->head;
        s->pending.nops += b->nops;
        b->head = NULL;
    }
    batch_free(b);
    if (s->first_pending_ms == 0)
        s->first_pending_ms = util_mono_ms();
}

static void wait_until(struct sqlite_store *s, int64_t due_ms)
{
    if (due_ms == INT64_MAX) {
        pthread_cond_wait(&s->wake, &s->lock);
        return;
    }
    struct timespec ts = {.tv_sec = due_ms / 1000, .tv_nsec = (due_ms % 1000) * 1000000};
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
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
 * (the bytes per sync interval: bench/RESULTS.md, README Benchmarks).
 * Writer thread, caller holds lock (released during the fsync). */
static void sync_wal_locked(struct sqlite_store *s)
{
    uint64_t seq = s->st.committed_seq;
    pthread_mutex_unlock(&s->lock);
    wb_lock(&s->wlock);
    sqlite3_file *f = NULL;
    int rc = sqlite3_file_control(s->wdb, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
    if (rc == SQLITE_OK && f && f->pMethods)
        rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
    pthread_mutex_unlock(&s->wlock);
    wb_lock(&s->lock);
    if (rc != SQLITE_OK) {
        if (!s->sync_failing)
            log_error("store: syncing the WAL of %s failed (%d); retrying", s->db_path, rc);
        s->sync_failing = true;
        s->unsynced_ms = util_mono_ms(); /* next try one interval later */
        return;
    }
    s->sync_failing = false;
    s->st.syncs++;
    if (seq > s->st.durable_seq)
        s->st.durable_seq = seq;
    if (seq == s->st.committed_seq)
        s->unsynced_ms = 0;
}

static void *writer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "wbmb-store"); /* top -H, perf, gdb */
    /* Commits are batch work: on a 2-core controller they should yield to
     * the message path (a commit can wait a few ms, a message should not).
     * Linux applies a nice value per thread. */
    setpriority(PRIO_PROCESS, (id_t)gettid(), WRITER_NICE);
    wb_lock(&s->lock);
    while (!s->stop) {
        bool have = s->pending.kv.count || s->pending.nops;
        bool flush = s->flush_req > s->flush_done;
        int64_t due = have ? s->first_pending_ms + s->cfg.commit_interval_ms : INT64_MAX;
        if (have && s->failing && due < s->retry_at_ms)
            due = s->retry_at_ms;
        int64_t sync_due = s->unsynced_ms ? s->unsynced_ms + s->cfg.sync_interval_ms : INT64_MAX;
        int64_t now = util_mono_ms();
        if (!flush && (!have || now < due)) {
            if (now >= sync_due)
                sync_wal_locked(s);
            else
                wait_until(s, due < sync_due ? due : sync_due);
            continue;
        }
        uint64_t gen = s->flush_req;
        wb_status result = WB_OK;
        if (have) {
            s->inflight = s->pending;
            s->inflight.max_seq = s->next_seq;
            memset(&s->pending, 0, sizeof(s->pending));
            s->has_inflight = true;
            s->first_pending_ms = 0;
            pthread_mutex_unlock(&s->lock);

            int64_t t0 = util_mono_ms();
            struct timespec a, z;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int rc = commit_batch(s, &s->inflight);
            clock_gettime(CLOCK_MONOTONIC, &z);
            uint64_t us =
                (uint64_t)((z.tv_sec - a.tv_sec) * 1000000 + (z.tv_nsec - a.tv_nsec) / 1000);

            wb_lock(&s->lock);
            store_sqlite_hist_end(s, rc == SQLITE_OK);
            s->has_inflight = false;
            result = store_sqlite_status(rc);
            if (rc == SQLITE_OK) {
                s->st.commits++;
                s->st.rows_written += s->inflight.kv.count;
                s->st.committed_seq = s->inflight.max_seq;
                if (s->full_sync)
                    s->st.durable_seq = s->st.committed_seq;
                else if (s->unsynced_ms == 0)
                    s->unsynced_ms = util_mono_ms();
                s->st.commit_latency_us_sum += us;
                if (us > s->st.commit_latency_us_max)
                    s->st.commit_latency_us_max = us;
                if (s->failing)
                    log_info("store: commits to %s succeed again", s->db_path);
                s->failing = false;
                s->backoff_ms = 0;
                s->st.ok = true;
                s->st.last_error = WB_OK;
                s->st.last_error_text[0] = '\0';
                batch_free(&s->inflight);
            } else {
                s->st.commit_failures++;
                if (!s->failing)
                    log_error("store: commit to %s failed, changes kept and retried: %s",
                              s->db_path, s->werr);
                s->failing = true;
                s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 50;
                if (s->backoff_ms > 1000)
                    s->backoff_ms = 1000;
                s->retry_at_ms = t0 + s->backoff_ms;
                s->st.ok = false;
                s->st.last_error = result;
                snprintf(s->st.last_error_text, sizeof(s->st.last_error_text), "%s", s->werr);
                requeue(s, &s->inflight);
            }
        }
        if (gen > s->flush_done) {
            s->flush_done = gen;
            s->flush_status = result;
            pthread_cond_broadcast(&s->done);
        }
        /* A sync that fell due while committing follows at once. */
        if (s->unsynced_ms && util_mono_ms() >= s->unsynced_ms + s->cfg.sync_interval_ms)
            sync_wal_locked(s);
    }
    /* Close (SIGTERM): whatever was committed is made durable now. */
    if (s->unsynced_ms)
        sync_wal_locked(s);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- writes ----------------------------------------------------------- */

static wb_status sq_flush(struct state_store *base)
{
    struct sqlite_store *s = S(base);
    if (!s->thread_started)
        return WB_OK; /* read-only: nothing is ever pending */
    wb_lock(&s->lock);
    uint64_t req = ++s->flush_req;
    pthread_cond_signal(&s->wake);
    while (s->flush_done < req)
        pthread_cond_wait(&s->done, &s->lock);
    wb_status st = s->flush_status;
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* Caller holds lock; takes text (freed on failure). */
static wb_status put_kv_locked(struct sqlite_store *s, const char *key, char *text, bool is_set)
{
    uint64_t seq = is_set ? ++s->next_seq : 0;
    wb_status st = smap_put(&s->pending.kv, key, text, seq, NULL);
    if (st == WB_OK && is_set)
        s->st.sets++;
    if (st == WB_OK)
        mark_pending(s);
    return st;
}

static wb_status put_kv(struct sqlite_store *s, const char *key, char *text, bool is_set)
{
    if (s->cfg.read_only) {
        free(text);
        return WB_ERR_READONLY;
    }
    wb_lock(&s->lock);
    wb_status st = put_kv_locked(s, key, text, is_set);
    pthread_mutex_unlock(&s->lock);
    if (st == WB_OK && s->cfg.commit_interval_ms == 0)
        st = sq_flush(&s->base);
    return st;
}

static wb_status sq_set(struct state_store *base, const char *key, json_object *value)
{
    if (!key || !value)
        return WB_ERR_INVALID;
    /* Serialised now, outside the lock: the caller may change value later. */
    char *text = strdup(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
    if (!text)
        return WB_ERR_NOMEM;
    return put_kv(S(base), key, text, true);
}

static wb_status sq_del(struct state_store *base, const char *key)
{
    if (!key)
        return WB_ERR_INVALID;
    return put_kv(S(base), key, NULL, false);
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

static wb_status sq_history_append(struct state_store *base, const char *device_id,
                                   json_object *state, const char *ts)
{
    struct sqlite_store *s = S(base);
    if (!s->cfg.history_enabled)
        return WB_OK;
    if (!device_id || !state)
        return WB_ERR_INVALID;
    int64_t ms = util_wall_ms();
    if (ts && !ts_parse_ms(ts, &ms))
        return WB_ERR_INVALID;
    const char *f[] = {device_id, json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN)};
    struct op *o = op_new(OP_HIST, 0, f, 2);
    if (o)
        o->ms = ms;
    return enqueue_op(s, o);
}

/* set + history_append of one JSON text, queued together under one lock,
 * so with commit_interval_ms 0 one commit carries both (store_transition).
 * The text comes from the device manager's own writer: it is stored as it
 * is, not parsed again on the hot path. */
static wb_status sq_transition(struct state_store *base, const char *key, const char *device_id,
                               const char *json, bool history)
{
    struct sqlite_store *s = S(base);
    if (s->cfg.read_only)
        return WB_ERR_READONLY;
    char *text = strdup(json);
    if (!text)
        return WB_ERR_NOMEM;
    struct op *o = NULL;
    if (history && s->cfg.history_enabled) {
        const char *f[] = {device_id, text};
        if (!(o = op_new(OP_HIST, 0, f, 2))) {
            free(text);
            return WB_ERR_NOMEM;
        }
        o->ms = util_wall_ms();
    }
    wb_lock(&s->lock);
    wb_status st = put_kv_locked(s, key, text, true); /* takes text */
    if (st == WB_OK && o)
        append_op_locked(s, o);
    else
        free(o);
    pthread_mutex_unlock(&s->lock);
    if (st == WB_OK && s->cfg.commit_interval_ms == 0)
        st = sq_flush(&s->base);
    return st;
}

static wb_status sq_connection_append(struct state_store *base, const char *device_id,
                                      const char *event, const char *ts)
{
    if (!device_id || !event)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    if (!ts) {
        util_iso8601_now(now);
        ts = now;
    }
    const char *f[] = {device_id, event, ts};
    return enqueue_op(S(base), op_new(OP_CONN, 0, f, 3));
}

static wb_status sq_device_upsert(struct state_store *base, const struct store_device_row *r)
{
    if (!r || !r->device_id)
        return WB_ERR_INVALID;
    const char *f[] = {r->device_id, r->device_type, r->name, r->last_seen, r->connected_at};
    return enqueue_op(S(base), op_new(OP_DEVICE, r->is_online, f, 5));
}

static wb_status sq_command_put(struct state_store *base, const struct store_command_row *r)
{
    if (!r || !r->command_id)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    util_iso8601_now(now);
    const char *f[] = {r->command_id,  r->device_id, r->action, r->params,
                       r->source,      r->status,    r->error,  r->created_at ? r->created_at : now,
                       r->completed_at};
    return enqueue_op(S(base), op_new(OP_CMD, 0, f, 9));
}

static void sq_get_status(struct state_store *base, struct store_status *out)
{
    struct sqlite_store *s = S(base);
    wb_lock(&s->lock);
    *out = s->st;
    out->pending = s->pending.kv.count + s->pending.nops;
    if (s->has_inflight)
        out->pending += s->inflight.kv.count + s->inflight.nops;
    pthread_mutex_unlock(&s->lock);
}

wb_status store_sqlite_exec_for_test(struct state_store *base, const char *sql)
{
    struct sqlite_store *s = S(base);
    wb_lock(&s->wlock);
    int rc = sqlite3_exec(s->wdb, sql, NULL, NULL, NULL);
    pthread_mutex_unlock(&s->wlock);
    return store_sqlite_status(rc);
}

/* ---- open and close ------------------------------------------------------ */

static void sq_close(struct state_store *base)
{
    struct sqlite_store *s = S(base);
    if (!s)
        return;
    if (s->thread_started) {
        wb_status st = sq_flush(base);
        wb_lock(&s->lock);
        size_t left = s->pending.kv.count + s->pending.nops;
        s->stop = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        if (left)
            log_error("store: closing %s with %zu changes not written (%s): they are lost",
                      s->db_path, left, wb_strerror(st));
    }
    store_sqlite_hist_close(s); /* uses s->w[] */
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(s->w[i]);
    for (int i = 0; i < R_COUNT; i++)
        sqlite3_finalize(s->r[i]);
    sqlite3_close(s->rdb);
    if (s->rtok)
        json_tokener_free(s->rtok);
    sqlite3_close(s->wdb);
    batch_free(&s->pending);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
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

static wb_status sq_open(struct state_store **out, const struct store_config *cfg, char *err,
                         size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *out = NULL;
    if (!cfg->db_path) {
        snprintf(err, errlen, "no db_path given for the sqlite store");
        return WB_ERR_INVALID;
    }
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (!s)
        return WB_ERR_NOMEM;
    s->base.ops = &store_sqlite_ops;
    s->cfg = *cfg;
    s->db_path = strdup(cfg->db_path);
    s->cfg.db_path = s->db_path;
    s->cfg.backend = store_sqlite_ops.name;
    s->st.ok = true;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* matches util_mono_ms() */
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->done, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    wb_status st = WB_ERR_NOMEM;
    if (!s->db_path)
        goto fail;
    if (cfg->read_only) {
        /* The state tool: one reader connection, no writer thread. */
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
     * or no sync interval; otherwise NORMAL plus sync_wal_locked(). */
    s->full_sync = cfg->commit_interval_ms == 0 || cfg->sync_interval_ms == 0;
    sqlite3_exec(s->wdb, s->full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
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
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the store writer thread");
        st = WB_ERR_NOMEM;
        goto fail;
    }
    s->thread_started = true;
    *out = &s->base;
    return WB_OK;
fail:
    sq_close(&s->base);
    return st;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .get = store_sqlite_get,
    .set = sq_set,
    .del = sq_del,
    .list = store_sqlite_list,
    .flush = sq_flush,
    .history_append = sq_history_append,
    .transition = sq_transition,
    .history_query = store_sqlite_history_query,
    .connection_append = sq_connection_append,
    .connection_query = store_sqlite_connection_query,
    .device_upsert = sq_device_upsert,
    .command_put = sq_command_put,
    .command_query = store_sqlite_command_query,
    .get_status = sq_get_status,
};

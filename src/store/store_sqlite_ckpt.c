/*
 * store_sqlite_ckpt.c - the SQLite backend's checkpointer: a thread with a
 * connection of its own that copies the WAL into the database file.
 *
 * Why not SQLite's auto-checkpoint: it runs inside the COMMIT that takes the
 * WAL past 1000 pages, on the writer's connection. That COMMIT then also
 * fsyncs the WAL, copies every changed page into the database file and
 * fsyncs that, and on a loaded or slow disk took seconds (up to 3.1 s in the
 * VM power-cut runs), during which the writer could neither commit nor
 * sync: changes waited past the sync interval, the durability bound.
 *
 * Here the writer's connection has no auto-checkpoint (its WAL hook is
 * ours), and the hook, called after each COMMIT with the WAL's size, wakes
 * this thread when the WAL holds ckpt_pages or more. The thread runs a
 * PASSIVE checkpoint, which in WAL mode goes on beside the writer: new
 * commits append to the WAL while older frames are copied, and the writer's
 * own fsync of the WAL (sq_sync) does not wait for it. Once everything is
 * copied the next write transaction starts the WAL from its beginning
 * again, so the file stays about ckpt_pages long, as with auto-checkpoint.
 *
 *   writer thread (wlock held)          checkpointer thread
 *   COMMIT -> wal_hook(frames) --------> wakes when frames >= ckpt_pages
 *   COMMIT ... sq_sync (WAL fsync)       sqlite3_wal_checkpoint_v2(PASSIVE):
 *   ...                                    WAL fsync, copy, database fsync
 *
 * A failing checkpoint (disk full, I/O error) loses nothing: the frames stay
 * in the WAL, which is what recovery replays. It is logged once per failing
 * streak and tried again at the next commit's wake-up.
 *
 * The same thread and connection also walk history chains ahead of their
 * prunes (store_sqlite_hist_walk, store_sqlite_history.c): a read of
 * committed rows that used to run inside a commit.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite.h"
#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

struct sq_ckpt {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sqlite_store *s;
    sqlite3 *db;        /* the checkpointer's own connection */
    sqlite3_stmt *walk; /* store_sqlite_hist_walk's, on db */
    int pages;          /* wake-up threshold, in WAL frames */
    bool want, want_walks, stop, failing;
    /* Under mu: counters for store_status. */
    uint64_t n, us_sum, us_max, failures;
};

/* SQLite's WAL hook on the writer's connection (writer thread, after a
 * COMMIT, wlock held): only a flag and a signal, never a checkpoint. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct sq_ckpt *c = ud;
    if (frames < c->pages)
        return SQLITE_OK;
    wb_lock(&c->mu);
    c->want = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    struct sq_ckpt *c = arg;
    wb_lock(&c->mu);
    for (;;) {
        while (!c->want && !c->want_walks && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        if (c->want_walks) {
            c->want_walks = false;
            pthread_mutex_unlock(&c->mu);
            store_sqlite_hist_walk(c->s, c->db, &c->walk);
            wb_lock(&c->mu);
            continue;
        }
        c->want = false;
        pthread_mutex_unlock(&c->mu);
        int64_t t0 = util_mono_us();
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        uint64_t us = (uint64_t)(util_mono_us() - t0);
        if (rc == SQLITE_BUSY) { /* another checkpoint (none of ours): not a failure */
            wb_lock(&c->mu);
            continue;
        }
        const char *why = rc == SQLITE_OK ? NULL : sqlite3_errmsg(c->db);
        if (why && !c->failing)
            log_warn("store: checkpoint of the WAL failed (%s), the frames stay in the WAL and "
                     "are tried again",
                     why);
        else if (!why && c->failing)
            log_info("store: checkpoints of the WAL succeed again");
        wb_lock(&c->mu);
        c->failing = why != NULL;
        if (why) {
            c->failures++;
            continue;
        }
        c->n++;
        c->us_sum += us;
        if (us > c->us_max)
            c->us_max = us;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

wb_status store_sqlite_ckpt_start(struct sqlite_store *s, unsigned pages, char *err, size_t errlen)
{
    struct sq_ckpt *c = calloc(1, sizeof(*c));
    if (!c)
        return WB_ERR_NOMEM;
    c->pages = pages ? (int)pages : 1000;
    c->s = s;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rc = sqlite3_open_v2(s->db_path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    /* One read opens the connection's WAL index, which a checkpoint on a
     * connection that never read needs first; user_version reads the
     * header without parsing the schema (memory). The database file is
     * synced after each checkpoint whatever `synchronous` says (not OFF). */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db,
                          "PRAGMA cache_size=-64; PRAGMA synchronous=NORMAL; PRAGMA user_version",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: opening the checkpointer's connection: %s", s->db_path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
        snprintf(err, errlen, "cannot start the checkpointer thread");
        goto fail;
    }
    /* Replaces the writer connection's auto-checkpoint (also a WAL hook). */
    sqlite3_wal_hook(s->wdb, wal_hook, c);
    s->ckpt = c;
    return WB_OK;
fail:
    sqlite3_close(c->db);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return WB_ERR_DB;
}

void store_sqlite_ckpt_stop(struct sqlite_store *s)
{
    struct sq_ckpt *c = s->ckpt;
    if (!c)
        return;
    wb_lock(&s->wlock); /* no commit calls the hook from here on */
    sqlite3_wal_hook(s->wdb, NULL, NULL);
    pthread_mutex_unlock(&s->wlock);
    wb_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    sqlite3_finalize(c->walk);
    /* Not the last connection: closing it neither checkpoints nor removes
     * the WAL; the writer's connection, closed last, does both. */
    sqlite3_close(c->db);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    s->ckpt = NULL;
}

void store_sqlite_ckpt_wake_walks(struct sqlite_store *s)
{
    struct sq_ckpt *c = s->ckpt;
    if (!c)
        return;
    wb_lock(&c->mu);
    c->want_walks = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void store_sqlite_ckpt_status(struct sqlite_store *s, struct store_status *out)
{
    struct sq_ckpt *c = s->ckpt;
    if (!c)
        return;
    wb_lock(&c->mu);
    out->checkpoints = c->n;
    out->checkpoint_failures = c->failures;
    out->checkpoint_latency_us_sum = c->us_sum;
    out->checkpoint_latency_us_max = c->us_max;
    pthread_mutex_unlock(&c->mu);
}

/*
 * store_sqlite.h - internals of the SQLite backend shared by its two files,
 * plus the hooks the unit tests use. Not part of the public StateStore API.
 *
 * store_sqlite.c owns the handle and writes one batch per transaction (the
 * batches and the writer thread are store_writer.c's); store_sqlite_read.c
 * the reads of committed rows (get, scan, and the history/connection/command
 * rows); store_sqlite_open.c opening a file:
 * folders, corrupt-file recovery, WAL, schema creation and migrations;
 * store_sqlite_history.c the per-device history chains (heads, pruning).
 */
#ifndef WBMB_STORE_SQLITE_H
#define WBMB_STORE_SQLITE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/store_backend.h"
#include "wbmb/state_store.h"
#include "wbmb/strix.h"

/* Maps an SQLite result code (primary or extended) to a wb_status. */
wb_status store_sqlite_status(int rc);

/* Opens (creating parent folders and the file when missing) the database at
 * path for writing: WAL mode, busy timeout, PRAGMA quick_check, schema created
 * or migrated to STORE_SCHEMA_VERSION. A corrupt or truncated file is moved
 * aside to <path>.corrupt.<UTC timestamp> (with its -wal and -shm), logged,
 * and a fresh database is created. Returns WB_ERR_VERSION for a newer schema,
 * WB_ERR_READONLY for a file that cannot be written; *out is NULL and err
 * holds a one-line reason on failure. */
wb_status store_sqlite_open_db(const char *path, sqlite3 **out, char *err, size_t errlen);

/* Opens the existing database at path for reading only (the state tool):
 * never creates, migrates or writes it. Falls back to immutable=1 when the
 * file or its folder cannot be written (a WAL database otherwise needs its
 * -shm file). WB_ERR_NOT_FOUND when there is no file, WB_ERR_VERSION for a
 * newer schema; *out is NULL and err holds a one-line reason on failure. */
wb_status store_sqlite_open_ro(const char *path, sqlite3 **out, char *err, size_t errlen);

/* Test hook: runs sql on the writer's connection (between commits), e.g.
 * "PRAGMA max_page_count=..." or "PRAGMA query_only=1" to simulate a full or
 * read-only database. Returns the status of the statement. */
wb_status store_sqlite_exec_for_test(struct state_store *s, const char *sql);

/* ---- internals shared by the store_sqlite*.c files ---- */

enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_UPDATE,
    W_UPSERT,
    W_DELETE,
    W_CONN,
    W_DEVICE,
    W_CMD,
    W_COUNT
};
/* The history chains' statements (store_sqlite_history.c), on wdb. */
enum {
    H_APPEND,
    H_PRUNE_ROWS,
    H_AGE_CUT,
    H_AGE_COUNT,
    H_PRUNE_AGE,
    H_HEAD_PUT,
    H_HEADS_LOAD,
    H_HEADS_SCAN,
    H_COUNT
};
enum {
    R_GET,
    R_LIST_FROM,
    R_LIST_RANGE,
    R_HIST,
    R_HIST_ASC,
    R_IDS,
    R_SEEK,
    R_CONN,
    R_CMD,
    R_CMD_ID,
    R_COUNT
};

/* The SQLite backend (struct store_backend_ops store_sqlite_backend). The
 * batches, the writer thread and the floors are the writer's
 * (store_writer.c); this is one database with two connections. */
struct sqlite_store {
    struct store_backend base;
    struct store_config cfg;
    char *db_path;
    sqlite3 *wdb, *rdb;
    sqlite3_stmt *w[W_COUNT], *h[H_COUNT], *r[R_COUNT];
    pthread_mutex_t wlock, rlock;
    /* Guards the history chains' index and committed heads (below), which
     * the writer thread changes and readers look up. */
    pthread_mutex_t lock;

    /* History chains (store_sqlite_history.c). hist_ix (device id -> index
     * in hist_devs, over hist_devs[].id; wbmb/strix.h) and the hist_devs array change only in the
     * writer thread, and only under `lock`; c_head is written under `lock`
     * too, so readers look a device's committed head up under `lock`. The
     * rest of struct hist_dev is the writer's alone. */
    struct strix hist_ix;
    struct hist_dev *hist_devs;
    size_t n_hist, cap_hist;
    size_t *hist_touched; /* devices changed by the transaction being written */
    size_t n_touched, cap_touched;
    bool heads_saved; /* the transaction being written saves the heads */
    /* Devices whose boundary the checkpointer's thread should find (under
     * lock), and what it did (tests: store_sqlite_hist_counts_for_test). */
    size_t *walk_q;
    size_t n_walk_q, cap_walk_q;
    uint64_t walks, fast_prunes, full_prunes;

    /* The checkpointer (store_sqlite_ckpt.c), NULL when read-only. */
    struct sq_ckpt *ckpt;

    /* Writer-thread only. */
    int64_t last_prune_ms;
    char werr[256];
};

#define S(x) ((struct sqlite_store *)(x))

/* One device's history chain: device_state_snapshots rows linked newest to
 * oldest through prev_id (see store_sqlite_history.c). */
struct hist_dev {
    char *id;       /* the device id (owned) */
    int64_t head;   /* newest row id, the transaction being written included */
    int64_t rows;   /* rows of the device in the table; never below the truth */
    int64_t c_head; /* head as of the last COMMIT (read by readers under lock) */
    int64_t c_rows; /* rows as of the last COMMIT */
    /* The background walk (store_sqlite_hist_walk). Under lock: cut is the
     * row that was walk_depth() rows from the head when the device had
     * c_appends == cut_at, 0 when none is known; walk is WALK_NONE, _QUEUED
     * (in walk_q or being walked) or _DONE (since the last prune). appends
     * counts the rows appended since open (wrapping), c_appends as of the
     * last COMMIT: the cut is depth + (appends - cut_at) rows from the head. */
    int64_t cut;
    uint32_t cut_at, appends, c_appends;
    bool in_tx;     /* listed in hist_touched */
    bool dirty;     /* differs from its device_state_heads row */
    bool walk_want; /* writer only: queue a walk if none is, once committed */
    uint8_t walk;
};
enum { WALK_NONE, WALK_QUEUED, WALK_DONE };

/* store_sqlite_history.c, all on the writer's connection. Return SQLite
 * result codes (error text in s->werr) unless said otherwise. */
/* Prepares s->h[]; WB_OK or WB_ERR_DB with err. */
wb_status store_sqlite_hist_prepare(struct sqlite_store *s, char *err, size_t errlen);
/* At open, before the writer thread starts: loads device_state_heads and
 * follows the rows appended after it was saved. WB_ERR_* with err set. */
wb_status store_sqlite_hist_load(struct sqlite_store *s, char *err, size_t errlen);
/* Inside a commit: appends one history row (o->f: device_id, state; o->ms). */
int store_sqlite_hist_append(struct sqlite_store *s, const struct store_op *o);
/* Inside a commit, after the appends: retention and, every 60 s, the heads. */
int store_sqlite_hist_prune(struct sqlite_store *s);
/* After a commit, caller holds lock: publishes the new heads (ok) or rolls
 * the in-memory chains back to the last COMMIT (!ok). True when it queued
 * background walks: the caller then calls store_sqlite_ckpt_wake_walks()
 * once it released lock. */
bool store_sqlite_hist_end(struct sqlite_store *s, bool ok);
/* At close, after the writer thread ended: saves the changed heads,
 * finalizes s->h[] and frees the chains. */
void store_sqlite_hist_close(struct sqlite_store *s);
/* Steps a writer statement to completion and resets it, keeping the error
 * text in s->werr (store_sqlite.c). */
int store_sqlite_run(struct sqlite_store *s, sqlite3_stmt *st);
/* Caller holds lock: the committed head row id of device_id, 0 when none. */
int64_t store_sqlite_hist_head(struct sqlite_store *s, const char *device_id);
/* The checkpointer's thread, on its own connection db: finds the boundary
 * row of every device in walk_q (a read of committed rows, beside the
 * writer), so that the device's next prune walks only what it deletes.
 * *st is the thread's statement (prepared on first use; the caller
 * finalizes it). */
void store_sqlite_hist_walk(struct sqlite_store *s, sqlite3 *db, sqlite3_stmt **st);
/* store_sqlite_ckpt.c: wakes the checkpointer's thread for the walks. */
void store_sqlite_ckpt_wake_walks(struct sqlite_store *s);
/* Tests: background walks done, prunes that used one, full prunes. */
void store_sqlite_hist_counts_for_test(struct state_store *store, uint64_t *walks, uint64_t *fast,
                                       uint64_t *full);

/* store_sqlite_ckpt.c. Start: opens the checkpointer's connection, starts
 * its thread and replaces the writer connection's auto-checkpoint with a WAL
 * hook that wakes it at `pages` WAL pages (0 = 1000); WB_OK or WB_ERR_* with
 * err. Stop: before the other connections close; joins the thread. Status:
 * the checkpoint counters of out. */
wb_status store_sqlite_ckpt_start(struct sqlite_store *s, unsigned pages, char *err, size_t errlen);
void store_sqlite_ckpt_stop(struct sqlite_store *s);
void store_sqlite_ckpt_status(struct sqlite_store *s, struct store_status *out);

/* store_sqlite_read.c: prepares s->r[] on s->rdb; WB_OK or WB_ERR_DB with err. */
wb_status store_sqlite_prepare_reads(struct sqlite_store *s, char *err, size_t errlen);
/* The read side of the backend table (contracts: store_backend.h). */
wb_status store_sqlite_get(struct store_backend *base, const char *key, char **text);
wb_status store_sqlite_scan(struct store_backend *base, const char *prefix, store_scan_cb cb,
                            void *ud);
wb_status store_sqlite_history_rows(struct store_backend *base, const struct store_history_query *q,
                                    struct store_rows *out);
wb_status store_sqlite_connection_rows(struct store_backend *base, const char *device_id, int limit,
                                       struct store_rows *out);
wb_status store_sqlite_command_rows(struct store_backend *base,
                                    const struct store_command_filter *f, int limit,
                                    struct store_rows *out);

#endif

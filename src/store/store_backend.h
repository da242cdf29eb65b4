/*
 * store_backend.h - the narrow interface a StateStore backend implements,
 * and the batches the backend-neutral writer (store_writer.c) hands it.
 * Internal to src/store/.
 *
 * The split: everything about *when* changes reach the database (pending
 * and in-flight batches, coalescing per key, the writer thread, back-off,
 * sequence numbers, the committed and durable floors, flush) lives once, in
 * store_writer.c; the StateStore functions of state_store.h are built on it
 * in store_front.c. A backend only knows *how*: open its database, write one
 * batch in one transaction, make commits durable, and read committed data
 * back as plain rows (struct store_rows, state_store.h), never as JSON in
 * the HTTP API's shape. So a backend is a few statements behind a table of
 * functions; a client/server database (libpq: BEGIN, prepared statements,
 * COMMIT per batch) fits the same table.
 */
#ifndef WBMB_STORE_BACKEND_H
#define WBMB_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_map.h"
#include "wbmb/state_store.h"

/* What an appended row of a batch is. */
enum store_op_kind { STORE_OP_HIST, STORE_OP_CONN, STORE_OP_DEVICE, STORE_OP_CMD };
#define STORE_OP_FIELDS 9

/* One appended row; its strings are stored in the same allocation. Fields,
 * by kind: HIST device_id, state (JSON object text), kind, stats (NULL for
 * a plain row; see struct store_history_entry), with ms its time;
 * CONN device_id, event, ts; DEVICE device_id, device_type, name,
 * last_seen, connected_at, with flag is_online; CMD the nine columns of
 * struct store_command_row in order. */
struct store_op {
    struct store_op *next;
    enum store_op_kind kind;
    int flag;   /* devices.is_online */
    int64_t ms; /* history: the Unix time in ms */
    /* As many as the kind has (history 4, connection 3, device 5, command
     * 9), strings stored behind them in the same allocation: a history op
     * is ~100 bytes, not ~150, and a flood queues thousands per window. */
    const char *f[];
};

/* The number of fields of an op of kind k. */
int store_op_nfields(enum store_op_kind k);

/* A new op with copies of n fields (NULL stays NULL); NULL when out of
 * memory. Freed with free(). */
struct store_op *store_op_new(enum store_op_kind kind, int flag, const char *const *fields, int n);

/* The changes of one commit: key -> latest JSON text (NULL = delete),
 * coalesced, plus the appended rows in the order they came. */
struct store_batch {
    struct smap kv;
    struct store_op *head, *tail;
    size_t nops;
    uint64_t max_seq; /* the sequence number of its last set() */
};

struct store_backend;

/* Called by scan() for each committed key in key order; text is borrowed
 * for the call. Non-zero stops the scan. */
typedef int (*store_scan_cb)(const char *key, const char *text, void *ud);

struct store_backend_ops {
    const char *name; /* as in store_config.backend */
    /* Opens (creating when allowed) the database of cfg; cfg->read_only:
     * reads only, commit is never called. On failure *out is NULL and err
     * holds a one-line reason. */
    wb_status (*open)(struct store_backend **out, const struct store_config *cfg, char *err,
                      size_t errlen);
    void (*close)(struct store_backend *b);
    /* Writes batch in one transaction: the keys (upsert or delete), then
     * the rows in order, then the backend's own upkeep (retention); all of
     * it or nothing. On failure err holds the reason; the batch is left
     * as it is and the writer offers it again later. Writer thread only. */
    wb_status (*commit)(struct store_backend *b, const struct store_batch *batch, char *err,
                        size_t errlen);
    /* Makes every commit so far survive a power cut. NULL when every
     * commit already does (then b->durable_commits is true). Writer thread. */
    wb_status (*sync)(struct store_backend *b, char *err, size_t errlen);
    /* The reads, of committed data only, from any thread. get: *text =
     * a malloc'd copy of key's JSON text, WB_ERR_NOT_FOUND when absent.
     * scan: keys starting with prefix, in key order. */
    wb_status (*get)(struct store_backend *b, const char *key, char **text);
    wb_status (*scan)(struct store_backend *b, const char *prefix, store_scan_cb cb, void *ud);
    /* Rows appended to *out, newest first, at most limit (<= 0: no limit).
     * History: the rows of q in q's order, the retention of the config
     * applied exactly first (max rows per device, counting q->ahead rows
     * newer than every committed one, and max age), then q's time range
     * and limit. */
    wb_status (*history_rows)(struct store_backend *b, const struct store_history_query *q,
                              struct store_rows *out);
    wb_status (*connection_rows)(struct store_backend *b, const char *device_id, int limit,
                                 struct store_rows *out);
    /* Newest first by created_at, then by insertion. */
    wb_status (*command_rows)(struct store_backend *b, const struct store_command_filter *f,
                              int limit, struct store_rows *out);
    /* Optional: fills the backend's own counters of out (the writer's are
     * already there). Any thread. */
    void (*status)(struct store_backend *b, struct store_status *out);
};

/* Every backend's handle starts with this. */
struct store_backend {
    const struct store_backend_ops *ops;
    /* Set by open: a successful commit() is already durable (the floors
     * move together; sync is not called). */
    bool durable_commits;
    /* Set by open: a commit costs nothing, so the writer commits every
     * change before the call returns (commit_interval_ms 0) whatever the
     * config says. */
    bool no_window;
    /* Set by open, or NULL for cfg->db_path: how log lines name the
     * database (never with a password). */
    const char *where;
};

extern const struct store_backend_ops store_sqlite_backend;
extern const struct store_backend_ops store_memory_backend;
extern const struct store_backend_ops store_pg_backend;

/* The backend under a StateStore handle (store_front.c), for test hooks. */
struct store_backend *store_front_backend(struct state_store *s);

#endif

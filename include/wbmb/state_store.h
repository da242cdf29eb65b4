/*
 * state_store.h - the StateStore interface: where every state transition goes.
 *
 * A store is an opaque handle; store_open() chooses the backend by name
 * ("sqlite", the default, "memory", or "postgresql": one server shared by
 * many bridges, each with its own site; every commit durable when it
 * returns). Inside (src/store/): the functions
 * below are the same for every backend (store_front*.c), over the
 * backend-neutral group-commit writer (store_writer.c) and a backend that
 * implements a narrow table (store_backend.h: open, commit one batch in one
 * transaction, sync, get, scan, and row queries).
 *
 * Values are JSON objects (json-c). The store never takes ownership of a value
 * passed in: set() serialises it at once, so the caller may change or free it
 * right after. Values handed out (get, list, queries) are new references the
 * caller must json_object_put().
 *
 * Group commit: set()/delete()/append functions return at once and queue the
 * change; the writer thread commits everything queued together at most
 * commit_interval_ms later, in one transaction of the backend (the memory
 * backend has no window: each change is committed before the call returns). Repeated sets of one
 * key inside a window are coalesced into one row write. commit_interval_ms == 0 means every change
 * is committed durably (synchronous=FULL) before the call returns. flush() commits everything
 * pending now; close() flushes first and syncs. A commit survives kill -9; it survives a power cut
 * once synced: the SQLite backend syncs at most sync_interval_ms after a commit (0 = every commit
 * synced), and store_status.durable_seq says how far.
 *
 * Run-time storage errors (disk full, read-only, I/O) never abort: the pending
 * changes are kept, retried at every later commit, and reported through
 * store_get_status(). Every read sees pending changes: get/list overlay
 * them, and the history, connection and command-log queries merge the queued
 * rows with the committed ones; no read forces a commit.
 *
 * Thread safety: every function may be called from any thread; commits run
 * on a writer thread of the store's own.
 */
#ifndef WBMB_STATE_STORE_H
#define WBMB_STATE_STORE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

/* Where the store lives and how it commits; copied at open. */
struct store_config {
    const char *backend;           /* "sqlite" (default when NULL), "memory" or "postgresql" */
    const char *db_path;           /* SQLite file; parent folders are created */
    unsigned commit_interval_ms;   /* group commit window, 0 = synchronous */
    unsigned sync_interval_ms;     /* WAL made durable at least this often, 0 = every commit */
    bool read_only;                /* reads only: never creates, migrates or writes the file
                                      (writes return WB_ERR_READONLY); the state tool */
    bool history_enabled;          /* device_state_snapshots kept */
    unsigned history_max_rows;     /* per device, 0 = unlimited */
    unsigned history_max_age_days; /* 0 = unlimited */
    /* Appended rows queued while commits fail; past it the oldest history
     * snapshots are dropped (counted in store_status.history_dropped and
     * logged). 0 = unbounded. */
    unsigned max_queued_rows;
    /* SQLite: the WAL size, in pages, past which the checkpointer copies it
     * into the database file (store_sqlite_ckpt.c); 0 = 1000, SQLite's own
     * auto-checkpoint size. Not in the YAML; tests set it smaller. */
    unsigned checkpoint_pages;
    /* backend "postgresql" (store_pg.c): a libpq conninfo string or URI
     * (multi-host lists included), the password (NULL: libpq's own
     * PGPASSWORD / ~/.pgpass), this bridge's site (every row carries it),
     * and how long open() retries an unreachable server (0 = one try). */
    const char *pg_conninfo;
    const char *pg_password;
    const char *pg_site;
    unsigned pg_connect_timeout_s;
};

struct cfg_persistence;

/* The store config of the YAML's persistence: section (backend, path,
 * intervals, history limits); read_only false. The one place that maps the
 * config to the store: the daemon and the state tool both use it, then
 * change what they need (the tool: read_only, commit_interval_ms). The
 * strings point into p, which must outlive the store_open() call only. */
void store_config_from_cfg(const struct cfg_persistence *p, struct store_config *out);

/* Health and counters, for /health and /metrics. */
struct store_status {
    bool ok;                        /* false while the last commit attempt failed */
    wb_status last_error;           /* WB_OK when ok */
    char last_error_text[256];      /* detail of the last error, "" when none */
    uint64_t commits;               /* transactions committed */
    uint64_t commit_failures;       /* commit attempts that failed */
    uint64_t rows_written;          /* state rows written (after coalescing) */
    uint64_t sets;                  /* set() calls accepted */
    uint64_t pending;               /* changes queued and not yet committed */
    uint64_t committed_seq;         /* sequence number of the last committed set() */
    uint64_t durable_seq;           /* ... of the last set() known to survive a power cut */
    uint64_t syncs;                 /* WAL syncs done by the sync policy (not checkpoints) */
    uint64_t sync_latency_us_sum;   /* sum of their durations */
    uint64_t sync_latency_us_max;   /* longest sync */
    uint64_t durable_lag_ms_max;    /* longest time from a change queued to it durable */
    uint64_t commit_latency_us_sum; /* sum of commit durations */
    uint64_t commit_latency_us_max; /* longest commit */
    uint64_t history_dropped;       /* queued history snapshots dropped (max_queued_rows) */
    /* SQLite: checkpoints of the WAL into the database file, run beside
     * the writer (store_sqlite_ckpt.c); 0 for the other backends. */
    uint64_t checkpoints;
    uint64_t checkpoint_failures;
    uint64_t checkpoint_latency_us_sum;
    uint64_t checkpoint_latency_us_max;
};

/* One row of the devices table. */
struct store_device_row {
    const char *device_id;
    const char *device_type;
    const char *name;
    bool is_online;
    const char *last_seen;    /* ISO-8601 or NULL */
    const char *connected_at; /* ISO-8601 or NULL */
};

/* One row of command_logs; upserted by command_id. */
struct store_command_row {
    const char *command_id; /* UUID */
    const char *device_id;
    const char *action;
    const char *params;       /* JSON text or NULL */
    const char *source;       /* http | mqtt | scenario */
    const char *status;       /* sent | failed | rejected */
    const char *error;        /* NULL when none */
    const char *created_at;   /* ISO-8601 */
    const char *completed_at; /* ISO-8601 or NULL */
};

/* Filter of store_command_rows(); NULL fields do not filter. */
struct store_command_filter {
    const char *status;
    const char *device_id;
    const char *command_id; /* that command only */
};

/* A history query (store_history_query()): the rows of device_id with
 * from_ms <= time <= to_ms (INT64_MIN / INT64_MAX: open), newest first or,
 * with ascending, oldest first, at most limit rows (<= 0: no limit). The
 * retention of the config (history_max_rows, history_max_age_days) is
 * applied first: the range and the limit select among the rows a device
 * keeps. Designated initialisers keep callers working when fields are
 * added. */
struct store_history_query {
    const char *device_id;
    int64_t from_ms, to_ms;
    int limit;
    bool ascending;
    /* For the backends only (set by the front, 0 from outside): rows of the
     * device queued ahead of the committed ones, which count against
     * history_max_rows before any committed row does. */
    int64_t ahead;
};
#define STORE_HISTORY_QUERY(dev)                                                                   \
    ((struct store_history_query){.device_id = (dev), .from_ms = INT64_MIN, .to_ms = INT64_MAX})

/* Rows of the history, connection and command-log queries, as the store
 * has them (no JSON shape of any API: the HTTP API builds its own). The
 * strings are owned by the row set. */
struct store_history_row {
    char *device_id;
    char *ts;    /* ISO-8601 UTC */
    char *state; /* the JSON object text as stored */
    char *kind;  /* NULL (or "all"): one transition; "interval": an aggregate */
    char *stats; /* JSON {"field":{"min","max","mean","n"}} of an interval row, or NULL */
};

struct store_connection_row {
    char *device_id;
    char *event; /* online | offline | timeout */
    char *ts;
};

enum store_rows_kind { STORE_ROWS_HISTORY, STORE_ROWS_CONNECTIONS, STORE_ROWS_COMMANDS };

/* A result: n rows of one kind (commands: struct store_command_row, its
 * strings owned by the set too). struct store_rows r = STORE_ROWS(kind). */
struct store_rows {
    enum store_rows_kind kind;
    size_t n, cap;
    union {
        struct store_history_row *history;
        struct store_connection_row *connections;
        struct store_command_row *commands;
    };
};
#define STORE_ROWS(k) ((struct store_rows){.kind = (k)})

/* Appends a row of r's kind with copies of its fields in struct order
 * (history 5, connections 3, commands 9; NULL stays NULL). */
wb_status store_rows_add(struct store_rows *r, const char *const *fields);
/* Frees the rows and their strings; r is empty (same kind) afterwards. */
void store_rows_free(struct store_rows *r);

struct state_store;

/* Called by list() for each key in key order; value is borrowed for the call.
 * Return non-zero to stop early. */
typedef int (*store_list_cb)(const char *key, json_object *value, void *ud);

/* Opens a store with the backend named in cfg->backend. On failure returns
 * non-WB_OK, *out is NULL and err (if not NULL) holds a one-line reason. */
wb_status store_open(struct state_store **out, const struct store_config *cfg, char *err,
                     size_t errlen);
/* Flushes and frees; store_close(NULL) is a no-op. */
void store_close(struct state_store *s);

/* *out = a new reference to the value, or NULL with WB_ERR_NOT_FOUND. */
wb_status store_get(struct state_store *s, const char *key, json_object **out);
wb_status store_set(struct state_store *s, const char *key, json_object *value);
/* WB_OK also when the key was absent. */
wb_status store_delete(struct state_store *s, const char *key);
/* Keys starting with prefix ("" = all), in key order, pending changes included. */
wb_status store_list(struct state_store *s, const char *prefix, store_list_cb cb, void *ud);
/* Commits everything pending now; returns the commit's status. */
wb_status store_flush(struct state_store *s);

/* Appends a device_state_snapshots row (ignored when history is disabled);
 * ts NULL = now, else ISO-8601 UTC as util_iso8601_*() write it (the SQLite
 * backend returns WB_ERR_INVALID for anything else). */
wb_status store_history_append(struct state_store *s, const char *device_id, json_object *state,
                               const char *ts);
/* A history row with its policy's columns (schema 4): kind NULL for a
 * plain row (one transition) or "interval" for the aggregate of an
 * interval, stats its JSON text ({"field":{"min","max","mean","n"}}) or
 * NULL. ms <= 0: now. Strings are copied; the caller keeps its own. */
struct store_history_entry {
    const char *device_id;
    const char *state; /* JSON object text */
    int64_t ms;        /* Unix time in ms */
    const char *kind;
    const char *stats;
};
/* Queues e as a device_state_snapshots row (ignored when history is
 * disabled); WB_ERR_INVALID when device_id or state is missing. */
wb_status store_history_put(struct state_store *s, const struct store_history_entry *e);
/* One device transition: store_set(key, state) and, when history is on,
 * store_history_append(device_id, state, now), with the state given as JSON
 * object text (the device manager writes it without building a json-c
 * object). The hot path: backends store the text as it is, so json must be
 * the text of a JSON object (the fallback path parses it and returns
 * WB_ERR_INVALID otherwise). Returns the first failure. */
wb_status store_transition(struct state_store *s, const char *key, const char *device_id,
                           const char *json, bool history);
/* The same with the history row given apart (the history policy's row:
 * only the recorded fields, or another kind); e NULL = no row. Both are
 * queued under one lock, so one commit carries both. */
wb_status store_transition_with(struct state_store *s, const char *key, const char *json,
                                const struct store_history_entry *e);
/* The rows of the history, connection and command-log queries (struct
 * store_rows; the caller frees them with store_rows_free(), also on
 * failure): newest first, at most limit rows (<= 0: no limit). */
wb_status store_history_rows(struct state_store *s, const char *device_id, int limit,
                             struct store_rows *out);
/* The rows of q (struct store_history_query) in its order, queued rows
 * merged with committed ones; the caller frees out, also on failure.
 * WB_ERR_INVALID for a NULL device_id or from_ms > to_ms. */
wb_status store_history_query(struct state_store *s, const struct store_history_query *q,
                              struct store_rows *out);
wb_status store_connection_rows(struct state_store *s, const char *device_id, int limit,
                                struct store_rows *out);
wb_status store_command_rows(struct state_store *s, const struct store_command_filter *f, int limit,
                             struct store_rows *out);

/* Appends a device_connection_logs row; event: online | offline | timeout. */
wb_status store_connection_append(struct state_store *s, const char *device_id, const char *event,
                                  const char *ts);
wb_status store_device_upsert(struct state_store *s, const struct store_device_row *row);
wb_status store_command_put(struct state_store *s, const struct store_command_row *row);
void store_get_status(struct state_store *s, struct store_status *out);

/* The schema version this binary writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 4

#endif

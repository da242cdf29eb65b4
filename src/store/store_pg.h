/*
 * store_pg.h - internals of the PostgreSQL backend shared by its files.
 * Not part of the public StateStore API.
 *
 * store_pg.c owns the handle: connecting (libpq conninfo, password, retries
 * at open), the schema and its migrations, open and close; store_pg_write.c
 * writes one batch per transaction and the retention; store_pg_read.c the
 * reads of committed rows. libpq itself is loaded by pq_api.c.
 */
#ifndef WBMB_STORE_PG_H
#define WBMB_STORE_PG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pq_api.h"
#include "store/store_backend.h"
#include "store/store_map.h"
#include "wbmb/state_store.h"

/* The schema version this binary writes (table schema_version). */
#define STORE_PG_SCHEMA_VERSION 2

/* A statement of a connection: its name on the server and its text. */
struct pg_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

struct pg_store {
    struct store_backend base;
    struct store_config cfg;
    char *conninfo, *password, *site;
    char *where; /* "user@host:port/db site S", for log lines (no password) */
    /* The writer's connection (writer thread, and open/close) and the
     * readers' (any thread, under rlock). NULL while down: the next use
     * connects again. */
    PGconn *w, *r;
    pthread_mutex_t rlock;
    /* Writer thread only: devices with history rows since the last
     * retention pass, and when that ran. */
    struct smap touched;
    int64_t last_prune_ms;
};

#define PG(x) ((struct pg_store *)(x))

/* Connects with s's conninfo and password and prepares stmts (n of them);
 * NULL with a one-line reason in err. */
PGconn *store_pg_connect(struct pg_store *s, const struct pg_stmt *stmts, size_t n, char *err,
                         size_t errlen);
/* The error of res (or of the connection when res is NULL), one line, in
 * err; false when res is not what ok says. */
bool store_pg_ok(PGconn *c, PGresult *res, ExecStatusType ok, char *err, size_t errlen);

/* store_pg_write.c */
extern const struct pg_stmt store_pg_wstmts[];
extern const size_t store_pg_n_wstmts;
wb_status store_pg_commit(struct store_backend *b, const struct store_batch *batch, char *err,
                          size_t errlen);

/* store_pg_read.c */
extern const struct pg_stmt store_pg_rstmts[];
extern const size_t store_pg_n_rstmts;
wb_status store_pg_get(struct store_backend *b, const char *key, char **text);
wb_status store_pg_scan(struct store_backend *b, const char *prefix, store_scan_cb cb, void *ud);
wb_status store_pg_history_rows(struct store_backend *b, const struct store_history_query *q,
                                struct store_rows *out);
wb_status store_pg_connection_rows(struct store_backend *b, const char *device_id, int limit,
                                   struct store_rows *out);
wb_status store_pg_command_rows(struct store_backend *b, const struct store_command_filter *f,
                                int limit, struct store_rows *out);

#endif

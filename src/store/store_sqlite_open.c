/*
 * store_sqlite_open.c - turns a path into a healthy, current SQLite database.
 *
 * Owns everything that happens before the first commit: parent folders,
 * WAL mode, the integrity check, moving a corrupt file aside, and the schema
 * (PRAGMA user_version). Invariant on success: the connection is in WAL mode,
 * writable, passed PRAGMA quick_check, and its user_version equals
 * STORE_SCHEMA_VERSION.
 *
 *   open_once() --ok--------------------------------------------> done
 *       |  WB_ERR_CORRUPT (NOTADB, CORRUPT, quick_check != ok)
 *       v
 *   move_aside(<db>, -wal, -shm -> <db>.corrupt.<ts>...) --> open_once() again
 *
 * Schema changes only through the migrations table below: version N to N+1,
 * all needed steps applied in one transaction, so a crash mid-migration leaves
 * the old schema intact.
 */
#include "store/store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wbmb/log.h"
#include "wbmb/util.h"

/* Version 1: the tables of CONTRACT.md section 4. Constant DDL, no values. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS state_store("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS device_state_snapshots("
    " id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, state TEXT NOT NULL, ts TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS idx_snapshots_device ON device_state_snapshots(device_id, id);"
    "CREATE INDEX IF NOT EXISTS idx_snapshots_ts ON device_state_snapshots(ts);"
    "CREATE TABLE IF NOT EXISTS command_logs("
    " command_id TEXT PRIMARY KEY, device_id TEXT, action TEXT, params TEXT, source TEXT,"
    " status TEXT, error TEXT, created_at TEXT NOT NULL, completed_at TEXT);"
    "CREATE INDEX IF NOT EXISTS idx_command_logs_created ON command_logs(created_at);"
    "CREATE TABLE IF NOT EXISTS device_connection_logs("
    " id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, event TEXT NOT NULL, ts TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS idx_connection_logs_device"
    " ON device_connection_logs(device_id, id);"
    "CREATE TABLE IF NOT EXISTS devices("
    " device_id TEXT PRIMARY KEY, device_type TEXT, name TEXT,"
    " is_online INTEGER NOT NULL DEFAULT 0, last_seen TEXT, connected_at TEXT);";

/* Schema upgrades, in order: each moves a file from version `from` to
 * from + 1. A new file gets schema_v1 and then every step, so new and
 * migrated files have the same schema. The NULL row ends it.
 *
 * 1 -> 2: fewer bytes written per commit (see store_sqlite_history.c).
 * device_state_snapshots is rebuilt: prev_id links every row to its
 * device's previous row, so idx_snapshots_device and idx_snapshots_ts go;
 * its ts and state_store's updated_at become generated columns computed
 * from the stored ts_ms / updated_ms (ms since the Unix epoch, UTC), which
 * take 6 bytes a row instead of 24 and read back the same ISO-8601 text;
 * device_state_heads gets every device's newest row id and row count.
 * A ts that is no date becomes 0 (1970-01-01T00:00:00.000Z). */
/* 2 -> 3: the seed-000 design's own write, INSERT INTO state_store (key,
 * value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value =
 * excluded.value, must work on our file: updated_ms gets a DEFAULT that
 * SQLite computes (now, in ms since the epoch, so updated_at reads back as
 * ISO-8601 as for our rows), and a trigger moves updated_ms on an UPDATE
 * that changed value but not updated_ms (ours always set it: for them the
 * trigger's WHEN is false and nothing more is written). The table is
 * rebuilt because SQLite cannot change a column's default in place. The
 * "now in ms" expression is written out twice: the table stays literals
 * (scripts/lint-sql.sh). */
struct migration {
    int from;
    const char *sql;
};
/* The strftime() formats sit inside SQL string literals; nothing here is a
 * printf format (scripts/lint-sql.sh looks at literals that start a
 * statement). */
static const struct migration migrations[] = {
    {1, "CREATE TABLE device_state_snapshots_v2("
        " id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, state TEXT NOT NULL,"
        " ts TEXT NOT NULL GENERATED ALWAYS AS"
        " (strftime('%Y-%m-%dT%H:%M:%fZ', ts_ms / 1000.0, 'unixepoch')) VIRTUAL,"
        " ts_ms INTEGER NOT NULL, prev_id INTEGER);"
        "INSERT INTO device_state_snapshots_v2(id, device_id, state, ts_ms, prev_id)"
        " SELECT id, device_id, state,"
        " coalesce(CAST(strftime('%s', ts) AS INTEGER) * 1000"
        " + CAST(substr(strftime('%f', ts), 4) AS INTEGER), 0),"
        " lag(id) OVER (PARTITION BY device_id ORDER BY id) FROM device_state_snapshots;"
        "DROP TABLE device_state_snapshots;"
        "ALTER TABLE device_state_snapshots_v2 RENAME TO device_state_snapshots;"
        "CREATE TABLE state_store_v2(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
        " updated_at TEXT NOT NULL GENERATED ALWAYS AS"
        " (strftime('%Y-%m-%dT%H:%M:%fZ', updated_ms / 1000.0, 'unixepoch')) VIRTUAL,"
        " updated_ms INTEGER NOT NULL);"
        "INSERT INTO state_store_v2(key, value, updated_ms)"
        " SELECT key, value,"
        " coalesce(CAST(strftime('%s', updated_at) AS INTEGER) * 1000"
        " + CAST(substr(strftime('%f', updated_at), 4) AS INTEGER), 0) FROM state_store;"
        "DROP TABLE state_store;"
        "ALTER TABLE state_store_v2 RENAME TO state_store;"
        "CREATE TABLE device_state_heads("
        " device_id TEXT PRIMARY KEY, head_id INTEGER NOT NULL, rows INTEGER NOT NULL);"
        "INSERT INTO device_state_heads(device_id, head_id, rows)"
        " SELECT device_id, max(id), count(*) FROM device_state_snapshots GROUP BY device_id;"},
    {2, "CREATE TABLE state_store_v3(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
        " updated_at TEXT NOT NULL GENERATED ALWAYS AS"
        " (strftime('%Y-%m-%dT%H:%M:%fZ', updated_ms / 1000.0, 'unixepoch')) VIRTUAL,"
        " updated_ms INTEGER NOT NULL DEFAULT (CAST(round((julianday('now') - 2440587.5) * "
        "86400000.0) AS INTEGER)));"
        "INSERT INTO state_store_v3(key, value, updated_ms)"
        " SELECT key, value, updated_ms FROM state_store;"
        "DROP TABLE state_store;"
        "ALTER TABLE state_store_v3 RENAME TO state_store;"
        "CREATE TRIGGER state_store_touch AFTER UPDATE OF value ON state_store"
        " WHEN new.updated_ms = old.updated_ms"
        " BEGIN UPDATE state_store SET updated_ms = (CAST(round((julianday('now') - 2440587.5) * "
        "86400000.0) AS INTEGER)) WHERE key = new.key; END;"},
    /* 3 -> 4: the history policy (issue 21): kind says what a row is (NULL
     * or 'all': one transition; 'interval': the aggregate of an interval)
     * and stats holds an interval row's {"field":{"min","max","mean","n"}}.
     * ADD COLUMN only writes the schema: existing rows read NULL for both,
     * the big table is not rebuilt. */
    {3, "ALTER TABLE device_state_snapshots ADD COLUMN kind TEXT;"
        "ALTER TABLE device_state_snapshots ADD COLUMN stats TEXT;"},
    {0, NULL}};

wb_status store_sqlite_status(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return WB_OK;
    case SQLITE_FULL:
        return WB_ERR_FULL;
    case SQLITE_READONLY:
        return WB_ERR_READONLY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return WB_ERR_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return WB_ERR_BUSY;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
        return WB_ERR_IO;
    case SQLITE_NOMEM:
        return WB_ERR_NOMEM;
    default:
        return WB_ERR_DB;
    }
}

static wb_status db_fail(sqlite3 *db, int rc, const char *what, const char *path, char *err,
                         size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : "no memory");
    return store_sqlite_status(rc);
}

/* Runs a one-row PRAGMA and copies its first column as text. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    out[0] = '\0';
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

#define STR_(x) #x
#define STR(x) STR_(x)
/* A literal: PRAGMA user_version cannot take a bound parameter. */
static const char set_user_version[] = "PRAGMA user_version=" STR(STORE_SCHEMA_VERSION);

/* Brings the schema from version v to STORE_SCHEMA_VERSION in one transaction.
 * Every statement run here is a compile-time constant (schema_v1, the
 * migrations table, set_user_version); no SQL text is ever assembled at run
 * time (scripts/lint-sql.sh checks it). */
static wb_status ensure_schema(sqlite3 *db, int v, const char *path, char *err, size_t errlen)
{
    if (v > STORE_SCHEMA_VERSION) {
        if (err && errlen)
            snprintf(err, errlen,
                     "%s: database schema version %d is newer than this program's %d; "
                     "refusing to open",
                     path, v, STORE_SCHEMA_VERSION);
        return WB_ERR_VERSION;
    }
    if (v == STORE_SCHEMA_VERSION)
        return WB_OK;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK && v == 0) {
        rc = sqlite3_exec(db, schema_v1, NULL, NULL, NULL);
        v = 1;
    }
    for (const struct migration *m = migrations; rc == SQLITE_OK && m->sql; m++)
        if (m->from >= v)
            rc = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, set_user_version, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return db_fail(db, rc, "creating or migrating the schema", path, err, errlen);
    }
    return WB_OK;
}

/* One attempt; WB_ERR_CORRUPT tells the caller to move the file aside. */
static wb_status open_once(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    char buf[256];
    wb_status st;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = db_fail(db, rc, "open", path, err, errlen);
        goto fail;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    /* SQLite silently falls back to read-only when it cannot open the file
     * for writing; a store that cannot write is refused loudly instead. */
    if (sqlite3_db_readonly(db, "main") == 1) {
        if (err && errlen)
            snprintf(err, errlen, "%s: database file is read-only", path);
        st = WB_ERR_READONLY;
        goto fail;
    }
    /* A new file gets 1 KiB pages (no effect on an existing one): a WAL
     * commit writes every page it touches in full, and a group commit of
     * small JSON rows touches a handful of pages, so smaller pages mean
     * fewer bytes written per transition (flash wear; bench/RESULTS.md). */
    sqlite3_exec(db, "PRAGMA page_size=1024", NULL, NULL, NULL);
    /* 512 KiB of page cache, not the default 2 MiB: the writer's working
     * set is the pages a commit touches (state_store rows of the devices
     * that changed, the tail of the history); quick_check below would
     * otherwise fill 2 MiB with pages read once. Pages not cached come back
     * from the OS page cache (peak RSS with 10 000 devices: -1.5 MiB). */
    sqlite3_exec(db, "PRAGMA cache_size=-512", NULL, NULL, NULL);
    rc = pragma_text(db, "PRAGMA journal_mode=WAL", buf, sizeof(buf));
    if (rc != SQLITE_OK) {
        st = db_fail(db, rc, "setting WAL mode", path, err, errlen);
        goto fail;
    }
    if (strcmp(buf, "wal") != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot switch to WAL mode (journal_mode=%s)", path, buf);
        st = WB_ERR_DB;
        goto fail;
    }
    rc = pragma_text(db, "PRAGMA quick_check", buf, sizeof(buf));
    if (rc != SQLITE_OK) {
        st = db_fail(db, rc, "quick_check", path, err, errlen);
        goto fail;
    }
    if (strcmp(buf, "ok") != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: quick_check failed: %s", path, buf);
        st = WB_ERR_CORRUPT;
        goto fail;
    }
    rc = pragma_text(db, "PRAGMA user_version", buf, sizeof(buf));
    if (rc != SQLITE_OK) {
        st = db_fail(db, rc, "reading user_version", path, err, errlen);
        goto fail;
    }
    st = ensure_schema(db, atoi(buf), path, err, errlen);
    if (st != WB_OK)
        goto fail;
    *out = db;
    return WB_OK;
fail:
    sqlite3_close(db);
    return st;
}

/* Renames path+suffix to aside+suffix when it exists. */
static wb_status rename_one(const char *path, const char *aside, const char *suffix)
{
    char from[4200], to[4200];
    snprintf(from, sizeof(from), "%s%s", path, suffix);
    snprintf(to, sizeof(to), "%s%s", aside, suffix);
    if (rename(from, to) != 0 && errno != ENOENT) {
        log_error("store: cannot move %s to %s: %s", from, to, strerror(errno));
        return WB_ERR_IO;
    }
    return WB_OK;
}

static wb_status move_aside(const char *path, const char *why)
{
    char stamp[32], aside[4100];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(aside, sizeof(aside), "%s.corrupt.%s", path, stamp);
    /* Two corrupt files within one second must not overwrite each other. */
    for (int i = 1; access(aside, F_OK) == 0 && i < 100; i++)
        snprintf(aside, sizeof(aside), "%s.corrupt.%s.%d", path, stamp, i);
    log_error("store: database %s is corrupt (%s); moving it aside to %s and starting a fresh "
              "store",
              path, why, aside);
    wb_status st = rename_one(path, aside, "");
    if (st == WB_OK)
        st = rename_one(path, aside, "-wal");
    if (st == WB_OK)
        st = rename_one(path, aside, "-shm");
    return st;
}

wb_status store_sqlite_open_db(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    *out = NULL;
    if (util_mkdir_parents(path) != WB_OK) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot create parent folders: %s", path, strerror(errno));
        return WB_ERR_IO;
    }
    char why[512] = "";
    wb_status st = open_once(path, out, why, sizeof(why));
    if (st == WB_ERR_CORRUPT) {
        st = move_aside(path, why);
        if (st == WB_OK)
            st = open_once(path, out, why, sizeof(why));
    }
    if (st != WB_OK && err && errlen)
        snprintf(err, errlen, "%s", why);
    return st;
}

/* "file:" URI of path with immutable=1; '%', '?' and '#' percent-encoded. */
static void immutable_uri(const char *path, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "file:");
    for (const char *p = path; *p && n + 4 < outlen; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            n += (size_t)snprintf(out + n, outlen - n, "%%%02X", (unsigned char)*p);
        else
            out[n++] = *p;
    }
    snprintf(out + n, outlen - n, "?immutable=1");
}

/* Opens uri read-only and reads user_version (which reads the schema and,
 * in WAL mode, maps the -shm). */
static wb_status ro_try(const char *uri, int flags, sqlite3 **out, int *version, char *err,
                        size_t errlen, const char *path)
{
    char buf[32];
    int rc = sqlite3_open_v2(uri, out, flags | SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(*out, 1);
        sqlite3_busy_timeout(*out, 5000);
        rc = pragma_text(*out, "PRAGMA user_version", buf, sizeof(buf));
    }
    if (rc != SQLITE_OK) {
        wb_status st = db_fail(*out, rc, "open read-only", path, err, errlen);
        sqlite3_close(*out);
        *out = NULL;
        return st;
    }
    *version = atoi(buf);
    return WB_OK;
}

wb_status store_sqlite_open_ro(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    int v = 0;
    *out = NULL;
    if (access(path, F_OK) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "no database at %s", path);
        return WB_ERR_NOT_FOUND;
    }
    wb_status st = ro_try(path, 0, out, &v, err, errlen, path);
    if ((st == WB_ERR_IO || st == WB_ERR_READONLY) && access(path, R_OK) == 0) {
        /* A read-only file or folder: nobody can be writing it, so reading
         * it as immutable (no locks, no -shm) is safe. */
        char uri[8400];
        immutable_uri(path, uri, sizeof(uri));
        st = ro_try(uri, SQLITE_OPEN_URI, out, &v, err, errlen, path);
    }
    if (st == WB_OK && v > STORE_SCHEMA_VERSION) {
        if (err && errlen)
            snprintf(err, errlen, "%s: database schema version %d is newer than this program's %d",
                     path, v, STORE_SCHEMA_VERSION);
        sqlite3_close(*out);
        *out = NULL;
        st = WB_ERR_VERSION;
    }
    return st;
}

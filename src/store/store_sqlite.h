/*
 * store_sqlite.h - internals of the SQLite backend shared by its two files,
 * plus the hooks the unit tests use. Not part of the public StateStore API.
 *
 * store_sqlite.c owns the handle, the pending changes and the writer thread;
 * store_sqlite_open.c owns opening a file: folders, corrupt-file recovery,
 * WAL, schema creation and migrations.
 */
#ifndef WBMB_STORE_SQLITE_H
#define WBMB_STORE_SQLITE_H

#include <sqlite3.h>
#include <stddef.h>

#include "wbmb/state_store.h"

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

/* Test hook: runs sql on the writer's connection (between commits), e.g.
 * "PRAGMA max_page_count=..." or "PRAGMA query_only=1" to simulate a full or
 * read-only database. Returns the status of the statement. */
wb_status store_sqlite_exec_for_test(struct state_store *s, const char *sql);

#endif

/*
 * test_store_durability.c - the store's durability and access rules
 * (issue 15): the sync policy (durable_seq follows committed_seq within
 * sync_interval_ms, at once with 0, not before with a long interval), the
 * read-only mode of the state tool (never creates a file, reads an
 * immutable one, refuses writes), the lock file (one holder per database),
 * and the seed-000 access path (its INSERT ... ON CONFLICT works on new and
 * migrated files, the row is read back). The durability shared test runs
 * against both backends. The power-cut proof is tests/reliability/
 * powercut.c; waiting for the writer always polls with a deadline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store_writer.h"
#include "wbmb/state_store.h"
#include "wbmb/store_lock.h"
#include "wbmb/util.h"

struct fx {
    char dir[64];
    char path[128];
    struct store_config cfg;
    struct state_store *s;
};

static int fx_open(struct fx *f)
{
    char err[512] = "";
    wb_status st = store_open(&f->s, &f->cfg, err, sizeof(err));
    if (st != WB_OK)
        fprintf(stderr, "store_open: %s (%s)\n", wb_strerror(st), err);
    return st == WB_OK ? 0 : -1;
}

static int setup_backend(void **state, const char *backend, unsigned commit_ms, unsigned sync_ms)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wbmb_durab_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/db/state.db", f->dir);
    f->cfg = (struct store_config){.backend = backend,
                                   .db_path = f->path,
                                   .commit_interval_ms = commit_ms,
                                   .sync_interval_ms = sync_ms,
                                   .history_enabled = true,
                                   .history_max_rows = 10};
    *state = f;
    return fx_open(f);
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, "sqlite", 20, 100);
}

static int setup_memory(void **state)
{
    return setup_backend(state, "memory", 20, 100);
}

static int setup_sync0(void **state)
{
    return setup_backend(state, "sqlite", 20, 0);
}

/* A small checkpoint size, so a few commits take the WAL past it. */
static int setup_ckpt(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wbmb_durab_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/db/state.db", f->dir);
    f->cfg = (struct store_config){.backend = "sqlite",
                                   .db_path = f->path,
                                   .commit_interval_ms = 20,
                                   .sync_interval_ms = 100,
                                   .checkpoint_pages = 16};
    *state = f;
    return fx_open(f);
}

static int setup_sync_long(void **state)
{
    return setup_backend(state, "sqlite", 20, 60000);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[200];
    store_close(f->s);
    snprintf(cmd, sizeof(cmd), "chattr -R -i '%s' 2>/dev/null; rm -rf '%s'", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void set_text(struct state_store *s, const char *key, const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    assert_int_equal(store_set(s, key, o), WB_OK);
    json_object_put(o);
}

static void assert_value(struct state_store *s, const char *key, const char *text)
{
    json_object *v = NULL;
    assert_int_equal(store_get(s, key, &v), WB_OK);
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), text);
    json_object_put(v);
}

static struct store_status status_of(struct state_store *s)
{
    struct store_status st;
    store_get_status(s, &st);
    return st;
}

/* sqlite3 shell-like helper: runs sql on a connection of its own. */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            fprintf(stderr, "raw_exec: %s\n", sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return rc;
}

static long raw_long(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long v = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- the sync policy --------------------------------------------------- */

/* Both backends: what was committed becomes durable by itself. */
static void t_durable_follows(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 10; i++)
        set_text(f->s, "device:a", "{\"n\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(status_of(f->s).committed_seq, 10);
    int64_t deadline = util_mono_ms() + 20000;
    while (status_of(f->s).durable_seq < 10 && util_mono_ms() < deadline)
        usleep(5000);
    struct store_status st = status_of(f->s);
    assert_int_equal(st.durable_seq, 10);
    assert_true(st.durable_seq <= st.committed_seq);
    if (strcmp(f->cfg.backend, "sqlite") == 0)
        assert_true(st.syncs >= 1);
}

/* The deadline counts from the oldest change queued, not from the commit,
 * and moves forward by what a sync takes and a fortieth of the bound for
 * the wake-up's jitter: 100 ms window + 1 s sync. */
static void t_sync_deadline(void **state)
{
    (void)state;
    assert_int_equal(store_sync_deadline(5000, 100, 1000, 0), 6073); /* 27 ms margin */
    assert_int_equal(store_sync_deadline(5000, 100, 1000, 300), 5773);
    /* storage slower than the whole bound: sync at once after the commit */
    assert_int_equal(store_sync_deadline(5000, 100, 1000, 1073), 5000);
    assert_int_equal(store_sync_deadline(5000, 100, 1000, 4000), 5000);
}

/* The estimate jumps to a slow sync and decays by 1/8 a sync, never below
 * the last one. */
static void t_sync_estimate(void **state)
{
    (void)state;
    assert_int_equal(store_sync_estimate(0, 3), 3);
    assert_int_equal(store_sync_estimate(3, 800), 800);
    assert_int_equal(store_sync_estimate(800, 2), 700);
    assert_int_equal(store_sync_estimate(700, 650), 650);
    int64_t e = 800;
    for (int i = 0; i < 100; i++)
        e = store_sync_estimate(e, 2);
    assert_int_equal(e, 2);
    assert_int_equal(store_sync_estimate(1, 0), 0);
}

/* What a sync took and how long changes waited to be durable are kept. */
static void t_sync_measured(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":2}");
    assert_int_equal(store_flush(f->s), WB_OK);
    int64_t deadline = util_mono_ms() + 20000;
    while (status_of(f->s).syncs < 1 && util_mono_ms() < deadline)
        usleep(5000);
    struct store_status st = status_of(f->s);
    assert_true(st.syncs >= 1);
    assert_true(st.durable_lag_ms_max >= 1);
    assert_true(st.sync_latency_us_max >= 1);
    assert_true(st.sync_latency_us_sum >= st.sync_latency_us_max);
}

/* sync_interval_ms 0: every commit is durable when flush returns. */
static void t_sync_every_commit(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    struct store_status st = status_of(f->s);
    assert_int_equal(st.committed_seq, 1);
    assert_int_equal(st.durable_seq, 1);
    assert_int_equal(st.syncs, 0); /* synchronous=FULL: SQLite's own fsync */
}

/* A long interval defers the fsync (flash wear): committed, not durable. */
static void t_sync_deferred(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    struct store_status st = status_of(f->s);
    assert_int_equal(st.committed_seq, 1);
    assert_int_equal(st.durable_seq, 0);
    assert_int_equal(st.syncs, 0);
}

/* ---- the checkpointer (store_sqlite_ckpt.c) ---------------------------- */

/* The WAL index (the -shm file, https://sqlite.org/walformat.html): the
 * header's mxFrame (frames in the WAL that count) at byte 16 and the
 * checkpoint's nBackfill (frames copied into the database file) at 96,
 * native byte order. Read as a file, without a connection: a connection
 * could run a checkpoint of its own. */
static void wal_index(const char *db, uint32_t *mx, uint32_t *backfill)
{
    char shm[160];
    snprintf(shm, sizeof(shm), "%s-shm", db);
    FILE *fp = fopen(shm, "rb");
    assert_non_null(fp);
    unsigned char b[100];
    assert_int_equal(fread(b, 1, sizeof(b), fp), sizeof(b));
    fclose(fp);
    memcpy(mx, b + 16, 4);
    memcpy(backfill, b + 96, 4);
}

/* The WAL is copied into the database file by the checkpointer's thread,
 * not by a commit: past checkpoint_pages it runs, copies every frame (the
 * WAL index says so), and the next commit starts the WAL over. */
static void t_checkpoint_beside_writer(void **state)
{
    struct fx *f = *state;
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    off_t before = sb.st_size;
    char key[32], val[700];
    memset(val, 0, sizeof(val));
    memcpy(val, "{\"blob\":\"", 9);
    memset(val + 9, 'x', 600);
    memcpy(val + 609, "\"}", 2);
    uint32_t mx = 0, bf = 0;
    int64_t deadline = util_mono_ms() + 30000;
    int n = 0;
    /* Until a checkpoint ran and the last commit left at least
     * checkpoint_pages frames (so its hook woke the checkpointer again). */
    do {
        snprintf(key, sizeof(key), "device:k%d", n++);
        set_text(f->s, key, val);
        assert_int_equal(store_flush(f->s), WB_OK);
        wal_index(f->path, &mx, &bf);
    } while ((status_of(f->s).checkpoints < 1 || mx < 16) && util_mono_ms() < deadline);
    assert_true(status_of(f->s).checkpoints >= 1);
    assert_true(mx >= 16);
    while (bf != mx && util_mono_ms() < deadline) {
        usleep(5000);
        wal_index(f->path, &mx, &bf);
    }
    assert_int_equal(bf, mx); /* every frame copied, by the thread */
    struct store_status st = status_of(f->s);
    assert_int_equal(st.checkpoint_failures, 0);
    assert_true(st.checkpoint_latency_us_max >= 1);
    assert_true(st.checkpoint_latency_us_sum >= st.checkpoint_latency_us_max);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_true(sb.st_size >= before + 16 * 1024); /* the pages are in the file */
    uint32_t mx_full = mx;
    set_text(f->s, "device:after", "{\"n\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    wal_index(f->path, &mx, &bf);
    assert_true(mx < mx_full); /* the WAL started over */
    assert_value(f->s, "device:k0", val);
    /* Everything is still there for a new connection (WAL and file). */
    assert_int_equal(
        raw_long(f->path, "SELECT count(*) FROM state_store WHERE key LIKE 'device:k%'"), n);
}

/* ---- read-only (the state tool) ---------------------------------------- */

static void t_read_only_missing(void **state)
{
    struct fx *f = *state;
    char path[200], err[512] = "";
    snprintf(path, sizeof(path), "%s/elsewhere/state.db", f->dir);
    struct store_config cfg = {.backend = "sqlite", .db_path = path, .read_only = true};
    struct state_store *s = (struct state_store *)1;
    assert_int_equal(store_open(&s, &cfg, err, sizeof(err)), WB_ERR_NOT_FOUND);
    assert_null(s);
    assert_non_null(strstr(err, "no database at"));
    char parent[200];
    snprintf(parent, sizeof(parent), "%s/elsewhere", f->dir);
    assert_int_equal(access(parent, F_OK), -1); /* not even the folder */
}

static void t_read_only_reads(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":1}");
    store_close(f->s);
    f->s = NULL;
    char cmd[300], err[512] = "";
    /* Root ignores permission bits; immutable file and folder stop even
     * root, and leave SQLite no way to create the -shm file. */
    snprintf(cmd, sizeof(cmd), "chattr +i '%s' '%s/db' 2>/dev/null", f->path, f->dir);
    if (system(cmd) != 0)
        skip();
    struct store_config cfg = {.backend = "sqlite", .db_path = f->path, .read_only = true};
    struct state_store *s = NULL;
    wb_status st = store_open(&s, &cfg, err, sizeof(err));
    if (st != WB_OK)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(st, WB_OK);
    assert_value(s, "device:a", "{\"n\":1}");
    json_object *o = json_object_new_object();
    assert_int_equal(store_set(s, "device:b", o), WB_ERR_READONLY);
    assert_int_equal(store_delete(s, "device:a"), WB_ERR_READONLY);
    assert_int_equal(store_transition(s, "device:a", "a", "{}", true), WB_ERR_READONLY);
    assert_int_equal(store_flush(s), WB_OK);
    json_object_put(o);
    store_close(s);
    snprintf(cmd, sizeof(cmd), "chattr -i '%s' '%s/db'", f->path, f->dir);
    assert_int_equal(system(cmd), 0);
}

/* Beside a running writer, a read-only store sees what is committed. */
static void t_read_only_beside_writer(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    struct store_config cfg = {.backend = "sqlite", .db_path = f->path, .read_only = true};
    struct state_store *s = NULL;
    assert_int_equal(store_open(&s, &cfg, NULL, 0), WB_OK);
    assert_value(s, "device:a", "{\"n\":1}");
    set_text(f->s, "device:a", "{\"n\":2}");
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_value(s, "device:a", "{\"n\":2}");
    store_close(s);
    assert_value(f->s, "device:a", "{\"n\":2}"); /* the writer is unaffected */
}

/* ---- the lock file ------------------------------------------------------ */

static void t_lock(void **state)
{
    struct fx *f = *state;
    char err[256];
    long holder = -1;
    struct store_lock *l = NULL;
    assert_int_equal(store_lock_holder(f->path, err, sizeof(err)), 0);
    assert_int_equal(store_lock_acquire(f->path, &l, &holder, err, sizeof(err)), WB_OK);
    assert_non_null(l);
    /* Another process sees the holder and cannot take it. */
    pid_t pid = fork();
    if (pid == 0) {
        struct store_lock *l2 = NULL;
        long h = 0;
        char e[256];
        wb_status st = store_lock_acquire(f->path, &l2, &h, e, sizeof(e));
        char want[64];
        snprintf(want, sizeof(want), "database in use by PID %ld", (long)getppid());
        _exit(st == WB_ERR_BUSY && h == (long)getppid() && strcmp(e, want) == 0 &&
                      store_lock_holder(f->path, e, sizeof(e)) == (long)getppid()
                  ? 0
                  : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    store_lock_release(l);
    store_lock_release(NULL);
    /* Released: a child can take it now. */
    pid = fork();
    if (pid == 0) {
        struct store_lock *l2 = NULL;
        long h = 0;
        char e[256];
        wb_status st = store_lock_acquire(f->path, &l2, &h, e, sizeof(e));
        store_lock_release(l2);
        _exit(st == WB_OK ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the seed-000 access path ------------------------------------------ */

static const char seed_upsert[] =
    "INSERT INTO state_store (key, value) VALUES ('device:seed', '{\"power\":true}')"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value;"
    "INSERT INTO state_store (key, value) VALUES ('device:a', '{\"n\":9}')"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value;";

static void check_seed_path(struct fx *f)
{
    assert_int_equal(raw_exec(f->path, seed_upsert), SQLITE_OK);
    /* updated_at is set for the new row and moved for the updated one. */
    assert_int_equal(raw_long(f->path, "SELECT count(*) FROM state_store WHERE updated_at LIKE "
                                       "'20__-__-__T__:__:__.___Z'"),
                     2);
    assert_true(raw_long(f->path, "SELECT updated_ms FROM state_store WHERE key='device:a'") >=
                raw_long(f->path, "SELECT updated_ms FROM state_store WHERE key='device:seed'") -
                    1000);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(fx_open(f), 0);
    assert_value(f->s, "device:seed", "{\"power\":true}");
    assert_value(f->s, "device:a", "{\"n\":9}");
}

static void t_seed_upsert(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    check_seed_path(f);
}

/* A schema-2 file (updated_ms without a default) migrates to 3 with its
 * rows and then takes the seed's write. */
static void t_seed_upsert_migrated(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:a", "{\"n\":1}");
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(
        raw_exec(f->path,
                 "BEGIN;DROP TRIGGER state_store_touch;"
                 "CREATE TABLE v2(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                 " updated_at TEXT NOT NULL GENERATED ALWAYS AS"
                 " (strftime('%Y-%m-%dT%H:%M:%fZ', updated_ms / 1000.0, 'unixepoch')) VIRTUAL,"
                 " updated_ms INTEGER NOT NULL);"
                 "INSERT INTO v2(key, value, updated_ms) SELECT key, value, updated_ms"
                 " FROM state_store;DROP TABLE state_store;ALTER TABLE v2 RENAME TO state_store;"
                 "ALTER TABLE device_state_snapshots DROP COLUMN kind;"
                 "ALTER TABLE device_state_snapshots DROP COLUMN stats;"
                 "PRAGMA user_version=2;COMMIT;"),
        SQLITE_OK);
    /* The failure of the issue, on the old schema. */
    assert_int_not_equal(raw_exec(f->path, seed_upsert), SQLITE_OK);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(raw_long(f->path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_value(f->s, "device:a", "{\"n\":1}");
    check_seed_path(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_durable_follows, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_durable_follows, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(t_sync_measured, setup_sqlite, teardown),
        cmocka_unit_test(t_sync_deadline),
        cmocka_unit_test(t_sync_estimate),
        cmocka_unit_test_setup_teardown(t_sync_every_commit, setup_sync0, teardown),
        cmocka_unit_test_setup_teardown(t_sync_deferred, setup_sync_long, teardown),
        cmocka_unit_test_setup_teardown(t_checkpoint_beside_writer, setup_ckpt, teardown),
        cmocka_unit_test_setup_teardown(t_read_only_missing, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_read_only_reads, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_read_only_beside_writer, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_lock, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_seed_upsert, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_seed_upsert_migrated, setup_sqlite, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

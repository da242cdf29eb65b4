/*
 * test_store_history.c - unit tests of the SQLite backend's history chains
 * (store_sqlite_history.c) and of the schema 1 -> 2 migration.
 *
 * The reference for every history query is the plain SQL a user would run
 * on the file: the device's rows newest first, no chain involved. Each test
 * works on a fresh mkdtemp folder; writer-thread work is awaited with
 * store_flush(), never with a sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/api_rows.h"
#include "store/store_sqlite.h"
#include "wbmb/state_store.h"
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

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wbmb_hist_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    f->cfg = (struct store_config){.backend = "sqlite",
                                   .db_path = f->path,
                                   .commit_interval_ms = 100,
                                   .history_enabled = true,
                                   .history_max_rows = 0,
                                   .history_max_age_days = 30};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void reopen(struct fx *f)
{
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(fx_open(f), 0);
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static void raw_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* int64_t, not long: a time in milliseconds does not fit a 32-bit long (armhf). */
static int64_t raw_long(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* Appends {"n":n} for device at ts (NULL = now). */
static void append(struct state_store *s, const char *device, int n, const char *ts)
{
    char text[32];
    snprintf(text, sizeof(text), "{\"n\":%d}", n);
    json_object *o = json_tokener_parse(text);
    assert_int_equal(store_history_append(s, device, o, ts), WB_OK);
    json_object_put(o);
}

/* The "n" values of api_history_query(device, limit), newest first;
 * returns how many. */
static int query_ns(struct state_store *s, const char *device, int limit, int *ns, int cap)
{
    json_object *out = NULL;
    assert_int_equal(api_history_query(s, device, limit, &out), WB_OK);
    int len = (int)json_object_array_length(out);
    assert_true(len <= cap);
    for (int i = 0; i < len; i++) {
        json_object *row = json_object_array_get_idx(out, (size_t)i), *st, *n, *ts;
        assert_true(json_object_object_get_ex(row, "state", &st));
        assert_true(json_object_object_get_ex(row, "ts", &ts));
        assert_true(json_object_object_get_ex(st, "n", &n));
        ns[i] = json_object_get_int(n);
    }
    json_object_put(out);
    return len;
}

/* The same rows straight from the table: what the chain must reproduce. */
static int table_ns(sqlite3 *db, const char *device, int limit, int *ns, int cap)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT json_extract(state, '$.n') FROM "
                                        "device_state_snapshots WHERE device_id = ?1 "
                                        "ORDER BY id DESC LIMIT ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
    int len = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(len < cap);
        ns[len++] = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return len;
}

static void assert_same_history(struct fx *f, const char *device, int limit, int expect_len)
{
    int a[512], b[512];
    int na = query_ns(f->s, device, limit, a, 512);
    /* The query answered from the table and the writer's queue without a
     * commit; committed now, the table alone must give the same rows. */
    assert_int_equal(store_flush(f->s), WB_OK);
    sqlite3 *db = raw_open(f->path);
    int nb = table_ns(db, device, limit, b, 512);
    sqlite3_close(db);
    assert_int_equal(na, expect_len);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++)
        assert_int_equal(a[i], b[i]);
}

/* Every row's prev_id is its device's previous row, or NULL for the first. */
static void assert_chains_exact(const char *path)
{
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_state_snapshots s WHERE"
                                  " s.prev_id IS NOT (SELECT max(p.id) FROM"
                                  " device_state_snapshots p WHERE p.device_id = s.device_id"
                                  " AND p.id < s.id)"),
                     0);
    sqlite3_close(db);
}

/* ---- chains --------------------------------------------------------------- */

/* Interleaved devices, several commits and reopens: the chain walk returns
 * exactly what a plain query on the table returns, and no index is used. */
static void t_chain_matches_table(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fx_open(f), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 60; i++) {
            append(f->s, "a", round * 100 + i, NULL);
            if (i % 3 == 0)
                append(f->s, "b", round * 100 + i, NULL);
            if (i % 20 == 0)
                assert_int_equal(store_flush(f->s), WB_OK);
        }
        assert_same_history(f, "a", 25, 25);
        assert_same_history(f, "b", 0, 20 * (round + 1));
        reopen(f);
    }
    assert_same_history(f, "a", 0, 180);
    assert_same_history(f, "nobody", 5, 0);
    assert_chains_exact(f->path);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                  " tbl_name = 'device_state_snapshots'"),
                     0);
    assert_int_equal(raw_long(db, "SELECT head_id FROM device_state_heads WHERE device_id='a'"),
                     raw_long(db, "SELECT max(id) FROM device_state_snapshots WHERE "
                                  "device_id='a'"));
    assert_int_equal(raw_long(db, "SELECT rows FROM device_state_heads WHERE device_id='b'"), 60);
    sqlite3_close(db);
}

/* Heads saved before later appends (as after a kill -9 between two saves),
 * or lost altogether: the next open follows the rows after them, and new
 * rows link to the right predecessors. */
static void t_stale_heads(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fx_open(f), 0);
    for (int i = 0; i < 10; i++) {
        append(f->s, "a", i, NULL);
        append(f->s, "b", i, NULL);
    }
    store_close(f->s); /* saves the heads */
    f->s = NULL;
    sqlite3 *db = raw_open(f->path);
    raw_exec(db, "CREATE TABLE saved AS SELECT * FROM device_state_heads");
    sqlite3_close(db);
    assert_int_equal(fx_open(f), 0);
    for (int i = 10; i < 15; i++) {
        append(f->s, "a", i, NULL);
        append(f->s, "c", i, NULL);
    }
    store_close(f->s);
    f->s = NULL;
    db = raw_open(f->path);
    raw_exec(db, "DELETE FROM device_state_heads;"
                 "INSERT INTO device_state_heads SELECT * FROM saved");
    sqlite3_close(db);
    assert_int_equal(fx_open(f), 0);
    append(f->s, "a", 15, NULL);
    append(f->s, "b", 10, NULL);
    append(f->s, "c", 15, NULL);
    assert_same_history(f, "a", 0, 16);
    assert_same_history(f, "b", 0, 11);
    assert_same_history(f, "c", 0, 6);
    store_close(f->s);
    f->s = NULL;
    assert_chains_exact(f->path);

    /* No heads at all: the whole table is followed. */
    db = raw_open(f->path);
    raw_exec(db, "DELETE FROM device_state_heads");
    sqlite3_close(db);
    assert_int_equal(fx_open(f), 0);
    append(f->s, "b", 11, NULL);
    assert_same_history(f, "b", 0, 12);
    assert_same_history(f, "c", 3, 3);
    store_close(f->s);
    f->s = NULL;
    assert_chains_exact(f->path);
}

/* A commit that fails is rolled back and retried: the chains in memory must
 * be rolled back with it, or the retried rows would link to ids that were
 * never committed. */
static void t_failed_commit_keeps_chains(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fx_open(f), 0);
    for (int i = 0; i < 5; i++)
        append(f->s, "a", i, NULL);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=1"), WB_OK);
    for (int i = 5; i < 10; i++) {
        append(f->s, "a", i, NULL);
        append(f->s, "b", i, NULL);
    }
    assert_int_equal(store_flush(f->s), WB_ERR_READONLY);
    assert_int_equal(store_flush(f->s), WB_ERR_READONLY); /* a second failed attempt */
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=0"), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_same_history(f, "a", 0, 10);
    assert_same_history(f, "b", 0, 5);
    append(f->s, "a", 10, NULL);
    assert_same_history(f, "a", 3, 3);
    store_close(f->s);
    f->s = NULL;
    assert_chains_exact(f->path);
}

/* The age limit: old rows are filtered from queries and deleted as one id
 * range, the row counts follow, and the newest row of the table always
 * stays (ids are never reused). */
static void t_age_retention(void **state)
{
    struct fx *f = *state;
    char old[UTIL_TS_LEN];
    util_iso8601_from_ms(util_wall_ms() - 40LL * 86400000, old);
    f->cfg.history_max_age_days = 0; /* no age limit yet */
    assert_int_equal(fx_open(f), 0);
    for (int i = 0; i < 5; i++) {
        append(f->s, "a", i, old);
        append(f->s, "b", i, old);
    }
    store_close(f->s); /* every row older than 30 days */
    f->s = NULL;
    f->cfg.history_max_age_days = 30;
    assert_int_equal(fx_open(f), 0);
    append(f->s, "a", 99, old); /* the first commit prunes by age */
    assert_int_equal(store_flush(f->s), WB_OK);
    int ns[8];
    assert_int_equal(query_ns(f->s, "a", 0, ns, 8), 0); /* filtered by age */
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_state_snapshots"), 1);
    long newest = raw_long(db, "SELECT max(id) FROM device_state_snapshots");
    assert_int_equal(newest, 11);
    sqlite3_close(db);
    store_close(f->s);
    f->s = NULL;
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT rows FROM device_state_heads WHERE device_id='a'"), 1);
    assert_int_equal(raw_long(db, "SELECT rows FROM device_state_heads WHERE device_id='b'"), 0);
    sqlite3_close(db);
    /* New rows get new ids and chain on. */
    assert_int_equal(fx_open(f), 0);
    append(f->s, "a", 100, NULL);
    append(f->s, "b", 100, NULL);
    assert_int_equal(query_ns(f->s, "a", 0, ns, 8), 1);
    assert_int_equal(ns[0], 100);
    assert_int_equal(query_ns(f->s, "b", 0, ns, 8), 1);
    assert_int_equal(store_flush(f->s), WB_OK); /* a query no longer commits */
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT min(id) FROM device_state_snapshots WHERE"
                                  " json_extract(state, '$.n') = 100"),
                     newest + 1);
    sqlite3_close(db);
}

/* Row-count retention through the chain: a device keeps its newest
 * max_rows, others are untouched, and its chain still reads correctly. */
static void t_row_retention(void **state)
{
    struct fx *f = *state;
    f->cfg.history_max_rows = 20;
    assert_int_equal(fx_open(f), 0);
    append(f->s, "quiet", 0, NULL);
    assert_int_equal(store_flush(f->s), WB_OK); /* the first commit's pass is done */
    for (int i = 0; i < 119; i++) {
        append(f->s, "busy", i, NULL);
        if (i % 40 == 0)
            append(f->s, "quiet", i, NULL);
    }
    assert_int_equal(store_flush(f->s), WB_OK);
    sqlite3 *db = raw_open(f->path);
    const char *busy = "SELECT count(*) FROM device_state_snapshots WHERE device_id='busy'";
    assert_int_equal(raw_long(db, busy), 119); /* below 20 + 100 */
    append(f->s, "busy", 119, NULL);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(raw_long(db, busy), 20);
    assert_int_equal(
        raw_long(db, "SELECT count(*) FROM device_state_snapshots WHERE device_id='quiet'"), 4);
    assert_int_equal(raw_long(db, "SELECT min(json_extract(state, '$.n')) FROM "
                                  "device_state_snapshots WHERE device_id='busy'"),
                     100);
    sqlite3_close(db);
    assert_same_history(f, "busy", 0, 20);
    assert_same_history(f, "quiet", 0, 4);
    /* A smaller max_rows at the next start: queries apply it at once, the
     * first commit prunes the devices at or above 2 + 100 rows, with or
     * without appends. */
    for (int i = 120; i < 202; i++) /* 102 rows, below 20 + 100 */
        append(f->s, "busy", i, NULL);
    store_close(f->s);
    f->s = NULL;
    f->cfg.history_max_rows = 2;
    assert_int_equal(fx_open(f), 0);
    int ns[8];
    assert_int_equal(query_ns(f->s, "busy", 0, ns, 8), 2);
    assert_int_equal(ns[0], 201);
    assert_int_equal(query_ns(f->s, "quiet", 0, ns, 8), 2);
    append(f->s, "other", 0, NULL);
    assert_int_equal(store_flush(f->s), WB_OK);
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, busy), 2);
    assert_int_equal(
        raw_long(db, "SELECT count(*) FROM device_state_snapshots WHERE device_id='quiet'"), 4);
    sqlite3_close(db);
    assert_same_history(f, "busy", 0, 2);
}

/* Appends rows from..to-1 of device in commits of `batch`. */
static void append_range(struct state_store *s, const char *device, int from, int to, int batch)
{
    for (int i = from; i < to; i++) {
        append(s, device, i, NULL);
        if ((i - from + 1) % batch == 0 || i == to - 1)
            assert_int_equal(store_flush(s), WB_OK);
    }
}

static uint64_t walks_of(struct state_store *s, uint64_t *fast, uint64_t *full)
{
    uint64_t w;
    store_sqlite_hist_counts_for_test(s, &w, fast, full);
    return w;
}

/* Waits (polling, generous deadline) for the checkpointer's thread to have
 * done n walks. */
static void wait_walks(struct state_store *s, uint64_t n)
{
    uint64_t fast, full;
    int64_t deadline = util_mono_ms() + 30000;
    while (walks_of(s, &fast, &full) < n && util_mono_ms() < deadline)
        usleep(2000);
    assert_true(walks_of(s, &fast, &full) >= n);
}

/* A long chain's prune starts from the cut that the checkpointer's thread
 * found beforehand, keeps exactly max_rows all the same, and walks it all
 * when the cut is gone. */
static void t_prune_from_cut(void **state)
{
    struct fx *f = *state;
    f->cfg.history_max_rows = 2000; /* threshold 200, the cut 1 700 rows deep */
    assert_int_equal(fx_open(f), 0);
    uint64_t fast, full;
    append_range(f->s, "busy", 0, 2000, 100); /* max rows: the walk, after the commit */
    wait_walks(f->s, 1);
    append_range(f->s, "busy", 2000, 2200, 100); /* 2 200 rows: the prune */
    walks_of(f->s, &fast, &full);
    assert_int_equal(fast, 1);
    assert_int_equal(full, 0);
    sqlite3 *db = raw_open(f->path);
    const char *busy = "SELECT count(*) FROM device_state_snapshots WHERE device_id='busy'";
    const char *oldest = "SELECT min(json_extract(state, '$.n')) FROM device_state_snapshots"
                         " WHERE device_id='busy'";
    assert_int_equal(raw_long(db, busy), 2000);
    assert_int_equal(raw_long(db, oldest), 200);
    assert_same_history(f, "busy", 500, 500);
    /* The prune asked for the next cut: the same again, 200 rows later. */
    wait_walks(f->s, 2);
    append_range(f->s, "busy", 2200, 2400, 50);
    walks_of(f->s, &fast, &full);
    assert_int_equal(fast, 2);
    assert_int_equal(full, 0);
    assert_int_equal(raw_long(db, busy), 2000);
    assert_int_equal(raw_long(db, oldest), 400);
    /* The cut gone (1 700 rows from the head at 2 399: n = 700), and the rows
     * behind it: the prune finds nothing from the cut, walks from the head
     * and keeps what there is. */
    wait_walks(f->s, 3);
    raw_exec(db, "DELETE FROM device_state_snapshots WHERE device_id='busy' AND"
                 " json_extract(state, '$.n') <= 700");
    append_range(f->s, "busy", 2400, 2600, 100);
    walks_of(f->s, &fast, &full);
    assert_int_equal(fast, 2);
    assert_int_equal(full, 1);
    assert_int_equal(raw_long(db, busy), 1899); /* 701..2599 */
    assert_int_equal(raw_long(db, oldest), 701);
    sqlite3_close(db);
    assert_same_history(f, "busy", 500, 500);
}

/* After a start no cut is known: a device due for a prune waits for its
 * walk (up to max + 2 threshold rows) instead of walking all of its chain
 * inside the first commit, then prunes from the cut. */
static void t_first_prune_waits_for_walk(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fx_open(f), 0); /* max_rows 0: no retention */
    append_range(f->s, "busy", 0, 2300, 100);
    store_close(f->s);
    f->s = NULL;
    f->cfg.history_max_rows = 2000; /* 2 300 rows: due (2 200), below 2 400 */
    assert_int_equal(fx_open(f), 0);
    uint64_t fast, full;
    append_range(f->s, "busy", 2300, 2301, 1); /* the first commit */
    wait_walks(f->s, 1);
    walks_of(f->s, &fast, &full);
    assert_int_equal(fast + full, 0);
    sqlite3 *db = raw_open(f->path);
    const char *busy = "SELECT count(*) FROM device_state_snapshots WHERE device_id='busy'";
    assert_int_equal(raw_long(db, busy), 2301);
    append_range(f->s, "busy", 2301, 2302, 1);
    walks_of(f->s, &fast, &full);
    assert_int_equal(fast, 1);
    assert_int_equal(full, 0);
    assert_int_equal(raw_long(db, busy), 2000);
    assert_int_equal(raw_long(db, "SELECT min(json_extract(state, '$.n')) FROM"
                                  " device_state_snapshots WHERE device_id='busy'"),
                     302);
    sqlite3_close(db);
    assert_same_history(f, "busy", 500, 500);
}

/* ts and updated_at are generated from integer ms columns: they read back
 * exactly as written, and a ts that is not ISO-8601 UTC is refused. */
static void t_timestamps(void **state)
{
    struct fx *f = *state;
    f->cfg.history_max_age_days = 0; /* the timestamps below are old */
    assert_int_equal(fx_open(f), 0);
    const char *in[] = {"2026-02-28T23:59:59.999Z", "2024-02-29T00:00:00.5Z",
                        "2026-11-23T04:28:53Z"};
    const char *want[] = {"2026-02-28T23:59:59.999Z", "2024-02-29T00:00:00.500Z",
                          "2026-11-23T04:28:53.000Z"};
    for (int i = 0; i < 3; i++)
        append(f->s, "t", i, in[i]);
    json_object *o = json_object_new_object();
    assert_int_equal(store_history_append(f->s, "t", o, "yesterday"), WB_ERR_INVALID);
    assert_int_equal(store_history_append(f->s, "t", o, "2026-11-23 04:28:53Z"), WB_ERR_INVALID);
    assert_int_equal(store_history_append(f->s, "t", o, "2026-13-01T00:00:00.000Z"),
                     WB_ERR_INVALID);
    assert_int_equal(store_set(f->s, "k", o), WB_OK);
    json_object_put(o);
    json_object *out = NULL;
    assert_int_equal(api_history_query(f->s, "t", 0, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 3);
    for (int i = 0; i < 3; i++) {
        json_object *row = json_object_array_get_idx(out, (size_t)(2 - i)), *ts;
        assert_true(json_object_object_get_ex(row, "ts", &ts));
        assert_string_equal(json_object_get_string(ts), want[i]);
    }
    json_object_put(out);
    assert_int_equal(store_flush(f->s), WB_OK); /* a query no longer commits */
    sqlite3 *db = raw_open(f->path);
    char text[64];
    raw_text(db, "SELECT ts FROM device_state_snapshots ORDER BY id LIMIT 1", text, sizeof(text));
    assert_string_equal(text, want[0]);
    raw_text(db, "SELECT updated_at FROM state_store WHERE key='k'", text, sizeof(text));
    int64_t ms = raw_long(db, "SELECT updated_ms FROM state_store WHERE key='k'");
    char expect[UTIL_TS_LEN];
    util_iso8601_from_ms(ms, expect);
    assert_string_equal(text, expect);
    assert_true(ms > util_wall_ms() - 60000);
    sqlite3_close(db);
}

/* ---- migration ------------------------------------------------------------ */

/* A version 1 file (as the previous release wrote it) opens as version 2
 * with every row kept, chains built from the old index, the old indexes
 * gone, and history queries answering as before. */
static void t_migrate_v1(void **state)
{
    struct fx *f = *state;
    sqlite3 *db = raw_open(f->path);
    raw_exec(
        db, "PRAGMA journal_mode=WAL;"
            "CREATE TABLE state_store(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " updated_at TEXT NOT NULL);"
            "CREATE TABLE device_state_snapshots(id INTEGER PRIMARY KEY, device_id TEXT NOT NULL,"
            " state TEXT NOT NULL, ts TEXT NOT NULL);"
            "CREATE INDEX idx_snapshots_device ON device_state_snapshots(device_id, id);"
            "CREATE INDEX idx_snapshots_ts ON device_state_snapshots(ts);"
            "CREATE TABLE command_logs(command_id TEXT PRIMARY KEY, device_id TEXT, action TEXT,"
            " params TEXT, source TEXT, status TEXT, error TEXT, created_at TEXT NOT NULL,"
            " completed_at TEXT);"
            "CREATE INDEX idx_command_logs_created ON command_logs(created_at);"
            "CREATE TABLE device_connection_logs(id INTEGER PRIMARY KEY, device_id TEXT NOT NULL,"
            " event TEXT NOT NULL, ts TEXT NOT NULL);"
            "CREATE INDEX idx_connection_logs_device ON device_connection_logs(device_id, id);"
            "CREATE TABLE devices(device_id TEXT PRIMARY KEY, device_type TEXT, name TEXT,"
            " is_online INTEGER NOT NULL DEFAULT 0, last_seen TEXT, connected_at TEXT);"
            "INSERT INTO state_store VALUES('device:tv', '{\"n\":29}', '2026-11-01T00:00:00.000Z');"
            "INSERT INTO devices VALUES('tv', 'tv', 'TV', 1, NULL, NULL);"
            "INSERT INTO device_connection_logs(device_id, event, ts)"
            " VALUES('tv', 'online', '2026-11-01T00:00:00.000Z');"
            "PRAGMA user_version=1;");
    /* 30 rows of tv, 15 of amp, interleaved, recent timestamps. */
    char sql[256], ts[UTIL_TS_LEN], last_tv_ts[UTIL_TS_LEN] = "";
    int64_t now = util_wall_ms();
    for (int i = 0; i < 30; i++) {
        util_iso8601_from_ms(now - 60000 + i * 1000, ts);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO device_state_snapshots(device_id, state, ts)"
                 " VALUES('tv', '{\"n\":%d}', '%s')",
                 i, ts);
        raw_exec(db, sql);
        memcpy(last_tv_ts, ts, sizeof(ts));
        if (i % 2) {
            snprintf(sql, sizeof(sql),
                     "INSERT INTO device_state_snapshots(device_id, state, ts)"
                     " VALUES('amp', '{\"n\":%d}', '%s')",
                     i, ts);
            raw_exec(db, sql);
        }
    }
    sqlite3_close(db);

    assert_int_equal(fx_open(f), 0);
    json_object *v = NULL;
    assert_int_equal(store_get(f->s, "device:tv", &v), WB_OK);
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "{\"n\":29}");
    json_object_put(v);
    int ns[64];
    assert_int_equal(query_ns(f->s, "tv", 3, ns, 64), 3);
    assert_int_equal(ns[0], 29);
    assert_int_equal(ns[2], 27);
    assert_same_history(f, "tv", 0, 30);
    assert_same_history(f, "amp", 0, 15);
    append(f->s, "amp", 100, NULL);
    assert_same_history(f, "amp", 0, 16);
    store_close(f->s);
    f->s = NULL;

    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_state_snapshots"), 46);
    char text[64];
    raw_text(db, "SELECT updated_at FROM state_store WHERE key='device:tv'", text, sizeof(text));
    assert_string_equal(text, "2026-11-01T00:00:00.000Z");
    raw_text(db, "SELECT ts FROM device_state_snapshots WHERE device_id='tv' ORDER BY id DESC",
             text, sizeof(text));
    assert_string_equal(text, last_tv_ts);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_connection_logs"), 1);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM devices"), 1);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                  " ('idx_snapshots_device', 'idx_snapshots_ts')"),
                     0);
    assert_int_equal(raw_long(db, "SELECT rows FROM device_state_heads WHERE device_id='tv'"), 30);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_state_snapshots WHERE"
                                  " prev_id IS NULL"),
                     2);
    sqlite3_close(db);
    assert_chains_exact(f->path);
}

/* A migration that cannot finish leaves the version 1 file as it was. */
static void t_migrate_v1_failure_keeps_file(void **state)
{
    struct fx *f = *state;
    sqlite3 *db = raw_open(f->path);
    /* A v1 file that already has a table of the name version 2 creates. */
    raw_exec(db, "CREATE TABLE state_store(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                 " updated_at TEXT NOT NULL);"
                 "CREATE TABLE device_state_snapshots(id INTEGER PRIMARY KEY,"
                 " device_id TEXT NOT NULL, state TEXT NOT NULL, ts TEXT NOT NULL);"
                 "CREATE INDEX idx_snapshots_device ON device_state_snapshots(device_id, id);"
                 "CREATE TABLE device_state_heads(x);"
                 "INSERT INTO device_state_snapshots(device_id, state, ts)"
                 " VALUES('tv', '{}', '2026-11-01T00:00:00.000Z');"
                 "PRAGMA user_version=1;");
    sqlite3_close(db);
    char err[512] = "";
    assert_int_not_equal(store_open(&f->s, &f->cfg, err, sizeof(err)), WB_OK);
    assert_non_null(strstr(err, "migrating"));
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "PRAGMA user_version"), 1);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM sqlite_master WHERE"
                                  " name = 'idx_snapshots_device'"),
                     1);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM pragma_table_info("
                                  "'device_state_snapshots') WHERE name = 'prev_id'"),
                     0);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_chain_matches_table, setup, teardown),
        cmocka_unit_test_setup_teardown(t_stale_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(t_failed_commit_keeps_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(t_age_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(t_row_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(t_prune_from_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(t_first_prune_waits_for_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(t_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(t_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(t_migrate_v1_failure_keeps_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

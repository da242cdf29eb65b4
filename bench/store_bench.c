/*
 * store_bench.c - throughput of the SQLite StateStore against raw SQLite.
 *
 * Usage: store_bench [SETS] [DIR]   (defaults: 200000 sets, a mkdtemp folder
 *                                   removed at the end; DIR is kept)
 *
 * Every case writes SETS small JSON objects ({"power":true,"seq":N,"t":21.5})
 * round-robin to 1 000 keys "device:dK". The caller's work (building the JSON
 * object, serialising it) is inside every loop, raw ones included, so the
 * ratio measures what the store adds. The store's rate is SETS divided by the
 * time from the first set until the final store_flush() returned, i.e. until
 * everything is on disk (WAL, synchronous=NORMAL). "history on" also appends
 * one device_state_snapshots row per set, as the daemon does per transition.
 *
 * The ceiling is a raw loop on the same schema (the store creates it): one
 * prepared upsert per set, 1 000 rows per transaction, WAL, synchronous=NORMAL.
 * commit_interval_ms = 0 costs about one fsync per set, so it runs only
 * SETS / 100 sets. The "unique keys" pair writes every set to a new key, so
 * coalescing cannot help the store: it shows the cost of the writer path.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/state_store.h"

#define KEYS 1000

struct result {
    const char *name;
    long sets;
    double secs;
    unsigned long long commits, rows;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The caller's object, updated in place for each set. */
static json_object *payload(json_object *o, long seq)
{
    json_object_object_add(o, "seq", json_object_new_int64(seq));
    return o;
}

static json_object *payload_new(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "power", json_object_new_boolean(1));
    json_object_object_add(o, "seq", json_object_new_int64(0));
    json_object_object_add(o, "t", json_object_new_double(21.5));
    return o;
}

static int run_store(const char *dir, const char *tag, unsigned interval, int history, long sets,
                     long keys, struct result *r)
{
    char path[512], err[512] = "", key[32];
    snprintf(path, sizeof(path), "%s/%s.db", dir, tag);
    struct store_config cfg = {.backend = "sqlite",
                               .db_path = path,
                               .commit_interval_ms = interval,
                               .history_enabled = history,
                               .history_max_rows = 10000,
                               .history_max_age_days = 30};
    struct state_store *s = NULL;
    if (store_open(&s, &cfg, err, sizeof(err)) != WB_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    json_object *o = payload_new();
    double t0 = now_s();
    for (long i = 0; i < sets; i++) {
        snprintf(key, sizeof(key), "device:d%ld", i % keys);
        payload(o, i);
        if (store_set(s, key, o) != WB_OK)
            return -1;
        if (history && store_history_append(s, key + 7, o, NULL) != WB_OK)
            return -1;
    }
    if (store_flush(s) != WB_OK)
        return -1;
    r->secs = now_s() - t0;
    struct store_status st;
    store_get_status(s, &st);
    r->sets = sets;
    r->commits = st.commits;
    r->rows = st.rows_written;
    json_object_put(o);
    store_close(s);
    return 0;
}

static int run_raw(const char *dir, const char *tag, int history, long sets, long keys,
                   struct result *r)
{
    char path[512], key[32];
    snprintf(path, sizeof(path), "%s/%s.db", dir, tag);
    /* Let the store create the schema, so both sides use the same tables. */
    struct store_config cfg = {.backend = "sqlite", .db_path = path, .commit_interval_ms = 100};
    struct state_store *s = NULL;
    if (store_open(&s, &cfg, NULL, 0) != WB_OK)
        return -1;
    store_close(s);
    sqlite3 *db = NULL;
    sqlite3_stmt *up = NULL, *hist = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO state_store(key, value, updated_ms) VALUES(?1, ?2, ?3)"
                       " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                       " updated_ms = excluded.updated_ms",
                       -1, &up, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO device_state_snapshots(device_id, state, ts_ms)"
                       " VALUES(?1, ?2, ?3)",
                       -1, &hist, NULL);
    /* Schema 2 stores times as integer ms (ts and updated_at are generated). */
    const sqlite3_int64 ts = 1795405069123LL; /* 2026-11-23T03:37:49.123Z */
    json_object *o = payload_new();
    double t0 = now_s();
    unsigned long long commits = 0;
    for (long i = 0; i < sets; i++) {
        if (i % 1000 == 0)
            sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        snprintf(key, sizeof(key), "device:d%ld", i % keys);
        const char *text = json_object_to_json_string_ext(payload(o, i), JSON_C_TO_STRING_PLAIN);
        sqlite3_bind_text(up, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 3, ts);
        if (sqlite3_step(up) != SQLITE_DONE)
            return -1;
        sqlite3_reset(up);
        if (history) {
            sqlite3_bind_text(hist, 1, key + 7, -1, SQLITE_STATIC);
            sqlite3_bind_text(hist, 2, text, -1, SQLITE_STATIC);
            sqlite3_bind_int64(hist, 3, ts);
            if (sqlite3_step(hist) != SQLITE_DONE)
                return -1;
            sqlite3_reset(hist);
        }
        if (i % 1000 == 999 || i == sets - 1) {
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            commits++;
        }
    }
    r->secs = now_s() - t0;
    r->sets = sets;
    r->commits = commits;
    r->rows = (unsigned long long)sets;
    json_object_put(o);
    sqlite3_finalize(up);
    sqlite3_finalize(hist);
    sqlite3_close(db);
    return 0;
}

static void print_row(const struct result *r, const struct result *base)
{
    double rate = (double)r->sets / r->secs;
    printf("%-34s %8ld %9.3f %11.0f %8llu %10llu", r->name, r->sets, r->secs, rate, r->commits,
           r->rows);
    if (base)
        printf("  %5.0f %%", 100.0 * rate / ((double)base->sets / base->secs));
    printf("\n");
}

int main(int argc, char **argv)
{
    long sets = argc > 1 ? atol(argv[1]) : 200000;
    char tmpl[] = "/tmp/wbmb_store_bench_XXXXXX";
    const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
    if (!dir || sets < 100) {
        fprintf(stderr, "usage: store_bench [SETS>=100] [DIR]\n");
        return 2;
    }
    long sync_sets = sets / 100;
    struct result raw = {.name = "raw sqlite, 1000 rows/tx"};
    struct result raw_h = {.name = "raw sqlite + history, 1000 rows/tx"};
    struct result raw_u = {.name = "raw sqlite, unique keys"};
    struct result st100 = {.name = "store interval=100"};
    struct result st100_h = {.name = "store interval=100 + history"};
    struct result st100_u = {.name = "store interval=100, unique keys"};
    struct result st0 = {.name = "store interval=0 (fsync each)"};
    struct result st0_h = {.name = "store interval=0 + history"};
    if (run_raw(dir, "raw", 0, sets, KEYS, &raw) || run_raw(dir, "raw_h", 1, sets, KEYS, &raw_h) ||
        run_raw(dir, "raw_u", 0, sets, sets, &raw_u) ||
        run_store(dir, "s100", 100, 0, sets, KEYS, &st100) ||
        run_store(dir, "s100_h", 100, 1, sets, KEYS, &st100_h) ||
        run_store(dir, "s100_u", 100, 0, sets, sets, &st100_u) ||
        run_store(dir, "s0", 0, 0, sync_sets, KEYS, &st0) ||
        run_store(dir, "s0_h", 0, 1, sync_sets, KEYS, &st0_h)) {
        fprintf(stderr, "store_bench: a case failed\n");
        return 1;
    }
    printf("SQLite %s, %d keys (unique keys: one per set), files in %s\n", sqlite3_libversion(),
           KEYS, dir);
    printf("%-34s %8s %9s %11s %8s %10s  %s\n", "case", "sets", "seconds", "sets/s", "commits",
           "state rows", "vs raw");
    print_row(&raw, NULL);
    print_row(&raw_h, NULL);
    print_row(&raw_u, NULL);
    print_row(&st100, &raw);
    print_row(&st100_h, &raw_h);
    print_row(&st100_u, &raw_u);
    print_row(&st0, &raw);
    print_row(&st0_h, &raw_h);
    double ratio = ((double)st100.sets / st100.secs) / ((double)raw.sets / raw.secs);
    printf("store/raw (interval=100, history off): %.0f %% (target >= 80 %%)\n", 100.0 * ratio);
    if (argc <= 2) { /* our own mkdtemp folder: remove it */
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "store_bench: could not remove %s\n", dir);
    }
    return 0;
}

/*
 * test_store.c - unit tests of the StateStore backends.
 *
 * One shared suite runs against every backend (group "sqlite" and group
 * "memory", each test on a fresh mkdtemp folder; group "postgresql" when
 * WBMB_TEST_PG_DIR names a server started by tests/tools/pg.sh, each test
 * on a site of its own, and then only that group); then SQLite-only tests:
 * durability across close, kill -9, corrupt and truncated files, a newer
 * schema, disk full, read-only (at run time and at open), coalescing and the
 * synchronous mode. Waiting for the writer thread always polls with a
 * deadline; no test relies on a fixed sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#include "core/api_history.h"
#include "core/api_rows.h"
#include "store/pq_api.h"
#include "store/store_pg.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#include "store/store_sqlite.h"
#include "wbmb/state_store.h"
#include "wbmb/util.h"

struct fx {
    char dir[64];
    char path[128];
    const char *backend;
    struct store_config cfg;
    struct state_store *s;
};

static void rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "chattr -R -i '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
    assert_int_equal(system(cmd), 0);
}

static int fx_open(struct fx *f)
{
    char err[512] = "";
    wb_status st = store_open(&f->s, &f->cfg, err, sizeof(err));
    if (st != WB_OK)
        fprintf(stderr, "store_open: %s (%s)\n", wb_strerror(st), err);
    return st == WB_OK ? 0 : -1;
}

static int setup_backend(void **state, const char *backend)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wbmb_store_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/sub/dir/state.db", f->dir);
    f->backend = backend;
    f->cfg = (struct store_config){.backend = backend,
                                   .db_path = f->path,
                                   .commit_interval_ms = 100,
                                   .history_enabled = true,
                                   .history_max_rows = 10,
                                   .history_max_age_days = 30};
    *state = f;
    return fx_open(f);
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, "sqlite");
}

static int setup_memory(void **state)
{
    return setup_backend(state, "memory");
}

/* The server of tests/tools/pg.sh: its conninfo and password files. */
static char pg_conninfo[256], pg_password[128];

static void read_line(const char *dir, const char *name, char *out, size_t outlen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "r");
    out[0] = '\0';
    if (fp) {
        if (!fgets(out, (int)outlen, fp))
            out[0] = '\0';
        fclose(fp);
    }
    out[strcspn(out, "\r\n")] = '\0';
}

/* Each test writes a site of its own in the one database. */
static char pg_site[64];

/* A new empty database for the postgresql group: the next site. */
static void fresh_site(struct fx *f)
{
    if (f->cfg.pg_site)
        strncat(pg_site, "x", sizeof(pg_site) - strlen(pg_site) - 1);
}

static int setup_pg(void **state)
{
    static unsigned n;
    snprintf(pg_site, sizeof(pg_site), "t%d_%u", (int)getpid(), ++n);
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/wbmb_store_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/unused.db", f->dir);
    f->backend = "postgresql";
    f->cfg = (struct store_config){.backend = "postgresql",
                                   .commit_interval_ms = 100,
                                   .history_enabled = true,
                                   .history_max_rows = 10,
                                   .history_max_age_days = 30,
                                   .pg_conninfo = pg_conninfo,
                                   .pg_password = pg_password,
                                   .pg_site = pg_site,
                                   .pg_connect_timeout_s = 10};
    *state = f;
    return fx_open(f);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fx *f)
{
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(fx_open(f), 0);
}

static json_object *obj(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static void set_text(struct state_store *s, const char *key, const char *text)
{
    json_object *o = obj(text);
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

/* Opens the database with a second, independent connection. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* First column of the first row of sql as text ("" when no row). */
static void raw_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static long raw_long(sqlite3 *db, const char *sql)
{
    char buf[64];
    raw_text(db, sql, buf, sizeof(buf));
    return atol(buf);
}

/* ---- shared suite ------------------------------------------------------ */

static void t_get_missing(void **state)
{
    struct fx *f = *state;
    json_object *v = (json_object *)1;
    assert_int_equal(store_get(f->s, "device:nope", &v), WB_ERR_NOT_FOUND);
    assert_null(v);
}

static void t_roundtrip(void **state)
{
    struct fx *f = *state;
    json_object *o = obj("{\"power\":true,\"volume\":30,\"name\":\"tv\"}");
    assert_int_equal(store_set(f->s, "device:tv", o), WB_OK);
    /* The store serialised at set time: changing the object later is harmless. */
    json_object_object_add(o, "volume", json_object_new_int(99));
    json_object_put(o);
    assert_value(f->s, "device:tv", "{\"power\":true,\"volume\":30,\"name\":\"tv\"}");
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_value(f->s, "device:tv", "{\"power\":true,\"volume\":30,\"name\":\"tv\"}");
}

static void t_overwrite(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "k", "{\"a\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    set_text(f->s, "k", "{\"a\":2}");
    assert_value(f->s, "k", "{\"a\":2}"); /* pending overlays the committed row */
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_value(f->s, "k", "{\"a\":2}");
}

static void t_delete(void **state)
{
    struct fx *f = *state;
    json_object *v = NULL;
    assert_int_equal(store_delete(f->s, "absent"), WB_OK);
    set_text(f->s, "k", "{}");
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_delete(f->s, "k"), WB_OK);
    assert_int_equal(store_get(f->s, "k", &v), WB_ERR_NOT_FOUND); /* pending delete */
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_get(f->s, "k", &v), WB_ERR_NOT_FOUND);
    assert_null(v);
    set_text(f->s, "k", "{\"back\":1}");
    assert_value(f->s, "k", "{\"back\":1}");
}

struct collect {
    char keys[16][32];
    int n, stop_after;
};

static int collect_cb(const char *key, json_object *value, void *ud)
{
    struct collect *c = ud;
    assert_non_null(value);
    assert_true(c->n < 16);
    snprintf(c->keys[c->n++], sizeof(c->keys[0]), "%s", key);
    return c->stop_after && c->n >= c->stop_after;
}

static void t_list_prefix(void **state)
{
    struct fx *f = *state;
    /* Half committed, half pending, one committed key deleted while pending. */
    set_text(f->s, "device:b", "{}");
    set_text(f->s, "device_x", "{}");
    set_text(f->s, "device:gone", "{}");
    set_text(f->s, "scenario:last", "{}");
    assert_int_equal(store_flush(f->s), WB_OK);
    set_text(f->s, "device:a", "{}");
    set_text(f->s, "devicez", "{}");
    set_text(f->s, "device:", "{}");
    set_text(f->s, "device;", "{}"); /* ';' = ':' + 1, the range's exclusive end */
    assert_int_equal(store_delete(f->s, "device:gone"), WB_OK);

    struct collect c = {0};
    assert_int_equal(store_list(f->s, "device:", collect_cb, &c), WB_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.keys[0], "device:");
    assert_string_equal(c.keys[1], "device:a");
    assert_string_equal(c.keys[2], "device:b");

    memset(&c, 0, sizeof(c));
    assert_int_equal(store_list(f->s, "", collect_cb, &c), WB_OK);
    assert_int_equal(c.n, 7);
    const char *all[] = {"device:",  "device:a", "device:b",     "device;",
                         "device_x", "devicez",  "scenario:last"};
    for (int i = 0; i < 7; i++)
        assert_string_equal(c.keys[i], all[i]);

    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(store_list(f->s, "", collect_cb, &c), WB_OK);
    assert_int_equal(c.n, 2);

    memset(&c, 0, sizeof(c));
    assert_int_equal(store_list(f->s, "nothing", collect_cb, &c), WB_OK);
    assert_int_equal(c.n, 0);
}

static void t_flush_status(void **state)
{
    struct fx *f = *state;
    struct store_status st;
    for (int i = 0; i < 5; i++)
        set_text(f->s, i % 2 ? "a" : "b", "{\"x\":1}");
    assert_int_equal(store_flush(f->s), WB_OK);
    store_get_status(f->s, &st);
    assert_true(st.ok);
    assert_int_equal(st.last_error, WB_OK);
    assert_string_equal(st.last_error_text, "");
    assert_int_equal(st.sets, 5);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.committed_seq, 5);
    assert_true(st.commits >= 1);
    assert_true(st.rows_written >= 2);
    assert_int_equal(st.commit_failures, 0);
    assert_true(st.commit_latency_us_max <= st.commit_latency_us_sum);
    assert_int_equal(store_flush(f->s), WB_OK); /* nothing pending: still fine */
}

static void t_history(void **state)
{
    struct fx *f = *state;
    json_object *out = NULL;
    char ts[UTIL_TS_LEN];
    int64_t now = util_wall_ms();
    for (int i = 0; i < 25; i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"n\":%d}", i);
        json_object *o = obj(text);
        util_iso8601_from_ms(now - 25000 + i * 1000, ts);
        assert_int_equal(store_history_append(f->s, "tv", o, ts), WB_OK);
        assert_int_equal(store_history_append(f->s, "other", o, ts), WB_OK);
        json_object_put(o);
    }
    /* An old snapshot beyond history_max_age_days is never returned. */
    json_object *old = obj("{\"n\":-1}");
    util_iso8601_from_ms(now - 40LL * 86400000, ts);
    assert_int_equal(store_history_append(f->s, "aged", old, ts), WB_OK);
    json_object_put(old);

    assert_int_equal(api_history_query(f->s, "tv", 3, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 3);
    for (int i = 0; i < 3; i++) {
        json_object *row = json_object_array_get_idx(out, (size_t)i), *st, *n, *t;
        assert_true(json_object_object_get_ex(row, "state", &st));
        assert_true(json_object_object_get_ex(st, "n", &n));
        assert_true(json_object_object_get_ex(row, "ts", &t));
        assert_int_equal(json_object_get_int(n), 24 - i);
    }
    json_object_put(out);
    /* No limit: history_max_rows (10) per device. */
    assert_int_equal(api_history_query(f->s, "tv", 0, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 10);
    json_object_put(out);
    assert_int_equal(api_history_query(f->s, "aged", 0, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 0);
    json_object_put(out);

    /* Disabled history: append is a no-op. */
    store_close(f->s);
    f->cfg.history_enabled = false;
    snprintf(f->path, sizeof(f->path), "%s/nohist.db", f->dir);
    fresh_site(f);
    assert_int_equal(fx_open(f), 0);
    json_object *o = obj("{}");
    assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    json_object_put(o);
    assert_int_equal(api_history_query(f->s, "tv", 10, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 0);
    json_object_put(out);
}

/* store_transition: the value and one history row, through the backend's
 * one-serialisation op (SQLite) or the fallback (memory); history off
 * writes only the value. Every backend, same results. */
/* Appends a {"n": i, "mode": ...} row of dev at ms. */
static void hist_at(struct state_store *s, const char *dev, int i, int64_t ms)
{
    char text[64], ts[UTIL_TS_LEN];
    snprintf(text, sizeof(text), "{\"n\":%d,\"mode\":\"m%d\"}", i, i % 3);
    util_iso8601_from_ms(ms, ts);
    json_object *o = obj(text);
    assert_int_equal(store_history_append(s, dev, o, ts), WB_OK);
    json_object_put(o);
}

/* The n of the rows of q, in order, as "a,b,c". */
static void range_ns(struct state_store *s, const struct store_history_query *q, char *out,
                     size_t outlen)
{
    struct store_rows r;
    assert_int_equal(store_history_query(s, q, &r), WB_OK);
    out[0] = '\0';
    for (size_t i = 0; i < r.n; i++) {
        json_object *o = obj(r.history[i].state), *n;
        assert_true(json_object_object_get_ex(o, "n", &n));
        snprintf(out + strlen(out), outlen - strlen(out), "%s%d", i ? "," : "",
                 json_object_get_int(n));
        json_object_put(o);
    }
    store_rows_free(&r);
}

/* Time-range queries (issue 21): 20 committed rows of tv one second
 * apart, interleaved with another device's, then 5 rows still queued (a
 * long commit window). Retention (the newest 10) comes first, then the
 * range, the order and the limit; queued and committed rows merge in both
 * orders. */
static void t_history_range(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->cfg.commit_interval_ms = 60000;
    assert_int_equal(fx_open(f), 0);
    int64_t t0 = util_wall_ms() - 100000;
    for (int i = 0; i < 20; i++) {
        hist_at(f->s, "tv", i, t0 + i * 1000);
        hist_at(f->s, "other", 100 + i, t0 + i * 1000 + 500);
    }
    assert_int_equal(store_flush(f->s), WB_OK);
    for (int i = 20; i < 25; i++)
        hist_at(f->s, "tv", i, t0 + i * 1000);
    char got[256];
    struct store_history_query q = STORE_HISTORY_QUERY("tv");
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "24,23,22,21,20,19,18,17,16,15");
    q.ascending = true;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "15,16,17,18,19,20,21,22,23,24");
    /* [12 s, 22 s]: rows 12..22, of which retention keeps 15..22. */
    q.from_ms = t0 + 12000;
    q.to_ms = t0 + 22000;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "15,16,17,18,19,20,21,22");
    q.limit = 3;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "15,16,17");
    q.ascending = false;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "22,21,20");
    /* Bounds are inclusive, to the millisecond. */
    q.limit = 0;
    q.from_ms = t0 + 17000;
    q.to_ms = t0 + 19000;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "19,18,17");
    q.from_ms = t0 + 17001;
    q.to_ms = t0 + 18999;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "18");
    /* Only queued rows, only committed ones, rows retention dropped. */
    q.from_ms = t0 + 21000;
    q.to_ms = INT64_MAX;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "24,23,22,21");
    q.from_ms = INT64_MIN;
    q.to_ms = t0 + 16000;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "16,15");
    q.to_ms = t0 + 14999;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "");
    /* The other device is untouched by tv's queued rows. */
    struct store_history_query o = STORE_HISTORY_QUERY("other");
    o.from_ms = t0 + 18000;
    range_ns(f->s, &o, got, sizeof(got));
    assert_string_equal(got, "119,118");
    /* After the commit: the same answers. */
    assert_int_equal(store_flush(f->s), WB_OK);
    q = STORE_HISTORY_QUERY("tv");
    q.from_ms = t0 + 12000;
    q.to_ms = t0 + 22000;
    q.limit = 3;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "22,21,20");
    q.ascending = true;
    range_ns(f->s, &q, got, sizeof(got));
    assert_string_equal(got, "15,16,17");
    /* from after to; no device. */
    struct store_rows r;
    q.from_ms = q.to_ms + 1;
    assert_int_equal(store_history_query(f->s, &q, &r), WB_ERR_INVALID);
    assert_int_equal(r.n, 0);
    q = STORE_HISTORY_QUERY(NULL);
    assert_int_equal(store_history_query(f->s, &q, &r), WB_ERR_INVALID);
}

/* Many random ranges against the rows a device must keep, with gaps in
 * the ids (retention pruned each device's oldest rows, the other devices'
 * rows in between): the SQLite bisection of rowids must find every range's
 * start whatever rows are missing. Every backend, same answers. */
static void t_history_range_many(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->cfg.history_max_rows = 300;
    f->cfg.commit_interval_ms = 20;
    assert_int_equal(fx_open(f), 0);
    enum { ROWS = 3000 };
    int64_t t0 = util_wall_ms() - 3600000;
    for (int i = 0; i < ROWS; i++) {
        char dev[8];
        snprintf(dev, sizeof(dev), "d%d", i % 3);
        hist_at(f->s, dev, i, t0 + i * 10);
        if (i % 400 == 399)
            assert_int_equal(store_flush(f->s), WB_OK);
    }
    assert_int_equal(store_flush(f->s), WB_OK);
    unsigned seed = 21;
    for (int k = 0; k < 60; k++) {
        int d = k % 3;
        int a = (int)(rand_r(&seed) % (ROWS + 200)) - 100, b = a + (int)(rand_r(&seed) % 1500);
        struct store_history_query q = STORE_HISTORY_QUERY(d == 0 ? "d0" : d == 1 ? "d1" : "d2");
        q.from_ms = t0 + a * 10 - (k % 2); /* between rows, or on one */
        q.to_ms = t0 + b * 10;
        q.limit = k % 4 == 0 ? 7 : 0;
        q.ascending = k % 5 < 2;
        /* Kept: the newest 300 of the device, i.e. i >= ROWS - 900 + ... */
        char want[8192] = "", got[8192];
        int lo = ROWS - 3 * 300, n = 0;
        for (int j = 0; j < ROWS; j++) {
            int i = q.ascending ? j : ROWS - 1 - j;
            if (i % 3 != d || i < lo || t0 + i * 10 < q.from_ms || t0 + i * 10 > q.to_ms ||
                (q.limit && n >= q.limit))
                continue;
            snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%d", n ? "," : "", i);
            n++;
        }
        range_ns(f->s, &q, got, sizeof(got));
        assert_string_equal(got, want);
    }
}

/* GET /state-history's answer over a real store: the plain rows keep the
 * contract's shape; max_points gives buckets; bad parameters are 400s. */
static void t_history_buckets(void **state)
{
    struct fx *f = *state;
    f->cfg.history_max_rows = 0;
    store_close(f->s);
    assert_int_equal(fx_open(f), 0);
    int64_t t0 = util_wall_ms() - 100000;
    for (int i = 0; i < 20; i++)
        hist_at(f->s, "tv", i, t0 + i * 1000);
    json_object *body = NULL;
    char from[32], to[32];
    snprintf(from, sizeof(from), "%" PRId64, t0);
    util_iso8601_from_ms(t0 + 19999, to);
    struct http_history_args a = {.limit = 100, .from = from, .to = to, .max_points = "4"};
    assert_int_equal(api_history_answer(f->s, "tv", &a, &body), 200);
    /* Four spans of 5 s: rows 15..19 first (newest first). */
    assert_int_equal(json_object_array_length(body), 4);
    json_object *b = json_object_array_get_idx(body, 0), *v, *st;
    assert_true(json_object_object_get_ex(b, "n", &v));
    assert_int_equal(json_object_get_int(v), 5);
    assert_true(json_object_object_get_ex(b, "state", &st));
    assert_true(json_object_object_get_ex(st, "n", &v));
    assert_int_equal(json_object_get_int(v), 17); /* the mean of 15..19 */
    assert_true(json_object_object_get_ex(st, "mode", &v));
    assert_string_equal(json_object_get_string(v), "m1"); /* row 19's */
    assert_true(json_object_object_get_ex(b, "stats", &st));
    assert_true(json_object_object_get_ex(st, "n", &st));
    assert_string_equal(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "{\"min\":15,\"max\":19,\"mean\":17,\"n\":5}");
    json_object_put(body);
    /* Plain rows restricted to fields, oldest first. */
    a = (struct http_history_args){.limit = 2, .order = "asc", .fields = "mode"};
    assert_int_equal(api_history_answer(f->s, "tv", &a, &body), 200);
    assert_int_equal(json_object_array_length(body), 2);
    st = json_object_array_get_idx(body, 1);
    assert_true(json_object_object_get_ex(st, "state", &st));
    assert_string_equal(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "{\"mode\":\"m1\"}");
    json_object_put(body);
    const struct http_history_args bads[] = {
        {.limit = 1, .from = "yesterday"},
        {.limit = 1, .to = "2026-12-03T06:00:00"},
        {.limit = 1, .from = "2", .to = "1"},
        {.limit = 1, .order = "up"},
        {.limit = 1, .max_points = "0"},
        {.limit = 1, .max_points = "10001"},
        {.limit = 1, .max_points = "5x"},
        {.limit = 1, .fields = "a,,b"},
        {.limit = 1, .from = "2026-02-30T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        assert_int_equal(api_history_answer(f->s, "tv", &bads[i], &body), 400);
        assert_true(json_object_object_get_ex(body, "error", &v));
        json_object_put(body);
    }
}

static void t_transition(void **state)
{
    struct fx *f = *state;
    json_object *out = NULL, *got = NULL;
    for (int i = 1; i <= 3; i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"n\":%d,\"s\":\"x\"}", i);
        assert_int_equal(store_transition(f->s, "device:tv", "tv", text, true), WB_OK);
    }
    assert_int_equal(store_transition(f->s, "device:tv", "tv", "{\"n\":4}", false), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_get(f->s, "device:tv", &got), WB_OK);
    assert_string_equal(json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN), "{\"n\":4}");
    json_object_put(got);
    assert_int_equal(api_history_query(f->s, "tv", 10, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 3);
    json_object *st;
    assert_true(json_object_object_get_ex(json_object_array_get_idx(out, 0), "state", &st));
    assert_string_equal(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                        "{\"n\":3,\"s\":\"x\"}");
    json_object_put(out);
    assert_int_equal(store_transition(f->s, NULL, "tv", NULL, true), WB_ERR_INVALID);
    assert_int_equal(store_transition(f->s, "device:tv", NULL, "{}", true), WB_ERR_INVALID);
}

/* Schema 4: a history row carries its policy's kind and stats, queued and
 * committed alike; the API's JSON adds "kind"/"stats" only to rows that
 * have them, so a plain row stays the contract's {"ts","state"}. */
static void check_kinds(struct state_store *s)
{
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(s, "pol", 0, &r), WB_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.history[0].state, "{\"t\":21.5}");
    assert_string_equal(r.history[0].kind, "interval");
    assert_string_equal(r.history[0].stats,
                        "{\"t\":{\"min\":20.0,\"max\":23.0,\"mean\":21.5,\"n\":2}}");
    assert_null(r.history[1].kind);
    assert_null(r.history[1].stats);
    json_object *out = api_rows_json(&r);
    json_object *row0 = json_object_array_get_idx(out, 0),
                *row1 = json_object_array_get_idx(out, 1);
    json_object *v, *t;
    assert_true(json_object_object_get_ex(row0, "kind", &v));
    assert_string_equal(json_object_get_string(v), "interval");
    assert_true(json_object_object_get_ex(row0, "stats", &v));
    assert_true(json_object_object_get_ex(v, "t", &t));
    assert_true(json_object_object_get_ex(t, "n", &v));
    assert_int_equal(json_object_get_int(v), 2);
    assert_int_equal(json_object_object_length(row1), 2);
    assert_false(json_object_object_get_ex(row1, "kind", NULL));
    json_object_put(out);
    store_rows_free(&r);
}

static void t_history_kinds(void **state)
{
    struct fx *f = *state;
    int64_t now = util_wall_ms();
    assert_int_equal(store_history_put(f->s, &(struct store_history_entry){.device_id = "pol",
                                                                           .state = "{\"t\":20}",
                                                                           .ms = now - 1000}),
                     WB_OK);
    assert_int_equal(
        store_history_put(f->s,
                          &(struct store_history_entry){
                              .device_id = "pol",
                              .state = "{\"t\":21.5}",
                              .ms = now,
                              .kind = "interval",
                              .stats = "{\"t\":{\"min\":20.0,\"max\":23.0,\"mean\":21.5,"
                                       "\"n\":2}}"}),
        WB_OK);
    check_kinds(f->s); /* queued (SQLite, PostgreSQL) or committed (memory) */
    assert_int_equal(store_flush(f->s), WB_OK);
    check_kinds(f->s); /* committed */
    /* store_transition_with: the state and a row of its own text together. */
    assert_int_equal(store_transition_with(
                         f->s, "device:pol", "{\"t\":22,\"lq\":9}",
                         &(struct store_history_entry){.device_id = "pol", .state = "{\"t\":22}"}),
                     WB_OK);
    assert_int_equal(store_transition_with(f->s, "device:pol", "{\"t\":22,\"lq\":8}", NULL), WB_OK);
    assert_value(f->s, "device:pol", "{\"t\":22,\"lq\":8}");
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(f->s, "pol", 1, &r), WB_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.history[0].state, "{\"t\":22}");
    assert_null(r.history[0].kind);
    store_rows_free(&r);
    assert_int_equal(store_transition_with(f->s, "device:pol", "{}",
                                           &(struct store_history_entry){.device_id = "pol"}),
                     WB_ERR_INVALID);
    assert_int_equal(store_history_put(f->s, &(struct store_history_entry){.device_id = "pol"}),
                     WB_ERR_INVALID);
    assert_int_equal(store_history_put(f->s, NULL), WB_ERR_INVALID);
}

static void t_connection_log(void **state)
{
    struct fx *f = *state;
    json_object *out = NULL, *ev;
    assert_int_equal(store_connection_append(f->s, "tv", "online", "2026-01-01T00:00:00.000Z"),
                     WB_OK);
    assert_int_equal(store_connection_append(f->s, "tv", "offline", NULL), WB_OK);
    assert_int_equal(store_connection_append(f->s, "amp", "timeout", NULL), WB_OK);
    assert_int_equal(api_connection_query(f->s, "tv", 10, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 2);
    assert_true(json_object_object_get_ex(json_object_array_get_idx(out, 0), "event", &ev));
    assert_string_equal(json_object_get_string(ev), "offline");
    assert_true(json_object_object_get_ex(json_object_array_get_idx(out, 1), "ts", &ev));
    assert_string_equal(json_object_get_string(ev), "2026-01-01T00:00:00.000Z");
    json_object_put(out);
    assert_int_equal(api_connection_query(f->s, "tv", 1, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 1);
    json_object_put(out);

    struct store_device_row d = {.device_id = "tv",
                                 .device_type = "tv",
                                 .name = "TV",
                                 .is_online = true,
                                 .last_seen = "2026-01-01T00:00:00.000Z"};
    assert_int_equal(store_device_upsert(f->s, &d), WB_OK);
    d.is_online = false;
    d.last_seen = NULL;
    assert_int_equal(store_device_upsert(f->s, &d), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    if (strcmp(f->backend, "sqlite") == 0) {
        sqlite3 *db = raw_open(f->path);
        char buf[64];
        raw_text(db, "SELECT last_seen FROM devices WHERE device_id='tv' AND is_online=0", buf,
                 sizeof(buf));
        assert_string_equal(buf, "2026-01-01T00:00:00.000Z");
        sqlite3_close(db);
    }
}

static const char *str_member(json_object *o, const char *name)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, name, &v));
    return v ? json_object_get_string(v) : NULL;
}

static void t_commands(void **state)
{
    struct fx *f = *state;
    json_object *out = NULL, *params;
    struct store_command_row c1 = {.command_id = "11111111-1111-4111-8111-111111111111",
                                   .device_id = "tv",
                                   .action = "set_volume",
                                   .params = "{\"level\":30}",
                                   .source = "http",
                                   .status = "sent",
                                   .created_at = "2026-01-01T00:00:01.000Z"};
    struct store_command_row c2 = {.command_id = "22222222-2222-4222-8222-222222222222",
                                   .device_id = "amp",
                                   .action = "power_on",
                                   .source = "scenario",
                                   .status = "sent",
                                   .created_at = "2026-01-01T00:00:02.000Z"};
    assert_int_equal(store_command_put(f->s, &c1), WB_OK);
    assert_int_equal(store_command_put(f->s, &c2), WB_OK);
    /* Completion updates the same row. */
    struct store_command_row done = {.command_id = c1.command_id,
                                     .status = "failed",
                                     .error = "timeout",
                                     .completed_at = "2026-01-01T00:00:05.000Z"};
    assert_int_equal(store_command_put(f->s, &done), WB_OK);

    assert_int_equal(api_command_query(f->s, NULL, 100, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 2);
    assert_string_equal(str_member(json_object_array_get_idx(out, 0), "command_id"), c2.command_id);
    assert_null(str_member(json_object_array_get_idx(out, 0), "params"));
    json_object_put(out);

    struct store_command_filter flt = {.status = "failed"};
    assert_int_equal(api_command_query(f->s, &flt, 100, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 1);
    json_object *row = json_object_array_get_idx(out, 0);
    assert_string_equal(str_member(row, "device_id"), "tv");
    assert_string_equal(str_member(row, "action"), "set_volume");
    assert_string_equal(str_member(row, "source"), "http");
    assert_string_equal(str_member(row, "error"), "timeout");
    assert_string_equal(str_member(row, "created_at"), "2026-01-01T00:00:01.000Z");
    assert_string_equal(str_member(row, "completed_at"), "2026-01-01T00:00:05.000Z");
    assert_true(json_object_object_get_ex(row, "params", &params));
    assert_true(json_object_is_type(params, json_type_object));
    assert_int_equal(json_object_get_int(json_object_object_get(params, "level")), 30);
    json_object_put(out);

    flt = (struct store_command_filter){.device_id = "amp", .status = "sent"};
    assert_int_equal(api_command_query(f->s, &flt, 100, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 1);
    json_object_put(out);
    flt = (struct store_command_filter){.device_id = "tv", .status = "sent"};
    assert_int_equal(api_command_query(f->s, &flt, 100, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 0);
    json_object_put(out);
    assert_int_equal(api_command_query(f->s, NULL, 1, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 1);
    json_object_put(out);
}

struct worker {
    struct state_store *s;
    int id;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char key[32], text[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "t%d:%03d", w->id, i);
        snprintf(text, sizeof(text), "{\"i\":%d}", i);
        set_text(w->s, key, text);
        assert_value(w->s, key, text); /* read-your-write, whatever the writer does */
    }
    return NULL;
}

static int count_cb(const char *key, json_object *value, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

/* Writers on four threads while the main thread flushes and lists. */
static void t_threads(void **state)
{
    struct fx *f = *state;
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){f->s, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        int n = 0;
        assert_int_equal(store_flush(f->s), WB_OK);
        assert_int_equal(store_list(f->s, "t1:", count_cb, &n), WB_OK);
        assert_true(n <= 500);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    int n = 0;
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_list(f->s, "t", count_cb, &n), WB_OK);
    assert_int_equal(n, 2000);
    struct store_status st;
    store_get_status(f->s, &st);
    assert_int_equal(st.sets, 2000);
    assert_int_equal(st.committed_seq, 2000);
    assert_int_equal(st.pending, 0);
}

/* ---- SQLite only ----------------------------------------------------------- */

static void t_reopen(void **state)
{
    struct fx *f = *state;
    set_text(f->s, "device:tv", "{\"power\":true}");
    set_text(f->s, "gone", "{}");
    assert_int_equal(store_delete(f->s, "gone"), WB_OK);
    reopen(f); /* close flushes */
    assert_value(f->s, "device:tv", "{\"power\":true}");
    json_object *v = NULL;
    assert_int_equal(store_get(f->s, "gone", &v), WB_ERR_NOT_FOUND);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_long(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    char mode[16];
    raw_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");
    char ts[64];
    raw_text(db, "SELECT updated_at FROM state_store WHERE key='device:tv'", ts, sizeof(ts));
    assert_int_equal(strlen(ts), UTIL_TS_LEN - 1); /* 2026-11-23T03:37:49.123Z */
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    sqlite3_close(db);
}

static void t_group_commit_by_itself(void **state)
{
    struct fx *f = *state;
    struct store_status st;
    set_text(f->s, "k", "{\"v\":1}");
    /* No flush: the writer must commit within commit_interval_ms. */
    int64_t deadline = util_mono_ms() + 5000;
    do {
        store_get_status(f->s, &st);
        if (st.committed_seq == 1)
            break;
        usleep(5000);
    } while (util_mono_ms() < deadline);
    assert_int_equal(st.committed_seq, 1);
    assert_int_equal(st.pending, 0);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM state_store WHERE key='k'"), 1);
    sqlite3_close(db);
}

static void t_coalescing(void **state)
{
    struct fx *f = *state;
    struct store_status a, b;
    store_close(f->s);
    f->cfg.commit_interval_ms = 60000; /* one window for the whole test */
    assert_int_equal(fx_open(f), 0);
    store_get_status(f->s, &a);
    for (int i = 0; i < 1000; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "seq", json_object_new_int(i));
        assert_int_equal(store_set(f->s, "device:tv", o), WB_OK);
        json_object_put(o);
    }
    store_get_status(f->s, &b);
    assert_int_equal(b.pending, 1);
    assert_int_equal(store_flush(f->s), WB_OK);
    store_get_status(f->s, &b);
    assert_int_equal(b.rows_written, a.rows_written + 1);
    assert_int_equal(b.sets, a.sets + 1000);
    assert_int_equal(b.committed_seq, b.sets);
    assert_int_equal(b.commits, a.commits + 1);
    assert_value(f->s, "device:tv", "{\"seq\":999}");
}

/* Reads no longer force commits: with a window that never ends by itself,
 * a history, connection or command-log query answers from the database
 * plus what is queued (newest first, limit applied, a queued completion
 * folded onto its committed command), and commits nothing; after a flush
 * the same queries give the same answers from the database alone. */
static void t_reads_see_queue(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->cfg.commit_interval_ms = 60000;
    assert_int_equal(fx_open(f), 0);
    struct store_command_row c1 = {.command_id = "11111111-1111-4111-8111-111111111111",
                                   .device_id = "tv",
                                   .action = "set_volume",
                                   .params = "{\"level\":30}",
                                   .source = "http",
                                   .status = "sent",
                                   .created_at = "2026-01-01T00:00:01.000Z"};
    assert_int_equal(store_transition(f->s, "device:tv", "tv", "{\"n\":1}", true), WB_OK);
    assert_int_equal(store_connection_append(f->s, "tv", "online", "2026-01-01T00:00:00.000Z"),
                     WB_OK);
    assert_int_equal(store_command_put(f->s, &c1), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK); /* committed: the database part */

    assert_int_equal(store_transition(f->s, "device:tv", "tv", "{\"n\":2}", true), WB_OK);
    assert_int_equal(store_transition(f->s, "device:tv", "tv", "{\"n\":3}", true), WB_OK);
    assert_int_equal(store_connection_append(f->s, "tv", "offline", NULL), WB_OK);
    struct store_command_row done = {.command_id = c1.command_id,
                                     .status = "failed",
                                     .error = "timeout",
                                     .completed_at = "2026-01-01T00:00:05.000Z"};
    struct store_command_row c2 = {.command_id = "22222222-2222-4222-8222-222222222222",
                                   .device_id = "amp",
                                   .action = "power_on",
                                   .source = "scenario",
                                   .status = "sent",
                                   .created_at = "2026-01-01T00:00:02.000Z"};
    assert_int_equal(store_command_put(f->s, &done), WB_OK);
    assert_int_equal(store_command_put(f->s, &c2), WB_OK);

    struct store_status a, b;
    store_get_status(f->s, &a);
    assert_true(a.pending > 0);
    json_object *hist = NULL, *hist2 = NULL, *conn = NULL, *cmds = NULL, *failed = NULL;
    assert_int_equal(api_history_query(f->s, "tv", 2, &hist), WB_OK);
    assert_int_equal(api_history_query(f->s, "tv", 0, &hist2), WB_OK);
    assert_int_equal(api_connection_query(f->s, "tv", 10, &conn), WB_OK);
    assert_int_equal(api_command_query(f->s, NULL, 10, &cmds), WB_OK);
    struct store_command_filter flt = {.status = "failed"};
    assert_int_equal(api_command_query(f->s, &flt, 10, &failed), WB_OK);
    store_get_status(f->s, &b);
    assert_int_equal(b.commits, a.commits); /* no commit was forced */
    assert_int_equal(b.pending, a.pending);

    assert_int_equal(json_object_array_length(hist), 2);
    json_object *st = NULL;
    assert_true(json_object_object_get_ex(json_object_array_get_idx(hist, 0), "state", &st));
    assert_string_equal(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN), "{\"n\":3}");
    assert_int_equal(json_object_array_length(hist2), 3);
    assert_int_equal(json_object_array_length(conn), 2);
    assert_string_equal(str_member(json_object_array_get_idx(conn, 0), "event"), "offline");
    assert_int_equal(json_object_array_length(cmds), 2);
    json_object *first = json_object_array_get_idx(cmds, 0), *second;
    assert_string_equal(str_member(first, "command_id"), c2.command_id); /* newest created_at */
    second = json_object_array_get_idx(cmds, 1);
    assert_string_equal(str_member(second, "status"), "failed"); /* folded onto the row */
    assert_string_equal(str_member(second, "action"), "set_volume");
    assert_string_equal(str_member(second, "created_at"), c1.created_at);
    assert_int_equal(json_object_array_length(failed), 1);

    /* Committed, the database alone gives the same answers. */
    const char *before[] = {json_object_to_json_string(hist), json_object_to_json_string(hist2),
                            json_object_to_json_string(conn), json_object_to_json_string(cmds),
                            json_object_to_json_string(failed)};
    assert_int_equal(store_flush(f->s), WB_OK);
    json_object *after[5] = {NULL};
    assert_int_equal(api_history_query(f->s, "tv", 2, &after[0]), WB_OK);
    assert_int_equal(api_history_query(f->s, "tv", 0, &after[1]), WB_OK);
    assert_int_equal(api_connection_query(f->s, "tv", 10, &after[2]), WB_OK);
    assert_int_equal(api_command_query(f->s, NULL, 10, &after[3]), WB_OK);
    assert_int_equal(api_command_query(f->s, &flt, 10, &after[4]), WB_OK);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(json_object_to_json_string(after[i]), before[i]);
        json_object_put(after[i]);
    }
    json_object_put(hist);
    json_object_put(hist2);
    json_object_put(conn);
    json_object_put(cmds);
    json_object_put(failed);
}

static void t_sync_mode(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->cfg.commit_interval_ms = 0;
    assert_int_equal(fx_open(f), 0);
    sqlite3 *db = raw_open(f->path);
    for (int i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof(text), "{\"i\":%d}", i);
        set_text(f->s, "k", text);
        char buf[64];
        raw_text(db, "SELECT value FROM state_store WHERE key='k'", buf, sizeof(buf));
        assert_string_equal(buf, text); /* committed before set returned */
    }
    struct store_status st;
    store_get_status(f->s, &st);
    assert_int_equal(st.commits, 5);
    assert_int_equal(st.pending, 0);
    /* A transition is one commit holding the value and its history row. */
    assert_int_equal(store_transition(f->s, "device:tv", "tv", "{\"i\":9}", true), WB_OK);
    store_get_status(f->s, &st);
    assert_int_equal(st.commits, 6);
    char buf[64];
    raw_text(db, "SELECT state FROM device_state_snapshots WHERE device_id='tv'", buf, sizeof(buf));
    assert_string_equal(buf, "{\"i\":9}");
    sqlite3_close(db);
}

/* Retention runs in batches inside the writer's commits: the first commit
 * applies the age limit, and a device is pruned to max_rows once it has
 * max_rows + max(100, max_rows / 10) rows. */
static void t_retention(void **state)
{
    struct fx *f = *state;
    char ts[UTIL_TS_LEN];
    json_object *o = obj("{\"power\":true}");
    util_iso8601_from_ms(util_wall_ms() - 40LL * 86400000, ts);
    assert_int_equal(store_history_append(f->s, "aged", o, ts), WB_OK);
    for (int i = 0; i < 50; i++)
        assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    sqlite3 *db = raw_open(f->path);
    const char *count_tv = "SELECT count(*) FROM device_state_snapshots WHERE device_id='tv'";
    assert_int_equal(raw_long(db, count_tv), 50); /* below 10 + 100 */
    assert_int_equal(
        raw_long(db, "SELECT count(*) FROM device_state_snapshots WHERE device_id='aged'"), 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(raw_long(db, count_tv), 10);
    for (int i = 0; i < 99; i++)
        assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(raw_long(db, count_tv), 109); /* below the batch threshold */
    assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(raw_long(db, count_tv), 10);
    /* The newest ten are kept. */
    assert_int_equal(raw_long(db, "SELECT min(id) FROM device_state_snapshots WHERE "
                                  "device_id='tv'"),
                     raw_long(db, "SELECT max(id) - 9 FROM device_state_snapshots WHERE "
                                  "device_id='tv'"));
    sqlite3_close(db);
    json_object_put(o);
}

/* A file from before schema versioning (user_version 0, tables present) is
 * brought to the current version with its rows intact. */
/* Schema 3 -> 4: a schema-3 file (no kind, no stats) gets both columns in
 * place, its rows kept (kind and stats NULL: plain rows). */
static void t_migrate_v3(void **state)
{
    struct fx *f = *state;
    json_object *o = obj("{\"n\":1}");
    assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    json_object_put(o);
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "BEGIN;ALTER TABLE device_state_snapshots DROP COLUMN kind;"
                                  "ALTER TABLE device_state_snapshots DROP COLUMN stats;"
                                  "PRAGMA user_version=3;COMMIT;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM pragma_table_info("
                                  "'device_state_snapshots') WHERE name IN ('kind','stats')"),
                     0);
    sqlite3_close(db);
    assert_int_equal(fx_open(f), 0);
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "PRAGMA user_version"), 4);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM pragma_table_info("
                                  "'device_state_snapshots') WHERE name IN ('kind','stats')"),
                     2);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_state_snapshots WHERE kind IS NULL"
                                  " AND stats IS NULL AND device_id = 'tv'"),
                     1);
    sqlite3_close(db);
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(f->s, "tv", 0, &r), WB_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.history[0].state, "{\"n\":1}");
    assert_null(r.history[0].kind);
    store_rows_free(&r);
    assert_int_equal(store_history_put(f->s, &(struct store_history_entry){.device_id = "tv",
                                                                           .state = "{}",
                                                                           .kind = "interval",
                                                                           .stats = "{}"}),
                     WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM device_state_snapshots"
                                  " WHERE kind = 'interval'"),
                     1);
    sqlite3_close(db);
}

static void t_unversioned_file(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    unlink(f->path);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE state_store(key TEXT PRIMARY KEY, value TEXT NOT "
                                  "NULL, updated_at TEXT NOT NULL);"
                                  "INSERT INTO state_store VALUES('device:old', '{\"v\":1}',"
                                  " '2025-01-01T00:00:00.000Z');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(fx_open(f), 0);
    assert_value(f->s, "device:old", "{\"v\":1}");
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                  "('devices','command_logs','device_connection_logs',"
                                  "'device_state_snapshots')"),
                     4);
    sqlite3_close(db);
}

/* With no commit window, a failing commit is reported by set() itself and
 * the change is still kept and committed later. */
static void t_sync_mode_failure(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->cfg.commit_interval_ms = 0;
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=1"), WB_OK);
    json_object *o = obj("{\"v\":1}");
    assert_int_equal(store_set(f->s, "k", o), WB_ERR_READONLY);
    json_object_put(o);
    assert_value(f->s, "k", "{\"v\":1}");
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=0"), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM state_store WHERE key='k'"), 1);
    sqlite3_close(db);
}

/* The child commits 100 keys, tells the parent, then writes until killed. */
static void t_kill9(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        struct state_store *s = NULL;
        if (store_open(&s, &f->cfg, NULL, 0) != WB_OK)
            _exit(1);
        char key[32];
        for (int i = 0; i < 100; i++) {
            snprintf(key, sizeof(key), "device:d%d", i);
            set_text(s, key, "{\"committed\":true}");
        }
        if (store_flush(s) != WB_OK || write(pfd[1], "k", 1) != 1)
            _exit(1);
        for (unsigned long i = 0;; i++) {
            snprintf(key, sizeof(key), "later:%lu", i % 5000);
            set_text(s, key, "{\"later\":true,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
            if (i % 1000 == 0)
                store_history_append(s, "d0", json_object_new_object(), NULL);
        }
    }
    close(pfd[1]);
    char c = 0;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    usleep(300000); /* let it write through a few commits, any moment is fine */
    kill(pid, SIGKILL);
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFSIGNALED(wst));

    sqlite3 *db = raw_open(f->path);
    char ok[64];
    raw_text(db, "PRAGMA integrity_check", ok, sizeof(ok));
    assert_string_equal(ok, "ok");
    assert_int_equal(raw_long(db, "SELECT count(*) FROM state_store WHERE key LIKE 'device:d%'"),
                     100);
    sqlite3_close(db);
    assert_int_equal(fx_open(f), 0);
    assert_value(f->s, "device:d42", "{\"committed\":true}");
}

static int count_aside(const char *path)
{
    char pat[256];
    glob_t g;
    snprintf(pat, sizeof(pat), "%s.corrupt.*", path);
    int n = glob(pat, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    globfree(&g);
    return n;
}

static void copy_file(const char *from, const char *to, long max)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    long total = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0 && (max < 0 || total < max)) {
        if (max >= 0 && total + (long)n > max)
            n = (size_t)(max - total);
        assert_int_equal(fwrite(buf, 1, n, out), n);
        total += (long)n;
    }
    fclose(in);
    fclose(out);
}

static void check_moved_aside_and_fresh(struct fx *f)
{
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(count_aside(f->path), 1);
    json_object *v = NULL;
    assert_int_equal(store_get(f->s, "device:d1", &v), WB_ERR_NOT_FOUND);
    set_text(f->s, "fresh", "{\"ok\":true}");
    assert_int_equal(store_flush(f->s), WB_OK);
    reopen(f);
    assert_value(f->s, "fresh", "{\"ok\":true}");
}

static void t_corrupt_fixture(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    const char *data = getenv("WBMB_TEST_DATA");
    assert_non_null(data);
    const char *fixtures[] = {"corrupt.sqlite3", "garbage.sqlite3"};
    for (int i = 0; i < 2; i++) {
        char src[512];
        snprintf(src, sizeof(src), "%s/store/%s", data, fixtures[i]);
        snprintf(f->path, sizeof(f->path), "%s/%d.db", f->dir, i);
        copy_file(src, f->path, -1);
        check_moved_aside_and_fresh(f);
        store_close(f->s);
        f->s = NULL;
    }
}

static void t_truncated(void **state)
{
    struct fx *f = *state;
    char key[32], big[2100];
    memset(big, 0, sizeof(big));
    snprintf(big, sizeof(big), "{\"pad\":\"%0*d\"}", 2000, 7);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "device:d%d", i);
        set_text(f->s, key, big);
    }
    store_close(f->s); /* the last close checkpoints the WAL into the file */
    f->s = NULL;
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_true(sb.st_size > 100000);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.full", f->path);
    assert_int_equal(rename(f->path, tmp), 0);
    copy_file(tmp, f->path, sb.st_size / 3);
    check_moved_aside_and_fresh(f);
}

static void t_newer_version(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[512] = "";
    assert_int_equal(store_open(&f->s, &f->cfg, err, sizeof(err)), WB_ERR_VERSION);
    assert_null(f->s);
    char want[128];
    snprintf(want, sizeof(want),
             "database schema version 7 is newer than this program's %d; refusing to open",
             STORE_SCHEMA_VERSION);
    assert_non_null(strstr(err, want));
    assert_int_equal(count_aside(f->path), 0); /* a newer file is not "corrupt" */
}

static void t_disk_full(void **state)
{
    struct fx *f = *state;
    struct store_status st;
    char key[32], big[1100], sql[64];
    snprintf(big, sizeof(big), "{\"pad\":\"%0*d\"}", 1000, 1);
    set_text(f->s, "before", "{}");
    assert_int_equal(store_flush(f->s), WB_OK);
    sqlite3 *db = raw_open(f->path);
    long pages = raw_long(db, "PRAGMA page_count");
    sqlite3_close(db);
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%ld", pages);
    assert_int_equal(store_sqlite_exec_for_test(f->s, sql), WB_OK);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "device:d%d", i);
        set_text(f->s, key, big);
    }
    assert_int_equal(store_flush(f->s), WB_ERR_FULL);
    store_get_status(f->s, &st);
    assert_false(st.ok);
    assert_int_equal(st.last_error, WB_ERR_FULL);
    assert_true(strlen(st.last_error_text) > 0);
    assert_true(st.commit_failures >= 1);
    assert_int_equal(st.pending, 200);
    assert_true(st.committed_seq < st.sets);
    /* Served from the pending changes; newer sets win over the failed batch. */
    assert_value(f->s, "device:d7", big);
    set_text(f->s, "device:d7", "{\"newer\":true}");
    assert_int_equal(store_flush(f->s), WB_ERR_FULL);

    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA max_page_count=1073741823"), WB_OK);
    /* The writer retries by itself after its back-off. */
    int64_t deadline = util_mono_ms() + 10000;
    do {
        store_get_status(f->s, &st);
        if (st.ok && st.pending == 0)
            break;
        usleep(10000);
    } while (util_mono_ms() < deadline);
    assert_true(st.ok);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.committed_seq, st.sets);
    db = raw_open(f->path);
    assert_int_equal(raw_long(db, "SELECT count(*) FROM state_store WHERE key LIKE 'device:d%'"),
                     200);
    char v[64];
    raw_text(db, "SELECT value FROM state_store WHERE key='device:d7'", v, sizeof(v));
    assert_string_equal(v, "{\"newer\":true}");
    sqlite3_close(db);
}

static void t_readonly_runtime(void **state)
{
    struct fx *f = *state;
    struct store_status st;
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=1"), WB_OK);
    set_text(f->s, "k", "{\"v\":1}");
    json_object *snap = obj("{\"power\":true}");
    assert_int_equal(store_history_append(f->s, "tv", snap, NULL), WB_OK);
    json_object_put(snap);
    assert_int_equal(store_flush(f->s), WB_ERR_READONLY);
    store_get_status(f->s, &st);
    assert_false(st.ok);
    assert_int_equal(st.last_error, WB_ERR_READONLY);
    assert_int_equal(st.pending, 2);
    assert_value(f->s, "k", "{\"v\":1}");
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=0"), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    store_get_status(f->s, &st);
    assert_true(st.ok);
    assert_int_equal(st.pending, 0);
    json_object *out = NULL;
    assert_int_equal(api_history_query(f->s, "tv", 10, &out), WB_OK);
    assert_int_equal(json_object_array_length(out), 1);
    json_object_put(out);
}

/* While commits fail, appended rows are bounded by max_queued_rows: the
 * oldest history snapshots go (counted), the state and the logs stay, and
 * what is left is committed once the database works again. */
static void t_queue_bound(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->cfg.max_queued_rows = 20;
    f->cfg.history_max_rows = 0;
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=1"), WB_OK);
    assert_int_equal(store_connection_append(f->s, "tv", "online", NULL), WB_OK);
    for (int i = 0; i < 100; i++) {
        char text[32];
        snprintf(text, sizeof(text), "{\"n\":%d}", i);
        assert_int_equal(store_transition(f->s, "device:tv", "tv", text, true), WB_OK);
        if (i % 10 == 0)
            assert_int_equal(store_flush(f->s), WB_ERR_READONLY);
    }
    struct store_status st;
    store_get_status(f->s, &st);
    assert_false(st.ok);
    assert_int_equal(st.history_dropped, 81); /* 101 rows, 20 kept */
    assert_int_equal(st.pending, 1 + 20);     /* the key and the rows */
    assert_int_equal(store_sqlite_exec_for_test(f->s, "PRAGMA query_only=0"), WB_OK);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_value(f->s, "device:tv", "{\"n\":99}");
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(f->s, "tv", 0, &r), WB_OK);
    assert_int_equal(r.n, 19); /* the newest, the connection log row kept */
    assert_string_equal(r.history[0].state, "{\"n\":99}");
    assert_string_equal(r.history[18].state, "{\"n\":81}");
    store_rows_free(&r);
    r = STORE_ROWS(STORE_ROWS_CONNECTIONS);
    assert_int_equal(store_connection_rows(f->s, "tv", 0, &r), WB_OK);
    assert_int_equal(r.n, 1);
    store_rows_free(&r);
}

static void t_readonly_open(void **state)
{
    struct fx *f = *state;
    char cmd[300], err[512] = "";
    set_text(f->s, "k", "{}");
    store_close(f->s);
    f->s = NULL;
    /* Root ignores permission bits; the immutable attribute stops even root. */
    snprintf(cmd, sizeof(cmd), "chattr +i '%s' 2>/dev/null", f->path);
    if (system(cmd) != 0)
        skip();
    wb_status st = store_open(&f->s, &f->cfg, err, sizeof(err));
    snprintf(cmd, sizeof(cmd), "chattr -i '%s'", f->path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(st, WB_ERR_READONLY);
    assert_null(f->s);
    assert_non_null(strstr(err, "read-only"));
    assert_int_equal(count_aside(f->path), 0);
}

/* ---- PostgreSQL only --------------------------------------------------- */

/* Two sites in one database: the same keys, devices and commands, each
 * store sees its own only. */
static void t_pg_sites(void **state)
{
    struct fx *f = *state;
    struct store_config other = f->cfg;
    char site2[80];
    snprintf(site2, sizeof(site2), "%s_b", pg_site);
    other.pg_site = site2;
    struct state_store *o = NULL;
    char err[256];
    assert_int_equal(store_open(&o, &other, err, sizeof(err)), WB_OK);
    set_text(f->s, "device:tv", "{\"power\":true}");
    set_text(o, "device:tv", "{\"power\":false}");
    json_object *st = obj("{\"n\":1}");
    assert_int_equal(store_history_append(f->s, "tv", st, NULL), WB_OK);
    assert_int_equal(store_history_append(f->s, "tv", st, NULL), WB_OK);
    assert_int_equal(store_history_append(o, "tv", st, NULL), WB_OK);
    json_object_put(st);
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_flush(o), WB_OK);
    assert_value(f->s, "device:tv", "{\"power\":true}");
    assert_value(o, "device:tv", "{\"power\":false}");
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(o, "tv", 0, &r), WB_OK);
    assert_int_equal(r.n, 1);
    store_rows_free(&r);
    assert_int_equal(store_history_rows(f->s, "tv", 0, &r), WB_OK);
    assert_int_equal(r.n, 2);
    store_rows_free(&r);
    store_close(o);
}

/* A conninfo libpq cannot parse: a clear error at once, no retries. */
static void t_pg_bad_conninfo(void **state)
{
    struct fx *f = *state;
    struct store_config c = f->cfg;
    c.pg_conninfo = "host=127.0.0.1 nonsense";
    struct state_store *s = NULL;
    char err[256] = "";
    int64_t t0 = util_mono_ms();
    assert_int_equal(store_open(&s, &c, err, sizeof(err)), WB_ERR_INVALID);
    assert_null(s);
    assert_true(util_mono_ms() - t0 < 5000);
    assert_non_null(strstr(err, "not a valid libpq conninfo"));
    /* ...and one with a password in it never shows it. */
    c.pg_conninfo = "password=sekrit host=127.0.0.1 nonsense";
    assert_int_equal(store_open(&s, &c, err, sizeof(err)), WB_ERR_INVALID);
    assert_null(strstr(err, "sekrit"));
}

/* Nothing listens: open retries for connect_timeout_s, then fails with
 * where it tried (no password) and why. */
static void t_pg_unreachable(void **state)
{
    struct fx *f = *state;
    struct store_config c = f->cfg;
    c.pg_conninfo = "host=127.0.0.1 port=1 dbname=wbmb user=wbmb password=sekrit";
    c.pg_connect_timeout_s = 1;
    struct state_store *s = NULL;
    char err[512] = "";
    assert_int_equal(store_open(&s, &c, err, sizeof(err)), WB_ERR_DB);
    assert_null(s);
    assert_non_null(strstr(err, "cannot connect to postgresql ("));
    assert_non_null(strstr(err, "host=127.0.0.1"));
    assert_non_null(strstr(err, "port=1"));
    assert_non_null(strstr(err, "Connection refused"));
    assert_non_null(strstr(err, "tries in"));
    assert_null(strstr(err, "sekrit"));
}

/* Runs sql on the test server as the bridge's role; its status. */
static ExecStatusType pg_exec(const char *sql)
{
    const char *k[] = {"dbname", "password", NULL}, *v[] = {pg_conninfo, pg_password, NULL};
    PGconn *c = pq->connectdbParams(k, v, 1);
    assert_int_equal(pq->status(c), CONNECTION_OK);
    PGresult *res = pq->exec(c, sql);
    ExecStatusType st = pq->resultStatus(res);
    pq->clear(res);
    pq->finish(c);
    return st;
}

/* The first value of the first row of sql (a count), as the bridge's role. */
static long pg_long(const char *sql)
{
    const char *k[] = {"dbname", "password", NULL}, *v[] = {pg_conninfo, pg_password, NULL};
    PGconn *c = pq->connectdbParams(k, v, 1);
    assert_int_equal(pq->status(c), CONNECTION_OK);
    PGresult *res = pq->exec(c, sql);
    assert_int_equal(pq->resultStatus(res), PGRES_TUPLES_OK);
    long n = strtol(pq->getvalue(res, 0, 0), NULL, 10);
    pq->clear(res);
    pq->finish(c);
    return n;
}

/* Retention in the table, not only in the answers: the first commit runs
 * the pass (then once a minute), keeping the newest history_max_rows of
 * each device written and nothing older than history_max_age_days. */
static void t_pg_retention(void **state)
{
    struct fx *f = *state;
    char ts[UTIL_TS_LEN], sql[256];
    int64_t now = util_wall_ms();
    for (int i = 0; i < 25; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "n", json_object_new_int(i));
        util_iso8601_from_ms(now - 25000 + i * 1000, ts);
        assert_int_equal(store_history_append(f->s, "tv", o, ts), WB_OK);
        json_object_put(o);
    }
    json_object *old = obj("{\"n\":-1}");
    util_iso8601_from_ms(now - 40LL * 86400000, ts);
    assert_int_equal(store_history_append(f->s, "aged", old, ts), WB_OK);
    json_object_put(old);
    assert_int_equal(store_flush(f->s), WB_OK);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM device_state_snapshots WHERE site = '%s' AND device_id = 'tv'",
             pg_site);
    assert_int_equal(pg_long(sql), 10);
    snprintf(sql, sizeof(sql),
             "SELECT min(state::json->>'n') FROM device_state_snapshots WHERE site = '%s'"
             " AND device_id = 'tv'",
             pg_site);
    assert_int_equal(pg_long(sql), 15);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM device_state_snapshots WHERE site = '%s' AND device_id = 'aged'",
             pg_site);
    assert_int_equal(pg_long(sql), 0);
}

/* Keys and values travel as elements of array parameters: quotes,
 * backslashes, commas, braces, NULL-looking text and non-ASCII survive the
 * round trip, in state, history and deletes. */
static void t_pg_odd_text(void **state)
{
    struct fx *f = *state;
    static const char *const keys[] = {"a\"b", "c\\d", "e,f", "{g}", "NULL", "ключ", " h "};
    const char *val = "{\"s\":\"q\\\"b\\\\s,{}NULL ключ\"}";
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        set_text(f->s, keys[i], val);
    set_text(f->s, "gone,{\"x\"}", "{}");
    assert_int_equal(store_flush(f->s), WB_OK);
    assert_int_equal(store_delete(f->s, "gone,{\"x\"}"), WB_OK);
    json_object *st = obj(val);
    assert_int_equal(store_history_append(f->s, "d\"ev,{1}", st, NULL), WB_OK);
    json_object_put(st);
    reopen(f);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_value(f->s, keys[i], val);
    json_object *v = NULL;
    assert_int_equal(store_get(f->s, "gone,{\"x\"}", &v), WB_ERR_NOT_FOUND);
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(f->s, "d\"ev,{1}", 0, &r), WB_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.history[0].device_id, "d\"ev,{1}");
    assert_string_equal(r.history[0].state, val);
    store_rows_free(&r);
}

/* A database migrated by a newer binary is refused, untouched. */
static void t_pg_newer_version(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(pg_exec("UPDATE schema_version SET version = 99"), PGRES_COMMAND_OK);
    char err[512] = "";
    wb_status st = store_open(&f->s, &f->cfg, err, sizeof(err));
    assert_int_equal(pg_exec("UPDATE schema_version SET version = " STR(STORE_PG_SCHEMA_VERSION)),
                     PGRES_COMMAND_OK);
    assert_int_equal(st, WB_ERR_VERSION);
    assert_null(f->s);
    assert_non_null(
        strstr(err, "schema version 99 is newer than this binary's " STR(STORE_PG_SCHEMA_VERSION)));
    assert_int_equal(fx_open(f), 0);
}

/* PostgreSQL's schema 1 -> 2 (SQLite's 3 -> 4): kind and stats added in
 * place, the rows kept. */
static void t_pg_migrate_v1(void **state)
{
    struct fx *f = *state;
    json_object *o = obj("{\"n\":1}");
    assert_int_equal(store_history_append(f->s, "tv", o, NULL), WB_OK);
    json_object_put(o);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(pg_exec("BEGIN;ALTER TABLE device_state_snapshots DROP COLUMN kind;"
                             "ALTER TABLE device_state_snapshots DROP COLUMN stats;"
                             "UPDATE schema_version SET version = 1;COMMIT"),
                     PGRES_COMMAND_OK);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(pg_long("SELECT max(version) FROM schema_version"), STORE_PG_SCHEMA_VERSION);
    assert_int_equal(pg_long("SELECT count(*) FROM information_schema.columns WHERE table_name ="
                             " 'device_state_snapshots' AND column_name IN ('kind','stats')"),
                     2);
    struct store_rows r = STORE_ROWS(STORE_ROWS_HISTORY);
    assert_int_equal(store_history_rows(f->s, "tv", 0, &r), WB_OK);
    assert_int_equal(r.n, 1);
    assert_null(r.history[0].kind);
    store_rows_free(&r);
}

/* A multi-host conninfo whose first host is down: the second one is used. */
static void t_pg_multi_host(void **state)
{
    struct fx *f = *state;
    char port[16] = "", ci[512];
    const char *p = strstr(pg_conninfo, "port=");
    assert_non_null(p);
    snprintf(port, sizeof(port), "%.*s", (int)strcspn(p + 5, " "), p + 5);
    snprintf(ci, sizeof(ci),
             "host=127.0.0.1,127.0.0.1 port=1,%s dbname=wbmb user=wbmb "
             "target_session_attrs=read-write",
             port);
    store_close(f->s);
    f->cfg.pg_conninfo = ci;
    assert_int_equal(fx_open(f), 0);
    set_text(f->s, "k", "{\"v\":2}");
    assert_int_equal(store_flush(f->s), WB_OK);
    reopen(f);
    assert_value(f->s, "k", "{\"v\":2}");
    f->cfg.pg_conninfo = pg_conninfo;
}

#define SHARED(setup)                                                                              \
    cmocka_unit_test_setup_teardown(t_get_missing, setup, teardown),                               \
        cmocka_unit_test_setup_teardown(t_roundtrip, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(t_overwrite, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(t_delete, setup, teardown),                                \
        cmocka_unit_test_setup_teardown(t_list_prefix, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(t_flush_status, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(t_history, setup, teardown),                               \
        cmocka_unit_test_setup_teardown(t_history_range, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(t_history_range_many, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(t_history_buckets, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(t_transition, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(t_history_kinds, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(t_connection_log, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(t_commands, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(t_threads, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        SHARED(setup_sqlite),
        cmocka_unit_test_setup_teardown(t_reopen, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_group_commit_by_itself, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_coalescing, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_reads_see_queue, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_sync_mode, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_retention, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_unversioned_file, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_migrate_v3, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_sync_mode_failure, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_kill9, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_corrupt_fixture, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_truncated, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_newer_version, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_disk_full, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_readonly_runtime, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_queue_bound, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(t_readonly_open, setup_sqlite, teardown),
    };
    const struct CMUnitTest memory_tests[] = {SHARED(setup_memory)};
    const char *pg_dir = getenv("WBMB_TEST_PG_DIR");
    if (pg_dir && *pg_dir) {
        read_line(pg_dir, "conninfo", pg_conninfo, sizeof(pg_conninfo));
        read_line(pg_dir, "password", pg_password, sizeof(pg_password));
        const struct CMUnitTest pg_tests[] = {
            SHARED(setup_pg),
            cmocka_unit_test_setup_teardown(t_coalescing, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_reads_see_queue, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_sites, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_bad_conninfo, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_unreachable, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_multi_host, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_newer_version, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_migrate_v1, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_retention, setup_pg, teardown),
            cmocka_unit_test_setup_teardown(t_pg_odd_text, setup_pg, teardown),
        };
        return cmocka_run_group_tests_name("postgresql", pg_tests, NULL, NULL) ? 1 : 0;
    }
    int fails = cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);
    fails += cmocka_run_group_tests_name("memory", memory_tests, NULL, NULL);
    return fails ? 1 : 0;
}

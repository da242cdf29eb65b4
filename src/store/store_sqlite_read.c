/*
 * store_sqlite_read.c - the read side of the SQLite backend.
 *
 * Owns the reader connection's statements (s->r[], used only under rlock).
 * get/list overlay the pending and inflight changes on the committed rows:
 * the overlay is snapshotted under s->lock first and the database read
 * second, so a commit landing between the two can only make a change appear
 * twice (the overlay wins), never disappear. list() uses a key range
 * (key >= prefix AND key < prefix-with-last-byte+1), not LIKE, so it walks
 * the primary-key index and treats '_' and '%' as ordinary characters.
 *
 * The history, connection and command queries read committed rows only;
 * each first asks for a flush so that what was appended before the query is
 * included (a failing flush still leaves the committed rows to read).
 */
#include "store/store_sqlite.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

static const char *const rsql[R_COUNT] = {
    [R_GET] = "SELECT value FROM state_store WHERE key = ?1",
    [R_LIST_FROM] = "SELECT key, value FROM state_store WHERE key >= ?1 ORDER BY key",
    [R_LIST_RANGE] = "SELECT key, value FROM state_store WHERE key >= ?1 AND key < ?2"
                     " ORDER BY key",
    /* The chain of device ?2 from its head ?1 (store_sqlite_history.c);
     * m counts the rows at or after the age cutoff ?3 (ms) and stops the walk
     * at the limit ?4. */
    [R_HIST] = "WITH RECURSIVE c(id, prev, ms, ts, state, m) AS ("
               " SELECT id, prev_id, ts_ms, ts, state, ts_ms >= ?3 FROM device_state_snapshots"
               " WHERE id = ?1 AND device_id = ?2"
               " UNION ALL"
               " SELECT s.id, s.prev_id, s.ts_ms, s.ts, s.state, c.m + (s.ts_ms >= ?3) FROM c"
               " JOIN device_state_snapshots s ON s.id = c.prev"
               " WHERE s.id < c.id AND s.device_id = ?2 AND c.m < ?4)"
               " SELECT ts, state FROM c WHERE ms >= ?3 ORDER BY id DESC",
    [R_CONN] = "SELECT ts, event FROM device_connection_logs WHERE device_id = ?1"
               " ORDER BY id DESC LIMIT ?2",
    [R_CMD] = "SELECT command_id, device_id, action, params, source, status, error, created_at,"
              " completed_at FROM command_logs WHERE (?1 IS NULL OR status = ?1)"
              " AND (?2 IS NULL OR device_id = ?2) ORDER BY created_at DESC, rowid DESC"
              " LIMIT ?3",
};

wb_status store_sqlite_prepare_reads(struct sqlite_store *s, char *err, size_t errlen)
{
    for (int i = 0; i < R_COUNT; i++)
        if (sqlite3_prepare_v3(s->rdb, rsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->r[i], NULL)) {
            snprintf(err, errlen, "%s: preparing statements: %s", s->db_path,
                     sqlite3_errmsg(s->rdb));
            return WB_ERR_DB;
        }
    return WB_OK;
}

/* ---- reads ------------------------------------------------------------ */

static json_object *parse_text(const char *t)
{
    return t ? json_tokener_parse(t) : NULL;
}

/* Caller holds rlock: parses with the store's reusable tokener (NULL on a
 * syntax error, trailing bytes included, as json_tokener_parse() would). */
static json_object *parse_reusing(struct sqlite_store *s, const char *t)
{
    if (!t)
        return NULL;
    if (!s->rtok && !(s->rtok = json_tokener_new()))
        return parse_text(t);
    json_tokener_reset(s->rtok);
    json_object *v = json_tokener_parse_ex(s->rtok, t, -1);
    if (json_tokener_get_error(s->rtok) != json_tokener_success) {
        json_object_put(v);
        return NULL;
    }
    return v;
}

/* Caller holds lock. The newest pending or inflight entry for key, or NULL. */
static const struct smap_entry *overlay_find(struct sqlite_store *s, const char *key)
{
    const struct smap_entry *e = smap_find(&s->pending.kv, key);
    if (!e && s->has_inflight)
        e = smap_find(&s->inflight.kv, key);
    return e;
}

wb_status store_sqlite_get(struct state_store *base, const char *key, json_object **out)
{
    struct sqlite_store *s = S(base);
    *out = NULL;
    if (!key)
        return WB_ERR_INVALID;
    wb_lock(&s->lock);
    const struct smap_entry *e = overlay_find(s, key);
    bool found = e != NULL;
    char *text = e && e->text ? strdup(e->text) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (found) {
        if (!text)
            return WB_ERR_NOT_FOUND; /* a pending delete */
        *out = parse_text(text);
        free(text);
        return *out ? WB_OK : WB_ERR_INVALID;
    }
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[R_GET];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    wb_status ret = WB_ERR_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        *out = parse_reusing(s, (const char *)sqlite3_column_text(st, 0));
        ret = *out ? WB_OK : WB_ERR_INVALID;
    } else if (rc != SQLITE_DONE) {
        ret = store_sqlite_status(rc);
        log_warn("store: reading %s: %s", key, sqlite3_errmsg(s->rdb));
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

struct item {
    char *key, *text; /* text NULL = tombstone */
    int prio;         /* 2 pending, 1 inflight, 0 database */
};

struct items {
    struct item *v;
    size_t n, cap;
};

static wb_status items_add(struct items *it, const char *key, const char *text, int prio)
{
    if (it->n == it->cap) {
        size_t ncap = it->cap ? it->cap * 2 : 32;
        struct item *nv = realloc(it->v, ncap * sizeof(*nv));
        if (!nv)
            return WB_ERR_NOMEM;
        it->v = nv;
        it->cap = ncap;
    }
    struct item *x = &it->v[it->n];
    x->key = strdup(key);
    x->text = text ? strdup(text) : NULL;
    x->prio = prio;
    if (!x->key || (text && !x->text)) {
        free(x->key);
        free(x->text);
        return WB_ERR_NOMEM;
    }
    it->n++;
    return WB_OK;
}

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : y->prio - x->prio;
}

static wb_status overlay_collect(struct items *it, const struct smap *m, const char *prefix,
                                 size_t plen, int prio)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && strncmp(m->slots[i].key, prefix, plen) == 0 &&
            items_add(it, m->slots[i].key, m->slots[i].text, prio) != WB_OK)
            return WB_ERR_NOMEM;
    return WB_OK;
}

/* The smallest string greater than every string starting with prefix:
 * the prefix with its last byte below 0xff incremented. 0 = no bound. */
static int prefix_upper(const char *prefix, char *out, size_t outlen)
{
    size_t n = strlen(prefix);
    if (n >= outlen)
        return 0;
    memcpy(out, prefix, n + 1);
    while (n > 0 && (unsigned char)out[n - 1] == 0xff)
        out[--n] = '\0';
    if (n == 0)
        return 0;
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return 1;
}

wb_status store_sqlite_list(struct state_store *base, const char *prefix, store_list_cb cb,
                            void *ud)
{
    struct sqlite_store *s = S(base);
    struct items it = {0};
    size_t plen = strlen(prefix);
    wb_status ret = WB_OK;

    /* Overlay first, database second: see the invariants at the top. */
    wb_lock(&s->lock);
    ret = overlay_collect(&it, &s->pending.kv, prefix, plen, 2);
    if (ret == WB_OK && s->has_inflight)
        ret = overlay_collect(&it, &s->inflight.kv, prefix, plen, 1);
    pthread_mutex_unlock(&s->lock);

    char upper[1024];
    wb_lock(&s->rlock);
    sqlite3_stmt *st =
        s->r[prefix_upper(prefix, upper, sizeof(upper)) ? R_LIST_RANGE : R_LIST_FROM];
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    if (st == s->r[R_LIST_RANGE])
        sqlite3_bind_text(st, 2, upper, -1, SQLITE_STATIC);
    int rc;
    while (ret == WB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        if (k && strncmp(k, prefix, plen) == 0)
            ret = items_add(&it, k, (const char *)sqlite3_column_text(st, 1), 0);
    }
    if (ret == WB_OK && rc != SQLITE_DONE)
        ret = store_sqlite_status(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->rlock);

    if (ret == WB_OK && it.n)
        qsort(it.v, it.n, sizeof(*it.v), item_cmp);
    bool stopped = false;
    for (size_t i = 0; i < it.n; i++) {
        bool first = i == 0 || strcmp(it.v[i].key, it.v[i - 1].key) != 0;
        if (ret == WB_OK && !stopped && first && it.v[i].text) {
            json_object *v = parse_text(it.v[i].text);
            if (v)
                stopped = cb(it.v[i].key, v, ud) != 0;
            else /* written by hand or by another program (sqlite3, seed 000) */
                log_warn("store: %s: stored value is not valid JSON; skipped", it.v[i].key);
            json_object_put(v);
        }
    }
    for (size_t i = 0; i < it.n; i++) {
        free(it.v[i].key);
        free(it.v[i].text);
    }
    free(it.v);
    return ret;
}

/* ---- queries: committed rows, after a flush of what is pending ---------- */

static json_object *col_json(sqlite3_stmt *st, int i, bool parse)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    if (!t)
        return NULL;
    json_object *v = parse ? json_tokener_parse(t) : NULL;
    return v ? v : json_object_new_string(t);
}

/* Runs a prepared reader statement and builds an array of objects whose
 * member names are names[]; parse[i] says the column holds JSON text. */
static wb_status query_rows(struct sqlite_store *s, sqlite3_stmt *st, const char *const *names,
                            const bool *parse, int ncol, json_object **out)
{
    json_object *arr = json_object_new_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_object *o = json_object_new_object();
        for (int i = 0; i < ncol; i++)
            json_object_object_add(o, names[i], col_json(st, i, parse[i]));
        json_object_array_add(arr, o);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        json_object_put(arr);
        return store_sqlite_status(rc);
    }
    *out = arr;
    return WB_OK;
}

wb_status store_sqlite_history_query(struct state_store *base, const char *device_id, int limit,
                                     json_object **out)
{
    struct sqlite_store *s = S(base);
    *out = NULL;
    if (!device_id)
        return WB_ERR_INVALID;
    store_flush(base); /* a failed flush still leaves committed rows to read */
    /* Retention runs in batches; the query applies the limits exactly. */
    int64_t lim = limit > 0 ? limit : INT64_MAX;
    if (s->cfg.history_max_rows && lim > s->cfg.history_max_rows)
        lim = s->cfg.history_max_rows;
    int64_t cutoff = INT64_MIN;
    if (s->cfg.history_max_age_days)
        cutoff = util_wall_ms() - (int64_t)s->cfg.history_max_age_days * 86400000;
    static const char *const names[] = {"ts", "state"};
    static const bool parse[] = {false, true};
    wb_lock(&s->lock);
    int64_t head = store_sqlite_hist_head(s, device_id);
    pthread_mutex_unlock(&s->lock);
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[R_HIST];
    sqlite3_bind_int64(st, 1, head);
    sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cutoff);
    sqlite3_bind_int64(st, 4, lim);
    wb_status ret = query_rows(s, st, names, parse, 2, out);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

wb_status store_sqlite_connection_query(struct state_store *base, const char *device_id, int limit,
                                        json_object **out)
{
    struct sqlite_store *s = S(base);
    *out = NULL;
    if (!device_id)
        return WB_ERR_INVALID;
    store_flush(base);
    static const char *const names[] = {"ts", "event"};
    static const bool parse[] = {false, false};
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[R_CONN];
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    wb_status ret = query_rows(s, st, names, parse, 2, out);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

wb_status store_sqlite_command_query(struct state_store *base, const struct store_command_filter *f,
                                     int limit, json_object **out)
{
    struct sqlite_store *s = S(base);
    *out = NULL;
    store_flush(base);
    static const char *const names[] = {"command_id", "device_id",  "action",
                                        "params",     "source",     "status",
                                        "error",      "created_at", "completed_at"};
    static const bool parse[] = {false, false, false, true, false, false, false, false, false};
    wb_lock(&s->rlock);
    sqlite3_stmt *st = s->r[R_CMD];
    sqlite3_bind_text(st, 1, f ? f->status : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f ? f->device_id : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
    wb_status ret = query_rows(s, st, names, parse, 9, out);
    pthread_mutex_unlock(&s->rlock);
    return ret;
}

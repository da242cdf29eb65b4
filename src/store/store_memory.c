/*
 * store_memory.c - the in-memory StateStore backend (no durability).
 *
 * Owns a hash map key -> JSON text, and plain arrays for history snapshots,
 * connection events, devices and commands; all under one mutex, so every
 * function may be called from any thread. It exists for the unit tests of
 * the modules above the store and for running without a disk.
 *
 * Semantics match the SQLite backend with a commit window of zero: every
 * change is "committed" when the call returns, so status.pending is always 0,
 * each set/delete counts as one commit and one row written, committed_seq
 * equals the sequence number of the last set, and flush() has nothing to do.
 * History limits (history_max_rows per device, history_max_age_days) are
 * applied at append and query time, exactly.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_map.h"
#include "wbmb/lockstat.h"
#include "wbmb/state_store.h"
#include "wbmb/util.h"

/* One appended row: up to nine strings (history: device, state, ts;
 * connection: device, event, ts; command: the command_logs columns). */
struct mrow {
    char *f[9];
    int flag;
};

struct mrows {
    struct mrow *v;
    size_t n, cap;
};

struct memory_store {
    struct state_store base;
    struct store_config cfg;
    pthread_mutex_t lock;
    struct smap kv;
    struct mrows hist, conn, cmds, devices;
    uint64_t seq;
    struct store_status st;
};

#define M(x) ((struct memory_store *)(x))

static void row_free(struct mrow *r)
{
    for (int i = 0; i < 9; i++)
        free(r->f[i]);
}

static void rows_free(struct mrows *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        row_free(&rs->v[i]);
    free(rs->v);
}

/* Fills r with copies of n strings (NULL stays NULL). */
static wb_status row_fill(struct mrow *r, const char *const *f, int n)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < n; i++)
        if (f[i] && !(r->f[i] = strdup(f[i]))) {
            row_free(r);
            return WB_ERR_NOMEM;
        }
    return WB_OK;
}

static wb_status rows_push(struct mrows *rs, const char *const *f, int n, int flag)
{
    if (rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 16;
        struct mrow *nv = realloc(rs->v, ncap * sizeof(*nv));
        if (!nv)
            return WB_ERR_NOMEM;
        rs->v = nv;
        rs->cap = ncap;
    }
    if (row_fill(&rs->v[rs->n], f, n) != WB_OK)
        return WB_ERR_NOMEM;
    rs->v[rs->n++].flag = flag;
    return WB_OK;
}

static void rows_remove(struct mrows *rs, size_t i)
{
    row_free(&rs->v[i]);
    memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof(*rs->v));
    rs->n--;
}

/* Index of the row whose field 0 equals id, or (size_t)-1. */
static size_t rows_find(const struct mrows *rs, const char *id)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->v[i].f[0], id) == 0)
            return i;
    return (size_t)-1;
}

static void committed(struct memory_store *m, bool row)
{
    m->st.commits++;
    if (row)
        m->st.rows_written++;
    m->st.committed_seq = m->seq;
    m->st.durable_seq = m->seq; /* nothing to sync: as durable as it gets */
}

static wb_status mem_open(struct state_store **out, const struct store_config *cfg, char *err,
                          size_t errlen)
{
    struct memory_store *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return WB_ERR_NOMEM;
    m->base.ops = &store_memory_ops;
    m->cfg = *cfg;
    m->cfg.db_path = NULL; /* not used, and not ours to keep */
    m->cfg.backend = store_memory_ops.name;
    m->st.ok = true;
    pthread_mutex_init(&m->lock, NULL);
    *out = &m->base;
    return WB_OK;
}

static void mem_close(struct state_store *s)
{
    struct memory_store *m = M(s);
    smap_clear(&m->kv);
    rows_free(&m->hist);
    rows_free(&m->conn);
    rows_free(&m->cmds);
    rows_free(&m->devices);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static wb_status mem_get(struct state_store *s, const char *key, json_object **out)
{
    struct memory_store *m = M(s);
    *out = NULL;
    if (!key)
        return WB_ERR_INVALID;
    wb_lock(&m->lock);
    const struct smap_entry *e = smap_find(&m->kv, key);
    if (e && e->text)
        *out = json_tokener_parse(e->text);
    pthread_mutex_unlock(&m->lock);
    return *out ? WB_OK : WB_ERR_NOT_FOUND;
}

static wb_status mem_put(struct memory_store *m, const char *key, char *text, bool is_set)
{
    wb_lock(&m->lock);
    wb_status st = smap_put(&m->kv, key, text, 0, NULL);
    if (st == WB_OK) {
        if (is_set) {
            m->seq++;
            m->st.sets++;
        }
        committed(m, true);
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

static wb_status mem_set(struct state_store *s, const char *key, json_object *value)
{
    if (!key || !value)
        return WB_ERR_INVALID;
    char *text = strdup(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
    if (!text)
        return WB_ERR_NOMEM;
    return mem_put(M(s), key, text, true);
}

static wb_status mem_del(struct state_store *s, const char *key)
{
    if (!key)
        return WB_ERR_INVALID;
    /* A tombstone: the map never removes single entries. */
    return mem_put(M(s), key, NULL, false);
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static wb_status mem_list(struct state_store *s, const char *prefix, store_list_cb cb, void *ud)
{
    struct memory_store *m = M(s);
    size_t plen = strlen(prefix), n = 0;
    wb_status st = WB_OK;
    /* Copy key and text under the lock, call back without it: a callback may
     * use the store. keys[2i] = key, keys[2i+1] = text. */
    wb_lock(&m->lock);
    char **kv = calloc(m->kv.count * 2 + 1, sizeof(*kv));
    for (size_t i = 0; kv && i < m->kv.cap; i++) {
        const struct smap_entry *e = &m->kv.slots[i];
        if (!e->key || !e->text || strncmp(e->key, prefix, plen) != 0)
            continue;
        kv[2 * n] = strdup(e->key);
        kv[2 * n + 1] = strdup(e->text);
        n++;
    }
    pthread_mutex_unlock(&m->lock);
    if (!kv)
        return WB_ERR_NOMEM;
    qsort(kv, n, 2 * sizeof(*kv), key_cmp);
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        if (!kv[2 * i] || !kv[2 * i + 1])
            st = WB_ERR_NOMEM;
        if (!stop && st == WB_OK) {
            json_object *v = json_tokener_parse(kv[2 * i + 1]);
            if (v)
                stop = cb(kv[2 * i], v, ud) != 0;
            json_object_put(v);
        }
        free(kv[2 * i]);
        free(kv[2 * i + 1]);
    }
    free(kv);
    return st;
}

static wb_status mem_flush(struct state_store *s)
{
    return WB_OK;
}

static void age_cutoff(const struct memory_store *m, char out[UTIL_TS_LEN])
{
    out[0] = '\0';
    if (m->cfg.history_max_age_days)
        util_iso8601_from_ms(util_wall_ms() - (int64_t)m->cfg.history_max_age_days * 86400000, out);
}

static wb_status mem_history_append(struct state_store *s, const char *device_id,
                                    json_object *state, const char *ts)
{
    struct memory_store *m = M(s);
    if (!m->cfg.history_enabled)
        return WB_OK;
    if (!device_id || !state)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN], cutoff[UTIL_TS_LEN];
    if (!ts) {
        util_iso8601_now(now);
        ts = now;
    }
    const char *f[] = {device_id, json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN),
                       ts};
    wb_lock(&m->lock);
    wb_status st = rows_push(&m->hist, f, 3, 0);
    if (st == WB_OK) {
        committed(m, false);
        /* Apply the limits now: drop this device's oldest rows. */
        size_t count = 0;
        for (size_t i = 0; i < m->hist.n; i++)
            count += strcmp(m->hist.v[i].f[0], device_id) == 0;
        age_cutoff(m, cutoff);
        for (size_t i = 0; i < m->hist.n;) {
            struct mrow *r = &m->hist.v[i];
            bool mine = strcmp(r->f[0], device_id) == 0;
            bool over = m->cfg.history_max_rows && count > m->cfg.history_max_rows;
            if (mine && (over || strcmp(r->f[2], cutoff) < 0)) {
                rows_remove(&m->hist, i);
                count--;
            } else {
                i++;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

/* Builds [{names[0]: f[a], names[1]: f[b]}] of rows matching device (field
 * 0), newest first. */
static json_object *pairs_query(const struct mrows *rs, const char *device_id, int limit,
                                const char *cutoff, const char *n1, const char *n2, bool parse2)
{
    json_object *arr = json_object_new_array();
    for (size_t i = rs->n; i-- > 0;) {
        const struct mrow *r = &rs->v[i];
        if (strcmp(r->f[0], device_id) != 0 || (cutoff && strcmp(r->f[2], cutoff) < 0))
            continue;
        if (limit > 0 && (int)json_object_array_length(arr) >= limit)
            break;
        json_object *o = json_object_new_object();
        json_object_object_add(o, n1, json_object_new_string(r->f[2]));
        json_object_object_add(
            o, n2, parse2 ? json_tokener_parse(r->f[1]) : json_object_new_string(r->f[1]));
        json_object_array_add(arr, o);
    }
    return arr;
}

static wb_status mem_history_query(struct state_store *s, const char *device_id, int limit,
                                   json_object **out)
{
    struct memory_store *m = M(s);
    *out = NULL;
    if (!device_id)
        return WB_ERR_INVALID;
    char cutoff[UTIL_TS_LEN];
    wb_lock(&m->lock);
    age_cutoff(m, cutoff);
    *out = pairs_query(&m->hist, device_id, limit, cutoff, "ts", "state", true);
    pthread_mutex_unlock(&m->lock);
    return WB_OK;
}

static wb_status mem_connection_append(struct state_store *s, const char *device_id,
                                       const char *event, const char *ts)
{
    struct memory_store *m = M(s);
    if (!device_id || !event)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    if (!ts) {
        util_iso8601_now(now);
        ts = now;
    }
    const char *f[] = {device_id, event, ts};
    wb_lock(&m->lock);
    wb_status st = rows_push(&m->conn, f, 3, 0);
    if (st == WB_OK)
        committed(m, false);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static wb_status mem_connection_query(struct state_store *s, const char *device_id, int limit,
                                      json_object **out)
{
    struct memory_store *m = M(s);
    *out = NULL;
    if (!device_id)
        return WB_ERR_INVALID;
    wb_lock(&m->lock);
    *out = pairs_query(&m->conn, device_id, limit, NULL, "ts", "event", false);
    pthread_mutex_unlock(&m->lock);
    return WB_OK;
}

/* Replaces row i's strings by f[], keeping the old value where keep[k] is
 * set and f[k] is NULL (the COALESCE of the SQLite upserts). */
static wb_status row_update(struct mrow *r, const char *const *f, int n, const bool *keep)
{
    struct mrow nr;
    const char *merged[9];
    for (int k = 0; k < n; k++)
        merged[k] = (!f[k] && keep[k]) ? r->f[k] : f[k];
    if (row_fill(&nr, merged, n) != WB_OK)
        return WB_ERR_NOMEM;
    nr.flag = r->flag;
    row_free(r);
    *r = nr;
    return WB_OK;
}

static wb_status mem_device_upsert(struct state_store *s, const struct store_device_row *d)
{
    struct memory_store *m = M(s);
    if (!d || !d->device_id)
        return WB_ERR_INVALID;
    const char *f[] = {d->device_id, d->device_type, d->name, d->last_seen, d->connected_at};
    static const bool keep[] = {false, false, false, true, true};
    wb_lock(&m->lock);
    size_t i = rows_find(&m->devices, d->device_id);
    wb_status st = i == (size_t)-1 ? rows_push(&m->devices, f, 5, d->is_online)
                                   : row_update(&m->devices.v[i], f, 5, keep);
    if (st == WB_OK && i != (size_t)-1)
        m->devices.v[i].flag = d->is_online;
    if (st == WB_OK)
        committed(m, false);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static wb_status mem_command_put(struct state_store *s, const struct store_command_row *c)
{
    struct memory_store *m = M(s);
    if (!c || !c->command_id)
        return WB_ERR_INVALID;
    char now[UTIL_TS_LEN];
    util_iso8601_now(now);
    const char *f[] = {c->command_id,  c->device_id, c->action, c->params,
                       c->source,      c->status,    c->error,  c->created_at ? c->created_at : now,
                       c->completed_at};
    /* Like the SQLite upsert: created_at is kept, identity columns coalesce. */
    static const bool keep[] = {false, true, true, true, true, false, false, true, false};
    wb_lock(&m->lock);
    size_t i = rows_find(&m->cmds, c->command_id);
    wb_status st = WB_OK;
    if (i == (size_t)-1) {
        st = rows_push(&m->cmds, f, 9, 0);
    } else {
        f[7] = NULL; /* keep the original created_at */
        st = row_update(&m->cmds.v[i], f, 9, keep);
    }
    if (st == WB_OK)
        committed(m, false);
    pthread_mutex_unlock(&m->lock);
    return st;
}

static wb_status mem_command_query(struct state_store *s, const struct store_command_filter *f,
                                   int limit, json_object **out)
{
    static const char *const names[] = {"command_id", "device_id",  "action",
                                        "params",     "source",     "status",
                                        "error",      "created_at", "completed_at"};
    struct memory_store *m = M(s);
    wb_lock(&m->lock);
    /* Newest first by created_at, then by insertion (the rowid order). */
    size_t *idx = malloc((m->cmds.n + 1) * sizeof(*idx));
    size_t n = 0;
    for (size_t i = m->cmds.n; idx && i-- > 0;) {
        const struct mrow *r = &m->cmds.v[i];
        if (f && f->status && (!r->f[5] || strcmp(f->status, r->f[5]) != 0))
            continue;
        if (f && f->device_id && (!r->f[1] || strcmp(f->device_id, r->f[1]) != 0))
            continue;
        /* Insertion sort by created_at descending; stable for equal stamps. */
        size_t j = n++;
        while (j > 0 && strcmp(m->cmds.v[idx[j - 1]].f[7], r->f[7]) < 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    json_object *arr = json_object_new_array();
    for (size_t k = 0; idx && k < n && (limit <= 0 || (int)k < limit); k++) {
        const struct mrow *r = &m->cmds.v[idx[k]];
        json_object *o = json_object_new_object();
        for (int c = 0; c < 9; c++) {
            json_object *v = NULL;
            if (r->f[c] && c == 3)
                v = json_tokener_parse(r->f[c]);
            if (r->f[c] && !v)
                v = json_object_new_string(r->f[c]);
            json_object_object_add(o, names[c], v);
        }
        json_object_array_add(arr, o);
    }
    pthread_mutex_unlock(&m->lock);
    free(idx);
    *out = arr;
    return idx ? WB_OK : WB_ERR_NOMEM;
}

static void mem_get_status(struct state_store *s, struct store_status *out)
{
    struct memory_store *m = M(s);
    wb_lock(&m->lock);
    *out = m->st;
    out->pending = 0;
    pthread_mutex_unlock(&m->lock);
}

const struct store_ops store_memory_ops = {
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .set = mem_set,
    .del = mem_del,
    .list = mem_list,
    .flush = mem_flush,
    .history_append = mem_history_append,
    .history_query = mem_history_query,
    .connection_append = mem_connection_append,
    .connection_query = mem_connection_query,
    .device_upsert = mem_device_upsert,
    .command_put = mem_command_put,
    .command_query = mem_command_query,
    .get_status = mem_get_status,
};

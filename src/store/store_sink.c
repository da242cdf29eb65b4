/*
 * store_sink.c - the store writer as a sink (see store_sink.h).
 *
 * A transition's stored state is written as JSON text straight from the
 * device manager's field array into a reusable buffer (no json-c object
 * per transition): the same bytes json-c would write
 * (JSON_C_TO_STRING_PLAIN), so stored text does not depend on the path.
 *
 * The history policy (config.h, struct cfg_history) decides the history
 * row of a transition: mode all with no field selection is the hot path of
 * old (one store_transition() carries the state and its row); otherwise the
 * state is written alone and the row, restricted to the recorded fields,
 * goes separately: at once (all), into the device's open interval
 * (interval, store_sink_hist.c; closed by the tick, at EV_STOPPING and at
 * a reload), or nowhere (off). A transition that changed no recorded field
 * writes no row; the state is written whatever the policy.
 */
#include "wbmb/store_sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sink_hist.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

#define ROWS_PER_FLUSH 1024 /* devices rows queued at start-up before a flush */
#define SCENARIO_KEY "scenario:last"

struct store_sink {
    struct sink base; /* first: the sink */
    struct state_store *store;
    const struct config *cfg;
    uint64_t errors;
    size_t rows_queued; /* devices rows since the last flush of a start-up */
    char key[256];      /* "device:<id>" scratch */
    char *json;         /* persisted-state text scratch (grows, reused) */
    size_t json_cap;
    char *hjson; /* recorded-state text scratch (policy with a field selection) */
    size_t hjson_cap;
    struct store_shist *intervals; /* open intervals of mode interval */
};

static const struct sink_ops store_sink_ops;

static struct store_sink *self(struct sink *s)
{
    return (struct store_sink *)s;
}

struct sink *store_sink_create(struct state_store *store, const struct config *cfg)
{
    struct store_sink *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base.ops = &store_sink_ops;
    t->store = store;
    t->cfg = cfg;
    if (!(t->intervals = store_shist_create(store))) {
        free(t);
        return NULL;
    }
    return &t->base;
}

uint64_t store_sink_errors(const struct sink *s)
{
    return s ? ((const struct store_sink *)s)->errors : 0;
}

static void destroy(struct sink *s)
{
    if (!s)
        return;
    store_shist_destroy(self(s)->intervals);
    free(self(s)->json);
    free(self(s)->hjson);
    free(s);
}

/* ---- persisted state as JSON text ---------------------------------------- */

struct jbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void jb_put(struct jbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + len + 1)
            nc *= 2;
        char *g = realloc(b->p, nc);
        if (!g) {
            b->oom = true;
            return;
        }
        b->p = g;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

/* A JSON string as json-c writes it (JSON_C_TO_STRING_PLAIN): the same
 * escapes, '/' included. */
static void jb_string(struct jbuf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    jb_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '\b':
            esc = "\\b";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '/':
            esc = "\\/";
            break;
        default:
            if (c < ' ') {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 0xf];
                u[6] = '\0';
                esc = u;
            }
        }
        if (!esc)
            continue;
        jb_put(b, s + start, i - start);
        jb_put(b, esc, strlen(esc));
        start = i + 1;
    }
    jb_put(b, s + start, len - start);
    jb_put(b, "\"", 1);
}

static void jb_value(struct jbuf *b, json_object *v)
{
    char num[UTIL_I64_LEN];
    switch (json_object_get_type(v)) {
    case json_type_int:
        jb_put(b, num, util_format_i64(json_object_get_int64(v), num));
        break;
    case json_type_boolean:
        if (json_object_get_boolean(v))
            jb_put(b, "true", 4);
        else
            jb_put(b, "false", 5);
        break;
    case json_type_string:
        jb_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_null:
        jb_put(b, "null", 4);
        break;
    default: { /* double (json-c keeps the text it was parsed from), object, array */
        size_t len = 0;
        const char *t = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
        jb_put(b, t, len);
    }
    }
}

/* The persisted state of d (p: only the fields p records) as JSON text in
 * the scratch buffer *buf (valid until the next call); NULL when out of
 * memory. */
static const char *state_json(char **buf, size_t *cap, const struct sink_device *d,
                              const struct cfg_history *p)
{
    struct jbuf b = {*buf, 0, *cap, false};
    bool first = true;
    jb_put(&b, "{", 1);
    for (size_t i = 0; i < d->n_f; i++) {
        if (d->f[i].transient || (p && !cfg_history_records(p, d->f[i].name)))
            continue;
        if (!first)
            jb_put(&b, ",", 1);
        first = false;
        jb_string(&b, d->f[i].name, strlen(d->f[i].name));
        jb_put(&b, ":", 1);
        jb_value(&b, d->f[i].v);
    }
    jb_put(&b, "}", 1);
    *buf = b.p;
    *cap = b.cap;
    return b.oom ? NULL : b.p;
}

static const char *persisted_json(struct store_sink *t, const struct sink_device *d)
{
    return state_json(&t->json, &t->json_cap, d, NULL);
}

/* ---- events -------------------------------------------------------------- */

static void device_row(struct store_sink *t, const struct sink_device *d, const char *last_seen)
{
    char connected_at[UTIL_TS_LEN];
    if (d->connected_ms)
        util_iso8601_from_ms(d->connected_ms, connected_at);
    struct store_device_row row = {
        .device_id = d->cfg->id,
        .device_type = d->cfg->type,
        .name = d->cfg->name,
        .is_online = d->online,
        .last_seen = last_seen,
        .connected_at = d->connected_ms ? connected_at : NULL,
    };
    if (store_device_upsert(t->store, &row) != WB_OK)
        t->errors++;
}

static bool same_str(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void fields(struct store_sink *t, const struct event *ev)
{
    if (!ev->u.fields.persisted)
        return;
    const struct sink_device *d = ev->dev;
    util_join(t->key, sizeof(t->key), "device", ":", d->cfg->id);
    const char *json = persisted_json(t, d);
    struct cfg_history p;
    cfg_history_policy(t->cfg, d->cfg, &p);
    bool plain = p.mode == CFG_HIST_ALL && !p.fields && !p.n_exclude;
    if (!json || plain) {
        /* The hot path: one text for the state and its row. */
        if (!json || store_transition(t->store, t->key, d->cfg->id, json, true) != WB_OK)
            t->errors++;
        return;
    }
    bool recorded = false;
    for (size_t i = 0; p.mode != CFG_HIST_OFF && !recorded && i < ev->u.fields.n; i++) {
        const struct dev_field *f = &d->f[ev->u.fields.c[i].index];
        recorded = !f->transient && cfg_history_records(&p, f->name);
    }
    const char *hjson = recorded ? state_json(&t->hjson, &t->hjson_cap, d, &p) : NULL;
    if (recorded && !hjson) {
        t->errors++;
        return;
    }
    /* mode all: the row goes with the state, in one commit; interval: the
     * state now, the row when the interval closes; off, or no recorded field
     * changed: the state alone. */
    struct store_history_entry e = {.device_id = d->cfg->id, .state = hjson};
    bool row_now = recorded && p.mode == CFG_HIST_ALL;
    if (store_transition_with(t->store, t->key, json, row_now ? &e : NULL) != WB_OK)
        t->errors++;
    else if (recorded && p.mode == CFG_HIST_INTERVAL &&
             store_shist_add(t->intervals, &p, d, hjson, util_wall_ms()) != WB_OK)
        t->errors++;
}

static int64_t tick(struct sink *s, const struct sink_view *view, int64_t now_ms, bool light)
{
    (void)view;
    (void)light; /* closing the due intervals is a few store appends */
    struct store_sink *t = self(s);
    int64_t due = store_shist_due(t->intervals);
    if (due == INT64_MAX)
        return INT64_MAX;
    int64_t wall = util_wall_ms();
    if (wall >= due) {
        t->errors += store_shist_close(t->intervals, wall, false);
        due = store_shist_due(t->intervals);
        if (due == INT64_MAX)
            return INT64_MAX;
    }
    return now_ms + (due - wall);
}

static void command(struct store_sink *t, const struct ev_command *c)
{
    if (!c->command_id)
        return;
    struct store_command_row row = {
        .command_id = c->command_id,
        .device_id = c->device_id,
        .action = c->action,
        .params = c->params,
        .source = c->source,
        .status = c->status,
        .error = c->error,
        .created_at = c->created_at,
        .completed_at = c->completed_at,
    };
    if (store_command_put(t->store, &row) != WB_OK) {
        t->errors++;
        log_warn("command %s: could not queue its command_logs row", c->command_id);
    }
}

static void on_event(struct sink *s, const struct event *ev, const struct sink_view *view)
{
    (void)view;
    struct store_sink *t = self(s);
    switch (ev->kind) {
    case EV_DEVICE_ADDED:
        /* In chunks: all 10 000 rows of a start-up queued at once held ~1.2 MB
         * of copies at the memory peak (massif). A flush that fails (disk)
         * leaves them pending; the store reports it. */
        device_row(t, ev->dev, NULL);
        if (++t->rows_queued % ROWS_PER_FLUSH == 0)
            (void)store_flush(t->store);
        break;
    case EV_DEVICE_CHANGED:
        if (!same_str(ev->u.changed.old_cfg->name, ev->dev->cfg->name) ||
            !same_str(ev->u.changed.old_cfg->type, ev->dev->cfg->type))
            device_row(t, ev->dev, NULL);
        break;
    case EV_DEVICES_DONE:
        /* Indexes and policies change: the open intervals are written out. */
        t->errors += store_shist_close(t->intervals, util_wall_ms(), true);
        t->cfg = ev->u.done.cfg;
        t->rows_queued = 0;
        break;
    case EV_FIELDS:
        fields(t, ev);
        break;
    case EV_AVAILABILITY:
        if (store_connection_append(t->store, ev->dev->cfg->id, ev->u.availability.why,
                                    ev->u.availability.ts) != WB_OK)
            t->errors++;
        device_row(t, ev->dev, ev->u.availability.ts);
        break;
    case EV_SCENARIO:
        if (ev->u.scenario.stored)
            break;
        if (store_set(t->store, SCENARIO_KEY, ev->u.scenario.last) != WB_OK ||
            store_flush(t->store) != WB_OK) {
            t->errors++;
            log_warn("scenario: %s is kept in memory; the store will retry writing it",
                     SCENARIO_KEY);
        }
        break;
    case EV_COMMAND:
        command(t, &ev->u.command);
        break;
    case EV_STOPPING:
        /* SIGTERM loses no interval: its row goes with the store's flush. */
        t->errors += store_shist_close(t->intervals, util_wall_ms(), true);
        break;
    case EV_DEVICE_REMOVED:
    case EV_LINK_UP:
    case EV_LINK_DOWN:
        break; /* a removed device's rows stay: its history is still served */
    }
}

static const struct sink_ops store_sink_ops = {
    .name = "store",
    .event = on_event,
    .tick = tick,
    .destroy = destroy,
};

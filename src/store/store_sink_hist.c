/*
 * store_sink_hist.c - the interval mode of the history policy (see
 * store_sink_hist.h): one aggregate per device, indexed by the device
 * manager's index, emptied at every EV_DEVICES_DONE (the store sink closes
 * them all first, so a reload loses no interval).
 */
#include "store/store_sink_hist.h"

#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/util.h"

struct hstat {
    char *name;
    double min, max, sum;
    uint64_t n;
};

struct hagg {
    char *device_id; /* NULL: slot never used */
    bool open;
    int64_t end_ms;
    char *json; /* the latest recorded state of the interval */
    size_t json_cap;
    struct hstat *st;
    size_t n_st, cap_st;
};

struct store_shist {
    struct state_store *store;
    struct hagg *a;
    size_t n;
    int64_t due; /* earliest end of an open interval, INT64_MAX none */
};

struct store_shist *store_shist_create(struct state_store *store)
{
    struct store_shist *h = calloc(1, sizeof(*h));
    if (h) {
        h->store = store;
        h->due = INT64_MAX;
    }
    return h;
}

static void agg_free(struct hagg *a)
{
    free(a->device_id);
    free(a->json);
    for (size_t i = 0; i < a->n_st; i++)
        free(a->st[i].name);
    free(a->st);
    memset(a, 0, sizeof(*a));
}

void store_shist_destroy(struct store_shist *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        agg_free(&h->a[i]);
    free(h->a);
    free(h);
}

/* The stats of an interval as JSON text (a new string), NULL when it has
 * no numeric field (or out of memory). */
static char *stats_text(const struct hagg *a)
{
    if (!a->n_st)
        return NULL;
    json_object *o = json_object_new_object();
    for (size_t i = 0; o && i < a->n_st; i++) {
        const struct hstat *s = &a->st[i];
        json_object *f = json_object_new_object();
        json_object_object_add(f, "min", json_object_new_double(s->min));
        json_object_object_add(f, "max", json_object_new_double(s->max));
        json_object_object_add(f, "mean", json_object_new_double(s->sum / (double)s->n));
        json_object_object_add(f, "n", json_object_new_int64((int64_t)s->n));
        json_object_object_add(o, s->name, f);
    }
    char *t = o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) : NULL;
    json_object_put(o);
    return t;
}

/* Writes a's row and closes it; false when the store refused it. */
static bool agg_close(struct store_shist *h, struct hagg *a, int64_t wall_ms)
{
    char *stats = stats_text(a);
    /* Dated when it is written (not at its last transition): rows keep ts
     * growing with id, which retention and time-range reads rely on. */
    struct store_history_entry e = {
        .device_id = a->device_id,
        .state = a->json,
        .ms = wall_ms,
        .kind = "interval",
        .stats = stats,
    };
    wb_status st = store_history_put(h->store, &e);
    free(stats);
    a->open = false;
    for (size_t i = 0; i < a->n_st; i++)
        free(a->st[i].name);
    a->n_st = 0;
    return st == WB_OK;
}

static void recompute_due(struct store_shist *h)
{
    h->due = INT64_MAX;
    for (size_t i = 0; i < h->n; i++)
        if (h->a[i].open && h->a[i].end_ms < h->due)
            h->due = h->a[i].end_ms;
}

unsigned store_shist_close(struct store_shist *h, int64_t wall_ms, bool all)
{
    unsigned failed = 0;
    if (!h || (!all && wall_ms < h->due))
        return 0;
    for (size_t i = 0; i < h->n; i++) {
        struct hagg *a = &h->a[i];
        if (a->open && (all || wall_ms >= a->end_ms))
            failed += !agg_close(h, a, wall_ms);
    }
    if (all) {
        for (size_t i = 0; i < h->n; i++)
            agg_free(&h->a[i]);
        h->n = 0;
    }
    recompute_due(h);
    return failed;
}

int64_t store_shist_due(const struct store_shist *h)
{
    return h ? h->due : INT64_MAX;
}

static struct hagg *slot(struct store_shist *h, uint32_t index)
{
    if (index >= h->n) {
        size_t nn = index + 1 < 2 * h->n ? 2 * h->n : (size_t)index + 1;
        struct hagg *na = realloc(h->a, nn * sizeof(*na));
        if (!na)
            return NULL;
        memset(na + h->n, 0, (nn - h->n) * sizeof(*na));
        h->a = na;
        h->n = nn;
    }
    return &h->a[index];
}

static struct hstat *stat_of(struct hagg *a, const char *name)
{
    for (size_t i = 0; i < a->n_st; i++)
        if (strcmp(a->st[i].name, name) == 0)
            return &a->st[i];
    if (a->n_st == a->cap_st) {
        size_t nc = a->cap_st ? a->cap_st * 2 : 4;
        struct hstat *ns = realloc(a->st, nc * sizeof(*ns));
        if (!ns)
            return NULL;
        a->st = ns;
        a->cap_st = nc;
    }
    struct hstat *s = &a->st[a->n_st];
    *s = (struct hstat){.name = strdup(name)};
    if (!s->name)
        return NULL;
    a->n_st++;
    return s;
}

wb_status store_shist_add(struct store_shist *h, const struct cfg_history *p,
                          const struct sink_device *d, const char *json, int64_t wall_ms)
{
    struct hagg *a = slot(h, d->index);
    if (!a)
        return WB_ERR_NOMEM;
    if (a->device_id && strcmp(a->device_id, d->cfg->id) != 0)
        agg_free(a); /* cannot happen between two EV_DEVICES_DONE; be safe */
    if (!a->device_id && !(a->device_id = strdup(d->cfg->id)))
        return WB_ERR_NOMEM;
    wb_status ret = WB_OK;
    if (a->open && wall_ms >= a->end_ms) {
        if (!agg_close(h, a, wall_ms))
            ret = WB_ERR_DB;
        recompute_due(h);
    }
    if (!a->open) {
        int64_t iv = p->interval_ms ? (int64_t)p->interval_ms : 60000;
        a->end_ms = wall_ms - wall_ms % iv + iv;
        a->open = true;
    }
    size_t len = strlen(json) + 1;
    if (len > a->json_cap) {
        char *nj = realloc(a->json, len);
        if (!nj)
            return WB_ERR_NOMEM;
        a->json = nj;
        a->json_cap = len;
    }
    memcpy(a->json, json, len);
    for (size_t i = 0; i < d->n_f; i++) {
        const struct dev_field *f = &d->f[i];
        json_type ty = json_object_get_type(f->v);
        if (f->transient || (ty != json_type_int && ty != json_type_double) ||
            !cfg_history_records(p, f->name))
            continue;
        double x = json_object_get_double(f->v);
        if (!isfinite(x))
            continue; /* 1e999 parses as inf: no JSON number can say it */
        struct hstat *s = stat_of(a, f->name);
        if (!s)
            return WB_ERR_NOMEM;
        if (s->n == 0 || x < s->min)
            s->min = x;
        if (s->n == 0 || x > s->max)
            s->max = x;
        s->sum += x;
        s->n++;
    }
    if (a->end_ms < h->due)
        h->due = a->end_ms;
    return ret;
}

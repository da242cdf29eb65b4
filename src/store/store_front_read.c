/*
 * store_front_read.c - the reads of the StateStore (state_store.h) over a
 * backend and the writer's queue.
 *
 * get/list overlay the pending and in-flight changes on the committed
 * rows: the overlay is snapshotted first and the backend read second, so a
 * commit landing between the two can only make a change appear twice (the
 * overlay wins), never disappear.
 *
 * The history, connection and command queries are store_front_rows.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_front.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

wb_status store_get(struct state_store *s, const char *key, json_object **out)
{
    struct state_store *f = s;
    *out = NULL;
    if (!key)
        return WB_ERR_INVALID;
    char *text = NULL;
    int found = f->w ? store_writer_peek(f->w, key, &text) : 0;
    if (found < 0)
        return WB_ERR_NOMEM;
    if (!found) {
        wb_status st = f->b->ops->get(f->b, key, &text);
        if (st != WB_OK)
            return st;
    }
    if (!text)
        return WB_ERR_NOT_FOUND; /* a pending delete */
    *out = json_tokener_parse(text);
    free(text);
    return *out ? WB_OK : WB_ERR_INVALID;
}

struct item {
    char *key, *text; /* text NULL = tombstone */
    int prio;         /* 2 pending, 1 inflight, 0 database */
};

struct items {
    struct item *v;
    size_t n, cap;
    size_t plen;
    const char *prefix;
};

static int items_add(const char *key, const char *text, int prio, void *ud)
{
    struct items *it = ud;
    if (it->n == it->cap) {
        size_t ncap = it->cap ? it->cap * 2 : 32;
        struct item *nv = realloc(it->v, ncap * sizeof(*nv));
        if (!nv)
            return 1;
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
        return 1;
    }
    it->n++;
    return 0;
}

static int scan_add(const char *key, const char *text, void *ud)
{
    struct items *it = ud;
    if (strncmp(key, it->prefix, it->plen) != 0)
        return 0;
    return items_add(key, text, 0, ud) ? -1 : 0;
}

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : y->prio - x->prio;
}

wb_status store_list(struct state_store *s, const char *prefix, store_list_cb cb, void *ud)
{
    struct state_store *f = s;
    if (!prefix)
        prefix = "";
    struct items it = {.prefix = prefix, .plen = strlen(prefix)};
    wb_status ret = WB_OK;

    /* Overlay first, database second: see the top of the file. */
    if (f->w && store_writer_each_key(f->w, prefix, items_add, &it))
        ret = WB_ERR_NOMEM;
    if (ret == WB_OK)
        ret = f->b->ops->scan(f->b, prefix, scan_add, &it);

    if (ret == WB_OK && it.n)
        qsort(it.v, it.n, sizeof(*it.v), item_cmp);
    /* One parser for the whole list: json_tokener_parse() allocates and
     * frees a tokener per call, ~9 % of a 10 000-device restore. */
    json_tokener *tok = json_tokener_new();
    bool stopped = false;
    for (size_t i = 0; i < it.n; i++) {
        bool first = i == 0 || strcmp(it.v[i].key, it.v[i - 1].key) != 0;
        if (ret == WB_OK && !stopped && first && it.v[i].text) {
            json_object *v = NULL;
            if (tok) {
                json_tokener_reset(tok);
                v = json_tokener_parse_ex(tok, it.v[i].text, -1);
                if (json_tokener_get_error(tok) != json_tokener_success) {
                    json_object_put(v);
                    v = NULL;
                }
            } else {
                v = json_tokener_parse(it.v[i].text);
            }
            if (v)
                stopped = cb(it.v[i].key, v, ud) != 0;
            else /* written by hand or by another program (sqlite3, seed 000) */
                log_warn("store: %s: stored value is not valid JSON; skipped", it.v[i].key);
            json_object_put(v);
        }
    }
    if (tok)
        json_tokener_free(tok);
    for (size_t i = 0; i < it.n; i++) {
        free(it.v[i].key);
        free(it.v[i].text);
    }
    free(it.v);
    return ret;
}

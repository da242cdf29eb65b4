/*
 * store_writer_read.c - the overlay of the writer's queue for readers
 * (store_writer.h): the newest queued value of a key, the queued keys of a
 * prefix, and the queued rows of a row query, read under the writer's lock
 * (and, for rows, its gate; see store_writer.c).
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_writer_int.h"
#include "wbmb/lockstat.h"

/* ---- the overlay ---------------------------------------------------------- */

int store_writer_peek(struct store_writer *w, const char *key, char **text)
{
    *text = NULL;
    wb_lock(&w->lock);
    const struct smap_entry *e = smap_find(&w->pending.kv, key);
    if (!e && w->has_inflight)
        e = smap_find(&w->inflight.kv, key);
    int found = e != NULL;
    if (e && e->text && !(*text = strdup(e->text)))
        found = -1;
    pthread_mutex_unlock(&w->lock);
    return found;
}

static int each_in(const struct smap *m, const char *prefix, size_t plen, int prio,
                   int (*cb)(const char *, const char *, int, void *), void *ud)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && strncmp(m->slots[i].key, prefix, plen) == 0) {
            int r = cb(m->slots[i].key, m->slots[i].text, prio, ud);
            if (r)
                return r;
        }
    return 0;
}

int store_writer_each_key(struct store_writer *w, const char *prefix,
                          int (*cb)(const char *key, const char *text, int prio, void *ud),
                          void *ud)
{
    size_t plen = strlen(prefix);
    wb_lock(&w->lock);
    int r = each_in(&w->pending.kv, prefix, plen, 2, cb, ud);
    if (!r && w->has_inflight)
        r = each_in(&w->inflight.kv, prefix, plen, 1, cb, ud);
    pthread_mutex_unlock(&w->lock);
    return r;
}

/* Calls cb for the ops of the list from head, newest (last) first. */
static wb_status ops_newest_first(const struct store_op *o,
                                  wb_status (*cb)(const struct store_op *, void *), void *ud)
{
    if (!o)
        return WB_OK;
    /* Recursion depth is the queue length: walk into an array instead. */
    size_t n = 0;
    for (const struct store_op *p = o; p; p = p->next)
        n++;
    const struct store_op **v = malloc(n * sizeof(*v));
    if (!v)
        return WB_ERR_NOMEM;
    n = 0;
    for (const struct store_op *p = o; p; p = p->next)
        v[n++] = p;
    wb_status st = WB_OK;
    while (st == WB_OK && n-- > 0)
        st = cb(v[n], ud);
    free(v);
    return st;
}

wb_status store_writer_read_rows(struct store_writer *w, wb_status (*rows_cb)(void *ud),
                                 wb_status (*op_cb)(const struct store_op *op, void *ud), void *ud)
{
    wb_lock(&w->gate);
    /* With the gate held no batch moves into the database: the queued rows
     * seen below and the committed rows read by rows_cb never overlap. */
    wb_lock(&w->lock);
    wb_status st = ops_newest_first(w->pending.head, op_cb, ud);
    if (st == WB_OK && w->has_inflight)
        st = ops_newest_first(w->inflight.head, op_cb, ud);
    pthread_mutex_unlock(&w->lock);
    if (st == WB_OK)
        st = rows_cb(ud);
    pthread_mutex_unlock(&w->gate);
    return st;
}

/*
 * store_map.c - open-addressing string hash map (see store_map.h).
 *
 * Invariants: cap is 0 or a power of two; count <= cap * 3 / 4 so a probe
 * always ends at a free slot; entries are never removed one by one (the
 * backends only add, overwrite and clear), so no deletion markers exist.
 */
#include "store/store_map.h"

#include <stdlib.h>
#include <string.h>

#include "wbmb/util.h"

void smap_clear(struct smap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        free(m->slots[i].text);
    }
    free(m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

static struct smap_entry *probe(struct smap_entry *slots, size_t cap, const char *key, uint32_t h)
{
    size_t mask = cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct smap_entry *e = &slots[i];
        if (!e->key || (e->hash == h && strcmp(e->key, key) == 0))
            return e;
    }
}

struct smap_entry *smap_find(const struct smap *m, const char *key)
{
    if (m->count == 0)
        return NULL;
    struct smap_entry *e = probe(m->slots, m->cap, key, util_hash_str(key));
    return e->key ? e : NULL;
}

static wb_status grow(struct smap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct smap_entry *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return WB_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            *probe(ns, ncap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return WB_OK;
}

wb_status smap_put(struct smap *m, const char *key, char *text, uint64_t num, int *created)
{
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != WB_OK) {
        free(text);
        return WB_ERR_NOMEM;
    }
    uint32_t h = util_hash_str(key);
    struct smap_entry *e = probe(m->slots, m->cap, key, h);
    if (created)
        *created = e->key == NULL;
    if (!e->key) {
        e->key = strdup(key);
        if (!e->key) {
            free(text);
            return WB_ERR_NOMEM;
        }
        e->hash = h;
        m->count++;
    } else {
        free(e->text);
    }
    e->text = text;
    e->num = num;
    return WB_OK;
}

wb_status smap_merge_older(struct smap *dst, struct smap *src)
{
    /* Reserve room first so a failure leaves both maps intact. */
    while ((dst->count + src->count) * 4 > dst->cap * 3)
        if (grow(dst) != WB_OK)
            return WB_ERR_NOMEM;
    for (size_t i = 0; i < src->cap; i++) {
        struct smap_entry *e = &src->slots[i];
        if (!e->key || smap_find(dst, e->key))
            continue;
        /* Move the entry: no copy of key or text is needed. */
        *probe(dst->slots, dst->cap, e->key, e->hash) = *e;
        dst->count++;
        e->key = NULL;
        e->text = NULL;
    }
    smap_clear(src);
    return WB_OK;
}

/*
 * strix.c - see strix.h.
 */
#include "wbmb/strix.h"

#include <stdlib.h>
#include <string.h>

#include "wbmb/util.h"

#define STRIX_MIN_CAP 16

static void place(uint32_t *slot, size_t cap, const char *key, uint32_t pos)
{
    size_t h = util_hash_str(key) & (cap - 1);
    while (slot[h] != STRIX_EMPTY)
        h = (h + 1) & (cap - 1);
    slot[h] = pos;
}

bool strix_reserve(struct strix *x, size_t n, size_t have, strix_key_fn key_of, const void *owner)
{
    if (2 * n <= x->cap)
        return true;
    size_t cap = x->cap ? x->cap : STRIX_MIN_CAP;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *slot = malloc(cap * sizeof(*slot));
    if (!slot)
        return false;
    for (size_t i = 0; i < cap; i++)
        slot[i] = STRIX_EMPTY;
    for (size_t i = 0; i < have; i++)
        place(slot, cap, key_of(owner, (uint32_t)i), (uint32_t)i);
    free(x->slot);
    x->slot = slot;
    x->cap = cap;
    return true;
}

void strix_put(struct strix *x, const char *key, uint32_t pos)
{
    place(x->slot, x->cap, key, pos);
}

long strix_find(const struct strix *x, const char *key, strix_key_fn key_of, const void *owner)
{
    if (!x->cap)
        return -1;
    size_t mask = x->cap - 1;
    for (size_t h = util_hash_str(key) & mask; x->slot[h] != STRIX_EMPTY; h = (h + 1) & mask)
        if (strcmp(key_of(owner, x->slot[h]), key) == 0)
            return (long)x->slot[h];
    return -1;
}

void strix_free(struct strix *x)
{
    free(x->slot);
    x->slot = NULL;
    x->cap = 0;
}

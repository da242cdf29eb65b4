/*
 * store_map.h - a string-keyed hash map shared by the store backends.
 *
 * Internal to src/store/. Each entry owns a copy of its key and an optional
 * malloc'd text (NULL = tombstone, e.g. a pending delete) plus one number the
 * user of the map gives a meaning to (a set's sequence number, a per-device
 * counter). Open addressing with linear probing keeps the hot path of
 * store_set() (one hash, one probe in the common case) free of allocations
 * except for the value text. Not thread-safe: the owner locks.
 */
#ifndef WBMB_STORE_MAP_H
#define WBMB_STORE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

struct smap_entry {
    char *key;  /* owned; NULL = free slot */
    char *text; /* owned; NULL = tombstone */
    uint64_t num;
    uint32_t hash;
};

struct smap {
    struct smap_entry *slots;
    size_t cap; /* power of two, 0 when never used */
    size_t count;
};

/* An empty map needs no allocation: struct smap m = {0}. */
void smap_clear(struct smap *m);

/* The entry for key, or NULL. */
struct smap_entry *smap_find(const struct smap *m, const char *key);

/* Stores text (ownership taken, NULL = tombstone) and num under key,
 * replacing and freeing an older text. Returns WB_ERR_NOMEM (text freed)
 * when out of memory. *created (if not NULL) tells whether the key was new. */
wb_status smap_put(struct smap *m, const char *key, char *text, uint64_t num, int *created);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

/* Moves every entry of src that dst lacks into dst (dst's entries are newer
 * and win); src is left empty. Returns WB_ERR_NOMEM if dst could not grow;
 * both maps are unchanged then. */
wb_status smap_merge_older(struct smap *dst, struct smap *src);

#endif

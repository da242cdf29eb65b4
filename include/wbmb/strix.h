/*
 * strix.h - an index of strings that live elsewhere: open addressing over
 * 4-byte slots, each holding a position in the owner's array (the keys are
 * not copied), kept at most half full. The owner says how to read the key
 * at a position. Used for the device manager's id -> device and the store's
 * device id -> history chain. Not thread-safe.
 */
#ifndef WBMB_STRIX_H
#define WBMB_STRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STRIX_EMPTY UINT32_MAX

/* The key stored at position pos of owner's array. */
typedef const char *(*strix_key_fn)(const void *owner, uint32_t pos);

struct strix {
    uint32_t *slot; /* STRIX_EMPTY or a position */
    size_t cap;     /* a power of two, 0 before the first reserve */
};

/* Room for n entries: when the table must grow it is rebuilt from the
 * owner's positions 0..have-1. false when out of memory (unchanged). */
bool strix_reserve(struct strix *x, size_t n, size_t have, strix_key_fn key_of, const void *owner);

/* Adds pos under key; room reserved, key not yet present. */
void strix_put(struct strix *x, const char *key, uint32_t pos);

/* The position stored under key, -1 when there is none. */
long strix_find(const struct strix *x, const char *key, strix_key_fn key_of, const void *owner);

/* strix_free on a zeroed struct is a no-op. */
void strix_free(struct strix *x);

#endif

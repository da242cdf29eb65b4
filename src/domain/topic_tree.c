/*
 * topic_tree.c - routing of MQTT topics to the values registered under
 * topic filters.
 *
 * The tree owns two indexes and every string and array in them, never the
 * values. Filters without wildcards go into an open-addressing hash table
 * (FNV-1a, linear probing, power-of-two capacity, load factor <= 3/4,
 * 32-byte slots) keyed by the whole filter: a message costs one probe there
 * (rarely a few; a slot's 32-bit hash is compared before its key). Filters with + or #
 * go into a trie of topic levels whose nodes keep their literal children in
 * an array sorted by (bytes, length), plus two special children for + and #.
 * ttree_match() walks the message topic's levels once down that trie; it
 * only branches where a + child exists, so its cost is bounded by the shape
 * of the wildcard filters, not by how many exact filters there are.
 *
 * Invariants: every filter in the hash table is valid and wildcard-free;
 * every trie node reached from the root spells a prefix of a valid filter;
 * a node's vals are the values of the filter ending exactly at that node.
 * ttree_match() allocates nothing, so it is safe on the hot path.
 */
#include "wbmb/topic_tree.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* MQTT limits topic names and filters to 65535 bytes (a 16-bit length). */
#define TTREE_MAX_FILTER 65535

/* The values registered under one filter, in insertion order. Nearly
 * every filter has one value: it is kept in `one` without an array (10 000
 * small allocations less with 10 000 devices); cap > 0 means `v` is used. */
struct vlist {
    union {
        void **v;
        void *one;
    };
    uint32_t n, cap;
};

/* 32 bytes: with 10 000 exact filters the table is 16 384 slots, 512 KiB. */
struct hentry {
    char *key; /* NULL: empty slot (entries are never removed) */
    uint32_t len;
    uint32_t hash;
    struct vlist vals;
};

struct tnode {
    char *level; /* this node's level text (not NUL-relevant: use len) */
    size_t len;
    struct tnode **kids; /* literal children, sorted by level_cmp */
    size_t n_kids, cap_kids;
    struct tnode *plus; /* the "+" child */
    struct tnode *hash; /* the "#" child (always a leaf) */
    struct vlist vals;
};

struct ttree {
    struct hentry *slots;
    size_t cap, used;
    struct tnode root;
};

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static wb_status vlist_push(struct vlist *l, void *value)
{
    if (l->n == 0) {
        l->one = value;
        l->n = 1;
        return WB_OK;
    }
    if (l->n == l->cap || l->cap == 0) {
        if (l->cap >= UINT32_MAX / 2)
            return WB_ERR_NOMEM;
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        void **v = realloc(l->cap ? l->v : NULL, cap * sizeof(*v));
        if (!v)
            return WB_ERR_NOMEM;
        if (l->cap == 0)
            v[0] = l->one;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = value;
    return WB_OK;
}

static void vlist_free(struct vlist *l)
{
    if (l->cap)
        free(l->v);
}

static size_t vlist_emit(const struct vlist *l, ttree_match_cb cb, void *ud)
{
    for (size_t i = 0; cb && i < l->n; i++)
        cb(l->cap ? l->v[i] : l->one, ud);
    return l->n;
}

wb_status ttree_validate_filter(const char *filter)
{
    if (!filter || !*filter)
        return WB_ERR_INVALID;
    size_t len = strlen(filter);
    if (len > TTREE_MAX_FILTER)
        return WB_ERR_INVALID;
    /* Walk level by level: + and # must fill a whole level, # only last. */
    const char *p = filter;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '+' || p[i] == '#') {
                if (n != 1)
                    return WB_ERR_INVALID;
                if (p[i] == '#' && e)
                    return WB_ERR_INVALID;
            }
        }
        if (!e)
            break;
        p = e + 1;
    }
    return WB_OK;
}

struct ttree *ttree_create(void)
{
    struct ttree *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = 64;
    t->slots = calloc(t->cap, sizeof(*t->slots));
    if (!t->slots)
        goto fail;
    return t;
fail:
    free(t);
    return NULL;
}

static void tnode_free_children(struct tnode *n)
{
    for (size_t i = 0; i < n->n_kids; i++) {
        tnode_free_children(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    if (n->plus) {
        tnode_free_children(n->plus);
        free(n->plus);
    }
    if (n->hash) {
        tnode_free_children(n->hash);
        free(n->hash);
    }
    free(n->level);
    vlist_free(&n->vals);
}

void ttree_destroy(struct ttree *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].key);
        vlist_free(&t->slots[i].vals);
    }
    free(t->slots);
    tnode_free_children(&t->root);
    free(t);
}

/* Slot holding key, or the empty slot where it would go. */
static struct hentry *hash_slot(struct hentry *slots, size_t cap, const char *key, size_t len,
                                uint32_t h)
{
    size_t i = (size_t)h & (cap - 1);
    for (;;) {
        struct hentry *e = &slots[i];
        if (!e->key || (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

static wb_status hash_grow(struct ttree *t)
{
    size_t cap = t->cap * 2;
    struct hentry *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return WB_ERR_NOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        struct hentry *o = &t->slots[i];
        if (o->key)
            *hash_slot(slots, cap, o->key, o->len, o->hash) = *o;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return WB_OK;
}

static wb_status hash_add(struct ttree *t, const char *filter, void *value, bool *first)
{
    if ((t->used + 1) * 4 > t->cap * 3) {
        wb_status st = hash_grow(t);
        if (st != WB_OK)
            return st;
    }
    size_t len = strlen(filter);
    uint32_t h = (uint32_t)fnv1a(filter, len);
    struct hentry *e = hash_slot(t->slots, t->cap, filter, len, h);
    if (!e->key) {
        /* Push first so a failed push leaves the slot empty. */
        struct vlist vals = {0};
        if (vlist_push(&vals, value) != WB_OK)
            return WB_ERR_NOMEM;
        e->key = strndup(filter, len);
        if (!e->key) {
            vlist_free(&vals);
            return WB_ERR_NOMEM;
        }
        e->len = (uint32_t)len; /* <= TTREE_MAX_FILTER, validated by ttree_add */
        e->hash = h;
        e->vals = vals;
        t->used++;
        *first = true;
        return WB_OK;
    }
    *first = false;
    return vlist_push(&e->vals, value);
}

static int level_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Binary search of n's literal children; *pos = insertion point on a miss. */
static struct tnode *kid_find(const struct tnode *n, const char *lvl, size_t len, size_t *pos)
{
    size_t lo = 0, hi = n->n_kids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct tnode *k = n->kids[mid];
        int c = level_cmp(lvl, len, k->level, k->len);
        if (c == 0)
            return n->kids[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static struct tnode *node_new(const char *lvl, size_t len)
{
    struct tnode *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->level = strndup(lvl, len);
    if (!k->level) {
        free(k);
        return NULL;
    }
    k->len = len;
    return k;
}

/* The child of n for level lvl, created when missing; NULL on NOMEM. A new
 * node may stay empty after a later failure: harmless, it matches nothing. */
static struct tnode *node_child(struct tnode *n, const char *lvl, size_t len)
{
    struct tnode **special = NULL;
    if (len == 1 && lvl[0] == '+')
        special = &n->plus;
    else if (len == 1 && lvl[0] == '#')
        special = &n->hash;
    if (special) {
        if (!*special)
            *special = node_new(lvl, len);
        return *special;
    }
    size_t pos = 0;
    struct tnode *k = kid_find(n, lvl, len, &pos);
    if (k)
        return k;
    if (n->n_kids == n->cap_kids) {
        size_t cap = n->cap_kids ? n->cap_kids * 2 : 4;
        struct tnode **kids = realloc(n->kids, cap * sizeof(*kids));
        if (!kids)
            return NULL;
        n->kids = kids;
        n->cap_kids = cap;
    }
    k = node_new(lvl, len);
    if (!k)
        return NULL;
    memmove(&n->kids[pos + 1], &n->kids[pos], (n->n_kids - pos) * sizeof(*n->kids));
    n->kids[pos] = k;
    n->n_kids++;
    return k;
}

static wb_status trie_add(struct ttree *t, const char *filter, void *value, bool *first)
{
    struct tnode *n = &t->root;
    const char *p = filter;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        n = node_child(n, p, len);
        if (!n)
            return WB_ERR_NOMEM;
        if (!e)
            break;
        p = e + 1;
    }
    *first = n->vals.n == 0;
    return vlist_push(&n->vals, value);
}

wb_status ttree_add_ex(struct ttree *t, const char *filter, void *value, bool *first)
{
    bool ignored;
    if (!first)
        first = &ignored;
    *first = false;
    if (!t || ttree_validate_filter(filter) != WB_OK)
        return WB_ERR_INVALID;
    if (strpbrk(filter, "+#"))
        return trie_add(t, filter, value, first);
    return hash_add(t, filter, value, first);
}

wb_status ttree_add(struct ttree *t, const char *filter, void *value)
{
    return ttree_add_ex(t, filter, value, NULL);
}

/*
 * p: start of the current level of the topic, or NULL once every level is
 * consumed. depth 0 is the first level, where the $-rule applies: a topic
 * whose first level starts with '$' is not matched by a leading + or #.
 * Recursion depth is bounded by the depth of the wildcard filters.
 */
static size_t trie_walk(const struct tnode *n, const char *p, int depth, ttree_match_cb cb,
                        void *ud)
{
    if (!p) {
        /* The filter "a/#" also matches the parent level "a". */
        size_t c = vlist_emit(&n->vals, cb, ud);
        if (n->hash)
            c += vlist_emit(&n->hash->vals, cb, ud);
        return c;
    }
    int wild_ok = !(depth == 0 && p[0] == '$');
    size_t count = 0;
    if (n->hash && wild_ok)
        count += vlist_emit(&n->hash->vals, cb, ud);
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *next = e ? e + 1 : NULL;
    const struct tnode *k = kid_find(n, p, len, NULL);
    if (k)
        count += trie_walk(k, next, depth + 1, cb, ud);
    if (n->plus && wild_ok)
        count += trie_walk(n->plus, next, depth + 1, cb, ud);
    return count;
}

size_t ttree_match(const struct ttree *t, const char *topic, ttree_match_cb cb, void *ud)
{
    if (!t || !topic || !*topic)
        return 0;
    /* A message topic never carries wildcards; such a "topic" matches nothing. */
    size_t len = strcspn(topic, "+#");
    if (topic[len])
        return 0;
    size_t count = 0;
    uint32_t h = (uint32_t)fnv1a(topic, len);
    const struct hentry *e = hash_slot(t->slots, t->cap, topic, len, h);
    if (e->key)
        count += vlist_emit(&e->vals, cb, ud);
    const struct tnode *r = &t->root;
    if (r->n_kids || r->plus || r->hash)
        count += trie_walk(r, topic, 0, cb, ud);
    return count;
}

/*
 * yaml_doc.h - a small YAML document tree built from libyaml events.
 *
 * The config loader walks this tree instead of the event stream so that it
 * can look at a whole mapping at once (defaults, duplicates, cross-field
 * checks) and report every error with the line and column where the node
 * starts. The tree owns all of its strings; ydoc_free() releases it.
 * Anchors and aliases are not supported (a config has no use for them and
 * they would turn the tree into a graph).
 *
 * One list can be streamed instead of kept: the items of the sequence under
 * a chosen key of the top-level mapping (the config's devices:) are handed
 * to a callback one at a time as each is parsed, then freed, so a config
 * with thousands of devices never holds more than one of them as a tree.
 * The input may be read from a file descriptor in small chunks, so the file
 * text is not held whole either.
 */
#ifndef WBMB_CONFIG_YAML_DOC_H
#define WBMB_CONFIG_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>

enum ydoc_kind { YDOC_SCALAR, YDOC_MAP, YDOC_SEQ };

struct ydoc_node {
    enum ydoc_kind kind;
    int line, column;         /* 1-based start mark */
    bool quoted;              /* SCALAR: written quoted or as a block (so never null/bool/number) */
    char *value;              /* SCALAR: the text (never NULL), allocated with the node */
    size_t n;                 /* MAP: pairs; SEQ: items */
    struct ydoc_node **keys;  /* MAP: key nodes (scalars) */
    struct ydoc_node **items; /* MAP: values; SEQ: items */
};

/* Where the YAML comes from: text in memory, or (use_fd) a file descriptor
 * read in chunks as the parser needs them. The descriptor is not closed. */
struct ydoc_input {
    const char *text;
    size_t len;
    bool use_fd;
    int fd;
    size_t max_bytes; /* use_fd: reading more than this fails with EFBIG */
};

/* The streamed list. When the top-level mapping has key and its value is a
 * sequence, item() gets each of its items (index counts from 0) as soon as
 * the item is complete; the item is freed when item() returns, and the tree
 * keeps an empty YDOC_SEQ (with the sequence's position) at key. A value
 * that is not a sequence stays in the tree as usual. A key given twice
 * streams both sequences, the index restarting at 0. item() cannot stop the
 * parse; items handed over before a later syntax error were still handed
 * over, so the caller discards what it built from them on failure. */
struct ydoc_stream {
    const char *key;
    void (*item)(void *arg, const struct ydoc_node *item, size_t index);
    void *arg;
};

#define YDOC_ESYNTAX (-1) /* invalid YAML or refused by us (alias, depth, ...) */
#define YDOC_EREAD (-2)   /* use_fd: read(2) failed or max_bytes exceeded; errno says which */

/* Parses in into *root (NULL for an empty stream or one holding only
 * comments), streaming the list described by stream (NULL: none). On
 * failure returns YDOC_ESYNTAX with a message in err and its 1-based
 * position in *line / *column, or YDOC_EREAD with errno set (and its
 * strerror in err, at 1:1); no tree is returned then. */
int ydoc_parse_input(const struct ydoc_input *in, const struct ydoc_stream *stream,
                     struct ydoc_node **root, char *err, size_t errlen, int *line, int *column);

/* ydoc_parse_input() of text in memory with nothing streamed: -1 on error. */
int ydoc_parse(const char *text, size_t len, struct ydoc_node **root, char *err, size_t errlen,
               int *line, int *column);

/* ydoc_free(NULL) is a no-op. */
void ydoc_free(struct ydoc_node *n);

/* The value of key in map, NULL when absent or map is not a map. */
const struct ydoc_node *ydoc_map_get(const struct ydoc_node *map, const char *key);

/* true for a plain scalar meaning "nothing": empty, "~", "null" (any case). */
bool ydoc_is_null(const struct ydoc_node *n);

/* "a map", "a list" or "'text'" for error messages; buf must hold >= 64 bytes. */
const char *ydoc_describe(const struct ydoc_node *n, char *buf, size_t len);

#endif

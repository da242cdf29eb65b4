/*
 * yaml_doc.h - a small YAML document tree built from libyaml events.
 *
 * The config loader walks this tree instead of the event stream so that it
 * can look at a whole mapping at once (defaults, duplicates, cross-field
 * checks) and report every error with the line and column where the node
 * starts. The tree owns all of its strings; ydoc_free() releases it.
 * Anchors and aliases are not supported (a config has no use for them and
 * they would turn the tree into a graph).
 */
#ifndef WBMB_CONFIG_YAML_DOC_H
#define WBMB_CONFIG_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>

enum ydoc_kind { YDOC_SCALAR, YDOC_MAP, YDOC_SEQ };

struct ydoc_node {
    enum ydoc_kind kind;
    int line, column;         /* 1-based start mark */
    char *value;              /* SCALAR: the text (never NULL) */
    bool quoted;              /* SCALAR: written quoted or as a block (so never null/bool/number) */
    size_t n;                 /* MAP: pairs; SEQ: items */
    struct ydoc_node **keys;  /* MAP: key nodes (scalars) */
    struct ydoc_node **items; /* MAP: values; SEQ: items */
};

/* Parses text into *root (NULL for an empty stream or one holding only
 * comments). On a syntax error returns -1 with a message in err and its
 * 1-based position in *line / *column; nothing is allocated then. */
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

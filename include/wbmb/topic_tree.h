/*
 * topic_tree.h - routing of MQTT topics to subscribers' values.
 *
 * Exact filters are found by one hash lookup; filters with + or # live in a
 * tree of topic levels, so a message costs one hash probe plus a walk of its
 * own levels, never a scan of all filters. MQTT rules apply: + matches one
 * level, # the rest (including the parent level), and topics starting with $
 * are not matched by a leading wildcard.
 */
#ifndef WBMB_TOPIC_TREE_H
#define WBMB_TOPIC_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "wbmb/status.h"

struct ttree;

/* NULL on allocation failure. */
struct ttree *ttree_create(void);
/* Frees the tree, not the values; ttree_destroy(NULL) is a no-op. */
void ttree_destroy(struct ttree *t);
/* Adds value under filter; one filter may carry several values. Returns
 * WB_ERR_INVALID for a malformed filter (e.g. "a/#/b", "a+"). */
wb_status ttree_add(struct ttree *t, const char *filter, void *value);
/* The same; *first (when not NULL) tells whether filter had no value yet. */
wb_status ttree_add_ex(struct ttree *t, const char *filter, void *value, bool *first);
/* Calls cb once per (filter, value) pair matching topic; returns the count. */
typedef void (*ttree_match_cb)(void *value, void *ud);
size_t ttree_match(const struct ttree *t, const char *topic, ttree_match_cb cb, void *ud);
/* WB_OK when filter is a valid MQTT topic filter. */
wb_status ttree_validate_filter(const char *filter);

#endif

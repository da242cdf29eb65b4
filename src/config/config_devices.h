/*
 * config_devices.h - the devices: part of the config.
 *
 * Devices are built one entry at a time so that the YAML parser can stream
 * the devices: list (yaml_doc.h) instead of keeping it as a tree:
 *
 *   cfgd_begin()    before parsing
 *   cfgd_device()   for each entry, in list order, as the parser hands it over
 *   cfgd_devices()  once the tree is walked: the devices: node as the tree
 *                   holds it (its shape, any entries not streamed) and the
 *                   checks that need every device
 *   cfgd_end()      always, also after a syntax error
 *
 * Each device (state bindings, transient fields, availability, actions) is
 * appended to cfg and errors go to the walk context; cfgd_free() releases
 * what was built, also after errors.
 */
#ifndef WBMB_CONFIG_DEVICES_H
#define WBMB_CONFIG_DEVICES_H

#include "config/config_walk.h"
#include "wbmb/config.h"

struct cfgd_loader {
    struct cfgw_ctx *c;
    struct config *cfg;
    size_t cap;          /* entries allocated in cfg->devices */
    struct cfgw_ids ids; /* the first "id" of every entry so far, where it was written */
};

void cfgd_begin(struct cfgd_loader *l, struct cfgw_ctx *c, struct config *cfg);
/* One entry of the devices: list; index counts from 0 (for messages). */
void cfgd_device(struct cfgd_loader *l, const struct ydoc_node *entry, size_t index);
void cfgd_devices(struct cfgd_loader *l, const struct ydoc_node *list);
/* Frees the loader's own memory (not the devices). */
void cfgd_end(struct cfgd_loader *l);

/* The history: keys (mode, interval_ms, fields, exclude) of a policy
 * block; the walk target is a struct cfg_history plus its two list nodes,
 * handed to cfgd_history_lists() after the walk. */
struct cfgd_history_tmp {
    struct cfg_history h;
    const struct ydoc_node *fields, *exclude;
};
extern const struct cfgw_field cfgd_history_keys[];
/* Copies the fields/exclude lists of t into t->h (entries must be valid
 * field names); where names the block in messages. */
void cfgd_history_lists(struct cfgw_ctx *c, struct cfgd_history_tmp *t, const char *where);
/* Frees the lists of h (not h). */
void cfgd_history_free(struct cfg_history *h);

/* Frees cfg's devices (and zeroes the count). */
void cfgd_free(struct config *cfg);

#endif

/*
 * config_spec.h - the spec of one state field: map, scale, wb, switch,
 * homeassistant (struct cfg_field_spec, CONTRACT §3).
 *
 * A spec is written on a plain state binding (beside type and field) or on
 * the long form of a JSON binding's fields: entry. cfgf_parse() walks the
 * four keys' nodes into a spec and checks everything that the field alone
 * decides (map values fit the binding's type, scale fits int, wb.type fits
 * the binding, a switch field is boolean). Whether a switch's actions exist
 * needs the device's actions, which are walked after the state: cfgf_parse()
 * queues that check in a struct cfgf_pending, and cfgf_check_switches() runs
 * it once the actions are there, while the entry's nodes are still alive.
 */
#ifndef WBMB_CONFIG_SPEC_H
#define WBMB_CONFIG_SPEC_H

#include "config/config_walk.h"
#include "wbmb/config.h"

/* The YAML nodes of a spec's keys; NULL when not given. */
struct cfgf_nodes {
    const struct ydoc_node *map, *scale, *wb, *sw, *ha;
};

/* One queued switch check: spec's on/off actions must be actions of the
 * device that need no required param. */
struct cfgf_switch {
    const struct cfg_field_spec *spec;
    const char *field; /* for messages; owned by the config */
    const struct ydoc_node *on, *off;
};

struct cfgf_pending {
    struct cfgf_switch *v;
    size_t n, cap;
};

/* Fills s from n. type is the binding's type for a plain binding, CFG_T_JSON
 * for a fields entry (whose values have no declared type). where names the
 * field in messages ("field 'power' of device 'tv'"). Errors go to c; s owns
 * what it got even after errors (cfgf_free). A switch check is queued in p. */
void cfgf_parse(struct cfgw_ctx *c, struct cfg_field_spec *s, enum cfg_value_type type,
                const struct cfgf_nodes *n, const char *field, const char *where,
                struct cfgf_pending *p);

/* Runs the queued switch checks against d's actions and empties p. */
void cfgf_check_switches(struct cfgw_ctx *c, struct cfgf_pending *p, const struct cfg_device *d);
/* Frees p's own memory (cfgf_check_switches does it too). */
void cfgf_pending_free(struct cfgf_pending *p);

/* A zeroed spec when n gives any key, NULL otherwise (no key, or out of
 * memory: c->oom). The caller frees it (cfgf_free, then free). */
struct cfg_field_spec *cfgf_new(struct cfgw_ctx *c, const struct cfgf_nodes *n);

/* Frees what s owns (NULL: nothing); s is zeroed. */
void cfgf_free(struct cfg_field_spec *s);

#endif

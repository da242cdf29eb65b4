/*
 * config_ha.h - the homeassistant: keys of the config (README "Home
 * Assistant (MQTT discovery)"): the top-level section (struct
 * cfg_homeassistant) and the homeassistant: block of a state field or an
 * action (struct cfg_ha_meta).
 *
 * The top-level section is walked by the top-level table (cfgh_top_fields
 * is its sub-table); cfgh_finish() then fills the defaults that depend on
 * other keys (node_id from bridge.device_id, base_topic from node_id,
 * status_topic from discovery_prefix) and checks what the table cannot.
 */
#ifndef WBMB_CONFIG_HA_H
#define WBMB_CONFIG_HA_H

#include "config/config_walk.h"
#include "wbmb/config.h"

/* The keys of the top-level homeassistant: map (struct cfg_homeassistant). */
extern const struct cfgw_field cfgh_top_fields[];

/* Defaults that come from other keys and the checks of every value; root
 * is the document's top-level map (NULL when empty). Sets cfg's mark. */
void cfgh_finish(struct cfgw_ctx *c, const struct ydoc_node *root, struct config *cfg);

/* Frees what the section owns (not the struct). */
void cfgh_release(struct cfg_homeassistant *h);

/* Whose homeassistant: block is parsed: a state field takes state_class
 * (if its type is a number, or it is a fields entry), an action does not. */
enum cfgh_owner { CFGH_FIELD, CFGH_ACTION };

/* Parses the block n (a non-null node) into a new struct; NULL when n is
 * not a map (error reported) or out of memory. type is the binding's type
 * for a field (CFG_T_JSON for a fields entry), ignored for an action.
 * where names the owner in messages ("field 'temp' of device 'd'"). */
struct cfg_ha_meta *cfgh_meta(struct cfgw_ctx *c, const struct ydoc_node *n, enum cfgh_owner owner,
                              enum cfg_value_type type, const char *where);

/* Frees m and what it owns (NULL: nothing). */
void cfgh_meta_free(struct cfg_ha_meta *m);

#endif

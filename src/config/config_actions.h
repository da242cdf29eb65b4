/*
 * config_actions.h - devices[].actions: params, payload/set templates.
 *
 * cfga_actions() fills a device's actions from the YAML map of actions;
 * cfga_free_actions() releases them. cfga_param_value() and
 * cfga_find_param() are shared with the scenario steps.
 */
#ifndef WBMB_CONFIG_ACTIONS_H
#define WBMB_CONFIG_ACTIONS_H

#include "config/config_walk.h"
#include "wbmb/config.h"

void cfga_actions(struct cfgw_ctx *c, const struct ydoc_node *map, struct cfg_device *d);
void cfga_free_actions(struct cfg_device *d);

/* The typed JSON value of v for param p (a new reference); NULL with an
 * error "what must be ..., got ..." reported when it does not fit. */
json_object *cfga_param_value(struct cfgw_ctx *c, const struct ydoc_node *v,
                              const struct cfg_param *p, const char *what);

/* The param of a named by name[0..n), NULL when absent. */
const struct cfg_param *cfga_find_param(const struct cfg_action *a, const char *name, size_t n);

#endif

/*
 * config_scenarios.h - the scenarios: part of the config.
 *
 * cfgs_scenarios() must run after cfgd_devices(): every step is checked
 * against the devices and actions it names. cfgs_free() releases what it
 * built (and zeroes the count).
 */
#ifndef WBMB_CONFIG_SCENARIOS_H
#define WBMB_CONFIG_SCENARIOS_H

#include "config/config_walk.h"
#include "wbmb/config.h"

void cfgs_scenarios(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg);
void cfgs_free(struct config *cfg);

#endif

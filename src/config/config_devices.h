/*
 * config_devices.h - the devices: and scenarios: parts of the config.
 *
 * Devices are parsed first (state bindings, availability, actions with their
 * params and templates); scenarios afterwards, because every step is checked
 * against the devices and actions it names. Both append to cfg and report
 * into the walk context; cfgd_free() releases what they built.
 */
#ifndef WBMB_CONFIG_DEVICES_H
#define WBMB_CONFIG_DEVICES_H

#include "config/config_walk.h"
#include "wbmb/config.h"

void cfgd_devices(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg);
void cfgd_scenarios(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg);

/* Frees cfg's devices and scenarios (and zeroes their counts). */
void cfgd_free(struct config *cfg);

/* true for a valid MQTT topic filter (wildcards allowed when filter). */
bool cfgd_topic_valid(const char *t, bool filter);

#endif

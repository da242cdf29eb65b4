/*
 * config_devices.h - the devices: part of the config.
 *
 * cfgd_devices() appends every device (state bindings, transient fields,
 * availability, actions) to cfg and reports into the walk context;
 * cfgd_free() releases what it built, also after errors.
 */
#ifndef WBMB_CONFIG_DEVICES_H
#define WBMB_CONFIG_DEVICES_H

#include "config/config_walk.h"
#include "wbmb/config.h"

void cfgd_devices(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg);

/* Frees cfg's devices (and zeroes the count). */
void cfgd_free(struct config *cfg);

#endif

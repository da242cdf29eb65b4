/*
 * ha.h - the Home Assistant sink (src/mirror/ha*.c): every device, and the
 * bridge itself, announced through Home Assistant's MQTT discovery (README,
 * "Home Assistant"), with one JSON state topic and one availability topic
 * per device, and Home Assistant's commands taken as input.
 *
 *   <prefix>/device/<node_id>/<device>/config   device-based discovery, retained, QoS 1
 *   <base>/<bridge>/availability                online / offline (the Last Will of the
 *                                               presence connection, app.c)
 *   <base>/<device>/availability                online / offline
 *   <base>/<device>/state                       the device's state as one JSON object
 *   <base>/<bridge>/state                       {"scenario", "status", "last"}
 *   <base>/<device>/<action or field>/set       input: a command
 *   <status_topic>                              input: Home Assistant's "online"
 *
 * The sink is registered whether homeassistant.enabled is set or not: while
 * it is off it only clears, at the first connect, what an earlier run
 * announced (its memory, store key "ha:published"), so switching it off
 * removes the devices from Home Assistant.
 */
#ifndef WBMB_HA_H
#define WBMB_HA_H

#include <stdbool.h>
#include <stddef.h>

#include "wbmb/config.h"
#include "wbmb/mirror.h"
#include "wbmb/sink.h"

/* The sink for cfg (borrowed until the next EV_DEVICES_DONE brings the next
 * one), publishing through pub (copied) and remembering what it announced
 * through mem (copied; NULL: remembers nothing). NULL when out of memory.
 * Freed through its ops (sinks_destroy). */
struct sink *ha_sink_create(const struct config *cfg, const struct mirror_publisher *pub,
                            const struct mirror_memory *mem);

/* The bridge's availability topic, <base>/<bridge>/availability, into buf;
 * false when it does not fit in cap. */
bool ha_bridge_availability_topic(const struct config *cfg, char *buf, size_t cap);

/* The sink's config check (cfg_add_check): with homeassistant.enabled, a
 * state or action topic without wildcards under <base>/ or under the
 * discovery prefix's device configs of this node is refused. */
void ha_check_config(const struct config *cfg, struct cfg_check *chk);

#endif

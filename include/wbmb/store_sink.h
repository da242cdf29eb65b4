/*
 * store_sink.h - the state store as a sink (sink.h): every change event
 * becomes the store call that records it.
 *
 *   EV_DEVICE_ADDED    devices row (start-up: flushed every 1 024 rows)
 *   EV_DEVICE_CHANGED  devices row, when the name or the type changed
 *   EV_FIELDS          "device:<id>" = the persisted fields (transient ones
 *                      left out) as JSON text, and the history row the
 *                      device's policy asks for (cfg_history_policy(): all =
 *                      a row now, interval = into the open interval, off =
 *                      none); only when a persisted field changed
 *   EV_STOPPING        the open intervals' rows (before the store's flush)
 *   EV_DEVICES_DONE    the same at a reload (indexes and policies change)
 *   EV_AVAILABILITY    a device_connection_logs row and the devices row
 *   EV_SCENARIO        "scenario:last", flushed at once (a switch's start
 *                      and end are checkpoints)
 *   EV_COMMAND         one command_logs row
 *
 * The store is asynchronous (group commit, its own writer thread), so a
 * sink call never waits for the disk, except the scenario checkpoints.
 */
#ifndef WBMB_STORE_SINK_H
#define WBMB_STORE_SINK_H

#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/sink.h"
#include "wbmb/state_store.h"

/* store and cfg are borrowed (cfg until the next EV_DEVICES_DONE). NULL
 * when out of memory. Freed through its ops (sinks_destroy). */
struct sink *store_sink_create(struct state_store *store, const struct config *cfg);

/* Store calls that failed (the store logs why). */
uint64_t store_sink_errors(const struct sink *s);

#endif

/*
 * scenmgr.h - the scenario manager: switches between scenarios and tells
 * the sinks "scenario:last" through every step (EV_SCENARIO; the store sink
 * keeps it).
 *
 * Owned by the core (OWNER_ASSERT at every entry point). A switch runs its steps through
 * dispatch_action() (source "scenario"); delay_after_ms is a timer checked by scenmgr_tick(), never
 * a sleep, so messages keep being applied during a switch.
 */
#ifndef WBMB_SCENMGR_H
#define WBMB_SCENMGR_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/dispatch.h"
#include "wbmb/sink.h"
#include "wbmb/status.h"

struct scenmgr;

/* The end of a switch or shutdown: result is
 * {"success","scenario_id","shared_devices":[...],"failed_steps":[...]},
 * borrowed for the call. */
typedef void (*scenmgr_done_cb)(void *ud, json_object *result);

/* cfg, dispatch and sinks are borrowed (sinks may be NULL). NULL on
 * allocation failure. */
struct scenmgr *scenmgr_create(const struct config *cfg, struct dispatch_ctx *dispatch,
                               const struct sinks *sinks);
/* scenmgr_destroy(NULL) is a no-op. A switch still running is ended: its
 * callback gets {"success": false, "error": "shutting down"}. */
void scenmgr_destroy(struct scenmgr *s);

/* Takes scenario:last as read from the store (owned; NULL or not an
 * object: none) without sending any command, and tells the sinks; a switch
 * that was interrupted by the process dying is recorded as failed. */
void scenmgr_restore(struct scenmgr *s, json_object *stored);

/* SIGHUP: point at a new config (scenario:last is kept). Refused with
 * WB_ERR_BUSY while a switch runs. */
wb_status scenmgr_set_config(struct scenmgr *s, const struct config *cfg);

/* Starts a switch to scenario id. WB_ERR_NOT_FOUND unknown id, WB_ERR_BUSY a
 * switch is running (cb not called). Otherwise WB_OK and cb is called once
 * when it ends — possibly before this returns (no delays). Switching to the
 * active scenario does nothing and succeeds. */
wb_status scenmgr_switch(struct scenmgr *s, const char *id, scenmgr_done_cb cb, void *ud);

/* Runs the active scenario's shutdown steps and records status "off".
 * WB_ERR_BUSY while a switch runs. */
wb_status scenmgr_shutdown(struct scenmgr *s, scenmgr_done_cb cb, void *ud);

/* Runs steps whose delay has passed; returns the next time (monotonic ms)
 * it needs a tick, INT64_MAX when idle. */
int64_t scenmgr_tick(struct scenmgr *s, int64_t now_ms);

bool scenmgr_busy(const struct scenmgr *s);
/* The scenario:last object (borrowed; never NULL, {} when none). */
json_object *scenmgr_state(const struct scenmgr *s);
/* The id shown on the bridge's scenario control: active id or "none". */
const char *scenmgr_control_value(const struct scenmgr *s);

#endif

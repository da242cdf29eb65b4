/*
 * dispatch.h - the one way an action request becomes an MQTT command.
 *
 * MQTT /on topics, HTTP POSTs and scenario steps all call dispatch_action()
 * on the core thread. It validates the params, renders the payload, publishes
 * it (QoS 1, never retained), applies the action's optimistic `set` as a
 * transition, and writes one command_logs row whatever happens:
 *   sent     - published (and the set applied)
 *   failed   - valid, but the publication failed (broker away)
 *   rejected - unknown device/action or invalid params: nothing published
 * For mirrored devices an invalid request also sets the Wiren Board
 * /devices/<id>/controls/<action>/meta/error to "w"; the next success clears it.
 */
#ifndef WBMB_DISPATCH_H
#define WBMB_DISPATCH_H

#include <json-c/json.h>

#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/mirror.h"
#include "wbmb/state_store.h"
#include "wbmb/status.h"

struct dispatch_ctx {
    const struct config *cfg;
    struct devmgr *devmgr;
    struct state_store *store;
    const struct mirror_publisher *pub;
    json_object *errors_set; /* "device/action" keys whose meta/error is "w"; owned */
};

struct dispatch_result {
    char command_id[37];
    const char *status; /* "sent", "failed" or "rejected" */
    wb_status st;       /* WB_OK, WB_ERR_NOT_FOUND (device/action), WB_ERR_INVALID/RANGE (params),
                           WB_ERR_MQTT */
    char error[256];    /* "" when sent */
};

/* params may be NULL (none). source: "mqtt", "http" or "scenario". Returns
 * out->st. */
wb_status dispatch_action(struct dispatch_ctx *d, const char *device_id, const char *action,
                          json_object *params, const char *source, struct dispatch_result *out);

/* The same for an MQTT /on payload: the params are parsed from the payload
 * (a JSON object, or the single param's value); a payload that does not
 * parse is rejected and logged like any invalid request. */
wb_status dispatch_action_payload(struct dispatch_ctx *d, const char *device_id, const char *action,
                                  const char *payload, size_t len, const char *source,
                                  struct dispatch_result *out);

#endif

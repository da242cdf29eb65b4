/*
 * dispatch.h - the one way an action request becomes an MQTT command.
 *
 * MQTT commands (a sink's input: a Wiren Board /on topic), HTTP POSTs and
 * scenario steps all call dispatch_action() on the core. It validates the params, renders the
 * payload, publishes it (QoS 1, never retained), applies the action's optimistic `set` as a
 * transition, and writes one command_logs row whatever happens:
 *   sent     - the broker acknowledged it (PUBACK), and the set was applied
 *   failed   - valid, but not delivered: the broker away, the connection
 *              lost before the PUBACK, no PUBACK within DISPATCH_ACK_TIMEOUT_MS,
 *              or refused by the broker (MQTT 5 PUBACK reason code >= 0x80,
 *              e.g. an ACL: "Not authorized (0x87)"); the set is not applied
 *   rejected - unknown device/action or invalid params: nothing published
 * Each outcome is one EV_COMMAND event to the sinks (sink.h): its
 * command_logs row, and for mirrored devices the Wiren Board meta/error
 * "w" of an invalid or refused request (cleared by the next success).
 *
 * With a publisher that reports outcomes (dispatch_ctx.publish_acked) a
 * command is pending from the publication until dispatch_on_ack(): the row,
 * the set and the caller's done callback all wait for the broker's answer:
 *
 *   dispatch_action_cb() --fn_acked OK--> pending --dispatch_on_ack(0)--> sent
 *                                           |  '----dispatch_on_ack(rc)--> failed
 *                                           '--dispatch_tick() deadline,
 *                                              dispatch_abort()---------> failed
 */
#ifndef WBMB_DISPATCH_H
#define WBMB_DISPATCH_H

#include <json-c/json.h>

#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/sink.h"
#include "wbmb/status.h"

/* How long a command waits for its PUBACK before it is failed. */
#define DISPATCH_ACK_TIMEOUT_MS 5000

struct dispatch_pending;

struct dispatch_ctx {
    const struct config *cfg;
    struct devmgr *devmgr;
    const struct sinks *sinks; /* the outcomes go there (EV_COMMAND) */
    /* Publishes a command that counts as sent at once (QoS 1, never
     * retained); used when publish_acked is NULL. */
    wb_status (*publish)(void *ud, const char *topic, const char *payload, size_t len);
    void *publish_ud;
    /* Optional: publishes a command whose outcome the broker reports (QoS 1,
     * never retained). WB_OK when on its way: the owner then reports the
     * outcome with dispatch_on_ack(token, ...), later, never inside this
     * call. NULL: commands go through publish and count as sent at once. */
    wb_status (*publish_acked)(void *ud, const char *topic, const char *payload, size_t len,
                               uint64_t token);
    void *publish_acked_ud;
    /* Commands waiting for the broker (zero-initialised: none). */
    struct dispatch_pending *pending;
    uint64_t next_token;
    bool stopping; /* dispatch_abort() ran: every new command fails */
};

struct dispatch_result {
    char command_id[37];
    const char *status; /* "sent", "failed" or "rejected" */
    wb_status st;       /* WB_OK, WB_ERR_NOT_FOUND (device/action), WB_ERR_INVALID/RANGE (params),
                           WB_ERR_MQTT */
    char error[256];    /* "" when sent */
    bool pending;       /* dispatch_action_cb(): the outcome comes through done */
    bool refused;       /* failed because the broker refused it (PUBACK >= 0x80) */
};

/* The outcome of a pending command (core thread); r is valid during the
 * call only. */
typedef void (*dispatch_done_fn)(void *ud, const struct dispatch_result *r);

/* params may be NULL (none). source: "mqtt", "http" or "scenario". Returns
 * out->st. */
wb_status dispatch_action(struct dispatch_ctx *d, const char *device_id, const char *action,
                          json_object *params, const char *source, struct dispatch_result *out);

/* dispatch_action() that reports the outcome of a command waiting for the
 * broker: out->pending set (status "sent" so far, WB_OK returned) means done
 * is called exactly once later (from dispatch_on_ack/tick/abort) with the
 * final result; otherwise out is final and done is not called. done may be
 * NULL. */
wb_status dispatch_action_cb(struct dispatch_ctx *d, const char *device_id, const char *action,
                             json_object *params, const char *source, dispatch_done_fn done,
                             void *done_ud, struct dispatch_result *out);

/* The broker's answer for token (on the core): rc 0
 * acknowledged, else failed with why. An unknown token (timed out or
 * aborted before) is logged and ignored. */
void dispatch_on_ack(struct dispatch_ctx *d, uint64_t token, int rc, const char *why);

/* Fails the commands whose PUBACK is overdue; returns the next deadline
 * (INT64_MAX when none waits). */
int64_t dispatch_tick(struct dispatch_ctx *d, int64_t now_ms);

/* Fails every pending command with why and every later one (shutdown). */
void dispatch_abort(struct dispatch_ctx *d, const char *why);

/* The same for an MQTT /on payload: the params are parsed from the payload
 * (a JSON object, or the single param's value); a payload that does not
 * parse is rejected and logged like any invalid request. */
wb_status dispatch_action_payload(struct dispatch_ctx *d, const char *device_id, const char *action,
                                  const char *payload, size_t len, const char *source,
                                  struct dispatch_result *out);

#endif

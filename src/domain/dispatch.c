/*
 * dispatch.c - the single dispatch function of action requests, and the
 * commands waiting for the broker's PUBACK (see dispatch.h for the states).
 * Runs on the core only (core.c's top; OWNER_ASSERT at every entry point).
 * Every outcome goes to the sinks as one EV_COMMAND event (the store sink
 * writes its command_logs row, the Wiren Board mirror its meta/error).
 *
 * A pending command owns copies of everything its command_logs row and its
 * `set` need (the config may be reloaded meanwhile): it is found again by
 * its token, so an answer that comes after the command timed out finds
 * nothing and is only logged.
 */
#include "wbmb/dispatch.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/action.h"
#include "wbmb/log.h"
#include "wbmb/owner.h"
#include "wbmb/util.h"

static void set_error(struct dispatch_result *out, wb_status st, const char *status,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_error(struct dispatch_result *out, wb_status st, const char *status,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
    out->st = st;
    out->status = status;
}

struct dispatch_pending {
    struct dispatch_pending *next;
    uint64_t token;
    int64_t deadline_ms;
    char command_id[37];
    char created[UTIL_TS_LEN];
    char *device_id, *action, *params, *source, *topic;
    json_object *changes; /* the optimistic set, applied on the PUBACK; owned */
    dispatch_done_fn done;
    void *done_ud;
};

static void pending_free(struct dispatch_pending *p)
{
    free(p->device_id);
    free(p->action);
    free(p->params);
    free(p->source);
    free(p->topic);
    json_object_put(p->changes);
    free(p);
}

static enum ev_verdict verdict(const struct dispatch_result *r)
{
    switch (r->st) {
    case WB_OK:
        return EV_CMD_SENT;
    case WB_ERR_INVALID:
    case WB_ERR_RANGE:
        return EV_CMD_INVALID;
    case WB_ERR_NOT_FOUND:
        return EV_CMD_UNKNOWN;
    default:
        return r->refused ? EV_CMD_REFUSED : EV_CMD_UNDELIVERED;
    }
}

/* The outcome of a finished command: one EV_COMMAND (its command_logs row)
 * and its log line. */
static void log_row(struct dispatch_ctx *d, const struct dispatch_result *out,
                    const char *device_id, const char *action, const char *ptext,
                    const char *source, const char *created)
{
    char completed[UTIL_TS_LEN];
    util_iso8601_now(completed);
    struct event ev = {.kind = EV_COMMAND, .now_ms = util_mono_ms()};
    ev.u.command = (struct ev_command){
        .command_id = out->command_id,
        .dev = cfg_find_device(d->cfg, device_id),
        .device_id = device_id,
        .action = action,
        .params = ptext,
        .source = source,
        .status = out->status,
        .error = out->error[0] ? out->error : NULL,
        .created_at = created,
        .completed_at = completed,
        .verdict = verdict(out),
    };
    sinks_emit(d->sinks, &ev);
    if (out->st == WB_OK)
        log_info("command %s: %s/%s from %s sent", out->command_id, device_id, action, source);
    else if (out->refused)
        log_error("command %s: %.64s/%.64s from %s %s: %s", out->command_id, device_id, action,
                  source, out->status, out->error);
    else
        log_warn("command %s: %.64s/%.64s from %s %s: %s", out->command_id, device_id, action,
                 source, out->status, out->error);
}

/* Ends a pending command (already unlinked): the set, the row, the
 * caller. rc 0 = acknowledged. */
static void pending_finish(struct dispatch_ctx *d, struct dispatch_pending *p, int rc,
                           const char *why)
{
    struct dispatch_result r;
    memset(&r, 0, sizeof(r));
    memcpy(r.command_id, p->command_id, sizeof(r.command_id));
    if (rc == 0) {
        r.status = "sent";
        r.st = WB_OK;
        if (p->changes)
            devmgr_apply(d->devmgr, p->device_id, p->changes);
    } else {
        r.refused = rc >= 0x80;
        set_error(&r, WB_ERR_MQTT, "failed", "%s '%s': %s",
                  r.refused ? "the broker refused the publication to"
                            : "not delivered to the broker:",
                  p->topic, why && why[0] ? why : "unknown reason");
    }
    log_row(d, &r, p->device_id, p->action, p->params, p->source, p->created);
    if (p->done)
        p->done(p->done_ud, &r);
    pending_free(p);
}

static struct dispatch_pending *pending_take(struct dispatch_ctx *d, uint64_t token)
{
    for (struct dispatch_pending **pp = &d->pending; *pp; pp = &(*pp)->next)
        if ((*pp)->token == token) {
            struct dispatch_pending *p = *pp;
            *pp = p->next;
            return p;
        }
    return NULL;
}

void dispatch_on_ack(struct dispatch_ctx *d, uint64_t token, int rc, const char *why)
{
    OWNER_ASSERT();
    struct dispatch_pending *p = pending_take(d, token);
    if (!p) {
        if (!d->stopping)
            log_warn("a PUBACK came after its command had timed out (%s): the command was %s "
                     "after all",
                     rc == 0 ? "acknowledged" : why, rc == 0 ? "delivered" : "not delivered");
        return;
    }
    pending_finish(d, p, rc, why);
}

int64_t dispatch_tick(struct dispatch_ctx *d, int64_t now_ms)
{
    OWNER_ASSERT();
    int64_t next = INT64_MAX;
    for (bool again = true; again;) {
        again = false;
        for (struct dispatch_pending *p = d->pending; p; p = p->next) {
            if (p->deadline_ms <= now_ms) {
                /* finish may dispatch more (a scenario's next step): rescan */
                pending_finish(d, pending_take(d, p->token), -1,
                               "no PUBACK from the broker within 5 s");
                again = true;
                break;
            }
        }
    }
    for (struct dispatch_pending *p = d->pending; p; p = p->next)
        if (p->deadline_ms < next)
            next = p->deadline_ms;
    return next;
}

void dispatch_abort(struct dispatch_ctx *d, const char *why)
{
    OWNER_ASSERT();
    d->stopping = true;
    while (d->pending) {
        struct dispatch_pending *p = d->pending;
        d->pending = p->next;
        pending_finish(d, p, -1, why);
    }
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *r = s ? strdup(s) : NULL;
    if (s && !r)
        *oom = true;
    return r;
}

/* Hands the command to the publisher that reports outcomes; WB_OK when it
 * is pending (changes then belong to it). */
static wb_status send_pending(struct dispatch_ctx *d, const struct cfg_action *a,
                              const char *payload, const char *device_id, const char *ptext,
                              const char *source, const char *created, json_object **changes,
                              dispatch_done_fn done, void *done_ud, struct dispatch_result *out)
{
    struct dispatch_pending *p = calloc(1, sizeof(*p));
    bool oom = !p;
    if (p) {
        p->device_id = dup_or_null(device_id, &oom);
        p->action = dup_or_null(a->name, &oom);
        p->params = dup_or_null(ptext, &oom);
        p->source = dup_or_null(source, &oom);
        p->topic = dup_or_null(a->topic, &oom);
    }
    if (oom) {
        if (p)
            pending_free(p);
        set_error(out, WB_ERR_NOMEM, "failed", "out of memory");
        return WB_ERR_NOMEM;
    }
    p->token = ++d->next_token;
    memcpy(p->command_id, out->command_id, sizeof(p->command_id));
    memcpy(p->created, created, sizeof(p->created));
    if (d->publish_acked(d->publish_acked_ud, a->topic, payload, strlen(payload), p->token) !=
        WB_OK) {
        pending_free(p);
        set_error(out, WB_ERR_MQTT, "failed", "could not publish to '%s': MQTT not connected",
                  a->topic);
        return WB_ERR_MQTT;
    }
    p->changes = *changes;
    *changes = NULL;
    p->done = done;
    p->done_ud = done_ud;
    p->deadline_ms = util_mono_ms() + DISPATCH_ACK_TIMEOUT_MS;
    p->next = d->pending;
    d->pending = p;
    out->pending = true;
    log_debug("command %s: %s/%s from %s published, waiting for the PUBACK", out->command_id,
              device_id, a->name, source);
    return WB_OK;
}

static wb_status dispatch(struct dispatch_ctx *d, const char *device_id, const char *action,
                          json_object *params, const char *raw, size_t raw_len, const char *source,
                          dispatch_done_fn done, void *done_ud, struct dispatch_result *out)
{
    char created[UTIL_TS_LEN];
    json_object *valid = NULL, *changes = NULL, *parsed = NULL;
    char *payload = NULL;
    const char *ptext;
    const struct cfg_action *a = NULL;

    OWNER_ASSERT();
    memset(out, 0, sizeof(*out));
    util_uuid(out->command_id);
    util_iso8601_now(created);
    out->status = "sent";

    const struct cfg_device *dev = cfg_find_device(d->cfg, device_id);
    if (!dev) {
        set_error(out, WB_ERR_NOT_FOUND, "rejected", "unknown device '%.64s'", device_id);
        goto log;
    }
    if (!(a = cfg_find_action(dev, action))) {
        set_error(out, WB_ERR_NOT_FOUND, "rejected", "device '%s' has no action '%.64s'", device_id,
                  action);
        goto log;
    }
    if (raw) {
        char perr[256];
        if (action_params_from_payload(a, raw, raw_len, &parsed, perr, sizeof(perr)) != WB_OK) {
            set_error(out, WB_ERR_INVALID, "rejected", "%s", perr);
            goto log;
        }
        params = parsed;
    }
    if (params && !json_object_is_type(params, json_type_object)) {
        set_error(out, WB_ERR_INVALID, "rejected", "params must be a JSON object");
        goto log;
    }
    char err[256];
    wb_status st = action_validate(a, params, &valid, err, sizeof(err));
    if (st == WB_OK)
        st = action_render_payload(a, valid, &payload, err, sizeof(err));
    if (st == WB_OK)
        st = action_render_set(a, valid, &changes, err, sizeof(err));
    if (st != WB_OK) {
        set_error(out, st == WB_ERR_NOMEM ? WB_ERR_NOMEM : WB_ERR_INVALID, "rejected", "%s", err);
        goto log;
    }
    if (d->stopping) {
        set_error(out, WB_ERR_MQTT, "failed", "the bridge is stopping");
        goto log;
    }
    sinks_expect_echo(d->sinks, a->topic, payload, strlen(payload));
    if (d->publish_acked) {
        const char *pt = json_object_to_json_string_ext(valid, JSON_C_TO_STRING_PLAIN);
        if (send_pending(d, a, payload, device_id, pt, source, created, &changes, done, done_ud,
                         out) != WB_OK)
            goto log;
        free(payload);
        json_object_put(valid);
        json_object_put(changes);
        json_object_put(parsed);
        return WB_OK;
    }
    if (!d->publish || d->publish(d->publish_ud, a->topic, payload, strlen(payload)) != WB_OK) {
        set_error(out, WB_ERR_MQTT, "failed", "could not publish to '%s': MQTT not connected",
                  a->topic);
        goto log;
    }
    if (changes)
        devmgr_apply(d->devmgr, device_id, changes);
log:
    ptext = valid    ? json_object_to_json_string_ext(valid, JSON_C_TO_STRING_PLAIN)
            : params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN)
                     : NULL;
    log_row(d, out, device_id, action, ptext, source, created);
    free(payload);
    json_object_put(valid);
    json_object_put(changes);
    json_object_put(parsed);
    return out->st;
}

wb_status dispatch_action(struct dispatch_ctx *d, const char *device_id, const char *action,
                          json_object *params, const char *source, struct dispatch_result *out)
{
    return dispatch(d, device_id, action, params, NULL, 0, source, NULL, NULL, out);
}

wb_status dispatch_action_cb(struct dispatch_ctx *d, const char *device_id, const char *action,
                             json_object *params, const char *source, dispatch_done_fn done,
                             void *done_ud, struct dispatch_result *out)
{
    return dispatch(d, device_id, action, params, NULL, 0, source, done, done_ud, out);
}

wb_status dispatch_action_payload(struct dispatch_ctx *d, const char *device_id, const char *action,
                                  const char *payload, size_t len, const char *source,
                                  struct dispatch_result *out)
{
    return dispatch(d, device_id, action, NULL, payload ? payload : "", len, source, NULL, NULL,
                    out);
}

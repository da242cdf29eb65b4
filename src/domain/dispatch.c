/*
 * dispatch.c - the single dispatch function of action requests (see
 * dispatch.h). Runs on the core thread only.
 */
#include "wbmb/dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/action.h"
#include "wbmb/log.h"
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

/* WB convention: meta/error "w" on a control whose last write failed. */
static void mark_control_error(struct dispatch_ctx *d, const struct cfg_device *dev,
                               const char *action, bool error)
{
    if (!dev || !dev->wb_mirror || !mirror_field_name_ok(action))
        return;
    char key[300], topic[MIRROR_TOPIC_MAX];
    snprintf(key, sizeof(key), "%s/%s", dev->id, action);
    bool was = json_object_object_get_ex(d->errors_set, key, NULL);
    if (error == was)
        return;
    if (error)
        json_object_object_add(d->errors_set, key, NULL);
    else
        json_object_object_del(d->errors_set, key);
    snprintf(topic, sizeof(topic), "/devices/%s/controls/%s/meta/error", dev->id, action);
    mirror_publish_raw(d->pub, topic, error ? "w" : "", error ? 1 : 0, 1, true);
}

static wb_status dispatch(struct dispatch_ctx *d, const char *device_id, const char *action,
                          json_object *params, const char *raw, size_t raw_len, const char *source,
                          struct dispatch_result *out)
{
    char created[UTIL_TS_LEN], completed[UTIL_TS_LEN];
    json_object *valid = NULL, *changes = NULL, *parsed = NULL;
    char *payload = NULL;
    const struct cfg_action *a = NULL;

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
    devmgr_expect_echo(d->devmgr, a->topic, payload, strlen(payload));
    if (mirror_publish_raw(d->pub, a->topic, payload, strlen(payload), 1, false) != WB_OK) {
        set_error(out, WB_ERR_MQTT, "failed", "could not publish to '%s': MQTT not connected",
                  a->topic);
        goto log;
    }
    if (changes)
        devmgr_apply(d->devmgr, device_id, changes);
log:
    if (out->st == WB_OK || out->st == WB_ERR_INVALID)
        mark_control_error(d, dev, a ? a->name : action, out->st == WB_ERR_INVALID);
    util_iso8601_now(completed);
    const char *ptext = valid    ? json_object_to_json_string_ext(valid, JSON_C_TO_STRING_PLAIN)
                        : params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN)
                                 : NULL;
    struct store_command_row row = {
        .command_id = out->command_id,
        .device_id = device_id,
        .action = action,
        .params = ptext,
        .source = source,
        .status = out->status,
        .error = out->error[0] ? out->error : NULL,
        .created_at = created,
        .completed_at = completed,
    };
    if (store_command_put(d->store, &row) != WB_OK)
        log_warn("command %s: could not queue its command_logs row", out->command_id);
    if (out->st == WB_OK)
        log_info("command %s: %s/%s from %s sent", out->command_id, device_id, action, source);
    else
        log_warn("command %s: %.64s/%.64s from %s %s: %s", out->command_id, device_id, action,
                 source, out->status, out->error);
    free(payload);
    json_object_put(valid);
    json_object_put(changes);
    json_object_put(parsed);
    return out->st;
}

wb_status dispatch_action(struct dispatch_ctx *d, const char *device_id, const char *action,
                          json_object *params, const char *source, struct dispatch_result *out)
{
    return dispatch(d, device_id, action, params, NULL, 0, source, out);
}

wb_status dispatch_action_payload(struct dispatch_ctx *d, const char *device_id, const char *action,
                                  const char *payload, size_t len, const char *source,
                                  struct dispatch_result *out)
{
    return dispatch(d, device_id, action, NULL, payload ? payload : "", len, source, out);
}

/*
 * action.h - validation of action parameters, payload templates, the
 * optimistic "set" update, and scenario step conditions. Pure functions.
 *
 * Templates (grammar in template.h): "{name}" is replaced by the param's
 * value (numbers in shortest form, booleans as true/false, strings as they
 * are); "{{" and "}}" stand for literal braces. A payload template that is a
 * JSON object stays valid JSON: a string param substituted inside a JSON
 * string is escaped.
 */
#ifndef WBMB_ACTION_H
#define WBMB_ACTION_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "wbmb/config.h"
#include "wbmb/status.h"

/* Checks in (an object, or NULL for none) against a->params: unknown names,
 * types, min/max, enum values, required; fills defaults. *out = new object
 * of the validated params. WB_ERR_INVALID/WB_ERR_RANGE with reason in err. */
wb_status action_validate(const struct cfg_action *a, json_object *in, json_object **out, char *err,
                          size_t errlen);

/* Params from an MQTT /on payload: a JSON object of params, or the single
 * param's value as plain text (typed by that param), or empty/"1" for an
 * action without params. *out = new object (not yet validated). */
wb_status action_params_from_payload(const struct cfg_action *a, const char *buf, size_t len,
                                     json_object **out, char *err, size_t errlen);

/* *out = malloc'd payload text from a->payload and validated params. */
wb_status action_render_payload(const struct cfg_action *a, json_object *params, char **out,
                                char *err, size_t errlen);

/* *out = new object of state changes from a->set; a string value that is
 * exactly "{name}" takes the param's typed value, other strings are
 * templates. NULL *out (WB_OK) when the action has no set. */
wb_status action_render_set(const struct cfg_action *a, json_object *params, json_object **out,
                            char *err, size_t errlen);

/* true when state satisfies c (a missing field equals nothing: == false, != true). */
bool action_condition_holds(const struct cfg_condition *c, json_object *state);

#endif

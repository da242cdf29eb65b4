/*
 * payload.h - turning MQTT payloads into state values, strictly.
 *
 * Plain payloads are parsed by the binding's type: bool accepts 1/0,
 * true/false, on/off in any case; int is a whole base-10 number in int64
 * range; float a finite decimal number; string any valid UTF-8 text.
 * Surrounding ASCII white space is ignored for bool/int/float. JSON payloads
 * must be an object, valid UTF-8, nested at most PAYLOAD_MAX_DEPTH deep.
 * Nothing here keeps state: every function is pure and fuzzable.
 */
#ifndef WBMB_PAYLOAD_H
#define WBMB_PAYLOAD_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "wbmb/config.h"
#include "wbmb/status.h"

#define PAYLOAD_MAX_LEN (64 * 1024) /* longer payloads are rejected */
#define PAYLOAD_MAX_STRING 4096     /* longest accepted plain string value */
#define PAYLOAD_MAX_DEPTH 16

/* *out = new json value (boolean, int, double or string). On failure returns
 * WB_ERR_INVALID (or WB_ERR_RANGE) and a reason in err; *out is NULL. */
wb_status payload_parse_scalar(enum cfg_value_type type, const char *buf, size_t len,
                               json_object **out, char *err, size_t errlen);

/* *out = new json object parsed from buf. Rejects non-objects, invalid
 * UTF-8, nesting past PAYLOAD_MAX_DEPTH, trailing garbage, NaN/Infinity. */
wb_status payload_parse_object(const char *buf, size_t len, json_object **out, char *err,
                               size_t errlen);

/* payload_parse_object() for a device's state message (the device manager
 * applies it field by field): an integer beyond int64 becomes a double (the
 * rule of every other number: "9223372036854775808" is the double 2^63,
 * stored as 9223372036854775808.0); NaN, Infinity and numbers beyond double
 * range are left for payload_value_check(); a key with an escaped NUL
 * (\u0000) rejects the message (json-c would cut the key at the NUL). */
wb_status payload_parse_state(const char *buf, size_t len, json_object **out, char *err,
                              size_t errlen);

/* WB_OK when v (any depth) holds only finite numbers; else WB_ERR_INVALID
 * (NaN, Infinity) or WB_ERR_RANGE (beyond double range), a reason in err. */
wb_status payload_value_check(json_object *v, char *err, size_t errlen);

/* Fills changes (an existing object) with the state fields a JSON message
 * carries for binding b: with b->fields, each field whose dotted path exists
 * in msg; without, every top-level key of msg. Values are new references.
 * Returns the number of fields added. */
size_t payload_map_fields(const struct cfg_state_binding *b, json_object *msg,
                          json_object *changes);

/* payload_parse_scalar() for state binding b, with b->spec applied
 * (payload_spec.c): a payload found in b->spec.map (its text, trimmed of
 * white space unless b is a string binding) gives the mapped value; any
 * other payload is parsed by b->type; then b->spec.scale multiplies the
 * number (an int binding's scale is whole: the product stays an int, and
 * one beyond int64 is WB_ERR_RANGE; a float product beyond double range is
 * WB_ERR_RANGE). *out is a new value; NULL on failure, a reason in err. */
wb_status payload_parse_binding(const struct cfg_state_binding *b, const char *buf, size_t len,
                                json_object **out, char *err, size_t errlen);

/* v (a JSON field's value) with spec s applied: a string, number or boolean
 * whose text (a string as is, a number or boolean as JSON writes it) is in
 * s->map becomes the mapped value; then a number is multiplied by s->scale:
 * an integer stays an integer when the product is a whole number within
 * int64, else becomes a double; a double stays a double (possibly
 * Infinity: payload_value_check() refuses that). Other values pass as they
 * are. Returns a new reference (of v itself when nothing applies; s may be
 * NULL); NULL on allocation failure. */
json_object *payload_apply_spec(const struct cfg_field_spec *s, json_object *v);

/* Narrows buf/len to the text without leading and trailing white space
 * (space, \t, \n, \r, \v, \f). */
void payload_trim(const char **buf, size_t *len);

/* What an availability payload says for a: 1 online, 0 offline, -1
 * neither. buf[0..len) is compared with a->online / a->offline after
 * trimming surrounding white space; a payload that does not match as is
 * and is a JSON object (after leading white space) is parsed, and the
 * value of its key a->json_field (a string as is, a number or boolean as
 * JSON writes it) is compared instead, so {"state": "online"} and
 * {"state":"online"} say the same. Anything else, a JSON object that does
 * not parse included, is -1. */
int payload_availability(const struct cfg_availability *a, const char *buf, size_t len);

/* true when buf[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool payload_utf8_valid(const char *buf, size_t len);

#endif

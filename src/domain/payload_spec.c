/*
 * payload_spec.c - a state field's spec (map, scale) applied to received
 * values, and availability payloads (see payload.h).
 *
 * Pure functions, like the rest of payload.h: no globals, no logging. The
 * order is fixed: map first (on the received text), then scale (on the
 * number), then, for a plain binding, nothing else: a mapped value already
 * has the binding's type (the config loader checked it), an unmapped
 * payload goes through payload_parse_scalar() as without a map. Mapped
 * values are copied out of the config, never shared: the config is read by
 * other threads and json-c reference counts are not atomic.
 */
#include "wbmb/payload.h"
#include "wbmb/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool text_eq(const char *t, size_t n, const char *s)
{
    return s && strlen(s) == n && memcmp(t, s, n) == 0;
}

/* The mapped value of text t[0..n), NULL when s maps no such text. */
static json_object *map_find(const struct cfg_field_spec *s, const char *t, size_t n)
{
    for (size_t i = 0; s && i < s->n_map; i++)
        if (text_eq(t, n, s->map[i].from))
            return s->map[i].to;
    return NULL;
}

/* A new scalar equal to v (boolean, int, double or string). */
static json_object *scalar_copy(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        return json_object_new_boolean(json_object_get_boolean(v));
    case json_type_int:
        return json_object_new_int64(json_object_get_int64(v));
    case json_type_double:
        return json_object_new_double(json_object_get_double(v));
    case json_type_string:
        return json_object_new_string_len(json_object_get_string(v), json_object_get_string_len(v));
    default:
        return json_object_get(v);
    }
}

/* The text of a scalar as the map looks it up: a string as is, a number or
 * boolean as JSON writes it. false for null, objects and arrays. */
static bool value_text(json_object *v, char *buf, size_t cap, const char **t, size_t *n)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        *t = json_object_get_string(v);
        *n = (size_t)json_object_get_string_len(v);
        return true;
    case json_type_boolean:
        *t = json_object_get_boolean(v) ? "true" : "false";
        *n = strlen(*t);
        return true;
    case json_type_int:
        snprintf(buf, cap, "%" PRId64, json_object_get_int64(v));
        *t = buf;
        *n = strlen(buf);
        return true;
    case json_type_double:
        /* json-c keeps a parsed double's source text ("1.50" stays "1.50"). */
        *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        *n = strlen(*t);
        return true;
    default:
        return false;
    }
}

/* 2^63 as a double: the first integer past int64. */
#define INT64_LIMIT 9223372036854775808.0

json_object *payload_apply_spec(const struct cfg_field_spec *s, json_object *v)
{
    char buf[32];
    const char *t;
    size_t n;
    json_object *mapped = NULL;
    if (s && s->n_map && value_text(v, buf, sizeof(buf), &t, &n))
        mapped = map_find(s, t, n);
    json_object *cur = mapped ? mapped : v;
    if (!s || !s->has_scale ||
        !(json_object_is_type(cur, json_type_int) || json_object_is_type(cur, json_type_double)))
        return mapped ? scalar_copy(mapped) : json_object_get(v);
    double r = json_object_get_double(cur) * s->scale;
    if (json_object_is_type(cur, json_type_int)) {
        int64_t i = json_object_get_int64(cur), p;
        /* A whole scale multiplies exactly; a fractional one through double. */
        if (s->scale == floor(s->scale) && fabs(s->scale) < INT64_LIMIT &&
            !__builtin_mul_overflow(i, (int64_t)s->scale, &p))
            return json_object_new_int64(p);
        if (r == floor(r) && r >= -INT64_LIMIT && r < INT64_LIMIT)
            return json_object_new_int64((int64_t)r);
    }
    return json_object_new_double(r);
}

/* v (new, of a plain int or float binding) multiplied by scale; v is put. */
static wb_status scale_plain(enum cfg_value_type type, double scale, json_object **v, char *err,
                             size_t errlen)
{
    json_object *in = *v, *out = NULL;
    if (type == CFG_T_INT) {
        /* The loader allows only whole scales on int bindings. */
        int64_t p;
        if (fabs(scale) >= INT64_LIMIT ||
            __builtin_mul_overflow(json_object_get_int64(in), (int64_t)scale, &p)) {
            util_errf(err, errlen, "scaled value out of range (64-bit)");
            json_object_put(in);
            *v = NULL;
            return WB_ERR_RANGE;
        }
        out = json_object_new_int64(p);
    } else {
        double r = json_object_get_double(in) * scale;
        if (!isfinite(r)) {
            util_errf(err, errlen, "scaled value out of range");
            json_object_put(in);
            *v = NULL;
            return WB_ERR_RANGE;
        }
        out = json_object_new_double(r);
    }
    json_object_put(in);
    *v = out;
    return out ? WB_OK : WB_ERR_NOMEM;
}

wb_status payload_parse_binding(const struct cfg_state_binding *b, const char *buf, size_t len,
                                json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    static const struct cfg_field_spec none;
    const struct cfg_field_spec *s = b->spec ? b->spec : &none;
    json_object *v = NULL;
    /* An oversized payload is left to payload_parse_scalar()'s refusal. */
    if (s->n_map && (buf || !len) && len <= PAYLOAD_MAX_LEN) {
        const char *t = buf ? buf : "";
        size_t n = len;
        if (b->type != CFG_T_STRING)
            payload_trim(&t, &n);
        json_object *m = map_find(s, t, n);
        if (m && !(v = scalar_copy(m)))
            return WB_ERR_NOMEM;
    }
    if (!v) {
        wb_status st = payload_parse_scalar(b->type, buf, len, &v, err, errlen);
        if (st != WB_OK)
            return st;
    }
    if (s->has_scale && (b->type == CFG_T_INT || b->type == CFG_T_FLOAT)) {
        wb_status st = scale_plain(b->type, s->scale, &v, err, errlen);
        if (st != WB_OK)
            return st;
    }
    *out = v;
    return WB_OK;
}

int payload_availability(const struct cfg_availability *a, const char *buf, size_t len)
{
    if (!a || (!buf && len) || len > PAYLOAD_MAX_LEN)
        return -1;
    const char *t = buf ? buf : "";
    size_t n = len;
    payload_trim(&t, &n);
    if (text_eq(t, n, a->online))
        return 1;
    if (text_eq(t, n, a->offline))
        return 0;
    if (n == 0 || t[0] != '{')
        return -1;
    json_object *o = NULL, *v = NULL;
    char err[8];
    if (payload_parse_object(t, n, &o, err, sizeof(err)) != WB_OK)
        return -1;
    int r = -1;
    char num[32];
    const char *vt;
    size_t vn;
    if (json_object_object_get_ex(o, a->json_field ? a->json_field : "state", &v) &&
        value_text(v, num, sizeof(num), &vt, &vn)) {
        if (text_eq(vt, vn, a->online))
            r = 1;
        else if (text_eq(vt, vn, a->offline))
            r = 0;
    }
    json_object_put(o);
    return r;
}

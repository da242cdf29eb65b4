/*
 * action.c - what happens between "run action X with these params" and the
 * MQTT publication: parameter validation, params from an /on payload,
 * payload templates, the optimistic "set" update, and step conditions.
 *
 * Pure functions over the immutable config structs: nothing here keeps
 * state, logs, or takes references to config-owned json values (config is
 * shared between threads and json-c reference counts are not atomic), so
 * every value handed out is a deep copy or a fresh object.
 *
 * Template rules (CONTRACT §3 "payload"; the grammar, which the config
 * checks too, is template.h's tmpl_walk(), the values are put in here):
 *   Plain mode (every template that is not a JSON object): "{name}" is the
 *   param's value (ints as integers, doubles in shortest round-trip form,
 *   booleans true/false, strings as they are), "{{" and "}}" are literal
 *   braces, any other brace is an error, as is a name that is not a param.
 *   JSON mode: the template, after leading white space, is '{' followed by
 *   optional white space and '"' or '}' (a placeholder name never starts with
 *   '"', so "{level}" stays plain). Inside JSON strings the plain rules apply
 *   and a substituted string is JSON-escaped; outside strings only "{name}"
 *   is a placeholder (other braces are JSON structure), numbers and booleans
 *   go in raw and a string goes in as a quoted JSON string. The result is
 *   parsed back and must be a valid JSON object, else WB_ERR_INVALID.
 *   Output is bounded by PAYLOAD_MAX_LEN (WB_ERR_RANGE beyond).
 *
 * Validation rules: a JSON null is a type error, not "absent"; an int param
 * takes a double only when it is integral and inside int64; string min/max
 * count characters (code points), not bytes; defaults go through the same
 * checks as given values (a bad default in the config is caught, not sent).
 * In "set", a field that is exactly "{name}" of an optional param that was
 * not given is left out (the state field keeps its value), whereas a
 * payload template referring to it is an error: a command cannot have holes.
 *
 * Condition rule: values compare by JSON type with no coercion, except
 * that numbers compare numerically (30 == 30.0); a boolean never equals a
 * string or number ("true" != true, 1 != true). A missing or null field
 * equals nothing.
 */
#include "wbmb/action.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/payload.h"
#include "wbmb/template.h"
#include "wbmb/util.h"

/* The config checks templates against template.h's bounds; a payload that
 * passed them must pass payload_parse_object() here too. */
_Static_assert(TMPL_MAX_LEN == PAYLOAD_MAX_LEN, "template and payload length bounds differ");
_Static_assert(TMPL_MAX_DEPTH == PAYLOAD_MAX_DEPTH, "template and payload depth bounds differ");

/* 2^63 as a double: the first value past the int64 range. */
#define TWO_POW_63 9223372036854775808.0

/* Shortest text that reads back as the same double: whole numbers below
 * 1e17 without exponent ("100", not "1e+02"), others "%.*g" ("21.5"). */
static void fmt_double(double d, char *buf, size_t len)
{
    if (d == floor(d) && fabs(d) < 1e17) {
        snprintf(buf, len, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static const struct cfg_param *find_param(const struct cfg_action *a, const char *name, size_t len)
{
    for (size_t i = 0; i < a->n_params; i++)
        if (strlen(a->params[i].name) == len && memcmp(a->params[i].name, name, len) == 0)
            return &a->params[i];
    return NULL;
}

/* Number of UTF-8 code points (the string is already valid UTF-8). */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static const char *type_name(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_string:
        return "a string";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    }
    return "?";
}

/* true when an int-typed json value lies beyond INT64_MAX (json-c keeps
 * such values as uint64 and clamps json_object_get_int64). */
static bool int_above_int64(json_object *v)
{
    return json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) > INT64_MAX;
}

static wb_status check_bounds(const struct cfg_param *p, double d, const char *shown, char *err,
                              size_t errlen)
{
    char lim[32];
    if (p->has_min && d < p->min) {
        fmt_double(p->min, lim, sizeof(lim));
        util_errf(err, errlen, "param '%s': %s is below the minimum %s", p->name, shown, lim);
        return WB_ERR_RANGE;
    }
    if (p->has_max && d > p->max) {
        fmt_double(p->max, lim, sizeof(lim));
        util_errf(err, errlen, "param '%s': %s is above the maximum %s", p->name, shown, lim);
        return WB_ERR_RANGE;
    }
    return WB_OK;
}

static wb_status check_int(const struct cfg_param *p, json_object *v, json_object **out, char *err,
                           size_t errlen)
{
    char shown[40];
    int64_t i;
    if (json_object_is_type(v, json_type_int)) {
        if (int_above_int64(v)) {
            util_errf(err, errlen, "param '%s': %" PRIu64 " is out of the 64-bit integer range",
                      p->name, json_object_get_uint64(v));
            return WB_ERR_RANGE;
        }
        i = json_object_get_int64(v);
    } else if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        fmt_double(d, shown, sizeof(shown));
        if (!isfinite(d) || d < -TWO_POW_63 || d >= TWO_POW_63) {
            util_errf(err, errlen, "param '%s': %s is out of the 64-bit integer range", p->name,
                      shown);
            return WB_ERR_RANGE;
        }
        if (d != floor(d)) {
            util_errf(err, errlen, "param '%s': expected an integer, got %s", p->name, shown);
            return WB_ERR_INVALID;
        }
        i = (int64_t)d; /* exact: integral and in range */
    } else {
        util_errf(err, errlen, "param '%s': expected an integer, got %s", p->name, type_name(v));
        return WB_ERR_INVALID;
    }
    snprintf(shown, sizeof(shown), "%" PRId64, i);
    wb_status st = check_bounds(p, (double)i, shown, err, errlen);
    if (st != WB_OK)
        return st;
    *out = json_object_new_int64(i);
    return *out ? WB_OK : WB_ERR_NOMEM;
}

static wb_status check_float(const struct cfg_param *p, json_object *v, json_object **out,
                             char *err, size_t errlen)
{
    double d;
    if (json_object_is_type(v, json_type_int))
        d = int_above_int64(v) ? (double)json_object_get_uint64(v)
                               : (double)json_object_get_int64(v);
    else if (json_object_is_type(v, json_type_double))
        d = json_object_get_double(v);
    else {
        util_errf(err, errlen, "param '%s': expected a number, got %s", p->name, type_name(v));
        return WB_ERR_INVALID;
    }
    if (!isfinite(d)) {
        util_errf(err, errlen, "param '%s': number out of range", p->name);
        return WB_ERR_RANGE;
    }
    char shown[32];
    fmt_double(d, shown, sizeof(shown));
    wb_status st = check_bounds(p, d, shown, err, errlen);
    if (st != WB_OK)
        return st;
    *out = json_object_new_double(d);
    return *out ? WB_OK : WB_ERR_NOMEM;
}

static wb_status check_string(const struct cfg_param *p, json_object *v, json_object **out,
                              char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_string)) {
        util_errf(err, errlen, "param '%s': expected a string, got %s", p->name, type_name(v));
        return WB_ERR_INVALID;
    }
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (!payload_utf8_valid(s, len)) {
        util_errf(err, errlen, "param '%s': string is not valid UTF-8", p->name);
        return WB_ERR_INVALID;
    }
    /* A command is text: a NUL ("\u0000" in a JSON body) would cut the
     * rendered payload short of its declared length. */
    if (memchr(s, '\0', len)) {
        util_errf(err, errlen, "param '%s': string contains a NUL character", p->name);
        return WB_ERR_INVALID;
    }
    if (p->type == CFG_T_ENUM) {
        for (size_t i = 0; i < p->n_enum_values; i++)
            if (strlen(p->enum_values[i]) == len && memcmp(p->enum_values[i], s, len) == 0)
                goto ok;
        util_errf(err, errlen, "param '%s': '%.40s' is not one of the allowed values", p->name, s);
        return WB_ERR_INVALID;
    }
    /* String bounds count characters (code points), not bytes. */
    size_t chars = utf8_chars(s, len);
    if (p->has_min && (double)chars < p->min) {
        util_errf(err, errlen, "param '%s': string shorter than %.0f characters", p->name, p->min);
        return WB_ERR_RANGE;
    }
    if (p->has_max && (double)chars > p->max) {
        util_errf(err, errlen, "param '%s': string longer than %.0f characters", p->name, p->max);
        return WB_ERR_RANGE;
    }
ok:
    *out = json_object_new_string_len(s, (int)len);
    return *out ? WB_OK : WB_ERR_NOMEM;
}

/* *out = fresh typed copy of v when it satisfies p. */
static wb_status check_param(const struct cfg_param *p, json_object *v, json_object **out,
                             char *err, size_t errlen)
{
    switch (p->type) {
    case CFG_T_INT:
        return check_int(p, v, out, err, errlen);
    case CFG_T_FLOAT:
        return check_float(p, v, out, err, errlen);
    case CFG_T_BOOL:
        if (!json_object_is_type(v, json_type_boolean)) {
            util_errf(err, errlen, "param '%s': expected a boolean, got %s", p->name, type_name(v));
            return WB_ERR_INVALID;
        }
        *out = json_object_new_boolean(json_object_get_boolean(v));
        return *out ? WB_OK : WB_ERR_NOMEM;
    case CFG_T_STRING:
    case CFG_T_ENUM:
        return check_string(p, v, out, err, errlen);
    case CFG_T_JSON:
        break;
    }
    util_errf(err, errlen, "param '%s': unsupported type", p->name);
    return WB_ERR_INVALID;
}

wb_status action_validate(const struct cfg_action *a, json_object *in, json_object **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (in && !json_object_is_type(in, json_type_object)) {
        util_errf(err, errlen, "params must be a JSON object, got %s", type_name(in));
        return WB_ERR_INVALID;
    }
    if (in) {
        json_object_object_foreach(in, key, val)
        {
            (void)val;
            if (!find_param(a, key, strlen(key))) {
                util_errf(err, errlen, "action '%s' has no param '%.64s'", a->name, key);
                return WB_ERR_INVALID;
            }
        }
    }
    json_object *res = json_object_new_object();
    if (!res)
        return WB_ERR_NOMEM;
    wb_status st = WB_OK;
    for (size_t i = 0; i < a->n_params; i++) {
        const struct cfg_param *p = &a->params[i];
        json_object *v = NULL;
        if (!in || !json_object_object_get_ex(in, p->name, &v)) {
            if (!p->default_value) {
                if (p->required) {
                    util_errf(err, errlen, "param '%s' is required", p->name);
                    st = WB_ERR_INVALID;
                    goto fail;
                }
                continue;
            }
            v = p->default_value; /* checked like a given value: a copy comes out */
        }
        json_object *typed = NULL;
        st = check_param(p, v, &typed, err, errlen);
        if (st != WB_OK)
            goto fail;
        if (json_object_object_add(res, p->name, typed) != 0) {
            json_object_put(typed);
            st = WB_ERR_NOMEM;
            goto fail;
        }
    }
    *out = res;
    return WB_OK;
fail:
    json_object_put(res);
    return st;
}

wb_status action_params_from_payload(const struct cfg_action *a, const char *buf, size_t len,
                                     json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > PAYLOAD_MAX_LEN) {
        util_errf(err, errlen, "payload too long (%zu bytes, at most %d)", len, PAYLOAD_MAX_LEN);
        return WB_ERR_INVALID;
    }
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    bool looks_json = i < len && buf[i] == '{';
    char jerr[160] = "";
    if (looks_json && payload_parse_object(buf, len, out, jerr, sizeof(jerr)) == WB_OK)
        return WB_OK;
    if (a->n_params == 0) {
        /* Any payload ("1" from a pushbutton) means "run it". */
        *out = json_object_new_object();
        return *out ? WB_OK : WB_ERR_NOMEM;
    }
    if (a->n_params > 1) {
        if (looks_json)
            util_errf(err, errlen, "action '%s': %s", a->name, jerr);
        else
            util_errf(err, errlen, "action '%s' takes %zu params: send a JSON object", a->name,
                      a->n_params);
        return WB_ERR_INVALID;
    }
    const struct cfg_param *p = &a->params[0];
    bool textual = p->type == CFG_T_STRING || p->type == CFG_T_ENUM;
    if (looks_json && !textual) {
        util_errf(err, errlen, "action '%s': %s", a->name, jerr);
        return WB_ERR_INVALID;
    }
    json_object *v = NULL;
    char perr[160] = "";
    wb_status st =
        payload_parse_scalar(textual ? CFG_T_STRING : p->type, buf, len, &v, perr, sizeof(perr));
    if (st != WB_OK) {
        util_errf(err, errlen, "param '%s': %s", p->name, perr);
        return st;
    }
    json_object *obj = json_object_new_object();
    if (!obj) {
        json_object_put(v);
        return WB_ERR_NOMEM;
    }
    json_object_object_add(obj, p->name, v);
    *out = obj;
    return WB_OK;
}

/* Growable output bounded by PAYLOAD_MAX_LEN; `over` latches on overflow. */
struct obuf {
    char *s;
    size_t len, cap;
    bool over, nomem;
};

static void ob_put(struct obuf *o, const char *s, size_t n)
{
    if (o->over || o->nomem)
        return;
    if (o->len + n > PAYLOAD_MAX_LEN) {
        o->over = true;
        return;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *ns = realloc(o->s, cap);
        if (!ns) {
            o->nomem = true;
            return;
        }
        o->s = ns;
        o->cap = cap;
    }
    memcpy(o->s + o->len, s, n);
    o->len += n;
    o->s[o->len] = '\0';
}

/* Appends s as the inside of a JSON string (no quotes). */
static void ob_put_escaped(struct obuf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            ob_put(o, esc, 2);
        } else if (c < 0x20) {
            static const char short_esc[] = {
                ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
            if (c < sizeof(short_esc) && short_esc[c]) {
                esc[0] = '\\';
                esc[1] = short_esc[c];
                ob_put(o, esc, 2);
            } else {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                ob_put(o, esc, 6);
            }
        } else {
            ob_put(o, s + i, 1);
        }
    }
}

static void ob_put_value(struct obuf *o, json_object *v, enum tmpl_ctx ctx)
{
    char num[40];
    switch (json_object_get_type(v)) {
    case json_type_int:
        if (int_above_int64(v))
            snprintf(num, sizeof(num), "%" PRIu64, json_object_get_uint64(v));
        else
            snprintf(num, sizeof(num), "%" PRId64, json_object_get_int64(v));
        ob_put(o, num, strlen(num));
        return;
    case json_type_double:
        fmt_double(json_object_get_double(v), num, sizeof(num));
        ob_put(o, num, strlen(num));
        return;
    case json_type_boolean:
        ob_put(o, json_object_get_boolean(v) ? "true" : "false",
               json_object_get_boolean(v) ? 4 : 5);
        return;
    case json_type_string: {
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        if (ctx == TMPL_PLAIN) {
            ob_put(o, s, n);
        } else if (ctx == TMPL_JSON_STRING) {
            ob_put_escaped(o, s, n);
        } else {
            ob_put(o, "\"", 1);
            ob_put_escaped(o, s, n);
            ob_put(o, "\"", 1);
        }
        return;
    }
    default: {
        const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        if (ctx == TMPL_JSON_STRING)
            ob_put_escaped(o, s, strlen(s));
        else
            ob_put(o, s, strlen(s));
        return;
    }
    }
}

static wb_status substitute(const struct cfg_action *a, json_object *params, const char *name,
                            size_t n, struct obuf *o, enum tmpl_ctx ctx, char *err, size_t errlen)
{
    const struct cfg_param *p = find_param(a, name, n);
    if (!p) {
        util_errf(err, errlen, "action '%s': unknown placeholder '{%.*s}'", a->name,
                  (int)(n > 64 ? 64 : n), name);
        return WB_ERR_INVALID;
    }
    json_object *v = NULL;
    if (!params || !json_object_object_get_ex(params, p->name, &v)) {
        util_errf(err, errlen, "action '%s': param '%s' has no value for '{%s}'", a->name, p->name,
                  p->name);
        return WB_ERR_INVALID;
    }
    ob_put_value(o, v, ctx);
    return WB_OK;
}

/* What tmpl_walk() calls back while render() runs. */
struct render_arg {
    const struct cfg_action *a;
    json_object *params;
    struct obuf *o;
    char *err;
    size_t errlen;
};

static void render_text(void *arg, const char *s, size_t n)
{
    struct render_arg *r = arg;
    ob_put(r->o, s, n);
}

static wb_status render_placeholder(void *arg, const char *name, size_t n, enum tmpl_ctx ctx)
{
    struct render_arg *r = arg;
    return substitute(r->a, r->params, name, n, r->o, ctx, r->err, r->errlen);
}

/* Renders template t into o under the rules at the top of this file. */
static wb_status render(const struct cfg_action *a, const char *t, json_object *params,
                        bool json_mode, struct obuf *o, char *err, size_t errlen)
{
    static const struct tmpl_ops ops = {.text = render_text, .placeholder = render_placeholder};
    struct render_arg r = {.a = a, .params = params, .o = o, .err = err, .errlen = errlen};
    char werr[160] = "";
    wb_status st = tmpl_walk(t, json_mode, &ops, &r, werr, sizeof(werr));
    if (st != WB_OK) {
        /* A stray brace is reported by the walk, an unknown placeholder by
         * substitute() (straight into err). */
        if (werr[0])
            util_errf(err, errlen, "action '%s': %s", a->name, werr);
        return st;
    }
    if (o->nomem)
        return WB_ERR_NOMEM;
    if (o->over) {
        util_errf(err, errlen, "action '%s': rendered payload exceeds %d bytes", a->name,
                  PAYLOAD_MAX_LEN);
        return WB_ERR_RANGE;
    }
    ob_put(o, "", 0); /* an empty template still yields a string */
    return o->nomem ? WB_ERR_NOMEM : WB_OK;
}

wb_status action_render_payload(const struct cfg_action *a, json_object *params, char **out,
                                char *err, size_t errlen)
{
    *out = NULL;
    const char *t = a->payload ? a->payload : "1";
    bool json_mode = tmpl_is_json(t);
    struct obuf o = {0};
    wb_status st = render(a, t, params, json_mode, &o, err, errlen);
    if (st != WB_OK)
        goto fail;
    if (json_mode) {
        json_object *check = NULL;
        char jerr[160];
        if (payload_parse_object(o.s, o.len, &check, jerr, sizeof(jerr)) != WB_OK) {
            util_errf(err, errlen,
                      "action '%s': payload template does not render to valid JSON: %s", a->name,
                      jerr);
            st = WB_ERR_INVALID;
            goto fail;
        }
        json_object_put(check);
    }
    *out = o.s;
    return WB_OK;
fail:
    free(o.s);
    return st;
}

static wb_status copy_value(json_object *v, json_object **out)
{
    *out = NULL;
    if (!v)
        return WB_OK; /* JSON null is represented by NULL */
    return json_object_deep_copy(v, out, NULL) == 0 ? WB_OK : WB_ERR_NOMEM;
}

wb_status action_render_set(const struct cfg_action *a, json_object *params, json_object **out,
                            char *err, size_t errlen)
{
    *out = NULL;
    if (!a->set)
        return WB_OK;
    if (!json_object_is_type(a->set, json_type_object)) {
        util_errf(err, errlen, "action '%s': set is not an object", a->name);
        return WB_ERR_INVALID;
    }
    json_object *res = json_object_new_object();
    if (!res)
        return WB_ERR_NOMEM;
    wb_status st = WB_OK;
    json_object_object_foreach(a->set, key, val)
    {
        json_object *nv = NULL;
        if (json_object_is_type(val, json_type_string)) {
            const char *s = json_object_get_string(val);
            size_t n = strlen(s);
            if (n > 2 && s[0] == '{' && tmpl_placeholder_len(s) == n - 2) {
                const struct cfg_param *p = find_param(a, s + 1, n - 2);
                if (!p) {
                    util_errf(err, errlen, "action '%s': set '%s': unknown placeholder '%s'",
                              a->name, key, s);
                    st = WB_ERR_INVALID;
                    goto fail;
                }
                json_object *pv = NULL;
                /* An optional param left out leaves its state field alone. */
                if (!params || !json_object_object_get_ex(params, p->name, &pv))
                    continue;
                st = copy_value(pv, &nv);
            } else {
                struct obuf o = {0};
                st = render(a, s, params, false, &o, err, errlen);
                if (st == WB_OK) {
                    nv = json_object_new_string_len(o.s, (int)o.len);
                    if (!nv)
                        st = WB_ERR_NOMEM;
                }
                free(o.s);
            }
        } else {
            st = copy_value(val, &nv);
        }
        if (st != WB_OK)
            goto fail;
        if (json_object_object_add(res, key, nv) != 0) {
            json_object_put(nv);
            st = WB_ERR_NOMEM;
            goto fail;
        }
    }
    *out = res;
    return WB_OK;
fail:
    json_object_put(res);
    return st;
}

/* Numeric equality without precision loss between int64/uint64 and double. */
static bool num_equal(json_object *x, json_object *y)
{
    bool xi = json_object_is_type(x, json_type_int), yi = json_object_is_type(y, json_type_int);
    if (xi && yi) {
        bool xb = int_above_int64(x), yb = int_above_int64(y);
        if (xb || yb)
            return xb && yb && json_object_get_uint64(x) == json_object_get_uint64(y);
        return json_object_get_int64(x) == json_object_get_int64(y);
    }
    if (!xi && !yi)
        return json_object_get_double(x) == json_object_get_double(y);
    json_object *iv = xi ? x : y;
    double d = json_object_get_double(xi ? y : x);
    if (!isfinite(d) || d != floor(d))
        return false;
    if (int_above_int64(iv))
        return d >= TWO_POW_63 && d < 2 * TWO_POW_63 && (uint64_t)d == json_object_get_uint64(iv);
    if (d < -TWO_POW_63 || d >= TWO_POW_63)
        return false;
    return (int64_t)d == json_object_get_int64(iv);
}

static bool is_num(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static bool values_equal(json_object *x, json_object *y)
{
    if (!x || !y)
        return false; /* null equals nothing, not even null */
    if (is_num(x) && is_num(y))
        return num_equal(x, y);
    if (json_object_get_type(x) != json_object_get_type(y))
        return false;
    switch (json_object_get_type(x)) {
    case json_type_boolean:
        return json_object_get_boolean(x) == json_object_get_boolean(y);
    case json_type_string:
        return json_object_get_string_len(x) == json_object_get_string_len(y) &&
               memcmp(json_object_get_string(x), json_object_get_string(y),
                      (size_t)json_object_get_string_len(x)) == 0;
    default:
        return json_object_equal(x, y) != 0;
    }
}

bool action_condition_holds(const struct cfg_condition *c, json_object *state)
{
    if (!c)
        return true;
    json_object *v = NULL;
    bool found = json_object_is_type(state, json_type_object) && c->field &&
                 json_object_object_get_ex(state, c->field, &v);
    bool eq = found && values_equal(v, c->value);
    return c->op == CFG_COND_EQ ? eq : !eq;
}

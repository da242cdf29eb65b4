/*
 * payload.c - strict parsing of MQTT payloads into state values.
 *
 * Everything here is a pure function of its arguments: no globals, no
 * logging, so it can be fuzzed directly. The rules are deliberately strict,
 * because a device that publishes "1.0" to an int binding or "yes" to a bool
 * one is misconfigured, and silently guessing would store wrong state:
 *   - every payload: at most PAYLOAD_MAX_LEN bytes, no NUL byte;
 *   - bool/int/float: surrounding ASCII white space ignored;
 *   - bool: 1/0, true/false, on/off in any case;
 *   - int: [+-]digits, base 10, within int64 (else WB_ERR_RANGE);
 *   - float: a decimal number strtod() consumes entirely (digits, sign, '.',
 *     exponent only: no hex, no inf/nan), finite (else WB_ERR_RANGE);
 *   - string: valid UTF-8, at most PAYLOAD_MAX_STRING bytes, verbatim;
 *   - JSON: an object, valid UTF-8, at most PAYLOAD_MAX_DEPTH deep, strict
 *     json-c grammar, nothing but white space after it, no NaN/Infinity
 *     (WB_ERR_INVALID) and no number beyond double range (WB_ERR_RANGE).
 * Error texts quote at most QUOTE_MAX bytes of the payload, with control
 * characters and invalid UTF-8 replaced by '?', so they are safe to log.
 */
#include "wbmb/payload.h"
#include "wbmb/util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUOTE_MAX 40

/* Length of the valid UTF-8 sequence at s[0..len), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, overlong C0/C1 lead, or F5..FF */
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

bool payload_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(s + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

/* Writes a log-safe excerpt of buf into q (size >= QUOTE_MAX * 1 + 4). */
static void quote(const char *buf, size_t len, char *q, size_t qlen)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0, o = 0;
    while (i < len && o + 4 < qlen && i < QUOTE_MAX) {
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0 || (n == 1 && (s[i] < 0x20 || s[i] == 0x7F))) {
            q[o++] = '?';
            i++;
            continue;
        }
        if (i + n > QUOTE_MAX || o + n + 4 > qlen)
            break;
        memcpy(q + o, s + i, n);
        o += n;
        i += n;
    }
    if (i < len) {
        memcpy(q + o, "...", 3);
        o += 3;
    }
    q[o] = '\0';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void payload_trim(const char **buf, size_t *len)
{
    const char *b = *buf;
    size_t n = *len;
    while (n && is_space(b[0]))
        b++, n--;
    while (n && is_space(b[n - 1]))
        n--;
    *buf = b;
    *len = n;
}

static bool word_eq(const char *b, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(b, word, n) == 0;
}

/* Checks every payload type shares: size, NUL bytes. */
static wb_status check_common(const char *buf, size_t len, char *err, size_t errlen)
{
    if (!buf && len) {
        util_errf(err, errlen, "no payload buffer");
        return WB_ERR_INVALID;
    }
    if (len > PAYLOAD_MAX_LEN) {
        util_errf(err, errlen, "payload too long (%zu bytes, at most %d)", len, PAYLOAD_MAX_LEN);
        return WB_ERR_INVALID;
    }
    if (len && memchr(buf, '\0', len)) {
        util_errf(err, errlen, "payload contains a NUL byte");
        return WB_ERR_INVALID;
    }
    return WB_OK;
}

static wb_status parse_bool(const char *b, size_t n, json_object **out, char *err, size_t errlen)
{
    int v = -1;
    if (word_eq(b, n, "1") || word_eq(b, n, "true") || word_eq(b, n, "on"))
        v = 1;
    else if (word_eq(b, n, "0") || word_eq(b, n, "false") || word_eq(b, n, "off"))
        v = 0;
    if (v < 0) {
        char q[QUOTE_MAX + 8];
        quote(b, n, q, sizeof(q));
        util_errf(err, errlen, "expected a boolean (1/0, true/false, on/off), got '%s'", q);
        return WB_ERR_INVALID;
    }
    *out = json_object_new_boolean(v);
    return *out ? WB_OK : WB_ERR_NOMEM;
}

/* [+-]digits in int64 range: WB_OK, WB_ERR_RANGE or WB_ERR_INVALID. */
static wb_status int_core(const char *b, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && (b[0] == '+' || b[0] == '-'))
        neg = b[i++] == '-';
    if (i == n)
        return WB_ERR_INVALID;
    /* Accumulate the magnitude in uint64 so INT64_MIN is representable. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t mag = 0;
    bool over = false;
    for (; i < n; i++) {
        if (b[i] < '0' || b[i] > '9')
            return WB_ERR_INVALID; /* "99999999999999999999x" is invalid, not range */
        unsigned d = (unsigned)(b[i] - '0');
        if (over || mag > (limit - d) / 10)
            over = true;
        else
            mag = mag * 10 + d;
    }
    if (over)
        return WB_ERR_RANGE;
    *out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return WB_OK;
}

static wb_status parse_int(const char *b, size_t n, json_object **out, char *err, size_t errlen)
{
    char q[QUOTE_MAX + 8];
    int64_t v = 0;
    wb_status st = int_core(b, n, &v);
    if (st != WB_OK) {
        quote(b, n, q, sizeof(q));
        if (st == WB_ERR_RANGE)
            util_errf(err, errlen, "integer out of range (64-bit): '%s'", q);
        else
            util_errf(err, errlen, "expected an integer, got '%s'", q);
        return st;
    }
    *out = json_object_new_int64(v);
    return *out ? WB_OK : WB_ERR_NOMEM;
}

static wb_status parse_float(const char *b, size_t n, json_object **out, char *err, size_t errlen)
{
    char q[QUOTE_MAX + 8];
    char small[128];
    bool digit = false;
    /* strtod() would also take hex, "inf", "nan" and leading space: refuse
     * them up front by allowing only the characters of a decimal number. */
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (c >= '0' && c <= '9')
            digit = true;
        else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
            goto invalid;
    }
    if (!digit)
        goto invalid;
    char *copy = n < sizeof(small) ? small : malloc(n + 1);
    if (!copy)
        return WB_ERR_NOMEM;
    memcpy(copy, b, n);
    copy[n] = '\0';
    char *end = NULL;
    errno = 0;
    double d = strtod(copy, &end);
    bool whole = end == copy + n;
    if (copy != small)
        free(copy);
    if (!whole)
        goto invalid;
    if (!isfinite(d)) {
        quote(b, n, q, sizeof(q));
        util_errf(err, errlen, "number out of range: '%s'", q);
        return WB_ERR_RANGE;
    }
    /* Underflow (1e-400) yields the nearest representable value: accepted. */
    *out = json_object_new_double(d);
    return *out ? WB_OK : WB_ERR_NOMEM;
invalid:
    quote(b, n, q, sizeof(q));
    util_errf(err, errlen, "expected a number, got '%s'", q);
    return WB_ERR_INVALID;
}

wb_status payload_parse_scalar(enum cfg_value_type type, const char *buf, size_t len,
                               json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    wb_status st = check_common(buf, len, err, errlen);
    if (st != WB_OK)
        return st;
    const char *b = buf ? buf : "";
    size_t n = len;
    switch (type) {
    case CFG_T_BOOL:
        payload_trim(&b, &n);
        return parse_bool(b, n, out, err, errlen);
    case CFG_T_INT:
        payload_trim(&b, &n);
        return parse_int(b, n, out, err, errlen);
    case CFG_T_FLOAT:
        payload_trim(&b, &n);
        return parse_float(b, n, out, err, errlen);
    case CFG_T_STRING:
    case CFG_T_ENUM: /* an enum value arrives as plain text; its set is checked later */
        if (n > PAYLOAD_MAX_STRING) {
            util_errf(err, errlen, "string too long (%zu bytes, at most %d)", n,
                      PAYLOAD_MAX_STRING);
            return WB_ERR_INVALID;
        }
        if (!payload_utf8_valid(b, n)) {
            util_errf(err, errlen, "payload is not valid UTF-8");
            return WB_ERR_INVALID;
        }
        *out = json_object_new_string_len(b, (int)n);
        return *out ? WB_OK : WB_ERR_NOMEM;
    case CFG_T_JSON:
        break;
    }
    util_errf(err, errlen, "not a scalar type");
    return WB_ERR_INVALID;
}

/* WB_OK when v holds only finite numbers. json-c 0.16 accepts NaN and
 * Infinity even in strict mode, and turns 1e400 into inf: NaN/Infinity
 * literals are WB_ERR_INVALID, overflowing numbers WB_ERR_RANGE (json-c
 * keeps a parsed double's source text, which tells them apart). Depth is
 * bounded by PAYLOAD_MAX_DEPTH. */
static wb_status check_finite(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_double: {
        double d = json_object_get_double(v);
        if (isfinite(d))
            return WB_OK;
        const char *txt = json_object_to_json_string(v);
        if (isnan(d) || strpbrk(txt, "IiNn"))
            return WB_ERR_INVALID;
        return WB_ERR_RANGE;
    }
    case json_type_object: {
        json_object_object_foreach(v, k, child)
        {
            (void)k;
            wb_status st = check_finite(child);
            if (st != WB_OK)
                return st;
        }
        return WB_OK;
    }
    case json_type_array: {
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
            wb_status st = check_finite(json_object_array_get_idx(v, i));
            if (st != WB_OK)
                return st;
        }
        return WB_OK;
    }
    default:
        return WB_OK;
    }
}

/* Checks one JSON number token at b[0..n) against the RFC 8259 grammar
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and, for an integer token,
 * the int64 range (json-c would clamp it silently). */
static wb_status check_number(const char *b, size_t n)
{
    size_t i = 0;
    bool integral = true;
    if (i < n && b[i] == '-')
        i++;
    size_t d0 = i;
    if (i < n && b[i] == '0')
        i++;
    else
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
    if (i == d0)
        return WB_ERR_INVALID;
    size_t int_end = i;
    if (i < n && b[i] == '.') {
        integral = false;
        size_t f0 = ++i;
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
        if (i == f0)
            return WB_ERR_INVALID;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        integral = false;
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-'))
            i++;
        size_t e0 = i;
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
        if (i == e0)
            return WB_ERR_INVALID;
    }
    if (i != n)
        return WB_ERR_INVALID;
    int64_t ignored;
    return integral ? int_core(b, int_end, &ignored) : WB_OK;
}

/* Lexical checks json-c 0.16 skips even in strict mode: single-quoted
 * strings, raw control characters inside strings, malformed numbers ("1.")
 * and integers past int64. Runs before json-c sees the text.
 *
 * For a state message (state = true) an integer past int64 is not an
 * error: json-c would clamp it (or make it an unsigned 64-bit value), so
 * the token is rewritten as "<digits>.0" and json-c parses it as a double,
 * the rule of every other number. Without out the tokens are only counted
 * in *big; with out (room for n + 2 * *big bytes) the text is copied there
 * with the rewrites and its length left in *out_len. A key with an escaped
 * NUL ("a\u0000b") is refused: json-c keys are C strings and would be cut
 * at the NUL, silently merging it with another key. */
static wb_status json_prescan(const char *b, size_t n, bool state, size_t *big, char *out,
                              size_t *out_len, char *err, size_t errlen)
{
    size_t copied = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (c == '"') {
            bool nul = false;
            for (i++; i < n && b[i] != '"'; i++) {
                if ((unsigned char)b[i] < 0x20) {
                    util_errf(err, errlen, "control character inside a JSON string at byte %zu", i);
                    return WB_ERR_INVALID;
                }
                if (b[i] == '\\') {
                    if (n - i > 5 && memcmp(b + i + 1, "u0000", 5) == 0)
                        nul = true;
                    i++;
                }
            }
            size_t k = i + 1;
            while (k < n && is_space(b[k]))
                k++;
            if (state && nul && k < n && b[k] == ':') {
                util_errf(err, errlen, "a JSON key with an escaped NUL (\\u0000) before byte %zu",
                          k);
                return WB_ERR_INVALID;
            }
        } else if (c == '\'') {
            util_errf(err, errlen, "single quotes are not JSON (byte %zu)", i);
            return WB_ERR_INVALID;
        } else if (state && c == '-' && i + 1 < n && b[i + 1] == 'I') {
            continue; /* -Infinity: json-c's, then payload_value_check()'s */
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && (b[j] == '-' || b[j] == '+' || b[j] == '.' || b[j] == 'e' ||
                             b[j] == 'E' || (b[j] >= '0' && b[j] <= '9')))
                j++;
            wb_status st = check_number(b + i, j - i);
            if (st == WB_ERR_RANGE && state) {
                if (!out) {
                    (*big)++;
                } else {
                    memcpy(out + o, b + copied, j - copied);
                    o += j - copied;
                    memcpy(out + o, ".0", 2);
                    o += 2;
                    copied = j;
                }
            } else if (st != WB_OK) {
                util_errf(err, errlen, "%s JSON number at byte %zu",
                          st == WB_ERR_RANGE ? "out of range" : "malformed", i);
                return st;
            }
            i = j - 1;
        }
    }
    if (out) {
        memcpy(out + o, b + copied, n - copied);
        *out_len = o + n - copied;
    }
    return WB_OK;
}

/* One tokener per thread, reset per message: a new one per message
 * (allocation of its depth stack and buffer) was ~12 % of the parse.
 * Messages are parsed on the core thread and on paho's receive thread (see
 * core.h); a thread's tokener is freed when the thread ends. */
static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void tok_free(void *t)
{
    json_tokener_free(t);
}

static void tok_key_init(void)
{
    (void)pthread_key_create(&tok_key, tok_free);
}

static json_tokener *thread_tokener(void)
{
    pthread_once(&tok_once, tok_key_init);
    json_tokener *tok = pthread_getspecific(tok_key);
    if (!tok && (tok = json_tokener_new_ex(PAYLOAD_MAX_DEPTH)) &&
        pthread_setspecific(tok_key, tok) != 0) {
        json_tokener_free(tok);
        tok = NULL;
    }
    return tok;
}

static wb_status parse_text(const char *b, size_t n, bool state, json_object **out, char *err,
                            size_t errlen);

static wb_status parse_object(const char *buf, size_t len, bool state, json_object **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    wb_status st = check_common(buf, len, err, errlen);
    if (st != WB_OK)
        return st;
    if (!payload_utf8_valid(buf, len)) {
        util_errf(err, errlen, "payload is not valid UTF-8");
        return WB_ERR_INVALID;
    }
    const char *b = buf ? buf : "";
    size_t n = len;
    payload_trim(&b, &n);
    if (n == 0 || b[0] != '{') {
        util_errf(err, errlen, "expected a JSON object");
        return WB_ERR_INVALID;
    }
    size_t big = 0;
    st = json_prescan(b, n, state, &big, NULL, NULL, err, errlen);
    if (st != WB_OK)
        return st;
    char *copy = NULL;
    if (big) { /* integers past int64 in a state message: become doubles */
        if (!(copy = malloc(n + 2 * big)))
            return WB_ERR_NOMEM;
        (void)json_prescan(b, n, state, &big, copy, &n, NULL, 0);
        b = copy;
    }
    st = parse_text(b, n, state, out, err, errlen);
    free(copy);
    return st;
}

wb_status payload_parse_object(const char *buf, size_t len, json_object **out, char *err,
                               size_t errlen)
{
    return parse_object(buf, len, false, out, err, errlen);
}

wb_status payload_parse_state(const char *buf, size_t len, json_object **out, char *err,
                              size_t errlen)
{
    return parse_object(buf, len, true, out, err, errlen);
}

/* json-c's part of parse_object(): b[0..n) passed the prescan. */
static wb_status parse_text(const char *b, size_t n, bool state, json_object **out, char *err,
                            size_t errlen)
{
    wb_status st;
    json_tokener *tok = thread_tokener();
    if (!tok)
        return WB_ERR_NOMEM;
    json_tokener_reset(tok);
    /* Trailing characters are allowed here only so that the check below can
     * report them as such rather than as a generic parse error. */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *v = json_tokener_parse_ex(tok, b, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (!v) {
        if (jerr == json_tokener_continue)
            util_errf(err, errlen, "truncated JSON");
        else
            util_errf(err, errlen, "invalid JSON at byte %zu: %s", end,
                      json_tokener_error_desc(jerr));
        return WB_ERR_INVALID;
    }
    /* Strict mode stops after the value; whatever follows must be blank
     * (the trim above already removed trailing white space). */
    if (end != n) {
        json_object_put(v);
        util_errf(err, errlen, "trailing garbage after the JSON object at byte %zu", end);
        return WB_ERR_INVALID;
    }
    if (!json_object_is_type(v, json_type_object)) {
        json_object_put(v);
        util_errf(err, errlen, "expected a JSON object");
        return WB_ERR_INVALID;
    }
    /* In a state message NaN, Infinity and a number beyond double range
     * are their field's fault alone: payload_value_check() refuses that
     * field and the others apply. */
    st = state ? WB_OK : check_finite(v);
    if (st != WB_OK) {
        json_object_put(v);
        util_errf(err, errlen,
                  st == WB_ERR_RANGE ? "JSON number out of range"
                                     : "NaN and Infinity are not JSON");
        return st;
    }
    *out = v;
    return WB_OK;
}

wb_status payload_value_check(json_object *v, char *err, size_t errlen)
{
    wb_status st = check_finite(v);
    if (st != WB_OK)
        util_errf(err, errlen, "%s",
                  st == WB_ERR_RANGE ? "a number beyond double range" : "NaN or Infinity");
    return st;
}

/* Looks up a dotted path ("a.b.c") through nested objects. A path segment
 * longer than the stack buffer cannot be a key we look up cheaply: such a
 * path is treated as missing (keys that long do not occur in device JSON). */
static bool path_get(json_object *msg, const char *path, json_object **val)
{
    char seg[256];
    json_object *cur = msg;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(seg) || !json_object_is_type(cur, json_type_object))
            return false;
        memcpy(seg, p, n);
        seg[n] = '\0';
        json_object *next = NULL;
        if (!json_object_object_get_ex(cur, seg, &next))
            return false;
        cur = next;
        if (!dot)
            break;
        p = dot + 1;
    }
    *val = cur;
    return true;
}

size_t payload_map_fields(const struct cfg_state_binding *b, json_object *msg, json_object *changes)
{
    if (!json_object_is_type(msg, json_type_object) ||
        !json_object_is_type(changes, json_type_object))
        return 0;
    size_t added = 0;
    if (b && b->fields) {
        for (size_t i = 0; i < b->n_fields; i++) {
            json_object *v = NULL;
            if (!b->fields[i].path || !b->fields[i].field || !path_get(msg, b->fields[i].path, &v))
                continue;
            /* A present JSON null is a value ("unknown"), not a missing path.
             * The field's map and scale apply (payload_spec.c). */
            const struct cfg_field_spec *s = b->fields[i].spec;
            json_object *nv =
                s && (s->n_map || s->has_scale) ? payload_apply_spec(s, v) : json_object_get(v);
            if (!nv && v)
                continue; /* out of memory; a JSON null is NULL in json-c */
            if (json_object_object_add(changes, b->fields[i].field, nv) == 0)
                added++;
            else
                json_object_put(nv);
        }
        return added;
    }
    json_object_object_foreach(msg, key, val)
    {
        if (json_object_object_add(changes, key, json_object_get(val)) == 0)
            added++;
        else
            json_object_put(val);
    }
    return added;
}

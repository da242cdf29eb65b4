/*
 * template.c - the template grammar of template.h: one scanner,
 * tmpl_walk(), that both the renderer (domain/action.c) and the checks run
 * at config load (tmpl_check()) go through, so a template the config
 * accepts is one the renderer can render.
 *
 * tmpl_check() renders a stand-in of each placeholder's kind into a private
 * buffer and, in JSON mode, parses the result with json-c under the same
 * rules as a payload at run time (strict grammar, nothing after the object,
 * at most TMPL_MAX_DEPTH deep, finite numbers only). Nothing here keeps
 * state.
 */
#include "wbmb/template.h"

#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/util.h"

bool tmpl_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

size_t tmpl_placeholder_len(const char *t)
{
    size_t n = 0;
    while (tmpl_name_char(t[1 + n]))
        n++;
    return n && t[1 + n] == '}' ? n : 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool tmpl_is_json(const char *t)
{
    while (blank(*t))
        t++;
    if (*t++ != '{')
        return false;
    while (blank(*t))
        t++;
    return *t == '"' || *t == '}';
}

static void emit(const struct tmpl_ops *ops, void *arg, const char *t, size_t from, size_t to)
{
    if (ops->text && to > from)
        ops->text(arg, t + from, to - from);
}

/* Literal text is handed out in runs: [run, i) is what has been scanned
 * but not yet emitted. An escaped brace emits its first character as the
 * end of the run and skips the second. */
wb_status tmpl_walk(const char *t, bool json_mode, const struct tmpl_ops *ops, void *arg, char *err,
                    size_t errlen)
{
    bool in_str = false;
    size_t run = 0, i = 0;
    while (t[i]) {
        char c = t[i];
        /* Braces follow the plain rules except as JSON structure. */
        bool strict = !json_mode || in_str;
        if (c == '{') {
            size_t n = tmpl_placeholder_len(t + i);
            if (n) {
                enum tmpl_ctx ctx = !json_mode ? TMPL_PLAIN
                                    : in_str   ? TMPL_JSON_STRING
                                               : TMPL_JSON_VALUE;
                emit(ops, arg, t, run, i);
                wb_status st = ops->placeholder(arg, t + i + 1, n, ctx);
                if (st != WB_OK)
                    return st;
                i += n + 2;
                run = i;
                continue;
            }
            if (strict && t[i + 1] == '{') {
                emit(ops, arg, t, run, i + 1);
                i += 2;
                run = i;
                continue;
            }
            if (strict) {
                util_errf(err, errlen,
                          "stray '{' at offset %zu of the template (write '{{' for a literal "
                          "brace)",
                          i);
                return WB_ERR_INVALID;
            }
        } else if (c == '}' && strict) {
            if (t[i + 1] != '}') {
                util_errf(err, errlen,
                          "stray '}' at offset %zu of the template (write '}}' for a literal "
                          "brace)",
                          i);
                return WB_ERR_INVALID;
            }
            emit(ops, arg, t, run, i + 1);
            i += 2;
            run = i;
            continue;
        } else if (json_mode && c == '"') {
            in_str = !in_str;
        } else if (json_mode && in_str && c == '\\' && t[i + 1]) {
            i += 2; /* an escaped character never ends the string */
            continue;
        }
        i++;
    }
    emit(ops, arg, t, run, i);
    return WB_OK;
}

/* ---- tmpl_check ---------------------------------------------------------- */

struct probe {
    tmpl_kind_fn kind_of;
    void *arg;
    char *buf; /* the stand-in rendering, NUL-terminated */
    size_t len, cap;
    bool over, nomem;
    char *err;
    size_t errlen;
};

static void probe_put(void *arg, const char *s, size_t n)
{
    struct probe *p = arg;
    if (p->over || p->nomem)
        return;
    if (p->len + n > TMPL_MAX_LEN) {
        p->over = true;
        return;
    }
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 64;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) {
            p->nomem = true;
            return;
        }
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static wb_status probe_placeholder(void *arg, const char *name, size_t n, enum tmpl_ctx ctx)
{
    struct probe *p = arg;
    /* The string stand-in holds a quote and a backslash: written escaped in
     * a JSON string and quoted at a value position, as the renderer does. */
    static const char *const standin[][3] = {
        [TMPL_NUMBER] = {"1", "1", "1"},
        [TMPL_BOOL] = {"true", "true", "true"},
        [TMPL_STRING] = {"a\"b\\c", "a\\\"b\\\\c", "\"a\\\"b\\\\c\""},
    };
    enum tmpl_kind k = p->kind_of(p->arg, name, n);
    if (k != TMPL_NUMBER && k != TMPL_BOOL && k != TMPL_STRING) {
        util_errf(p->err, p->errlen, "unknown placeholder '{%.*s}'", (int)(n > 64 ? 64 : n), name);
        return WB_ERR_INVALID;
    }
    const char *s = standin[k][ctx];
    probe_put(p, s, strlen(s));
    return WB_OK;
}

/* json-c's strict mode still reads NaN and Infinity (and 1e999 as
 * infinity); a payload with one is refused at run time, so here too. */
static bool all_finite(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_double:
        return isfinite(json_object_get_double(v));
    case json_type_object: {
        json_object_object_foreach(v, key, val)
        {
            (void)key;
            if (!all_finite(val))
                return false;
        }
        return true;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (!all_finite(json_object_array_get_idx(v, i)))
                return false;
        return true;
    default:
        return true;
    }
}

/* The stand-in rendering p->buf must be one JSON object and nothing else. */
static wb_status probe_json(struct probe *p)
{
    size_t n = p->len;
    while (n > 0 && blank(p->buf[n - 1]))
        n--;
    json_tokener *tok = json_tokener_new_ex(TMPL_MAX_DEPTH);
    if (!tok)
        return WB_ERR_NOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *v = json_tokener_parse_ex(tok, p->buf, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    wb_status st = WB_ERR_INVALID;
    if (!v)
        util_errf(p->err, p->errlen, "the template does not render to valid JSON: %s",
                  jerr == json_tokener_continue ? "truncated JSON" : json_tokener_error_desc(jerr));
    else if (end != n)
        util_errf(p->err, p->errlen,
                  "the template does not render to valid JSON: trailing text after the object");
    else if (!json_object_is_type(v, json_type_object))
        util_errf(p->err, p->errlen, "the template does not render to a JSON object");
    else if (!all_finite(v))
        util_errf(p->err, p->errlen, "the template holds a number that is not a finite number");
    else
        st = WB_OK;
    json_object_put(v);
    return st;
}

wb_status tmpl_check(const char *t, bool json_mode, tmpl_kind_fn kind_of, void *arg, char *err,
                     size_t errlen)
{
    struct probe p = {.kind_of = kind_of, .arg = arg, .err = err, .errlen = errlen};
    const struct tmpl_ops ops = {.text = probe_put, .placeholder = probe_placeholder};
    wb_status st = tmpl_walk(t, json_mode, &ops, &p, err, errlen);
    if (st == WB_OK && p.nomem)
        st = WB_ERR_NOMEM;
    if (st == WB_OK && p.over) {
        util_errf(err, errlen, "the template renders to more than %d bytes", TMPL_MAX_LEN);
        st = WB_ERR_RANGE;
    }
    if (st == WB_OK && json_mode) {
        probe_put(&p, "", 0); /* an empty rendering is still a string */
        st = p.nomem ? WB_ERR_NOMEM : probe_json(&p);
    }
    free(p.buf);
    return st;
}

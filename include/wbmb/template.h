/*
 * template.h - the grammar of action templates (CONTRACT §3 "payload"):
 * where the "{name}" placeholders are, which braces are literal, and when a
 * template is a JSON object. Below both the config (which checks templates
 * when it loads) and the action module (which renders them with real
 * values), so the two cannot disagree on what a template means. Nothing
 * here knows params or values: callers say what a name stands for.
 *
 * Plain mode (every template that is not a JSON object): "{name}" is a
 * placeholder, "{{" and "}}" are literal braces, any other brace is an
 * error. JSON mode (tmpl_is_json()): inside JSON strings the plain rules
 * apply; outside them only "{name}" is a placeholder and every other brace
 * is JSON structure.
 */
#ifndef WBMB_TEMPLATE_H
#define WBMB_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "wbmb/status.h"

/* A rendered payload is at most TMPL_MAX_LEN bytes, and a JSON one is
 * parsed by a json-c tokener of depth TMPL_MAX_DEPTH: the bounds a payload
 * meets at run time (payload.h PAYLOAD_MAX_LEN and PAYLOAD_MAX_DEPTH, which
 * action.c asserts equal to these). */
#define TMPL_MAX_LEN (64 * 1024)
#define TMPL_MAX_DEPTH 16

/* true for a character of a placeholder name: [A-Za-z0-9_.-]. */
bool tmpl_name_char(char c);

/* Length of the name of a "{name}" placeholder at t[0] == '{', 0 if t does
 * not start one (t must be NUL-terminated). */
size_t tmpl_placeholder_len(const char *t);

/* true when t is a JSON-object template: its first non-space character is
 * '{' followed (after optional white space) by '"' or '}'. A placeholder
 * name never starts with '"', so "{level}" stays plain. */
bool tmpl_is_json(const char *t);

/* Where a placeholder stands; it decides how a value is written there. */
enum tmpl_ctx {
    TMPL_PLAIN,       /* plain mode: the value as text */
    TMPL_JSON_STRING, /* inside a JSON string: the value, JSON-escaped */
    TMPL_JSON_VALUE,  /* a JSON value position: raw numbers/booleans, a quoted string */
};

/* What tmpl_walk() hands out, in template order. */
struct tmpl_ops {
    /* Literal text: braces already unescaped ("{{" gives "{"). NULL: dropped. */
    void (*text)(void *arg, const char *s, size_t n);
    /* The placeholder name[0..n) at ctx. A status other than WB_OK stops the
     * walk and is returned from it (the callback fills err itself). */
    wb_status (*placeholder)(void *arg, const char *name, size_t n, enum tmpl_ctx ctx);
};

/* Walks template t (json_mode: as tmpl_is_json() would say, or false to
 * force plain mode). Returns WB_OK, the first non-OK status of
 * ops->placeholder, or WB_ERR_INVALID for a stray brace with the reason
 * ("stray '}' at offset 3 of the template (...)") in err. */
wb_status tmpl_walk(const char *t, bool json_mode, const struct tmpl_ops *ops, void *arg, char *err,
                    size_t errlen);

/* The kind of value a name stands for, as far as the template's shape is
 * concerned; TMPL_UNDECLARED when the name is not a param. */
enum tmpl_kind { TMPL_UNDECLARED, TMPL_NUMBER, TMPL_BOOL, TMPL_STRING };
typedef enum tmpl_kind (*tmpl_kind_fn)(void *arg, const char *name, size_t n);

/* Checks template t without real values: braces are balanced, every name is
 * declared (kind_of(arg, name, n) != TMPL_UNDECLARED), the result fits in
 * TMPL_MAX_LEN, and in JSON mode the template renders to a JSON object for
 * any values (a stand-in of each kind is put in; a string one holds a quote
 * and a backslash, so escaping is proven too). Returns WB_OK, WB_ERR_INVALID
 * or WB_ERR_RANGE with the reason in err, or WB_ERR_NOMEM. */
wb_status tmpl_check(const char *t, bool json_mode, tmpl_kind_fn kind_of, void *arg, char *err,
                     size_t errlen);

#endif

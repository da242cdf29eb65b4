/*
 * config_json.c - the config editor's converters; see config_json.h.
 *
 * to-json:   text --cfg_parse (validate)--> ok? --ydoc_parse--> tree --> JSON
 * from-json: text --json-c strict--> object --libyaml emitter--> YAML
 *                 --cfg_parse (validate)--> ok? --> YAML out
 *
 * Typing is symmetric so that YAML -> JSON -> YAML gives a file the loader
 * reads the same: JSON numbers, booleans and null are emitted as plain
 * scalars; a JSON string is emitted plain only when the loader would read
 * that plain text back as the same string (not null, not a boolean, not a
 * number, nor one of YAML 1.1's yes/no/on/off that other tools treat as
 * booleans); otherwise it is double-quoted. libyaml itself falls back to a
 * quoted style when plain text is not allowed (": ", leading "-", ...).
 */
#include "wbmb/config_json.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "config/config_walk.h"
#include "config/yaml_doc.h"

#define JSON_MAX_DEPTH 64

static json_object *node_json(const struct ydoc_node *n, bool *oom)
{
    json_object *o = NULL;
    switch (n->kind) {
    case YDOC_SCALAR:
        if (!n->quoted && ydoc_is_null(n))
            return NULL; /* JSON null */
        o = cfgw_scalar_json(n);
        break;
    case YDOC_MAP:
        o = json_object_new_object();
        for (size_t i = 0; o && i < n->n; i++) {
            json_object *v = node_json(n->items[i], oom);
            if (json_object_object_add(o, n->keys[i]->value, v) != 0) {
                json_object_put(v);
                *oom = true;
            }
        }
        break;
    case YDOC_SEQ:
        o = json_object_new_array();
        for (size_t i = 0; o && i < n->n; i++) {
            json_object *v = node_json(n->items[i], oom);
            if (json_object_array_add(o, v) != 0) {
                json_object_put(v);
                *oom = true;
            }
        }
        break;
    }
    if (!o)
        *oom = true;
    return o;
}

static void one_error(struct cfg_errors *errs, const char *name, int line, int col, const char *msg)
{
    struct cfgw_ctx c = {.file = name};
    cfgw_error(&c, line, col, "%s", msg);
    cfgw_take_errors(&c, errs);
    cfgw_ctx_free(&c);
}

wb_status cfg_yaml_to_json(const char *name, const char *text, size_t len, json_object **out,
                           struct cfg_errors *errs)
{
    struct config *cfg = NULL;
    *out = NULL;
    wb_status st = cfg_parse(name, text, len, &cfg, errs);
    cfg_free(cfg);
    if (st != WB_OK)
        return st;
    struct ydoc_node *root = NULL;
    char msg[256];
    int line, col;
    if (ydoc_parse(text, len, &root, msg, sizeof(msg), &line, &col) < 0) {
        one_error(errs, name, line, col, msg); /* cannot happen: cfg_parse parsed it */
        return WB_ERR_CONFIG;
    }
    bool oom = false;
    json_object *o = root && !ydoc_is_null(root) ? node_json(root, &oom) : json_object_new_object();
    ydoc_free(root);
    if (oom || !o) {
        json_object_put(o);
        return WB_ERR_NOMEM;
    }
    *out = o;
    return WB_OK;
}

/* ---- JSON -> YAML ---- */

struct outbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    struct outbuf *b = data;
    if (b->len + size + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + size + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, buffer, size);
    b->len += size;
    b->p[b->len] = '\0';
    return 1;
}

/* true when s, written as a plain scalar, reads back as the string s. */
static bool plain_is_string(const char *s)
{
    static const char *const yaml11_bools[] = {"y", "n", "yes", "no", "on", "off"};
    if (!*s)
        return false;
    for (size_t i = 0; i < sizeof(yaml11_bools) / sizeof(yaml11_bools[0]); i++)
        if (strcasecmp(s, yaml11_bools[i]) == 0)
            return false;
    struct ydoc_node n = {.kind = YDOC_SCALAR, .value = (char *)s};
    if (ydoc_is_null(&n))
        return false;
    json_object *v = cfgw_scalar_json(&n);
    bool str = v && json_object_is_type(v, json_type_string);
    json_object_put(v);
    return str;
}

static int emit_scalar(yaml_emitter_t *e, const char *text, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                      style))
        return -1;
    return yaml_emitter_emit(e, &ev) ? 0 : -1;
}

static int emit_string(yaml_emitter_t *e, const char *s)
{
    return emit_scalar(
        e, s, plain_is_string(s) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static int emit_value(yaml_emitter_t *e, json_object *v, int depth)
{
    yaml_event_t ev;
    char num[64];
    if (depth > JSON_MAX_DEPTH)
        return -1;
    switch (json_object_get_type(v)) {
    case json_type_null:
        return emit_scalar(e, "null", YAML_PLAIN_SCALAR_STYLE);
    case json_type_boolean:
        return emit_scalar(e, json_object_get_boolean(v) ? "true" : "false",
                           YAML_PLAIN_SCALAR_STYLE);
    case json_type_int:
        snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
        return emit_scalar(e, num, YAML_PLAIN_SCALAR_STYLE);
    case json_type_double:
        /* json-c's own text keeps a decimal point ("10.0"): it stays a float. */
        return emit_scalar(e, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                           YAML_PLAIN_SCALAR_STYLE);
    case json_type_string:
        return emit_string(e, json_object_get_string(v));
    case json_type_object:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return -1;
        json_object_object_foreach(v, key, val)
        {
            if (emit_string(e, key) < 0 || emit_value(e, val, depth + 1) < 0)
                return -1;
        }
        yaml_mapping_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    case json_type_array:
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return -1;
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (emit_value(e, json_object_array_get_idx(v, i), depth + 1) < 0)
                return -1;
        yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    }
    return -1;
}

static int emit_document(struct outbuf *b, json_object *root)
{
    static const char header[] = "# Written by wb-mqtt-bridge config from-json.\n";
    yaml_emitter_t e;
    yaml_event_t ev;
    int rc = -1;
    write_handler(b, (unsigned char *)header, sizeof(header) - 1);
    if (!yaml_emitter_initialize(&e))
        return -1;
    yaml_emitter_set_output(&e, write_handler, b);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_emitter_set_indent(&e, 2);
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(&e, &ev))
        goto out;
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
        !yaml_emitter_emit(&e, &ev))
        goto out;
    if (emit_value(&e, root, 0) < 0)
        goto out;
    if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&e, &ev))
        goto out;
    if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&e, &ev))
        goto out;
    rc = yaml_emitter_flush(&e) ? 0 : -1;
out:
    yaml_emitter_delete(&e);
    return b->oom ? -1 : rc;
}

static void offset_to_mark(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

wb_status cfg_json_to_yaml(const char *name, const char *text, size_t len, char **out,
                           struct cfg_errors *errs)
{
    *out = NULL;
    json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (!tok)
        return WB_ERR_NOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = (size_t)json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (root && used < len && strchr(" \t\r\n", text[used]))
        used++;
    int line, col;
    if (!root || jerr != json_tokener_success || used != len) {
        offset_to_mark(text, used < len ? used : len, &line, &col);
        one_error(errs, name, line, col,
                  jerr != json_tokener_success ? json_tokener_error_desc(jerr)
                  : root                       ? "unexpected text after the JSON object"
                                               : "expected a JSON object");
        json_object_put(root);
        return WB_ERR_CONFIG;
    }
    if (!json_object_is_type(root, json_type_object)) {
        one_error(errs, name, 1, 1, "the config must be a JSON object");
        json_object_put(root);
        return WB_ERR_CONFIG;
    }
    struct outbuf b = {0};
    if (emit_document(&b, root) < 0) {
        json_object_put(root);
        free(b.p);
        return WB_ERR_NOMEM;
    }
    json_object_put(root);
    struct config *cfg = NULL;
    wb_status st = cfg_parse(name, b.p, b.len, &cfg, errs);
    cfg_free(cfg);
    if (st != WB_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return WB_OK;
}

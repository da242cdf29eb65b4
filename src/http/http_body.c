/*
 * http_body.c - strict parse and shape check of POST bodies (see
 * http_body.h). A body is exactly one JSON object: depth-limited, strict
 * json-c mode, no bytes after it, no NUL bytes inside it.
 */
#include "http/http_body.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SCENARIO_ID_MAX 64

static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > SCENARIO_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* NULL when text is not exactly one JSON object. */
static json_object *parse_object(const char *text, size_t len)
{
    struct json_tokener *tok;
    json_object *o;
    /* json-c stops at a NUL byte and would report the prefix as the whole
     * parse; a NUL is never part of a valid body. */
    if (len > INT32_MAX || (len > 0 && memchr(text, '\0', len)))
        return NULL;
    tok = json_tokener_new_ex(HTTP_BODY_JSON_DEPTH);
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, text, (int)len);
    if (!o || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static int refuse(json_object *req, json_object **out, const char **msg, int status,
                  const char *text)
{
    json_object_put(req);
    *out = NULL;
    *msg = text;
    return status;
}

int http_body_parse(enum http_body_kind kind, const char *body, size_t len, json_object **out,
                    const char **msg)
{
    json_object *req, *v;

    *out = NULL;
    *msg = NULL;
    if (!body)
        body = "", len = 0;
    /* shutdown takes no body; any other POST needs one JSON object */
    if (kind == HTTP_BODY_SHUTDOWN && blank(body, len))
        return 0;
    req = parse_object(body, len);
    if (!req)
        return refuse(NULL, out, msg, 400, "body must be one JSON object");
    switch (kind) {
    case HTTP_BODY_ACTION:
        if (!json_object_object_get_ex(req, "action", &v) ||
            !json_object_is_type(v, json_type_string))
            return refuse(req, out, msg, 400, "\"action\" must be a string");
        if (json_object_object_get_ex(req, "params", &v) &&
            !json_object_is_type(v, json_type_object))
            return refuse(req, out, msg, 400, "\"params\" must be an object");
        break;
    case HTTP_BODY_SWITCH:
        if (!json_object_object_get_ex(req, "id", &v) || !json_object_is_type(v, json_type_string))
            return refuse(req, out, msg, 400, "\"id\" must be a string");
        if (!id_ok(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
            return refuse(req, out, msg, 404, "unknown scenario");
        break;
    case HTTP_BODY_SHUTDOWN:
        break;
    }
    *out = req;
    return 0;
}

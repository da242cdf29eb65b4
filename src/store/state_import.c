/*
 * state_import.c - strict parse of a `state import` file (see
 * wbmb/state_import.h). Kept apart from main.c so that the same code the
 * command line runs is unit-tested and fuzzed (tests/fuzz/fuzz_state_import.c).
 */
#include "wbmb/state_import.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

wb_status store_import_parse(const char *text, size_t len, json_object **out, char *err,
                             size_t errlen)
{
    json_tokener *tok;
    json_object *obj;
    enum json_tokener_error jerr;
    size_t used;

    *out = NULL;
    if (len > INT_MAX) {
        snprintf(err, errlen, "file too large");
        return WB_ERR_INVALID;
    }
    /* json-c stops at a NUL byte; one inside the text would hide whatever
     * follows it from the parse, so it is refused outright. */
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "expected one JSON object {\"key\": {...}, ...}: NUL byte in text");
        return WB_ERR_INVALID;
    }
    tok = json_tokener_new_ex(STORE_IMPORT_MAX_DEPTH);
    if (!tok) {
        snprintf(err, errlen, "out of memory");
        return WB_ERR_NOMEM;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (obj && used < len && is_space(text[used]))
        used++;
    if (!obj || jerr != json_tokener_success || used != len ||
        !json_object_is_type(obj, json_type_object)) {
        snprintf(err, errlen, "expected one JSON object {\"key\": {...}, ...}%s%s",
                 jerr != json_tokener_success ? ": " : "",
                 jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "");
        json_object_put(obj);
        return WB_ERR_INVALID;
    }
    json_object_object_foreach(obj, k, v)
    {
        if (!*k || !json_object_is_type(v, json_type_object)) {
            snprintf(err, errlen, "the value of '%.64s' is not a JSON object", k);
            json_object_put(obj);
            return WB_ERR_INVALID;
        }
    }
    *out = obj;
    return WB_OK;
}

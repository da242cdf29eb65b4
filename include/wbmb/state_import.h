/*
 * state_import.h - parsing and validation of a `state import` file
 * (CONTRACT §2): one JSON object {"<key>": {<state object>}, ...}.
 *
 * The parse is strict and all-or-nothing: the text must be exactly one JSON
 * object (white space around it allowed, nothing else, no NUL bytes), nested
 * at most STORE_IMPORT_MAX_DEPTH deep, and every key must be non-empty text
 * without NUL whose value is a JSON object. Nothing is written here; the
 * caller upserts the validated object in one transaction. Pure and fuzzable.
 */
#ifndef WBMB_STATE_IMPORT_H
#define WBMB_STATE_IMPORT_H

#include <json-c/json.h>
#include <stddef.h>

#include "wbmb/status.h"

#define STORE_IMPORT_MAX_DEPTH 64

/* On success returns WB_OK and *out = a new object (caller puts it). On
 * failure returns WB_ERR_INVALID (or WB_ERR_NOMEM), *out is NULL and err
 * holds a one-line reason (never the file's content beyond one key). */
wb_status store_import_parse(const char *text, size_t len, json_object **out, char *err,
                             size_t errlen);

#endif

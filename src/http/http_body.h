/*
 * http_body.h - internal to src/http: parsing and checking the JSON body of
 * a POST request, apart from libmicrohttpd so that it can be unit-tested and
 * fuzzed (tests/fuzz/fuzz_http_body.c) without sockets. The routing and
 * connection handling stay in http.c.
 */
#ifndef WBMB_HTTP_BODY_H
#define WBMB_HTTP_BODY_H

#include <json-c/json.h>
#include <stddef.h>

#define HTTP_BODY_JSON_DEPTH 32

/* The POST routes whose bodies are parsed here. */
enum http_body_kind {
    HTTP_BODY_ACTION,   /* {"action": "<string>", "params": {...}?} */
    HTTP_BODY_SWITCH,   /* {"id": "<scenario id>"} */
    HTTP_BODY_SHUTDOWN, /* empty (white space only) or one JSON object */
};

/* Parses body[0..len) (need not be NUL-terminated) for a route of kind.
 * Returns 0 and *req = the request object (a new reference, NULL for an
 * empty shutdown body), or an HTTP status (400, 404) with *req NULL and
 * *msg a fixed error text of this module (never request input). */
int http_body_parse(enum http_body_kind kind, const char *body, size_t len, json_object **req,
                    const char **msg);

#endif

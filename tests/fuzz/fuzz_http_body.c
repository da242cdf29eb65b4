/*
 * fuzz_http_body.c - libFuzzer target: the POST body handling of the HTTP
 * API (http_body_parse, the function http.c runs on every POST body after
 * libmicrohttpd collected it). The first byte picks the route kind.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "http/http_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *req = (json_object *)1;
    const char *msg = NULL;
    int st;

    if (size < 1)
        return 0;
    st = http_body_parse((enum http_body_kind)(data[0] % 3), (const char *)data + 1, size - 1, &req,
                         &msg);
    if (st == 0) {
        if (msg || (!req && data[0] % 3 != HTTP_BODY_SHUTDOWN))
            abort();
        /* the backend serialises parts of the request into answers and logs */
        if (req && !json_object_to_json_string(req))
            abort();
        json_object_put(req);
    } else if (req || !msg || (st != 400 && st != 404)) {
        abort();
    }
    return 0;
}

/*
 * fuzz_state_import.c - libFuzzer target: the `state import` file parser
 * (store_import_parse, used by main.c). An accepted file is an object of
 * objects with non-empty keys, and re-parsing its serialisation accepts it
 * again (what export writes, import takes).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/state_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *obj = (json_object *)1, *again = NULL;
    char err[256];

    err[0] = '\0';
    if (store_import_parse((const char *)data, size, &obj, err, sizeof(err)) != WB_OK) {
        if (obj || !err[0])
            abort();
        return 0;
    }
    json_object_object_foreach(obj, k, v)
    {
        if (!*k || !json_object_is_type(v, json_type_object))
            abort();
    }
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY);
    if (store_import_parse(s, strlen(s), &again, err, sizeof(err)) != WB_OK)
        abort();
    json_object_put(again);
    json_object_put(obj);
    return 0;
}

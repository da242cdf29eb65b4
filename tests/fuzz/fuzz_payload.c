/*
 * fuzz_payload.c - libFuzzer target: the payload -> state mapper.
 * Every input goes through payload_parse_scalar for each plain type, and
 * through payload_parse_object + payload_map_fields with a mapped binding
 * (dotted paths, a missing path) and a merge-everything binding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cfg_field_map fmap[] = {
    {.field = "power", .path = "power"},      {.field = "energy", .path = "meter.energy"},
    {.field = "deep", .path = "a.b.c.d.e.f"}, {.field = "odd", .path = "a..b"},
    {.field = "state", .path = "state"},
};
static const struct cfg_state_binding mapped = {
    .topic = "z2m/plug", .type = CFG_T_JSON, .fields = fmap, .n_fields = 5};
static const struct cfg_state_binding merged = {.topic = "z2m/plug", .type = CFG_T_JSON};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum cfg_value_type types[] = {CFG_T_BOOL, CFG_T_INT, CFG_T_FLOAT, CFG_T_STRING};
    const char *buf = (const char *)data;
    char err[256];
    json_object *v;

    for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
        v = (json_object *)1;
        err[0] = '\0';
        wb_status st = payload_parse_scalar(types[i], buf, size, &v, err, sizeof(err));
        if (st == WB_OK) {
            if (!v)
                abort();
            /* a string value is always valid UTF-8 (it is mirrored and stored) */
            if (types[i] == CFG_T_STRING &&
                !payload_utf8_valid(json_object_get_string(v),
                                    (size_t)json_object_get_string_len(v)))
                abort();
            json_object_put(v);
        } else if (v || !err[0]) {
            abort();
        }
    }

    v = NULL;
    if (payload_parse_object(buf, size, &v, err, sizeof(err)) == WB_OK) {
        json_object *changes = json_object_new_object();
        payload_map_fields(&mapped, v, changes);
        payload_map_fields(&merged, v, changes);
        /* the result must serialise (it goes to MQTT, SQLite and HTTP) */
        if (!json_object_to_json_string_ext(changes, JSON_C_TO_STRING_PLAIN))
            abort();
        json_object_put(changes);
        json_object_put(v);
    } else if (v) {
        abort();
    }
    (void)payload_utf8_valid(buf, size);
    return 0;
}

/*
 * fuzz_action.c - libFuzzer target: action params and templates on a fixed
 * small set of actions built here. The first input byte picks the action,
 * the rest is an MQTT /on payload (action_params_from_payload) or, with the
 * high bit of the first byte set, a JSON params object as the HTTP API hands
 * it over. Validated params are rendered (action_render_payload,
 * action_render_set); a JSON-object template must render to a JSON object.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/action.h"
#include "wbmb/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *modes[] = {"auto", "cool", "heat", "\"q\"", "{x}"};
static struct cfg_param p_json[] = {
    {.name = "level",
     .type = CFG_T_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = 100,
     .required = true},
    {.name = "temp",
     .type = CFG_T_FLOAT,
     .has_min = true,
     .min = -50.5,
     .has_max = true,
     .max = 50.5},
    {.name = "on", .type = CFG_T_BOOL},
    {.name = "who", .type = CFG_T_STRING, .has_max = true, .max = 32},
    {.name = "mode", .type = CFG_T_ENUM, .enum_values = modes, .n_enum_values = 5},
};
static struct cfg_param p_text[] = {{.name = "text", .type = CFG_T_STRING}};
static struct cfg_param p_mode[] = {{.name = "mode",
                                     .type = CFG_T_ENUM,
                                     .enum_values = modes,
                                     .n_enum_values = 5,
                                     .required = true}};
static struct cfg_param p_float[] = {{.name = "f", .type = CFG_T_FLOAT}};

static struct cfg_action actions[] = {
    {.name = "json",
     .topic = "cmd/json",
     .payload = "{\"level\": {level}, \"t\": {temp}, \"on\": {on}, \"who\": \"{who}\", "
                "\"m\": \"{mode}\", \"raw\": \"{{x}}\"}",
     .params = p_json,
     .n_params = 5},
    {.name = "plain",
     .topic = "cmd/plain",
     .payload = "say {{{text}}}",
     .params = p_text,
     .n_params = 1},
    {.name = "mode", .topic = "cmd/mode", .payload = "{mode}", .params = p_mode, .n_params = 1},
    {.name = "float",
     .topic = "cmd/f",
     .payload = "{\"f\": {f}}",
     .params = p_float,
     .n_params = 1},
    {.name = "none", .topic = "cmd/none", .payload = "1"},
};
#define N_ACTIONS (sizeof(actions) / sizeof(*actions))

/* tmpl_check()'s view of a param of action arg (as the config gives it). */
static enum tmpl_kind kind_of(void *arg, const char *name, size_t n)
{
    const struct cfg_action *a = arg;
    for (size_t i = 0; i < a->n_params; i++)
        if (strlen(a->params[i].name) == n && memcmp(a->params[i].name, name, n) == 0)
            return a->params[i].type == CFG_T_BOOL    ? TMPL_BOOL
                   : a->params[i].type == CFG_T_INT   ? TMPL_NUMBER
                   : a->params[i].type == CFG_T_FLOAT ? TMPL_NUMBER
                                                      : TMPL_STRING;
    return TMPL_UNDECLARED;
}

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    p_json[3].default_value = json_object_new_string("bridge");
    actions[0].set = json_tokener_parse("{\"level\": \"{level}\", \"label\": \"{who} at {level}\", "
                                        "\"fixed\": 1, \"m\": \"{mode}\"}");
    actions[1].set = json_tokener_parse("{\"text\": \"{text}\", \"lit\": \"{{}}\"}");
    actions[3].set = json_tokener_parse("{\"f\": \"{f}\"}");
    for (size_t i = 0; i < N_ACTIONS; i++) {
        char err[256];
        const char *t = actions[i].payload;
        if (tmpl_check(t, tmpl_is_json(t), kind_of, &actions[i], err, sizeof(err)) != WB_OK)
            abort(); /* the target's own actions must be valid */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_object *in = NULL, *params = NULL, *set = NULL;
    char *payload = NULL;
    const struct cfg_action *a;

    init_once();
    if (size < 1)
        return 0;
    a = &actions[(data[0] & 0x7f) % N_ACTIONS];
    if (data[0] & 0x80) {
        struct json_tokener *tok = json_tokener_new_ex(32);
        in = json_tokener_parse_ex(tok, (const char *)data + 1, (int)(size - 1));
        json_tokener_free(tok);
        if (in && !json_object_is_type(in, json_type_object)) {
            json_object_put(in);
            return 0;
        }
    } else if (action_params_from_payload(a, (const char *)data + 1, size - 1, &in, err,
                                          sizeof(err)) != WB_OK) {
        if (in || !err[0])
            abort();
        return 0;
    }
    if (action_validate(a, in, &params, err, sizeof(err)) == WB_OK) {
        if (action_render_payload(a, params, &payload, err, sizeof(err)) == WB_OK) {
            if (tmpl_is_json(a->payload)) {
                json_object *o = json_tokener_parse(payload);
                if (!o || !json_object_is_type(o, json_type_object))
                    abort(); /* a JSON template always renders to a JSON object */
                json_object_put(o);
            }
            free(payload);
        }
        if (action_render_set(a, params, &set, err, sizeof(err)) == WB_OK)
            json_object_put(set);
        json_object_put(params);
    } else if (params) {
        abort();
    }
    json_object_put(in);
    return 0;
}

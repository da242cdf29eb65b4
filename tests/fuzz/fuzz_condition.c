/*
 * fuzz_condition.c - libFuzzer target: the scenario step `when` parser
 * (cfg_condition_parse) and its evaluation (action_condition_holds).
 * Input: the condition text up to the first newline, then a JSON state
 * object the condition is evaluated against (and a few fixed states).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/action.h"
#include "wbmb/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t clen = nl ? (size_t)(nl - (const char *)data) : size;
    char *text = malloc(clen + 1);
    char err[256];
    struct cfg_condition *c;

    if (!text)
        return 0;
    memcpy(text, data, clen);
    text[clen] = '\0';
    err[0] = '\0';
    c = cfg_condition_parse(text, err, sizeof(err));
    if (!c) {
        if (!err[0])
            abort(); /* a refused condition always says why */
    } else {
        static const char *fixed[] = {"{}", "{\"power\": true}", "{\"level\": 30.0}",
                                      "{\"input\": \"hdmi1\", \"n\": null}"};
        json_object *state = NULL;
        if (nl) {
            struct json_tokener *tok = json_tokener_new_ex(32);
            size_t rest = size - clen - 1;
            state = json_tokener_parse_ex(tok, nl + 1, (int)rest);
            json_tokener_free(tok);
        }
        if (state && json_object_is_type(state, json_type_object)) {
            bool holds = action_condition_holds(c, state);
            /* == and != of the same value on the same state are opposites */
            c->op = c->op == CFG_COND_EQ ? CFG_COND_NE : CFG_COND_EQ;
            if (action_condition_holds(c, state) == holds)
                abort();
        }
        json_object_put(state);
        for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++) {
            json_object *s = json_tokener_parse(fixed[i]);
            (void)action_condition_holds(c, s);
            json_object_put(s);
        }
        (void)action_condition_holds(c, NULL);
        cfg_condition_free(c);
    }
    free(text);
    return 0;
}

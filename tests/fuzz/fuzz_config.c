/*
 * fuzz_config.c - libFuzzer target: the YAML config loader (cfg_parse) on
 * arbitrary text, with every error line formatted and freed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wbmb/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    /* the loader must not depend on the environment of the run */
    unsetenv("WB_MQTT_BRIDGE_PASSWORD");
    log_set_level(LOG_LVL_ERROR);
    if (cfg_parse("fuzz.yaml", (const char *)data, size, &cfg, &errs) == WB_OK) {
        if (!cfg || errs.n != 0)
            abort();
    } else if (cfg || errs.n == 0) {
        abort(); /* a refused config always says why */
    }
    cfg_free(cfg);
    cfg_errors_free(&errs);
    return 0;
}

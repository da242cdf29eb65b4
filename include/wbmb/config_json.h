/*
 * config_json.h - YAML <-> JSON conversion of the configuration, for the
 * Wiren Board config editor (wb-mqtt-confed edits JSON against
 * config/wb-mqtt-bridge.schema.json and calls `wb-mqtt-bridge config
 * to-json|from-json` to read and write the YAML file).
 *
 * Both directions validate with the real loader (cfg_parse): nothing that
 * the daemon would refuse is ever converted, and the caller gets the same
 * "NAME:LINE:COLUMN: message" lines as --check-config. YAML comments and
 * key order details are not preserved (JSON has no comments).
 */
#ifndef WBMB_CONFIG_JSON_H
#define WBMB_CONFIG_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "wbmb/config.h"
#include "wbmb/status.h"

/* YAML text -> JSON object (scalars typed as the loader types them: quoted
 * = string; plain true/false, integers, decimal floats, null; other plain
 * text = string). name is FILE in error lines. Returns WB_OK and *out (the
 * caller puts it), WB_ERR_CONFIG with every error in errs (free with
 * cfg_errors_free), or WB_ERR_NOMEM. An empty document gives {}. */
wb_status cfg_yaml_to_json(const char *name, const char *text, size_t len, json_object **out,
                           struct cfg_errors *errs);

/* JSON text (one object) -> YAML text emitted by libyaml, then validated
 * with cfg_parse. Returns WB_OK and *out (a NUL-terminated malloc'd string,
 * the caller frees it), or WB_ERR_CONFIG with the errors in errs: a JSON
 * syntax error as NAME:LINE:COLUMN of the JSON text, a config error as
 * NAME:LINE:COLUMN of the produced YAML. */
wb_status cfg_json_to_yaml(const char *name, const char *text, size_t len, char **out,
                           struct cfg_errors *errs);

#endif

/*
 * api_rows.h - the HTTP API's JSON of the store's rows: what GET
 * /state-history/{id}, /device-connection-history/{id} and /command-logs
 * answer. The store returns rows (struct store_rows); their JSON shape is
 * the API's, so it is built here, in the API layer.
 */
#ifndef WBMB_CORE_API_ROWS_H
#define WBMB_CORE_API_ROWS_H

#include <json-c/json.h>

#include "wbmb/state_store.h"

/* A new JSON array, one object per row in r's order: history
 * {"ts","state"} (state as JSON, kept as a string when the text is not
 * JSON), connections {"ts","event"}, commands with the command_logs column
 * names ("params" as JSON the same way). NULL fields are JSON null. */
json_object *api_rows_json(const struct store_rows *r);

/* A store query's rows as that JSON (*out, NULL on failure): what the
 * endpoints serve, for the API and the tests. */
wb_status api_history_query(struct state_store *s, const char *device_id, int limit,
                            json_object **out);
wb_status api_connection_query(struct state_store *s, const char *device_id, int limit,
                               json_object **out);
wb_status api_command_query(struct state_store *s, const struct store_command_filter *f, int limit,
                            json_object **out);

#endif

/*
 * api_rows.h - the HTTP API's JSON of the store's rows: what GET
 * /state-history/{id}, /device-connection-history/{id} and /command-logs
 * answer. The store returns rows (struct store_rows); their JSON shape is
 * the API's, so it is built here, in the API layer.
 */
#ifndef WBMB_CORE_API_ROWS_H
#define WBMB_CORE_API_ROWS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

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

/* The field list "a,b" as a JSON-less filter: is name one of fields?
 * fields NULL: every field is. */
bool api_field_listed(const char *fields, const char *name);

/* rows (a history set, oldest first) down-sampled into at most max_points
 * equal time buckets over [from_ms, to_ms] (from_ms INT64_MIN: the first
 * row's time; to_ms INT64_MAX: now), empty buckets left out, in that order
 * or newest first when desc. A bucket is {"ts": its last row's ts,
 * "state": {numeric field: mean, other: the last value}, "stats": {numeric
 * field: {"min","max","mean","n"}}, "n": rows}; an interval row's stats
 * count with their n. fields: only those state fields (NULL: all). A new
 * JSON array; NULL when out of memory. */
json_object *api_history_buckets(const struct store_rows *rows, int64_t from_ms, int64_t to_ms,
                                 int max_points, const char *fields, bool desc);

/* A history set's rows as the API's JSON like api_rows_json(), state and
 * stats restricted to fields (NULL: all). */
json_object *api_history_json(const struct store_rows *r, const char *fields);

#endif

/*
 * api_history.h - GET /state-history/{id} with its time parameters: the
 * parsing of from/to/order/fields/max_points (400 for bad ones), the store
 * query, and the down-sampling of a range into at most max_points buckets.
 */
#ifndef WBMB_API_HISTORY_H
#define WBMB_API_HISTORY_H

#include <json-c/json.h>
#include <stdint.h>

#include "wbmb/http.h"
#include "wbmb/state_store.h"

#define API_MAX_POINTS 10000

/* A time as the API takes it: integer epoch milliseconds, or ISO-8601
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM) (a space stands
 * for '+': a query string's unescaped '+'). 0 with *ms set, -1 when s is
 * none of these or out of the years 0001..9999. */
int api_time_parse(const char *s, int64_t *ms);

/* The answer of GET /state-history/{id} for a known device: 200 with the
 * rows or buckets, 400 with {"error"} for a bad parameter, 503 when the
 * store fails. *body is the caller's. */
int api_history_answer(struct state_store *s, const char *device_id,
                       const struct http_history_args *a, json_object **body);

/* The buckets of rows (history rows, oldest first) over [from_ms, to_ms]
 * cut into n equal spans, empty ones left out, in ascending or descending
 * order: {"ts", "state", "stats", "n"} each (see README "HTTP API").
 * fields: NULL or a NULL-terminated list restricting the state. A new
 * array, the caller's. */
json_object *api_history_buckets(const struct store_rows *rows, int64_t from_ms, int64_t to_ms,
                                 int n, bool ascending, const char *const *fields);

#endif

/*
 * store_sink_hist.h - the open intervals of the history policy's interval
 * mode (config.h, struct cfg_history), kept by the store sink
 * (store_sink.c). Internal to src/store/.
 *
 * Per device at most one interval is open: [start, start + interval_ms),
 * start aligned to a multiple of interval_ms of the wall clock. Every
 * recorded transition inside it replaces the interval's state text and
 * adds one sample of each numeric recorded field to its min, max, sum and
 * n. The interval becomes one device_state_snapshots row (kind
 * "interval", stats {"field":{"min","max","mean","n"}}) when it is closed:
 *
 *   (none) --store_shist_add()--> open --store_shist_close(wall >= end)--> row
 *                                  |  \--store_shist_add() at or past end--> row, new open
 *                                  \--store_shist_close(all: stop, reload)--> row
 *
 * The row's ts is the time it is closed (its end when the sink's tick
 * closes it), so rows keep ts growing with id like every other row.
 */
#ifndef WBMB_STORE_SINK_HIST_H
#define WBMB_STORE_SINK_HIST_H

#include <stdbool.h>
#include <stdint.h>

#include "wbmb/config.h"
#include "wbmb/sink.h"
#include "wbmb/state_store.h"

struct store_shist;

/* store is borrowed. NULL when out of memory. */
struct store_shist *store_shist_create(struct state_store *store);
/* Frees the open intervals without writing them; NULL is a no-op. */
void store_shist_destroy(struct store_shist *h);

/* One recorded transition of d under policy p (mode interval) at wall_ms:
 * json is the recorded state's text (copied). Closes d's interval first
 * when wall_ms is at or past its end. Returns the first store failure. */
wb_status store_shist_add(struct store_shist *h, const struct cfg_history *p,
                          const struct sink_device *d, const char *json, int64_t wall_ms);

/* Writes the rows of the intervals that ended by wall_ms (all of them
 * when all is set: stop, reload), each through store_history_put().
 * Returns the number of store calls that failed. */
unsigned store_shist_close(struct store_shist *h, int64_t wall_ms, bool all);

/* The wall clock (ms) at which the next open interval ends; INT64_MAX
 * when none is open. */
int64_t store_shist_due(const struct store_shist *h);

#endif

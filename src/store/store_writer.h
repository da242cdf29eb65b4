/*
 * store_writer.h - the backend-neutral group-commit writer: pending and
 * in-flight batches, coalescing per key (the latest value wins), the writer
 * thread, back-off after a failed commit, sequence numbers, the committed
 * and durable floors, flush. Internal to src/store/; store_front.c builds the
 * StateStore functions on it, a backend (store_backend.h) only commits what
 * it is handed.
 *
 * A change is in exactly one of pending, in-flight or the database; nothing
 * leaves pending/in-flight except through a successful commit. Readers see
 * pending and in-flight changes through the overlay functions below.
 */
#ifndef WBMB_STORE_WRITER_H
#define WBMB_STORE_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store_backend.h"

struct store_writer;

/* Starts the writer thread over backend b (not owned) with cfg's intervals;
 * label names the database in log lines. NULL when out of memory or when
 * the thread cannot start (err holds why). */
struct store_writer *store_writer_start(struct store_backend *b, const struct store_config *cfg,
                                        const char *label, char *err, size_t errlen);
/* Flushes, stops the thread (a due sync runs first) and frees; logs the
 * changes lost when the database keeps failing. NULL is a no-op. */
void store_writer_stop(struct store_writer *w);

/* Queues key -> text (ownership taken; NULL = delete). is_set: a set(),
 * which gets the next sequence number. With op (ownership taken, may be
 * NULL) queued under the same lock, so one commit carries both. */
wb_status store_writer_put(struct store_writer *w, const char *key, char *text, bool is_set,
                           struct store_op *op);
/* Queues an appended row (ownership taken; NULL = out of memory). */
wb_status store_writer_append(struct store_writer *w, struct store_op *op);
/* Commits everything pending now; the commit's status. Callers that queue
 * with commit_interval_ms 0 get this done by the put/append themselves. */
wb_status store_writer_flush(struct store_writer *w);
void store_writer_status(struct store_writer *w, struct store_status *out);

/* ---- the overlay: what is queued, for the reads ------------------------ */

/* The newest queued value of key: 1 with *text a malloc'd copy (NULL = a
 * queued delete; NULL text and WB_ERR_NOMEM-free), 0 when nothing is
 * queued, -1 when out of memory. */
int store_writer_peek(struct store_writer *w, const char *key, char **text);

/* Calls cb(key, text, prio, ud) for every queued key starting with prefix
 * (text NULL = delete; prio 2 pending, 1 in flight); cb must not use the
 * store. Non-zero from cb stops and is returned. */
int store_writer_each_key(struct store_writer *w, const char *prefix,
                          int (*cb)(const char *key, const char *text, int prio, void *ud),
                          void *ud);

/* A read of appended rows that sees the queue: with the writer's commits
 * held off, calls rows_cb(ud) (the database read) and op_cb(op, ud) for
 * each queued row, newest first, so that no row is seen twice or missed
 * by a commit landing in between; no commit is forced. Returns rows_cb's
 * status (op_cb's non-WB_OK stops the walk and is returned). */
wb_status store_writer_read_rows(struct store_writer *w, wb_status (*rows_cb)(void *ud),
                                 wb_status (*op_cb)(const struct store_op *op, void *ud), void *ud);

/* The sync policy's arithmetic (pure, for the tests): when the sync must
 * start so that changes queued since oldest_ms (monotonic) are durable
 * commit_ms + sync_ms after, given a sync takes est_ms; and the new
 * estimate after a sync took took_ms (a maximum decaying by 1/8 a sync). */
int64_t store_sync_deadline(int64_t oldest_ms, unsigned commit_ms, unsigned sync_ms,
                            int64_t est_ms);
int64_t store_sync_estimate(int64_t est_ms, int64_t took_ms);

#endif

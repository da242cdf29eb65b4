/*
 * store_writer_int.h - the writer's handle, shared by store_writer.c (the
 * batches and the thread) and store_writer_read.c (the overlay for readers).
 * Internal to the writer.
 */
#ifndef WBMB_STORE_WRITER_INT_H
#define WBMB_STORE_WRITER_INT_H

#include <pthread.h>

#include "store/store_writer.h"

struct store_writer {
    struct store_backend *b;
    char *label;
    unsigned commit_interval_ms, sync_interval_ms;
    unsigned max_queued_rows; /* appended rows pending; 0 = unbounded */
    uint64_t dropped_now;     /* history dropped since the last successful commit */

    pthread_mutex_t gate; /* held by the writer over one commit, see above */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* writer waits here */
    pthread_cond_t done;  /* flush() waits here */
    struct store_batch pending;
    struct store_batch inflight; /* valid while has_inflight; read-only then */
    bool has_inflight;
    int64_t first_pending_ms;  /* 0 = nothing pending */
    int64_t inflight_first_ms; /* first_pending_ms of the in-flight batch */
    uint64_t next_seq;
    uint64_t flush_req, flush_done;
    wb_status flush_status;
    bool stop, failing;
    int64_t retry_at_ms;
    unsigned backoff_ms;
    /* full_sync: every commit is durable. Otherwise unsynced_ms is the
     * monotonic time at which the oldest change committed since the last
     * sync was queued (0 = everything committed is durable), and
     * sync_est_ms what a sync takes (a decaying maximum of the last ones):
     * the sync starts that much before it must be done. */
    bool full_sync;
    int64_t unsynced_ms;
    int64_t sync_est_ms;
    int64_t sync_retry_ms; /* while sync_failing: the next try */
    int64_t commit_est_ms; /* what a commit takes (decaying maximum, as sync_est_ms) */
    bool sync_failing;
    struct store_status st;
    pthread_t thread;
    char err[256]; /* writer thread only */
};

#endif

/*
 * store_writer.c - the backend-neutral group-commit writer (store_writer.h).
 *
 * Callers never wait for a database write unless commit_interval_ms is 0
 * (every put/append then flushes before returning) or they call flush.
 *
 * Pending changes live under `lock` in one batch: a hash map key -> latest
 * JSON text (NULL = delete tombstone), so N sets of one key inside a window
 * cost one row write, plus a FIFO of appended rows (history, connection log,
 * devices, commands). Every set() gets the next sequence number.
 *
 *   put/append --(lock)--> pending --(writer_main: swap)--> inflight
 *                             ^                                |
 *                             |                                | backend commit():
 *                             |  failed: requeue() under the   | one transaction
 *                             +- newer pending values, back    |
 *                                off 50 ms .. 1 s, status !ok  |
 *                                                              |
 *   flush(): flush_req++, wake,    ok: committed_seq = max_seq, <--+
 *   wait until flush_done >= req       status ok, inflight freed
 *
 * While commits fail, changes keep coming: state stays bounded by itself
 * (one entry per key), appended rows do not. Past max_queued_rows pending
 * rows the oldest history snapshot goes for each new row (drop_excess_locked;
 * counted in status.history_dropped, logged when it starts and when commits
 * succeed again). Connection and command logs and devices rows are never
 * dropped: they are few, and a command log is an audit trail. A dropped
 * snapshot was never acknowledged as durable (durable_seq counts set()s).
 *
 * The writer wakes when the first change of a window is commit_interval_ms
 * old (or the back-off after a failure expired), when a flush is requested,
 * when a sync is due, and at close.
 *
 * Durability (the sync policy). A commit makes changes visible and, for
 * SQLite, safe from kill -9; only a sync makes them survive a power cut.
 * Unless the backend's commits are durable themselves (b->durable_commits)
 * the writer syncs so that a change is durable at most commit_interval_ms
 * + sync_interval_ms after it was queued: the clock starts when the oldest
 * change of the first commit not yet synced was queued (not when that
 * commit ended, so the commit's own time is inside the bound), and the sync
 * starts early by what a sync takes (sync_est_ms, a decaying maximum of the
 * last syncs' durations), so slow storage moves the sync forward instead
 * of the loss past the bound (the lateness of the sync's start, a commit
 * that ran over or a writer waiting for a CPU, counts as part of what a
 * sync takes). Storage slower than the whole bound makes the
 * writer sync after every commit; the loss is then the commit and sync
 * times themselves (status.durable_lag_ms_max shows what was reached):
 *
 *   all durable --commit--> unsynced (unsynced_ms = oldest change queued)
 *        ^                     | sync_due() passed, or close():
 *        |                     | sync_locked() calls ops->sync
 *        +---------------------+ durable_seq = committed_seq
 *
 * `gate` is held by the writer from taking a batch in flight until its
 * outcome is published; store_writer_read_rows() takes it too, so a read of
 * appended rows sees each row exactly once (queued or committed). The
 * overlay (what readers see of the queue) is store_writer_read.c's.
 */
#include "store/store_writer.h"
#include "store/store_writer_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "wbmb/lockstat.h"
#include "wbmb/log.h"
#include "wbmb/util.h"

#define WRITER_NICE 5

/* ---- batches ------------------------------------------------------------ */

int store_op_nfields(enum store_op_kind k)
{
    static const int nf[] = {
        [STORE_OP_HIST] = 4, [STORE_OP_CONN] = 3, [STORE_OP_DEVICE] = 5, [STORE_OP_CMD] = 9};
    return nf[k];
}

struct store_op *store_op_new(enum store_op_kind kind, int flag, const char *const *fields, int n)
{
    size_t len[STORE_OP_FIELDS], total = sizeof(struct store_op) + (size_t)n * sizeof(char *);
    for (int i = 0; i < n; i++) {
        len[i] = fields[i] ? strlen(fields[i]) + 1 : 0;
        total += len[i];
    }
    struct store_op *o = malloc(total);
    if (!o)
        return NULL;
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->flag = flag;
    char *p = (char *)&o->f[n];
    for (int i = 0; i < n; i++) {
        o->f[i] = NULL;
        if (!fields[i])
            continue;
        memcpy(p, fields[i], len[i]);
        o->f[i] = p;
        p += len[i];
    }
    return o;
}

static void batch_free(struct store_batch *b)
{
    smap_clear(&b->kv);
    while (b->head) {
        struct store_op *o = b->head;
        b->head = o->next;
        free(o);
    }
    memset(b, 0, sizeof(*b));
}

/* Caller holds lock. Starts the commit window on the first change. */
static void mark_pending(struct store_writer *w)
{
    if (w->first_pending_ms == 0) {
        w->first_pending_ms = util_mono_ms();
        pthread_cond_signal(&w->wake);
    }
}

/* Caller holds lock: drops the oldest pending history snapshots while more
 * than max_queued_rows rows are pending (see the top of the file). */
static void drop_excess_locked(struct store_writer *w)
{
    while (w->max_queued_rows && w->pending.nops > w->max_queued_rows) {
        struct store_op *prev = NULL, *o = w->pending.head;
        while (o && o->kind != STORE_OP_HIST) {
            prev = o;
            o = o->next;
        }
        if (!o)
            return; /* only logs and devices: kept */
        if (prev)
            prev->next = o->next;
        else
            w->pending.head = o->next;
        if (w->pending.tail == o)
            w->pending.tail = prev;
        free(o);
        w->pending.nops--;
        if (w->dropped_now++ == 0)
            log_error("store: %u rows queued for %s, which is failing; dropping the oldest "
                      "history snapshots (wbmb_store_history_dropped_total)",
                      w->max_queued_rows, w->label);
        w->st.history_dropped++;
    }
}

/* Caller holds lock. */
static void append_op_locked(struct store_writer *w, struct store_op *o)
{
    if (w->pending.head)
        w->pending.tail->next = o;
    else
        w->pending.head = o;
    w->pending.tail = o;
    w->pending.nops++;
    mark_pending(w);
    if (w->max_queued_rows && w->pending.nops > w->max_queued_rows)
        drop_excess_locked(w);
}

/* Caller holds lock; the failed batch goes back under the newer changes. */
static void requeue(struct store_writer *w, struct store_batch *b)
{
    if (smap_merge_older(&w->pending.kv, &b->kv) != WB_OK)
        log_error("store: out of memory; %zu state changes lost", b->kv.count);
    if (b->head) {
        b->tail->next = w->pending.head;
        if (!w->pending.head)
            w->pending.tail = b->tail;
        w->pending.head = b->head;
        w->pending.nops += b->nops;
        b->head = NULL;
    }
    batch_free(b);
    if (w->first_pending_ms == 0)
        w->first_pending_ms = util_mono_ms();
    drop_excess_locked(w);
}

/* ---- the writer thread ----------------------------------------------- */

static void wait_until(struct store_writer *w, int64_t due_ms)
{
    if (due_ms == INT64_MAX) {
        pthread_cond_wait(&w->wake, &w->lock);
        return;
    }
    struct timespec ts = {.tv_sec = due_ms / 1000, .tv_nsec = (due_ms % 1000) * 1000000};
    pthread_cond_timedwait(&w->wake, &w->lock, &ts);
}

int64_t store_sync_deadline(int64_t oldest_ms, unsigned commit_ms, unsigned sync_ms, int64_t est_ms)
{
    int64_t bound = (int64_t)commit_ms + sync_ms;
    /* A fortieth of the bound (27 ms of 1.1 s) for the wake-up's jitter:
     * the VM power cut measured durable lags of 1.105-1.14 s without it. */
    int64_t budget = bound - bound / 40 - est_ms;
    return oldest_ms + (budget > 0 ? budget : 0);
}

int64_t store_sync_estimate(int64_t est_ms, int64_t took_ms)
{
    int64_t decayed = est_ms - (est_ms + 7) / 8;
    return took_ms > decayed ? took_ms : decayed;
}

/* Caller holds lock: changes queued since oldest (monotonic ms) are
 * durable now. */
static void note_durable_locked(struct store_writer *w, int64_t oldest)
{
    int64_t lag = oldest ? util_mono_ms() - oldest : 0;
    if (lag > 0 && (uint64_t)lag > w->st.durable_lag_ms_max)
        w->st.durable_lag_ms_max = (uint64_t)lag;
}

/* Caller holds lock: when the next sync must start (INT64_MAX: none due). */
static int64_t sync_due(const struct store_writer *w)
{
    if (!w->unsynced_ms)
        return INT64_MAX;
    if (w->sync_failing)
        return w->sync_retry_ms;
    return store_sync_deadline(w->unsynced_ms, w->commit_interval_ms, w->sync_interval_ms,
                               w->sync_est_ms);
}

/* Makes every commit so far durable through the backend's sync. Writer
 * thread, caller holds lock (released during the sync). */
static void sync_locked(struct store_writer *w)
{
    uint64_t seq = w->st.committed_seq;
    int64_t oldest = w->unsynced_ms;
    /* How late the sync started counts as part of what it takes: a writer
     * that waited for a CPU or for a commit should start earlier too. */
    int64_t due = sync_due(w), now = util_mono_ms();
    int64_t from = due < now ? due : now;
    pthread_mutex_unlock(&w->lock);
    int64_t a = util_mono_us();
    wb_status rc = w->b->ops->sync(w->b, w->err, sizeof(w->err));
    int64_t us = util_mono_us() - a;
    wb_lock(&w->lock);
    if (rc != WB_OK) {
        if (!w->sync_failing)
            log_error("store: syncing %s failed (%s); retrying", w->label, w->err);
        w->sync_failing = true;
        w->sync_retry_ms = util_mono_ms() + w->sync_interval_ms; /* next try */
        return;
    }
    w->sync_est_ms = store_sync_estimate(w->sync_est_ms, util_mono_ms() - from);
    w->st.sync_latency_us_sum += (uint64_t)us;
    if ((uint64_t)us > w->st.sync_latency_us_max)
        w->st.sync_latency_us_max = (uint64_t)us;
    note_durable_locked(w, oldest);
    w->sync_failing = false;
    w->st.syncs++;
    if (seq > w->st.durable_seq)
        w->st.durable_seq = seq;
    if (seq == w->st.committed_seq)
        w->unsynced_ms = 0;
}

/* Caller holds lock: the outcome of the commit of the in-flight batch. */
static void publish_locked(struct store_writer *w, wb_status rc, int64_t t0, uint64_t us)
{
    w->has_inflight = false;
    if (rc == WB_OK) {
        w->st.commits++;
        w->st.rows_written += w->inflight.kv.count;
        w->st.committed_seq = w->inflight.max_seq;
        if (w->full_sync) {
            w->st.durable_seq = w->st.committed_seq;
            note_durable_locked(w, w->inflight_first_ms);
        } else if (w->unsynced_ms == 0) {
            w->unsynced_ms = w->inflight_first_ms ? w->inflight_first_ms : util_mono_ms();
        }
        w->st.commit_latency_us_sum += us;
        if (us > w->st.commit_latency_us_max)
            w->st.commit_latency_us_max = us;
        if (w->failing)
            log_info("store: commits to %s succeed again", w->label);
        if (w->dropped_now)
            log_warn("store: %llu history snapshots were dropped while %s was failing",
                     (unsigned long long)w->dropped_now, w->label);
        w->dropped_now = 0;
        w->failing = false;
        w->backoff_ms = 0;
        w->st.ok = true;
        w->st.last_error = WB_OK;
        w->st.last_error_text[0] = '\0';
        batch_free(&w->inflight);
        return;
    }
    w->st.commit_failures++;
    if (!w->failing)
        log_error("store: commit to %s failed, changes kept and retried: %s", w->label, w->err);
    w->failing = true;
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 50;
    if (w->backoff_ms > 1000)
        w->backoff_ms = 1000;
    w->retry_at_ms = t0 + w->backoff_ms;
    w->st.ok = false;
    w->st.last_error = rc;
    snprintf(w->st.last_error_text, sizeof(w->st.last_error_text), "%s", w->err);
    requeue(w, &w->inflight);
}

/* Caller holds lock (released during the commit): commits what is pending. */
static wb_status commit_pending_locked(struct store_writer *w)
{
    /* The gate first: a row read holding it never waits for `lock`. */
    pthread_mutex_unlock(&w->lock);
    wb_lock(&w->gate);
    wb_lock(&w->lock);
    w->inflight = w->pending;
    w->inflight.max_seq = w->next_seq;
    memset(&w->pending, 0, sizeof(w->pending));
    w->has_inflight = true;
    w->inflight_first_ms = w->first_pending_ms;
    w->first_pending_ms = 0;
    pthread_mutex_unlock(&w->lock);

    int64_t t0 = util_mono_ms();
    int64_t a = util_mono_us();
    w->err[0] = '\0';
    wb_status rc = w->b->ops->commit(w->b, &w->inflight, w->err, sizeof(w->err));
    uint64_t us = (uint64_t)(util_mono_us() - a);

    wb_lock(&w->lock);
    w->commit_est_ms = store_sync_estimate(w->commit_est_ms, (int64_t)(us + 999) / 1000);
    publish_locked(w, rc, t0, us);
    pthread_mutex_unlock(&w->gate);
    return rc;
}

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    pthread_setname_np(pthread_self(), "wbmb-store"); /* top -H, perf, gdb */
    /* Commits are batch work: on a 2-core controller they should yield to
     * the message path (a commit can wait a few ms, a message should not).
     * Linux applies a nice value per thread. */
    setpriority(PRIO_PROCESS, (id_t)gettid(), WRITER_NICE);
    wb_lock(&w->lock);
    while (!w->stop) {
        bool have = w->pending.kv.count || w->pending.nops;
        bool flush = w->flush_req > w->flush_done;
        int64_t due = have ? w->first_pending_ms + w->commit_interval_ms : INT64_MAX;
        if (have && w->failing && due < w->retry_at_ms)
            due = w->retry_at_ms;
        int64_t sdue = sync_due(w);
        int64_t now = util_mono_ms();
        if (!flush && (!have || now < due)) {
            if (now >= sdue)
                sync_locked(w);
            else
                wait_until(w, due < sdue ? due : sdue);
            continue;
        }
        uint64_t gen = w->flush_req;
        wb_status result = have ? commit_pending_locked(w) : WB_OK;
        if (gen > w->flush_done) {
            w->flush_done = gen;
            w->flush_status = result;
            pthread_cond_broadcast(&w->done);
        }
        /* A sync that fell due while committing follows at once, and so
         * does one that would fall due during the next commit: a sync
         * behind a commit comes as late as the commit is long (a
         * checkpoint, a slow disk), one just after it at most a window
         * early. */
        int64_t next_commit_end = util_mono_ms() + w->commit_interval_ms + w->commit_est_ms;
        if (next_commit_end >= sync_due(w))
            sync_locked(w);
    }
    /* Close (SIGTERM): whatever was committed is made durable now. */
    if (w->unsynced_ms)
        sync_locked(w);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- the callers' side --------------------------------------------------- */

wb_status store_writer_flush(struct store_writer *w)
{
    wb_lock(&w->lock);
    uint64_t req = ++w->flush_req;
    pthread_cond_signal(&w->wake);
    while (w->flush_done < req)
        pthread_cond_wait(&w->done, &w->lock);
    wb_status st = w->flush_status;
    pthread_mutex_unlock(&w->lock);
    return st;
}

wb_status store_writer_put(struct store_writer *w, const char *key, char *text, bool is_set,
                           struct store_op *op)
{
    wb_lock(&w->lock);
    uint64_t seq = is_set ? ++w->next_seq : 0;
    wb_status st = smap_put(&w->pending.kv, key, text, seq, NULL); /* takes text */
    if (st == WB_OK) {
        if (is_set)
            w->st.sets++;
        mark_pending(w);
        if (op)
            append_op_locked(w, op);
    } else {
        free(op);
    }
    pthread_mutex_unlock(&w->lock);
    if (st == WB_OK && w->commit_interval_ms == 0)
        st = store_writer_flush(w);
    return st;
}

wb_status store_writer_append(struct store_writer *w, struct store_op *op)
{
    if (!op)
        return WB_ERR_NOMEM;
    wb_lock(&w->lock);
    append_op_locked(w, op);
    pthread_mutex_unlock(&w->lock);
    return w->commit_interval_ms == 0 ? store_writer_flush(w) : WB_OK;
}

void store_writer_status(struct store_writer *w, struct store_status *out)
{
    wb_lock(&w->lock);
    *out = w->st;
    out->pending = w->pending.kv.count + w->pending.nops;
    if (w->has_inflight)
        out->pending += w->inflight.kv.count + w->inflight.nops;
    pthread_mutex_unlock(&w->lock);
}

/* ---- start and stop ------------------------------------------------------- */

static void writer_free(struct store_writer *w)
{
    batch_free(&w->pending);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->gate);
    free(w->label);
    free(w);
}

struct store_writer *store_writer_start(struct store_backend *b, const struct store_config *cfg,
                                        const char *label, char *err, size_t errlen)
{
    struct store_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->b = b;
    w->commit_interval_ms = b->no_window ? 0 : cfg->commit_interval_ms;
    w->sync_interval_ms = cfg->sync_interval_ms;
    w->max_queued_rows = cfg->max_queued_rows;
    w->full_sync = b->durable_commits || !b->ops->sync;
    w->st.ok = true;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* matches util_mono_ms() */
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&w->done, NULL);
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->gate, NULL);
    if (!(w->label = strdup(label ? label : b->ops->name))) {
        writer_free(w);
        return NULL;
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        snprintf(err, errlen, "cannot start the store writer thread");
        writer_free(w);
        return NULL;
    }
    return w;
}

void store_writer_stop(struct store_writer *w)
{
    if (!w)
        return;
    wb_status st = store_writer_flush(w);
    wb_lock(&w->lock);
    size_t left = w->pending.kv.count + w->pending.nops;
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (left)
        log_error("store: closing %s with %zu changes not written (%s): they are lost", w->label,
                  left, wb_strerror(st));
    writer_free(w);
}

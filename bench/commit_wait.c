/*
 * commit_wait.c - waits until the bridge has committed N transitions.
 *
 * Usage: commit_wait DB N [TIMEOUT_S] [POLL_MS]
 *
 * With history on, every transition appends one device_state_snapshots row
 * in the same transaction as its state_store upsert, so max(id) of a fresh
 * database is the number of committed transitions. This polls it on a
 * read-only connection every POLL_MS (default 5) and prints key=value lines:
 * rows (the last max(id) seen) and done_us (CLOCK_REALTIME us of the poll
 * that first saw N). Exits 0 when N was reached before TIMEOUT_S (60).
 *
 * DB "postgresql:CONNINFO" polls a PostgreSQL database instead (libpq
 * through store/pq_api.h; the password from PGPASSWORD or ~/.pgpass); the
 * bench empties device_state_snapshots (RESTART IDENTITY) before each run.
 */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "store/pq_api.h"

static int64_t now_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char max_id_sql[] = "SELECT coalesce(max(id), 0) FROM device_state_snapshots";

/* The PostgreSQL side: polls until want rows, or the deadline. */
static long long pg_wait(const char *conninfo, long long want, int64_t deadline, int poll_ms)
{
    char err[256];
    if (!pq_api_load(err, sizeof(err))) {
        fprintf(stderr, "commit_wait: %s\n", err);
        return 0;
    }
    PGconn *c = NULL;
    long long rows = 0;
    bool prepared = false;
    while (now_us(CLOCK_MONOTONIC) < deadline) {
        if (!c) {
            const char *k[] = {"dbname", NULL}, *v[] = {conninfo, NULL};
            c = pq->connectdbParams(k, v, 1);
            prepared = false;
        }
        if (pq->status(c) != CONNECTION_OK) {
            pq->finish(c);
            c = NULL;
        } else {
            if (!prepared) {
                PGresult *r = pq->prepare(c, "max_id", max_id_sql, 0, NULL);
                prepared = pq->resultStatus(r) == PGRES_COMMAND_OK;
                pq->clear(r);
            }
            PGresult *r = prepared ? pq->execPrepared(c, "max_id", 0, NULL, NULL, NULL, 0) : NULL;
            if (r && pq->resultStatus(r) == PGRES_TUPLES_OK && pq->ntuples(r) == 1)
                rows = atoll(pq->getvalue(r, 0, 0));
            pq->clear(r);
            if (rows >= want)
                break;
        }
        usleep((useconds_t)poll_ms * 1000);
    }
    if (c)
        pq->finish(c);
    return rows;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: commit_wait DB N [TIMEOUT_S] [POLL_MS]\n");
        return 2;
    }
    long long want = atoll(argv[2]);
    int timeout_s = argc > 3 ? atoi(argv[3]) : 60;
    int poll_ms = argc > 4 ? atoi(argv[4]) : 5;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long rows = 0;
    int64_t deadline = now_us(CLOCK_MONOTONIC) + (int64_t)timeout_s * 1000000;
    if (strncmp(argv[1], "postgresql:", 11) == 0) {
        rows = pg_wait(argv[1] + 11, want, deadline, poll_ms);
        printf("rows=%lld\ndone_us=%lld\n", rows, (long long)now_us(CLOCK_REALTIME));
        return rows >= want ? 0 : 1;
    }
    while (now_us(CLOCK_MONOTONIC) < deadline) {
        if (!db && sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            sqlite3_close(db);
            db = NULL;
        }
        if (db && !st && sqlite3_prepare_v2(db, max_id_sql, -1, &st, NULL) != SQLITE_OK) {
            sqlite3_finalize(st);
            st = NULL;
        }
        if (st) {
            if (sqlite3_step(st) == SQLITE_ROW)
                rows = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
            if (rows >= want)
                break;
        }
        usleep((useconds_t)poll_ms * 1000);
    }
    printf("rows=%lld\ndone_us=%lld\n", rows, (long long)now_us(CLOCK_REALTIME));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rows >= want ? 0 : 1;
}

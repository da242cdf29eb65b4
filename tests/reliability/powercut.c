/*
 * powercut.c - the real SQLite store under power cuts (crashvfs.c).
 *
 *   test_powercut [CUTS] [DIR]     (default 50 cuts, DIR a new mkdtemp)
 *
 * For each of the settings below, CUTS / (number of settings) times: fork a
 * child that registers the crash VFS, opens the store (store_open: the
 * same writer thread, group commit and sync policy as the daemon) on the
 * database the previous round left, and runs transitions as fast as a
 * burst of 16 per ms allows: transition i (counting on from the last
 * round) sets device:d<i % 40> to {"i": i, ...} with a history row. After
 * every call the child copies the store's committed_seq and durable_seq
 * (offset by the round's first i) into the shared region. The parent kills
 * it with SIGKILL at a random moment - one round in five during the open
 * (WAL recovery of the last cut), the others 20-320 ms into the load
 * (plus up to two sync intervals, at most 1 s more) -
 * applies the cut (drop or tear every unsynced write; or nothing, for the
 * kill -9 setting), and checks:
 *   - the file opens and PRAGMA integrity_check is "ok", no file was moved
 *     aside as corrupt;
 *   - no commit is half-applied: with C the highest i stored, every
 *     device holds exactly the last i <= C of its own, and the history
 *     holds exactly the rows 1..C (count, distinct, max and sum);
 *   - nothing reported durable is lost: C >= durable (and for the kill -9
 *     setting C >= committed), C never goes back below the last round's C;
 *   - the close setting closes the store (what SIGTERM does) before the cut
 *     and must find every transition issued: C == the last one.
 * Every 25 rounds the database starts afresh (also cutting schema
 * creation). Prints one line per setting, a Markdown table, "# SUMMARY
 * powercut ..." and "P passed, F failed" (scripts/reliability.sh); exits 1
 * on any failure. WBMB_POWERCUT_SEED repeats a run.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crashvfs.h"
#include "store/store_sqlite.h"
#include "wbmb/state_store.h"

#define NDEV 40
#define FRESH_EVERY 25
#define LOG_CAP (256u << 20) /* journal room; untouched pages cost nothing */

struct setting {
    const char *name;
    enum cv_mode mode;
    unsigned commit_ms, sync_ms;
    bool close_first; /* store_close (what SIGTERM does), then the cut */
};

static const struct setting settings[] = {
    {"power cut, unsynced writes dropped; commit 20 ms, sync 100 ms", CV_DROP, 20, 100, false},
    {"power cut, unsynced sectors torn; commit 20 ms, sync 100 ms", CV_TORN, 20, 100, false},
    {"power cut, torn; commit 100 ms, sync 250 ms", CV_TORN, 100, 250, false},
    {"power cut, torn; commit 20 ms, sync 0 (every commit synced)", CV_TORN, 20, 0, false},
    {"power cut, dropped; commit 0 (every change synced)", CV_DROP, 0, 1000, false},
    {"kill -9 only; commit 20 ms, sync 100 ms", CV_KILL, 20, 100, false},
    {"clean close (SIGTERM), then a power cut, torn; commit 100 ms, sync 60 s", CV_TORN, 100, 60000,
     true},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

struct tally {
    unsigned cuts, fails, early;
    uint64_t writes_undone, sectors_undone, durable_max, commits_lost;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the child ---------------------------------------------------------- */

static void child_main(struct cv_shared *sh, const struct setting *set, const char *path,
                       uint64_t base)
{
    if (cv_register(sh) != SQLITE_OK)
        _exit(3);
    struct store_config cfg = {.backend = "sqlite",
                               .db_path = path,
                               .commit_interval_ms = set->commit_ms,
                               .sync_interval_ms = set->sync_ms,
                               .history_enabled = true};
    struct state_store *s = NULL;
    char err[512];
    if (store_open(&s, &cfg, err, sizeof(err)) != WB_OK) {
        fprintf(stderr, "child: store_open: %s\n", err);
        _exit(4);
    }
    /* Checkpoints every 300 pages instead of 1000: some cuts land in them,
     * most between them (a checkpoint syncs the WAL). */
    store_sqlite_exec_for_test(s, "PRAGMA wal_autocheckpoint=300");
    sh->opened = 1;
    for (uint64_t i = base + 1;; i++) {
        char key[32], dev[16], json[128];
        unsigned k = (unsigned)(i % NDEV);
        snprintf(dev, sizeof(dev), "d%02u", k);
        snprintf(key, sizeof(key), "device:%s", dev);
        snprintf(json, sizeof(json), "{\"i\":%" PRIu64 ",\"pad\":\"0123456789abcdef0123\"}", i);
        wb_status st = store_transition(s, key, dev, json, true);
        if (st != WB_OK) {
            fprintf(stderr, "child: transition %" PRIu64 ": %s\n", i, wb_strerror(st));
            _exit(5);
        }
        struct store_status ss;
        store_get_status(s, &ss);
        sh->committed = base + ss.committed_seq;
        sh->durable = base + ss.durable_seq;
        sh->issued = i;
        if (i % 16 == 0)
            sleep_ms(1);
        if (sh->stop) {
            store_close(s); /* flushes, syncs, checkpoints */
            sh->closed = i;
            for (;;)
                pause(); /* until the cut */
        }
    }
}

/* ---- the checks ---------------------------------------------------------- */

static bool fail(unsigned round, const char *what, const char *detail)
{
    printf("not ok - round %u: %s%s%s\n", round, what, detail ? ": " : "", detail ? detail : "");
    return false;
}

static uint64_t expected_of(unsigned k, uint64_t c)
{
    if (c < 1)
        return 0;
    uint64_t j = c - (c % NDEV + NDEV - k) % NDEV;
    return j >= 1 && j <= c ? j : 0;
}

static bool no_corrupt_files(const char *dir)
{
    DIR *d = opendir(dir);
    bool ok = true;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".corrupt."))
            ok = false;
    if (d)
        closedir(d);
    return ok;
}

/* Checks the file after a cut; *c gets the highest transition stored. */
static bool verify(unsigned round, const char *dir, const char *path, uint64_t *c)
{
    char msg[512];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (access(path, F_OK) != 0) {
        *c = 0; /* cut before the file was created */
        return true;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        fail(round, "open", sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        fail(round, "integrity_check", (const char *)sqlite3_column_text(st, 0));
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!no_corrupt_files(dir)) {
        fail(round, "a file was moved aside as corrupt", NULL);
        goto out;
    }
    /* A cut during schema creation leaves no tables: nothing stored. */
    if (sqlite3_prepare_v2(db, "SELECT key, json_extract(value, '$.i') FROM state_store", -1, &st,
                           NULL) != SQLITE_OK) {
        bool empty = strstr(sqlite3_errmsg(db), "no such table") != NULL;
        if (!empty)
            fail(round, "reading state_store", sqlite3_errmsg(db));
        *c = 0;
        ok = empty;
        goto out;
    }
    uint64_t got[NDEV] = {0}, hi = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        unsigned k;
        if (sscanf((const char *)sqlite3_column_text(st, 0), "device:d%u", &k) != 1 || k >= NDEV) {
            fail(round, "unexpected key", (const char *)sqlite3_column_text(st, 0));
            goto out;
        }
        got[k] = (uint64_t)sqlite3_column_int64(st, 1);
        if (got[k] > hi)
            hi = got[k];
    }
    sqlite3_finalize(st);
    st = NULL;
    for (unsigned k = 0; k < NDEV; k++)
        if (got[k] != expected_of(k, hi)) {
            snprintf(msg, sizeof(msg),
                     "device d%02u holds %" PRIu64 ", the prefix up to %" PRIu64 " says %" PRIu64,
                     k, got[k], hi, expected_of(k, hi));
            fail(round, "half-applied commit", msg);
            goto out;
        }
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*), count(DISTINCT json_extract(state, '$.i')),"
                           " coalesce(max(json_extract(state, '$.i')), 0),"
                           " coalesce(sum(json_extract(state, '$.i')), 0)"
                           " FROM device_state_snapshots",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        fail(round, "reading the history", sqlite3_errmsg(db));
        goto out;
    }
    uint64_t n = (uint64_t)sqlite3_column_int64(st, 0), nd = (uint64_t)sqlite3_column_int64(st, 1),
             mx = (uint64_t)sqlite3_column_int64(st, 2),
             sum = (uint64_t)sqlite3_column_int64(st, 3);
    if (n != hi || nd != hi || mx != hi || sum != hi * (hi + 1) / 2) {
        snprintf(msg, sizeof(msg),
                 "history has %" PRIu64 " rows (%" PRIu64 " distinct, max %" PRIu64
                 ") for states up to %" PRIu64,
                 n, nd, mx, hi);
        fail(round, "half-applied commit", msg);
        goto out;
    }
    *c = hi;
    ok = true;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* ---- the parent ----------------------------------------------------------- */

static void remove_db(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", ".lock"};
    char p[600];
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static bool one_cut(struct cv_shared *sh, const struct setting *set, unsigned round,
                    const char *dir, const char *path, uint64_t *base, uint64_t *rnd,
                    struct tally *t)
{
    cv_shared_reset(sh);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return fail(round, "fork", strerror(errno));
    if (pid == 0)
        child_main(sh, set, path, *base);
    bool early = cv_rand(rnd) % 5 == 0;
    int status = 0;
    if (early) {
        sleep_ms((unsigned)(cv_rand(rnd) % 40));
    } else {
        int64_t deadline = mono_ms() + 30000;
        while (!sh->opened && mono_ms() < deadline && waitpid(pid, &status, WNOHANG) == 0)
            sleep_ms(1);
        /* Long enough for a few syncs of the setting's interval. */
        unsigned sync = set->sync_ms < 500 ? set->sync_ms : 500;
        unsigned span = 300 + (set->commit_ms ? 2 * sync : 0);
        sleep_ms(20 + (unsigned)(cv_rand(rnd) % span));
        if (set->close_first) {
            sh->stop = 1;
            deadline = mono_ms() + 30000;
            while (!sh->closed && mono_ms() < deadline && waitpid(pid, &status, WNOHANG) == 0)
                sleep_ms(1);
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        return fail(round, "the child ended by itself (see its stderr)", NULL);
    if (!early && !sh->opened)
        return fail(round, "the child did not open the store within 30 s", NULL);
    uint64_t durable = sh->durable, committed = sh->committed, issued = sh->issued;
    if (getenv("WBMB_POWERCUT_DEBUG"))
        printf(
            "# round %u: files %d, journal %llu bytes, durable %llu committed %llu issued %llu\n",
            round, sh->nfiles, (unsigned long long)sh->log_used, (unsigned long long)durable,
            (unsigned long long)committed, (unsigned long long)issued);
    size_t nw = 0, ns = 0;
    if (cv_apply_cut(sh, set->mode, rnd, &nw, &ns) != 0)
        return fail(round, "applying the cut", NULL);
    t->cuts++;
    t->early += early;
    t->writes_undone += nw;
    t->sectors_undone += ns;
    uint64_t c = 0;
    if (!verify(round, dir, path, &c))
        return false;
    char msg[256];
    if (durable && c < durable) {
        snprintf(msg, sizeof(msg), "stored up to %" PRIu64 ", durable was %" PRIu64, c, durable);
        return fail(round, "durable transitions lost", msg);
    }
    if (set->close_first && !early && c != sh->closed) {
        snprintf(msg, sizeof(msg), "stored up to %" PRIu64 ", closed after %" PRIu64, c,
                 (uint64_t)sh->closed);
        return fail(round, "lost after a clean close", msg);
    }
    if (set->mode == CV_KILL && committed && c < committed) {
        snprintf(msg, sizeof(msg), "stored up to %" PRIu64 ", committed was %" PRIu64, c,
                 committed);
        return fail(round, "committed transitions lost at kill -9", msg);
    }
    if (c < *base) {
        snprintf(msg, sizeof(msg), "stored up to %" PRIu64 ", the round began at %" PRIu64, c,
                 *base);
        return fail(round, "went back below the last round", msg);
    }
    if (issued && c > issued + 1) {
        snprintf(msg, sizeof(msg), "stored %" PRIu64 ", only %" PRIu64 " issued", c, issued);
        return fail(round, "more stored than issued", msg);
    }
    if (durable > *base && durable - *base > t->durable_max)
        t->durable_max = durable - *base;
    if (committed > c)
        t->commits_lost += committed - c;
    *base = c;
    return true;
}

int main(int argc, char **argv)
{
    unsigned cuts = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 50;
    char dir[256] = "/tmp/wbmb_powercut_XXXXXX";
    if (argc > 2)
        snprintf(dir, sizeof(dir), "%s", argv[2]);
    else if (!mkdtemp(dir))
        return perror("mkdtemp"), 1;
    const char *seed_env = getenv("WBMB_POWERCUT_SEED");
    uint64_t rnd =
        seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    if (!rnd)
        rnd = 1;
    printf("# powercut: %u cuts, seed %" PRIu64 " (WBMB_POWERCUT_SEED), in %s\n", cuts, rnd, dir);
    struct cv_shared *sh = cv_shared_create(LOG_CAP);
    if (!sh)
        return perror("mmap"), 1;
    unsigned per = (cuts + (unsigned)NSETTINGS - 1) / (unsigned)NSETTINGS, passed = 0, failed = 0;
    struct tally t[NSETTINGS] = {{0}};
    int64_t t0 = mono_ms();
    for (size_t si = 0; si < NSETTINGS; si++) {
        char sub[300], path[512];
        snprintf(sub, sizeof(sub), "%s/s%zu", dir, si);
        snprintf(path, sizeof(path), "%s/state.db", sub);
        uint64_t base = 0;
        for (unsigned r = 0; r < per; r++) {
            if (r % FRESH_EVERY == 0) {
                remove_db(path);
                base = 0;
            }
            if (!one_cut(sh, &settings[si], r + 1, sub, path, &base, &rnd, &t[si])) {
                t[si].fails++;
                printf("#   (setting: %s; files kept in %s)\n", settings[si].name, dir);
                remove_db(path); /* start over: later rounds stay meaningful */
                base = 0;
            }
        }
        bool ok = t[si].fails == 0;
        ok ? passed++ : failed++;
        printf("%s - %s: %u cuts (%u during open), %u failed\n", ok ? "ok" : "not ok",
               settings[si].name, t[si].cuts, t[si].early, t[si].fails);
    }
    printf("\n| setting | cuts | unsynced writes undone | sectors undone | most durable in a "
           "round | committed, not durable, lost (allowed) | corrupt or half-applied or durable "
           "lost |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    unsigned total = 0, bad = 0;
    for (size_t si = 0; si < NSETTINGS; si++) {
        printf("| %s | %u | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %u |\n",
               settings[si].name, t[si].cuts, t[si].writes_undone, t[si].sectors_undone,
               t[si].durable_max, t[si].commits_lost, t[si].fails);
        total += t[si].cuts;
        bad += t[si].fails;
    }
    printf("\n# SUMMARY powercut cuts=%u failures=%u seconds=%lld\n", total, bad,
           (long long)((mono_ms() - t0) / 1000));
    printf("%u passed, %u failed\n", passed, failed);
    cv_shared_destroy(sh);
    if (argc <= 2 && failed == 0) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return failed ? 1 : 0;
}

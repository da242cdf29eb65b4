/*
 * store_pg.c - the PostgreSQL StateStore backend (store_backend.h): the
 * handle, connecting, the schema and its migrations, open and close.
 * Writing a batch lives in store_pg_write.c, the reads in store_pg_read.c;
 * the batches, the writer thread, back-off and the floors are the writer's
 * (store_writer.c), exactly as for SQLite.
 *
 * Many bridges share one database: every table carries a `site` column
 * (persistence.postgresql.site) that leads its primary key and indexes,
 * and every statement of this backend names its site; one bridge never
 * reads or writes another one's rows.
 *
 * Connections. Two per bridge: the writer's (s->w, writer thread only, and
 * open/close around it) and the readers' (s->r, under rlock). Each has every
 * statement of its side prepared once (PQprepare) and only runs those with
 * bound parameters; the only text sent as is is constant DDL and
 * BEGIN/COMMIT/ROLLBACK. A connection that fails is closed and connected
 * again at its next use: libpq walks a multi-host conninfo in order, so
 * with target_session_attrs=read-write the next use finds the new primary.
 *
 *   open: connect --fails--> retry with back-off for connect_timeout_s --> error (exit 1)
 *           |
 *           +--> schema (migrate in one transaction) --> prepare --> ready
 *   ready --commit/read fails, connection bad--> down --next use: connect + prepare--> ready
 *
 * Durability: a COMMIT returns when the server has flushed its WAL
 * (synchronous_commit on, or local when the server's default is off), so
 * each commit is durable by itself (base.durable_commits, no sync).
 */
#include "store/store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wbmb/log.h"
#include "wbmb/util.h"

/* ---- the schema --------------------------------------------------------- */

/* Version 1: the tables of CONTRACT.md section 4, each with `site` leading
 * its key. Text keys compare bytewise (COLLATE "C"), as in SQLite, so scans
 * by prefix and the key order do not depend on the server's locale. The
 * timestamps are the same ISO-8601 UTC text with ms SQLite returns; the
 * _ms columns are for retention. Constant DDL, no values.
 *
 * Step i moves a database from version i to i + 1; a new database gets
 * every step. */
static const char *const migrations[STORE_PG_SCHEMA_VERSION] = {
    "CREATE TABLE state_store("
    " site TEXT COLLATE \"C\" NOT NULL, key TEXT COLLATE \"C\" NOT NULL, value TEXT NOT NULL,"
    " updated_at TEXT NOT NULL, updated_ms BIGINT NOT NULL, PRIMARY KEY (site, key));"
    "CREATE TABLE device_state_snapshots("
    " id BIGSERIAL PRIMARY KEY, site TEXT COLLATE \"C\" NOT NULL,"
    " device_id TEXT COLLATE \"C\" NOT NULL, state TEXT NOT NULL, ts TEXT NOT NULL,"
    " ts_ms BIGINT NOT NULL);"
    "CREATE INDEX idx_snapshots_device ON device_state_snapshots(site, device_id, id);"
    "CREATE INDEX idx_snapshots_ts ON device_state_snapshots(site, ts_ms);"
    "CREATE TABLE command_logs("
    " site TEXT COLLATE \"C\" NOT NULL, command_id TEXT COLLATE \"C\" NOT NULL, device_id TEXT,"
    " action TEXT, params TEXT, source TEXT, status TEXT, error TEXT,"
    " created_at TEXT COLLATE \"C\" NOT NULL, completed_at TEXT, seq BIGSERIAL NOT NULL,"
    " PRIMARY KEY (site, command_id));"
    "CREATE INDEX idx_command_logs_created ON command_logs(site, created_at, seq);"
    "CREATE TABLE device_connection_logs("
    " id BIGSERIAL PRIMARY KEY, site TEXT COLLATE \"C\" NOT NULL,"
    " device_id TEXT COLLATE \"C\" NOT NULL, event TEXT NOT NULL, ts TEXT NOT NULL);"
    "CREATE INDEX idx_connection_logs_device ON device_connection_logs(site, device_id, id);"
    "CREATE TABLE devices("
    " site TEXT COLLATE \"C\" NOT NULL, device_id TEXT COLLATE \"C\" NOT NULL, device_type TEXT,"
    " name TEXT, is_online INTEGER NOT NULL DEFAULT 0, last_seen TEXT, connected_at TEXT,"
    " PRIMARY KEY (site, device_id));",
    /* 1 -> 2, SQLite's 3 -> 4: the history policy's kind and stats of a
     * device_state_snapshots row (see store_sqlite_open.c). */
    "ALTER TABLE device_state_snapshots ADD COLUMN kind TEXT;"
    "ALTER TABLE device_state_snapshots ADD COLUMN stats TEXT;",
};

static const struct pg_stmt schema_stmts[] = {
    {"v_set", "INSERT INTO schema_version(version) VALUES ($1::integer)", 1},
};

/* ---- connections --------------------------------------------------------- */

/* libpq's messages span lines ("...failed: Connection refused\n\tIs the
 * server running..."): one line, trimmed, in err. */
static void one_line(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg && *msg ? msg : "unknown error");
    char *o = err;
    for (const char *p = err; *p; p++) {
        bool space = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
        if (!space)
            *o++ = *p;
        else if (o > err && o[-1] != ' ')
            *o++ = ' ';
    }
    *o = '\0';
    size_t n = strlen(err);
    while (n && err[n - 1] == ' ')
        err[--n] = '\0';
}

bool store_pg_ok(PGconn *c, PGresult *res, ExecStatusType ok, char *err, size_t errlen)
{
    if (res && pq->resultStatus(res) == ok)
        return true;
    const char *msg = res ? pq->resultErrorMessage(res) : NULL;
    one_line(err, errlen, msg && *msg ? msg : pq->errorMessage(c));
    return false;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    log_debug("postgresql: %s", msg);
}

static bool prepare(PGconn *c, const struct pg_stmt *stmts, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        PGresult *res = pq->prepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
        bool ok = store_pg_ok(c, res, PGRES_COMMAND_OK, err, errlen);
        pq->clear(res);
        if (!ok)
            return false;
    }
    return true;
}

PGconn *store_pg_connect(struct pg_store *s, const struct pg_stmt *stmts, size_t n, char *err,
                         size_t errlen)
{
    /* Ours first, so that the conninfo (expanded from dbname) overrides
     * them; the password file last, over a password in the conninfo. The
     * timeouts bound how long a dead server holds the writer. */
    const char *keys[] = {"connect_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "client_encoding",
                          "fallback_application_name",
                          "dbname",
                          s->password ? "password" : NULL,
                          NULL};
    const char *vals[] = {"10",        "10",        "5", "3", "30000", "UTF8", "wb-mqtt-bridge",
                          s->conninfo, s->password, NULL};
    PGconn *c = pq->connectdbParams(keys, vals, 1);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pq->status(c) != CONNECTION_OK) {
        one_line(err, errlen, pq->errorMessage(c));
        pq->finish(c);
        return NULL;
    }
    pq->setNoticeProcessor(c, quiet, NULL);
    /* Each COMMIT must be durable when it returns; a server configured
     * with synchronous_commit=off would lose the last ones in a crash. */
    const char *sc = pq->parameterStatus(c, "synchronous_commit");
    if (!sc) {
        PGresult *res = pq->exec(c, "SHOW synchronous_commit");
        if (res && pq->resultStatus(res) == PGRES_TUPLES_OK && pq->ntuples(res) == 1 &&
            strcmp(pq->getvalue(res, 0, 0), "off") == 0) {
            pq->clear(res);
            res = pq->exec(c, "SET synchronous_commit = local");
        }
        pq->clear(res);
    }
    if (!prepare(c, stmts, n, err, errlen)) {
        pq->finish(c);
        return NULL;
    }
    return c;
}

/* "user@host:port/db site S" of a connection, for log lines. */
static char *where_of(PGconn *c, const char *site)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "postgresql %s@%s:%s/%s site %s", pq->user(c), pq->host(c),
             pq->port(c), pq->db(c), site);
    return strdup(buf);
}

/* The conninfo without its password, for errors before any connection:
 * the keywords that say where, in conninfo form. */
static void redacted(const char *conninfo, char *out, size_t outlen)
{
    static const char *const shown[] = {"host",   "hostaddr", "port",
                                        "dbname", "user",     "target_session_attrs"};
    char *perr = NULL;
    PQconninfoOption *opts = pq->conninfoParse(conninfo, &perr);
    out[0] = '\0';
    if (perr)
        pq->freemem(perr);
    if (!opts)
        return;
    size_t len = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
            if (o->val && o->val[0] && strcmp(o->keyword, shown[i]) == 0 && len < outlen)
                len += (size_t)snprintf(out + len, outlen - len, "%s%s=%s", len ? " " : "",
                                        o->keyword, o->val);
    pq->conninfoFree(opts);
}

/* Connects the writer at open, retrying an unreachable server with
 * back-off for connect_timeout_s (0: once). */
static wb_status connect_at_open(struct pg_store *s, char *err, size_t errlen)
{
    char shown[256], why[256] = "";
    redacted(s->conninfo, shown, sizeof(shown));
    int64_t t0 = util_mono_ms(), deadline = t0 + (int64_t)s->cfg.pg_connect_timeout_s * 1000;
    unsigned backoff_ms = 250, tries = 0;
    for (;;) {
        tries++;
        if ((s->w = store_pg_connect(s, NULL, 0, why, sizeof(why))))
            return WB_OK;
        int64_t now = util_mono_ms();
        if (now >= deadline)
            break;
        log_warn("store: cannot connect to postgresql (%s), try %u: %s; retrying for %lld s more",
                 shown, tries, why, (long long)((deadline - now + 999) / 1000));
        int64_t wait = backoff_ms < deadline - now ? backoff_ms : deadline - now;
        struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        nanosleep(&ts, NULL);
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
    snprintf(err, errlen, "cannot connect to postgresql (%s) after %u tries in %lld s: %s", shown,
             tries, (long long)((util_mono_ms() - t0) / 1000), why);
    return WB_ERR_DB;
}

/* Creates or migrates the schema in one transaction, serialised between
 * bridges starting together by an advisory lock. A newer version is
 * refused. */
static wb_status migrate(struct pg_store *s, char *err, size_t errlen)
{
    static const char *const head[] = {
        "BEGIN",
        "SELECT pg_advisory_xact_lock(2003987042)", /* "wbmb" */
        "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
    };
    PGconn *c = s->w;
    wb_status st = WB_ERR_DB;
    PGresult *res = NULL;
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        res = pq->exec(c, head[i]);
        ExecStatusType want = i == 1 ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
        if (!store_pg_ok(c, res, want, err, errlen))
            goto out;
        pq->clear(res);
    }
    res = pq->exec(c, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (!store_pg_ok(c, res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    long v = strtol(pq->getvalue(res, 0, 0), NULL, 10);
    pq->clear(res);
    res = NULL;
    if (v > STORE_PG_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "the database's schema version %ld is newer than this binary's %d: refusing to "
                 "touch it (upgrade wb-mqtt-bridge)",
                 v, STORE_PG_SCHEMA_VERSION);
        st = WB_ERR_VERSION;
        goto out;
    }
    if (v < STORE_PG_SCHEMA_VERSION) {
        for (long i = v; i < STORE_PG_SCHEMA_VERSION; i++) {
            res = pq->exec(c, migrations[i]);
            if (!store_pg_ok(c, res, PGRES_COMMAND_OK, err, errlen))
                goto out;
            pq->clear(res);
        }
        res = pq->exec(c, "DELETE FROM schema_version");
        if (!store_pg_ok(c, res, PGRES_COMMAND_OK, err, errlen))
            goto out;
        pq->clear(res);
        if (!prepare(c, schema_stmts, 1, err, errlen))
            goto out;
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", STORE_PG_SCHEMA_VERSION);
        const char *p[] = {ver};
        res = pq->execPrepared(c, "v_set", 1, p, NULL, NULL, 0);
        if (!store_pg_ok(c, res, PGRES_COMMAND_OK, err, errlen))
            goto out;
        pq->clear(res);
        log_info("store: postgresql schema migrated from version %ld to %d", v,
                 STORE_PG_SCHEMA_VERSION);
    }
    res = pq->exec(c, "COMMIT");
    if (store_pg_ok(c, res, PGRES_COMMAND_OK, err, errlen))
        st = WB_OK;
out:
    pq->clear(res);
    if (st != WB_OK && pq->transactionStatus(c) != PQTRANS_IDLE)
        pq->clear(pq->exec(c, "ROLLBACK"));
    return st;
}

/* ---- open and close ------------------------------------------------------ */

static void pg_close(struct store_backend *base)
{
    struct pg_store *s = PG(base);
    if (!s)
        return;
    if (s->w)
        pq->finish(s->w);
    if (s->r)
        pq->finish(s->r);
    smap_clear(&s->touched);
    pthread_mutex_destroy(&s->rlock);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s->conninfo);
    free(s->site);
    free(s->where);
    free(s);
}

static wb_status pg_open(struct store_backend **out, const struct store_config *cfg, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!cfg->pg_conninfo || !cfg->pg_site || !cfg->pg_site[0]) {
        snprintf(err, errlen, "the postgresql store needs a conninfo and a site");
        return WB_ERR_INVALID;
    }
    if (!pq_api_load(err, errlen))
        return WB_ERR_UNSUPPORTED;
    char *perr = NULL;
    PQconninfoOption *opts = pq->conninfoParse(cfg->pg_conninfo, &perr);
    if (!opts) {
        /* libpq quotes the bad part, which may be the password: not shown. */
        snprintf(err, errlen, "persistence.postgresql.conninfo is not a valid libpq conninfo%s%s",
                 perr && !strstr(cfg->pg_conninfo, "password") ? ": " : "",
                 perr && !strstr(cfg->pg_conninfo, "password") ? perr : "");
        if (perr) {
            size_t n = strlen(err);
            while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
                err[--n] = '\0';
            pq->freemem(perr);
        }
        return WB_ERR_INVALID;
    }
    pq->conninfoFree(opts);

    struct pg_store *s = calloc(1, sizeof(*s));
    if (!s)
        return WB_ERR_NOMEM;
    s->base.ops = &store_pg_backend;
    s->base.durable_commits = true;
    s->cfg = *cfg;
    pthread_mutex_init(&s->rlock, NULL);
    wb_status st = WB_ERR_NOMEM;
    s->conninfo = strdup(cfg->pg_conninfo);
    s->site = strdup(cfg->pg_site);
    s->password = cfg->pg_password ? strdup(cfg->pg_password) : NULL;
    if (!s->conninfo || !s->site || (cfg->pg_password && !s->password))
        goto fail;
    s->cfg.backend = store_pg_backend.name;
    s->cfg.db_path = NULL;
    s->cfg.pg_conninfo = s->conninfo;
    s->cfg.pg_site = s->site;
    s->cfg.pg_password = s->password;
    if (!cfg->read_only) {
        if ((st = connect_at_open(s, err, errlen)) != WB_OK ||
            (st = migrate(s, err, errlen)) != WB_OK)
            goto fail;
        st = WB_ERR_DB;
        if (!prepare(s->w, store_pg_wstmts, store_pg_n_wstmts, err, errlen))
            goto fail;
    }
    if (!(s->r = store_pg_connect(s, store_pg_rstmts, store_pg_n_rstmts, err, errlen))) {
        st = WB_ERR_DB;
        goto fail;
    }
    if (!(s->where = where_of(s->w ? s->w : s->r, s->site))) {
        st = WB_ERR_NOMEM;
        goto fail;
    }
    s->base.where = s->where;
    if (!cfg->read_only) /* the state tool's output stays its own */
        log_info("store: %s, schema version %d", s->where, STORE_PG_SCHEMA_VERSION);
    *out = &s->base;
    return WB_OK;
fail:
    pg_close(&s->base);
    return st;
}

const struct store_backend_ops store_pg_backend = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .commit = store_pg_commit,
    .sync = NULL,
    .get = store_pg_get,
    .scan = store_pg_scan,
    .history_rows = store_pg_history_rows,
    .connection_rows = store_pg_connection_rows,
    .command_rows = store_pg_command_rows,
};

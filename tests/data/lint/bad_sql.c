/* Deliberately bad code for tests/integration/test_lint_sql.sh: every line
 * that builds SQL from strings must be reported by scripts/lint-sql.sh. */
static int f(sqlite3 *db, const char *key)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT value FROM state_store WHERE key='%s'", key);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    char *q = sqlite3_mprintf("DELETE FROM t WHERE k=%Q", key);
    sqlite3_prepare_v2(db, q, -1, &st, NULL);
    return run(db, key);
}
static int run(sqlite3 *db, const char *text)
{
    return sqlite3_exec(db, text, NULL, NULL, NULL);
}
/* libpq through pq_api.h: the SQL is pq->exec's second argument and
 * pq->prepare's third. */
static void g(PGconn *c, const char *key)
{
    char sql[256];
    strcpy(sql, key);
    pq->exec(c, sql);
    pq->prepare(c, "name", key, 0, NULL);
}

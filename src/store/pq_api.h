/*
 * pq_api.h - libpq, loaded when the PostgreSQL backend is chosen.
 *
 * Debian's libpq5 links OpenSSL, Kerberos and LDAP; a bridge on SQLite (the
 * default) never needs any of it, so the daemon does not link the library
 * (as with libmicrohttpd, http/mhd_api.h): store_pg.c loads it at open and
 * every call goes through the `pq` table. The headers come from libpq-dev
 * (pkg-config libpq); at run time only libpq.so.5 (package libpq5).
 */
#ifndef WBMB_STORE_PQ_API_H
#define WBMB_STORE_PQ_API_H

#include <stddef.h>

#include <libpq-fe.h>

#ifndef WBMB_PQ_SO
#define WBMB_PQ_SO "libpq.so.5"
#endif

struct pq_api {
    __typeof__(PQconnectdbParams) *connectdbParams;
    __typeof__(PQstatus) *status;
    __typeof__(PQerrorMessage) *errorMessage;
    __typeof__(PQfinish) *finish;
    __typeof__(PQprepare) *prepare;
    __typeof__(PQexecPrepared) *execPrepared;
    __typeof__(PQexec) *exec;
    __typeof__(PQresultStatus) *resultStatus;
    __typeof__(PQresultErrorField) *resultErrorField;
    __typeof__(PQresultErrorMessage) *resultErrorMessage;
    __typeof__(PQclear) *clear;
    __typeof__(PQntuples) *ntuples;
    __typeof__(PQgetvalue) *getvalue;
    __typeof__(PQgetisnull) *getisnull;
    __typeof__(PQtransactionStatus) *transactionStatus;
    __typeof__(PQconninfoParse) *conninfoParse;
    __typeof__(PQconninfoFree) *conninfoFree;
    __typeof__(PQhost) *host;
    __typeof__(PQport) *port;
    __typeof__(PQdb) *db;
    __typeof__(PQuser) *user;
    __typeof__(PQsetNoticeProcessor) *setNoticeProcessor;
    __typeof__(PQparameterStatus) *parameterStatus;
    __typeof__(PQfreemem) *freemem;
};

/* Loads the library once (thread-safe); then `pq` is set. NULL with a
 * reason in err when the library or a function is missing. */
const struct pq_api *pq_api_load(char *err, size_t errlen);

/* The loaded table; NULL before a successful pq_api_load(). */
extern const struct pq_api *pq;

#endif

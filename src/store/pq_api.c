/*
 * pq_api.c - loads libpq (see pq_api.h).
 */
#include "store/pq_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

const struct pq_api *pq;

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pq_api table;

static bool sym(void *h, const char *name, void *slot, char *err, size_t errlen)
{
    void *p = dlsym(h, name);
    if (!p) {
        snprintf(err, errlen, "%s has no %s", WBMB_PQ_SO, name);
        return false;
    }
    *(void **)slot = p;
    return true;
}

const struct pq_api *pq_api_load(char *err, size_t errlen)
{
    pthread_mutex_lock(&load_mu);
    if (!pq) {
        void *h = dlopen(WBMB_PQ_SO, RTLD_NOW | RTLD_LOCAL);
        static const struct {
            const char *name;
            size_t off;
        } fns[] = {
#define F(n, m) {#n, offsetof(struct pq_api, m)}
            F(PQconnectdbParams, connectdbParams),
            F(PQstatus, status),
            F(PQerrorMessage, errorMessage),
            F(PQfinish, finish),
            F(PQprepare, prepare),
            F(PQexecPrepared, execPrepared),
            F(PQexec, exec),
            F(PQresultStatus, resultStatus),
            F(PQresultErrorField, resultErrorField),
            F(PQresultErrorMessage, resultErrorMessage),
            F(PQclear, clear),
            F(PQntuples, ntuples),
            F(PQgetvalue, getvalue),
            F(PQgetisnull, getisnull),
            F(PQtransactionStatus, transactionStatus),
            F(PQconninfoParse, conninfoParse),
            F(PQconninfoFree, conninfoFree),
            F(PQhost, host),
            F(PQport, port),
            F(PQdb, db),
            F(PQuser, user),
            F(PQsetNoticeProcessor, setNoticeProcessor),
            F(PQparameterStatus, parameterStatus),
            F(PQfreemem, freemem),
#undef F
        };
        if (!h) {
            const char *why = dlerror();
            snprintf(err, errlen, "cannot load %s for the postgresql backend: %s (install libpq5)",
                     WBMB_PQ_SO, why ? why : "unknown error");
        } else {
            bool ok = true;
            for (size_t i = 0; ok && i < sizeof(fns) / sizeof(fns[0]); i++)
                ok = sym(h, fns[i].name, (char *)&table + fns[i].off, err, errlen);
            if (ok)
                pq = &table;
            else
                dlclose(h);
        }
    }
    const struct pq_api *a = pq;
    pthread_mutex_unlock(&load_mu);
    return a;
}

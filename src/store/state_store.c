/*
 * state_store.c - the StateStore's config (from the YAML) and its backend
 * factory. The StateStore functions themselves are store_front*.c's.
 */
#include "wbmb/state_store.h"

#include <stdio.h>
#include <string.h>

#include "store/store_front.h"
#include "wbmb/config.h"

static const struct store_backend_ops *const backends[] = {
    &store_sqlite_backend, &store_memory_backend, &store_pg_backend};

void store_config_from_cfg(const struct cfg_persistence *p, struct store_config *out)
{
    /* Indexed by enum cfg_store_backend; the names are the backends' own. */
    static const char *const names[] = {[CFG_STORE_SQLITE] = "sqlite",
                                        [CFG_STORE_MEMORY] = "memory",
                                        [CFG_STORE_POSTGRESQL] = "postgresql"};
    *out = (struct store_config){
        .backend = p->backend >= 0 && (size_t)p->backend < sizeof(names) / sizeof(names[0])
                       ? names[p->backend]
                       : NULL,
        .db_path = p->db_path,
        .commit_interval_ms = p->commit_interval_ms,
        .sync_interval_ms = p->sync_interval_ms,
        .history_enabled = p->history_enabled,
        .history_max_rows = p->history_max_rows,
        .history_max_age_days = p->history_max_age_days,
        .max_queued_rows = p->max_queued_rows,
        .pg_conninfo = p->pg_conninfo,
        .pg_password = p->pg_password,
        .pg_site = p->pg_site,
        .pg_connect_timeout_s = p->pg_connect_timeout_s,
    };
}

wb_status store_open(struct state_store **out, const struct store_config *cfg, char *err,
                     size_t errlen)
{
    const char *name = cfg->backend ? cfg->backend : "sqlite";
    *out = NULL;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strcmp(backends[i]->name, name) == 0)
            return store_front_open(out, cfg, backends[i], err, errlen);
    if (err && errlen)
        snprintf(err, errlen, "unknown store backend '%s'", name);
    return WB_ERR_INVALID;
}

/*
 * state_store.c - the backend factory and the thin wrappers of the
 * StateStore interface (see state_store.h). No logic lives here: each wrapper
 * forwards to the handle's ops table.
 */
#include "wbmb/state_store.h"

#include <stdio.h>
#include <string.h>

#include "wbmb/config.h"

static const struct store_ops *const backends[] = {&store_sqlite_ops, &store_memory_ops};

void store_config_from_cfg(const struct cfg_persistence *p, struct store_config *out)
{
    /* Indexed by enum cfg_store_backend; the names are the backends' own. */
    static const char *const names[] = {
        [CFG_STORE_SQLITE] = "sqlite", [CFG_STORE_MEMORY] = "memory"};
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
    };
}

wb_status store_open(struct state_store **out, const struct store_config *cfg, char *err,
                     size_t errlen)
{
    const char *name = cfg->backend ? cfg->backend : "sqlite";
    *out = NULL;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i]->open(out, cfg, err, errlen);
    if (err && errlen)
        snprintf(err, errlen, "unknown store backend '%s'", name);
    return WB_ERR_INVALID;
}

void store_close(struct state_store *s)
{
    if (s)
        s->ops->close(s);
}

wb_status store_get(struct state_store *s, const char *key, json_object **out)
{
    return s->ops->get(s, key, out);
}

wb_status store_set(struct state_store *s, const char *key, json_object *value)
{
    return s->ops->set(s, key, value);
}

wb_status store_delete(struct state_store *s, const char *key)
{
    return s->ops->del(s, key);
}

wb_status store_list(struct state_store *s, const char *prefix, store_list_cb cb, void *ud)
{
    return s->ops->list(s, prefix ? prefix : "", cb, ud);
}

wb_status store_flush(struct state_store *s)
{
    return s->ops->flush(s);
}

wb_status store_history_append(struct state_store *s, const char *device_id, json_object *state,
                               const char *ts)
{
    return s->ops->history_append(s, device_id, state, ts);
}

wb_status store_transition(struct state_store *s, const char *key, const char *device_id,
                           const char *json, bool history)
{
    if (!key || !device_id || !json)
        return WB_ERR_INVALID;
    if (s->ops->transition)
        return s->ops->transition(s, key, device_id, json, history);
    json_object *state = json_tokener_parse(json);
    if (!json_object_is_type(state, json_type_object)) {
        json_object_put(state);
        return WB_ERR_INVALID;
    }
    wb_status st = s->ops->set(s, key, state);
    if (history) {
        wb_status h = s->ops->history_append(s, device_id, state, NULL);
        if (st == WB_OK)
            st = h;
    }
    json_object_put(state);
    return st;
}

wb_status store_history_query(struct state_store *s, const char *device_id, int limit,
                              json_object **out)
{
    return s->ops->history_query(s, device_id, limit, out);
}

wb_status store_connection_append(struct state_store *s, const char *device_id, const char *event,
                                  const char *ts)
{
    return s->ops->connection_append(s, device_id, event, ts);
}

wb_status store_connection_query(struct state_store *s, const char *device_id, int limit,
                                 json_object **out)
{
    return s->ops->connection_query(s, device_id, limit, out);
}

wb_status store_device_upsert(struct state_store *s, const struct store_device_row *row)
{
    return s->ops->device_upsert(s, row);
}

wb_status store_command_put(struct state_store *s, const struct store_command_row *row)
{
    return s->ops->command_put(s, row);
}

wb_status store_command_query(struct state_store *s, const struct store_command_filter *f,
                              int limit, json_object **out)
{
    return s->ops->command_query(s, f, limit, out);
}

void store_get_status(struct state_store *s, struct store_status *out)
{
    s->ops->get_status(s, out);
}

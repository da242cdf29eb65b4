/*
 * store_front.h - the StateStore handle over a backend and the writer
 * (store_front.c writes, store_front_read.c reads). Internal to src/store/.
 */
#ifndef WBMB_STORE_FRONT_H
#define WBMB_STORE_FRONT_H

#include "store/store_backend.h"
#include "store/store_writer.h"

struct front_store {
    struct state_store base;
    struct store_config cfg; /* backend: the backend's name; db_path NULL */
    struct store_backend *b;
    struct store_writer *w; /* NULL when read-only */
};

#define F(x) ((struct front_store *)(x))

/* Opens bops's backend and, unless cfg->read_only, starts a writer on it. */
wb_status store_front_open(struct state_store **out, const struct store_config *cfg,
                           const struct store_backend_ops *bops, const struct store_ops *ops,
                           char *err, size_t errlen);

/* store_front_read.c: the reads of the ops table (contracts: state_store.h). */
wb_status store_front_get(struct state_store *s, const char *key, json_object **out);
wb_status store_front_list(struct state_store *s, const char *prefix, store_list_cb cb, void *ud);
wb_status store_front_history_query(struct state_store *s, const char *device_id, int limit,
                                    json_object **out);
wb_status store_front_connection_query(struct state_store *s, const char *device_id, int limit,
                                       json_object **out);
wb_status store_front_command_query(struct state_store *s, const struct store_command_filter *f,
                                    int limit, json_object **out);

/* The row queries (declared in state_store.h once every backend is one). */
wb_status store_history_rows(struct state_store *s, const char *device_id, int limit,
                             struct store_rows *out);
wb_status store_connection_rows(struct state_store *s, const char *device_id, int limit,
                                struct store_rows *out);
wb_status store_command_rows(struct state_store *s, const struct store_command_filter *f, int limit,
                             struct store_rows *out);

#endif

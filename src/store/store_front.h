/*
 * store_front.h - the StateStore handle over a backend and the writer
 * (store_front.c writes, store_front_read.c reads). Internal to src/store/.
 */
#ifndef WBMB_STORE_FRONT_H
#define WBMB_STORE_FRONT_H

#include "store/store_backend.h"
#include "store/store_writer.h"

/* The StateStore handle, the same for every backend. */
struct state_store {
    struct store_config cfg; /* backend: the backend's name; db_path NULL */
    struct store_backend *b;
    struct store_writer *w; /* NULL when read-only */
};

/* Opens bops's backend and, unless cfg->read_only, starts a writer on it. */
wb_status store_front_open(struct state_store **out, const struct store_config *cfg,
                           const struct store_backend_ops *bops, char *err, size_t errlen);

#endif

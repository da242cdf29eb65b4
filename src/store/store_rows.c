/*
 * store_rows.c - the row sets of the store's queries (struct store_rows,
 * state_store.h). Their JSON is the HTTP API's, built in the API layer
 * (src/core/api_rows.c), not here.
 */
#include <stdlib.h>
#include <string.h>

#include "wbmb/state_store.h"

/* ---- row sets ------------------------------------------------------------- */

static int kind_fields(enum store_rows_kind k)
{
    return k == STORE_ROWS_COMMANDS ? 9 : k == STORE_ROWS_HISTORY ? 5 : 3;
}

/* Points slot[] at the string members of row i, in struct order; the
 * members of a command row are const for its readers, the set owns them. */
static void row_slots(struct store_rows *r, size_t i, char **slot[9])
{
    switch (r->kind) {
    case STORE_ROWS_HISTORY:
        slot[0] = &r->history[i].device_id;
        slot[1] = &r->history[i].ts;
        slot[2] = &r->history[i].state;
        slot[3] = &r->history[i].kind;
        slot[4] = &r->history[i].stats;
        break;
    case STORE_ROWS_CONNECTIONS:
        slot[0] = &r->connections[i].device_id;
        slot[1] = &r->connections[i].event;
        slot[2] = &r->connections[i].ts;
        break;
    case STORE_ROWS_COMMANDS: {
        struct store_command_row *c = &r->commands[i];
        const char **m[] = {&c->command_id, &c->device_id,  &c->action,
                            &c->params,     &c->source,     &c->status,
                            &c->error,      &c->created_at, &c->completed_at};
        for (int k = 0; k < 9; k++)
            slot[k] = (char **)m[k];
        break;
    }
    }
}

wb_status store_rows_add(struct store_rows *r, const char *const *fields)
{
    static const size_t size[] = {[STORE_ROWS_HISTORY] = sizeof(struct store_history_row),
                                  [STORE_ROWS_CONNECTIONS] = sizeof(struct store_connection_row),
                                  [STORE_ROWS_COMMANDS] = sizeof(struct store_command_row)};
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        void *nv = realloc(r->history, ncap * size[r->kind]); /* the union's one pointer */
        if (!nv)
            return WB_ERR_NOMEM;
        r->history = nv;
        r->cap = ncap;
    }
    char **slot[9];
    row_slots(r, r->n, slot);
    int nf = kind_fields(r->kind);
    for (int k = 0; k < nf; k++)
        *slot[k] = NULL;
    r->n++; /* a half-copied row is freed with the set */
    for (int k = 0; k < nf; k++)
        if (fields[k] && !(*slot[k] = strdup(fields[k])))
            return WB_ERR_NOMEM;
    return WB_OK;
}

void store_rows_free(struct store_rows *r)
{
    char **slot[9];
    int nf = kind_fields(r->kind);
    for (size_t i = 0; i < r->n; i++) {
        row_slots(r, i, slot);
        for (int k = 0; k < nf; k++)
            free(*slot[k]);
    }
    free(r->history);
    *r = STORE_ROWS(r->kind);
}

/*
 * pipeline_fixture.h - the core's wiring (src/core/core.c) for unit tests
 * and the fuzz replay: a store, the sinks {store sink, Wiren Board mirror
 * with the test's publisher, an optional recording sink}, the device
 * manager with its view, the restore/announce sequence of core_restore()
 * and core_reload(), and pf_feed() doing exactly what core.c's
 * handle_message() does. No cmocka here (the fuzz target uses it too):
 * failures abort.
 */
#ifndef WBMB_TESTS_PIPELINE_FIXTURE_H
#define WBMB_TESTS_PIPELINE_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/wb_int.h"
#include "wbmb/config.h"
#include "wbmb/devmgr.h"
#include "wbmb/dispatch.h"
#include "wbmb/mirror.h"
#include "wbmb/sink.h"
#include "wbmb/state_store.h"
#include "wbmb/store_sink.h"
#include "wbmb/util.h"

/* A recording sink: every event to fn (borrowed for the call). */
typedef void (*pf_event_fn)(void *ud, const struct event *ev, const struct sink_view *view);

struct pf_rec_sink {
    struct sink base;
    pf_event_fn fn;
    void *ud;
};

/* A command a sink found on its input (core.c's route_command() target). */
typedef void (*pf_command_fn)(void *ud, const struct sink_command *cmd);

struct pf {
    const struct config *cfg;
    struct state_store *store; /* borrowed */
    struct devmgr *dm;
    struct sinks sinks;
    struct sink *store_sink, *mirror;
    struct sink *extra; /* pf_open_with()'s sink after the mirror (owned by sinks) */
    struct pf_rec_sink *rec;
    pf_command_fn on_command; /* non-retained commands (NULL: dropped) */
    void *command_ud;
    uint64_t own;              /* SINK_IN_OWN (the core's count) */
    uint64_t retained_ignored; /* retained commands the core never acts on */
    const char **subs;         /* pf_subscriptions() */
};

static inline void pf_rec_event(struct sink *s, const struct event *ev,
                                const struct sink_view *view)
{
    struct pf_rec_sink *r = (struct pf_rec_sink *)s;
    if (r->fn)
        r->fn(r->ud, ev, view);
}

static inline void pf_rec_destroy(struct sink *s)
{
    free(s);
}

static const struct sink_ops pf_rec_ops = {
    .name = "test-recorder", .event = pf_rec_event, .destroy = pf_rec_destroy};

static inline void pf_die(const char *what)
{
    fprintf(stderr, "pipeline fixture: %s\n", what);
    abort();
}

struct pf_restore_ctx {
    struct devmgr *m;
    size_t restored;
};

static inline int pf_restore_device(const char *key, json_object *v, void *ud)
{
    struct pf_restore_ctx *rc = ud;
    if (devmgr_restore_state(rc->m, key + strlen("device:"), v))
        rc->restored++;
    return 0;
}

/* core.c's restore_devices(). */
static inline size_t pf_restore_devices(struct pf *f, struct devmgr *m)
{
    struct pf_restore_ctx rc = {m, 0};
    if (store_list(f->store, "device:", pf_restore_device, &rc) != WB_OK)
        pf_die("store_list failed");
    return rc.restored;
}

/* core_create() + core_restore() (without the scenario manager): the
 * sinks (extra, when not NULL, after the mirror: the Home Assistant
 * sink's tests), the device manager, its view, the stored states, the
 * announcement. rec_fn may be NULL (no recording sink). Returns how many
 * devices were restored. */
static inline size_t pf_open_with(struct pf *f, const struct config *cfg, struct state_store *store,
                                  const struct mirror_publisher *pub,
                                  const struct mirror_memory *mem, struct sink *extra,
                                  pf_event_fn rec_fn, void *rec_ud)
{
    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    f->store = store;
    f->store_sink = store_sink_create(store, cfg);
    f->mirror = mirror_sink_create(cfg, pub, mem);
    if (!f->store_sink || !f->mirror || sinks_add(&f->sinks, f->store_sink) != WB_OK ||
        sinks_add(&f->sinks, f->mirror) != WB_OK)
        pf_die("sinks");
    f->extra = extra;
    if (extra && sinks_add(&f->sinks, extra) != WB_OK)
        pf_die("sinks");
    if (rec_fn) {
        f->rec = calloc(1, sizeof(*f->rec));
        if (!f->rec)
            pf_die("out of memory");
        f->rec->base.ops = &pf_rec_ops;
        f->rec->fn = rec_fn;
        f->rec->ud = rec_ud;
        if (sinks_add(&f->sinks, &f->rec->base) != WB_OK)
            pf_die("sinks");
    }
    char err[256];
    f->dm = devmgr_create(cfg, &f->sinks, NULL, err, sizeof(err));
    if (!f->dm)
        pf_die(err);
    devmgr_view(f->dm, &f->sinks.view);
    size_t n = pf_restore_devices(f, f->dm);
    devmgr_announce(f->dm, NULL);
    return n;
}

/* pf_open_with() without an extra sink. */
static inline size_t pf_open_mem(struct pf *f, const struct config *cfg, struct state_store *store,
                                 const struct mirror_publisher *pub,
                                 const struct mirror_memory *mem, pf_event_fn rec_fn, void *rec_ud)
{
    return pf_open_with(f, cfg, store, pub, mem, NULL, rec_fn, rec_ud);
}

/* pf_open_mem() with a mirror that remembers nothing. */
static inline size_t pf_open(struct pf *f, const struct config *cfg, struct state_store *store,
                             const struct mirror_publisher *pub, pf_event_fn rec_fn, void *rec_ud)
{
    return pf_open_mem(f, cfg, store, pub, NULL, rec_fn, rec_ud);
}

/* core_reload(): a new manager for ncfg carrying the live state over;
 * returns how many devices it restored from the store (the added ones). */
static inline size_t pf_reload(struct pf *f, const struct config *ncfg)
{
    char err[256];
    struct devmgr *nm = devmgr_create(ncfg, &f->sinks, f->dm, err, sizeof(err));
    if (!nm)
        pf_die(err);
    size_t n = pf_restore_devices(f, nm);
    devmgr_view(nm, &f->sinks.view);
    devmgr_announce(nm, f->dm);
    devmgr_destroy(f->dm);
    f->dm = nm;
    f->cfg = ncfg;
    return n;
}

/* core_destroy()'s order (the store stays open: the caller's). */
static inline void pf_close(struct pf *f)
{
    sinks_destroy(&f->sinks);
    devmgr_destroy(f->dm);
    f->dm = NULL;
    free(f->subs);
    f->subs = NULL;
}

/* core.c's handle_message() with route_command()'s retained rule. */
static inline void pf_feed_at(struct pf *f, const char *topic, const char *payload, size_t len,
                              bool retained, int64_t now_ms)
{
    struct sink_command cmd;
    switch (sinks_input(&f->sinks, topic, payload, len, retained, &cmd)) {
    case SINK_IN_NONE:
        devmgr_handle_message(f->dm, topic, payload, len, now_ms);
        break;
    case SINK_IN_OWN:
        f->own++;
        break;
    case SINK_IN_COMMAND:
        if (cmd.retained) {
            f->retained_ignored++;
            break;
        }
        if (f->on_command)
            f->on_command(f->command_ud, &cmd);
        break;
    }
}

static inline void pf_feed(struct pf *f, const char *topic, const char *payload, size_t len,
                           bool retained)
{
    pf_feed_at(f, topic, payload, len, retained, 1000);
}

/* The sinks' tick (the mirror's held values, republish steps). */
static inline int64_t pf_tick(struct pf *f, int64_t now_ms)
{
    return sinks_tick(&f->sinks, now_ms, false);
}

static inline void pf_event(struct pf *f, enum ev_kind kind)
{
    struct event ev = {.kind = kind, .now_ms = util_mono_ms()};
    sinks_emit(&f->sinks, &ev);
}

/* True while the mirror's republish round runs. */
static inline bool pf_republishing(const struct pf *f)
{
    return ((const struct wb *)f->mirror)->republishing;
}

/* Ticks until the republish round is complete (the old publish_all). */
static inline void pf_republish_finish(struct pf *f)
{
    for (int i = 0; pf_republishing(f); i++) {
        if (i > 100000)
            pf_die("the republish never ends");
        pf_tick(f, util_mono_ms());
    }
}

/* A connect: EV_LINK_UP, then ticks until the round is done. */
static inline void pf_republish(struct pf *f)
{
    pf_event(f, EV_LINK_UP);
    pf_republish_finish(f);
}

/* What core.c subscribes to: the device manager's filters, then each
 * sink's (valid until the next call or pf_close). */
static inline const char *const *pf_subscriptions(struct pf *f, size_t *n)
{
    size_t n_dev;
    const char *const *dev = devmgr_subscriptions(f->dm, &n_dev);
    size_t total = n_dev;
    for (size_t i = 0; i < f->sinks.n; i++) {
        struct sink *s = f->sinks.s[i];
        size_t k = 0;
        if (s->ops->subscriptions)
            s->ops->subscriptions(s, &k);
        total += k;
    }
    free(f->subs);
    f->subs = malloc((total ? total : 1) * sizeof(*f->subs));
    if (!f->subs)
        pf_die("out of memory");
    size_t j = 0;
    for (size_t i = 0; i < n_dev; i++)
        f->subs[j++] = dev[i];
    for (size_t i = 0; i < f->sinks.n; i++) {
        struct sink *s = f->sinks.s[i];
        size_t k = 0;
        const char *const *sub = s->ops->subscriptions ? s->ops->subscriptions(s, &k) : NULL;
        for (size_t q = 0; q < k; q++)
            f->subs[j++] = sub[q];
    }
    *n = j;
    return (const char *const *)f->subs;
}

#endif

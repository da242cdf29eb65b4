/*
 * config_scenarios.c - scenarios: of the config, checked against the devices.
 *
 * Runs after every device is parsed. A scenario lists the devices it owns;
 * each startup/shutdown step must name one of them, an action that device
 * has, and params that fit the action's declarations; "when" goes through
 * cfg_condition_parse(). Scenario ids also appear as values of the bridge's
 * "scenario" control, where "none" means no scenario, so "none" is refused.
 * Devices are looked up through the config's id index (cfg_device_index()),
 * which config.c builds before this runs.
 */
#include "config/config_scenarios.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_actions.h"

struct scen_tmp {
    struct cfg_scenario s;
    const struct ydoc_node *devices, *startup, *shutdown;
};
#define SF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct scen_tmp, m), __VA_ARGS__                      \
    }
static const struct cfgw_field scenario_fields[] = {
    SF("id", W_STR, s.id, .required = true), SF("name", W_STR, s.name),
    SF("devices", W_NODE, devices),          SF("startup", W_NODE, startup),
    SF("shutdown", W_NODE, shutdown),        {NULL},
};

struct step_tmp {
    struct cfg_step s;
    const struct ydoc_node *params, *when;
};
#define STF(k, t, m, ...)                                                                          \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct step_tmp, m), __VA_ARGS__                      \
    }
static const struct cfgw_field step_fields[] = {
    STF("device", W_STR, s.device, .required = true),
    STF("action", W_STR, s.action, .required = true),
    STF("params", W_NODE, params),
    STF("when", W_NODE, when),
    STF("delay_after_ms", W_UINT, s.delay_after_ms, .min = 0, .max = 3600000),
    {NULL},
};

/* Which scenario listed each device last: mark[i] == stamp when devices[i]
 * is in the devices list of the scenario being checked (stamps are the
 * scenario's position + 1, so nothing is ever reset). Positions come from
 * the config's index: listing a device and checking a step's device are
 * O(1), with no copy of the devices. */
struct listed {
    uint32_t *mark; /* cfg->n_devices entries */
    uint32_t stamp;
};

static const struct cfg_action *find_action(const struct cfg_device *d, const char *name)
{
    for (size_t i = 0; i < d->n_actions; i++)
        if (d->actions[i].name && strcmp(d->actions[i].name, name) == 0)
            return &d->actions[i];
    return NULL;
}

static void check_step_params(struct cfgw_ctx *c, struct step_tmp *t, const struct ydoc_node *v,
                              const struct cfg_action *a, const char *sid)
{
    struct cfg_step *st = &t->s;
    const struct ydoc_node *pm = t->params;
    char what[200];
    cfgw_fmt(what, sizeof(what), "params of scenario '%s' step", sid);
    if (cfgw_is_map(c, pm, what)) {
        st->params = json_object_new_object();
        if (!st->params) {
            c->oom = true;
            return;
        }
        for (size_t i = 0; i < pm->n; i++) {
            const struct ydoc_node *k = pm->keys[i];
            const struct cfg_param *p = cfga_find_param(a, k->value, strlen(k->value));
            if (!p) {
                cfgw_err_node(c, k,
                              "scenario '%s' step: action '%s' of device '%s' has no param '%s'",
                              sid, st->action, st->device, k->value);
                continue;
            }
            char pw[300];
            cfgw_fmt(pw, sizeof(pw), "scenario '%s' step: param '%s' of action '%s'", sid, k->value,
                     st->action);
            json_object *j = cfga_param_value(c, pm->items[i], p, pw);
            if (j)
                json_object_object_add(st->params, k->value, j);
        }
    }
    for (size_t i = 0; i < a->n_params; i++) {
        const struct cfg_param *p = &a->params[i];
        if (p->required && !p->default_value && !ydoc_map_get(pm, p->name))
            cfgw_err_node(c, v, "scenario '%s' step: action '%s' of device '%s' needs param '%s'",
                          sid, st->action, st->device, p->name);
    }
}

static void parse_steps(struct cfgw_ctx *c, const struct ydoc_node *list, struct cfg_scenario *s,
                        const struct config *cfg, const struct listed *ls, bool startup)
{
    const char *phase = startup ? "startup" : "shutdown";
    const char *sid = s->id ? s->id : "?";
    char what[160];
    cfgw_fmt(what, sizeof(what), "%s of scenario '%s'", phase, sid);
    if (!cfgw_is_list(c, list, what))
        return;
    struct cfg_step *steps = calloc(list->n, sizeof(*steps));
    size_t *n = startup ? &s->n_startup : &s->n_shutdown;
    if (!steps) {
        c->oom = true;
        return;
    }
    if (startup)
        s->startup = steps;
    else
        s->shutdown = steps;
    for (size_t i = 0; i < list->n; i++) {
        const struct ydoc_node *v = list->items[i];
        char where[200];
        cfgw_fmt(where, sizeof(where), "scenario '%s' %s step %zu", sid, phase, i + 1);
        if (!cfgw_is_map(c, v, where)) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "%s must be a map with device and action", where);
            continue;
        }
        struct step_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, step_fields, &t);
        cfgw_map(c, step_fields, v, &t, where);
        t.s.mark = (struct cfg_mark){v->line, v->column};
        if (t.when) {
            char err[200];
            if (t.when->kind != YDOC_SCALAR || ydoc_is_null(t.when))
                cfgw_err_node(c, v, "%s: when must be a string like \"field == value\"", where);
            else if (!(t.s.when = cfg_condition_parse(t.when->value, err, sizeof(err))))
                cfgw_err_node(c, v, "%s: bad when '%s': %s", where, t.when->value, err);
        }
        const struct cfg_device *d = NULL;
        const struct cfg_action *a = NULL;
        if (t.s.device) {
            const struct ydoc_node *dn = ydoc_map_get(v, "device");
            long ix = cfg_device_index(cfg, t.s.device);
            if (ix < 0) {
                cfgw_err_node(c, dn, "scenario '%s' step refers to unknown device '%s'", sid,
                              t.s.device);
            } else {
                d = &cfg->devices[ix];
                if (ls->mark[ix] != ls->stamp)
                    cfgw_err_node(
                        c, dn,
                        "scenario '%s' step uses device '%s' which is not in its devices list", sid,
                        t.s.device);
            }
        }
        if (d && t.s.action && !(a = find_action(d, t.s.action)))
            cfgw_err_node(c, ydoc_map_get(v, "action"),
                          "scenario '%s' step refers to unknown action '%s' of device '%s'", sid,
                          t.s.action, t.s.device);
        if (a)
            check_step_params(c, &t, v, a, sid);
        steps[(*n)++] = t.s;
    }
}

void cfgs_scenarios(struct cfgw_ctx *c, const struct ydoc_node *list, struct config *cfg)
{
    if (!cfgw_is_list(c, list, "scenarios"))
        return;
    cfg->scenarios = calloc(list->n, sizeof(*cfg->scenarios));
    if (!cfg->scenarios) {
        c->oom = true;
        return;
    }
    struct cfgw_ids ids = {0}; /* the first "id" of every entry so far */
    struct listed ls = {.mark = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof(uint32_t))};
    if (!ls.mark) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        ls.stamp = (uint32_t)i + 1;
        const struct ydoc_node *v = list->items[i];
        const struct ydoc_node *idn = ydoc_map_get(v, "id");
        char where[160];
        if (idn && idn->kind == YDOC_SCALAR)
            cfgw_fmt(where, sizeof(where), "scenario '%s'", idn->value);
        else
            cfgw_fmt(where, sizeof(where), "scenario %zu", i + 1);
        if (!cfgw_is_map(c, v, "scenarios entries")) {
            if (ydoc_is_null(v))
                cfgw_err_node(c, v, "scenarios entries must be maps, got nothing");
            continue;
        }
        struct scen_tmp t;
        memset(&t, 0, sizeof(t));
        cfgw_defaults(c, scenario_fields, &t);
        cfgw_map(c, scenario_fields, v, &t, where);
        struct cfg_scenario *s = &cfg->scenarios[cfg->n_scenarios++];
        *s = t.s;
        s->mark = (struct cfg_mark){v->line, v->column};
        if (s->id) {
            /* "none" is what the bridge's scenario control shows when no
             * scenario is active, so it cannot be a scenario's id. */
            if (!cfgw_id_valid(s->id) || strcmp(s->id, "none") == 0)
                cfgw_err_node(c, idn, "scenario id '%s' must match [a-z0-9_]+ and not be 'none'",
                              s->id);
            const struct cfgw_id_slot *first = cfgw_ids_find(&ids, s->id);
            if (first)
                cfgw_err_node(c, idn, "duplicate scenario id '%s' (first defined at %d:%d)", s->id,
                              first->line, first->column);
            if (!s->name)
                s->name = cfgw_strdup(c, s->id);
        }
        /* Entries are remembered by their first "id" key, as written:
         * skipped (non-map) entries make indexes of cfg->scenarios differ
         * from the list. The tree outlives the set, so keys are borrowed. */
        if (idn && idn->kind == YDOC_SCALAR)
            cfgw_ids_add(c, &ids, idn->value, false, idn->line, idn->column);
        char dw[200];
        cfgw_fmt(dw, sizeof(dw), "devices of %s", where);
        if (cfgw_is_list(c, t.devices, dw)) {
            s->devices = calloc(t.devices->n, sizeof(char *));
            if (!s->devices) {
                c->oom = true;
                continue;
            }
            for (size_t j = 0; j < t.devices->n; j++) {
                const struct ydoc_node *e = t.devices->items[j];
                if (!cfgw_is_string(c, e, "scenario devices entries"))
                    continue;
                long ix = cfg_device_index(cfg, e->value);
                bool twice = false;
                if (ix < 0) {
                    cfgw_err_node(c, e, "%s lists unknown device '%s'", where, e->value);
                    /* Not in the index, so not marked: an unknown id listed
                     * twice is found the slow way (this is an error path). */
                    for (size_t q = 0; q < s->n_devices; q++)
                        twice = twice || (s->devices[q] && strcmp(s->devices[q], e->value) == 0);
                } else {
                    twice = ls.mark[ix] == ls.stamp;
                    ls.mark[ix] = ls.stamp;
                }
                if (twice)
                    cfgw_err_node(c, e, "%s lists device '%s' twice", where, e->value);
                s->devices[s->n_devices++] = cfgw_strdup(c, e->value);
            }
        }
        parse_steps(c, t.startup, s, cfg, &ls, true);
        parse_steps(c, t.shutdown, s, cfg, &ls, false);
    }
    free(ls.mark);
    cfgw_ids_free(&ids);
}

static void free_steps(struct cfg_step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].device);
        free(s[i].action);
        json_object_put(s[i].params);
        cfg_condition_free(s[i].when);
    }
    free(s);
}

void cfgs_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_scenarios; i++) {
        struct cfg_scenario *s = &cfg->scenarios[i];
        free(s->id);
        free(s->name);
        cfgw_free_strv(s->devices, s->n_devices);
        free_steps(s->startup, s->n_startup);
        free_steps(s->shutdown, s->n_shutdown);
    }
    free(cfg->scenarios);
    cfg->scenarios = NULL;
    cfg->n_scenarios = 0;
}

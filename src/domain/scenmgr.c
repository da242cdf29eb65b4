/*
 * scenmgr.c - scenario switches and "scenario:last" (see scenmgr.h).
 *
 * A switch A -> B is a plan: A's shutdown steps for devices B does not use
 * (shared devices are not power-cycled), then B's startup steps in order.
 *
 *            scenmgr_switch()                 run(): all steps done
 *   idle ---------------------> switching -----------------------> active | failed
 *    ^      (persisted before     |  ^  \                                 |
 *    |       the first step)      |  |   `-- step with delay_after_ms:    |
 *    |                            |  '------ scenmgr_tick() resumes -----'
 *    |                            |  ^
 *    |                            |  '-- a step's command waits for its PUBACK:
 *    |                            '------ step_done() resumes (dispatch.h)
 *    |   scenmgr_shutdown(): the active scenario's shutdown steps -> off
 *    '------------------------------------------------------------------
 *
 * A step whose `when` is false is skipped (logged, not a failure). A failed
 * step (also one the broker refused) is recorded and the plan goes on; the
 * next step starts only when the broker has answered the previous one, so
 * its `when` sees that step's `set`. Only one switch runs at a time.
 * scenario:last goes to the sinks (EV_SCENARIO) at the start and at the end
 * of a switch; the store sink flushes it to disk each time, so a restart in
 * between finds "switching" and records the switch as failed. Every entry
 * point runs on the core (OWNER_ASSERT).
 */
#include "wbmb/scenmgr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/action.h"
#include "wbmb/log.h"
#include "wbmb/owner.h"
#include "wbmb/util.h"

struct plan_step {
    const struct cfg_step *step;
    const char *phase; /* "shutdown" or "startup" */
};

struct scenmgr {
    const struct config *cfg;
    struct dispatch_ctx *d;
    const struct sinks *sinks;
    json_object *last;

    bool running;
    bool shutting_down;                /* the running plan is a shutdown() */
    const struct cfg_scenario *target; /* the scenario switched to, or shut down */
    struct plan_step *plan;
    size_t n_plan, idx;
    int64_t next_at;
    json_object *failed_steps;
    json_object *shared;
    scenmgr_done_cb cb;
    void *cb_ud;
    /* The step in flight waits for the broker's PUBACK (dispatch.h): the
     * plan goes on in step_done(), with that step's `set` applied. */
    bool waiting;
    size_t wait_idx;
};

static const char *last_str(const struct scenmgr *s, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(s->last, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool in_list(char **list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], id) == 0)
            return true;
    return false;
}

/* The scenario that is on now (active, failed half-way, or being switched). */
static const struct cfg_scenario *active_scenario(const struct scenmgr *s)
{
    const char *id = last_str(s, "scenario_id");
    const char *status = last_str(s, "status");
    if (!id || !status || strcmp(status, "off") == 0)
        return NULL;
    return cfg_find_scenario(s->cfg, id);
}

/* scenario:last to the sinks; stored: it was just read from the store. */
static void announce(struct scenmgr *s, bool stored)
{
    struct event ev = {.kind = EV_SCENARIO, .now_ms = util_mono_ms()};
    ev.u.scenario.last = s->last;
    ev.u.scenario.active = scenmgr_control_value(s);
    ev.u.scenario.stored = stored;
    sinks_emit(s->sinks, &ev);
}

static void persist(struct scenmgr *s)
{
    announce(s, false);
}

static json_object *device_states(struct scenmgr *s, const struct cfg_scenario *sc)
{
    json_object *devs = json_object_new_object();
    for (size_t i = 0; sc && i < sc->n_devices; i++) {
        json_object *st = devmgr_state_new(s->d->devmgr, sc->devices[i]);
        json_object *copy = NULL;
        if (st)
            json_object_deep_copy(st, &copy, NULL);
        json_object_put(st);
        json_object_object_add(devs, sc->devices[i], copy ? copy : json_object_new_object());
    }
    return devs;
}

static void set_last(struct scenmgr *s, const char *scenario_id, const char *status,
                     const char *error, bool new_start)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "scenario_id",
                           scenario_id ? json_object_new_string(scenario_id) : NULL);
    json_object_object_add(o, "status", json_object_new_string(status));
    const char *started = last_str(s, "started_at");
    char now[UTIL_TS_LEN];
    if (new_start || !started) {
        util_iso8601_now(now);
        started = now;
    }
    json_object_object_add(o, "started_at", json_object_new_string(started));
    json_object_object_add(o, "devices", device_states(s, s->target));
    json_object_object_add(o, "error", error ? json_object_new_string(error) : NULL);
    if (s->failed_steps && json_object_array_length(s->failed_steps) > 0)
        json_object_object_add(o, "failed_steps", json_object_get(s->failed_steps));
    json_object_put(s->last);
    s->last = o;
}

static json_object *make_result(bool success, const char *scenario_id, json_object *shared,
                                json_object *failed, const char *error)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "success", json_object_new_boolean(success));
    json_object_object_add(r, "scenario_id",
                           scenario_id ? json_object_new_string(scenario_id) : NULL);
    json_object_object_add(r, "shared_devices",
                           shared ? json_object_get(shared) : json_object_new_array());
    json_object_object_add(r, "failed_steps",
                           failed ? json_object_get(failed) : json_object_new_array());
    if (error)
        json_object_object_add(r, "error", json_object_new_string(error));
    return r;
}

static void end_plan(struct scenmgr *s)
{
    free(s->plan);
    s->plan = NULL;
    s->n_plan = s->idx = 0;
    json_object_put(s->failed_steps);
    json_object_put(s->shared);
    s->failed_steps = s->shared = NULL;
    s->running = false;
    s->waiting = false;
    s->target = NULL;
    s->cb = NULL;
}

static void finish(struct scenmgr *s)
{
    size_t failed = json_object_array_length(s->failed_steps);
    char error[300] = "";
    if (failed) {
        json_object *first = json_object_array_get_idx(s->failed_steps, 0), *e;
        json_object_object_get_ex(first, "error", &e);
        snprintf(error, sizeof(error), "%zu step(s) failed; first: %s", failed,
                 json_object_get_string(e));
    }
    const char *id = s->target ? s->target->id : NULL;
    if (s->shutting_down) {
        set_last(s, NULL, "off", failed ? error : NULL, false);
        log_info("scenario %s shut down%s%s", id ? id : "(none)", failed ? ": " : "", error);
    } else {
        set_last(s, id, failed ? "failed" : "active", failed ? error : NULL, false);
        log_info("scenario %s %s%s%s", id, failed ? "failed" : "active", failed ? ": " : "", error);
    }
    persist(s);
    json_object *r =
        make_result(failed == 0, s->shutting_down ? NULL : id, s->shared, s->failed_steps, NULL);
    scenmgr_done_cb cb = s->cb;
    void *ud = s->cb_ud;
    end_plan(s);
    if (cb)
        cb(ud, r);
    json_object_put(r);
}

/* A step's outcome: recorded when it failed; true when the plan waits for
 * its delay_after_ms now. */
static bool after_step(struct scenmgr *s, const struct plan_step *ps,
                       const struct dispatch_result *res)
{
    const struct cfg_step *st = ps->step;
    if (res->st != WB_OK) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "phase", json_object_new_string(ps->phase));
        json_object_object_add(f, "device", json_object_new_string(st->device));
        json_object_object_add(f, "action", json_object_new_string(st->action));
        json_object_object_add(f, "command_id", json_object_new_string(res->command_id));
        json_object_object_add(f, "error", json_object_new_string(res->error));
        json_object_array_add(s->failed_steps, f);
    }
    if (st->delay_after_ms) {
        /* Counted from after the send (its PUBACK), so the spacing is a true
         * minimum. */
        s->next_at = util_mono_ms() + st->delay_after_ms;
        return true;
    }
    return false;
}

static void run(struct scenmgr *s, int64_t now);

/* The broker answered the step in flight (dispatch_done_fn). */
static void step_done(void *ud, const struct dispatch_result *res)
{
    struct scenmgr *s = ud;
    if (!s->waiting || !s->running)
        return;
    s->waiting = false;
    /* A delay now is a timer: the owner's loop runs scenmgr_tick() (the
     * PUBACK's handler wakes it). */
    if (!after_step(s, &s->plan[s->wait_idx], res))
        run(s, util_mono_ms());
}

/* Runs steps until one asks for a delay, waits for its PUBACK, or the plan
 * is done. */
static void run(struct scenmgr *s, int64_t now)
{
    while (s->running) {
        /* Also after the last step: the plan is done only once its PUBACK
         * (or its delay) is over. */
        if (s->waiting || now < s->next_at)
            return;
        if (s->idx >= s->n_plan)
            break;
        const struct plan_step *ps = &s->plan[s->idx++];
        const struct cfg_step *st = ps->step;
        bool holds = true;
        if (st->when) {
            json_object *state = devmgr_state_new(s->d->devmgr, st->device);
            holds = action_condition_holds(st->when, state);
            json_object_put(state);
        }
        if (!holds) {
            log_info("scenario %s: %s step %s/%s skipped: its condition is false", s->target->id,
                     ps->phase, st->device, st->action);
            continue;
        }
        struct dispatch_result res;
        dispatch_action_cb(s->d, st->device, st->action, st->params, "scenario", step_done, s,
                           &res);
        if (res.pending) { /* step_done() goes on, never inside the call */
            s->waiting = true;
            s->wait_idx = s->idx - 1;
            return;
        }
        if (after_step(s, ps, &res))
            return;
    }
    if (s->running)
        finish(s);
}

static void add_steps(struct scenmgr *s, const struct cfg_step *steps, size_t n, const char *phase,
                      const struct cfg_scenario *skip_devices_of)
{
    for (size_t i = 0; i < n; i++) {
        if (skip_devices_of &&
            in_list(skip_devices_of->devices, skip_devices_of->n_devices, steps[i].device))
            continue;
        s->plan[s->n_plan].step = &steps[i];
        s->plan[s->n_plan].phase = phase;
        s->n_plan++;
    }
}

struct scenmgr *scenmgr_create(const struct config *cfg, struct dispatch_ctx *dispatch,
                               const struct sinks *sinks)
{
    OWNER_ASSERT();
    struct scenmgr *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->d = dispatch;
    s->sinks = sinks;
    s->last = json_object_new_object();
    return s;
}

void scenmgr_destroy(struct scenmgr *s)
{
    if (!s)
        return;
    OWNER_ASSERT();
    if (s->running && s->cb) {
        json_object *r = make_result(false, s->target ? s->target->id : NULL, s->shared,
                                     s->failed_steps, "shutting down");
        s->cb(s->cb_ud, r);
        json_object_put(r);
    }
    end_plan(s);
    json_object_put(s->last);
    free(s);
}

void scenmgr_restore(struct scenmgr *s, json_object *stored)
{
    OWNER_ASSERT();
    if (!json_object_is_type(stored, json_type_object)) {
        json_object_put(stored);
        announce(s, true);
        return;
    }
    json_object_put(s->last);
    s->last = stored;
    const char *status = last_str(s, "status");
    const char *id = last_str(s, "scenario_id");
    if (status && strcmp(status, "switching") == 0) {
        char err[200];
        snprintf(err, sizeof(err),
                 "the switch to '%s' was interrupted: the bridge stopped during it", id ? id : "?");
        json_object_object_add(s->last, "status", json_object_new_string("failed"));
        json_object_object_add(s->last, "error", json_object_new_string(err));
        log_warn("scenario: %s", err);
        persist(s);
    } else {
        announce(s, true);
    }
    log_info("scenario: restored %s (status %s); no command sent", id ? id : "none",
             last_str(s, "status") ? last_str(s, "status") : "?");
}

wb_status scenmgr_set_config(struct scenmgr *s, const struct config *cfg)
{
    OWNER_ASSERT();
    if (s->running)
        return WB_ERR_BUSY;
    s->cfg = cfg;
    return WB_OK;
}

static wb_status start_plan(struct scenmgr *s, const struct cfg_scenario *target,
                            const struct cfg_scenario *outgoing, bool shutting_down,
                            scenmgr_done_cb cb, void *ud)
{
    size_t n = (target ? target->n_startup : 0) + (outgoing ? outgoing->n_shutdown : 0);
    s->plan = calloc(n ? n : 1, sizeof(*s->plan));
    s->failed_steps = json_object_new_array();
    s->shared = json_object_new_array();
    if (!s->plan || !s->failed_steps || !s->shared) {
        end_plan(s);
        return WB_ERR_NOMEM;
    }
    s->running = true;
    s->shutting_down = shutting_down;
    s->cb = cb;
    s->cb_ud = ud;
    s->next_at = 0;
    if (shutting_down) {
        s->target = outgoing;
        add_steps(s, outgoing->shutdown, outgoing->n_shutdown, "shutdown", NULL);
    } else {
        s->target = target;
        if (outgoing) {
            for (size_t i = 0; i < outgoing->n_devices; i++)
                if (in_list(target->devices, target->n_devices, outgoing->devices[i]))
                    json_object_array_add(s->shared, json_object_new_string(outgoing->devices[i]));
            add_steps(s, outgoing->shutdown, outgoing->n_shutdown, "shutdown", target);
        }
        add_steps(s, target->startup, target->n_startup, "startup", NULL);
        set_last(s, target->id, "switching", NULL, true);
        persist(s);
    }
    log_info("scenario: %s %s (%zu steps)", shutting_down ? "shutting down" : "switching to",
             s->target ? s->target->id : "none", s->n_plan);
    run(s, util_mono_ms());
    return WB_OK;
}

wb_status scenmgr_switch(struct scenmgr *s, const char *id, scenmgr_done_cb cb, void *ud)
{
    OWNER_ASSERT();
    if (s->running)
        return WB_ERR_BUSY;
    const struct cfg_scenario *target = cfg_find_scenario(s->cfg, id);
    if (!target)
        return WB_ERR_NOT_FOUND;
    const struct cfg_scenario *outgoing = active_scenario(s);
    const char *status = last_str(s, "status");
    if (outgoing == target && status && strcmp(status, "active") == 0) {
        log_info("scenario %s is already active: nothing to do", id);
        json_object *r = make_result(true, id, NULL, NULL, NULL);
        if (cb)
            cb(ud, r);
        json_object_put(r);
        return WB_OK;
    }
    return start_plan(s, target, outgoing == target ? NULL : outgoing, false, cb, ud);
}

wb_status scenmgr_shutdown(struct scenmgr *s, scenmgr_done_cb cb, void *ud)
{
    OWNER_ASSERT();
    if (s->running)
        return WB_ERR_BUSY;
    const struct cfg_scenario *active = active_scenario(s);
    if (!active) {
        const char *status = last_str(s, "status");
        if (status && strcmp(status, "off") != 0) {
            /* The scenario of scenario:last left the config: just record off. */
            set_last(s, NULL, "off", NULL, false);
            persist(s);
        }
        json_object *r = make_result(true, NULL, NULL, NULL, NULL);
        if (cb)
            cb(ud, r);
        json_object_put(r);
        return WB_OK;
    }
    return start_plan(s, NULL, active, true, cb, ud);
}

int64_t scenmgr_tick(struct scenmgr *s, int64_t now_ms)
{
    OWNER_ASSERT();
    if (!s->running)
        return INT64_MAX;
    run(s, now_ms);
    return s->running ? s->next_at : INT64_MAX;
}

bool scenmgr_busy(const struct scenmgr *s)
{
    OWNER_ASSERT();
    return s->running;
}

json_object *scenmgr_state(const struct scenmgr *s)
{
    OWNER_ASSERT();
    return s->last;
}

const char *scenmgr_control_value(const struct scenmgr *s)
{
    OWNER_ASSERT();
    const char *id = last_str(s, "scenario_id");
    const char *status = last_str(s, "status");
    return id && status && strcmp(status, "off") != 0 ? id : "none";
}

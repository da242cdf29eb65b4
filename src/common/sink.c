/*
 * sink.c - the set of registered sinks and the fan-out of events (see
 * sink.h). Nothing here allocates: an event is passed by pointer to each
 * sink in turn.
 */
#include "wbmb/sink.h"

wb_status sinks_add(struct sinks *set, struct sink *s)
{
    if (!s)
        return WB_ERR_INVALID;
    if (set->n == SINKS_MAX)
        return WB_ERR_RANGE;
    set->s[set->n++] = s;
    return WB_OK;
}

void sinks_destroy(struct sinks *set)
{
    while (set->n > 0) {
        struct sink *s = set->s[--set->n];
        if (s->ops->destroy)
            s->ops->destroy(s);
    }
}

void sinks_emit(const struct sinks *set, const struct event *ev)
{
    for (size_t i = 0; set && i < set->n; i++)
        set->s[i]->ops->event(set->s[i], ev, &set->view);
}

int64_t sinks_tick(const struct sinks *set, int64_t now_ms, bool light)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; set && i < set->n; i++) {
        if (!set->s[i]->ops->tick)
            continue;
        int64_t t = set->s[i]->ops->tick(set->s[i], &set->view, now_ms, light);
        if (t < next)
            next = t;
    }
    return next;
}

enum sink_input sinks_input(const struct sinks *set, const char *topic, const char *payload,
                            size_t len, bool retained, struct sink_command *cmd)
{
    for (size_t i = 0; set && i < set->n; i++) {
        if (!set->s[i]->ops->input)
            continue;
        enum sink_input r = set->s[i]->ops->input(set->s[i], topic, payload, len, retained, cmd);
        if (r != SINK_IN_NONE)
            return r;
    }
    return SINK_IN_NONE;
}

void sinks_expect_echo(const struct sinks *set, const char *topic, const char *payload, size_t len)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (set->s[i]->ops->expect_echo)
            set->s[i]->ops->expect_echo(set->s[i], topic, payload, len);
}

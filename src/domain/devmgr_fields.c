/*
 * devmgr_fields.c - a JSON state message applied field by field (see
 * devmgr_int.h), and the warnings about bad fields.
 *
 * A message is never refused for one field. Each field is one of:
 *   - good: applied, stored, served, handed to the sinks (a sink may still
 *     leave out a name its protocol cannot carry: mirror/wb.c warns about
 *     those itself);
 *   - rejected: a name longer than DEV_FIELD_NAME_MAX, a value holding NaN,
 *     Infinity or a number beyond double range, or a new field past
 *     DEV_MAX_FIELDS: counted in stats.fields_rejected and warned once.
 * Warnings are keyed by (device, field) in a small hash set, so a device
 * that repeats a bad field every second logs it once; past
 * FIELD_WARN_SET_MAX keys, and at most FIELD_WARN_PER_S lines a second, the
 * rest are counted and summed up in the next line.
 */
#include "domain/devmgr_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/payload.h"
#include "wbmb/topic_gate.h"

/* 64-bit FNV-1a of the device index and the name; never 0. */
static uint64_t warn_key(const struct devmgr *m, const struct dev *d, const char *name)
{
    uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)(d - m->devs);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return h ? h : 1;
}

/* true when (d, name) was warned about already; else remembers it. */
static bool warned_before(struct devmgr *m, uint64_t key)
{
    if (2 * (m->n_warned + 1) > m->warned_mask + 1) {
        size_t cap = m->warned ? 2 * (m->warned_mask + 1) : 64;
        if (cap > 2 * FIELD_WARN_SET_MAX)
            return false; /* full: the rate limit alone bounds the log */
        uint64_t *t = calloc(cap, sizeof(*t));
        if (!t)
            return false;
        for (size_t i = 0; m->warned && i <= m->warned_mask; i++) {
            if (!m->warned[i])
                continue;
            size_t h = (size_t)m->warned[i] & (cap - 1);
            while (t[h])
                h = (h + 1) & (cap - 1);
            t[h] = m->warned[i];
        }
        free(m->warned);
        m->warned = t;
        m->warned_mask = cap - 1;
    }
    size_t h = (size_t)key & m->warned_mask;
    for (; m->warned[h]; h = (h + 1) & m->warned_mask)
        if (m->warned[h] == key)
            return true;
    m->warned[h] = key;
    m->n_warned++;
    return false;
}

void dm_warn_field(struct devmgr *m, const struct dev *d, const char *name, const char *why)
{
    if (warned_before(m, warn_key(m, d, name)))
        return;
    int64_t now = util_mono_ms();
    if (now - m->warn_window_ms >= 1000) {
        m->warn_window_ms = now;
        m->warn_in_window = 0;
    }
    if (m->warn_in_window >= FIELD_WARN_PER_S) {
        m->warn_held++;
        return;
    }
    m->warn_in_window++;
    char ex[72];
    tgate_excerpt(name, strlen(name), ex, sizeof(ex));
    if (m->warn_held)
        log_warn("device %s: field '%s' %s (and %llu more field warnings held back)", d->cfg->id,
                 ex, why, (unsigned long long)m->warn_held);
    else
        log_warn("device %s: field '%s' %s", d->cfg->id, ex, why);
    m->warn_held = 0;
}

void dm_warn_free(struct devmgr *m)
{
    free(m->warned);
    m->warned = NULL;
    m->warned_mask = m->n_warned = 0;
}

/* The reason field k = v of a message is rejected, or NULL when it is good. */
static const char *field_fault(const char *k, json_object *v, char *why, size_t cap)
{
    if (strlen(k) > DEV_FIELD_NAME_MAX) {
        snprintf(why, cap, "rejected: its name is longer than %d bytes", DEV_FIELD_NAME_MAX);
        return why;
    }
    char err[96];
    if (payload_value_check(v, err, sizeof(err)) != WB_OK) {
        snprintf(why, cap, "rejected: its value holds %s", err);
        return why;
    }
    return NULL;
}

size_t dm_fields_from_message(struct devmgr *m, struct dev *d, const struct cfg_state_binding *b,
                              json_object *msg, json_object *changes)
{
    /* Mapped straight into changes (no second object per message: this is
     * the hot path of every JSON device); the rare bad fields are counted,
     * then taken out in batches (deleting a key while walking the object
     * is not allowed, and a key's text dies with it). */
    payload_map_fields(b, msg, changes);
    size_t rejected = 0;
    char why[128];
    json_object_object_foreach(changes, k, v)
    {
        if (field_fault(k, v, why, sizeof(why))) {
            rejected++;
            m->stats.fields_rejected++;
            dm_warn_field(m, d, k, why);
        }
    }
    for (size_t left = rejected; left;) {
        char *batch[16];
        size_t n = 0;
        json_object_object_foreach(changes, k2, v2)
        {
            if (n < 16 && field_fault(k2, v2, why, sizeof(why)))
                batch[n++] = k2;
        }
        for (size_t i = 0; i < n; i++)
            json_object_object_del(changes, batch[i]);
        left = n == 16 ? left - n : 0;
    }
    return rejected;
}

/*
 * devmgr_mirror.c - the device manager's Wiren Board mirror (see
 * devmgr_int.h): control metas, bridge.mirror_min_interval_ms, backpressure
 * from the sender's queue, and the republish after a connect.
 */
#include "domain/devmgr_int.h"

#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"

static bool throttle(struct devmgr *m, struct dev *d, size_t i);

static const char *const ctl_name[] = {"text", "switch", "value", "text"};

/* The order of field fi's control: its place among d's mirrored fields. */
static int control_order(const struct dev *d, size_t fi)
{
    int order = 0;
    for (size_t i = 0; i <= fi; i++)
        order += d->f[i].mirrored;
    return order;
}

static void publish_meta(struct devmgr *m, struct dev *d, size_t fi, int order)
{
    struct field *f = &d->f[fi];
    enum ctl_type t = dm_control_type(f);
    if (mirror_control_meta(&m->pub, d->cfg->id, f->name, ctl_name[t], true, order, NULL) == WB_OK)
        f->meta_type = t & 3u;
}

/* Publishes the control meta of every field of d's state that has none yet
 * (the ones past meta_count, in insertion order), then field's value. A new
 * field is always in the state before it is published, so this costs one
 * length comparison per message and a walk only when fields were added.
 *
 * A field that is not a control name is not mirrored (devmgr_fields.c). A
 * null value is never published (an empty retained payload would delete
 * the control's value on the broker while its meta stays): the control
 * keeps its last value and its meta/error says "r" until a value comes,
 * which clears it. When the value's type changes the control's meta is
 * published again with the new type, unless a plain binding declares it. */
void dm_publish_field(struct devmgr *m, struct dev *d, size_t fi)
{
    if (!d->cfg->wb_mirror)
        return;
    for (; d->meta_count < d->n_f; d->meta_count++) {
        if (d->f[d->meta_count].mirrored)
            publish_meta(m, d, d->meta_count, ++d->next_order);
    }
    struct field *f = &d->f[fi];
    if (!f->mirrored)
        return;
    if (!f->v) {
        if (mirror_control_error(&m->pub, d->cfg->id, f->name, "r") == WB_OK)
            f->err_shown = true;
        if (fi < MIRROR_THROTTLED)
            d->held &= ~((uint64_t)1 << fi); /* an older held value must not go out */
        return;
    }
    if (dm_control_type(f) != f->meta_type)
        publish_meta(m, d, fi, control_order(d, fi));
    if (f->err_shown && mirror_control_error(&m->pub, d->cfg->id, f->name, "") == WB_OK)
        f->err_shown = false;
    if (!throttle(m, d, fi))
        mirror_control_value(&m->pub, d->cfg->id, f->name, f->v);
}

/* The publication times of d's throttled controls (n_pub of them). */
static uint32_t *pub_ms(struct dev *d)
{
    return d->n_pub > PUB_INLINE ? d->pub.heap : d->pub.in_place;
}

/* The devmgr's clock for pub_ms: milliseconds, wrapping, never 0. */
static uint32_t clock32(int64_t now_ms)
{
    uint32_t t = (uint32_t)now_ms;
    return t ? t : 1;
}

/* Backpressure: the sender's queue is long (the broker or the link is
 * slower than the changes). Held values cost nothing: they are the state. */
static bool mirror_busy(const struct devmgr *m)
{
    return m->pub.backlog && m->pub.backlog(m->pub.ud) > MIRROR_BACKLOG_MAX;
}

/* The interval in force at now_ms: the configured one, stretched while the
 * mirror publishes more than MIRROR_RATE_HIGH values a second (see
 * mirror_rate.h). */
static unsigned mirror_interval(struct devmgr *m, int64_t now_ms)
{
    unsigned base = m->cfg->mirror_min_interval_ms;
    uint32_t count = m->mrate.count;
    bool quiet = now_ms - m->mrate.win_start_ms >= 2 * MIRROR_RATE_WINDOW_MS;
    if (mirror_rate_roll(&m->mrate, now_ms, base)) {
        if (quiet)
            log_info("mirror: quiet again; interval back to %u ms", base);
        else
            log_info("mirror: %u value publications in the last second; interval now %u ms", count,
                     mirror_rate_interval(&m->mrate, base));
    }
    return mirror_rate_interval(&m->mrate, base);
}

/* bridge.mirror_min_interval_ms: true when field's value must wait (it is
 * then marked held and d queued for devmgr_flush_mirror()); false when it
 * goes out now (its time is recorded). A fast-changing control costs the
 * broker at most one publication per interval; its last value is never
 * lost. */
static bool throttle(struct devmgr *m, struct dev *d, size_t i)
{
    if (!m->cfg->mirror_min_interval_ms || i >= MIRROR_THROTTLED)
        return false;
    if (i >= d->n_pub && i < PUB_INLINE) {
        memset(d->pub.in_place, 0, sizeof(d->pub.in_place));
        d->n_pub = PUB_INLINE;
    } else if (i >= d->n_pub) {
        size_t nn = 2 * (i + 1);
        if (nn > MIRROR_THROTTLED)
            nn = MIRROR_THROTTLED;
        uint32_t *g = calloc(nn, sizeof(*g));
        if (!g)
            return false;
        memcpy(g, pub_ms(d), d->n_pub * sizeof(*g));
        if (d->n_pub > PUB_INLINE)
            free(d->pub.heap);
        d->pub.heap = g;
        d->n_pub = (uint16_t)nn;
    }
    uint32_t *pms = pub_ms(d);
    int64_t now = util_mono_ms();
    unsigned interval = mirror_interval(m, now);
    uint32_t t = clock32(now);
    int32_t age = (int32_t)(t - pms[i]); /* < 0 only after ~25 days: held once */
    bool busy = mirror_busy(m);
    if ((pms[i] && age < (int32_t)interval) || busy) {
        d->held |= (uint64_t)1 << i;
        int64_t due =
            busy ? now + MIRROR_BUSY_RETRY_MS : now + (int64_t)interval - (age > 0 ? age : 0);
        if (due < m->next_scan_ms)
            m->next_scan_ms = due;
        if (!d->mirror_dirty) {
            d->mirror_dirty = true;
            m->dirty[m->n_dirty++] = (uint32_t)(d - m->devs);
        }
        return true;
    }
    pms[i] = t;
    d->held &= ~((uint64_t)1 << i);
    mirror_rate_note(&m->mrate, now);
    return false;
}

int64_t devmgr_flush_mirror(struct devmgr *m, int64_t now_ms)
{
    if (now_ms < m->next_scan_ms)
        return m->next_scan_ms;
    bool final = now_ms == INT64_MAX; /* shutdown: everything goes out */
    int64_t next = INT64_MAX;
    int64_t interval = final ? m->cfg->mirror_min_interval_ms : mirror_interval(m, now_ms);
    uint32_t t = clock32(now_ms);
    /* Under backpressure nothing goes out (and a flush stops as soon as the
     * queue is long again): the values stay held, looked at again soon. */
    bool busy = !final && mirror_busy(m);
    unsigned sent = 0;
    for (size_t j = 0; j < m->n_dirty && !busy;) {
        struct dev *d = &m->devs[m->dirty[j]];
        for (size_t i = 0; i < d->n_pub && i < d->n_f; i++) { /* n_pub <= MIRROR_THROTTLED */
            uint64_t bit = (uint64_t)1 << i;
            if (!(d->held & bit))
                continue;
            int32_t age = (int32_t)(t - pub_ms(d)[i]);
            if (!final && age < (int32_t)interval) {
                int64_t due = now_ms + (int64_t)interval - (age > 0 ? age : 0);
                if (due < next)
                    next = due;
            } else if (!busy) {
                d->held &= ~bit;
                if (!d->f[i].v)
                    continue; /* null: never a value payload (dm_publish_field) */
                pub_ms(d)[i] = t;
                mirror_control_value(&m->pub, d->cfg->id, d->f[i].name, d->f[i].v);
                if (!final)
                    mirror_rate_note(&m->mrate, now_ms);
                if (!final && ++sent % MIRROR_FLUSH_CHECK == 0)
                    busy = mirror_busy(m);
            }
        }
        if (d->held) {
            j++;
        } else {
            d->mirror_dirty = false;
            m->dirty[j] = m->dirty[--m->n_dirty];
        }
    }
    if (busy && m->n_dirty)
        next = now_ms + MIRROR_BUSY_RETRY_MS;
    /* One scan per interval/8 at most: with a thousand controls waiting,
     * each due at its own millisecond, scanning on every due time would
     * cost a pass over the list per message. A held value goes out at most
     * interval/8 late. */
    else if (next != INT64_MAX) { /* not at shutdown: now_ms + a step cannot overflow */
        int64_t soonest = now_ms + (interval / 8 > 0 ? interval / 8 : 1);
        if (next < soonest)
            next = soonest;
    }
    m->next_scan_ms = next;
    return next;
}

/* Every retained topic of one mirrored device, from its current state. */
static void publish_device(struct devmgr *m, struct dev *d)
{
    mirror_device_meta(&m->pub, d->cfg->id, d->cfg->name);
    mirror_device_error(&m->pub, d->cfg->id, "");
    d->meta_count = 0;
    d->next_order = 0;
    d->held = 0; /* every value goes out now */
    if (d->n_pub)
        memset(pub_ms(d), 0, d->n_pub * sizeof(uint32_t));
    for (size_t i = 0; i < d->n_f; i++)
        dm_publish_field(m, d, i);
    /* One pushbutton per action: writing its /on runs the action. */
    for (size_t a = 0; a < d->cfg->n_actions; a++) {
        const struct cfg_action *act = &d->cfg->actions[a];
        if (!mirror_field_name_ok(act->name))
            continue;
        mirror_control_meta(&m->pub, d->cfg->id, act->name, "pushbutton", false, 1000 + (int)a,
                            NULL);
    }
}

bool devmgr_publish_some(struct devmgr *m, size_t *next, size_t max_devices)
{
    size_t done = 0;
    /* Unmirrored devices are skipped even past the budget, so a round whose
     * last mirrored device was just published reports itself complete. */
    for (; *next < m->n_devs; (*next)++) {
        struct dev *d = &m->devs[*next];
        if (!d->cfg->wb_mirror)
            continue;
        if (done == max_devices)
            break;
        publish_device(m, d);
        done++;
    }
    return *next >= m->n_devs;
}

void devmgr_publish_all(struct devmgr *m)
{
    size_t next = 0;
    while (!devmgr_publish_some(m, &next, SIZE_MAX))
        ;
}

void devmgr_publish_offline(struct devmgr *m)
{
    for (size_t i = 0; i < m->n_devs; i++)
        if (m->devs[i].cfg->wb_mirror)
            mirror_device_error(&m->pub, m->devs[i].cfg->id, "offline");
}

/*
 * wb_throttle.c - one field of a mirrored device on its way out (see
 * wb_int.h): its control meta (type, order), its value under
 * bridge.mirror_min_interval_ms and backpressure from the sender's queue,
 * nulls as meta/error "r", the held values' flush, and a device's full
 * republish.
 */
#include "mirror/wb_int.h"

#include <stdlib.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/topic_gate.h"
#include "wbmb/util.h"

static bool throttle(struct wb *w, struct wdev *d, size_t i);

uint8_t *wb_fb(struct wdev *d)
{
    return d->cap_fb > FB_INLINE ? d->fb.heap : d->fb.in_place;
}

static enum ctl_type fb_declared(uint8_t b)
{
    return (enum ctl_type)((b >> FB_DECL_SHIFT) & 3u);
}

static enum ctl_type fb_meta(uint8_t b)
{
    return (enum ctl_type)((b >> FB_META_SHIFT) & 3u);
}

/* The declared control type of field name (a plain binding's type), or CTL_NONE. */
static enum ctl_type declared_type(const struct cfg_device *c, const char *name)
{
    for (size_t i = 0; i < c->n_state; i++) {
        const struct cfg_state_binding *b = &c->state[i];
        if (b->type == CFG_T_JSON || !b->field || strcmp(b->field, name) != 0)
            continue;
        switch (b->type) {
        case CFG_T_BOOL:
            return CTL_SWITCH;
        case CFG_T_INT:
        case CFG_T_FLOAT:
            return CTL_VALUE;
        default:
            return CTL_TEXT;
        }
    }
    return CTL_NONE;
}

/* The control type shown for a field with bits b and value v. */
static enum ctl_type control_type(uint8_t b, json_object *v)
{
    if (fb_declared(b) != CTL_NONE)
        return fb_declared(b); /* the config wins */
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        return CTL_SWITCH;
    case json_type_int:
    case json_type_double:
        return CTL_VALUE;
    case json_type_null: /* unknown: keeps what the control showed */
        return fb_meta(b) != CTL_NONE ? fb_meta(b) : CTL_TEXT;
    default:
        return CTL_TEXT;
    }
}

/* "device <id>: field '<name>' ... not mirrored", at most NAME_WARN_PER_S
 * lines a second (each field once: its bits are worked out once). */
static void warn_name(struct wb *w, const struct sink_device *sd, const char *name)
{
    int64_t now = util_mono_ms();
    if (now - w->warn_window_ms >= 1000) {
        w->warn_window_ms = now;
        w->warn_in_window = 0;
    }
    if (w->warn_in_window++ >= NAME_WARN_PER_S)
        return;
    char ex[72];
    tgate_excerpt(name, strlen(name), ex, sizeof(ex));
    log_warn("device %s: field '%s' is applied, stored and served over HTTP but not mirrored: its "
             "name cannot be a Wiren Board control (an MQTT topic level of at most 128 bytes)",
             sd->cfg->id, ex);
}

bool wb_fields_known(struct wb *w, struct wdev *d, const struct sink_device *sd)
{
    if (d->n_fb >= sd->n_f)
        return true;
    if (sd->n_f > FB_INLINE && sd->n_f > d->cap_fb) {
        size_t nc = d->cap_fb > FB_INLINE ? d->cap_fb : FB_INLINE;
        while (nc < sd->n_f)
            nc *= 2;
        uint8_t *g = calloc(nc, 1);
        if (!g)
            return false;
        memcpy(g, wb_fb(d), d->n_fb);
        if (d->cap_fb > FB_INLINE)
            free(d->fb.heap);
        d->fb.heap = g;
        d->cap_fb = (uint16_t)nc;
    }
    uint8_t *fb = wb_fb(d);
    if (sd->cfg->wb_mirror)
        w->mem_dirty = true; /* a control more to remember */
    for (; d->n_fb < sd->n_f; d->n_fb++) {
        const char *name = sd->f[d->n_fb].name;
        bool ok = mirror_field_name_ok(name);
        enum ctl_type t = declared_type(sd->cfg, name);
        /* A type fixed by wb.type or by on/off actions: the meta is never
         * published again for a value of another type. */
        const struct cfg_field_spec *spec = t == CTL_NONE ? cfg_field_spec(sd->cfg, name) : NULL;
        if (t == CTL_NONE &&
            ((spec && spec->wb && spec->wb->type) || wb_field_switch(sd->cfg, name, NULL, NULL)))
            t = CTL_TEXT;
        fb[d->n_fb] =
            (uint8_t)(FB_KNOWN | (ok ? FB_MIRRORED : 0u) | ((unsigned)t << FB_DECL_SHIFT));
        if (!ok && sd->cfg->wb_mirror)
            warn_name(w, sd, name);
    }
    return true;
}

void wb_dev_free(struct wdev *d)
{
    if (d->n_pub > PUB_INLINE)
        free(d->pub.heap);
    if (d->cap_fb > FB_INLINE)
        free(d->fb.heap);
    memset(d, 0, sizeof(*d));
}

/* The order of field fi's control: its place among the mirrored fields. */
static int control_order(struct wdev *d, size_t fi)
{
    int order = 0;
    const uint8_t *fb = wb_fb(d);
    for (size_t i = 0; i <= fi; i++)
        order += (fb[i] & FB_MIRRORED) != 0;
    return order;
}

static void publish_meta(struct wb *w, struct wdev *d, const struct sink_device *sd, size_t fi,
                         int order)
{
    uint8_t *b = &wb_fb(d)[fi];
    enum ctl_type t = control_type(*b, sd->f[fi].v);
    if (wb_field_meta(w, sd, fi, t, order) == WB_OK)
        *b = (uint8_t)((*b & ~(3u << FB_META_SHIFT)) | ((unsigned)t << FB_META_SHIFT));
}

/* Publishes the control meta of every field of the device's state that has
 * none yet (the ones past meta_count, in insertion order), then field fi's
 * value. A new field is always in the state before it is published, so this
 * costs one length comparison per message and a walk only when fields were
 * added.
 *
 * A field that is not a control name is not mirrored (warned once). A null
 * value is never published (an empty retained payload would delete the
 * control's value on the broker while its meta stays): the control keeps
 * its last value and its meta/error says "r" until a value comes, which
 * clears it. When the value's type changes the control's meta is published
 * again with the new type, unless a plain binding declares it. */
void wb_publish_field(struct wb *w, struct wdev *d, const struct sink_device *sd, size_t fi)
{
    if (!sd->cfg->wb_mirror || !wb_fields_known(w, d, sd))
        return;
    uint8_t *fb = wb_fb(d);
    for (; d->meta_count < sd->n_f; d->meta_count++) {
        if (fb[d->meta_count] & FB_MIRRORED)
            publish_meta(w, d, sd, d->meta_count, ++d->next_order);
    }
    const struct dev_field *f = &sd->f[fi];
    if (!(fb[fi] & FB_MIRRORED))
        return;
    /* "r": the value is null, or the device is offline (its last value
     * stays, shown as stale). */
    bool r = !f->v || d->offline;
    if (r != ((fb[fi] & FB_ERR_SHOWN) != 0) &&
        wb_control_error(w, sd->cfg->id, f->name, r) == WB_OK)
        fb[fi] = (uint8_t)(r ? fb[fi] | FB_ERR_SHOWN : fb[fi] & ~FB_ERR_SHOWN);
    if (!f->v) {
        if (fi < MIRROR_THROTTLED)
            d->held &= ~((uint64_t)1 << fi); /* an older held value must not go out */
        return;
    }
    if (control_type(fb[fi], f->v) != fb_meta(fb[fi]))
        publish_meta(w, d, sd, fi, control_order(d, fi));
    if (!throttle(w, d, fi)) {
        mirror_control_value(&w->pub, sd->cfg->id, f->name, f->v);
        if (sd->cfg->n_actions)
            wb_publish_followers(w, sd, fi);
    }
}

/* The publication times of d's throttled controls (n_pub of them). */
static uint32_t *pub_ms(struct wdev *d)
{
    return d->n_pub > PUB_INLINE ? d->pub.heap : d->pub.in_place;
}

/* The mirror's clock for pub_ms: milliseconds, wrapping, never 0. */
static uint32_t clock32(int64_t now_ms)
{
    uint32_t t = (uint32_t)now_ms;
    return t ? t : 1;
}

/* Backpressure: the sender's queue is long (the broker or the link is
 * slower than the changes). Held values cost nothing: they are the state. */
static bool mirror_busy(const struct wb *w)
{
    return w->pub.backlog && w->pub.backlog(w->pub.ud) > MIRROR_BACKLOG_MAX;
}

/* The interval in force at now_ms: the configured one, stretched while the
 * mirror publishes more than MIRROR_RATE_HIGH values a second (see
 * mirror_rate.h). */
static unsigned mirror_interval(struct wb *w, int64_t now_ms)
{
    unsigned base = w->cfg->mirror_min_interval_ms;
    uint32_t count = w->mrate.count;
    bool quiet = now_ms - w->mrate.win_start_ms >= 2 * MIRROR_RATE_WINDOW_MS;
    if (mirror_rate_roll(&w->mrate, now_ms, base)) {
        if (quiet)
            log_info("mirror: quiet again; interval back to %u ms", base);
        else
            log_info("mirror: %u value publications in the last second; interval now %u ms", count,
                     mirror_rate_interval(&w->mrate, base));
    }
    return mirror_rate_interval(&w->mrate, base);
}

/* bridge.mirror_min_interval_ms: true when field's value must wait (it is
 * then marked held and d queued for wb_flush()); false when it
 * goes out now (its time is recorded). A fast-changing control costs the
 * broker at most one publication per interval; its last value is never
 * lost. */
static bool throttle(struct wb *w, struct wdev *d, size_t i)
{
    if (!w->cfg->mirror_min_interval_ms || i >= MIRROR_THROTTLED)
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
    unsigned interval = mirror_interval(w, now);
    uint32_t t = clock32(now);
    int32_t age = (int32_t)(t - pms[i]); /* < 0 only after ~25 days: held once */
    bool busy = mirror_busy(w);
    if ((pms[i] && age < (int32_t)interval) || busy) {
        d->held |= (uint64_t)1 << i;
        int64_t due =
            busy ? now + MIRROR_BUSY_RETRY_MS : now + (int64_t)interval - (age > 0 ? age : 0);
        if (due < w->next_scan_ms)
            w->next_scan_ms = due;
        if (!d->dirty) {
            d->dirty = true;
            w->dirty[w->n_dirty++] = (uint32_t)(d - w->devs);
        }
        return true;
    }
    pms[i] = t;
    d->held &= ~((uint64_t)1 << i);
    mirror_rate_note(&w->mrate, now);
    return false;
}

int64_t wb_flush(struct wb *w, const struct sink_view *view, int64_t now_ms)
{
    if (now_ms < w->next_scan_ms)
        return w->next_scan_ms;
    bool final = now_ms == INT64_MAX; /* shutdown: everything goes out */
    int64_t next = INT64_MAX;
    int64_t interval = final ? w->cfg->mirror_min_interval_ms : mirror_interval(w, now_ms);
    uint32_t t = clock32(now_ms);
    /* Under backpressure nothing goes out (and a flush stops as soon as the
     * queue is long again): the values stay held, looked at again soon. */
    bool busy = !final && mirror_busy(w);
    unsigned sent = 0;
    for (size_t j = 0; j < w->n_dirty && !busy;) {
        struct wdev *d = &w->devs[w->dirty[j]];
        struct sink_device sd;
        if (!view->device(view->ud, w->dirty[j], &sd))
            d->held = 0; /* cannot happen: the table follows the view */
        for (size_t i = 0; d->held && i < d->n_pub && i < sd.n_f; i++) { /* n_pub <= 64 */
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
                if (!sd.f[i].v)
                    continue; /* null: never a value payload (wb_publish_field) */
                pub_ms(d)[i] = t;
                mirror_control_value(&w->pub, sd.cfg->id, sd.f[i].name, sd.f[i].v);
                if (sd.cfg->n_actions)
                    wb_publish_followers(w, &sd, i);
                if (!final)
                    mirror_rate_note(&w->mrate, now_ms);
                if (!final && ++sent % MIRROR_FLUSH_CHECK == 0)
                    busy = mirror_busy(w);
            }
        }
        if (d->held) {
            j++;
        } else {
            d->dirty = false;
            w->dirty[j] = w->dirty[--w->n_dirty];
        }
    }
    if (busy && w->n_dirty)
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
    w->next_scan_ms = next;
    return next;
}

void wb_publish_device(struct wb *w, struct wdev *d, const struct sink_device *sd)
{
    mirror_device_meta(&w->pub, sd->cfg->id, sd->cfg->name, w->cfg->wb_legacy_meta);
    mirror_device_error(&w->pub, sd->cfg->id, "");
    d->meta_count = 0;
    d->next_order = 0;
    d->held = 0; /* every value goes out now */
    if (d->n_pub)
        memset(pub_ms(d), 0, d->n_pub * sizeof(uint32_t));
    /* Every "r" goes out again (the broker may have lost it), and every
     * "w" of a switch. */
    if (!wb_fields_known(w, d, sd))
        return;
    uint8_t *fb = wb_fb(d);
    for (size_t i = 0; i < d->n_fb; i++)
        fb[i] &= (uint8_t)~FB_ERR_SHOWN;
    for (size_t i = 0; i < sd->n_f; i++) {
        wb_publish_field(w, d, sd, i);
        if (sd->cfg->n_actions && (fb[i] & FB_MIRRORED) && !(fb[i] & FB_ERR_SHOWN) &&
            wb_write_error(w, sd->cfg->id, sd->f[i].name))
            wb_control_error(w, sd->cfg->id, sd->f[i].name, false);
    }
    /* One control per action (wb_controls.c): a pushbutton, or a writable
     * switch, range, value or text for its one param. */
    for (size_t a = 0; a < sd->cfg->n_actions; a++)
        wb_publish_action(w, d, sd, &sd->cfg->actions[a], 1000 + (int)a);
}

/*
 * mirror_rate.h - the mirror's publication rate, and the interval it
 * stretches to under a flood (internal to src/mirror/).
 *
 * bridge.mirror_min_interval_ms bounds each control; this bounds the sum. A
 * mirror publication costs the bridge about as much CPU as an incoming
 * message (paho's send thread, a write to the broker) and the broker as much
 * again, so a thousand controls changing at full speed would spend a third
 * of the bridge's CPU on the Wiren Board UI, which cannot show them anyway.
 * Counted per second: after a second with more than MIRROR_RATE_HIGH value
 * publications the interval doubles, after one with fewer than a quarter of
 * that it halves, back to the configured value; it never stretches beyond
 * MIRROR_STRETCH_CAP_MS (nor below the configured value, nor at all when
 * that is 0: every change was asked for).
 *
 * Not thread-safe: the core calls the mirror sink one event at a time.
 */
#ifndef WBMB_MIRROR_MIRROR_RATE_H
#define WBMB_MIRROR_MIRROR_RATE_H

#include <stdbool.h>
#include <stdint.h>

#define MIRROR_RATE_HIGH 1000u      /* value publications per second */
#define MIRROR_STRETCH_CAP_MS 1000u /* the longest stretched interval */
#define MIRROR_RATE_WINDOW_MS 1000

struct mirror_rate {
    int64_t win_start_ms; /* 0 before the first publication */
    uint32_t count;       /* publications since win_start_ms */
    uint32_t stretch;     /* 1, 2, 4, ...: the configured interval's multiple */
};

static inline unsigned mirror_rate_interval(const struct mirror_rate *r, unsigned base);

/* Ends the window when a second has passed and adapts the stretch of base;
 * true when it changed. A gap of two windows without a publication resets
 * it. */
static inline bool mirror_rate_roll(struct mirror_rate *r, int64_t now_ms, unsigned base)
{
    if (r->stretch == 0)
        r->stretch = 1;
    if (r->win_start_ms == 0 || now_ms - r->win_start_ms < MIRROR_RATE_WINDOW_MS)
        return false;
    uint32_t before = r->stretch;
    if (now_ms - r->win_start_ms >= 2 * MIRROR_RATE_WINDOW_MS)
        r->stretch = 1;
    else if (r->count > MIRROR_RATE_HIGH && mirror_rate_interval(r, base) < MIRROR_STRETCH_CAP_MS)
        r->stretch *= 2;
    else if (r->count < MIRROR_RATE_HIGH / 4 && r->stretch > 1)
        r->stretch /= 2;
    r->win_start_ms = now_ms;
    r->count = 0;
    return r->stretch != before;
}

/* Counts one value publication at now_ms. */
static inline void mirror_rate_note(struct mirror_rate *r, int64_t now_ms)
{
    if (r->win_start_ms == 0)
        r->win_start_ms = now_ms ? now_ms : 1;
    r->count++;
}

/* The interval in force: base stretched, capped (see the top). */
static inline unsigned mirror_rate_interval(const struct mirror_rate *r, unsigned base)
{
    if (base == 0 || base >= MIRROR_STRETCH_CAP_MS || r->stretch <= 1)
        return base;
    uint64_t s = (uint64_t)base * r->stretch;
    return s > MIRROR_STRETCH_CAP_MS ? MIRROR_STRETCH_CAP_MS : (unsigned)s;
}

#endif

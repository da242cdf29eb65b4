/*
 * topic_gate.c - the gate every outgoing MQTT topic passes (topic_gate.h).
 *
 * One scan of the bytes: ASCII is checked inline (the mirror's topics are
 * ASCII and short, so the gate costs a few ns per publication); a lead byte
 * of a multi-byte sequence is decoded and its code point checked. The only
 * state is the refusal counter and the log's rate limit, both atomics, so
 * any thread (the core, paho's, HTTP's) may call tgate_admit().
 */
#include "wbmb/topic_gate.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "wbmb/log.h"
#include "wbmb/util.h"

static atomic_uint_fast64_t refused_total;
static atomic_int_fast64_t last_log_ms;
static atomic_uint_fast64_t unlogged;

/* The code point of the valid UTF-8 sequence at s[0..len) in *cp and its
 * length, or 0 when the sequence is malformed, overlong, a surrogate or
 * beyond U+10FFFF. s[0] >= 0x80. */
static size_t decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, v = c & 0x1Fu, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, v = c & 0x0Fu, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, v = c & 0x07u, min = 0x10000;
    else
        return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

enum tgate_verdict tgate_check(const char *str, size_t len, enum tgate_kind kind)
{
    const unsigned char *s = (const unsigned char *)str;
    if (!s || len == 0)
        return TGATE_EMPTY;
    if (len > TGATE_MAX_LEN)
        return TGATE_TOO_LONG;
    size_t seps = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return TGATE_NUL;
            if (c < 0x20 || c == 0x7F)
                return TGATE_CONTROL;
            if (c == '/') {
                if (kind == TGATE_LEVEL)
                    return TGATE_SEPARATOR;
                if (++seps > TGATE_MAX_LEVELS)
                    return TGATE_TOO_DEEP;
            } else if (c == '+' || c == '#') {
                if (kind != TGATE_FILTER)
                    return TGATE_WILDCARD;
                /* A wildcard is a whole level; '#' only the last one. */
                bool starts = i == 0 || s[i - 1] == '/';
                bool ends = i + 1 == len || (c == '+' && s[i + 1] == '/');
                if (!starts || !ends)
                    return TGATE_WILDCARD;
            }
            i++;
            continue;
        }
        uint32_t cp = 0;
        size_t n = decode(s + i, len - i, &cp);
        if (!n)
            return TGATE_BAD_UTF8;
        if (cp >= 0x80 && cp <= 0x9F)
            return TGATE_CONTROL;
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
            return TGATE_NONCHAR;
        i += n;
    }
    return TGATE_OK;
}

const char *tgate_strerror(enum tgate_verdict v)
{
    static const char *const text[TGATE_VERDICT_COUNT_] = {
        [TGATE_OK] = "valid",
        [TGATE_EMPTY] = "empty",
        [TGATE_TOO_LONG] = "longer than 65535 bytes",
        [TGATE_BAD_UTF8] = "not valid UTF-8",
        [TGATE_NUL] = "a NUL character",
        [TGATE_CONTROL] = "a control character",
        [TGATE_NONCHAR] = "a Unicode non-character",
        [TGATE_WILDCARD] = "a misplaced + or #",
        [TGATE_SEPARATOR] = "a / in a single level",
        [TGATE_TOO_DEEP] = "more than 200 levels",
    };
    return (unsigned)v < TGATE_VERDICT_COUNT_ ? text[v] : "unknown";
}

void tgate_excerpt(const char *s, size_t len, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 4 < cap; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (j < len && j + 4 >= cap) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

enum tgate_verdict tgate_admit(const char *topic, enum tgate_kind kind)
{
    size_t len = topic ? strlen(topic) : 0;
    enum tgate_verdict v = tgate_check(topic, len, kind);
    if (v == TGATE_OK)
        return v;
    atomic_fetch_add(&refused_total, 1);
    int64_t now = util_mono_ms();
    int64_t last = atomic_load(&last_log_ms);
    if ((last && now - last < 1000) || !atomic_compare_exchange_strong(&last_log_ms, &last, now)) {
        atomic_fetch_add(&unlogged, 1);
        return v;
    }
    char ex[96];
    tgate_excerpt(topic ? topic : "", len, ex, sizeof(ex));
    uint64_t quiet = atomic_exchange(&unlogged, 0);
    log_warn("MQTT %s '%s' refused, not sent: it has %s (%llu more refused since the last such "
             "line)",
             kind == TGATE_FILTER ? "subscription" : "topic", ex, tgate_strerror(v),
             (unsigned long long)quiet);
    return v;
}

uint64_t tgate_refused(void)
{
    return atomic_load(&refused_total);
}

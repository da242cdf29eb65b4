/*
 * topic_gate.h - the one check every MQTT topic passes before it leaves
 * the bridge (a publication's topic name, a subscription's filter) and that
 * decides whether a state field's name can be a topic level.
 *
 * The rules are MQTT's for UTF-8 strings (3.1.1 §1.5.3, 5.0 §1.5.4) as
 * mosquitto 2 enforces them, since a broker disconnects a client that sends
 * a topic it refuses:
 *   - 1 to 65 535 bytes of well-formed UTF-8: no overlong form, no
 *     surrogate (U+D800..U+DFFF), nothing above U+10FFFF;
 *   - no U+0000, no control character (U+0001..U+001F, U+007F..U+009F),
 *     no non-character (U+FDD0..U+FDEF, U+nFFFE, U+nFFFF);
 *   - a topic name has no '+' or '#'; a filter has them only as a whole
 *     level ('#' only as the last one);
 *   - at most TGATE_MAX_LEVELS '/' separators (mosquitto's hierarchy limit:
 *     it drops the connection beyond it).
 * A level (TGATE_LEVEL) is one non-empty piece of a topic name: the rules
 * of a name plus no '/'.
 */
#ifndef WBMB_TOPIC_GATE_H
#define WBMB_TOPIC_GATE_H

#include <stddef.h>
#include <stdint.h>

#define TGATE_MAX_LEN 65535
#define TGATE_MAX_LEVELS 200 /* '/' separators; mosquitto's TOPIC_HIERARCHY_LIMIT */

enum tgate_kind {
    TGATE_NAME,   /* a topic a message is published to */
    TGATE_FILTER, /* a subscription filter */
    TGATE_LEVEL,  /* one level of a topic name (a control name) */
};

enum tgate_verdict {
    TGATE_OK = 0,
    TGATE_EMPTY,
    TGATE_TOO_LONG,
    TGATE_BAD_UTF8,  /* malformed, overlong, surrogate, > U+10FFFF */
    TGATE_NUL,       /* U+0000 */
    TGATE_CONTROL,   /* U+0001..U+001F, U+007F..U+009F */
    TGATE_NONCHAR,   /* U+FDD0..U+FDEF, U+nFFFE, U+nFFFF */
    TGATE_WILDCARD,  /* '+' or '#' where they are not allowed */
    TGATE_SEPARATOR, /* '/' in a level */
    TGATE_TOO_DEEP,  /* more than TGATE_MAX_LEVELS separators */
    TGATE_VERDICT_COUNT_
};

/* The verdict on s[0..len) used as kind. Pure: no logging, no counting. */
enum tgate_verdict tgate_check(const char *s, size_t len, enum tgate_kind kind);

/* A short fixed text for a verdict ("a control character", ...). */
const char *tgate_strerror(enum tgate_verdict v);

/* The gate itself, for what goes out: tgate_check() of a NUL-terminated
 * topic, and when it fails the refusal is counted (tgate_refused()) and
 * logged at warning level, at most one line per second (the next line
 * says how many were not logged). Thread-safe. Returns TGATE_OK or the
 * verdict; what is refused must not be sent. */
enum tgate_verdict tgate_admit(const char *topic, enum tgate_kind kind);

/* Topics refused by tgate_admit() since start (monotonic). */
uint64_t tgate_refused(void);

/* Writes a log-safe excerpt of s[0..len) into out (cap >= 8): printable
 * ASCII kept, every other byte as '?', at most cap - 4 bytes then "...". */
void tgate_excerpt(const char *s, size_t len, char *out, size_t cap);

#endif

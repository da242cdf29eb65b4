/*
 * util.h - small helpers shared by every module: time stamps, paths, files.
 */
#ifndef WBMB_UTIL_H
#define WBMB_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

/* ISO-8601 UTC with milliseconds, "2026-11-23T03:37:49.123Z"; buf >= 25 bytes. */
#define UTIL_TS_LEN 25
void util_iso8601_now(char buf[UTIL_TS_LEN]);
void util_iso8601_from_ms(int64_t unix_ms, char buf[UTIL_TS_LEN]);

/* Decimal text of v into buf, NUL-terminated; returns the length. On the
 * message path instead of snprintf("%lld"), which costs ~10x more. */
#define UTIL_I64_LEN 21
size_t util_format_i64(int64_t v, char buf[UTIL_I64_LEN]);

/* a, sep, b into out (cap bytes), truncated as snprintf would; returns the
 * length written. For keys like "device:<id>" and "<device>/<control>". */
size_t util_join(char *out, size_t cap, const char *a, const char *sep, const char *b);

/* Monotonic and wall clocks in milliseconds; the monotonic one also in µs. */
int64_t util_mono_ms(void);
int64_t util_mono_us(void);
int64_t util_wall_ms(void);

/* Creates every missing parent folder of path (like mkdir -p of dirname). */
wb_status util_mkdir_parents(const char *path);

/* Reads a whole file (at most max_len bytes) into a NUL-terminated malloc'd
 * buffer; trailing newlines are stripped when strip is non-zero. Caller frees.
 * Returns NULL on failure (errno set). */
char *util_read_file(const char *path, size_t max_len, size_t *len_out, int strip);

/* Sets TCP_NODELAY on every connected TCP socket of this process whose peer
 * port is `port`. For clients whose library hides its socket (paho): a false
 * match only gets NODELAY, which is harmless. Returns how many were set. */
int util_tcp_nodelay_to_port(int port);

/* vsnprintf into a caller's error buffer; does nothing when err is NULL or
 * errlen is 0 (callers may not want the detail). */
void util_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Random RFC 4122 version-4 UUID, lower case, 37 bytes with the NUL. */
void util_uuid(char out[37]);

/* FNV-1a of a NUL-terminated string: the hash of every string-keyed table
 * (store map, outbox, device index); short keys hash in a few ns. */
uint32_t util_hash_str(const char *s);

#endif

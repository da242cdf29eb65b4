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

/* Monotonic and wall clocks in milliseconds. */
int64_t util_mono_ms(void);
int64_t util_wall_ms(void);

/* Creates every missing parent folder of path (like mkdir -p of dirname). */
wb_status util_mkdir_parents(const char *path);

/* Reads a whole file (at most max_len bytes) into a NUL-terminated malloc'd
 * buffer; trailing newlines are stripped when strip is non-zero. Caller frees.
 * Returns NULL on failure (errno set). */
char *util_read_file(const char *path, size_t max_len, size_t *len_out, int strip);

/* Tunes every connected TCP socket of this process whose peer port is
 * `port`, for clients whose library hides its socket (paho):
 *  - TCP_NODELAY: two small publications in a row would otherwise wait for
 *    the broker's delayed ACK (Nagle), ~40 ms on loopback;
 *  - a send buffer of UTIL_MQTT_SNDBUF from the start, not 16 KiB grown by
 *    autotuning: paho's receive thread treats its socket as "not ready"
 *    while a write is pending (a full send buffer) and then sleeps 100 ms,
 *    reading nothing; a burst of publications (the republish after a
 *    connect) should not fill the buffer.
 * A false match gets the same options, which is harmless. Returns how many
 * sockets were tuned. */
#define UTIL_MQTT_SNDBUF (1024 * 1024)
int util_tune_mqtt_socket(int port);

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

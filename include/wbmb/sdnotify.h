/*
 * sdnotify.h - the systemd notification protocol (sd_notify(3)), without
 * libsystemd.
 *
 * systemd passes a datagram socket in $NOTIFY_SOCKET (a file system path, or
 * an abstract name written with a leading '@'); a service reports its state
 * by sending one datagram of newline-separated KEY=VALUE assignments to it:
 * READY=1 once it serves, RELOADING=1 / READY=1 around a reload, STOPPING=1
 * when it begins to shut down, WATCHDOG=1 at least every $WATCHDOG_USEC.
 * Everything here is a no-op when the variables are unset (not started by
 * systemd, or not Type=notify), so the daemon calls it unconditionally.
 *
 * The environment is read at each call; only the main thread calls these.
 */
#ifndef WBMB_SDNOTIFY_H
#define WBMB_SDNOTIFY_H

#include <stdint.h>

/* Sends state (e.g. "READY=1\nSTATUS=running") to $NOTIFY_SOCKET in one
 * datagram. Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset or empty
 * (nothing to do), -1 on an error (bad address, socket or send failure;
 * errno is set). The daemon never fails because of a notification error. */
int sdnotify_send(const char *state);

/* Sends "RELOADING=1" with the MONOTONIC_USEC= timestamp that systemd >= 253
 * expects next to it. Same return values as sdnotify_send(). */
int sdnotify_reloading(void);

/* The watchdog: interval_ms is half of $WATCHDOG_USEC (systemd's advice),
 * 0 when the watchdog is off: $WATCHDOG_USEC unset or invalid, or
 * $WATCHDOG_PID set and naming another process. */
struct sdnotify_watchdog {
    int64_t interval_ms;
    int64_t next_ms;
};

/* Reads the environment into w. */
void sdnotify_watchdog_init(struct sdnotify_watchdog *w);

/* Sends WATCHDOG=1 when the interval has passed since the last one (or at
 * the first call); now_ms is a monotonic clock in ms. Returns the time of
 * the next kick, or INT64_MAX when the watchdog is off. */
int64_t sdnotify_watchdog_kick(struct sdnotify_watchdog *w, int64_t now_ms);

#endif

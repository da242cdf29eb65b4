/*
 * log.h - one-line-per-event logging to stderr.
 *
 * Levels follow syslog: error(3) warning(4) info(6) debug(7). When stderr is
 * the systemd journal (JOURNAL_STREAM matches stderr) each line carries a
 * "<N>" prefix journald understands; otherwise a UTC timestamp and the level
 * name. Thread-safe: each line is written with one write(2).
 *
 * Secrets (passwords, tokens) must never be passed to these functions.
 */
#ifndef WBMB_LOG_H
#define WBMB_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARNING = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "error|warning|info|debug" (also "warn"); returns 0 on success, -1 otherwise. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_LVL_DEBUG)                                                      \
            log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                                   \
    } while (0)

#endif

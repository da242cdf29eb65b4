/*
 * log.c - stderr logger; see log.h.
 *
 * The level is a relaxed atomic so any thread may log while the main thread
 * changes it (SIGHUP reload). Journal detection follows sd-daemon(3):
 * JOURNAL_STREAM="dev:ino" equal to stderr's device and inode.
 */
#include "wbmb/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int current_level = LOG_LVL_INFO;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static int to_journal;

static void detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
        to_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_level(enum log_level lvl)
{
    __atomic_store_n(&current_level, (int)lvl, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
    return (enum log_level)__atomic_load_n(&current_level, __ATOMIC_RELAXED);
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level lvl;
    } names[] = {{"error", LOG_LVL_ERROR},
                 {"warning", LOG_LVL_WARNING},
                 {"warn", LOG_LVL_WARNING},
                 {"info", LOG_LVL_INFO},
                 {"debug", LOG_LVL_DEBUG}};
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].lvl;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level lvl)
{
    switch (lvl) {
    case LOG_LVL_ERROR:
        return "error";
    case LOG_LVL_WARNING:
        return "warning";
    case LOG_LVL_INFO:
        return "info";
    case LOG_LVL_DEBUG:
        return "debug";
    }
    return "?";
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    if ((int)lvl > (int)log_get_level())
        return;
    pthread_once(&journal_once, detect_journal);

    char line[2048];
    int n;
    if (to_journal) {
        n = snprintf(line, sizeof(line), "<%d>", (int)lvl);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-7s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_level_name(lvl));
    }
    if (n < 0)
        return;
    size_t len = (size_t)n;
    int m = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    if (m < 0)
        return;
    len += (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    /* One event, one line: fold embedded newlines. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

/*
 * sdnotify.c - sd_notify(3) written out: one AF_UNIX datagram per call to
 * the socket named by $NOTIFY_SOCKET. See sdnotify.h.
 *
 * Address rules (as systemd's own sd_notify): a name starting with '/' is a
 * path, one starting with '@' is an abstract socket whose first byte becomes
 * NUL and whose length is exact (abstract names are not NUL-terminated, so
 * the address length must not include a trailing byte). Anything else, or a
 * name that does not fit in sun_path, is an error (EINVAL). A fresh socket
 * is used per call: notifications are rare (the watchdog at most every few
 * hundred ms), and a long-lived descriptor would leak into forks and need
 * re-opening after the manager re-executes.
 */
#include "wbmb/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fill_address(const char *name, struct sockaddr_un *sa, socklen_t *salen)
{
    size_t len = strlen(name);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if ((name[0] != '/' && name[0] != '@') || len < 2 || len >= sizeof(sa->sun_path)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa->sun_path, name, len);
    if (name[0] == '@') {
        sa->sun_path[0] = '\0';
        *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

int sdnotify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return 0;
    struct sockaddr_un sa;
    socklen_t salen;
    if (fill_address(name, &sa, &salen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t len = strlen(state);
    ssize_t n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    int e = errno;
    close(fd);
    if (n < 0 || (size_t)n != len) {
        errno = n < 0 ? e : EMSGSIZE;
        return -1;
    }
    return 1;
}

int sdnotify_reloading(void)
{
    struct timespec ts;
    char msg[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    return sdnotify_send(msg);
}

static int parse_ull(const char *s, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

void sdnotify_watchdog_init(struct sdnotify_watchdog *w)
{
    unsigned long long usec, pid;
    w->interval_ms = 0;
    w->next_ms = 0;
    if (parse_ull(getenv("WATCHDOG_USEC"), &usec) < 0 || usec == 0)
        return;
    const char *p = getenv("WATCHDOG_PID");
    if (p && *p && (parse_ull(p, &pid) < 0 || pid != (unsigned long long)getpid()))
        return; /* the watchdog is meant for another process of the service */
    w->interval_ms = (int64_t)(usec / 2000);
    if (w->interval_ms < 1)
        w->interval_ms = 1;
}

int64_t sdnotify_watchdog_kick(struct sdnotify_watchdog *w, int64_t now_ms)
{
    if (w->interval_ms <= 0)
        return INT64_MAX;
    if (now_ms >= w->next_ms) {
        sdnotify_send("WATCHDOG=1");
        w->next_ms = now_ms + w->interval_ms;
    }
    return w->next_ms;
}

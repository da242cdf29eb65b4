/*
 * util.c - time stamps, folder creation, whole-file reads, UUIDs.
 */
#include "wbmb/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

static void digits(char *p, unsigned v, int n)
{
    while (n--) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Civil date from days since 1970-01-01 (the proleptic Gregorian
 * calendar's era arithmetic): no gmtime_r (which takes glibc's time-zone
 * lock) and no snprintf on the paths that stamp every row. */
void util_iso8601_from_ms(int64_t unix_ms, char buf[UTIL_TS_LEN])
{
    int64_t days = unix_ms / 86400000, ms = unix_ms % 86400000;
    if (ms < 0) {
        ms += 86400000;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999) { /* outside what four digits show: clamp */
        memcpy(buf, y < 0 ? "0000-01-01T00:00:00.000Z" : "9999-12-31T23:59:59.999Z", UTIL_TS_LEN);
        return;
    }
    memcpy(buf, "0000-00-00T00:00:00.000Z", UTIL_TS_LEN);
    digits(buf, (unsigned)y, 4);
    digits(buf + 5, m, 2);
    digits(buf + 8, d, 2);
    digits(buf + 11, (unsigned)(ms / 3600000), 2);
    digits(buf + 14, (unsigned)(ms / 60000 % 60), 2);
    digits(buf + 17, (unsigned)(ms / 1000 % 60), 2);
    digits(buf + 20, (unsigned)(ms % 1000), 3);
}

size_t util_format_i64(int64_t v, char buf[UTIL_I64_LEN])
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

size_t util_join(char *out, size_t cap, const char *a, const char *sep, const char *b)
{
    if (cap == 0)
        return 0;
    size_t len = 0;
    const char *parts[3] = {a, sep, b};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);
        if (n > cap - 1 - len)
            n = cap - 1 - len;
        memcpy(out + len, parts[i], n);
        len += n;
    }
    out[len] = '\0';
    return len;
}

void util_iso8601_now(char buf[UTIL_TS_LEN])
{
    util_iso8601_from_ms(util_wall_ms(), buf);
}

int64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

wb_status util_mkdir_parents(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return WB_ERR_INVALID;
    memcpy(buf, path, len + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return WB_OK;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return WB_ERR_IO;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return WB_ERR_IO;
    return WB_OK;
}

char *util_read_file(const char *path, size_t max_len, size_t *len_out, int strip)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        goto fail;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_len) {
                errno = EFBIG;
                goto fail;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max_len) {
            errno = EFBIG;
            goto fail;
        }
    }
    close(fd);
    if (strip)
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
fail : {
    int e = errno;
    free(buf);
    close(fd);
    errno = e;
    return NULL;
}
}

void util_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int util_tcp_nodelay_to_port(int port)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 0;
    int set = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || fd < 0 || fd == dirfd(dir))
            continue;
        int type = 0;
        socklen_t tl = sizeof(type);
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM ||
            getpeername((int)fd, (struct sockaddr *)&peer, &pl) != 0)
            continue;
        int peer_port = peer.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&peer)->sin_port)
                        : peer.ss_family == AF_INET6
                            ? ntohs(((struct sockaddr_in6 *)&peer)->sin6_port)
                            : -1;
        int one = 1;
        if (peer_port == port &&
            setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
            set++;
    }
    closedir(dir);
    return set;
}

void util_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint32_t util_hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

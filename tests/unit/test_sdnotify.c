/*
 * test_sdnotify.c - the systemd notification protocol against a fake
 * NOTIFY_SOCKET: a datagram socket this test binds (a path, then an abstract
 * '@' name) and reads. Also: no-op when unset, bad addresses, the watchdog
 * interval from WATCHDOG_USEC / WATCHDOG_PID.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "wbmb/sdnotify.h"

/* Binds a datagram socket at name ("/path" or "@abstract"); returns the fd. */
static int bind_fake(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        salen++;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
    return fd;
}

/* Reads one datagram (waits at most 1 s); returns its length, -1 when none. */
static ssize_t recv_one(int fd, char *buf, size_t len)
{
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, buf, len - 1, 0);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

static bool nothing_pending(int fd)
{
    char b[16];
    return recv(fd, b, sizeof(b), MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void test_unset_is_noop(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sdnotify_send("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_path_socket(void **state)
{
    (void)state;
    char dir[] = "/tmp/wbmb-sdnotify.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = bind_fake(path);
    setenv("NOTIFY_SOCKET", path, 1);

    char buf[256];
    assert_int_equal(sdnotify_send("READY=1\nSTATUS=running"), 1);
    assert_int_equal(recv_one(fd, buf, sizeof(buf)), 22);
    assert_string_equal(buf, "READY=1\nSTATUS=running");

    assert_int_equal(sdnotify_reloading(), 1);
    assert_true(recv_one(fd, buf, sizeof(buf)) > 0);
    assert_memory_equal(buf, "RELOADING=1\nMONOTONIC_USEC=", 27);
    assert_true(strtoull(buf + 27, NULL, 10) > 0);

    assert_int_equal(sdnotify_send("STOPPING=1"), 1);
    assert_true(recv_one(fd, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "STOPPING=1");
    assert_true(nothing_pending(fd));

    /* The receiver went away: an error, never a crash or a signal. */
    close(fd);
    unlink(path);
    assert_int_equal(sdnotify_send("READY=1"), -1);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@wbmb-test-sdnotify-%ld", (long)getpid());
    int fd = bind_fake(name);
    setenv("NOTIFY_SOCKET", name, 1);
    char buf[64];
    assert_int_equal(sdnotify_send("WATCHDOG=1"), 1);
    assert_int_equal(recv_one(fd, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "WATCHDOG=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_bad_addresses(void **state)
{
    (void)state;
    char big[200];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    const char *bad[] = {"relative/path", "@", big};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("NOTIFY_SOCKET", bad[i], 1);
        errno = 0;
        assert_int_equal(sdnotify_send("READY=1"), -1);
        assert_int_equal(errno, EINVAL);
    }
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@wbmb-test-watchdog-%ld", (long)getpid());
    int fd = bind_fake(name);
    setenv("NOTIFY_SOCKET", name, 1);
    struct sdnotify_watchdog w;

    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    sdnotify_watchdog_init(&w);
    assert_int_equal(w.interval_ms, 0);
    assert_true(sdnotify_watchdog_kick(&w, 1000) == INT64_MAX);
    setenv("WATCHDOG_USEC", "garbage", 1);
    sdnotify_watchdog_init(&w);
    assert_int_equal(w.interval_ms, 0);
    setenv("WATCHDOG_USEC", "400000", 1);
    setenv("WATCHDOG_PID", "1", 1); /* someone else's watchdog */
    sdnotify_watchdog_init(&w);
    assert_int_equal(w.interval_ms, 0);
    assert_true(nothing_pending(fd));

    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    sdnotify_watchdog_init(&w);
    assert_int_equal(w.interval_ms, 200); /* half of WATCHDOG_USEC */
    unsetenv("WATCHDOG_PID");
    sdnotify_watchdog_init(&w);
    assert_int_equal(w.interval_ms, 200);

    char buf[64];
    assert_int_equal(sdnotify_watchdog_kick(&w, 1000), 1200); /* first call kicks */
    assert_true(recv_one(fd, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "WATCHDOG=1");
    assert_int_equal(sdnotify_watchdog_kick(&w, 1100), 1200); /* not due */
    assert_true(nothing_pending(fd));
    assert_int_equal(sdnotify_watchdog_kick(&w, 1250), 1450);
    assert_true(recv_one(fd, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "WATCHDOG=1");

    close(fd);
    unsetenv("WATCHDOG_USEC");
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unset_is_noop),   cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket), cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

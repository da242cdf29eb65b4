/*
 * broker_fixture.h - a real mosquitto for the MQTT unit tests: a free
 * loopback port (never 1883), max_queued_messages 0, started and stopped by
 * the test. Static helpers, for inclusion by one test program each, after
 * <cmocka.h> (they assert).
 */
#ifndef WBMB_TEST_BROKER_FIXTURE_H
#define WBMB_TEST_BROKER_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wbmb/util.h"

#define DEADLINE_MS 10000

struct broker {
    pid_t pid;
    int port;
    char dir[64];
    char conf[96];
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    int port = ntohs(a.sin_port);
    assert_int_not_equal(port, 1883);
    return port;
}

static bool port_accepts(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(s);
    return ok;
}

/* Writes the broker's configuration; extra (may be NULL) replaces the
 * default "allow_anonymous true" access rule and can add TLS settings. */
static void broker_prepare(struct broker *b, int port, const char *extra)
{
    memset(b, 0, sizeof(*b));
    b->port = port;
    snprintf(b->dir, sizeof(b->dir), "/tmp/wbmb-mqttc-XXXXXX");
    assert_non_null(mkdtemp(b->dir));
    snprintf(b->conf, sizeof(b->conf), "%s/mosquitto.conf", b->dir);
    FILE *f = fopen(b->conf, "w");
    assert_non_null(f);
    fprintf(f,
            "listener %d 127.0.0.1\nmax_queued_messages 0\npersistence false\nlog_dest none\n"
            "%s\n",
            port, extra ? extra : "allow_anonymous true");
    fclose(f);
}

static void broker_run(struct broker *b)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 1);
            dup2(dn, 2);
        }
        execlp("mosquitto", "mosquitto", "-c", b->conf, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (!port_accepts(b->port)) {
        int st;
        assert_int_equal(waitpid(pid, &st, WNOHANG), 0); /* the broker must not have died */
        assert_true(util_mono_ms() < end);
        sleep_ms(20);
    }
}

static void broker_kill(struct broker *b, int sig)
{
    if (b->pid > 0) {
        kill(b->pid, sig);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
}

static void broker_cleanup(struct broker *b)
{
    broker_kill(b, SIGTERM);
    unlink(b->conf);
    rmdir(b->dir);
}

#endif

/*
 * test_mqttc.c - the MQTT connection against a real mosquitto on loopback.
 *
 * Every case talks to a real broker started by the test on a free loopback
 * port (never 1883), and checks what a user would see with mosquitto_pub and
 * mosquitto_sub. Waiting always polls a condition with a deadline; the only
 * fixed waits are where the absence of something is the thing being tested
 * (no Last Will after a clean stop) or where a scenario needs time to pass
 * (a failed first connect before the broker appears).
 *
 * The Last Will case runs the client in a child process (this same binary
 * re-executed with --will-child) so that SIGKILL severs its TCP connection
 * without a DISCONNECT, exactly like a crashed daemon.
 *
 * Which case drives which transition of the connection (see mqttc.c):
 *
 *   DISCONNECTED --start--> CONNECTING --fail--> BACKOFF --> CONNECTING
 *        |                     |   test_publish_disconnected, test_tls_and_auth (bad
 *        |                     |   password), test_first_connect_then_restart (no broker)
 *        |                     +--success--> CONNECTED   every case with a broker
 *        |                     +--stop--> STOPPED        test_stop_while_connecting
 *        |                                   |
 *        |      CONNECTED --lost--> BACKOFF --> CONNECTING --> CONNECTED (resubscribed)
 *        |                    test_first_connect_then_restart (broker SIGKILLed, restarted)
 *        |      CONNECTED --stop (drain, no will)--> STOPPED
 *        |                    test_stop_drains_and_sends_no_will
 *        |      CONNECTED --client SIGKILLed--> will published
 *        |                    test_last_will_on_abrupt_loss
 *        +--publish--> WB_ERR_MQTT   test_publish_disconnected
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker_fixture.h"
#include "mqtt/paho_api.h"
#include "wbmb/mqttc.h"
#include "wbmb/util.h"

static struct broker g_broker;

/* ---- shell helpers ---------------------------------------------------- */

static void mpub(int port, const char *topic, const char *msg, bool retained)
{
    char cmd[512];
    if (msg)
        snprintf(cmd, sizeof(cmd), "mosquitto_pub -h 127.0.0.1 -p %d -q 1 %s -t '%s' -m '%s'", port,
                 retained ? "-r" : "", topic, msg);
    else
        snprintf(cmd, sizeof(cmd), "mosquitto_pub -h 127.0.0.1 -p %d -q 1 -r -n -t '%s'", port,
                 topic);
    assert_int_equal(system(cmd), 0);
}

/* First message on topic ("topic payload" with -v), waiting at most wait_s;
 * "" when nothing arrived. */
static void msub_one(int port, const char *topic, int wait_s, char *out, size_t outlen)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mosquitto_sub -h 127.0.0.1 -p %d -t '%s' -C 1 -W %d -v 2>/dev/null",
             port, topic, wait_s);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (!fgets(out, (int)outlen, p))
        out[0] = '\0';
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

/* ---- recorder of callbacks -------------------------------------------- */

#define REC_N 64
struct msg {
    char topic[128];
    char payload[128];
    bool retained;
};

struct rec {
    pthread_mutex_t mu;
    int ups, downs;
    bool up;
    int nmsg;            /* all messages */
    struct msg m[REC_N]; /* the last REC_N */
    const char *count_prefix;
    int counted; /* messages whose topic starts with count_prefix */
    char last_counted[128];
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
}

static void on_msg(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    struct rec *r = ud;
    pthread_mutex_lock(&r->mu);
    struct msg *m = &r->m[r->nmsg % REC_N];
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    size_t l = len < sizeof(m->payload) - 1 ? len : sizeof(m->payload) - 1;
    memcpy(m->payload, payload, l);
    m->payload[l] = '\0';
    m->retained = retained;
    r->nmsg++;
    if (r->count_prefix && strncmp(topic, r->count_prefix, strlen(r->count_prefix)) == 0) {
        r->counted++;
        snprintf(r->last_counted, sizeof(r->last_counted), "%s", m->payload);
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_conn(void *ud, bool up)
{
    struct rec *r = ud;
    pthread_mutex_lock(&r->mu);
    if (up)
        r->ups++;
    else
        r->downs++;
    r->up = up;
    pthread_mutex_unlock(&r->mu);
}

/* Returns the retained flag (0/1) of a recorded message, -1 if absent. */
static int rec_find(struct rec *r, const char *topic, const char *payload)
{
    int res = -1;
    pthread_mutex_lock(&r->mu);
    int n = r->nmsg < REC_N ? r->nmsg : REC_N;
    for (int i = 0; i < n && res < 0; i++)
        if (!strcmp(r->m[i].topic, topic) && !strcmp(r->m[i].payload, payload))
            res = r->m[i].retained;
    pthread_mutex_unlock(&r->mu);
    return res;
}

static int rec_ups(struct rec *r)
{
    pthread_mutex_lock(&r->mu);
    int v = r->ups;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static int rec_downs(struct rec *r)
{
    pthread_mutex_lock(&r->mu);
    int v = r->downs;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static int rec_counted(struct rec *r)
{
    pthread_mutex_lock(&r->mu);
    int v = r->counted;
    pthread_mutex_unlock(&r->mu);
    return v;
}

#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        int64_t end_ = util_mono_ms() + (ms);                                                      \
        while (!(cond)) {                                                                          \
            if (util_mono_ms() > end_)                                                             \
                fail_msg("timed out waiting for: %s", #cond);                                      \
            sleep_ms(10);                                                                          \
        }                                                                                          \
    } while (0)

static struct mqttc *client_new(int port, const char *id, struct rec *r, const char *will_topic)
{
    struct mqttc_options o = {.host = "127.0.0.1",
                              .port = port,
                              .client_id = id,
                              .keepalive_s = 5,
                              .will_topic = will_topic,
                              .will_payload = "offline",
                              .will_retained = true,
                              .will_qos = 1};
    char err[256];
    struct mqttc *c = mqttc_create(&o, on_msg, on_conn, r, err, sizeof(err));
    if (!c)
        fail_msg("mqttc_create: %s", err);
    return c;
}

/* ---- cases ------------------------------------------------------------ */

static void test_create_invalid_and_destroy_null(void **state)
{
    char err[128];
    struct mqttc_options o = {.host = "127.0.0.1", .port = 0, .client_id = "x"};
    assert_null(mqttc_create(&o, NULL, NULL, NULL, err, sizeof(err)));
    assert_true(err[0] != '\0');
    o.port = 1;
    o.host = NULL;
    assert_null(mqttc_create(&o, NULL, NULL, NULL, err, sizeof(err)));
    assert_null(mqttc_create(NULL, NULL, NULL, NULL, NULL, 0));
    mqttc_destroy(NULL);
    mqttc_stop(NULL, 0);
    assert_false(mqttc_is_connected(NULL));
}

static void test_publish_disconnected(void **state)
{
    struct rec r;
    rec_init(&r);
    /* Never started. */
    struct mqttc *c = client_new(g_broker.port, "t-disc", &r, NULL);
    assert_int_equal(mqttc_publish(c, "a/b", "x", 1, 1, false), WB_ERR_MQTT);
    assert_int_equal(mqttc_publish(c, "a/b", "x", 1, 2, false), WB_ERR_INVALID);
    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_false(st.connected);
    assert_int_equal(st.publish_failures, 1);
    assert_int_equal(st.published, 0);
    mqttc_destroy(c);

    /* Started against a port where nothing listens: keeps failing, and a
     * publication is refused without leaking. */
    int port = free_port();
    c = client_new(port, "t-disc2", &r, NULL);
    assert_int_equal(mqttc_start(c), WB_OK);
    assert_int_equal(mqttc_start(c), WB_ERR_INVALID);
    assert_int_equal(mqttc_publish(c, "a/b", "x", 1, 0, false), WB_ERR_MQTT);
    assert_false(mqttc_is_connected(c));
    mqttc_stop(c, 100);
    mqttc_destroy(c);
    pthread_mutex_destroy(&r.mu);
}

static void test_subscribe_receive(void **state)
{
    int port = g_broker.port;
    /* Published before the client exists: must arrive flagged retained. */
    mpub(port, "rx/ret/one", "R1", true);

    struct rec r;
    rec_init(&r);
    struct mqttc *c = client_new(port, "t-rx", &r, NULL);
    const char *filters[] = {"rx/+/x", "rx/ret/#"};
    assert_int_equal(mqttc_set_subscriptions(c, filters, 2, 0), WB_OK);
    assert_int_equal(mqttc_start(c), WB_OK);
    WAIT_FOR(mqttc_is_connected(c), DEADLINE_MS);
    WAIT_FOR(rec_ups(&r) == 1, DEADLINE_MS);

    WAIT_FOR(rec_find(&r, "rx/ret/one", "R1") >= 0, DEADLINE_MS);
    assert_int_equal(rec_find(&r, "rx/ret/one", "R1"), 1);

    /* The subscription is requested before on_connection(true) but may not
     * be acknowledged yet; publish until it arrives. */
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (rec_find(&r, "rx/a/x", "hello world") < 0) {
        assert_true(util_mono_ms() < end);
        mpub(port, "rx/a/x", "hello world", false);
        for (int i = 0; i < 50 && rec_find(&r, "rx/a/x", "hello world") < 0; i++)
            sleep_ms(10);
    }
    assert_int_equal(rec_find(&r, "rx/a/x", "hello world"), 0);
    /* Not matching the filter: never delivered (checked after a later one). */
    mpub(port, "rx/a/y", "no", false);
    mpub(port, "rx/b/x", "yes", false);
    WAIT_FOR(rec_find(&r, "rx/b/x", "yes") >= 0, DEADLINE_MS);
    assert_int_equal(rec_find(&r, "rx/a/y", "no"), -1);

    /* Replacing the set unsubscribes what was dropped. The UNSUBSCRIBE is
     * sent by the sender thread after mqttc_set_subscriptions() returns, so
     * a publication racing it may still arrive (seen under qemu-user, where
     * the sender is slow and mosquitto_pub is native). Each round publishes
     * on the dropped filter, then on a kept one (mosquitto_pub -q 1 waits for
     * the PUBACK: the broker has the first before the second, and delivers
     * to us in that order): once a kept message arrives without the dropped
     * one of its round, the broker no longer has the dropped filter. */
    const char *only[] = {"rx/ret/#"};
    assert_int_equal(mqttc_set_subscriptions(c, only, 1, 1), WB_OK);
    end = util_mono_ms() + DEADLINE_MS;
    for (int round = 0;; round++) {
        char dropped[32], kept[32];
        snprintf(dropped, sizeof(dropped), "dropped%d", round);
        snprintf(kept, sizeof(kept), "R2-%d", round);
        mpub(port, "rx/c/x", dropped, false);
        mpub(port, "rx/ret/two", kept, false);
        WAIT_FOR(rec_find(&r, "rx/ret/two", kept) >= 0, DEADLINE_MS);
        if (rec_find(&r, "rx/c/x", dropped) == -1)
            break;
        assert_true(util_mono_ms() < end);
    }

    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_true(st.connected);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.disconnects, 0);
    assert_true(st.received >= 4);

    mqttc_stop(c, 2000);
    assert_false(mqttc_is_connected(c));
    mqttc_destroy(c);
    mpub(port, "rx/ret/one", NULL, true); /* clear the retained message */
    pthread_mutex_destroy(&r.mu);
}

static void test_publish_seen_by_others(void **state)
{
    int port = g_broker.port;
    struct rec r, r2;
    rec_init(&r);
    rec_init(&r2);
    struct mqttc *c = client_new(port, "t-pub", &r, NULL);
    struct mqttc *rx = client_new(port, "t-pub-rx", &r2, NULL);
    const char *f[] = {"pub/live"};
    assert_int_equal(mqttc_set_subscriptions(rx, f, 1, 1), WB_OK);
    assert_int_equal(mqttc_start(c), WB_OK);
    assert_int_equal(mqttc_start(rx), WB_OK);
    WAIT_FOR(mqttc_is_connected(c) && mqttc_is_connected(rx), DEADLINE_MS);

    /* Retained QoS 1, read back by mosquitto_sub. */
    assert_int_equal(mqttc_publish(c, "pub/ret", "payload 1", 9, 1, true), WB_OK);
    char line[256];
    msub_one(port, "pub/ret", 10, line, sizeof(line));
    assert_string_equal(line, "pub/ret payload 1");

    /* Live, by the second client (repeat until its subscription is active). */
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (rec_find(&r2, "pub/live", "live") < 0) {
        assert_true(util_mono_ms() < end);
        assert_int_equal(mqttc_publish(c, "pub/live", "live", 4, 0, false), WB_OK);
        for (int i = 0; i < 20 && rec_find(&r2, "pub/live", "live") < 0; i++)
            sleep_ms(10);
    }
    assert_int_equal(rec_find(&r2, "pub/live", "live"), 0);
    /* Empty payload is fine. */
    assert_int_equal(mqttc_publish(c, "pub/ret", NULL, 0, 1, true), WB_OK);

    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_true(st.published >= 3);
    assert_int_equal(st.publish_failures, 0);
    assert_int_equal(st.connects, 1);
    mqttc_destroy(c); /* destroy without stop: stops itself */
    mqttc_destroy(rx);
    pthread_mutex_destroy(&r.mu);
    pthread_mutex_destroy(&r2.mu);
}

#define DRAIN_N 300

static void test_stop_drains_and_sends_no_will(void **state)
{
    int port = g_broker.port;
    mpub(port, "will/stop", NULL, true);
    struct rec r, r2;
    rec_init(&r);
    rec_init(&r2);
    struct mqttc *c = client_new(port, "t-stop", &r, "will/stop");
    struct mqttc *rx = client_new(port, "t-stop-rx", &r2, NULL);
    const char *f[] = {"drain/#"};
    assert_int_equal(mqttc_set_subscriptions(rx, f, 1, 1), WB_OK);
    r2.count_prefix = "drain/n";
    assert_int_equal(mqttc_start(c), WB_OK);
    assert_int_equal(mqttc_start(rx), WB_OK);
    WAIT_FOR(mqttc_is_connected(c) && mqttc_is_connected(rx), DEADLINE_MS);
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (rec_find(&r2, "drain/probe", "p") < 0) {
        assert_true(util_mono_ms() < end);
        assert_int_equal(mqttc_publish(c, "drain/probe", "p", 1, 1, false), WB_OK);
        for (int i = 0; i < 20 && rec_find(&r2, "drain/probe", "p") < 0; i++)
            sleep_ms(10);
    }

    /* A burst of QoS 1 publications, then an immediate stop: every one of
     * them must reach the broker before the DISCONNECT. */
    char big[2048];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < DRAIN_N; i++) {
        char p[16];
        int l = snprintf(p, sizeof(p), "%d", i);
        memcpy(big, p, (size_t)l);
        big[l] = ' ';
        assert_int_equal(mqttc_publish(c, "drain/n", p, (size_t)l, 1, false), WB_OK);
        assert_int_equal(mqttc_publish(c, "drain/big", big, sizeof(big), 1, false), WB_OK);
    }
    mqttc_stop(c, 5000);
    assert_false(mqttc_is_connected(c));
    assert_int_equal(mqttc_publish(c, "drain/n", "late", 4, 1, false), WB_ERR_MQTT);
    WAIT_FOR(rec_counted(&r2) >= DRAIN_N, DEADLINE_MS);
    pthread_mutex_lock(&r2.mu);
    assert_string_equal(r2.last_counted, "299");
    pthread_mutex_unlock(&r2.mu);

    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_int_equal(st.publish_failures, 1);
    assert_true(st.published >= 2 * DRAIN_N + 1);
    assert_int_equal(st.disconnects, 0);
    mqttc_destroy(c);
    mqttc_destroy(rx);

    /* A clean stop never fires the will: the retained will topic stays empty.
     * (Absence can only be checked by waiting a little.) */
    char line[256];
    msub_one(port, "will/stop", 2, line, sizeof(line));
    assert_string_equal(line, "");
    pthread_mutex_destroy(&r.mu);
    pthread_mutex_destroy(&r2.mu);
}

/* The child half of the will test: connect with a will, report, then hang
 * until SIGKILLed. */
static int will_child(int port)
{
    struct rec r;
    rec_init(&r);
    struct mqttc *c = client_new(port, "t-will-child", &r, "will/kill");
    if (mqttc_start(c) != WB_OK)
        return 1;
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (!mqttc_is_connected(c)) {
        if (util_mono_ms() > end)
            return 1;
        sleep_ms(10);
    }
    if (write(1, "R", 1) != 1)
        return 1;
    for (;;)
        pause();
}

static void test_last_will_on_abrupt_loss(void **state)
{
    int port = g_broker.port;
    mpub(port, "will/kill", NULL, true);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        /* A cross build run under qemu-user (scripts/cross-test.sh): the
         * kernel cannot exec the foreign binary itself (no binfmt_misc
         * handler needed or assumed), so the emulator that ctest ran us with
         * runs the child too; /proc/self/exe is the test binary there. */
        const char *emu = getenv("WBMB_TEST_EMULATOR");
        if (emu && emu[0]) {
            char self[4096];
            ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
            if (n <= 0)
                _exit(127);
            self[n] = '\0';
            execl(emu, emu, self, "--will-child", ps, (char *)NULL);
        } else {
            execl("/proc/self/exe", "test_mqttc", "--will-child", ps, (char *)NULL);
        }
        _exit(127);
    }
    close(pfd[1]);
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    assert_int_equal(poll(&p, 1, DEADLINE_MS), 1);
    char ch = 0;
    assert_int_equal(read(pfd[0], &ch, 1), 1);
    assert_int_equal(ch, 'R');
    close(pfd[0]);

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    char line[256];
    msub_one(port, "will/kill", 10, line, sizeof(line));
    assert_string_equal(line, "will/kill offline");
    mpub(port, "will/kill", NULL, true);
}

static void test_first_connect_then_restart(void **state)
{
    struct broker b;
    broker_prepare(&b, free_port(), NULL);
    struct rec r;
    rec_init(&r);
    struct mqttc *c = client_new(b.port, "t-restart", &r, NULL);
    const char *f[] = {"rs/#"};
    assert_int_equal(mqttc_set_subscriptions(c, f, 1, 1), WB_OK);

    /* No broker yet: the first attempts fail; give them time to happen. */
    assert_int_equal(mqttc_start(c), WB_OK);
    sleep_ms(1500);
    assert_false(mqttc_is_connected(c));
    assert_int_equal(rec_ups(&r), 0);
    broker_run(&b);
    WAIT_FOR(rec_ups(&r) == 1, 15000); /* next retry within the 4 s backoff */
    assert_true(mqttc_is_connected(c));

    /* Broker dies and comes back on the same port. */
    broker_kill(&b, SIGKILL);
    WAIT_FOR(rec_downs(&r) == 1, DEADLINE_MS);
    assert_false(mqttc_is_connected(c));
    assert_int_equal(mqttc_publish(c, "rs/x", "x", 1, 1, false), WB_ERR_MQTT);
    broker_run(&b);
    WAIT_FOR(rec_ups(&r) == 2, DEADLINE_MS); /* backoff was reset: 1 s */

    /* The subscription was renewed on the new (clean) session. */
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (rec_find(&r, "rs/after", "again") < 0) {
        assert_true(util_mono_ms() < end);
        mpub(b.port, "rs/after", "again", false);
        for (int i = 0; i < 50 && rec_find(&r, "rs/after", "again") < 0; i++)
            sleep_ms(10);
    }

    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.disconnects, 1);
    assert_true(st.publish_failures >= 1);
    mqttc_stop(c, 1000);
    mqttc_destroy(c);
    broker_cleanup(&b);
    pthread_mutex_destroy(&r.mu);
}

/* TLS with a private CA and username/password: the right credentials
 * connect and carry messages, a wrong password never connects. */
static void test_tls_and_auth(void **state)
{
    struct broker b;
    int port = free_port();
    char extra[1024], cmd[2048];
    /* The directory name is needed before the configuration is written, so
     * prepare once to create it, generate the files, then rewrite. */
    broker_prepare(&b, port, NULL);
    snprintf(cmd, sizeof(cmd),
             "(cd %s && chmod 755 . && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.crt -subj /CN=wbmb-test-ca -days 1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out srv.crt -days 1 && "
             "touch pw && mosquitto_passwd -b pw user 's3cret' && chmod 644 *) >/dev/null 2>&1",
             b.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(extra, sizeof(extra),
             "allow_anonymous false\npassword_file %s/pw\ncafile %s/ca.crt\n"
             "certfile %s/srv.crt\nkeyfile %s/srv.key\n",
             b.dir, b.dir, b.dir, b.dir);
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", b.dir);
    FILE *f = fopen(b.conf, "w");
    assert_non_null(f);
    fprintf(f, "listener %d 127.0.0.1\nmax_queued_messages 0\npersistence false\nlog_dest none\n%s",
            port, extra);
    fclose(f);
    broker_run(&b);

    char ca[128];
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    struct mqttc_options o = {.host = "127.0.0.1",
                              .port = port,
                              .client_id = "t-tls",
                              .username = "user",
                              .password = "s3cret",
                              .keepalive_s = 10,
                              .tls = true,
                              .ca_file = ca};
    struct rec r, rbad;
    rec_init(&r);
    rec_init(&rbad);
    char err[256];
    struct mqttc *c = mqttc_create(&o, on_msg, on_conn, &r, err, sizeof(err));
    assert_non_null(c);
    o.client_id = "t-tls-bad";
    o.password = "wrong";
    struct mqttc *bad = mqttc_create(&o, on_msg, on_conn, &rbad, err, sizeof(err));
    assert_non_null(bad);
    assert_int_equal(mqttc_start(bad), WB_OK);
    const char *flt[] = {"tls/#"};
    assert_int_equal(mqttc_set_subscriptions(c, flt, 1, 1), WB_OK);
    assert_int_equal(mqttc_start(c), WB_OK);
    WAIT_FOR(rec_ups(&r) == 1, DEADLINE_MS);

    /* A round trip through the broker over TLS (own publication echoed back
     * by the subscription). */
    int64_t end = util_mono_ms() + DEADLINE_MS;
    while (rec_find(&r, "tls/echo", "over tls") < 0) {
        assert_true(util_mono_ms() < end);
        assert_int_equal(mqttc_publish(c, "tls/echo", "over tls", 8, 1, false), WB_OK);
        for (int i = 0; i < 20 && rec_find(&r, "tls/echo", "over tls") < 0; i++)
            sleep_ms(10);
    }
    /* The bad client tried at the same moment and was refused. */
    assert_int_equal(rec_ups(&rbad), 0);
    assert_false(mqttc_is_connected(bad));

    mqttc_destroy(bad);
    mqttc_destroy(c);
    broker_kill(&b, SIGTERM);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&r.mu);
    pthread_mutex_destroy(&rbad.mu);
}

/* A peer that completes the TCP handshake (kernel backlog) but never answers
 * CONNECT keeps the client in CONNECTING; stop and destroy must still return
 * promptly and cleanly. */
static void test_stop_while_connecting(void **state)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);

    struct rec r;
    rec_init(&r);
    struct mqttc *c = client_new(ntohs(a.sin_port), "t-hang", &r, "will/hang");
    assert_int_equal(mqttc_start(c), WB_OK);
    sleep_ms(300); /* let the attempt reach "waiting for CONNACK" */
    assert_false(mqttc_is_connected(c));
    int64_t t0 = util_mono_ms();
    mqttc_stop(c, 200);
    mqttc_destroy(c);
    int64_t took = util_mono_ms() - t0;
    assert_true(took < 3000);
    assert_int_equal(rec_ups(&r), 0);
    close(ls);
    pthread_mutex_destroy(&r.mu);
}

#define PUB_THREADS 3
#define PUB_EACH 400

struct pub_arg {
    struct mqttc *c;
    int ok, failed;
};

static void *pub_thread(void *p)
{
    struct pub_arg *a = p;
    for (int i = 0; i < PUB_EACH; i++) {
        char buf[32];
        int l = snprintf(buf, sizeof(buf), "%d", i);
        if (mqttc_publish(a->c, "mt/x", buf, (size_t)l, i & 1, false) == WB_OK)
            a->ok++;
        else
            a->failed++;
    }
    return NULL;
}

/* mqttc_publish() from several threads at once, while the owner thread
 * replaces the subscriptions: the counters add up and nothing is lost or
 * double-freed (ASan). */
static void test_publish_from_threads(void **state)
{
    struct rec r;
    rec_init(&r);
    struct mqttc *c = client_new(g_broker.port, "t-mt", &r, NULL);
    assert_int_equal(mqttc_start(c), WB_OK);
    WAIT_FOR(mqttc_is_connected(c), DEADLINE_MS);
    pthread_t th[PUB_THREADS];
    struct pub_arg args[PUB_THREADS];
    for (int i = 0; i < PUB_THREADS; i++) {
        args[i] = (struct pub_arg){.c = c};
        assert_int_equal(pthread_create(&th[i], NULL, pub_thread, &args[i]), 0);
    }
    const char *f1[] = {"mt/#", "other/+"}, *f2[] = {"mt/x"};
    for (int i = 0; i < 20; i++)
        assert_int_equal(mqttc_set_subscriptions(c, i & 1 ? f1 : f2, i & 1 ? 2 : 1, 0), WB_OK);
    int ok = 0, failed = 0;
    for (int i = 0; i < PUB_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        failed += args[i].failed;
    }
    struct mqttc_stats st;
    mqttc_get_stats(c, &st);
    assert_int_equal(ok + failed, PUB_THREADS * PUB_EACH);
    assert_int_equal(st.published, (uint64_t)ok);
    assert_int_equal(st.publish_failures, (uint64_t)failed);
    assert_int_equal(failed, 0);
    mqttc_stop(c, 5000);
    mqttc_destroy(c);
    pthread_mutex_destroy(&r.mu);
}

static int group_setup(void **state)
{
    broker_prepare(&g_broker, free_port(), NULL);
    broker_run(&g_broker);
    return 0;
}

static int group_teardown(void **state)
{
    broker_cleanup(&g_broker);
    return 0;
}

/* More filters than one SUBSCRIBE chunk: every chunk goes out (each
 * retained message on the first, a middle and the last filter arrives), at
 * connect and when the set is replaced while connected. */
static void test_many_filters_in_chunks(void **state)
{
    int port = g_broker.port;
    enum { N = 700, M = 600 };
    static char names[N + M][32];
    const char *set1[N], *set2[M];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "many/%d", i);
        set1[i] = names[i];
    }
    for (int i = 0; i < M; i++) {
        snprintf(names[N + i], sizeof(names[N + i]), "more/%d", i);
        set2[i] = names[N + i];
    }
    mpub(port, "many/0", "first", true);
    mpub(port, "many/350", "middle", true);
    mpub(port, "many/699", "last", true);
    mpub(port, "more/599", "again", true);

    struct rec r;
    rec_init(&r);
    struct mqttc *c = client_new(port, "t-many", &r, NULL);
    assert_int_equal(mqttc_set_subscriptions(c, set1, N, 0), WB_OK);
    assert_int_equal(mqttc_start(c), WB_OK);
    WAIT_FOR(rec_find(&r, "many/0", "first") >= 0 && rec_find(&r, "many/350", "middle") >= 0 &&
                 rec_find(&r, "many/699", "last") >= 0,
             DEADLINE_MS);
    assert_int_equal(rec_find(&r, "many/699", "last"), 1); /* retained flag */
    assert_int_equal(mqttc_set_subscriptions(c, set2, M, 0), WB_OK);
    WAIT_FOR(rec_find(&r, "more/599", "again") >= 0, DEADLINE_MS);

    mqttc_stop(c, 2000);
    mqttc_destroy(c);
    pthread_mutex_destroy(&r.mu);
    const char *clear[] = {"many/0", "many/350", "many/699", "more/599"};
    for (size_t i = 0; i < 4; i++)
        mpub(port, clear[i], NULL, true);
}

/* paho is loaded at run time: the plain variant without OpenSSL, the TLS
 * one on demand, both once, both complete; each drives its own clients. */
static void test_paho_variants(void **state)
{
    (void)state;
    char err[256] = "";
    const struct paho_api *plain = paho_api(false, err, sizeof(err));
    assert_non_null(plain);
    assert_string_equal(plain->library, WBMB_PAHO_PLAIN_SO);
    assert_ptr_equal(paho_api(false, err, sizeof(err)), plain);
    const struct paho_api *tls = paho_api(true, err, sizeof(err));
    assert_non_null(tls);
    assert_string_equal(tls->library, WBMB_PAHO_TLS_SO);
    assert_ptr_not_equal(tls, plain);
    assert_ptr_not_equal(tls->create, plain->create); /* two libraries, not one */
    const struct paho_api *both[] = {plain, tls};
    for (int i = 0; i < 2; i++) {
        const struct paho_api *a = both[i];
        assert_non_null(a->global_init);
        assert_non_null(a->set_callbacks);
        assert_non_null(a->connect);
        assert_non_null(a->disconnect);
        assert_non_null(a->subscribe_many);
        assert_non_null(a->unsubscribe_many);
        assert_non_null(a->send);
        assert_non_null(a->get_pending_tokens);
        assert_non_null(a->free_message);
        assert_non_null(a->free);
        assert_string_equal(a->strerror(MQTTASYNC_BAD_UTF8_STRING), "Invalid UTF8 string");
        MQTTAsync h = NULL;
        assert_int_equal(
            a->create(&h, "tcp://127.0.0.1:1", "t-variant", MQTTCLIENT_PERSISTENCE_NONE, NULL),
            MQTTASYNC_SUCCESS);
        a->destroy(&h);
        assert_null(h);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--will-child") == 0)
        return will_child(atoi(argv[2]));
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paho_variants),
        cmocka_unit_test(test_create_invalid_and_destroy_null),
        cmocka_unit_test(test_publish_disconnected),
        cmocka_unit_test(test_subscribe_receive),
        cmocka_unit_test(test_many_filters_in_chunks),
        cmocka_unit_test(test_publish_seen_by_others),
        cmocka_unit_test(test_stop_drains_and_sends_no_will),
        cmocka_unit_test(test_last_will_on_abrupt_loss),
        cmocka_unit_test(test_first_connect_then_restart),
        cmocka_unit_test(test_tls_and_auth),
        cmocka_unit_test(test_stop_while_connecting),
        cmocka_unit_test(test_publish_from_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

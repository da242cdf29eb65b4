/*
 * mqttc_diag.c - why a connection failed or keeps failing (see mqttc.c's
 * top): the disconnect window behind mqttc_stats.flapping, OpenSSL's error
 * strings collected during a TLS handshake, and the words a user can act on
 * for a failed connect ("connection refused", "unknown CA", "name
 * mismatch").
 *
 * paho reports every failure of its TCP or TLS connect step with the same
 * "TCP/TLS connect failure" (-1), and OpenSSL's error queue (handed to
 * MQTTAsync_SSLOptions.ssl_error_cb) only says "certificate verify failed";
 * paho's own host name check (X509_check_host / X509_check_ip_asc after the
 * handshake) reports nothing at all. So after such a failure the reconnect
 * thread probes the broker itself: a plain TCP connect (refused,
 * unreachable, no answer), then over TLS a handshake of its own with the
 * OpenSSL paho's TLS library has loaded, verifying like paho (tls.ca_file,
 * the host name) and reading the verification's result: unknown CA,
 * expired, not yet valid, name mismatch. Without that OpenSSL the words come
 * from the error strings collected during paho's attempt.
 */
#include "mqtt/mqttc_int.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- the disconnect window -------------------------------------------- */

wb_status flap_init(struct flap_window *f, unsigned max_losses, unsigned window_s)
{
    memset(f, 0, sizeof(*f));
    f->max_losses = max_losses ? max_losses : FLAP_DEFAULT_DISCONNECTS;
    f->window_ms = (int64_t)(window_s ? window_s : FLAP_DEFAULT_WINDOW_S) * 1000;
    f->cap = f->max_losses + 1;
    f->t = calloc(f->cap, sizeof(*f->t));
    return f->t ? WB_OK : WB_ERR_NOMEM;
}

void flap_free(struct flap_window *f)
{
    free(f->t);
    f->t = NULL;
}

void flap_note(struct flap_window *f, int64_t now_ms)
{
    f->t[f->n % f->cap] = now_ms;
    f->n++;
}

/* The ring keeps the last max_losses + 1 loss times: flapping while the
 * oldest of them is still inside the window. */
bool flap_is_flapping(const struct flap_window *f, int64_t now_ms)
{
    if (!f->t || f->n < f->cap)
        return false;
    int64_t oldest = f->t[f->n % f->cap]; /* the slot written next */
    return now_ms - oldest < f->window_ms;
}

/* ---- OpenSSL's errors during a handshake ------------------------------ */

/* MQTTAsync_SSLOptions.ssl_error_cb: paho's thread, during a connect; one
 * line per queued OpenSSL error. Kept (the last ones, bounded) until the
 * failure is reported. */
int mqttc_ssl_error_cb(const char *str, size_t len, void *u)
{
    struct mqttc *c = u;
    wb_lock(&c->mu);
    size_t have = strlen(c->tls_errors);
    while (len && (str[len - 1] == '\n' || str[len - 1] == '\r'))
        len--;
    if (have + len + 3 < sizeof(c->tls_errors)) {
        if (have)
            memcpy(c->tls_errors + have, "; ", 2), have += 2;
        memcpy(c->tls_errors + have, str, len);
        c->tls_errors[have + len] = '\0';
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ---- a plain TCP probe ------------------------------------------------ */

/* 0 when host:port accepts a TCP connection within timeout_ms, else an
 * errno (ETIMEDOUT for no answer); a name that does not resolve gives
 * EHOSTUNREACH with its reason in why. With keep, *keep is the connected
 * socket (blocking, 2 s timeouts; the caller closes it). */
static int tcp_probe(const char *host, int port, int timeout_ms, char *why, size_t whylen,
                     int *keep)
{
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
    const char *h = host;
    char bare[256];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && hl < sizeof(bare) && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = '\0';
        h = bare;
    }
    int g = getaddrinfo(h, ps, &hints, &res);
    if (g != 0) {
        snprintf(why, whylen, "cannot resolve '%s': %s", host, gai_strerror(g));
        return EHOSTUNREACH;
    }
    int err = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            err = 0;
        } else if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n;
            while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
            if (n == 0) {
                err = ETIMEDOUT;
            } else {
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                err = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 ? soerr : errno;
            }
        }
        if (err == 0 && keep) {
            int fl = fcntl(fd, F_GETFL);
            struct timeval tv = {.tv_sec = timeout_ms / 1000,
                                 .tv_usec = (timeout_ms % 1000) * 1000};
            fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            *keep = fd;
            break;
        }
        close(fd);
        if (err == 0)
            break;
    }
    freeaddrinfo(res);
    return err;
}

/* ---- a TLS probe with the OpenSSL paho's TLS library loaded ----------- */

/* The few OpenSSL functions the probe needs, found in the libssl already in
 * the process (libpaho-mqtt3as links it): the bridge itself never links
 * OpenSSL. */
struct ossl {
    const void *(*client_method)(void);
    void *(*ctx_new)(const void *);
    void (*ctx_free)(void *);
    int (*load_verify)(void *, const char *, const char *);
    int (*default_paths)(void *);
    int (*use_chain)(void *, const char *);
    int (*use_key)(void *, const char *, int);
    void *(*ssl_new)(void *);
    void (*ssl_free)(void *);
    int (*set_fd)(void *, int);
    long (*ctrl)(void *, int, long, void *);
    int (*set1_host)(void *, const char *);
    void *(*get0_param)(void *);
    int (*set1_ip_asc)(void *, const char *);
    int (*connect)(void *);
    long (*verify_result)(const void *);
    const char *(*verify_text)(long);
};

static bool ossl_load(struct ossl *o)
{
    void *h = dlopen("libssl.so.3", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        h = dlopen("libssl.so.1.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return false;
    const char *names[] = {"TLS_client_method",
                           "SSL_CTX_new",
                           "SSL_CTX_free",
                           "SSL_CTX_load_verify_locations",
                           "SSL_CTX_set_default_verify_paths",
                           "SSL_CTX_use_certificate_chain_file",
                           "SSL_CTX_use_PrivateKey_file",
                           "SSL_new",
                           "SSL_free",
                           "SSL_set_fd",
                           "SSL_ctrl",
                           "SSL_set1_host",
                           "SSL_get0_param",
                           "X509_VERIFY_PARAM_set1_ip_asc",
                           "SSL_connect",
                           "SSL_get_verify_result",
                           "X509_verify_cert_error_string"};
    void **slots = (void **)o;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!(slots[i] = dlsym(h, names[i]))) {
            dlclose(h);
            return false;
        }
    dlclose(h); /* RTLD_NOLOAD: only a reference; paho keeps it loaded */
    return true;
}

/* X509_V_ERR_* codes the probe names (stable across OpenSSL versions). */
enum {
    V_OK = 0,
    V_NOT_YET_VALID = 9,
    V_EXPIRED = 10,
    V_SELF_SIGNED_LEAF = 18,
    V_SELF_SIGNED_CHAIN = 19,
    V_NO_LOCAL_ISSUER = 20,
    V_UNABLE_VERIFY_LEAF = 21,
    V_NO_ISSUER = 2,
    V_HOSTNAME_MISMATCH = 62,
    V_IP_MISMATCH = 64,
};

/* Verifies the broker's certificate the way paho does (ca_file or the
 * system's CAs, the host name when verify_hostname) on the connected fd and
 * says what is wrong with it. false when OpenSSL is not at hand or the
 * handshake gave no certificate to judge. */
static bool tls_probe(struct mqttc *c, int fd, char *out, size_t outlen)
{
    struct ossl o;
    if (!ossl_load(&o))
        return false;
    void *ctx = o.ctx_new(o.client_method());
    if (!ctx)
        return false;
    if (c->ca_file ? o.load_verify(ctx, c->ca_file, NULL) != 1 : o.default_paths(ctx) != 1) {
        o.ctx_free(ctx);
        return false;
    }
    if (c->cert_file && o.use_chain(ctx, c->cert_file) == 1)
        o.use_key(ctx, c->key_file ? c->key_file : c->cert_file, 1 /* SSL_FILETYPE_PEM */);
    void *ssl = o.ssl_new(ctx);
    bool judged = false;
    if (ssl && o.set_fd(ssl, fd) == 1) {
        struct in6_addr a6;
        struct in_addr a4;
        bool ip = inet_pton(AF_INET, c->host, &a4) == 1 || inet_pton(AF_INET6, c->host, &a6) == 1;
        if (!ip) /* SNI, as paho sends it: SSL_set_tlsext_host_name() */
            o.ctrl(ssl, 55 /* SSL_CTRL_SET_TLSEXT_HOSTNAME */, 0, (void *)c->host);
        if (c->verify_hostname) {
            if (ip)
                o.set1_ip_asc(o.get0_param(ssl), c->host);
            else
                o.set1_host(ssl, c->host);
        }
        /* SSL_VERIFY_NONE (the default): the handshake goes on and the
         * verification's result is kept for SSL_get_verify_result(). */
        int hs = o.connect(ssl);
        long v = o.verify_result(ssl);
        const char *vt = o.verify_text(v);
        judged = true;
        switch (v) {
        case V_OK:
            if (hs == 1)
                snprintf(out, outlen,
                         "TLS: the broker's certificate checks out, but the session failed "
                         "(client certificate refused?)");
            else
                judged = false;
            break;
        case V_EXPIRED:
            snprintf(out, outlen, "TLS: the broker's certificate has expired (OpenSSL: %s)", vt);
            break;
        case V_NOT_YET_VALID:
            snprintf(out, outlen, "TLS: the broker's certificate is not valid yet (OpenSSL: %s)",
                     vt);
            break;
        case V_NO_ISSUER:
        case V_SELF_SIGNED_LEAF:
        case V_SELF_SIGNED_CHAIN:
        case V_NO_LOCAL_ISSUER:
        case V_UNABLE_VERIFY_LEAF:
            snprintf(out, outlen,
                     "TLS: unknown CA: the broker's certificate is not signed by %s (OpenSSL: %s)",
                     c->ca_file ? "tls.ca_file" : "a CA of the system", vt);
            break;
        case V_HOSTNAME_MISMATCH:
        case V_IP_MISMATCH:
            snprintf(out, outlen,
                     "TLS: name mismatch: the broker's certificate is valid but does not name "
                     "'%s' (OpenSSL: %s); mqtt.tls.verify_hostname: false turns this check off",
                     c->host, vt);
            break;
        default:
            snprintf(out, outlen, "TLS: the broker's certificate is not accepted (OpenSSL: %s)",
                     vt);
        }
    }
    if (ssl)
        o.ssl_free(ssl);
    o.ctx_free(ctx);
    return judged;
}

/* ---- the words of a failed connect ------------------------------------ */

static bool has(const char *s, const char *part)
{
    return strstr(s, part) != NULL;
}

/* OpenSSL's "Verify error:<reason>" (OpenSSL 3 adds it to "certificate verify
 * failed") turned into the cause a user looks for. */
static void tls_cause(const char *errs, char *out, size_t outlen)
{
    const char *v = strstr(errs, "Verify error:");
    char reason[200] = "";
    if (v) {
        v += strlen("Verify error:");
        size_t n = strcspn(v, ";:\n");
        snprintf(reason, sizeof(reason), "%.*s", (int)n, v);
    }
    if (has(errs, "certificate has expired"))
        snprintf(out, outlen, "TLS: the broker's certificate has expired (OpenSSL: %s)", errs);
    else if (has(errs, "certificate is not yet valid"))
        snprintf(out, outlen, "TLS: the broker's certificate is not valid yet (OpenSSL: %s)", errs);
    else if (has(errs, "local issuer") || has(errs, "self-signed") || has(errs, "self signed") ||
             has(errs, "unable to get issuer") || has(errs, "unable to verify the first"))
        snprintf(out, outlen,
                 "TLS: unknown CA: the broker's certificate is not signed by tls.ca_file (or the "
                 "system CAs without one) (OpenSSL: %s)",
                 reason[0] ? reason : errs);
    else if (has(errs, "hostname mismatch") || has(errs, "IP address mismatch"))
        snprintf(out, outlen, "TLS: name mismatch (OpenSSL: %s)", errs);
    else if (has(errs, "wrong version number") || has(errs, "packet length too long"))
        snprintf(out, outlen,
                 "TLS handshake failed: the port does not speak TLS (plain MQTT?) (OpenSSL: %s)",
                 errs);
    else if (has(errs, "alert"))
        snprintf(out, outlen,
                 "TLS: the broker refused the handshake (client certificate missing or not "
                 "accepted?) (OpenSSL: %s)",
                 errs);
    else
        snprintf(out, outlen, "TLS handshake failed (OpenSSL: %s)", errs);
}

void mqttc_diagnose(struct mqttc *c, const char *tls_errors, char *out, size_t outlen)
{
    char why[300] = "";
    int fd = -1;
    int e = tcp_probe(c->host, c->port, 2000, why, sizeof(why), c->tls ? &fd : NULL);
    if (e != 0) {
        if (why[0])
            snprintf(out, outlen, "%s", why);
        else if (e == ECONNREFUSED)
            snprintf(out, outlen, "connection refused by %s:%d (no broker listening there?)",
                     c->host, c->port);
        else if (e == ETIMEDOUT)
            snprintf(out, outlen, "no answer from %s:%d within 2 s", c->host, c->port);
        else
            snprintf(out, outlen, "cannot reach %s:%d: %s", c->host, c->port, strerror(e));
        return;
    }
    if (!c->tls) {
        snprintf(out, outlen, "TCP connect to %s:%d failed, but the port answers now", c->host,
                 c->port);
        return;
    }
    bool judged = tls_probe(c, fd, out, outlen);
    close(fd);
    if (judged)
        return;
    if (tls_errors[0])
        tls_cause(tls_errors, out, outlen);
    else if (c->verify_hostname)
        snprintf(out, outlen,
                 "TLS: name mismatch: the broker's certificate is valid but does not name '%s' "
                 "(subjectAltName); mqtt.tls.verify_hostname: false turns this check off",
                 c->host);
    else
        snprintf(out, outlen, "TLS handshake failed: the broker closed the connection");
}

void mqttc_reason(struct mqttc *c, int rc, const char *msg, char *out, size_t outlen)
{
    if (rc >= 0x80 && !c->v5)
        snprintf(out, outlen, "broker refused (0x%02X; MQTT 3.1.1 gives no reason)", rc);
    else if (rc >= 0) {
        const char *t = c->api->reason_text((enum MQTTReasonCodes)rc);
        snprintf(out, outlen, "%s%s (0x%02X)", rc >= 0x80 ? "broker refused: " : "",
                 t ? t : "unknown reason code", rc);
    } else if (msg && msg[0])
        snprintf(out, outlen, "%s (paho %d)", msg, rc);
    else
        snprintf(out, outlen, "%s (paho %d)", c->api->strerror(rc), rc);
}

/* MQTT 3.1.1 CONNACK return codes; paho reports them as the failure code
 * with the bare message "CONNACK return code". */
const char *mqttc_connack_text(int code)
{
    switch (code) {
    case 1:
        return "unacceptable protocol version (set mqtt.protocol: 3.1.1 for this broker?)";
    case 2:
        return "client identifier rejected";
    case 3:
        return "server unavailable";
    case 4:
        return "bad user name or password";
    case 5:
        return "not authorized";
    default:
        return NULL;
    }
}

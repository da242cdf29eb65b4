/*
 * mqttc_diag.c - why a connection failed or keeps failing (see mqttc.c's
 * top): the disconnect window behind mqttc_stats.flapping, OpenSSL's error
 * strings collected during a TLS handshake, and the words a user can act on
 * for a failed connect ("connection refused", "unknown CA", "name
 * mismatch").
 *
 * paho reports every failure of its TCP or TLS connect step with the same
 * "TCP/TLS connect failure" (-1). Two things tell them apart: OpenSSL's error
 * queue, which paho hands to MQTTAsync_SSLOptions.ssl_error_cb during the
 * handshake (a chain the CA does not sign or an expired certificate give
 * "certificate verify failed" with "Verify error:<reason>"), and a plain TCP
 * probe of the broker's address made by the reconnect thread after the
 * failure (refused, unreachable, no answer). A TLS failure with a reachable
 * broker and nothing in OpenSSL's queue is paho's own host name check
 * (X509_check_host / X509_check_ip_asc after the handshake), which reports
 * nothing else.
 */
#include "mqtt/mqttc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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
    pthread_mutex_lock(&c->mu);
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
 * EHOSTUNREACH with its reason in why. */
static int tcp_probe(const char *host, int port, int timeout_ms, char *why, size_t whylen)
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
        close(fd);
        if (err == 0)
            break;
    }
    freeaddrinfo(res);
    return err;
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
    int e = tcp_probe(c->host, c->port, 2000, why, sizeof(why));
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

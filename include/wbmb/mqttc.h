/*
 * mqttc.h - the MQTT connection (paho.mqtt.c MQTTAsync).
 *
 * Owns one asynchronous client that connects, keeps itself connected
 * (reconnect for ever with exponential backoff, 1 s doubling to 30 s),
 * resubscribes to its subscription set after every (re)connect, and carries
 * a Last Will. Callbacks run on paho's own thread: they must be short and
 * must not touch state owned by another thread (hand the data to a queue).
 *
 * Thread safety: mqttc_publish() and mqttc_is_connected() may be called from
 * any thread; create/start/set_subscriptions/stop/destroy from one thread.
 */
#ifndef WBMB_MQTTC_H
#define WBMB_MQTTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wbmb/status.h"

struct mqttc;

struct mqttc_options {
    const char *host; /* "127.0.0.1" */
    int port;         /* 1883 */
    const char *client_id;
    const char *username; /* NULL = none */
    const char *password; /* NULL = none; never logged */
    unsigned keepalive_s;
    int protocol; /* 5 (MQTT 5, also when 0) or 4 (MQTT 3.1.1) */
    /* More than flap_disconnects losses within flap_window_s seconds make the
     * connection "flapping" (mqttc_stats.flapping); 0 = the defaults 3 / 60. */
    unsigned flap_disconnects, flap_window_s;
    bool tls;
    const char *ca_file, *cert_file, *key_file; /* NULL = not used (system CAs) */
    bool verify_hostname;                       /* TLS: the certificate must name host */
    const char *will_topic;                     /* NULL = no Last Will */
    const char *will_payload;
    bool will_retained;
    int will_qos;
    /* The first connect attempt waits this long (0: at once). A second
     * client of the same process (the Home Assistant presence connection)
     * starts later: Debian's paho 1.3.11 can leave two connects begun in the
     * same instant both waiting for their socket until the connect timeout,
     * every retry again (see mqttc.c, schedule_retry_locked). */
    unsigned start_delay_ms;
    /* A second client of the process (the Home Assistant presence
     * connection): load the other paho library (libpaho-mqtt3as for a
     * plain connection), so that it has its own threads and socket list.
     * Debian's paho 1.3.11 adds a new socket to the list its receive thread
     * is polling without the lock (fixed upstream in 1.3.12, #1219 #1290):
     * a connect begun while another client of the same library is
     * connected could go unnoticed until the connect timeout, the broker
     * logging a connection that never sent CONNECT. With TLS both clients
     * need libpaho-mqtt3as and share it. */
    bool own_library;
};

/* A message arrived (paho thread). topic is NUL-terminated; payload is not,
 * and is valid only during the call. */
typedef void (*mqttc_message_cb)(void *ud, const char *topic, const void *payload, size_t len,
                                 bool retained);
/* The connection went up (connected = true, after the subscriptions were
 * requested) or down (paho thread). */
typedef void (*mqttc_connection_cb)(void *ud, bool connected);

struct mqttc_stats {
    bool connected;
    uint64_t connects;    /* successful connects, the first included */
    uint64_t disconnects; /* connection losses */
    uint64_t published;   /* publish requests accepted */
    uint64_t publish_failures;
    uint64_t received; /* messages delivered to the message callback */
    bool flapping;     /* more than flap_disconnects losses in the last flap_window_s */
    uint64_t subscriptions_refused; /* filters a SUBACK refused (reason code >= 0x80) */
    uint64_t publish_refused;       /* acknowledged publications the broker refused */
    uint64_t coalesced; /* retained publications replaced by a newer one of the same topic
                           before they were sent (outbox.h): the broker got the newer only */
    int protocol;       /* 5 or 4 (3.1.1), as configured */
};

/* The outcome of a publication made with mqttc_publish_acked(), called once:
 * rc 0 when the broker acknowledged it (PUBACK, a reason code below 0x80),
 * else rc is the MQTT 5 reason code (>= 0x80) or a negative paho code, and
 * why says what happened ("broker refused: Not authorized (0x87)"). Runs on
 * paho's or the sender's thread (never inside mqttc_publish_acked()); why is
 * valid during the call only. */
typedef void (*mqttc_ack_cb)(void *ud, uint64_t token, int rc, const char *why);

/* Creates a client (does not connect). Returns NULL on failure with a
 * reason in err. Strings in opts are copied. */
struct mqttc *mqttc_create(const struct mqttc_options *opts, mqttc_message_cb on_message,
                           mqttc_connection_cb on_connection, void *ud, char *err, size_t errlen);

/* Starts connecting in the background and returns at once; keeps
 * reconnecting for ever until mqttc_stop(). */
wb_status mqttc_start(struct mqttc *c);

/* Replaces the subscription set (topic filters, QoS 0 or given qos): applied
 * now when connected, and after every reconnect. The strings are copied. */
wb_status mqttc_set_subscriptions(struct mqttc *c, const char *const *filters, size_t n, int qos);

/* Queues a publication. Fails with WB_ERR_MQTT when not connected (read
 * without a lock). Order: publications ordered by happens-before in their
 * callers (one thread, or threads that synchronise with each other) are sent
 * in that order, but a retained one that coalesces with a queued one of its
 * topic takes that one's place; concurrent ones that nothing orders have no
 * order. Needs no lock of the caller for it. */
wb_status mqttc_publish(struct mqttc *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retained);

/* mqttc_publish() with an outcome: QoS 1 or 2 (the broker answers), never
 * retained. WB_OK when queued: ack(ud, token, ...) is then called exactly
 * once, later, on another thread. Any other status: refused at once (not
 * connected), and ack is not called. */
wb_status mqttc_publish_acked(struct mqttc *c, const char *topic, const void *payload, size_t len,
                              int qos, mqttc_ack_cb ack, void *ud, uint64_t token);

/* Publications queued by mqttc_publish() and not yet handed to paho (0 for
 * NULL); takes no lock. A producer of many publications (the republish after a connect)
 * keeps this bounded instead of queueing everything at once. */
size_t mqttc_backlog(struct mqttc *c);

bool mqttc_is_connected(struct mqttc *c);
void mqttc_get_stats(struct mqttc *c, struct mqttc_stats *out);

/* Waits up to timeout_ms for every publication queued so far to be handed to
 * the broker, then disconnects cleanly (no Last Will sent). */
void mqttc_stop(struct mqttc *c, unsigned timeout_ms);

/* mqttc_destroy(NULL) is a no-op; stops first if needed. */
void mqttc_destroy(struct mqttc *c);

#endif

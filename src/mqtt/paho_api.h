/*
 * paho_api.h - paho.mqtt.c's asynchronous client, loaded at run time.
 *
 * Debian ships the client twice: libpaho-mqtt3a (plain TCP) and
 * libpaho-mqtt3as (TLS, linked with OpenSSL). Linking the TLS one costs
 * every bridge about 2 MB of resident libssl/libcrypto pages even when the
 * broker is on localhost without TLS. The bridge therefore links neither:
 * mqttc asks for the variant its configuration needs and calls it through
 * this table. Both can be loaded in one process (each RTLD_LOCAL, each with
 * its own globals); a client is always driven by the table that made it.
 */
#ifndef WBMB_MQTT_PAHO_API_H
#define WBMB_MQTT_PAHO_API_H

#include <stdbool.h>
#include <stddef.h>

#include <MQTTAsync.h>

#ifndef WBMB_PAHO_PLAIN_SO
#define WBMB_PAHO_PLAIN_SO "libpaho-mqtt3a.so.1"
#endif
#ifndef WBMB_PAHO_TLS_SO
#define WBMB_PAHO_TLS_SO "libpaho-mqtt3as.so.1"
#endif

struct paho_api {
    const char *library; /* the file name it was loaded from */
    __typeof__(MQTTAsync_global_init) *global_init;
    __typeof__(MQTTAsync_create) *create;
    __typeof__(MQTTAsync_createWithOptions) *create_with_options; /* MQTT 5 */
    __typeof__(MQTTAsync_setDisconnected) *set_disconnected;      /* server DISCONNECT (5) */
    __typeof__(MQTTReasonCode_toString) *reason_text;             /* MQTT 5 reason codes */
    __typeof__(MQTTAsync_setCallbacks) *set_callbacks;
    __typeof__(MQTTAsync_connect) *connect;
    __typeof__(MQTTAsync_disconnect) *disconnect;
    __typeof__(MQTTAsync_destroy) *destroy;
    __typeof__(MQTTAsync_subscribeMany) *subscribe_many;
    __typeof__(MQTTAsync_unsubscribeMany) *unsubscribe_many;
    __typeof__(MQTTAsync_send) *send;
    __typeof__(MQTTAsync_getPendingTokens) *get_pending_tokens;
    __typeof__(MQTTAsync_freeMessage) *free_message;
    __typeof__(MQTTAsync_free) *free;
    __typeof__(MQTTAsync_strerror) *strerror;
};

/* The client library for plain TCP (tls false) or TLS, loaded on first use
 * and kept for the life of the process. NULL with a reason in err when the
 * library or one of its functions cannot be found. Thread-safe. */
const struct paho_api *paho_api(bool tls, char *err, size_t errlen);

#endif

/*
 * paho_api.c - loads libpaho-mqtt3a or libpaho-mqtt3as (see paho_api.h).
 */
#include "mqtt/paho_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "wbmb/lockstat.h"

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static struct paho_api apis[2]; /* [0] plain, [1] TLS */
static bool loaded[2];

/* Resolves one symbol into *slot; false (err set) when missing. */
static bool sym(void *h, const char *lib, const char *name, void *slot, char *err, size_t errlen)
{
    void *p = dlsym(h, name);
    if (!p) {
        snprintf(err, errlen, "%s has no %s", lib, name);
        return false;
    }
    *(void **)slot = p;
    return true;
}

/* Debian's paho is built without HIGH_PERFORMANCE, so its trace level
 * starts at TRACE_MINIMUM: every protocol event is formatted with
 * vsnprintf into an in-memory ring under a mutex, and every function entry
 * and exit is recorded in it, whether or not a trace is ever read (no
 * callback, no file). That was ~5 000 instructions per received message,
 * the largest single item of the bridge's profile. Raising the level to
 * errors only leaves the formatting undone. A user debugging paho with
 * MQTT_C_CLIENT_TRACE or MQTT_C_CLIENT_TRACE_LEVEL keeps what they asked. */
static void quiet_trace(void *h)
{
    const char *t = getenv("MQTT_C_CLIENT_TRACE"), *l = getenv("MQTT_C_CLIENT_TRACE_LEVEL");
    if ((t && *t) || (l && *l))
        return;
    __typeof__(MQTTAsync_setTraceLevel) *set = NULL;
    *(void **)&set = dlsym(h, "MQTTAsync_setTraceLevel");
    if (set)
        set(MQTTASYNC_TRACE_ERROR);
}

static bool load(struct paho_api *a, const char *lib, char *err, size_t errlen)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, errlen, "cannot load the MQTT client library %s: %s (install %s)", lib,
                 why ? why : "unknown error", "libpaho-mqtt1.3");
        return false;
    }
    a->library = lib;
    if (sym(h, lib, "MQTTAsync_global_init", &a->global_init, err, errlen) &&
        sym(h, lib, "MQTTAsync_create", &a->create, err, errlen) &&
        sym(h, lib, "MQTTAsync_createWithOptions", &a->create_with_options, err, errlen) &&
        sym(h, lib, "MQTTAsync_setDisconnected", &a->set_disconnected, err, errlen) &&
        sym(h, lib, "MQTTReasonCode_toString", &a->reason_text, err, errlen) &&
        sym(h, lib, "MQTTAsync_setCallbacks", &a->set_callbacks, err, errlen) &&
        sym(h, lib, "MQTTAsync_connect", &a->connect, err, errlen) &&
        sym(h, lib, "MQTTAsync_disconnect", &a->disconnect, err, errlen) &&
        sym(h, lib, "MQTTAsync_destroy", &a->destroy, err, errlen) &&
        sym(h, lib, "MQTTAsync_subscribeMany", &a->subscribe_many, err, errlen) &&
        sym(h, lib, "MQTTAsync_unsubscribeMany", &a->unsubscribe_many, err, errlen) &&
        sym(h, lib, "MQTTAsync_send", &a->send, err, errlen) &&
        sym(h, lib, "MQTTAsync_getPendingTokens", &a->get_pending_tokens, err, errlen) &&
        sym(h, lib, "MQTTAsync_freeMessage", &a->free_message, err, errlen) &&
        sym(h, lib, "MQTTAsync_free", &a->free, err, errlen) &&
        sym(h, lib, "MQTTAsync_strerror", &a->strerror, err, errlen)) {
        quiet_trace(h);
        return true;
    }
    dlclose(h);
    return false;
}

const struct paho_api *paho_api(bool tls, char *err, size_t errlen)
{
    int i = tls ? 1 : 0;
    wb_lock(&load_mu);
    if (!loaded[i])
        loaded[i] = load(&apis[i], tls ? WBMB_PAHO_TLS_SO : WBMB_PAHO_PLAIN_SO, err, errlen);
    const struct paho_api *a = loaded[i] ? &apis[i] : NULL;
    pthread_mutex_unlock(&load_mu);
    return a;
}

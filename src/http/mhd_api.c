/*
 * mhd_api.c - loads libmicrohttpd (see mhd_api.h).
 */
#include "http/mhd_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

const struct mhd_api *mhd;

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mhd_api table;

static bool sym(void *h, const char *name, void *slot, char *err, size_t errlen)
{
    void *p = dlsym(h, name);
    if (!p) {
        snprintf(err, errlen, "%s has no %s", WBMB_MHD_SO, name);
        return false;
    }
    *(void **)slot = p;
    return true;
}

const struct mhd_api *mhd_api_load(char *err, size_t errlen)
{
    pthread_mutex_lock(&load_mu);
    if (!mhd) {
        void *h = dlopen(WBMB_MHD_SO, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *why = dlerror();
            snprintf(err, errlen, "cannot load %s for the HTTP API: %s (install libmicrohttpd12)",
                     WBMB_MHD_SO, why ? why : "unknown error");
        } else if (sym(h, "MHD_start_daemon", &table.start_daemon, err, errlen) &&
                   sym(h, "MHD_stop_daemon", &table.stop_daemon, err, errlen) &&
                   sym(h, "MHD_get_daemon_info", &table.get_daemon_info, err, errlen) &&
                   sym(h, "MHD_get_connection_info", &table.get_connection_info, err, errlen) &&
                   sym(h, "MHD_lookup_connection_value", &table.lookup_connection_value, err,
                       errlen) &&
                   sym(h, "MHD_create_response_from_buffer", &table.create_response_from_buffer,
                       err, errlen) &&
                   sym(h, "MHD_create_response_from_callback", &table.create_response_from_callback,
                       err, errlen) &&
                   sym(h, "MHD_add_response_header", &table.add_response_header, err, errlen) &&
                   sym(h, "MHD_queue_response", &table.queue_response, err, errlen) &&
                   sym(h, "MHD_destroy_response", &table.destroy_response, err, errlen)) {
            mhd = &table;
        } else {
            dlclose(h);
        }
    }
    const struct mhd_api *a = mhd;
    pthread_mutex_unlock(&load_mu);
    return a;
}

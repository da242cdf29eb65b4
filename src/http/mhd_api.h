/*
 * mhd_api.h - libmicrohttpd, loaded when the HTTP API is switched on.
 *
 * Debian's libmicrohttpd links GnuTLS, which with its own dependencies
 * (p11-kit, nettle, gmp, ...) costs about 2.3 MB of resident pages at
 * start-up. A bridge with `http.listen: ""` never needs any of it, so the
 * daemon does not link the library: http_start() loads it and every call
 * goes through the `mhd` table, set once before the first HTTP thread runs.
 */
#ifndef WBMB_HTTP_MHD_API_H
#define WBMB_HTTP_MHD_API_H

#include <stddef.h>

#include <microhttpd.h>

#ifndef WBMB_MHD_SO
#define WBMB_MHD_SO "libmicrohttpd.so.12"
#endif

struct mhd_api {
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_get_daemon_info) *get_daemon_info;
    __typeof__(MHD_get_connection_info) *get_connection_info;
    __typeof__(MHD_lookup_connection_value) *lookup_connection_value;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_create_response_from_callback) *create_response_from_callback;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
};

/* Loads the library once (thread-safe); then `mhd` is set. NULL with a
 * reason in err when the library or a function is missing. */
const struct mhd_api *mhd_api_load(char *err, size_t errlen);

/* The loaded table; NULL before a successful mhd_api_load(). */
extern const struct mhd_api *mhd;

#endif

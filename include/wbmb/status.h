/*
 * status.h - the one status enum of wb-mqtt-bridge.
 *
 * Every fallible function of the project returns a wb_status (0 = WB_OK).
 * Human detail goes to the log or to a caller-supplied error buffer;
 * wb_strerror() gives a short fixed text for each code.
 */
#ifndef WBMB_STATUS_H
#define WBMB_STATUS_H

typedef enum wb_status {
    WB_OK = 0,
    WB_ERR_NOMEM,     /* an allocation failed */
    WB_ERR_INVALID,   /* bad argument or malformed input */
    WB_ERR_NOT_FOUND, /* key, device, action or file absent */
    WB_ERR_IO,        /* operating-system I/O error */
    WB_ERR_DB,        /* SQLite error not covered below */
    WB_ERR_FULL,      /* disk or database full */
    WB_ERR_READONLY,  /* database or file system read-only */
    WB_ERR_CORRUPT,   /* database file corrupt or not a database */
    WB_ERR_VERSION,   /* database schema newer than this binary */
    WB_ERR_BUSY,      /* resource busy (a switch already running, queue full) */
    WB_ERR_CONFIG,    /* invalid configuration */
    WB_ERR_MQTT,      /* MQTT client error */
    WB_ERR_RANGE,     /* value out of the allowed range */
    WB_ERR_UNSUPPORTED,
    WB_STATUS_COUNT_
} wb_status;

/* Returns a static, never-NULL text for a status code. */
const char *wb_strerror(wb_status st);

#endif

/*
 * status.c - texts for the wb_status codes.
 */
#include "wbmb/status.h"

static const char *const texts[WB_STATUS_COUNT_] = {
    [WB_OK] = "ok",
    [WB_ERR_NOMEM] = "out of memory",
    [WB_ERR_INVALID] = "invalid input",
    [WB_ERR_NOT_FOUND] = "not found",
    [WB_ERR_IO] = "I/O error",
    [WB_ERR_DB] = "database error",
    [WB_ERR_FULL] = "disk or database full",
    [WB_ERR_READONLY] = "read-only database or file system",
    [WB_ERR_CORRUPT] = "database corrupt",
    [WB_ERR_VERSION] = "database schema is newer than this program",
    [WB_ERR_BUSY] = "busy",
    [WB_ERR_CONFIG] = "invalid configuration",
    [WB_ERR_MQTT] = "MQTT error",
    [WB_ERR_RANGE] = "out of range",
    [WB_ERR_UNSUPPORTED] = "unsupported",
};

const char *wb_strerror(wb_status st)
{
    if ((unsigned)st >= WB_STATUS_COUNT_ || !texts[st])
        return "unknown error";
    return texts[st];
}

/*
 * app.h - start-up, the core loop and shutdown of the daemon.
 */
#ifndef WBMB_APP_H
#define WBMB_APP_H

#include <stdbool.h>

#include "wbmb/log.h"

/* Exit codes of CONTRACT §2. */
enum app_exit { APP_EXIT_OK = 0, APP_EXIT_FAILURE = 1, APP_EXIT_USAGE = 2, APP_EXIT_CONFIG = 6 };

struct app_options {
    const char *config_path;
    bool log_level_given; /* --log-level overrides the config's log.level */
    enum log_level log_level;
};

/* Runs the daemon in the foreground until SIGTERM/SIGINT; returns the exit
 * code. */
int app_run(const struct app_options *opts);

#endif

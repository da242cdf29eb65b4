/*
 * store_lock.h - one writer process per database: the lock file
 * <db_path>.lock, held with an exclusive POSIX record lock (fcntl F_SETLK)
 * for the life of the daemon or of a `state import`.
 *
 * The kernel drops the lock when its holder dies (kill -9, power cut), so a
 * stale lock file never blocks a start; the file itself stays (unlinking it
 * would race with a process that has just opened it). F_GETLK names the
 * holder's PID, which the file also holds in text for humans.
 */
#ifndef WBMB_STORE_LOCK_H
#define WBMB_STORE_LOCK_H

#include <stddef.h>

#include "wbmb/status.h"

struct store_lock;

/* Creates db_path's parent folders and the lock file when missing and takes
 * the lock. WB_OK: *out holds it (free with store_lock_release). WB_ERR_BUSY:
 * another process holds it and *holder is its PID. Anything else: err holds
 * a one-line reason. *out is NULL on failure. */
wb_status store_lock_acquire(const char *db_path, struct store_lock **out, long *holder, char *err,
                             size_t errlen);

/* Releases the lock and frees l; NULL is a no-op. */
void store_lock_release(struct store_lock *l);

/* The PID of the process holding db_path's lock, 0 when none holds it (or
 * there is no lock file), -1 when it cannot be told (err holds why). Never
 * creates anything. */
long store_lock_holder(const char *db_path, char *err, size_t errlen);

#endif

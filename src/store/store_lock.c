/*
 * store_lock.c - the per-database lock file (see wbmb/store_lock.h).
 *
 * Owns one open descriptor of <db_path>.lock with a write lock on its whole
 * length. POSIX record locks belong to the process and are dropped when it
 * closes any descriptor of the file, so this module is the only code that
 * opens it, and opens it once. Invariant: while a struct store_lock exists,
 * no other process holds the lock.
 *
 *   absent/unlocked --store_lock_acquire()--> held --store_lock_release()
 *          ^                                   |     or process death
 *          +-----------------------------------+
 */
#include "wbmb/store_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wbmb/util.h"

struct store_lock {
    int fd;
};

static void lock_path(const char *db_path, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s.lock", db_path);
}

/* F_GETLK on fd: the holder's PID, 0 when free, -1 on error. */
static long holder_of(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_GETLK, &fl) != 0)
        return -1;
    return fl.l_type == F_UNLCK ? 0 : (long)fl.l_pid;
}

wb_status store_lock_acquire(const char *db_path, struct store_lock **out, long *holder, char *err,
                             size_t errlen)
{
    char path[4200];
    struct store_lock *l = NULL;
    wb_status st = WB_ERR_IO;
    *out = NULL;
    *holder = 0;
    lock_path(db_path, path, sizeof(path));
    if (util_mkdir_parents(db_path) != WB_OK) {
        snprintf(err, errlen, "%s: cannot create parent folders: %s", db_path, strerror(errno));
        goto fail;
    }
    st = WB_ERR_NOMEM;
    if (!(l = calloc(1, sizeof(*l))))
        goto fail;
    st = WB_ERR_IO;
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        snprintf(err, errlen, "%s: cannot open the lock file: %s", path, strerror(errno));
        goto fail;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(l->fd, F_SETLK, &fl) != 0) {
        if (errno != EACCES && errno != EAGAIN) {
            snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
            goto fail;
        }
        *holder = holder_of(l->fd);
        snprintf(err, errlen, "database in use by PID %ld", *holder);
        st = WB_ERR_BUSY;
        goto fail;
    }
    /* The PID in text, for a human with cat; F_GETLK is what we trust. */
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)n, 0) != n) {
        /* Not fatal: the lock itself is held. */
    }
    *out = l;
    return WB_OK;
fail:
    store_lock_release(l);
    return st;
}

void store_lock_release(struct store_lock *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd); /* drops the lock */
    free(l);
}

long store_lock_holder(const char *db_path, char *err, size_t errlen)
{
    char path[4200];
    lock_path(db_path, path, sizeof(path));
    /* F_GETLK tests a write lock on a read-only descriptor too. Never call
     * this in the process holding the lock: closing fd would drop it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    long pid = holder_of(fd);
    if (pid < 0)
        snprintf(err, errlen, "%s: cannot test the lock: %s", path, strerror(errno));
    close(fd);
    return pid;
}

/*
 * crashvfs.c - the power-cut simulator: a VFS shim over SQLite's default
 * (unix) VFS, after SQLite's crash VFS (test_vfs.c / crash*.test).
 *
 * The model. A file's bytes are durable once an xSync of that file has
 * returned; everything written to it since then sits in a volatile cache
 * that a power cut loses (CV_DROP) or tears (CV_TORN: every 512-byte sector
 * touched since the sync independently ends up in any one of its versions
 * - as of the sync, or after any one of the writes to it since - so
 * writes land partly and in any order). The shim reports what an SD card
 * or eMMC guarantees: xDeviceCharacteristics 0 (no atomic writes, no
 * sequential ordering, no powersafe overwrite) and 512-byte sectors, so
 * SQLite takes no shortcut it would take on a better device.
 *
 * How it is simulated, and why that is correct. Every write goes through
 * to the real file at once (so the child, its reads and SQLite's -shm
 * behave exactly as on a real file system, and a plain kill -9 is
 * CV_KILL: the page cache survives). Before each write (and truncate) the
 * shim appends to a journal in a MAP_SHARED region mapped before fork()
 * the bytes the write will overwrite (its pre-image; zeros beyond the end
 * of the file), marking the entry valid only once it is complete, and only
 * then writes. xSync of a file marks that file's entries synced (and the
 * file's size durable). The child is killed with SIGKILL at a random
 * moment; the region survives it, so the parent sees exactly the writes
 * issued and not yet synced. Killed between journal and write, the entry's
 * pre-image equals the file: restoring it is a no-op; killed before the
 * entry is valid, the write had not been issued. Rolling back unsynced
 * entries newest first therefore yields the file as of its last sync
 * (CV_DROP, then truncated to the synced size); for CV_TORN each sector
 * gets a random cut-off k and only the writes from its k-th on are undone
 * (newest first, restricted to that sector). The real fsync is skipped:
 * the simulation decides what is durable, and the tests run faster.
 *
 * Only the process that registered the shim writes the journal (its
 * threads under one mutex); the parent reads it after waitpid().
 */
#include "crashvfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct cv_entry {
    uint32_t valid, synced;
    int32_t file;
    uint32_t len;
    int64_t off;
    unsigned char pre[];
};

struct cv_file {
    sqlite3_file base;
    sqlite3_file *real;
    int slot; /* index in sh->files, -1 = not tracked (temp files) */
};

static struct cv_shared *g_sh;
static sqlite3_vfs *g_real;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

uint64_t cv_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

struct cv_shared *cv_shared_create(size_t log_cap)
{
    size_t len = sizeof(struct cv_shared) + log_cap;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct cv_shared *sh = p;
    memset(sh, 0, sizeof(*sh));
    sh->log_cap = log_cap;
    return sh;
}

void cv_shared_destroy(struct cv_shared *sh)
{
    if (sh)
        munmap(sh, sizeof(*sh) + sh->log_cap);
}

void cv_shared_reset(struct cv_shared *sh)
{
    size_t cap = sh->log_cap;
    memset(sh, 0, sizeof(*sh));
    sh->log_cap = cap;
}

static size_t entry_size(uint32_t len)
{
    return (sizeof(struct cv_entry) + len + 7) & ~(size_t)7;
}

/* ---- the shim's io methods ------------------------------------------------ */

#define REAL(f) (((struct cv_file *)(f))->real)

/* Journals the pre-image of [off, off+len) of a tracked file. */
static int journal(struct cv_file *f, int64_t off, int64_t len)
{
    if (f->slot < 0 || len <= 0)
        return SQLITE_OK;
    pthread_mutex_lock(&g_mu);
    size_t need = entry_size((uint32_t)len);
    int rc = SQLITE_OK;
    if (g_sh->log_used + need > g_sh->log_cap) {
        g_sh->overflow = 1;
        rc = SQLITE_IOERR_WRITE;
        goto out;
    }
    struct cv_entry *e = (struct cv_entry *)(g_sh->log + g_sh->log_used);
    e->valid = 0;
    e->synced = 0;
    e->file = f->slot;
    e->len = (uint32_t)len;
    e->off = off;
    rc = f->real->pMethods->xRead(f->real, e->pre, (int)len, off);
    if (rc == SQLITE_IOERR_SHORT_READ) /* zero-filled past the end */
        rc = SQLITE_OK;
    if (rc != SQLITE_OK)
        goto out;
    __atomic_store_n(&e->valid, 1, __ATOMIC_SEQ_CST);
    g_sh->log_used += need;
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static int cv_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int cv_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int cv_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    int rc = journal((struct cv_file *)f, off, amt);
    return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int cv_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    sqlite3_int64 cur = 0;
    int rc = REAL(f)->pMethods->xFileSize(REAL(f), &cur);
    if (rc == SQLITE_OK && cur > size)
        rc = journal((struct cv_file *)f, size, cur - size);
    return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int cv_sync(sqlite3_file *f, int flags)
{
    (void)flags;
    struct cv_file *cf = (struct cv_file *)f;
    if (cf->slot < 0)
        return SQLITE_OK;
    sqlite3_int64 size = 0;
    int rc = cf->real->pMethods->xFileSize(cf->real, &size);
    if (rc != SQLITE_OK)
        return rc;
    pthread_mutex_lock(&g_mu);
    bool all = true;
    for (size_t at = 0; at < g_sh->log_used;) {
        struct cv_entry *e = (struct cv_entry *)(g_sh->log + at);
        if (e->file == cf->slot)
            e->synced = 1;
        all = all && e->synced;
        at += entry_size(e->len);
    }
    g_sh->files[cf->slot].synced_size = size;
    if (all)
        g_sh->log_used = 0;
    pthread_mutex_unlock(&g_mu);
    return SQLITE_OK;
}

static int cv_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int cv_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int cv_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int cv_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int cv_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int cv_sector_size(sqlite3_file *f)
{
    (void)f;
    return CV_SECTOR;
}

static int cv_device_characteristics(sqlite3_file *f)
{
    (void)f;
    return 0; /* an SD card / eMMC: no atomic, sequential or powersafe writes */
}

/* The -shm file is memory shared between connections, rebuilt by WAL
 * recovery after a crash: passed through, never journalled. */
static int cv_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int cv_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void cv_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int cv_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: shared memory, but no xFetch, so SQLite never reads through
 * mmap behind the shim's back. */
static const sqlite3_io_methods cv_io = {
    .iVersion = 2,
    .xClose = cv_close,
    .xRead = cv_read,
    .xWrite = cv_write,
    .xTruncate = cv_truncate,
    .xSync = cv_sync,
    .xFileSize = cv_file_size,
    .xLock = cv_lock,
    .xUnlock = cv_unlock,
    .xCheckReservedLock = cv_check_lock,
    .xFileControl = cv_file_control,
    .xSectorSize = cv_sector_size,
    .xDeviceCharacteristics = cv_device_characteristics,
    .xShmMap = cv_shm_map,
    .xShmLock = cv_shm_lock,
    .xShmBarrier = cv_shm_barrier,
    .xShmUnmap = cv_shm_unmap,
};

/* ---- the VFS -------------------------------------------------------------- */

static int slot_of(const char *path, sqlite3_file *real)
{
    pthread_mutex_lock(&g_mu);
    int i;
    for (i = 0; i < g_sh->nfiles; i++)
        if (strcmp(g_sh->files[i].path, path) == 0)
            break;
    if (i == g_sh->nfiles && i < CV_MAX_FILES) {
        sqlite3_int64 size = 0;
        real->pMethods->xFileSize(real, &size);
        snprintf(g_sh->files[i].path, sizeof(g_sh->files[i].path), "%s", path);
        g_sh->files[i].synced_size = size; /* what is there at open is durable */
        g_sh->nfiles++;
    }
    pthread_mutex_unlock(&g_mu);
    return i < CV_MAX_FILES ? i : -1;
}

static int cv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                   int *out_flags)
{
    (void)vfs;
    struct cv_file *cf = (struct cv_file *)f;
    cf->real = (sqlite3_file *)&cf[1];
    cf->slot = -1;
    f->pMethods = NULL;
    int rc = g_real->xOpen(g_real, name, cf->real, flags, out_flags);
    if (rc != SQLITE_OK)
        return rc;
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
        cf->slot = slot_of(name, cf->real);
        if (cf->slot < 0)
            fprintf(stderr, "crashvfs: more than %d files; %s not tracked\n", CV_MAX_FILES, name);
    }
    f->pMethods = &cv_io;
    return SQLITE_OK;
}

static int cv_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
    (void)vfs;
    return g_real->xDelete(g_real, name, dirsync);
}

static int cv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return g_real->xAccess(g_real, name, flags, out);
}

static int cv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return g_real->xFullPathname(g_real, name, n, out);
}

static int cv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g_real->xRandomness(g_real, n, out);
}

static int cv_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return g_real->xSleep(g_real, us);
}

static int cv_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return g_real->xCurrentTime(g_real, out);
}

static int cv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g_real->xGetLastError(g_real, n, out);
}

static int cv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return g_real->xCurrentTimeInt64(g_real, out);
}

static sqlite3_vfs cv_vfs = {
    .iVersion = 2,
    .zName = "crashvfs",
    .xOpen = cv_open,
    .xDelete = cv_delete,
    .xAccess = cv_access,
    .xFullPathname = cv_full_pathname,
    .xRandomness = cv_randomness,
    .xSleep = cv_sleep,
    .xCurrentTime = cv_current_time,
    .xGetLastError = cv_last_error,
    .xCurrentTimeInt64 = cv_current_time64,
};

int cv_register(struct cv_shared *sh)
{
    g_sh = sh;
    g_real = sqlite3_vfs_find(NULL);
    if (!g_real)
        return SQLITE_ERROR;
    cv_vfs.szOsFile = (int)sizeof(struct cv_file) + g_real->szOsFile;
    cv_vfs.mxPathname = g_real->mxPathname;
    return sqlite3_vfs_register(&cv_vfs, 1);
}

/* ---- the cut (parent) ----------------------------------------------------- */

/* Per (file, sector): writes seen and the cut-off. Open addressing. */
struct sec {
    int64_t key; /* file * 2^40 + sector + 1; 0 = empty */
    uint32_t count, cutoff;
};

static struct sec *sec_find(struct sec *t, size_t cap, int64_t key)
{
    size_t i = (size_t)((uint64_t)key * 0x9E3779B97F4A7C15ull) & (cap - 1);
    while (t[i].key && t[i].key != key)
        i = (i + 1) & (cap - 1);
    t[i].key = key;
    return &t[i];
}

int cv_apply_cut(struct cv_shared *sh, enum cv_mode mode, uint64_t *rnd, size_t *n_writes,
                 size_t *n_sectors_lost)
{
    size_t nw = 0, lost = 0, nsec = 0;
    int fds[CV_MAX_FILES], ret = -1;
    struct cv_entry **ev = NULL;
    struct sec *tab = NULL;
    size_t cap = 16;
    for (int i = 0; i < CV_MAX_FILES; i++)
        fds[i] = -1;
    if (sh->overflow) {
        fprintf(stderr, "crashvfs: journal overflow; the cut cannot be simulated\n");
        goto out;
    }
    if (mode == CV_KILL) {
        ret = 0;
        goto out;
    }
    for (int i = 0; i < sh->nfiles; i++) {
        fds[i] = open(sh->files[i].path, O_RDWR);
        if (getenv("WBMB_POWERCUT_DEBUG"))
            fprintf(stderr, "# file %d %s fd %d\n", i, sh->files[i].path, fds[i]);
        if (fds[i] < 0 && access(sh->files[i].path, F_OK) == 0) {
            perror(sh->files[i].path);
            goto out;
        }
    }
    size_t n = 0;
    for (size_t at = 0; at < sh->log_used;) {
        struct cv_entry *e = (struct cv_entry *)(sh->log + at);
        if (!e->valid)
            break; /* the entry being written when the child died */
        n++;
        if (getenv("WBMB_POWERCUT_DEBUG"))
            fprintf(stderr, "#  entry file %d synced %u off %lld len %u\n", e->file, e->synced,
                    (long long)e->off, e->len);
        nsec += (size_t)((e->off + e->len - 1) / CV_SECTOR - e->off / CV_SECTOR + 1);
        at += entry_size(e->len);
    }
    ev = calloc(n + 1, sizeof(*ev));
    while (cap < 2 * nsec + 16)
        cap *= 2;
    tab = calloc(cap, sizeof(*tab));
    if (!ev || !tab)
        goto out;
    n = 0;
    for (size_t at = 0; at < sh->log_used;) {
        struct cv_entry *e = (struct cv_entry *)(sh->log + at);
        if (!e->valid)
            break;
        if (!e->synced && fds[e->file] >= 0) {
            ev[n++] = e;
            for (int64_t s = e->off / CV_SECTOR; s <= (e->off + e->len - 1) / CV_SECTOR; s++)
                sec_find(tab, cap, ((int64_t)e->file << 40) + s + 1)->count++;
        }
        at += entry_size(e->len);
    }
    nw = n;
    /* Cut-off per sector: undo its writes from the cutoff-th on (1 = all
     * undone, count + 1 = all landed). */
    for (size_t i = 0; i < cap; i++)
        if (tab[i].key)
            tab[i].cutoff = mode == CV_DROP ? 1 : 1 + (uint32_t)(cv_rand(rnd) % (tab[i].count + 1));
    for (size_t i = n; i-- > 0;) {
        struct cv_entry *e = ev[i];
        for (int64_t s = e->off / CV_SECTOR; s <= (e->off + e->len - 1) / CV_SECTOR; s++) {
            struct sec *x = sec_find(tab, cap, ((int64_t)e->file << 40) + s + 1);
            uint32_t rank = x->count--;
            if (rank < x->cutoff)
                continue;
            int64_t a = s * CV_SECTOR > e->off ? s * CV_SECTOR : e->off;
            int64_t z =
                (s + 1) * CV_SECTOR < e->off + e->len ? (s + 1) * CV_SECTOR : e->off + e->len;
            if (pwrite(fds[e->file], e->pre + (a - e->off), (size_t)(z - a), a) != z - a) {
                perror("crashvfs: pwrite");
                goto out;
            }
            lost++;
        }
    }
    if (mode == CV_DROP)
        for (int i = 0; i < sh->nfiles; i++)
            if (fds[i] >= 0 && ftruncate(fds[i], sh->files[i].synced_size) != 0) {
                perror("crashvfs: ftruncate");
                goto out;
            }
    ret = 0;
out:
    for (int i = 0; i < CV_MAX_FILES; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(ev);
    free(tab);
    if (n_writes)
        *n_writes = nw;
    if (n_sectors_lost)
        *n_sectors_lost = lost;
    return ret;
}

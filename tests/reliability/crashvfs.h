/*
 * crashvfs.h - a power-cut simulator for SQLite, after the crash VFS of
 * SQLite's own test suite (src/test_vfs.c, test/crash*.test): see
 * crashvfs.c for the model and why it is correct.
 *
 * Use: the parent maps a struct cv_shared (cv_shared_create) before fork();
 * the child registers the shim as the default VFS (cv_register) and runs the
 * real store code on it; the parent SIGKILLs the child at a random moment
 * and then applies the power cut to the files (cv_apply_cut), after which
 * the files hold what a device would hold after losing power at that
 * moment. Nothing here is thread-safe across processes except that
 * protocol: only the child writes the journal, only the parent (after
 * waitpid) reads it.
 */
#ifndef WBMB_TEST_CRASHVFS_H
#define WBMB_TEST_CRASHVFS_H

#include <stddef.h>
#include <stdint.h>

#define CV_MAX_FILES 8
#define CV_SECTOR 512

enum cv_mode {
    CV_KILL, /* no power cut: a kill -9 only (the page cache survives) */
    CV_DROP, /* every write since the file's last xSync is lost */
    CV_TORN, /* each unsynced sector independently lands in any of its
                versions (none, some or all of its writes), in any order */
};

struct cv_file_info {
    char path[512];
    int64_t synced_size; /* the file's size at its last xSync (or open) */
};

/* The shared region: a header, then the journal of unsynced writes. */
struct cv_shared {
    /* Filled by the test's child for the parent (not by the shim). */
    volatile uint64_t durable, committed, issued, opened;
    volatile uint64_t stop, closed; /* parent: close now; child: closed after `closed` */
    /* The shim's state. */
    int nfiles;
    struct cv_file_info files[CV_MAX_FILES];
    volatile uint64_t log_used; /* bytes of log[] in use */
    volatile int overflow;      /* the journal ran out of room (test invalid) */
    size_t log_cap;
    unsigned char log[];
};

/* Maps a MAP_SHARED anonymous region with log_cap bytes of journal; NULL on
 * failure. Freed by cv_shared_destroy (NULL is a no-op). */
struct cv_shared *cv_shared_create(size_t log_cap);
void cv_shared_destroy(struct cv_shared *sh);
/* Empties the journal and the file table (parent, before each fork). */
void cv_shared_reset(struct cv_shared *sh);

/* Child: registers "crashvfs" over the default VFS, as the new default.
 * Returns an SQLite result code. */
int cv_register(struct cv_shared *sh);

/* Parent, after the child is dead: applies mode to every tracked file.
 * rnd is a xorshift state for the torn choices. Returns 0, or -1 with a
 * message on stderr. Stats (may be NULL): unsynced writes found, sectors
 * rolled back. */
int cv_apply_cut(struct cv_shared *sh, enum cv_mode mode, uint64_t *rnd, size_t *n_writes,
                 size_t *n_sectors_lost);

uint64_t cv_rand(uint64_t *state);

#endif

/*
 * lockstat.h - counts the mutex acquisitions of the calling thread (debug
 * builds), so a test can hold the hot path to its lock budget (README,
 * "Design": at most two per applied message when no SSE client listens and
 * the outbox is idle).
 *
 * Every mutex of our own modules on the message path is taken with
 * wb_lock(); paho's and libc's own locks are not counted. Release builds
 * (NDEBUG) count nothing and lockstat_thread() is 0.
 */
#ifndef WBMB_LOCKSTAT_H
#define WBMB_LOCKSTAT_H

#include <pthread.h>
#include <stdint.h>

#ifndef NDEBUG
extern _Thread_local uint64_t lockstat_count;
static inline void wb_lock(pthread_mutex_t *m)
{
    lockstat_count++;
    pthread_mutex_lock(m);
}
static inline uint64_t lockstat_thread(void)
{
    return lockstat_count;
}
#else
static inline void wb_lock(pthread_mutex_t *m)
{
    pthread_mutex_lock(m);
}
static inline uint64_t lockstat_thread(void)
{
    return 0;
}
#endif

#endif

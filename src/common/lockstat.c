/*
 * lockstat.c - the per-thread lock counter of debug builds (lockstat.h).
 */
#include "wbmb/lockstat.h"

#ifndef NDEBUG
_Thread_local uint64_t lockstat_count;
#endif

/*
 * owner.c - the core's ownership mark (see owner.h): the address of a
 * thread-local byte identifies the thread that holds the core's lock.
 */
#include "wbmb/owner.h"

#include <stdatomic.h>
#include <stdint.h>

static _Thread_local char me;
static atomic_uintptr_t holder;
static atomic_bool armed;

void owner_arm(void)
{
    atomic_store(&armed, true);
}

void owner_disarm(void)
{
    atomic_store(&armed, false);
}

void owner_enter(void)
{
    atomic_store_explicit(&holder, (uintptr_t)&me, memory_order_relaxed);
}

void owner_leave(void)
{
    atomic_store_explicit(&holder, 0, memory_order_relaxed);
}

bool owner_is_me(void)
{
    return !atomic_load_explicit(&armed, memory_order_relaxed) ||
           atomic_load_explicit(&holder, memory_order_relaxed) == (uintptr_t)&me;
}

/*
 * owner.h - who may touch device and scenario state, asserted.
 *
 * One rule (core.c's top): the state belongs to the core, and the core is
 * whoever holds the core's lock - the core thread, or paho's receive thread
 * applying a message in place. The core marks itself with owner_enter()
 * right after taking that lock and owner_leave() right before releasing it;
 * the device manager, the dispatcher and the scenario manager call
 * OWNER_ASSERT() at every entry point. Debug builds (no NDEBUG) check it;
 * release builds compile it away.
 *
 * Before owner_arm() nothing is checked (unit tests that drive a manager on
 * their own thread, start-up before the core exists).
 */
#ifndef WBMB_OWNER_H
#define WBMB_OWNER_H

#include <stdbool.h>

void owner_arm(void);    /* from now on the state has an owner */
void owner_disarm(void); /* shutdown, after the core is gone */
void owner_enter(void);  /* this thread is the core now */
void owner_leave(void);
/* True when checks are off, or this thread is the core. */
bool owner_is_me(void);

#ifndef NDEBUG
#include <assert.h>
#define OWNER_ASSERT() assert(owner_is_me() && "device state touched outside the core")
#else
#define OWNER_ASSERT() ((void)0)
#endif

#endif

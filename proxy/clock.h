/*
 * The one clock of mxtls.  Everything that compares times (retry records,
 * deadlines recorded in state) reads it here, so tests can move it.
 */
#ifndef MXTLS_CLOCK_H
#define MXTLS_CLOCK_H

#include <time.h>

/* Wall-clock seconds, plus the offset a test has set. */
time_t clock_now(void);
/* Tests (and MXTLS_CLOCK_OFFSET in the environment) move the clock. */
void clock_set_offset(long seconds);
/* Monotonic seconds, for durations (never moved by tests). */
double clock_mono(void);

#endif

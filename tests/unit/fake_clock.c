/*
 * proxy/clock.h for test_session: time stands still until the test moves
 * it, so the failure table's retry_delay is crossed by a call, not a
 * wait, and every "retry after" in a reply is known in advance.
 */
#include "clock.h"
#include "fakes.h"

/* 2026-01-01T00:00:00Z; the monotonic clock starts anywhere but 0. */
#define FAKE_CLOCK_START 1767225600

static long moved;

time_t
clock_now(void)
{
	return FAKE_CLOCK_START + moved;
}

double
clock_mono(void)
{
	return 1000.0 + (double)moved;
}

void
fake_clock_advance(long seconds)
{
	moved += seconds;
}

void
fake_clock_reset(void)
{
	moved = 0;
}

#include "clock.h"

static long clock_offset;

time_t
clock_now(void)
{
	return time(NULL) + clock_offset;
}

void
clock_set_offset(long seconds)
{
	clock_offset = seconds;
}

double
clock_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

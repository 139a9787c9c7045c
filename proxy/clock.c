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

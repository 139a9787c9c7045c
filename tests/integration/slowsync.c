/*
 * LD_PRELOAD shim of test_sts_journal.sh: every fsync() and fdatasync()
 * takes SLOWSYNC_MS milliseconds longer, as on a slow or overloaded disk
 * (a network volume, a busy node).  Unset: no delay.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void
slowsync_wait(void)
{
	const char *ms = getenv("SLOWSYNC_MS");
	struct timespec ts;
	long n;

	if (ms == NULL || (n = atol(ms)) <= 0)
		return;
	ts.tv_sec = n / 1000;
	ts.tv_nsec = (n % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1)
		;
}

int
fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	slowsync_wait();
	return real(fd);
}

int
fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	slowsync_wait();
	return real(fd);
}

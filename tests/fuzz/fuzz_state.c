/*
 * The retry-state loader (proxy/state.c): state_open() on a directory
 * holding the fuzzed bytes as its retry-state file (a corrupt file, or
 * one edited by hand, must never be fatal nor be half-loaded).
 * Invariants: with a warning the store is empty, without one the
 * records all print (one line each, sorted), the per-state counts add up
 * to the total; written back (a state_put that forces a rewrite) and
 * loaded again, the store is the same, without a warning; no leaks.
 * The directory is under /dev/shm when there is one (fsync is cheap).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "state.h"

static char dir[64], path[128], tmp[128];

static void
cleanup(void)
{
	unlink(path);
	unlink(tmp);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "%s/mxtls-fuzz-state.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, STATE_FILE);
	atexit(cleanup);
	return 0;
}

/* state_print() into a new string; *lines gets the number of lines. */
static char *
print(struct state *st, int *lines)
{
	static const struct failure_timing t = { 300, 3600 };
	char *buf = NULL, *p;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		abort();
	state_print(st, f, (time_t)1700000000, &t);
	fclose(f);
	*lines = 0;
	for (p = buf; (p = strchr(p, '\n')) != NULL; p++)
		(*lines)++;
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state *st, *st2;
	struct retry_record r;
	char warning[512], err[256], *out, *out2;
	int lines, lines2, total;
	FILE *f;

	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);

	warning[0] = 'x';
	if ((st = state_open(dir, warning, sizeof(warning))) == NULL)
		abort(); /* out of memory only */
	total = state_total(st);
	FUZZ_CHECK(total >= 0, "total %d", total);
	FUZZ_CHECK(state_count(st, RETRY_FAILED_ONCE) +
	    state_count(st, RETRY_BROKEN) == total &&
	    state_count(st, RETRY_NONE) == 0, "counts do not add up");
	if (warning[0] != '\0') {
		FUZZ_CHECK(total == 0, "%d records kept with a warning: %s",
		    total, warning);
		FUZZ_CHECK(strstr(warning, path) != NULL,
		    "warning does not name the file: %s", warning);
		state_free(st);
		return 0;
	}
	out = print(st, &lines);
	FUZZ_CHECK(lines == total, "%d lines printed for %d records", lines,
	    total);
	if (total == 0) {
		free(out);
		state_free(st);
		return 0;
	}

	/* Written back and read again: the same store. */
	static const struct state_key sentinel = { "sentinel.fuzz.invalid",
		"192.0.2.255", 25, "fuzz", "0123abcd" };

	memset(&r, 0, sizeof(r));
	r.state = RETRY_FAILED_ONCE;
	r.first_failure = 1;
	r.event = FAILURE_HANDSHAKE;
	strcpy(r.error, "fuzz sentinel");
	FUZZ_CHECK(state_put(st, &sentinel, &r,
	    err, sizeof(err)) == 0, "state_put: %s", err);
	r.state = RETRY_NONE;
	FUZZ_CHECK(state_put(st, &sentinel, &r,
	    err, sizeof(err)) == 0, "state_put delete: %s", err);
	FUZZ_CHECK(state_total(st) == total, "sentinel left behind");
	st2 = state_open(dir, warning, sizeof(warning));
	if (st2 == NULL)
		abort();
	FUZZ_CHECK(warning[0] == '\0', "own file refused: %s", warning);
	out2 = print(st2, &lines2);
	FUZZ_CHECK(state_total(st2) == total && strcmp(out, out2) == 0,
	    "store changed through the file:\n%s---\n%s", out, out2);
	free(out);
	free(out2);
	state_free(st2);
	state_free(st);
	return 0;
}

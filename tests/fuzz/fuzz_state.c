/*
 * The retry-state loader (proxy/state.c): state_read() on a directory
 * holding the fuzzed bytes as its files.  The input up to the first line
 * that starts "mxtls-retry-journal" is the snapshot (none when empty), the
 * rest the journal (none when there is no such line).  Damaged files, or
 * files edited by hand, must never be fatal nor be half-loaded.
 * Invariants: a snapshot alone that draws a warning gives an empty store;
 * every warning names the file it is about; the records all print (one
 * line each, sorted), the per-state counts add up to the total.  Opened
 * with a writer (which rewrites damaged files, then journals a put and a
 * delete of a sentinel) and read again, the store is the same, without a
 * warning; no leaks.
 * The directory is under /dev/shm when there is one (fsync is cheap).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "state.h"

#define JOURNAL_START "mxtls-retry-journal"

static char dir[64], path[128], jpath[128], tmp[128], jtmp[128];

static void
cleanup(void)
{
	unlink(path);
	unlink(jpath);
	unlink(tmp);
	unlink(jtmp);
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
	snprintf(jpath, sizeof(jpath), "%s/%s", dir, STATE_JOURNAL);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(jtmp, sizeof(jtmp), "%s.tmp", jpath);
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

static void
put_file(const char *p, const uint8_t *data, size_t size)
{
	FILE *f;

	unlink(p);
	if ((f = fopen(p, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
}

/* Where the journal starts in data (size: none). */
static size_t
journal_at(const uint8_t *data, size_t size)
{
	size_t n = strlen(JOURNAL_START), i;

	for (i = 0; i + n <= size; i++)
		if ((i == 0 || data[i - 1] == '\n') &&
		    memcmp(data + i, JOURNAL_START, n) == 0)
			return i;
	return size;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct state_key sentinel = { "sentinel.fuzz.invalid",
		"192.0.2.255", 25, "fuzz", "0123abcd" };
	struct state *st, *st2;
	struct retry_record r;
	char warning[1024], err[512], *out, *out2;
	int lines, lines2, total;
	size_t j = journal_at(data, size);

	cleanup();
	if (mkdir(dir, 0700) == -1)
		abort();
	if (j > 0)
		put_file(path, data, j);
	if (j < size)
		put_file(jpath, data + j, size - j);

	warning[0] = 'x';
	if ((st = state_read(dir, warning, sizeof(warning))) == NULL)
		abort(); /* out of memory only */
	total = state_total(st);
	FUZZ_CHECK(total >= 0, "total %d", total);
	FUZZ_CHECK(state_count(st, RETRY_FAILED_ONCE) +
	    state_count(st, RETRY_BROKEN) == total &&
	    state_count(st, RETRY_NONE) == 0, "counts do not add up");
	FUZZ_CHECK(warning[0] == '\0' || strstr(warning, dir) != NULL,
	    "warning names no file: %s", warning);
	FUZZ_CHECK(warning[0] == '\0' || j < size || total == 0,
	    "%d records kept with a warning: %s", total, warning);
	out = print(st, &lines);
	FUZZ_CHECK(lines == total, "%d lines printed for %d records", lines,
	    total);
	state_free(st);

	/* With a writer: damaged files rewritten, a change journaled; read
	 * again, the same store. */
	if ((st = state_open(dir, warning, sizeof(warning))) == NULL)
		abort();
	memset(&r, 0, sizeof(r));
	r.state = RETRY_FAILED_ONCE;
	r.first_failure = 1;
	r.event = FAILURE_HANDSHAKE;
	strcpy(r.error, "fuzz sentinel");
	FUZZ_CHECK(state_put(st, &sentinel, &r, err, sizeof(err)) == 0,
	    "state_put: %s", err);
	r.state = RETRY_NONE;
	FUZZ_CHECK(state_put(st, &sentinel, &r, err, sizeof(err)) == 0,
	    "state_put delete: %s", err);
	FUZZ_CHECK(state_sync(st, err, sizeof(err)) == 0, "state_sync: %s",
	    err);
	FUZZ_CHECK(state_total(st) == total, "sentinel left behind");
	state_free(st);
	st2 = state_read(dir, warning, sizeof(warning));
	if (st2 == NULL)
		abort();
	FUZZ_CHECK(warning[0] == '\0', "own files refused: %s", warning);
	out2 = print(st2, &lines2);
	FUZZ_CHECK(state_total(st2) == total && strcmp(out, out2) == 0,
	    "store changed through the files:\n%s---\n%s", out, out2);
	free(out);
	free(out2);
	state_free(st2);
	return 0;
}

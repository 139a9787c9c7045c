/*
 * proxy/journal.c: the record format (round trip, every damage the
 * scanner must catch: a record cut at any byte, any byte changed, zeros),
 * and the journal on a real libev loop: loading (the last record of a
 * key decides, deletes, the load callback's veto), a torn end ignored
 * with everything before it kept and then cut off, writes that survive a
 * reopen, compaction, the lock, journal_get.
 */
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "t.h"

static char err[512];
static char tmp[PATH_MAX];
static struct ev_loop *loop;

/* ---- helpers ---- */

/* The file: a header and the records given as op, key, value triples. */
static size_t
build(char *buf, size_t cap, const char *name, int n, const char *const *ops)
{
	size_t used = (size_t)snprintf(buf, cap, "mxtls-journal 1 %s\n", name);
	int i;

	for (i = 0; i < n; i++) {
		const char *v = ops[3 * i + 2];
		size_t got = journal_format(ops[3 * i][0], ops[3 * i + 1], v,
		    strlen(v), buf + used, cap - used);

		CHECK(got > 0);
		used += got;
	}
	return used;
}

static void
write_all(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
}

static char *
read_all(const char *path, size_t *len)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");

	*len = 0;
	if (f == NULL)
		return NULL;
	*len = fread(buf, 1, sizeof(buf) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* What the load callback saw: "key=value;" in order. */
static char seen[8192];
static const char *veto; /* a key the callback forgets */

static int
load_cb(void *arg, const char *key, const char *value, size_t len)
{
	size_t used = strlen(seen);

	(void)arg;
	CHECK(strlen(value) == len);
	snprintf(seen + used, sizeof(seen) - used, "%s=%s;", key, value);
	return veto != NULL && strcmp(key, veto) == 0 ? -1 : 0;
}

static struct journal *
jopen(const char *path, struct journal_loaded *info)
{
	seen[0] = '\0';
	return journal_open(loop, path, "test", 1 << 20, load_cb, NULL, NULL,
	    info, err, sizeof(err));
}

/* ---- the format ---- */

static void
format_round_trip(void)
{
	char buf[512];
	struct journal_rec r;
	const char *why = "";
	size_t n, m;

	n = journal_format('P', "example.com", "a\nb", 3, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(strncmp(buf, "P example.com 3 ", 16) == 0);
	CHECK(buf[n - 1] == '\n');
	CHECK_INT(journal_scan(buf, n, 0, &r, &why), 1);
	CHECK_INT(r.op, 'P');
	CHECK_INT(r.keylen, 11);
	CHECK(memcmp(r.key, "example.com", 11) == 0);
	CHECK_INT(r.len, 3);
	CHECK(memcmp(r.value, "a\nb", 3) == 0);
	CHECK_INT(r.end, n);
	CHECK_INT(journal_scan(buf, n, n, &r, &why), 0);
	m = journal_format('D', "example.com", "", 0, buf + n,
	    sizeof(buf) - n);
	CHECK(m > 0);
	CHECK_INT(journal_scan(buf, n + m, n, &r, &why), 1);
	CHECK_INT(r.op, 'D');
	CHECK_INT(r.len, 0);
	CHECK_INT(r.end, n + m);
	/* What the format refuses. */
	CHECK_INT(journal_format('D', "k", "x", 1, buf, sizeof(buf)), 0);
	CHECK_INT(journal_format('X', "k", "", 0, buf, sizeof(buf)), 0);
	CHECK_INT(journal_format('P', "a b", "", 0, buf, sizeof(buf)), 0);
	CHECK_INT(journal_format('P', "", "", 0, buf, sizeof(buf)), 0);
	CHECK_INT(journal_format('P', "k", "value", 5, buf, 10), 0);
	CHECK_INT(journal_header_len("mxtls-journal 1 test\nP", 22, "test"),
	    21);
	CHECK_INT(journal_header_len("mxtls-journal 1 test\n", 21, "tes"), 0);
	CHECK_INT(journal_header_len("mxtls-journal 1 tes", 19, "test"), 0);
}

/* A record cut at any byte is refused; so is any single byte changed. */
static void
scan_damage(void)
{
	char rec[256], bad[256];
	struct journal_rec r;
	const char *why;
	size_t n, i;
	int c, bits;

	n = journal_format('P', "mx.example.com", "mode enforce\n", 13, rec,
	    sizeof(rec));
	CHECK(n > 0);
	for (i = 1; i < n; i++) {
		why = "";
		CHECK_INT(journal_scan(rec, i, 0, &r, &why), -1);
		CHECK(why[0] != '\0');
	}
	for (i = 0; i < n; i++)
		for (bits = 1; bits < 256; bits <<= 1) {
			memcpy(bad, rec, n);
			bad[i] = (char)(bad[i] ^ bits);
			c = journal_scan(bad, n, 0, &r, &why);
			if (c == 1) {
				fprintf(stderr, "byte %zu ^ %d accepted\n", i,
				    bits);
				CHECK(c != 1);
			}
		}
	/* Zeros where a record was to be (a crash after the size grew). */
	memset(bad, 0, sizeof(bad));
	CHECK_INT(journal_scan(bad, sizeof(bad), 0, &r, &why), -1);
	/* Syntax the format never writes. */
	{
		static const char *const texts[] = {
			"P k 01 0000000000000000\nx\n",
			"P k 12345678 0000000000000000\n",
			"D k 1 0000000000000000\nx\n",
			"P  1 0000000000000000\nx\n",
			"P k 1 000000000000000G\nx\n",
			"P k 1 00000000000000000\nx\n",
			"Pk 1 0000000000000000\nx\n",
			"P k 1\nx\n",
		};
		for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
			CHECK_INT(journal_scan(texts[i], strlen(texts[i]), 0,
			    &r, &why), -1);
	}
	/* A header without a line end in the first bytes: too long. */
	memset(bad, 'P', sizeof(bad));
	CHECK_INT(journal_scan(bad, sizeof(bad), 0, &r, &why), -1);
}

/* ---- the journal ---- */

static void
load_order(void)
{
	static const char *const ops[] = {
		"P", "a", "1",
		"P", "b", "2",
		"P", "a", "3",
		"P", "c", "4",
		"D", "b", "",
		"P", "d", "5",
	};
	char path[PATH_MAX + 16], buf[4096];
	struct journal_loaded info;
	struct journal *j;
	size_t n;

	snprintf(path, sizeof(path), "%s/load", tmp);
	write_all(path, buf, build(buf, sizeof(buf), "test", 6, ops));
	veto = "d";
	j = jopen(path, &info);
	veto = NULL;
	CHECK(j != NULL);
	/* In file order of the records in force; d vetoed. */
	CHECK_STR(seen, "a=3;c=4;d=5;");
	CHECK_INT(info.records, 2);
	CHECK_INT(info.torn, 0);
	journal_close(j);
	/* Compacted at open: only what counts is left. */
	{
		static const char *const now[] = {
			"P", "a", "3",
			"P", "c", "4",
		};
		char want[4096];
		size_t wl = build(want, sizeof(want), "test", 2, now);
		const char *got = read_all(path, &n);

		CHECK_INT(n, wl);
		CHECK(got != NULL && memcmp(got, want, wl) == 0);
	}
	CHECK(j = jopen(path, &info));
	CHECK_STR(seen, "a=3;c=4;");
	journal_close(j);
	/* A missing file is an empty journal; a file of another one too. */
	snprintf(path, sizeof(path), "%s/new", tmp);
	CHECK(j = jopen(path, &info));
	CHECK_STR(seen, "");
	CHECK_INT(info.torn, 0);
	journal_close(j);
	CHECK_INT(file_size(path), strlen("mxtls-journal 1 test\n"));
	write_all(path, "mxtls-journal 1 other\n", 22);
	CHECK(j = jopen(path, &info));
	CHECK_INT(info.torn, 22);
	CHECK_STR(info.why, "not a journal of these records");
	journal_close(j);
	CHECK_INT(file_size(path), strlen("mxtls-journal 1 test\n"));
}

/*
 * A crash in the middle of the last batch: its records cut short, or
 * zeros where they were to be.  Everything before counts; the rest is
 * cut off, so that later appends are read again.
 */
static void
torn_end(void)
{
	static const char *const ops[] = {
		"P", "a", "old",
		"P", "b", "kept",
		"P", "a", "new",
	};
	char path[PATH_MAX + 16], buf[4096], whole[4096];
	struct journal_loaded info;
	struct journal *j;
	size_t n, good, cut;
	int variant;

	snprintf(path, sizeof(path), "%s/torn", tmp);
	n = build(whole, sizeof(whole), "test", 3, ops);
	good = build(buf, sizeof(buf), "test", 2, ops);
	for (variant = 0; variant < 3; variant++) {
		memcpy(buf, whole, n);
		if (variant == 0) {
			cut = good + (n - good) / 2; /* cut in the value */
		} else if (variant == 1) {
			cut = good + 3; /* cut in the header */
		} else {
			memset(buf + good, 0, n - good); /* zeros */
			cut = n;
		}
		write_all(path, buf, cut);
		CHECK(j = jopen(path, &info));
		CHECK_STR(seen, "a=old;b=kept;");
		CHECK_INT(info.torn, cut - good);
		CHECK(info.why[0] != '\0');
		CHECK_INT(file_size(path), good);
		/* Appends after the cut are read back. */
		CHECK_INT(journal_put(j, "c", "later", 5, err, sizeof(err)), 0);
		journal_close(j);
		CHECK(j = jopen(path, &info));
		CHECK_STR(seen, "a=old;b=kept;c=later;");
		CHECK_INT(info.torn, 0);
		journal_close(j);
	}
}

static void
write_reopen(void)
{
	char path[PATH_MAX + 16], key[32], val[64], *v;
	struct journal_loaded info;
	struct journal *j;
	size_t len;
	int i;

	snprintf(path, sizeof(path), "%s/rw", tmp);
	CHECK(j = jopen(path, &info));
	if (j == NULL)
		return;
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%03d", i % 10);
		snprintf(val, sizeof(val), "value %d\nline two", i);
		CHECK_INT(journal_put(j, key, val, strlen(val), err,
		    sizeof(err)), 0);
	}
	CHECK_INT(journal_del(j, "k003", err, sizeof(err)), 0);
	CHECK_INT(journal_del(j, "never", err, sizeof(err)), 0);
	CHECK_INT(journal_put(j, "bad key", "", 0, err, sizeof(err)), -1);
	CHECK(strstr(err, "invalid key") != NULL);
	journal_flush(j);
	/* Another reader sees the records in force at once. */
	CHECK_INT(journal_get(path, "test", "k007", &v, &len, err,
	    sizeof(err)), 1);
	CHECK_STR(v, "value 97\nline two");
	CHECK_INT(len, strlen("value 97\nline two"));
	free(v);
	CHECK_INT(journal_get(path, "test", "k003", &v, &len, err,
	    sizeof(err)), 0);
	CHECK_INT(journal_get(path, "test", "never", &v, &len, err,
	    sizeof(err)), 0);
	CHECK_INT(journal_get(path, "other", "k007", &v, &len, err,
	    sizeof(err)), -1);
	/* One writer at a time. */
	CHECK(jopen(path, &info) == NULL);
	CHECK(strstr(err, "another process") != NULL);
	journal_close(j);
	CHECK(j = jopen(path, &info));
	CHECK_STR(seen, "k000=value 90\nline two;k001=value 91\nline two;"
	    "k002=value 92\nline two;k004=value 94\nline two;"
	    "k005=value 95\nline two;k006=value 96\nline two;"
	    "k007=value 97\nline two;k008=value 98\nline two;"
	    "k009=value 99\nline two;");
	journal_close(j);
	snprintf(path, sizeof(path), "%s/none", tmp);
	CHECK_INT(journal_get(path, "test", "k", &v, &len, err, sizeof(err)),
	    0);
}

/* The file stays below twice what counts (plus the minimum). */
static void
compaction(void)
{
	char path[PATH_MAX + 16], val[1000];
	struct journal_loaded info;
	struct journal *j;
	long max = 0, sz;
	int i;

	snprintf(path, sizeof(path), "%s/compact", tmp);
	CHECK(j = jopen(path, &info));
	if (j == NULL)
		return;
	memset(val, 'x', sizeof(val));
	for (i = 0; i < 1000; i++) {
		val[0] = (char)('a' + i % 26);
		CHECK_INT(journal_put(j, i % 2 ? "odd" : "even", val,
		    sizeof(val), err, sizeof(err)), 0);
		if (i % 50 == 0) {
			journal_flush(j);
			if ((sz = file_size(path)) > max)
				max = sz;
		}
	}
	journal_flush(j);
	CHECK(max > 0);
	CHECK(max < 2 * 2100 + JOURNAL_COMPACT_MIN + 50 * 1100);
	journal_close(j);
	CHECK(j = jopen(path, &info));
	CHECK(strstr(seen, "even=k") != NULL && strstr(seen, "odd=l") != NULL);
	CHECK_INT(info.records, 2);
	journal_close(j);
	CHECK(file_size(path) < 2200);
	journal_close(NULL);
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_journal.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	loop = ev_loop_new(EVFLAG_AUTO);

	RUN(format_round_trip);
	RUN(scan_damage);
	RUN(load_order);
	RUN(torn_end);
	RUN(write_reopen);
	RUN(compaction);

	ev_loop_destroy(loop);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			return 2;
	}
	return T_DONE();
}

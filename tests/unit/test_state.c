/*
 * proxy/state.c: the retry record store, its snapshot and its journal.
 * No sockets; every test works in its own mkdtemp() directory and removes
 * it.  The crash cases lay the files out by hand and read them with
 * state_read(), which starts no writer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failure.h"
#include "state.h"
#include "t.h"

#define T0 ((time_t)1795428000) /* 2026-11-23T10:00:00Z */

static const struct failure_timing dflt = { 300, 3600 };

/* A key on port 25 under one profile and policy fingerprint. */
#define KEY_POLICY "0123456789abcdef"
#define K(h, a) (&(struct state_key){ (h), (a), 25, "strict", KEY_POLICY })

static char *
tmpdir(void)
{
	char *d = strdup("/tmp/mxtls-state-XXXXXX");

	if (d == NULL || mkdtemp(d) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	return d;
}

static void
rmtree(const char *path)
{
	struct stat sb;
	DIR *d;
	struct dirent *de;
	char sub[4096];

	if (lstat(path, &sb) == -1)
		return;
	if (!S_ISDIR(sb.st_mode)) {
		unlink(path);
		return;
	}
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rmtree(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

static void
path_of(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void
write_named(const char *dir, const char *name, const char *data, size_t len)
{
	char p[512];
	FILE *f;

	path_of(p, sizeof(p), dir, name);
	if ((f = fopen(p, "w")) == NULL || fwrite(data, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(p);
		exit(2);
	}
}

static void
write_file(const char *dir, const char *data, size_t len)
{
	write_named(dir, STATE_FILE, data, len);
}

/* A file's contents (malloc'd, NUL-terminated), or NULL. */
static char *
read_named(const char *dir, const char *name)
{
	char p[512], *buf;
	FILE *f;
	long n;

	path_of(p, sizeof(p), dir, name);
	if ((f = fopen(p, "r")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(p);
		exit(2);
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static char *
read_state_file(const char *dir)
{
	return read_named(dir, STATE_FILE);
}

/* Lines of a file; -1 when there is none. */
static int
lines_of(const char *dir, const char *name)
{
	char *buf = read_named(dir, name), *p;
	int n = 0;

	if (buf == NULL)
		return -1;
	for (p = buf; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	free(buf);
	return n;
}

static int
exists(const char *dir, const char *name)
{
	char p[512];
	struct stat sb;

	path_of(p, sizeof(p), dir, name);
	return lstat(p, &sb) == 0;
}

/* The writer has everything on the disk. */
#define SYNC_OK(st)                                                        \
	do {                                                               \
		char e_[512] = "";                                         \
		int rc_ = state_sync(st, e_, sizeof(e_));                  \
		if (rc_ != 0)                                              \
			fprintf(stderr, "%s:%d: sync: %s\n", __FILE__,      \
			    __LINE__, e_);                                 \
		CHECK_INT(rc_, 0);                                         \
	} while (0)

static struct retry_record
rec(enum retry_state s, time_t t0, time_t until, enum failure_event ev,
    const char *error)
{
	struct retry_record r;

	memset(&r, 0, sizeof(r));
	r.state = s;
	r.first_failure = t0;
	r.broken_until = until;
	r.event = ev;
	snprintf(r.error, sizeof(r.error), "%s", error);
	return r;
}

/* One record compared field by field, naming the case on a mismatch. */
static void
check_rec(const char *what, const struct retry_record *got,
    const struct retry_record *want)
{
	if (got == NULL) {
		fprintf(stderr, "%s: no record\n", what);
		t_cur = 1;
		return;
	}
	if (got->state != want->state || got->first_failure !=
	    want->first_failure || got->broken_until != want->broken_until ||
	    got->event != want->event || strcmp(got->error, want->error) != 0) {
		fprintf(stderr, "%s: got %s %lld %lld %s \"%s\", want %s %lld "
		    "%lld %s \"%s\"\n", what, retry_state_name(got->state),
		    (long long)got->first_failure,
		    (long long)got->broken_until,
		    failure_event_name(got->event), got->error,
		    retry_state_name(want->state),
		    (long long)want->first_failure,
		    (long long)want->broken_until,
		    failure_event_name(want->event), want->error);
		t_cur = 1;
	}
}

#define PUT_OK(st, h, a, r)                                                \
	do {                                                               \
		char e_[256] = "";                                         \
		int rc_ = state_put(st, K(h, a), r, e_, sizeof(e_));          \
		if (rc_ != 0)                                              \
			fprintf(stderr, "%s:%d: put %s %s: %s\n", __FILE__, \
			    __LINE__, h, a, e_);                           \
		CHECK_INT(rc_, 0);                                         \
	} while (0)

static struct state *
open_ok(const char *dir)
{
	char warn[512] = "x";
	struct state *st = state_open(dir, warn, sizeof(warn));

	CHECK(st != NULL);
	if (st == NULL)
		exit(2);
	if (warn[0] != '\0')
		fprintf(stderr, "unexpected warning: %s\n", warn);
	CHECK_STR(warn, "");
	return st;
}

/* state_read() without a warning. */
static struct state *
read_ok(const char *dir)
{
	char warn[512] = "x";
	struct state *st = state_read(dir, warn, sizeof(warn));

	CHECK(st != NULL);
	if (st == NULL)
		exit(2);
	if (warn[0] != '\0')
		fprintf(stderr, "unexpected warning: %s\n", warn);
	CHECK_STR(warn, "");
	return st;
}

/* Open and close dir: a journal with lines (or a damaged file) goes into
 * the snapshot.  Warnings are the callers' to check (with state_read()). */
static void
compact(const char *dir)
{
	char warn[512];
	struct state *st = state_open(dir, warn, sizeof(warn));

	if (st == NULL)
		exit(2);

	SYNC_OK(st);
	state_free(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 1);
}

static void
test_missing_file(void)
{
	char *dir = tmpdir(), gone[512], warn[256] = "x", err[256];
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct state *st;

	st = open_ok(dir);
	CHECK_INT(state_total(st), 0);
	CHECK(state_get(st, K("mx.example.com", "192.0.2.1")) == NULL);
	SYNC_OK(st);
	CHECK(!exists(dir, STATE_FILE));
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 1); /* a new journal */
	state_free(st);

	/* state_dir not created yet: an empty store, no warning; the writer
	 * fails but the record is kept in memory. */
	path_of(gone, sizeof(gone), dir, "not-there");
	st = state_open(gone, warn, sizeof(warn));
	CHECK(st != NULL);
	CHECK_STR(warn, "");
	state_put(st, K("mx.example.com", "192.0.2.1"), &r, err, sizeof(err));
	CHECK_INT(state_sync(st, err, sizeof(err)), -1);
	printf("     no state_dir: %s\n", err);
	CHECK(strstr(err, "not-there/retry-state") != NULL);
	CHECK(strstr(err, "No such file or directory") != NULL);
	check_rec("kept after a failed write",
	    state_get(st, K("mx.example.com", "192.0.2.1")), &r);
	state_free(st);

	/* No directory at all: memory only. */
	st = state_open(NULL, warn, sizeof(warn));
	CHECK(st != NULL);
	CHECK_STR(warn, "");
	PUT_OK(st, "mx.example.com", "192.0.2.1", &r);
	check_rec("memory only", state_get(st, K("mx.example.com", "192.0.2.1")),
	    &r);
	state_free(st);
	state_free(NULL);
	rmtree(dir);
	free(dir);
}

/* Reasons that must survive the file unchanged. */
static const char *const odd_errors[] = {
	"",
	"-",
	"--",
	"%",
	"%2D",
	"100% sure",
	" leading and trailing spaces ",
	"tabs\tand\nnewlines\r\nand CRLF",
	"\"quoted\" and \\backslashed\\",
	"caf\xc3\xa9 \xe2\x80\x94 UTF-8",
	"\x01\x02\x1f\x7f\x80\xff",
	"error:1000042e:SSL routines:OPENSSL_internal:TLSV1_ALERT_PROTOCOL_VERSION",
	"certificate-host-mismatch: mx.example.com not in *.example.net",
};

static void
test_round_trip(void)
{
	char *dir = tmpdir(), host[64], all[RETRY_ERROR_MAX], *file;
	struct retry_record want[32];
	struct state *st;
	size_t i, n = sizeof(odd_errors) / sizeof(odd_errors[0]);
	int c;

	/* Every byte value 1..255 in one 255-byte reason. */
	for (c = 1; c < RETRY_ERROR_MAX; c++)
		all[c - 1] = (char)c;
	all[RETRY_ERROR_MAX - 1] = '\0';

	st = open_ok(dir);
	for (i = 0; i < n; i++) {
		snprintf(host, sizeof(host), "mx%zu.example.com", i);
		want[i] = rec(i % 2 ? RETRY_BROKEN : RETRY_FAILED_ONCE,
		    T0 + (time_t)i, i % 2 ? T0 + 3900 : 0,
		    (enum failure_event)(FAILURE_NO_STARTTLS + i % 3),
		    odd_errors[i]);
		PUT_OK(st, host, "192.0.2.1", &want[i]);
	}
	want[n] = rec(RETRY_BROKEN, 0, 0, FAILURE_CERTIFICATE, all);
	PUT_OK(st, "", "2001:db8::1", &want[n]); /* a literal next hop */
	want[n + 1] = rec(RETRY_FAILED_ONCE, (time_t)253402300799, 0,
	    FAILURE_HANDSHAKE, "year 9999");
	PUT_OK(st, "MX.Example.NET", "FE80::1%eth0", &want[n + 1]);
	CHECK_INT(state_total(st), (int)n + 2);
	state_free(st);
	/* The journal has them; reopened, the snapshot. */
	CHECK_INT(lines_of(dir, STATE_JOURNAL), (int)n + 3);
	compact(dir);

	CHECK(!exists(dir, STATE_FILE ".tmp"));
	file = read_state_file(dir);
	CHECK(file != NULL && strncmp(file, "mxtls-retry-state 2\n", 20) == 0);
	/* Case folded, the literal host as "-", every byte of a reason
	 * printable ASCII without spaces. */
	CHECK(file != NULL && strstr(file, "\nmx.example.net fe80::1%eth0 25 "
	    "strict " KEY_POLICY " failed-once 253402300799 0 handshake "
	    "year%209999\n") != NULL);
	CHECK(file != NULL && strstr(file, "\n- 2001:db8::1 25 strict "
	    KEY_POLICY " broken 0 0 certificate %01%02") != NULL);
	CHECK(file != NULL && strstr(file, " 100%25%20sure\n") != NULL);
	CHECK(file != NULL && strstr(file, " %2D\n") != NULL);
	for (i = 0; file != NULL && file[i] != '\0'; i++)
		if (file[i] != '\n' && (file[i] < ' ' || file[i] > '~')) {
			fprintf(stderr, "byte 0x%02x in the file\n",
			    (unsigned char)file[i]);
			t_cur = 1;
			break;
		}
	free(file);

	st = open_ok(dir);
	CHECK_INT(state_total(st), (int)n + 2);
	for (i = 0; i < n; i++) {
		char what[128];

		snprintf(host, sizeof(host), "mx%zu.example.com", i);
		snprintf(what, sizeof(what), "error #%zu", i);
		check_rec(what, state_get(st, K(host, "192.0.2.1")), &want[i]);
	}
	check_rec("all bytes, literal host", state_get(st, K("", "2001:db8::1")),
	    &want[n]);
	check_rec("case folded", state_get(st, K("mx.example.net",
	    "fe80::1%ETH0")), &want[n + 1]);
	CHECK(state_get(st, K("mx.example.net", "192.0.2.1")) == NULL);
	CHECK(state_get(st, K("mx0.example.com", "192.0.2.2")) == NULL);
	CHECK(state_get(st, K("", "192.0.2.1")) == NULL);
	state_free(st);
	rmtree(dir);
	free(dir);
}

static void
test_update_delete_counts(void)
{
	char *dir = tmpdir(), *file;
	struct retry_record once = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "first");
	struct retry_record broken = rec(RETRY_BROKEN, T0, T0 + 3900,
	    FAILURE_CERTIFICATE, "second");
	struct retry_record none = rec(RETRY_NONE, 0, 0, FAILURE_TLS_OK, "");
	struct state *st;

	st = open_ok(dir);
	/* Deleting what is not there writes nothing. */
	PUT_OK(st, "mx.example.com", "192.0.2.1", &none);
	SYNC_OK(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 1);

	PUT_OK(st, "mx.example.com", "192.0.2.1", &once);
	PUT_OK(st, "mx.example.com", "192.0.2.2", &once);
	PUT_OK(st, "mx2.example.com", "192.0.2.1", &broken);
	CHECK_INT(state_count(st, RETRY_FAILED_ONCE), 2);
	CHECK_INT(state_count(st, RETRY_BROKEN), 1);
	CHECK_INT(state_count(st, RETRY_NONE), 0);
	CHECK_INT(state_total(st), 3);
	SYNC_OK(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 4);

	/* The same record again writes nothing. */
	PUT_OK(st, "mx.example.com", "192.0.2.1", &once);
	SYNC_OK(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 4);

	/* An update is one more line. */
	PUT_OK(st, "mx.example.com", "192.0.2.1", &broken);
	SYNC_OK(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 5);
	check_rec("updated", state_get(st, K("mx.example.com", "192.0.2.1")),
	    &broken);
	CHECK_INT(state_count(st, RETRY_FAILED_ONCE), 1);
	CHECK_INT(state_count(st, RETRY_BROKEN), 2);

	/* RETRY_NONE deletes, whatever the other fields say. */
	none.first_failure = T0;
	snprintf(none.error, sizeof(none.error), "stale");
	PUT_OK(st, "mx.example.com", "192.0.2.1", &none);
	CHECK(state_get(st, K("mx.example.com", "192.0.2.1")) == NULL);
	CHECK(state_get(st, K("mx.example.com", "192.0.2.2")) != NULL);
	CHECK_INT(state_count(st, RETRY_BROKEN), 1);
	CHECK_INT(state_total(st), 2);
	PUT_OK(st, "mx.example.com", "192.0.2.2", &none);
	PUT_OK(st, "MX2.example.com", "192.0.2.1", &none);
	CHECK_INT(state_total(st), 0);
	CHECK_INT(state_count(st, RETRY_FAILED_ONCE), 0);
	CHECK_INT(state_count(st, RETRY_BROKEN), 0);
	state_free(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 8);

	compact(dir);
	file = read_state_file(dir);
	CHECK_STR(file, "mxtls-retry-state 2\n");
	free(file);
	st = open_ok(dir);
	CHECK_INT(state_total(st), 0);
	state_free(st);
	CHECK(!exists(dir, STATE_FILE ".tmp"));
	CHECK(!exists(dir, STATE_JOURNAL ".tmp"));
	rmtree(dir);
	free(dir);
}

/* The longest record the file can hold fits its line limit. */
static void
test_longest_line(void)
{
	char *dir = tmpdir(), host[STATE_HOST_MAX + 1], addr[STATE_ADDR_MAX + 1];
	char err[RETRY_ERROR_MAX], *file;
	struct retry_record r;
	struct state *st = open_ok(dir);

	memset(host, 'h', STATE_HOST_MAX);
	host[STATE_HOST_MAX] = '\0';
	memset(addr, 'a', STATE_ADDR_MAX);
	addr[STATE_ADDR_MAX] = '\0';
	memset(err, '\x01', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	r = rec(RETRY_FAILED_ONCE, (time_t)253402300799,
	    (time_t)253402300799, FAILURE_NO_STARTTLS, err);
	PUT_OK(st, host, addr, &r);
	state_free(st);
	file = read_named(dir, STATE_JOURNAL);
	CHECK(file != NULL && strlen(file) == 22 + 4 + 1162 + 1);
	free(file);
	compact(dir);
	file = read_state_file(dir);
	CHECK(file != NULL);
	if (file != NULL) {
		printf("     longest line: %zu bytes\n",
		    strlen(file) - strlen("mxtls-retry-state 2\n") - 1);
		CHECK_INT(strlen(file), 20 + 1135 + 27 + 1);
	}
	free(file);
	st = open_ok(dir);
	check_rec("longest", state_get(st, K(host, addr)), &r);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/* Many records: the table grows while loading, one put writes them all,
 * everything survives a restart. */
static void
test_many(void)
{
	char *dir = tmpdir(), host[64], addr[64], *buf, *p;
	struct retry_record r;
	struct state *st;
	int i, bad = 0;

	buf = p = malloc(2000 * 96 + 32);
	p += sprintf(p, "mxtls-retry-state 1\n");
	for (i = 0; i < 2000; i++)
		p += sprintf(p, "mx%d.example.com 198.51.%d.%d failed-once "
		    "%lld 0 handshake mx%d.example.com\n", i % 700, i / 250,
		    i % 250, (long long)(T0 + i), i % 700);
	write_file(dir, buf, (size_t)(p - buf));
	free(buf);
	st = open_ok(dir);
	CHECK_INT(state_total(st), 2000);
	r = rec(RETRY_BROKEN, T0, T0 + 3900, FAILURE_CERTIFICATE, "one more");
	PUT_OK(st, "mx.example.com", "192.0.2.1", &r);
	state_free(st);

	st = open_ok(dir);
	CHECK_INT(state_total(st), 2001);
	CHECK_INT(state_count(st, RETRY_FAILED_ONCE), 2000);
	CHECK_INT(state_count(st, RETRY_BROKEN), 1);
	for (i = 0; i < 2000; i++) {
		const struct retry_record *g;

		snprintf(host, sizeof(host), "mx%d.example.com", i % 700);
		snprintf(addr, sizeof(addr), "198.51.%d.%d", i / 250, i % 250);
		g = state_get(st, K(host, addr));
		if (g == NULL || g->first_failure != T0 + i ||
		    strcmp(g->error, host) != 0)
			bad++;
	}
	CHECK_INT(bad, 0);
	check_rec("one more", state_get(st, K("mx.example.com", "192.0.2.1")),
	    &r);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/* At STATE_MAX_RECORDS the record with the oldest first failure goes. */
static void
test_eviction(void)
{
	char addr[64], warn[64];
	struct retry_record r;
	struct state *st = state_open(NULL, warn, sizeof(warn));
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	for (i = 0; i < STATE_MAX_RECORDS; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		/* the oldest is number 500 */
		r = rec(RETRY_FAILED_ONCE, i == 500 ? T0 - 1 : T0 + i, 0,
		    FAILURE_HANDSHAKE, "");
		PUT_OK(st, "", addr, &r);
	}
	CHECK_INT(state_total(st), STATE_MAX_RECORDS);
	CHECK(state_get(st, K("", "10.0.1.244")) != NULL); /* number 500 */
	r = rec(RETRY_BROKEN, T0 + 999999, T0 + 999999, FAILURE_HANDSHAKE,
	    "new");
	PUT_OK(st, "new.example.com", "192.0.2.1", &r);
	CHECK_INT(state_total(st), STATE_MAX_RECORDS);
	CHECK(state_get(st, K("", "10.0.1.244")) == NULL);
	CHECK(state_get(st, K("", "10.0.0.0")) != NULL);
	CHECK(state_get(st, K("new.example.com", "192.0.2.1")) != NULL);
	CHECK_INT(state_count(st, RETRY_BROKEN), 1);
	CHECK_INT(state_count(st, RETRY_FAILED_ONCE), STATE_MAX_RECORDS - 1);
	/* Updating an existing record at the limit evicts nothing. */
	r.broken_until++;
	PUT_OK(st, "", "10.0.0.0", &r);
	CHECK_INT(state_total(st), STATE_MAX_RECORDS);
	CHECK(state_get(st, K("", "10.0.0.1")) != NULL);
	/* Updates move records in the eviction order: 10.0.0.0 is the
	 * newest now, 10.0.0.1 the oldest, until 10.0.0.7 gets older. */
	PUT_OK(st, "new2.example.com", "192.0.2.1", &r);
	CHECK(state_get(st, K("", "10.0.0.0")) != NULL);
	CHECK(state_get(st, K("", "10.0.0.1")) == NULL);
	r = rec(RETRY_FAILED_ONCE, T0 - 5, 0, FAILURE_HANDSHAKE, "older");
	PUT_OK(st, "", "10.0.0.7", &r);
	PUT_OK(st, "new3.example.com", "192.0.2.1", &r);
	CHECK(state_get(st, K("", "10.0.0.7")) == NULL);
	CHECK(state_get(st, K("", "10.0.0.2")) != NULL);
	CHECK_INT(state_total(st), STATE_MAX_RECORDS);
	state_free(st);
}

/* What the file could not hold is refused and not stored. */
static void
test_invalid_put(void)
{
	static const struct {
		const char *host, *addr, *why;
	} keys[] = {
		{ "mx example.com", "192.0.2.1", "bad host name" },
		{ "mx\texample.com", "192.0.2.1", "bad host name" },
		{ "mx.ex\xc3\xa4mple.com", "192.0.2.1", "bad host name" },
		{ "-", "192.0.2.1", "bad host name" },
		{ "mx.example.com", "", "bad address" },
		{ "mx.example.com", "192.0.2.1 ", "bad address" },
		{ "mx.example.com", "0123456789012345678901234567890123456789"
		    "012345678901234567890123", "bad address" },
		{ NULL, "192.0.2.1", "bad host name" },
		{ "mx.example.com", NULL, "bad address" },
	};
	char *dir = tmpdir(), err[256], longhost[300];
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct retry_record bad;
	struct state *st = open_ok(dir);
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		err[0] = '\0';
		if (state_put(st, K(keys[i].host, keys[i].addr), &r, err,
		    sizeof(err)) != -1 || strstr(err, keys[i].why) == NULL) {
			fprintf(stderr, "key #%zu: err \"%s\", want %s\n", i,
			    err, keys[i].why);
			t_cur = 1;
		}
		CHECK(state_get(st, K(keys[i].host, keys[i].addr)) == NULL);
	}
	memset(longhost, 'a', sizeof(longhost));
	longhost[STATE_HOST_MAX] = '\0'; /* 255: fine */
	PUT_OK(st, longhost, "192.0.2.1", &r);
	CHECK(state_get(st, K(longhost, "192.0.2.1")) != NULL);
	longhost[STATE_HOST_MAX] = 'a';
	longhost[STATE_HOST_MAX + 1] = '\0'; /* 256: too long */
	CHECK_INT(state_put(st, K(longhost, "192.0.2.1"), &r, err, sizeof(err)),
	    -1);
	CHECK(state_get(st, K(longhost, "192.0.2.1")) == NULL);

	bad = r;
	bad.state = (enum retry_state)7;
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.1"), &bad, err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "invalid") != NULL);
	bad = r;
	bad.event = FAILURE_TLS_OK;
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.1"), &bad, err,
	    sizeof(err)), -1);
	bad = r;
	bad.first_failure = -1;
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.1"), &bad, err,
	    sizeof(err)), -1);
	bad = r;
	bad.broken_until = (time_t)253402300800;
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.1"), &bad, err,
	    sizeof(err)), -1);
	bad = r;
	memset(bad.error, 'x', sizeof(bad.error)); /* not terminated */
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.1"), &bad, err,
	    sizeof(err)), -1);
	CHECK(state_get(st, K("mx.example.com", "192.0.2.1")) == NULL);
	CHECK_INT(state_total(st), 1);
	state_free(st);

	/* The file holds only the valid one. */
	st = open_ok(dir);
	CHECK_INT(state_total(st), 1);
	state_free(st);
	rmtree(dir);
	free(dir);
}

#define GOOD1 "mx.example.com 192.0.2.1 failed-once 1795428000 0 handshake x\n"
#define GOOD2 "mx.example.com 192.0.2.2 broken 1795428000 1795431900 " \
	      "certificate y\n"
#define HEAD "mxtls-retry-state 1\n"

struct corrupt {
	const char *name;
	const char *data; /* NULL: built by the test */
	size_t len;	  /* 0: strlen(data) */
	const char *warning;
};

static const struct corrupt corrupt_cases[] = {
	{ "empty file", "", 0, "line 1: empty file" },
	{ "garbage", "\x7f" "ELF\x02\x01\x01\x00\x00\x00\x00", 11,
	    "line 1: NUL byte" },
	{ "text garbage", "hello world\nfoo\n", 0,
	    "line 1: not a retry-state file" },
	{ "bad version", "mxtls-retry-state 3\n" GOOD1, 0,
	    "line 1: unsupported version" },
	{ "version with junk", "mxtls-retry-state 1 \n" GOOD1, 0,
	    "line 1: unsupported version" },
	{ "header truncated", "mxtls-retry", 0, "line 1: truncated line" },
	{ "header only, no newline", "mxtls-retry-state 1", 0,
	    "line 1: truncated line" },
	{ "truncated line", HEAD GOOD1 "mx.example.com 192.0.2.3 bro", 0,
	    "line 3: truncated line" },
	{ "last line without newline", HEAD GOOD1
	    "mx.example.com 192.0.2.3 broken 1 2 handshake z", 0,
	    "line 3: truncated line" },
	{ "bad state", HEAD GOOD1 GOOD2
	    "mx.example.com 192.0.2.3 weird 1 0 handshake x\n", 0,
	    "line 4: bad state" },
	{ "state none", HEAD "mx.example.com 192.0.2.3 none 1 0 handshake x\n",
	    0, "line 2: bad state" },
	{ "negative time", HEAD "a 192.0.2.1 broken -5 0 handshake x\n", 0,
	    "line 2: bad first_failure" },
	{ "time with junk", HEAD "a 192.0.2.1 broken 12a 0 handshake x\n", 0,
	    "line 2: bad first_failure" },
	{ "time with plus", HEAD "a 192.0.2.1 broken +12 0 handshake x\n", 0,
	    "line 2: bad first_failure" },
	{ "time overflow", HEAD "a 192.0.2.1 broken 99999999999999999999999 "
	    "0 handshake x\n", 0, "line 2: bad first_failure" },
	{ "after year 9999", HEAD "a 192.0.2.1 broken 1 253402300800 "
	    "handshake x\n", 0, "line 2: bad broken_until" },
	{ "hex time", HEAD "a 192.0.2.1 broken 1 0x10 handshake x\n", 0,
	    "line 2: bad broken_until" },
	{ "bad event", HEAD "a 192.0.2.1 broken 1 2 tls-ok x\n", 0,
	    "line 2: bad event" },
	{ "too few fields", HEAD "a 192.0.2.1 broken 1 2 handshake\n", 0,
	    "line 2: too few fields" },
	{ "too many fields", HEAD "a 192.0.2.1 broken 1 2 handshake x y\n", 0,
	    "line 2: too many fields" },
	{ "double space", HEAD "a  192.0.2.1 broken 1 2 handshake x\n", 0,
	    "line 2: empty field" },
	{ "empty line", HEAD GOOD1 "\n", 0, "line 3: too few fields" },
	{ "tab separated", HEAD "a\t192.0.2.1 broken 1 2 handshake x y\n", 0,
	    "line 2: bad host name" },
	{ "CRLF", HEAD "a 192.0.2.1 broken 1 2 handshake x\r\n", 0,
	    "line 2: bad byte in error" },
	{ "bad escape", HEAD "a 192.0.2.1 broken 1 2 handshake x%G1\n", 0,
	    "line 2: bad escape in error" },
	{ "short escape", HEAD "a 192.0.2.1 broken 1 2 handshake x%4\n", 0,
	    "line 2: bad escape in error" },
	{ "escape at end", HEAD "a 192.0.2.1 broken 1 2 handshake x%\n", 0,
	    "line 2: bad escape in error" },
	{ "escaped NUL", HEAD "a 192.0.2.1 broken 1 2 handshake x%00y\n", 0,
	    "line 2: bad escape in error" },
	{ "raw 8-bit byte", HEAD "a 192.0.2.1 broken 1 2 handshake caf\xc3\xa9\n",
	    0, "line 2: bad byte in error" },
	{ "NUL in a line", HEAD "a 192.0.2.1 broken 1 2 hand\0shake x\n",
	    sizeof(HEAD "a 192.0.2.1 broken 1 2 hand\0shake x\n") - 1,
	    "line 2: NUL byte" },
	{ "duplicate", HEAD GOOD1 GOOD2 GOOD1, 0, "line 4: duplicate record" },
	{ "duplicate by case", HEAD GOOD1
	    "MX.Example.COM 192.0.2.1 broken 1 2 handshake x\n", 0,
	    "line 3: duplicate record" },
	{ "host with 8-bit byte", HEAD "m\xc3\xa4x 192.0.2.1 broken 1 2 "
	    "handshake x\n", 0, "line 2: bad host name" },
	{ "address too long", HEAD "a 0123456789012345678901234567890123456789"
	    "012345678901234567890123 broken 1 2 handshake x\n", 0,
	    "line 2: bad address" },
	{ "host too long", NULL, 0, "line 2: bad host name" },
	{ "error too long", NULL, 0, "line 2: error too long" },
	{ "huge line", NULL, 0, "line 3: line too long" },
	{ "too many records", NULL, 0, "line 100002: too many records" },
};

/* The data of the cases built at run time (malloc'd). */
static char *
corrupt_data(const struct corrupt *c, size_t *len)
{
	char *buf, *p;
	size_t i, n;

	if (c->data != NULL) {
		*len = c->len ? c->len : strlen(c->data);
		buf = malloc(*len);
		memcpy(buf, c->data, *len);
		return buf;
	}
	if (strcmp(c->name, "host too long") == 0) {
		n = strlen(HEAD) + 256 + 64;
		buf = p = malloc(n);
		p += sprintf(p, HEAD);
		memset(p, 'h', 256);
		p += 256;
		p += sprintf(p, " 192.0.2.1 broken 1 2 handshake x\n");
	} else if (strcmp(c->name, "error too long") == 0) {
		/* 256 bytes, one more than a record holds, as escapes */
		n = strlen(HEAD) + 64 + 3 * 256;
		buf = p = malloc(n);
		p += sprintf(p, HEAD "a 192.0.2.1 broken 1 2 handshake ");
		for (i = 0; i < 256; i++)
			p += sprintf(p, "%%20");
		*p++ = '\n';
	} else if (strcmp(c->name, "huge line") == 0) {
		n = strlen(HEAD GOOD1) + (1 << 20) + 1;
		buf = p = malloc(n);
		p += sprintf(p, HEAD GOOD1);
		memset(p, 'a', 1 << 20);
		p += 1 << 20;
		*p++ = '\n';
	} else { /* too many records */
		n = strlen(HEAD) + (size_t)(STATE_MAX_RECORDS + 1) * 64;
		buf = p = malloc(n);
		p += sprintf(p, HEAD);
		for (i = 0; i <= STATE_MAX_RECORDS; i++)
			p += sprintf(p, "- 10.%zu.%zu.%zu failed-once 1 0 "
			    "handshake -\n", i >> 16, (i >> 8) & 255, i & 255);
	}
	*len = (size_t)(p - buf);
	return buf;
}

/* A corrupt file: an empty store, a warning naming file and line, never a
 * crash; the next change writes a good file. */
static void
test_corrupt(void)
{
	char *dir = tmpdir(), warn[512], err[256], want[600];
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	size_t i, len;

	for (i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]);
	    i++) {
		const struct corrupt *c = &corrupt_cases[i];
		char *data = corrupt_data(c, &len);
		struct state *st;

		write_file(dir, data, len);
		free(data);
		warn[0] = '\0';
		st = state_open(dir, warn, sizeof(warn));
		printf("     %s: %s\n", c->name, warn);
		if (st == NULL) {
			fprintf(stderr, "%s: state_open NULL\n", c->name);
			t_cur = 1;
			continue;
		}
		snprintf(want, sizeof(want), "%s/retry-state %s", dir,
		    c->warning);
		if (strcmp(warn, want) != 0) {
			fprintf(stderr, "%s: warning \"%s\", want \"%s\"\n",
			    c->name, warn, want);
			t_cur = 1;
		}
		if (state_total(st) != 0 ||
		    state_count(st, RETRY_FAILED_ONCE) != 0 ||
		    state_count(st, RETRY_BROKEN) != 0 ||
		    state_get(st, K("mx.example.com", "192.0.2.1")) != NULL) {
			fprintf(stderr, "%s: store not empty\n", c->name);
			t_cur = 1;
		}
		/* The next change replaces the bad file with a good one. */
		if (state_put(st, K("mx.example.com", "192.0.2.9"), &r, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "%s: put: %s\n", c->name, err);
			t_cur = 1;
		}
		state_free(st);
		st = open_ok(dir);
		CHECK_INT(state_total(st), 1);
		state_free(st);
	}
	rmtree(dir);
	free(dir);
}

/* Files that look odd but are fine. */
static void
test_valid_files(void)
{
	static const char hand[] = HEAD "MX.EXAMPLE.COM 192.0.2.1 broken 5 7 "
	    "no-starttls a%2fb%20c\n- 192.0.2.2 failed-once 9 0 certificate -\n";
	char *dir = tmpdir();
	struct retry_record want;
	struct state *st;

	write_file(dir, HEAD, strlen(HEAD));
	st = open_ok(dir);
	CHECK_INT(state_total(st), 0);
	state_free(st);

	/* Hand-written: upper case, a lower-case escape. */
	write_file(dir, hand, strlen(hand));
	st = open_ok(dir);
	CHECK_INT(state_total(st), 2);
	want = rec(RETRY_BROKEN, 5, 7, FAILURE_NO_STARTTLS, "a/b c");
	check_rec("hand-written", state_get(st, K("mx.example.com", "192.0.2.1")),
	    &want);
	want = rec(RETRY_FAILED_ONCE, 9, 0, FAILURE_CERTIFICATE, "");
	check_rec("literal host", state_get(st, K("", "192.0.2.2")), &want);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/*
 * Unreadable: a directory where the snapshot should be.  The writer's
 * compaction fails, the record stays in memory; once the way is clear the
 * next try writes everything.
 */
static void
test_unreadable(void)
{
	char *dir = tmpdir(), p[512], warn[512], want[600], err[256];
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct state *st;

	path_of(p, sizeof(p), dir, STATE_FILE);
	CHECK_INT(mkdir(p, 0700), 0);
	st = state_open(dir, warn, sizeof(warn));
	CHECK(st != NULL);
	if (st == NULL)
		return;
	snprintf(want, sizeof(want), "%s: read: Is a directory", p);
	CHECK_STR(warn, want);
	CHECK_INT(state_total(st), 0);
	state_put(st, K("mx.example.com", "192.0.2.1"), &r, err, sizeof(err));
	CHECK_INT(state_sync(st, err, sizeof(err)), -1);
	printf("     rename onto a directory: %s\n", err);
	snprintf(want, sizeof(want), "rename to %s: Is a directory", p);
	CHECK_STR(err, want);
	CHECK(state_get(st, K("mx.example.com", "192.0.2.1")) != NULL);
	CHECK(!exists(dir, STATE_FILE ".tmp"));
	/* The error reaches the loop once, through a put or an expiry. */
	r.first_failure++;
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.2"), &r, err,
	    sizeof(err)), 0);
	rmdir(p);
	SYNC_OK(st);
	state_free(st);
	st = open_ok(dir);
	CHECK_INT(state_total(st), 2);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/* The tmp files never stay: not after a write, not after a failed one. */
static void
test_tmp_file(void)
{
	char *dir = tmpdir(), p[512], target[512], err[256];
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct state *st = open_ok(dir);
	DIR *d;
	struct dirent *de;
	int n = 0;

	PUT_OK(st, "mx.example.com", "192.0.2.1", &r);
	r.first_failure++;
	PUT_OK(st, "mx.example.com", "192.0.2.1", &r);
	state_free(st);
	compact(dir);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
	}
	CHECK_INT(n, 2); /* only retry-state and its journal */

	/*
	 * Symlinks planted as the tmp files are not followed: they are
	 * removed (a stale tmp file must never block every later write) and
	 * the writes go to fresh files.
	 */
	path_of(target, sizeof(target), dir, "target");
	path_of(p, sizeof(p), dir, STATE_FILE ".tmp");
	CHECK_INT(symlink(target, p), 0);
	path_of(p, sizeof(p), dir, STATE_JOURNAL ".tmp");
	CHECK_INT(symlink(target, p), 0);
	st = open_ok(dir);
	r.first_failure++;
	CHECK_INT(state_put(st, K("mx.example.com", "192.0.2.2"), &r, err,
	    sizeof(err)), 0);
	state_free(st);
	compact(dir);
	CHECK(access(target, F_OK) == -1);
	CHECK(!exists(dir, STATE_FILE ".tmp"));
	CHECK(!exists(dir, STATE_JOURNAL ".tmp"));
	st = read_ok(dir);
	CHECK_INT(state_total(st), 2);
	state_free(st);
	rmtree(dir);
	free(dir);
}

static void
test_expire(void)
{
	char *dir = tmpdir(), err[256];
	struct retry_record once = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "once");
	struct retry_record broken = rec(RETRY_BROKEN, T0, T0 + 3900,
	    FAILURE_CERTIFICATE, "broken");
	struct retry_record broken2 = rec(RETRY_BROKEN, T0, T0 + 5000,
	    FAILURE_CERTIFICATE, "broken longer");
	struct state *st = open_ok(dir);
	char *file;

	PUT_OK(st, "a.example", "192.0.2.1", &once);
	PUT_OK(st, "b.example", "192.0.2.1", &broken);
	PUT_OK(st, "c.example", "192.0.2.1", &broken2);

	/* Nothing due: no write. */
	CHECK_INT(state_expire(st, T0 + 3899, &dflt, err, sizeof(err)), 0);
	CHECK_INT(state_total(st), 3);
	SYNC_OK(st);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 4);

	/* broken_until reached; a failed-once at t0 + 300 + 3600 too. */
	CHECK_INT(state_expire(st, T0 + 3900, &dflt, err, sizeof(err)), 0);
	CHECK_INT(state_total(st), 1);
	CHECK(state_get(st, K("a.example", "192.0.2.1")) == NULL);
	CHECK(state_get(st, K("b.example", "192.0.2.1")) == NULL);
	CHECK(state_get(st, K("c.example", "192.0.2.1")) != NULL);
	CHECK_INT(state_count(st, RETRY_FAILED_ONCE), 0);
	CHECK_INT(state_count(st, RETRY_BROKEN), 1);
	state_free(st);
	file = read_named(dir, STATE_JOURNAL);
	CHECK(file != NULL && strstr(file, "\ndel a.example 192.0.2.1 25 strict "
	    KEY_POLICY "\n") != NULL && strstr(file, "\ndel b.example "
	    "192.0.2.1 25 strict " KEY_POLICY "\n") != NULL);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 6);
	free(file);

	st = open_ok(dir);
	CHECK_INT(state_total(st), 1);
	CHECK_INT(state_expire(st, T0 + 5000, &dflt, err, sizeof(err)), 0);
	CHECK_INT(state_total(st), 0);
	state_free(st);
	st = open_ok(dir);
	CHECK_INT(state_total(st), 0);
	state_free(st);
	CHECK(!exists(dir, STATE_FILE ".tmp"));
	rmtree(dir);
	free(dir);
}

static void
test_print(void)
{
	struct retry_record once = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "tlsv1 alert \"protocol\" version");
	struct retry_record broken = rec(RETRY_BROKEN, T0, T0 + 3900,
	    FAILURE_CERTIFICATE, "bad\\cert\n\x01\xc3\xa9");
	struct retry_record lit = rec(RETRY_BROKEN, T0 - 86400, T0 - 3600,
	    FAILURE_NO_STARTTLS, "");
	char warn[64], *buf = NULL, *p;
	size_t len = 0;
	struct state *st = state_open(NULL, warn, sizeof(warn));
	FILE *out;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	/* Empty: nothing at all. */
	out = open_memstream(&buf, &len);
	state_print(st, out, T0, &dflt);
	fclose(out);
	CHECK_STR(buf, "");
	free(buf);
	buf = NULL;

	PUT_OK(st, "mx2.example.com", "192.0.2.2", &broken);
	PUT_OK(st, "mx1.example.com", "192.0.2.1", &once);
	PUT_OK(st, "", "2001:db8::25", &lit);
	out = open_memstream(&buf, &len);
	state_print(st, out, T0 + 300, &dflt);
	fclose(out);
	for (p = strtok(buf, "\n"); p != NULL; p = strtok(NULL, "\n"))
		printf("     %s\n", p);
	free(buf);
	buf = NULL;
	out = open_memstream(&buf, &len);
	state_print(st, out, T0 + 300, &dflt);
	fclose(out);
	CHECK_STR(buf,
	    "- 2001:db8::25 broken port=25 profile=strict policy=01234567 "
	    "since=2026-11-22T10:00:00Z "
	    "until=2026-11-23T09:00:00Z event=no-starttls error=\"\" expired\n"
	    "mx1.example.com 192.0.2.1 failed-once port=25 profile=strict "
	    "policy=01234567 since=2026-11-23T10:00:00Z "
	    "retry_after=2026-11-23T10:05:00Z event=handshake "
	    "error=\"tlsv1 alert \\\"protocol\\\" version\"\n"
	    "mx2.example.com 192.0.2.2 broken port=25 profile=strict "
	    "policy=01234567 since=2026-11-23T10:00:00Z "
	    "until=2026-11-23T11:05:00Z event=certificate "
	    "error=\"bad\\\\cert\\x0a\\x01\\xc3\\xa9\"\n");
	free(buf);
	state_free(st);
}

/*
 * Every part of the key keeps records apart: the port (two next hops on
 * one address), the policy fingerprint (two profiles, or two names wanted,
 * at one host) and the host name (transparent mode: "" and a name).
 */
static void
test_key_parts(void)
{
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct state_key k587 = { "mx.example.com", "192.0.2.1", 587,
		"strict", KEY_POLICY };
	struct state_key kother = { "mx.example.com", "192.0.2.1", 25, "lax",
		"fedcba9876543210" };
	struct state *st = state_open(NULL, NULL, 0);
	char err[256];

	CHECK(st != NULL);
	if (st == NULL)
		return;
	PUT_OK(st, "mx.example.com", "192.0.2.1", &r);
	CHECK(state_get(st, K("mx.example.com", "192.0.2.1")) != NULL);
	CHECK(state_get(st, &k587) == NULL);
	CHECK(state_get(st, &kother) == NULL);
	CHECK(state_get(st, K("", "192.0.2.1")) == NULL);
	CHECK(state_get(st, K("mx.other.example", "192.0.2.1")) == NULL);
	CHECK_INT(state_put(st, &k587, &r, err, sizeof(err)), 0);
	CHECK_INT(state_total(st), 2);
	k587.port = 0;
	CHECK_INT(state_put(st, &k587, &r, err, sizeof(err)), -1);
	CHECK_STR(err, "retry record: bad port");
	kother.policy = "NOT HEX";
	CHECK_INT(state_put(st, &kother, &r, err, sizeof(err)), -1);
	CHECK_STR(err, "retry record: bad policy fingerprint");
	state_free(st);
}

/*
 * A version 1 file (no port, no policy) is read as port 25 under any
 * policy; the first verdict of a known policy for that host, address and
 * port replaces it; the file is written back as version 2.
 */
static void
test_version1(void)
{
	static const char v1[] = "mxtls-retry-state 1\n"
	    "mx.example.com 192.0.2.1 failed-once 1795428000 0 handshake "
	    "old\n";
	struct state_key k587 = { "mx.example.com", "192.0.2.1", 587,
		"strict", KEY_POLICY };
	struct retry_record want = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "old");
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0 + 5, 0,
	    FAILURE_CERTIFICATE, "new");
	char *dir = tmpdir(), *file;
	struct state *st;

	write_file(dir, v1, sizeof(v1) - 1);
	st = open_ok(dir);
	check_rec("v1 under any policy", state_get(st,
	    K("mx.example.com", "192.0.2.1")), &want);
	check_rec("v1 under another policy", state_get(st, &(struct state_key){
	    "mx.example.com", "192.0.2.1", 25, "lax", "abcdef" }), &want);
	CHECK(state_get(st, &k587) == NULL);
	SYNC_OK(st); /* a version 1 file is rewritten at once */
	file = read_state_file(dir);
	CHECK_STR(file, "mxtls-retry-state 2\n"
	    "mx.example.com 192.0.2.1 25 - * failed-once 1795428000 0 "
	    "handshake old\n");
	free(file);
	PUT_OK(st, "mx.example.com", "192.0.2.1", &r);
	CHECK_INT(state_total(st), 1);
	CHECK(state_get(st, &(struct state_key){ "mx.example.com",
	    "192.0.2.1", 25, "lax", "abcdef" }) == NULL);
	state_free(st);
	file = read_named(dir, STATE_JOURNAL);
	CHECK_STR(file, "mxtls-retry-journal 1\n"
	    "del mx.example.com 192.0.2.1 25 - *\n"
	    "put mx.example.com 192.0.2.1 25 strict " KEY_POLICY " failed-once "
	    "1795428005 0 certificate new\n");
	free(file);
	compact(dir);
	file = read_state_file(dir);
	CHECK_STR(file, "mxtls-retry-state 2\n"
	    "mx.example.com 192.0.2.1 25 strict " KEY_POLICY " failed-once "
	    "1795428005 0 certificate new\n");
	free(file);
	rmtree(dir);
	free(dir);
}


/* The records of a store, as `mxtls state` lists them (malloc'd). */
static char *
listing(struct state *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	if (out == NULL)
		exit(2);
	state_print(st, out, T0, &dflt);
	fclose(out);
	return buf;
}

#define SNAP "mxtls-retry-state 2\n"
#define JOUR "mxtls-retry-journal 1\n"
#define LINE(h, a, rest) h " " a " 25 strict " KEY_POLICY " " rest "\n"
#define REC_A LINE("a.example", "192.0.2.1", "failed-once 1795428000 0 handshake a")
#define REC_B LINE("b.example", "192.0.2.2", "broken 1795428000 1795431900 certificate b")
#define REC_C LINE("c.example", "192.0.2.3", "failed-once 1795428100 0 no-starttls c")

/* A listing of the records A, B, C (a subset, in that order). */
static void
check_records(const char *what, struct state *st, int a, int b, int c)
{
	struct retry_record ra = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "a");
	struct retry_record rb = rec(RETRY_BROKEN, T0, T0 + 3900,
	    FAILURE_CERTIFICATE, "b");
	struct retry_record rc = rec(RETRY_FAILED_ONCE, T0 + 100, 0,
	    FAILURE_NO_STARTTLS, "c");
	const struct retry_record *g;

	if (state_total(st) != a + b + c) {
		fprintf(stderr, "%s: %d records, want %d\n", what,
		    state_total(st), a + b + c);
		t_cur = 1;
	}
	g = state_get(st, K("a.example", "192.0.2.1"));
	if (a)
		check_rec(what, g, &ra);
	else
		CHECK(g == NULL);
	g = state_get(st, K("b.example", "192.0.2.2"));
	if (b)
		check_rec(what, g, &rb);
	else
		CHECK(g == NULL);
	g = state_get(st, K("c.example", "192.0.2.3"));
	if (c)
		check_rec(what, g, &rc);
	else
		CHECK(g == NULL);
}

/* state_read() of dir: its warning must be want ("" for none; %s stands
 * for dir). */
static struct state *
read_warn(const char *dir, const char *want)
{
	char warn[1024] = "x", w[1024];
	struct state *st = state_read(dir, warn, sizeof(warn));

	if (st == NULL)
		exit(2);
	snprintf(w, sizeof(w), want, dir, dir);
	if (warn[0] != '\0')
		printf("     %s\n", warn);
	CHECK_STR(warn, w);
	return st;
}

/*
 * A crash cut the last write short: the torn line (a part of a line, or
 * the zeros a file system may leave) is skipped with a warning, nothing
 * before it is lost, and the next start rewrites the files cleanly.
 */
static void
test_torn_last_line(void)
{
	static const char *const tails[] = {
		"put c.example 192.0.2.3 25 strict " KEY_POLICY " failed-o",
		"put c.exa\0\0\0\0\0\0\0\0",
		"\0\0\0\0\0\0\0\0\0\0\0\0",
	};
	static const char *const warnings[] = {
		"%s/retry-state.journal line 4: truncated line (skipped)",
		"%s/retry-state.journal line 4: NUL byte (skipped)",
		"%s/retry-state.journal line 4: NUL byte (skipped)",
	};
	static const char good[] = JOUR "put " REC_B
	    "del a.example 192.0.2.1 25 strict " KEY_POLICY "\n";
	char *dir = tmpdir(), *j;
	struct state *st;
	size_t i, len;

	for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		write_file(dir, SNAP REC_A, strlen(SNAP REC_A));
		len = sizeof(good) - 1 + (i == 0 ? strlen(tails[i]) : 12);
		j = malloc(len);
		memcpy(j, good, sizeof(good) - 1);
		memcpy(j + sizeof(good) - 1, tails[i], len - sizeof(good) + 1);
		write_named(dir, STATE_JOURNAL, j, len);
		free(j);
		st = read_warn(dir, warnings[i]);
		check_records("torn", st, 0, 1, 0);
		state_free(st);
		compact(dir);
		st = read_ok(dir);
		check_records("torn, compacted", st, 0, 1, 0);
		state_free(st);
	}
	rmtree(dir);
	free(dir);
}

/*
 * A line damaged in the middle of the journal is skipped: the changes
 * before and after it count (each line stands alone).
 */
static void
test_bad_middle_line(void)
{
	static const char j[] = JOUR "put " REC_A "garbage\n" "put " REC_B
	    "del c.example 192.0.2.3 99999 strict " KEY_POLICY "\n" "put " REC_C;
	char *dir = tmpdir();
	struct state *st;

	write_named(dir, STATE_JOURNAL, j, sizeof(j) - 1);
	st = read_warn(dir, "%s/retry-state.journal line 3: neither put nor "
	    "del (skipped, and more bad lines after it)");
	check_records("bad middle line", st, 1, 1, 1);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/* A journal whose header is wrong is not applied; the snapshot counts,
 * and the next start replaces the journal. */
static void
test_bad_journal_header(void)
{
	static const struct {
		const char *data, *warning;
	} cases[] = {
		{ "mxtls-retry-journal 9\n" "put " REC_B,
		    "%s/retry-state.journal line 1: unsupported version (not "
		    "applied)" },
		{ "hello\n" "put " REC_B, "%s/retry-state.journal line 1: not a "
		    "retry-state journal (not applied)" },
		{ "mxtls-retry-journ", "%s/retry-state.journal line 1: "
		    "truncated line (not applied)" },
		{ "", "" }, /* created; the crash came before its header */
	};
	char *dir = tmpdir();
	struct state *st;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(dir, SNAP REC_A, strlen(SNAP REC_A));
		write_named(dir, STATE_JOURNAL, cases[i].data,
		    strlen(cases[i].data));
		st = read_warn(dir, cases[i].warning);
		check_records("bad header", st, 1, 0, 0);
		state_free(st);
		compact(dir);
		st = read_ok(dir);
		check_records("bad header, compacted", st, 1, 0, 0);
		state_free(st);
	}
	rmtree(dir);
	free(dir);
}

/* Only a journal: the first start, then a crash before any compaction. */
static void
test_journal_only(void)
{
	static const char j[] = JOUR "put " REC_A "put " REC_B
	    "del b.example 192.0.2.2 25 strict " KEY_POLICY "\n" "put " REC_C "put " REC_B;
	char *dir = tmpdir(), *file;
	struct state *st;

	write_named(dir, STATE_JOURNAL, j, sizeof(j) - 1);
	st = read_ok(dir);
	check_records("journal only", st, 1, 1, 1);
	state_free(st);
	CHECK(!exists(dir, STATE_FILE)); /* state_read() wrote nothing */
	compact(dir);
	file = read_state_file(dir);
	CHECK(file != NULL && strlen(file) == strlen(SNAP REC_A REC_B REC_C));
	free(file);
	st = read_ok(dir);
	check_records("journal only, compacted", st, 1, 1, 1);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/* Only a snapshot (as an earlier mxtls left it): read as it is, not
 * rewritten at start; the writer starts a journal beside it. */
static void
test_snapshot_only(void)
{
	char *dir = tmpdir(), p[512];
	struct state *st;
	struct stat before, after;

	write_file(dir, SNAP REC_A REC_C, strlen(SNAP REC_A REC_C));
	st = read_ok(dir);
	check_records("snapshot only", st, 1, 0, 1);
	state_free(st);
	CHECK(!exists(dir, STATE_JOURNAL));
	path_of(p, sizeof(p), dir, STATE_FILE);
	CHECK_INT(stat(p, &before), 0);
	st = open_ok(dir);
	SYNC_OK(st);
	state_free(st);
	CHECK_INT(stat(p, &after), 0);
	CHECK(before.st_ino == after.st_ino);
	CHECK_INT(lines_of(dir, STATE_JOURNAL), 1);
	rmtree(dir);
	free(dir);
}

/*
 * A crash after the new snapshot was renamed into place, before the new
 * journal was: the old journal is applied over a snapshot that already
 * holds it, and nothing changes.  Even at the limit: a record that a
 * journal line put and a later one deleted again must not evict another
 * one on the way.
 */
static void
test_crash_between_renames(void)
{
	char *dir = tmpdir(), *buf, *p, addr[32];
	struct state *st;
	int i, missing = 0;

	/* The new snapshot: full, the oldest record 10.0.0.0, then a. */
	buf = p = malloc((size_t)STATE_MAX_RECORDS * 96 + 256);
	p += sprintf(p, SNAP);
	for (i = 0; i < STATE_MAX_RECORDS - 1; i++)
		p += sprintf(p, "- 10.%d.%d.%d 25 strict " KEY_POLICY
		    " failed-once %lld 0 handshake -\n", i >> 16,
		    (i >> 8) & 255, i & 255, (long long)(T0 + i));
	p += sprintf(p, REC_A);
	write_file(dir, buf, (size_t)(p - buf));
	/* The old journal, which led to it from a snapshot without a. */
	p = buf;
	p += sprintf(p, JOUR "put " REC_B
	    "del b.example 192.0.2.2 25 strict " KEY_POLICY "\n"
	    "del gone.example 192.0.2.9 25 strict " KEY_POLICY "\n"
	    "put " REC_A);
	write_named(dir, STATE_JOURNAL, buf, (size_t)(p - buf));
	free(buf);
	st = read_ok(dir);
	CHECK_INT(state_total(st), STATE_MAX_RECORDS);
	CHECK(state_get(st, K("a.example", "192.0.2.1")) != NULL);
	CHECK(state_get(st, K("b.example", "192.0.2.2")) == NULL);
	for (i = 0; i < STATE_MAX_RECORDS - 1; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		missing += state_get(st, K("", addr)) == NULL;
	}
	CHECK_INT(missing, 0);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/*
 * A journal longer than twice the records plus STATE_COMPACT_SLACK
 * (10,000) lines is compacted by the writer while it runs.
 */
static void
test_compaction(void)
{
	char *dir = tmpdir(), *live, *again;
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct state *st = open_ok(dir);
	int i, n;

	for (i = 0; i < 10010; i++) {
		r.first_failure = T0 + i;
		PUT_OK(st, i % 3 == 0 ? "a.example" : i % 3 == 1 ?
		    "b.example" : "c.example", "192.0.2.1", &r);
	}
	SYNC_OK(st);
	n = lines_of(dir, STATE_JOURNAL);
	printf("     10010 changes to 3 records: snapshot %d lines, journal "
	    "%d lines\n", lines_of(dir, STATE_FILE), n);
	CHECK(n >= 1 && n < 100);
	CHECK_INT(lines_of(dir, STATE_FILE), 4);
	live = listing(st);
	state_free(st);
	st = read_ok(dir);
	again = listing(st);
	CHECK(live != NULL && again != NULL && strcmp(live, again) == 0);
	free(live);
	free(again);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/*
 * A writer that takes nothing (a hanging disk) until its queue is full:
 * state_put() says so once, the store keeps every change, and once the
 * writer is back the whole table is written: deletions made meanwhile too.
 */
static void
test_queue_full(void)
{
	char *dir = tmpdir(), host[64], err[512], *live, *again;
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct retry_record none = rec(RETRY_NONE, 0, 0, FAILURE_TLS_OK, "");
	struct state *st = open_ok(dir);
	int i, fails = 0;

	PUT_OK(st, "gone.example", "192.0.2.1", &r);
	SYNC_OK(st);
	state_hold_writer(st, 1);
	state_set_queue_limit(st, 2000);
	for (i = 0; i < 100; i++) {
		snprintf(host, sizeof(host), "h%d.example", i);
		err[0] = '\0';
		if (state_put(st, K(host, "192.0.2.1"), &r, err,
		    sizeof(err)) == -1) {
			if (fails++ == 0)
				printf("     queue full after %d puts: %s\n", i,
				    err);
			CHECK(strstr(err, "queue of changes for the writer is "
			    "full") != NULL);
		}
	}
	CHECK_INT(fails, 1);
	PUT_OK(st, "gone.example", "192.0.2.1", &none);
	CHECK_INT(state_total(st), 100);
	state_hold_writer(st, 0);
	SYNC_OK(st);
	live = listing(st);
	state_free(st);
	st = read_ok(dir);
	again = listing(st);
	CHECK(live != NULL && again != NULL && strcmp(live, again) == 0);
	CHECK(state_get(st, K("gone.example", "192.0.2.1")) == NULL);
	CHECK_INT(state_total(st), 100);
	free(live);
	free(again);
	state_free(st);
	rmtree(dir);
	free(dir);
}

/* state_read() never writes: not at start, not for a change. */
static void
test_read_only(void)
{
	static const char j[] = JOUR "put " REC_A;
	char *dir = tmpdir(), err[256], *file;
	struct retry_record r = rec(RETRY_FAILED_ONCE, T0, 0,
	    FAILURE_HANDSHAKE, "x");
	struct state *st;

	write_named(dir, STATE_JOURNAL, j, sizeof(j) - 1);
	st = read_ok(dir);
	CHECK_INT(state_put(st, K("new.example", "192.0.2.1"), &r, err,
	    sizeof(err)), 0);
	CHECK_INT(state_sync(st, err, sizeof(err)), 0);
	state_free(st);
	CHECK(!exists(dir, STATE_FILE));
	file = read_named(dir, STATE_JOURNAL);
	CHECK_STR(file, j);
	free(file);
	rmtree(dir);
	free(dir);
}

int
main(void)
{
	RUN(test_missing_file);
	RUN(test_round_trip);
	RUN(test_update_delete_counts);
	RUN(test_longest_line);
	RUN(test_many);
	RUN(test_eviction);
	RUN(test_invalid_put);
	RUN(test_corrupt);
	RUN(test_valid_files);
	RUN(test_unreadable);
	RUN(test_tmp_file);
	RUN(test_expire);
	RUN(test_print);
	RUN(test_key_parts);
	RUN(test_version1);
	RUN(test_torn_last_line);
	RUN(test_bad_middle_line);
	RUN(test_bad_journal_header);
	RUN(test_journal_only);
	RUN(test_snapshot_only);
	RUN(test_crash_between_renames);
	RUN(test_compaction);
	RUN(test_queue_full);
	RUN(test_read_only);
	return T_DONE();
}

/*
 * proxy/sts.c without sockets: the cache on a real libev loop with
 * neither DNS nor fetcher (loading, removal of corrupt and expired files,
 * eviction, callbacks only from the loop, cancel, free from a callback).
 * The pure rules it decides with (the record, the decisions, the
 * eviction order, fetch outcomes): tests/unit/test_stsdecide.c.
 */
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "sts.h"
#include "stsrec.h"
#include "t.h"

static char err[512];
static char tmp[PATH_MAX];

/* ---- helpers (xstrdup and mkrec: stsrec.h) ---- */

static void
write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char p[PATH_MAX + 300];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((f = fopen(p, "w")) == NULL || fwrite(text, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(p);
		exit(2);
	}
}

static int
exists(const char *dir, const char *name)
{
	char p[PATH_MAX + 300];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &sb) == 0;
}

/* Write a record as DOMAIN.sts into dir. */
static void
put_rec(const char *dir, const struct sts_record *r)
{
	char name[300], *text;
	size_t len;

	if (sts_record_format(r, &text, &len, err, sizeof(err)) < 0) {
		fprintf(stderr, "format %s: %s\n", r->domain, err);
		exit(2);
	}
	snprintf(name, sizeof(name), "%s.sts", r->domain);
	write_file(dir, name, text, len);
	free(text);
}

static void
rm_rf(const char *dir)
{
	char p[PATH_MAX + 300];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) == -1)
			rmdir(p);
	}
	closedir(d);
	rmdir(dir);
}


/* ---- the cache on a loop, without DNS or fetcher ---- */

static struct ev_loop *loop;
static int in_lookup, ncalls;
static char last_source[64], last_mode[16], last_error[256];
static int last_nmx;
static struct sts *free_me;

static void
answer_cb(void *arg, const struct sts_answer *a)
{
	(void)arg;
	if (in_lookup)
		CHECK(!"callback inside sts_lookup");
	ncalls++;
	snprintf(last_source, sizeof(last_source), "%s", a->source);
	snprintf(last_mode, sizeof(last_mode), "%s", a->policy != NULL ?
	    mtasts_mode_name(a->policy->mode) : "-");
	snprintf(last_error, sizeof(last_error), "%s", a->error ? a->error :
	    "-");
	last_nmx = a->policy != NULL ? a->policy->nmx : 0;
	if (free_me != NULL) {
		sts_free(free_me);
		free_me = NULL;
	}
}

/* One lookup, run until answered; the callback count must grow by 1. */
static void
lookup(struct sts *s, const char *domain)
{
	int before = ncalls, i;

	in_lookup = 1;
	CHECK(sts_lookup(s, domain, answer_cb, NULL) != NULL);
	in_lookup = 0;
	CHECK_INT(ncalls, before);
	for (i = 0; i < 100 && ncalls == before; i++)
		ev_run(loop, EVRUN_ONCE);
	CHECK_INT(ncalls, before + 1);
}

/* Append r to the journal of dir (as key key), made when missing. */
static void
jput(const char *dir, const char *key, const struct sts_record *r)
{
	char p[PATH_MAX + 32], *text, *rec;
	size_t len, n;
	struct stat sb;
	FILE *f;

	if (sts_record_format(r, &text, &len, err, sizeof(err)) < 0) {
		fprintf(stderr, "format %s: %s\n", r->domain, err);
		exit(2);
	}
	snprintf(p, sizeof(p), "%s/" STS_JOURNAL, dir);
	mkdir(dir, 0700);
	if ((rec = malloc(len + 400)) == NULL || (f = fopen(p, "a")) == NULL)
		exit(2);
	if (stat(p, &sb) == 0 && sb.st_size == 0)
		fputs("mxtls-journal 1 " STS_JOURNAL_NAME "\n", f);
	n = journal_format('P', key, text, len, rec, len + 400);
	if (n == 0 || fwrite(rec, 1, n, f) != n || fclose(f) != 0)
		exit(2);
	free(rec);
	free(text);
}

/* The mode of domain's record in the journal of dir, "-" for none. */
static const char *
on_disk(const char *dir, const char *domain)
{
	static char mode[16];
	struct sts_record r;

	switch (sts_cache_read(dir, domain, &r, err, sizeof(err))) {
	case 1:
		snprintf(mode, sizeof(mode), "%s",
		    mtasts_mode_name(r.policy.mode));
		sts_record_free(&r);
		return mode;
	case 0:
		return "-";
	}
	return "error";
}

static long
file_size(const char *dir, const char *name)
{
	char p[PATH_MAX + 300];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

#define BIG ((size_t)1 << 30) /* max_bytes that bounds nothing */

static void
cache_load_and_answer(void)
{
	char dir[PATH_MAX + 16];
	struct sts_record r;
	struct sts *s;
	time_t now = time(NULL);

	snprintf(dir, sizeof(dir), "%s/load", tmp);
	/* sts_new creates the directory, 0700, and the journal, 0600. */
	s = sts_new(loop, NULL, NULL, dir, NULL, 0.5, BIG, err, sizeof(err));
	CHECK(s != NULL);
	{
		struct stat sb;
		char p[PATH_MAX + 32];

		CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
		snprintf(p, sizeof(p), "%s/" STS_JOURNAL, dir);
		CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	}
	sts_free(s);

	mkrec(&r, "good.test", "7", MTASTS_ENFORCE, 86400, now - 100,
	    "mx.good.test", "*.good.test");
	jput(dir, "good.test", &r);
	sts_record_free(&r);
	mkrec(&r, "none.test", "7", MTASTS_NONE, 86400, now - 100, NULL, NULL);
	jput(dir, "none.test", &r);
	sts_record_free(&r);
	mkrec(&r, "old.test", "7", MTASTS_ENFORCE, 100, now - 200, "mx.old.test",
	    NULL);
	jput(dir, "old.test", &r);
	sts_record_free(&r);
	/* A key that is not the domain its record holds. */
	mkrec(&r, "other.test", "7", MTASTS_ENFORCE, 86400, now - 100, "mx.o",
	    NULL);
	jput(dir, "mismatch.test", &r);
	sts_record_free(&r);

	s = sts_new(loop, NULL, NULL, dir, NULL, 0.5, BIG, err, sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_STR(on_disk(dir, "good.test"), "enforce");
	CHECK_STR(on_disk(dir, "none.test"), "none");
	CHECK_STR(on_disk(dir, "old.test"), "-");      /* expired */
	CHECK_STR(on_disk(dir, "mismatch.test"), "-"); /* corrupt */
	CHECK_STR(on_disk(dir, "other.test"), "-");

	/* No DNS: the TXT check fails, the valid cached policy applies. */
	lookup(s, "good.test");
	CHECK_STR(last_source, "txt-tempfail-cache-valid");
	CHECK_STR(last_mode, "enforce");
	CHECK_INT(last_nmx, 2);
	CHECK_STR(last_error, "-");
	/* Upper case is folded. */
	lookup(s, "GOOD.test");
	CHECK_STR(last_mode, "enforce");
	/* mode none: no policy. */
	lookup(s, "none.test");
	CHECK_STR(last_mode, "-");
	lookup(s, "old.test");
	CHECK_STR(last_source, "txt-tempfail");
	CHECK_STR(last_mode, "-");
	lookup(s, "unknown.test");
	CHECK_STR(last_source, "txt-tempfail");
	lookup(s, "[192.0.2.1]");
	CHECK_STR(last_source, "not-a-domain");
	lookup(s, "a..b");
	CHECK_STR(last_source, "not-a-domain");
	/* sts_refresh without DNS: nothing breaks, the cache stays. */
	sts_refresh(s, "good.test");
	ev_run(loop, EVRUN_NOWAIT);
	lookup(s, "good.test");
	CHECK_STR(last_mode, "enforce");

	/* A day and a bit later the policy has expired: gone from disk. */
	clock_set_offset(86400 + 60);
	lookup(s, "good.test");
	CHECK_STR(last_source, "txt-tempfail");
	CHECK_STR(last_mode, "-");
	sts_flush(s);
	CHECK_STR(on_disk(dir, "good.test"), "-");
	clock_set_offset(0);
	sts_free(s);
	rm_rf(dir);
}

/*
 * The cache files of mxtls before the journal: read into the journal
 * once and removed; corrupt ones, stale temporary files and names that
 * are not domains removed as before; files not ours left alone.
 */
static void
cache_legacy_files(void)
{
	char dir[PATH_MAX + 16];
	struct sts_record r;
	struct sts *s;
	time_t now = time(NULL);
	char *text;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/legacy", tmp);
	mkdir(dir, 0700);
	mkrec(&r, "good.test", "7", MTASTS_ENFORCE, 86400, now - 100,
	    "mx.good.test", "*.good.test");
	put_rec(dir, &r);
	sts_record_free(&r);
	mkrec(&r, "none.test", "7", MTASTS_NONE, 86400, now - 100, NULL, NULL);
	put_rec(dir, &r);
	sts_record_free(&r);
	mkrec(&r, "old.test", "7", MTASTS_ENFORCE, 100, now - 200, "mx.old.test",
	    NULL);
	put_rec(dir, &r);
	sts_record_free(&r);
	write_file(dir, "corrupt.test.sts", "garbage\n", 8);
	write_file(dir, "empty.test.sts", "", 0);
	mkrec(&r, "other.test", "7", MTASTS_ENFORCE, 86400, now - 100, "mx.o",
	    NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), 0);
	write_file(dir, "mismatch.test.sts", text, len);
	write_file(dir, "good.test.sts.tmp", text, len);
	write_file(dir, "UPPER.test.sts", text, len);
	free(text);
	sts_record_free(&r);
	write_file(dir, "README", "not ours\n", 9);

	s = sts_new(loop, NULL, NULL, dir, NULL, 0.5, BIG, err, sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(!exists(dir, "good.test.sts"));     /* now in the journal */
	CHECK(!exists(dir, "none.test.sts"));
	CHECK(!exists(dir, "old.test.sts"));      /* expired */
	CHECK(!exists(dir, "corrupt.test.sts"));  /* corrupt */
	CHECK(!exists(dir, "empty.test.sts"));
	CHECK(!exists(dir, "mismatch.test.sts"));
	CHECK(!exists(dir, "good.test.sts.tmp"));
	CHECK(!exists(dir, "UPPER.test.sts"));
	CHECK(exists(dir, "README"));             /* not ours: left alone */
	CHECK_STR(on_disk(dir, "good.test"), "enforce");
	CHECK_STR(on_disk(dir, "none.test"), "none");
	CHECK_STR(on_disk(dir, "old.test"), "-");
	lookup(s, "good.test");
	CHECK_STR(last_mode, "enforce");
	CHECK_INT(last_nmx, 2);
	sts_free(s);
	/* Once is enough: a restart has the journal alone. */
	s = sts_new(loop, NULL, NULL, dir, NULL, 0.5, BIG, err, sizeof(err));
	CHECK(s != NULL);
	lookup(s, "good.test");
	CHECK_STR(last_mode, "enforce");
	sts_free(s);
	rm_rf(dir);
}

/*
 * A crash while a record was being appended: the torn record is ignored,
 * the older ones are kept, and the journal is cut where they end.
 */
static void
cache_journal_torn(void)
{
	char dir[PATH_MAX + 16], p[PATH_MAX + 32];
	struct sts_record r;
	struct sts *s;
	time_t now = time(NULL);
	long whole, kept;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/torn", tmp);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 86400, now - 100, "mx.a.test",
	    NULL);
	jput(dir, "a.test", &r);
	sts_record_free(&r);
	mkrec(&r, "b.test", "1", MTASTS_TESTING, 86400, now - 50, "mx.b.test",
	    NULL);
	jput(dir, "b.test", &r);
	sts_record_free(&r);
	kept = file_size(dir, STS_JOURNAL);
	/* The newer policy of a.test, cut short in its value. */
	mkrec(&r, "a.test", "2", MTASTS_NONE, 86400, now - 10, NULL, NULL);
	jput(dir, "a.test", &r);
	sts_record_free(&r);
	whole = file_size(dir, STS_JOURNAL);
	snprintf(p, sizeof(p), "%s/" STS_JOURNAL, dir);
	CHECK(truncate(p, kept + (whole - kept) / 2) == 0);
	/* And garbage after it, as a disk may leave it. */
	if ((f = fopen(p, "a")) != NULL) {
		fputs("\n\nP a.test 5 0000000000000000\nnone\n", f);
		fclose(f);
	}

	s = sts_new(loop, NULL, NULL, dir, NULL, 0.5, BIG, err, sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_INT(file_size(dir, STS_JOURNAL), kept);
	lookup(s, "a.test");
	CHECK_STR(last_mode, "enforce");
	lookup(s, "b.test");
	CHECK_STR(last_mode, "testing");
	sts_free(s);
	CHECK_STR(on_disk(dir, "a.test"), "enforce");
	rm_rf(dir);
}
static void
cache_callbacks(void)
{
	char dir[PATH_MAX + 16];
	struct sts_query *q1, *q2, *q3;
	struct sts *s;
	int i;

	snprintf(dir, sizeof(dir), "%s/cb", tmp);
	s = sts_new(loop, NULL, NULL, dir, "relative/ca.pem", 0, BIG, err,
	    sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	/* Three lookups of one domain, one cancelled: two callbacks. */
	ncalls = 0;
	in_lookup = 1;
	q1 = sts_lookup(s, "x.test", answer_cb, NULL);
	q2 = sts_lookup(s, "x.test", answer_cb, NULL);
	q3 = sts_lookup(s, "y.test", answer_cb, NULL);
	in_lookup = 0;
	CHECK(q1 != NULL && q2 != NULL && q3 != NULL);
	sts_cancel(q2);
	for (i = 0; i < 10; i++)
		ev_run(loop, EVRUN_NOWAIT);
	CHECK_INT(ncalls, 2);
	/* Freed from inside a callback, with another lookup pending. */
	ncalls = 0;
	free_me = s;
	sts_lookup(s, "x.test", answer_cb, NULL);
	sts_lookup(s, "x.test", answer_cb, NULL);
	sts_lookup(s, "z.test", answer_cb, NULL);
	for (i = 0; i < 10; i++)
		ev_run(loop, EVRUN_NOWAIT);
	CHECK_INT(ncalls, 1);
	CHECK(free_me == NULL);
	/* Freed with lookups pending: no callback. */
	s = sts_new(loop, NULL, NULL, dir, NULL, 5, BIG, err, sizeof(err));
	CHECK(s != NULL);
	ncalls = 0;
	sts_lookup(s, "x.test", answer_cb, NULL);
	sts_free(s);
	for (i = 0; i < 10; i++)
		ev_run(loop, EVRUN_NOWAIT);
	CHECK_INT(ncalls, 0);
	sts_free(NULL);
	rm_rf(dir);
}

static void
cache_bad_dir(void)
{
	char dir[PATH_MAX + 32];

	snprintf(dir, sizeof(dir), "%s/missing/parent", tmp);
	CHECK(sts_new(loop, NULL, NULL, dir, NULL, 1, BIG, err, sizeof(err)) ==
	    NULL);
	CHECK(strstr(err, "missing") != NULL);
	snprintf(dir, sizeof(dir), "%s/file", tmp);
	write_file(tmp, "file", "x", 1);
	CHECK(sts_new(loop, NULL, NULL, dir, NULL, 1, BIG, err, sizeof(err)) ==
	    NULL);
	unlink(dir);
}

/* More policies than the cache holds: the newest STS_MAX_DOMAINS stay. */
static void
cache_bounded(void)
{
	char dir[PATH_MAX + 16], dom[64];
	struct sts_record r;
	struct sts *s;
	time_t now = time(NULL);
	int i, extra = 5;

	snprintf(dir, sizeof(dir), "%s/many", tmp);
	for (i = 0; i < STS_MAX_DOMAINS + extra; i++) {
		snprintf(dom, sizeof(dom), "d%05d.test", i);
		/* d00000 is the oldest. */
		mkrec(&r, dom, "1", MTASTS_TESTING, 86400, now - 50000 + i,
		    "mx.test", NULL);
		jput(dir, dom, &r);
		sts_record_free(&r);
	}
	s = sts_new(loop, NULL, NULL, dir, NULL, 1, BIG, err, sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	sts_flush(s);
	for (i = 0; i < extra; i++) {
		snprintf(dom, sizeof(dom), "d%05d.test", i);
		CHECK_STR(on_disk(dir, dom), "-");
	}
	CHECK_STR(on_disk(dir, "d00005.test"), "testing");
	/* A new domain evicts the oldest cached one (all are idle). */
	lookup(s, "new.test");
	sts_flush(s);
	CHECK_STR(on_disk(dir, "d00005.test"), "-");
	CHECK_STR(on_disk(dir, "d00006.test"), "testing");
	/* Then domains without a policy go first. */
	lookup(s, "new2.test");
	sts_flush(s);
	CHECK_STR(on_disk(dir, "d00006.test"), "testing");
	lookup(s, "d09999.test");
	CHECK_STR(last_mode, "testing");
	sts_free(s);
	rm_rf(dir);
}

/* A policy costs more than its domain alone, more with more mx. */
static void
cost_order(void)
{
	CHECK(sts_cost(0, 0, 0, 0) < sts_cost(0, 1, 100, 1));
	CHECK(sts_cost(0, 1, 100, 1) < sts_cost(0, 1, 100, 2));
	CHECK(sts_cost(0, 1, 100, 1) < sts_cost(10, 1, 100, 1));
}

/* Nine policies: enforce e1..e3, testing t1..t3, none n1..n3 (1 oldest). */
static void
nine(const char *dir, time_t now)
{
	static const char *const names[] = { "e", "t", "n" };
	static const enum mtasts_mode modes[] = { MTASTS_ENFORCE,
		MTASTS_TESTING, MTASTS_NONE };
	struct sts_record r;
	char dom[32];
	int m, i;

	for (m = 0; m < 3; m++)
		for (i = 1; i <= 3; i++) {
			snprintf(dom, sizeof(dom), "%s%d.test", names[m], i);
			mkrec(&r, dom, "1", modes[m], 86400, now - 1000 + i,
			    modes[m] == MTASTS_NONE ? NULL : "mx.test", NULL);
			jput(dir, dom, &r);
			sts_record_free(&r);
		}
}

static double
evictions(const char *mode)
{
	char l[48];
	double v;

	snprintf(l, sizeof(l), "mode=\"%s\"", mode);
	v = metrics_value("mxtls_mta_sts_evictions_total", l);
	return v == v ? v : 0; /* NAN: never counted */
}

/*
 * The byte bound: at start, the policies that matter most are kept
 * (enforce, then testing, none; newest first); later, a new domain
 * forgets policies of mode none, then testing, the least recently used
 * first, and never one that is busy.  The bytes stay within the bound.
 */
static void
cache_byte_bound(void)
{
	char dir[PATH_MAX + 16], dom[32];
	struct sts *s;
	time_t now = time(NULL);
	double all, one;
	size_t bound;
	int i;

	snprintf(dir, sizeof(dir), "%s/bytes", tmp);
	nine(dir, now);
	metrics_reset();
	s = sts_new(loop, NULL, NULL, dir, NULL, 1, BIG, err, sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	all = metrics_value("mxtls_mta_sts_cache_bytes", "");
	sts_free(s);
	CHECK(all > 9 * (double)sts_cost(0, 0, 0, 0));
	one = all / 9;

	/* Room for about five: the three enforce, the newest two testing. */
	metrics_reset();
	bound = (size_t)(5.5 * one);
	s = sts_new(loop, NULL, NULL, dir, NULL, 1, bound, err, sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(metrics_value("mxtls_mta_sts_cache_bytes", "") <= bound);
	sts_flush(s);
	for (i = 1; i <= 3; i++) {
		snprintf(dom, sizeof(dom), "e%d.test", i);
		CHECK_STR(on_disk(dir, dom), "enforce");
		snprintf(dom, sizeof(dom), "n%d.test", i);
		CHECK_STR(on_disk(dir, dom), "-");
	}
	CHECK_STR(on_disk(dir, "t1.test"), "-");
	CHECK_STR(on_disk(dir, "t2.test"), "testing");
	CHECK_STR(on_disk(dir, "t3.test"), "testing");
	CHECK(evictions("none") == 3 && evictions("testing") == 1);
	sts_free(s);
	rm_rf(dir);

	/* Exactly full; t1 used a minute ago, so t2 is the least recent. */
	nine(dir, now);
	metrics_reset();
	s = sts_new(loop, NULL, NULL, dir, NULL, 1, (size_t)all, err,
	    sizeof(err));
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(metrics_value("mxtls_mta_sts_cache_bytes", "") == all);
	clock_set_offset(-60);
	lookup(s, "t1.test");
	lookup(s, "n1.test");
	clock_set_offset(0);
	CHECK(evictions("testing") == 0 && evictions("none") == 0);
	/*
	 * Five new domains at once, none answered yet (busy: they cannot
	 * make room for each other): each forgets one policy.
	 */
	ncalls = 0;
	for (i = 0; i < 5; i++) {
		snprintf(dom, sizeof(dom), "x%d.test", i);
		CHECK(sts_lookup(s, dom, answer_cb, NULL) != NULL);
		CHECK(metrics_value("mxtls_mta_sts_cache_bytes", "") <= all);
	}
	CHECK(evictions("none") == 3);
	CHECK(evictions("testing") == 2);
	CHECK(evictions("enforce") == 0);
	sts_flush(s);
	CHECK_STR(on_disk(dir, "n1.test"), "-");
	CHECK_STR(on_disk(dir, "t1.test"), "testing");
	CHECK_STR(on_disk(dir, "t2.test"), "-");
	CHECK_STR(on_disk(dir, "t3.test"), "-");
	for (i = 1; i <= 3; i++) {
		snprintf(dom, sizeof(dom), "e%d.test", i);
		CHECK_STR(on_disk(dir, dom), "enforce");
	}
	for (i = 0; i < 10 && ncalls < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
	CHECK_INT(ncalls, 5);
	/* Answered, the new domains (no policy) are the first to go. */
	lookup(s, "y.test");
	CHECK(evictions("no-policy") == 1);
	CHECK(evictions("enforce") == 0);
	sts_free(s);
	rm_rf(dir);
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_sts.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	log_setup(CONFIG_LOG_LOGFMT, CONFIG_LOG_ERROR);
	loop = ev_loop_new(EVFLAG_AUTO);

	RUN(cache_load_and_answer);
	RUN(cache_legacy_files);
	RUN(cache_journal_torn);
	RUN(cache_callbacks);
	RUN(cache_bad_dir);
	RUN(cache_bounded);
	RUN(cost_order);
	RUN(cache_byte_bound);

	ev_loop_destroy(loop);
	rm_rf(tmp);
	return T_DONE();
}

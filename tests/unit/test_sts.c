/*
 * proxy/sts.c without sockets: the cache file format (round trip, corrupt
 * files), the decision rules of RFC 8461 sections 3.3 and 5 (id
 * comparison, expiry, rate limits, sts_refresh), the judging of fetcher
 * responses, and the cache itself on a real libev loop with neither DNS
 * nor fetcher (loading, removal of corrupt and expired files, eviction,
 * callbacks only from the loop, cancel, free from a callback).
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
#include "t.h"

static char err[512];
static char tmp[PATH_MAX];

#define T0 ((time_t)1700000000)

/* ---- helpers ---- */

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		exit(2);
	return p;
}

/* A record with its own copies of the mx patterns. */
static void
mkrec(struct sts_record *r, const char *domain, const char *id,
    enum mtasts_mode mode, long max_age, time_t fetched, const char *mx1,
    const char *mx2)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->fetched_at = fetched;
	r->expires = fetched + max_age;
	r->policy.mode = mode;
	r->policy.max_age = max_age;
	r->policy.mx = calloc(2, sizeof(char *));
	if (mx1 != NULL)
		r->policy.mx[r->policy.nmx++] = xstrdup(mx1);
	if (mx2 != NULL)
		r->policy.mx[r->policy.nmx++] = xstrdup(mx2);
}

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

/* ---- domain names ---- */

static void
domains(void)
{
	static const struct {
		const char *d;
		int ok;
	} cases[] = {
		{ "example.com", 1 },
		{ "a.test", 1 },
		{ "localhost", 1 },
		{ "xn--bcher-kva.example", 1 },
		{ "a-b.c0.d", 1 },
		{ "", 0 },
		{ ".", 0 },
		{ "example.com.", 0 },
		{ ".example.com", 0 },
		{ "a..b", 0 },
		{ "Example.com", 0 },
		{ "-a.com", 0 },
		{ "a-.com", 0 },
		{ "a_b.com", 0 },
		{ "a b.com", 0 },
		{ "a/b.com", 0 },
		{ "[192.0.2.1]", 0 },
		{ "../etc", 0 },
	};
	char longlabel[80], longname[300];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sts_domain_ok(cases[i].d) != cases[i].ok) {
			fprintf(stderr, "  sts_domain_ok(\"%s\") != %d\n",
			    cases[i].d, cases[i].ok);
			CHECK(0);
		}
	memset(longlabel, 'a', 63);
	longlabel[63] = '\0';
	snprintf(longname, sizeof(longname), "%s.com", longlabel);
	CHECK(sts_domain_ok(longname));
	memset(longlabel, 'a', 64);
	longlabel[64] = '\0';
	snprintf(longname, sizeof(longname), "%s.com", longlabel);
	CHECK(!sts_domain_ok(longname));
	/* 244 bytes is the most: "_mta-sts." + 244 = 253. */
	memset(longname, 'a', sizeof(longname));
	for (i = 60; i < 243; i += 61)
		longname[i] = '.';
	longname[244] = '\0';
	CHECK(sts_domain_ok(longname));
	longname[244] = 'a';
	longname[245] = '\0';
	CHECK(!sts_domain_ok(longname));
}

/* ---- the cache file ---- */

static const char good_file[] =
    "mxtls-mta-sts-cache 1\n"
    "domain example.com\n"
    "id 20180907T090909\n"
    "fetched-at 1700000000\n"
    "expires 1700086400\n"
    "mode enforce\n"
    "max_age 86400\n"
    "mx mail.example.com\n"
    "mx *.example.net\n";

static void
file_round_trip(void)
{
	struct sts_record r, back;
	char *text, *text2;
	size_t len, len2;
	int i;

	mkrec(&r, "example.com", "20180907T090909", MTASTS_ENFORCE, 86400, T0,
	    "mail.example.com", "*.example.net");
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), 0);
	CHECK_STR(text, good_file);
	CHECK_INT(len, strlen(good_file));
	CHECK_INT(sts_record_parse(text, len, &back, err, sizeof(err)), 0);
	CHECK_STR(back.domain, "example.com");
	CHECK_STR(back.id, "20180907T090909");
	CHECK_INT(back.fetched_at, T0);
	CHECK_INT(back.expires, T0 + 86400);
	CHECK_INT(back.policy.mode, MTASTS_ENFORCE);
	CHECK_INT(back.policy.max_age, 86400);
	CHECK_INT(back.policy.nmx, 2);
	if (back.policy.nmx == 2) {
		CHECK_STR(back.policy.mx[0], "mail.example.com");
		CHECK_STR(back.policy.mx[1], "*.example.net");
	}
	CHECK(mtasts_mx_match(&back.policy, "mx1.example.net"));
	CHECK(!mtasts_mx_match(&back.policy, "a.b.example.net"));
	/* Formatting what was parsed gives the same bytes. */
	CHECK_INT(sts_record_format(&back, &text2, &len2, err, sizeof(err)), 0);
	CHECK(len2 == len && memcmp(text, text2, len) == 0);
	free(text);
	free(text2);
	sts_record_free(&back);
	sts_record_free(&r);

	/* mode none without mx, testing, the largest max_age, max_age 0. */
	{
		static const struct {
			enum mtasts_mode mode;
			long max_age;
			const char *mx;
		} c[] = {
			{ MTASTS_NONE, 600, NULL },
			{ MTASTS_NONE, 600, "mx.a.test" },
			{ MTASTS_TESTING, 31557600, "*.a.test" },
			{ MTASTS_ENFORCE, 0, "mx.a.test" },
		};

		for (i = 0; i < (int)(sizeof(c) / sizeof(c[0])); i++) {
			mkrec(&r, "a.test", "x1", c[i].mode, c[i].max_age, T0,
			    c[i].mx, NULL);
			CHECK_INT(sts_record_format(&r, &text, &len, err,
			    sizeof(err)), 0);
			if (sts_record_parse(text, len, &back, err,
			    sizeof(err)) < 0) {
				fprintf(stderr, "  case %d: %s\n", i, err);
				CHECK(0);
			} else {
				CHECK_INT(back.policy.mode, c[i].mode);
				CHECK_INT(back.policy.max_age, c[i].max_age);
				CHECK_INT(back.expires, T0 + c[i].max_age);
				CHECK_INT(back.policy.nmx, c[i].mx ? 1 : 0);
				sts_record_free(&back);
			}
			free(text);
			sts_record_free(&r);
		}
	}
}

static void
file_round_trip_many_mx(void)
{
	struct sts_record r, back;
	char *text, buf[300];
	size_t len;
	int i;

	/* MTASTS_MX_MAX long patterns: the largest file there can be. */
	mkrec(&r, "a.test", "big", MTASTS_ENFORCE, 3600, T0, NULL, NULL);
	free(r.policy.mx);
	r.policy.mx = calloc(MTASTS_MX_MAX, sizeof(char *));
	for (i = 0; i < MTASTS_MX_MAX; i++) {
		/* Four labels of 59 bytes: 240 bytes, then "NNN.test". */
		memset(buf, 'm', 240);
		buf[59] = buf[119] = buf[179] = buf[239] = '.';
		snprintf(buf + 240, sizeof(buf) - 240, "%03d.test", i);
		r.policy.mx[r.policy.nmx++] = xstrdup(buf);
	}
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), 0);
	CHECK(len <= STS_CACHE_FILE_MAX);
	if (sts_record_parse(text, len, &back, err, sizeof(err)) < 0) {
		fprintf(stderr, "  %s\n", err);
		CHECK(0);
	} else {
		CHECK_INT(back.policy.nmx, MTASTS_MX_MAX);
		sts_record_free(&back);
	}
	free(text);
	sts_record_free(&r);
}

static void
file_refused_by_format(void)
{
	struct sts_record r;
	char *text;
	size_t len;

	mkrec(&r, "Example.com", "1", MTASTS_ENFORCE, 60, T0, "mx.a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "a-b", MTASTS_ENFORCE, 60, T0, "mx.a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, T0, "mx a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, T0, NULL, NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, T0, "mx.a", NULL);
	r.expires++;
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
	mkrec(&r, "a.test", "1", MTASTS_ENFORCE, 60, 0, "mx.a", NULL);
	CHECK_INT(sts_record_format(&r, &text, &len, err, sizeof(err)), -1);
	sts_record_free(&r);
}

/* Replace the first occurrence of from by to in good_file. */
static const char *
edit(const char *from, const char *to)
{
	static char buf[2048];
	const char *p = strstr(good_file, from);

	if (p == NULL) {
		fprintf(stderr, "edit: \"%s\" not in the file\n", from);
		exit(2);
	}
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - good_file), good_file,
	    to, p + strlen(from));
	return buf;
}

static void
file_corrupt(void)
{
	const char *cases[] = {
		edit("mxtls-mta-sts-cache 1", "mxtls-mta-sts-cache 2"),
		edit("mxtls-mta-sts-cache 1\n", ""),
		edit("domain example.com\n", ""),
		edit("domain example.com", "domain Example.com"),
		edit("domain example.com", "domain ../x"),
		edit("domain", "domian"),
		edit("id 20180907T090909", "id 2018-09-07"),
		edit("id 20180907T090909", "id 123456789012345678901234567890123"),
		edit("id 20180907T090909", "id"),
		edit("id 20180907T090909", "id  x"),
		edit("id 20180907T090909", "id x y"),
		edit("fetched-at 1700000000", "fetched-at -1700000000"),
		edit("fetched-at 1700000000", "fetched-at 01700000000"),
		edit("fetched-at 1700000000", "fetched-at 0"),
		edit("fetched-at 1700000000", "fetched-at 99999999999999999999"),
		edit("expires 1700086400", "expires 1700086401"),
		edit("expires 1700086400", "expires 17000864OO"),
		edit("mode enforce", "mode Enforce"),
		edit("mode enforce", "mode doubt"),
		edit("max_age 86400", "max_age 31557601"),
		edit("max_age 86400", "max_age -1"),
		edit("max_age 86400", "max_age 8.64e4"),
		edit("mx mail.example.com", "mx mail..example.com"),
		edit("mx mail.example.com", "mx *.*.example.com"),
		edit("mx mail.example.com", "mx *.example.net"), /* repeated */
		edit("mx mail.example.com", "nmx mail.example.com"),
		edit("mx mail.example.com\n", "mx mail.example.com\r\n"),
		edit("mx mail.example.com\n", "mx mail.example.com\nfoo bar\n"),
		edit("mode enforce\nmax_age 86400\n", "max_age 86400\nmode enforce\n"),
		edit("mx *.example.net\n", "mx *.example.net"), /* no final LF */
		edit("mx *.example.net\n", "mx *.example.net\n\n"),
		edit("id 20180907T090909\n", "id 20180907T090909\nid 1\n"),
		edit("mode enforce", "mode \xc3\xa9"),
	};
	const char *none_mx = "mxtls-mta-sts-cache 1\ndomain a.test\nid 1\n"
			      "fetched-at 1700000000\nexpires 1700000600\n"
			      "mode enforce\nmax_age 600\n";
	struct sts_record r;
	char withnul[sizeof(good_file)];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (sts_record_parse(cases[i], strlen(cases[i]), &r, err,
		    sizeof(err)) == 0) {
			fprintf(stderr, "  case %zu accepted:\n%s", i, cases[i]);
			sts_record_free(&r);
			CHECK(0);
		} else if (err[0] == '\0') {
			fprintf(stderr, "  case %zu: no error text\n", i);
			CHECK(0);
		}
	}
	/* enforce without mx lines. */
	CHECK_INT(sts_record_parse(none_mx, strlen(none_mx), &r, err,
	    sizeof(err)), -1);
	/* Every truncation of a good file is refused. */
	for (n = 0; n < strlen(good_file); n++)
		if (sts_record_parse(good_file, n, &r, err, sizeof(err)) == 0) {
			/* Cutting after a whole mx line leaves a valid file. */
			if (good_file[n - 1] != '\n' ||
			    strncmp(good_file + n, "mx ", 3) != 0) {
				fprintf(stderr, "  truncation at %zu accepted\n",
				    n);
				CHECK(0);
			}
			sts_record_free(&r);
		}
	/* A NUL byte inside. */
	memcpy(withnul, good_file, sizeof(good_file));
	withnul[30] = '\0';
	CHECK_INT(sts_record_parse(withnul, sizeof(good_file) - 1, &r, err,
	    sizeof(err)), -1);
	/* Too big. */
	CHECK_INT(sts_record_parse(good_file, STS_CACHE_FILE_MAX + 1, &r, err,
	    sizeof(err)), -1);
	/* And the good one parses (the edits above were the only faults). */
	CHECK_INT(sts_record_parse(good_file, strlen(good_file), &r, err,
	    sizeof(err)), 0);
	sts_record_free(&r);
}

/* ---- decisions ---- */

static struct sts_facts
facts(const char *cached_id, time_t fetched, long max_age,
    enum sts_txt_state txt, const char *txt_id, time_t checked)
{
	struct sts_facts f;

	memset(&f, 0, sizeof(f));
	if (cached_id != NULL) {
		f.cached = 1;
		f.cached_id = cached_id;
		f.fetched_at = fetched;
		f.expires = fetched + max_age;
		f.max_age = max_age;
	}
	f.txt = txt;
	f.txt_id = txt_id;
	f.txt_checked = checked;
	return f;
}

#define DECIDE(f, now, step_, src_, cache_, after_, err_)                  \
	do {                                                               \
		struct sts_decision d_;                                    \
		sts_decide(&(f), (now), &d_);                              \
		CHECK_INT(d_.step, step_);                                 \
		if (d_.step == STS_STEP_ANSWER) {                          \
			CHECK_STR(sts_source_name(d_.source, 0),           \
			    sts_source_name(src_, 0));                     \
			CHECK_INT(d_.use_cache, cache_);                   \
			CHECK_INT(d_.fetch_after, after_);                 \
			CHECK_INT(d_.with_error, err_);                    \
		}                                                          \
	} while (0)

static void
decide_txt_needed(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* Never checked: TXT first, with or without a cache. */
	f = facts(NULL, 0, 0, STS_TXT_UNKNOWN, NULL, 0);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_UNKNOWN, NULL, 0);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* Checked 59 s ago: not again; 60 s ago: again. */
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now - 59);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now - 60);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* The clock went back: check again. */
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now + 5);
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* sts_refresh: check now, even just after a check. */
	f = facts("1", T0, 86400, STS_TXT_ID, "1", now);
	f.force_txt = 1;
	DECIDE(f, now, STS_STEP_TXT, 0, 0, 0, 0);
	/* No record seen 10 s ago, no cache: none, no query. */
	f = facts(NULL, 0, 0, STS_TXT_NONE, NULL, now - 10);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_NONE, 0, 0, 0);
}

static void
decide_ids(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* Same id, valid cache: the cache, no fetch. */
	f = facts("abc", T0, 86400, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	/* A changed id: fetch. */
	f = facts("abc", T0, 86400, STS_TXT_ID, "abd", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* Ids compare case-sensitively (they are opaque). */
	f = facts("abc", T0, 86400, STS_TXT_ID, "ABC", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* A prefix is another id. */
	f = facts("abc", T0, 86400, STS_TXT_ID, "abcd", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* No cache: fetch. */
	f = facts(NULL, 0, 0, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* max_age 0 or 1: still used for STS_MIN_LIFETIME after the fetch. */
	f = facts("abc", now, 0, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("abc", now - 59, 1, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("abc", now - 60, 1, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	f = facts("abc", now - 60, 1, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_NONE, 0, 0, 0);
	CHECK_INT(sts_valid_until(T0, T0), T0 + STS_MIN_LIFETIME);
	CHECK_INT(sts_valid_until(T0, T0 + 61), T0 + 61);
	/* Same id but expired: fetch. */
	f = facts("abc", T0, 1000, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* (Past half its max_age: answered, and re-fetched behind.) */
	f = facts("abc", T0, 1001, STS_TXT_ID, "abc", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
}

static void
decide_no_record(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* F-09 (c): no TXT record, valid cache: keep it. */
	f = facts("1", T0, 86400, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_MISSING_CACHE, 1, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_INVALID, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_INVALID_CACHE, 1, 0, 0);
	f = facts("1", T0, 86400, STS_TXT_TEMPFAIL, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_TEMPFAIL_CACHE, 1, 0, 0);
	/* ... until it expires. */
	f = facts("1", T0, 1000, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_NONE, 0, 0, 0);
	f = facts("1", T0, 1000, STS_TXT_INVALID, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_INVALID, 0, 0, 0);
	f = facts(NULL, 0, 0, STS_TXT_TEMPFAIL, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_TEMPFAIL, 0, 0, 0);
	/* No record: never a fetch, even when sts_refresh asked. */
	f = facts("1", T0, 86400, STS_TXT_NONE, NULL, now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_MISSING_CACHE, 1, 0, 0);
}

static void
decide_failures(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000;

	/* A fetch failed 30 s ago: no new fetch; the cache if valid. */
	f = facts("1", T0, 86400, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 30;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED_CACHE, 1, 0, 1);
	f = facts(NULL, 0, 0, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 59;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED, 0, 0, 1);
	/* F-09 (e): expired cache and a failed fetch: no policy. */
	f = facts("1", T0, 1000, STS_TXT_ID, "1", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED, 0, 0, 1);
	/* 60 s later: fetch again. */
	f = facts("1", T0, 86400, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 60;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* A failure in the future (clock set back): fetch. */
	f.fetch_failed_at = now + 100;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* A failure does not hide a valid policy with the current id. */
	f = facts("2", T0, 86400, STS_TXT_ID, "2", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 1;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
}

static void
decide_refresh(void)
{
	struct sts_facts f;
	time_t now = T0 + 100000;

	/* sts_refresh after the TXT check: fetch even with the same id. */
	f = facts("1", now - 3600, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* ... unless the copy is younger than STS_REFRESH_MIN. */
	f = facts("1", now - 59, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 60, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	DECIDE(f, now, STS_STEP_FETCH, 0, 0, 0, 0);
	/* ... or a fetch failed less than a minute ago. */
	f = facts("1", now - 3600, 86400, STS_TXT_ID, "1", now);
	f.force_fetch = 1;
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 10;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_FAILED_CACHE, 1, 0, 1);
}

static void
decide_background(void)
{
	struct sts_facts f;
	time_t now = T0 + 1000000;

	/* Half of max_age passed: answer from the cache, fetch behind. */
	f = facts("1", now - 43199, 86400, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 43200, 86400, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
	/* A day at the most, for long max_age. */
	f = facts("1", now - 86399, 31557600, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 86400, 31557600, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
	/* A minute at the least, for short max_age. */
	f = facts("1", now - 59, 100, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	f = facts("1", now - 60, 100, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 1, 0);
	/* Not after a recent failure. */
	f = facts("1", now - 86400, 31557600, STS_TXT_ID, "1", now);
	f.fetch_failed = 1;
	f.fetch_failed_at = now - 5;
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	/* Not for a copy fetched "in the future" (the clock was set back). */
	f = facts("1", now + 3600, 86400, STS_TXT_ID, "1", now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_CACHE, 1, 0, 0);
	/* Not without the TXT record. */
	f = facts("1", now - 86400, 31557600, STS_TXT_NONE, NULL, now);
	DECIDE(f, now, STS_STEP_ANSWER, STS_SRC_TXT_MISSING_CACHE, 1, 0, 0);
}

static void
decide_pending(void)
{
	struct sts_facts f;
	struct sts_decision d;
	time_t now = T0 + 1000;

	f = facts("1", T0, 86400, STS_TXT_ID, "2", now);
	sts_decide_pending(&f, now, 1, &d);
	CHECK_INT(d.step, STS_STEP_ANSWER);
	CHECK_STR(sts_source_name(d.source, 0), "fetch-pending");
	CHECK_INT(d.use_cache, 1);
	sts_decide_pending(&f, T0 + 86400, 0, &d);
	CHECK_STR(sts_source_name(d.source, 0), "txt-pending");
	CHECK_INT(d.use_cache, 0);
	f = facts(NULL, 0, 0, STS_TXT_UNKNOWN, NULL, 0);
	sts_decide_pending(&f, now, 0, &d);
	CHECK_INT(d.use_cache, 0);
}

static void
source_names(void)
{
	int i;

	CHECK_STR(sts_source_name(STS_SRC_CACHE, 0), "cache");
	CHECK_STR(sts_source_name(STS_SRC_CACHE, 1), "cache-mode-none");
	CHECK_STR(sts_source_name(STS_SRC_FETCHED, 1), "fetched-mode-none");
	CHECK_STR(sts_source_name(STS_SRC_TXT_MISSING_CACHE, 0),
	    "txt-missing-cache-valid");
	CHECK_STR(sts_source_name(STS_SRC_FETCH_PENDING, 0), "fetch-pending");
	CHECK_STR(sts_source_name(STS_NSOURCES, 0), "unknown");
	for (i = 0; i < STS_NSOURCES; i++) {
		const char *n = sts_source_name((enum sts_source)i, 0);

		CHECK(n != NULL && n[0] != '\0' && strchr(n, ' ') == NULL);
	}
}

/* ---- fetch outcomes ---- */

static enum sts_outcome
outcome(enum fetch_result res, unsigned status, const char *body,
    const char *error, const char *ctype, struct mtasts_policy *p)
{
	struct fetch_response rs;

	memset(&rs, 0, sizeof(rs));
	rs.result = res;
	rs.status = status;
	rs.body = (unsigned char *)(body != NULL ? xstrdup(body) : NULL);
	rs.body_len = body != NULL ? strlen(body) : 0;
	rs.error = error != NULL ? xstrdup(error) : NULL;
	rs.content_type = ctype != NULL ? xstrdup(ctype) : NULL;
	err[0] = '\0';
	{
		enum sts_outcome o = sts_fetch_outcome(&rs, p, err,
		    sizeof(err));

		fetchproto_response_free(&rs);
		return o;
	}
}

static void
fetch_outcomes(void)
{
	struct mtasts_policy p;

	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv1\r\nmode: enforce\r\n"
	    "mx: mx.a.test\r\nmax_age: 86400\r\n", NULL, "text/plain", &p),
	    STS_OUTCOME_OK);
	CHECK_INT(p.mode, MTASTS_ENFORCE);
	CHECK_INT(p.nmx, 1);
	mtasts_policy_free(&p);
	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv1\nmode: none\n"
	    "max_age: 9999999999\n", NULL, "text/plain", &p), STS_OUTCOME_OK);
	CHECK_INT(p.max_age, MTASTS_MAX_AGE_MAX);
	mtasts_policy_free(&p);

	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv2\nmode: enforce\n"
	    "mx: a\nmax_age: 1\n", NULL, "text/plain", &p), STS_OUTCOME_INVALID);
	CHECK(strncmp(err, "sts-policy-invalid: ", 20) == 0);
	CHECK_INT(p.nmx, 0);
	/* F-05: an enforce policy without mx is invalid, not "enforce nothing". */
	CHECK_INT(outcome(FETCH_OK, 200, "version: STSv1\nmode: enforce\n"
	    "max_age: 1\n", NULL, "text/plain", &p), STS_OUTCOME_INVALID);
	CHECK_INT(outcome(FETCH_OK, 200, NULL, NULL, "text/plain", &p),
	    STS_OUTCOME_INVALID);

	CHECK_INT(outcome(FETCH_TLS_ERROR, 0, NULL, "certificate has expired",
	    NULL, &p), STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-webpki-invalid: certificate has expired");
	CHECK_INT(outcome(FETCH_HTTP_STATUS, 404, NULL, NULL, NULL, &p),
	    STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-policy-fetch-error: HTTP status 404");
	CHECK_INT(outcome(FETCH_CONTENT_TYPE, 200, NULL, "x", "text/html", &p),
	    STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-policy-fetch-error: Content-Type \"text/html\" is "
	    "not text/plain");
	CHECK_INT(outcome(FETCH_REDIRECT, 301, NULL, "to https://evil/", NULL,
	    &p), STS_OUTCOME_FAILED);
	CHECK(strstr(err, "sts-policy-fetch-error: redirect") == err);
	/* F-12: a 304 is an error (we never ask conditionally). */
	CHECK_INT(outcome(FETCH_NOT_MODIFIED, 304, NULL, NULL, NULL, &p),
	    STS_OUTCOME_FAILED);
	CHECK(strncmp(err, "sts-policy-fetch-error: ", 24) == 0);
	CHECK_INT(outcome(FETCH_TIMEOUT, 0, NULL, "Operation timed out", NULL,
	    &p), STS_OUTCOME_FAILED);
	CHECK_STR(err, "sts-policy-fetch-error: timeout: Operation timed out");
	CHECK_INT(outcome(FETCH_TOO_LARGE, 200, NULL, NULL, NULL, &p),
	    STS_OUTCOME_FAILED);
	CHECK(strstr(err, "too-large") != NULL);
	CHECK_STR(sts_outcome_name(STS_OUTCOME_OK), "ok");
	CHECK_STR(sts_outcome_name(STS_OUTCOME_FAILED), "failed");
	CHECK_STR(sts_outcome_name(STS_OUTCOME_INVALID), "invalid");
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

/* The eviction order, as a table. */
static void
evict_order(void)
{
	static const struct {
		struct sts_evict_facts a, b;
		int first;
	} t[] = {
		/* Rank first: no policy, none, testing, enforce. */
		{ { 0, MTASTS_NONE, 100 }, { 1, MTASTS_NONE, 1 }, 1 },
		{ { 1, MTASTS_NONE, 100 }, { 1, MTASTS_TESTING, 1 }, 1 },
		{ { 1, MTASTS_TESTING, 100 }, { 1, MTASTS_ENFORCE, 1 }, 1 },
		{ { 1, MTASTS_ENFORCE, 1 }, { 0, MTASTS_NONE, 100 }, 0 },
		{ { 1, MTASTS_ENFORCE, 1 }, { 1, MTASTS_TESTING, 100 }, 0 },
		{ { 0, MTASTS_ENFORCE, 100 }, { 1, MTASTS_NONE, 1 }, 1 },
		/* Within a rank, the least recently used. */
		{ { 1, MTASTS_ENFORCE, 1 }, { 1, MTASTS_ENFORCE, 2 }, 1 },
		{ { 1, MTASTS_ENFORCE, 2 }, { 1, MTASTS_ENFORCE, 1 }, 0 },
		{ { 0, MTASTS_NONE, 5 }, { 0, MTASTS_NONE, 5 }, 0 },
		{ { 1, MTASTS_TESTING, 5 }, { 1, MTASTS_TESTING, 6 }, 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (sts_evict_first(&t[i].a, &t[i].b) != t[i].first) {
			fprintf(stderr, "row %zu\n", i);
			CHECK(!"sts_evict_first");
		}
	/* A policy costs more than its domain alone, more with more mx. */
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

	RUN(domains);
	RUN(file_round_trip);
	RUN(file_round_trip_many_mx);
	RUN(file_refused_by_format);
	RUN(file_corrupt);
	RUN(decide_txt_needed);
	RUN(decide_ids);
	RUN(decide_no_record);
	RUN(decide_failures);
	RUN(decide_refresh);
	RUN(decide_background);
	RUN(decide_pending);
	RUN(source_names);
	RUN(fetch_outcomes);
	RUN(cache_load_and_answer);
	RUN(cache_legacy_files);
	RUN(cache_journal_torn);
	RUN(cache_callbacks);
	RUN(cache_bad_dir);
	RUN(cache_bounded);
	RUN(evict_order);
	RUN(cache_byte_bound);

	ev_loop_destroy(loop);
	rm_rf(tmp);
	return T_DONE();
}
